"""Bristle (decentralised, Byzantine-robust, on a frozen body) and the client hook it runs on;
bucketing in the robust block."""

from __future__ import annotations

import numpy as np
import pytest

from adaptloop.distributed import Federation, LocalEngine, make_federated_data
from adaptloop.distributed.aggregate import RobustBlock
from adaptloop.distributed.attacks import Attack
from adaptloop.distributed.client import Client
from adaptloop.distributed.rules import Gossip, registry
from adaptloop.distributed.rules.bristle import Bristle, BristleStep, per_class_f1
from adaptloop.distributed.sharing import StateSplit
from adaptloop.learners.models.frozen_body import FrozenBodyClassifier, pretrain_body
from adaptloop.streams import registry as streams

STREAM = {"n_features": 4, "mag_change": 0.0, "noise": 0.05}


def _public(seed: int = 0, pool: int = 8 * 300, n: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """Samples of the clients' hyperplane stream drawn after their pool (no client has them)."""
    stream = streams.create("hyperplane", n=pool + n, concepts=[0], seed=seed, **STREAM)
    X, y = (np.concatenate(parts) for parts in zip(*stream.iter_batches(4096), strict=True))
    return X[pool:].astype(np.float32), y[pool:]


def _learner(lr: float = 0.5) -> FrozenBodyClassifier:
    X, y = _public()
    return FrozenBodyClassifier(pretrain_body(X, y, n_classes=2, hidden=8, seed=0), 2, lr=lr)


def test_the_frozen_body_is_not_in_the_state_and_survives_clone():
    learner = _learner()
    X, y = _public()
    for _ in range(20):
        learner.learn(X, y)
    state = learner.state_dict()
    assert set(state["learned"]) == {"theta"} and state["learned"]["theta"].shape == (9, 2)
    clone = learner.clone()
    assert clone.body is not None and np.array_equal(clone.body.weights, learner.body.weights)
    clone.load_state_dict(state)
    assert np.array_equal(clone.predict(X), learner.predict(X))
    assert float((learner.predict(X) == y).mean()) > 0.85


def test_pretrain_body_refuses_mismatched_arrays():
    with pytest.raises(ValueError, match="X must be"):
        pretrain_body(np.zeros((3, 2)), np.zeros(2, dtype=np.int64), n_classes=2)


def test_per_class_f1_does_not_reward_predicting_one_class_everywhere():
    y = np.array([0] * 9 + [1])
    always_zero = per_class_f1(y, np.zeros(10, dtype=np.int64), 2)
    assert always_zero[1] == 0.0 and always_zero[0] < 1.0


def _client(flip: bool = False) -> Client:
    data = make_federated_data(
        "hyperplane",
        clients=2,
        samples_per_client=300,
        concepts=[0],
        seed=0,
        n_features=4,
        mag_change=0.0,
        noise=0.05,
    )
    learner = _learner()
    split = StateSplit.for_learner(learner, n_features=4, n_classes=2)
    return Client(
        0, learner, data.shards[0], split, batch_size=32, seed=0, flip_classes=2 if flip else None
    )


def _trained(client: Client, steps: int = 30) -> np.ndarray:
    start = client.split.flatten(client.split.template)
    delta, _ = client.run(start, steps, 0.0)
    return start + delta


def test_the_integrator_gives_a_sign_flipped_peer_no_say_and_keeps_good_ones():
    client = _client()
    good = _trained(client)
    own = client.split.flatten(client.split.template)  # an untrained receiver
    flipped = own - 4.0 * (good - own)
    step = BristleStep((good, flipped), exploit=2, explore=0, tolerance=0.05, sources=(3, 5))
    integrated, report = step(client, own, 0.0)
    assert dict(report) == {3: 1.0, 5: 0.0}
    X, y = client.own_data(0.0)
    accuracy = float((client.predict(integrated, X) == y).mean())
    assert accuracy > 0.8 > float((client.predict(flipped, X) == y).mean())
    theta = client.split.compose(client.split.template, integrated)["learned"]["theta"]
    flipped_theta = client.split.compose(client.split.template, flipped)["learned"]["theta"]
    assert not np.allclose(theta, flipped_theta)


def test_the_prioritiser_keeps_the_nearest_and_explores_by_distance():
    model = np.zeros(3)
    peers = tuple(np.full(3, d) for d in (5.0, 1.0, 2.0, 1e9))
    step = BristleStep(peers, exploit=2, explore=1, seed=0)
    kept = step.prioritise(model)
    assert kept[:2] == [1, 2] and kept[2] == 0  # the 1e9-away model has no odds to be explored


def test_the_prioritiser_gives_no_say_to_a_model_far_larger_than_the_receivers():
    model = np.ones(3)
    peers = (np.full(3, 2.0), np.full(3, -30.0), np.full(3, 0.5))  # norms 3.5, 52, 0.9
    assert BristleStep(peers, exploit=3, explore=0).prioritise(model) == [2, 0]  # 52 > 10 x 1.7
    assert BristleStep(peers, exploit=3, explore=0, max_scale=50.0).prioritise(model) == [2, 0, 1]


def test_sign_flipped_peers_blow_up_but_honest_models_stay_bounded_under_jittered_timing():
    """A sign-flipping peer that integrates and flips grows its model geometrically; under
    strongly jittered task times honest peers weighed such models and passed them on, until a
    model far larger than the receiver's got no say (``max_scale``)."""
    fed, validation = _federation(Attack("sign_flip", fraction=0.25), seed=2, jitter=1.0)
    rule = Bristle(fanout=6, exploit=4, explore=2, eval_samples=50, validation=validation)
    trace = LocalEngine().run(fed, rule)
    bad = set(trace.byzantine)
    honest = [np.linalg.norm(v) for c, v in rule.models.items() if c not in bad]
    byzantine = [np.linalg.norm(v) for c, v in rule.models.items() if c in bad]
    assert max(byzantine) > 1e6 * max(honest)  # the attackers' models did blow up ...
    assert max(honest) < 2 * np.median(honest)  # ... the honest ones did not (without: 80x)
    assert trace.rows[-1]["accuracy_local"] > 0.8


def test_a_hooked_task_returns_its_delta_against_the_model_it_was_sent():
    client = _client()
    sent = client.split.flatten(client.split.template)
    shifted = _trained(_client())
    delta, _ = client.run(sent, 1, 0.0, hook=lambda c, model, time: shifted)
    assert not np.allclose(delta, 0.0)
    assert np.linalg.norm(sent + delta - shifted) < np.linalg.norm(delta)


def _federation(
    attack: Attack | None, seed: int = 1, jitter: float = 0.1, duration: float = 150.0
) -> tuple[Federation, tuple]:
    data = make_federated_data(
        "hyperplane",
        clients=8,
        samples_per_client=300,
        concepts=[0],
        seed=seed,
        class_skew=0.5,
        **STREAM,
    )
    X, y = _public(seed)
    learner = FrozenBodyClassifier(pretrain_body(X, y, 2, hidden=8, seed=seed), 2, lr=0.5)
    fed = Federation(
        data, learner, duration=duration, eval_every=10.0, seed=seed, attack=attack, jitter=jitter
    )
    return fed, (X, y)


def test_bristle_holds_its_accuracy_under_sign_flipping_peers_where_gossip_does_not():
    accuracy = {}
    for name, attack in (("clean", None), ("attacked", Attack("sign_flip", fraction=0.25))):
        fed, validation = _federation(attack)
        rule = registry.create("bristle", fanout=4, eval_samples=50, validation=validation)
        trace = LocalEngine().run(fed, rule)
        accuracy[name] = np.mean([r["accuracy"] for r in trace.rows[-5:]])
        assert len(rule.models) == 8 and all(np.all(np.isfinite(v)) for v in rule.models.values())
    fed, _ = _federation(Attack("sign_flip", fraction=0.25))
    gossip = LocalEngine().run(fed, Gossip(local_steps=5))
    assert accuracy["clean"] > 0.85 and accuracy["attacked"] > 0.8
    assert gossip.rows[-1]["accuracy"] < accuracy["attacked"] - 0.1


def test_bristle_reports_the_byzantine_peers_its_receivers_gave_no_say():
    fed, validation = _federation(Attack("sign_flip", fraction=0.25))
    trace = LocalEngine().run(fed, Bristle(fanout=4, eval_samples=50, validation=validation))
    byzantine = set(trace.byzantine)
    assert len(byzantine) == 2

    def down_weighted_share(members: set[int]) -> float:
        said = [value for _, peer, value in trace.influence if peer in members]
        return float(np.mean([value < 0.5 for value in said]))

    honest = set(range(8)) - byzantine
    assert down_weighted_share(byzantine) > 0.75
    assert down_weighted_share(byzantine) > down_weighted_share(honest) + 0.25
    by_client = trace.down_weighted_by_client
    total = sum(by_client.values())
    assert trace.rows[-1]["down_weighted"] == trace.counts["down_weighted"] == total
    offered = {c: sum(1 for _, peer, _ in trace.influence if peer == c) for c in range(8)}
    rate = {c: by_client.get(c, 0) / offered[c] for c in range(8)}
    assert min(rate[c] for c in byzantine) > max(rate[c] for c in honest)


def test_bristle_runs_on_its_own_data_without_a_validation_sample():
    fed, _ = _federation(Attack("alie", fraction=0.25))
    trace = LocalEngine().run(fed, Bristle(fanout=3, eval_samples=100))
    assert trace.rows[-1]["accuracy"] > 0.7


def test_bristle_counts_the_peer_models_each_task_carries_as_messages():
    fed, _ = _federation(None)
    few = LocalEngine().run(fed, Bristle(fanout=1, eval_samples=50))
    many = LocalEngine().run(fed, Bristle(fanout=3, eval_samples=50))
    for trace, fanout in ((few, 1), (many, 3)):
        sent = trace.counts["messages"]
        assert sent >= trace.counts["accepted"] * (2 + fanout)  # down, up, and the peers
        assert trace.rows[-1]["bytes_sent"] == sent * fed.initial_model().nbytes


def test_bristle_refuses_bad_parameters():
    with pytest.raises(ValueError, match="fanout"):
        Bristle(fanout=0)


def test_bucketing_averages_buckets_before_the_block():
    block = RobustBlock("median", 0.25, bucket=2, seed=0)
    deltas = [np.array([1.0]), np.array([1.0]), np.array([1.0]), np.array([1.0])]
    direction, influence = block(deltas, [0.25] * 4)
    assert direction.tolist() == [1.0] and influence.tolist() == [1.0] * 4
    bad = RobustBlock("krum", 0.25, bucket=2, seed=0)
    _, influence = bad(
        [
            np.array([0.0]),
            np.array([0.1]),
            np.array([50.0]),
            np.array([0.2]),
            np.array([0.0]),
            np.array([0.1]),
        ],
        [1.0] * 6,
    )
    assert sorted(influence.tolist()).count(1.0) == 2  # Krum keeps one bucket of two
    with pytest.raises(ValueError, match="robust_bucket"):
        RobustBlock("median", 0.25, bucket=0)


def test_fedbuff_takes_a_bucket_size():
    from adaptloop.distributed import FedBuff

    assert FedBuff(robust="median", robust_bucket=2).params()["robust_bucket"] == 2


# -- Bristle from an experiment file ----------------------------------------------------------
FILE = """
seed = 2
[stream]
kind = "hyperplane"
concepts = [0]
n_features = 4
mag_change = 0.0
noise = 0.05
[federation]
clients = 8
samples_per_client = 100
class_skew = 0.5
duration = 60.0
eval_every = 10.0
learner = { kind = "frozen_body", lr = 0.5, body_hidden = 6, body_samples = 80, body_epochs = 30 }
[attack]
kind = "sign_flip"
fraction = 0.25
scale = 4.0
[rules.krum]
kind = "fedbuff"
buffer_size = 4
robust = "krum"
[rules.bristle]
kind = "bristle"
fanout = 4
eval_samples = 20
validation_samples = 40
"""


def _rows(X: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in np.ascontiguousarray(X)}


def test_an_experiment_file_pretrains_the_body_on_rows_no_client_holds():
    from adaptloop.config import build_federation, build_rules, parse_experiment

    experiment = parse_experiment(FILE, "bristle.toml")
    federation = build_federation(experiment)
    learner = federation.learner
    assert isinstance(learner, FrozenBodyClassifier) and learner.lr == 0.5
    body_rows = federation.data.public_part("learner")
    validation_rows = federation.data.public_part("rules")
    X, y = body_rows(80)
    expected = pretrain_body(X, y, n_classes=2, hidden=6, epochs=30, seed=2)
    assert np.array_equal(learner.body.weights, expected.weights)
    held = set()
    for shard in federation.data.shards:
        for Xs, _ in (*shard.train, *shard.test):
            held |= _rows(Xs)
    rule = build_rules(experiment, federation.data)["bristle"]
    Xv, _ = rule.validation
    assert len(Xv) == 40 and np.array_equal(Xv, validation_rows(40)[0])
    assert not _rows(X) & held and not _rows(Xv) & held  # no client holds them
    assert not _rows(X) & _rows(Xv)  # the body's rows are not the validation sample's
    again = build_rules(experiment)["bristle"]  # drawn again without the federation's data
    assert np.array_equal(again.validation[0], Xv)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        ("body_samples = 0", "federation.learner.body_samples: must be >= 1"),
        ('body_samples = "80"', "federation.learner.body_samples: must be an integer"),
        ("body_samples = 80, body_hidden = 0", "federation.learner.body_hidden: must be >= 1"),
    ],
)
def test_bad_frozen_body_settings_name_the_key(wrong, message):
    from adaptloop.config import ExperimentError, parse_experiment

    text = FILE.replace("body_hidden = 6, body_samples = 80", wrong)
    with pytest.raises(ExperimentError, match=message):
        parse_experiment(text, "bristle.toml")


def test_bad_validation_samples_and_a_frozen_body_without_public_rows_name_the_key():
    from adaptloop.config import ExperimentError, build_learners, parse_experiment

    with pytest.raises(ExperimentError, match="rules.bristle.validation_samples: must be >= 0"):
        parse_experiment(FILE.replace("validation_samples = 40", "validation_samples = -1"))
    prequential = parse_experiment(
        '[stream]\nkind = "sea"\n[learners.f]\nkind = "frozen_body"\n', "sea.toml"
    )
    with pytest.raises(ExperimentError, match="learners.f: public: no function giving public"):
        build_learners(prequential, prequential_info())
    with pytest.raises(ValueError, match="validation or validation_samples, not both"):
        Bristle(validation=_public(), validation_samples=5, public=lambda n: _public())


def prequential_info():
    from adaptloop.streams import registry as stream_registry

    return stream_registry.create("sea", n=10).info


def test_the_report_draws_and_lists_bristles_down_weighted_peers(tmp_path):
    from adaptloop.config import parse_experiment, run_experiment
    from adaptloop.report import build_report, load_results
    from adaptloop.report.figures.prequential import attack_figure
    from adaptloop.results import write_results

    experiment = parse_experiment(FILE, "bristle.toml")
    result = run_experiment(experiment)
    rules = result.federated["rules"]
    bad = {str(c) for c in rules["bristle"]["byzantine"]}
    weighed, down = (
        rules["bristle"]["weighed_by_client"],
        rules["bristle"]["down_weighted_by_client"],
    )
    assert bad and set(down) & bad and sum(weighed.values()) >= sum(down.values()) > 0
    folder = write_results(result, tmp_path / "run", experiment.source, seed=2)
    report = build_report(folder)
    names = [figure.name for figure in report.figures]
    assert "attack" in names
    assert attack_figure(load_results(folder)).axes[1].get_images()[0].get_array().shape == (2, 8)
    html = (folder / "report.html").read_text()
    assert "down-weighted Byzantine / honest" in html and "bristle" in html


def test_the_example_file_builds_bristle_on_its_frozen_body():
    """examples/byzantine.toml (built, not run: tests/test_cli.py parses every example)."""
    from pathlib import Path

    from adaptloop.config import build_federation, build_rules, load_experiment

    experiment = load_experiment(Path(__file__).resolve().parents[1] / "examples/byzantine.toml")
    federation = build_federation(experiment)
    rules = build_rules(experiment, federation.data)
    assert isinstance(federation.learner, FrozenBodyClassifier) and federation.attack is not None
    assert len(rules["bristle"].validation[1]) == 1000
    assert {rules[name].robust for name in ("fedavg_median", "fedbuff_krum")} == {"median", "krum"}
