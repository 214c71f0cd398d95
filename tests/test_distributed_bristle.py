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
from adaptloop.learners.models.frozen_body import FrozenBodyClassifier, pretrain_body
from adaptloop.distributed.sharing import StateSplit
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


def test_a_hooked_task_returns_its_delta_against_the_model_it_was_sent():
    client = _client()
    sent = client.split.flatten(client.split.template)
    shifted = _trained(_client())
    delta, _ = client.run(sent, 1, 0.0, hook=lambda c, model, time: shifted)
    assert not np.allclose(delta, 0.0)
    assert np.linalg.norm(sent + delta - shifted) < np.linalg.norm(delta)


def _federation(attack: Attack | None, seed: int = 1) -> tuple[Federation, tuple]:
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
    return Federation(data, learner, duration=150.0, eval_every=10.0, seed=seed, attack=attack), (
        X,
        y,
    )


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
