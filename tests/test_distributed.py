"""adaptloop.distributed on the in-process engine: states, shards, rules, faults, results."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from adaptloop.cli import app
from adaptloop.config import ExperimentError, build_federation, parse_experiment
from adaptloop.distributed import (
    Fault,
    FedAvg,
    FedBuff,
    FedCompass,
    Federation,
    FedFix,
    FedStale,
    Gossip,
    LocalEngine,
    Server,
    StateCodec,
    make_federated_data,
    run_federation,
)
from adaptloop.distributed.rules.base import ServerView, Update
from adaptloop.distributed.run import time_to
from adaptloop.learners import LogisticRegression
from adaptloop.learners.base import BaseClassifier, StateRoles


def _data(clients: int = 8, seed: int = 1, drift_at=(150.0,), jitter: float = 10.0):
    return make_federated_data(
        "hyperplane",
        clients=clients,
        samples_per_client=300,
        concepts=[0, 1][: len(drift_at) + 1],
        drift_at=list(drift_at),
        drift_jitter=jitter,
        class_skew=0.5,
        seed=seed,
        n_features=5,
        mag_change=0.0,
        noise=0.05,
    )


def _federation(duration: float = 300.0, **kwargs) -> Federation:
    options = dict(duration=duration, eval_every=5.0, slow_fraction=0.25, slow_factor=10.0)
    options.update(kwargs)
    return Federation(_data(), LogisticRegression(lr=0.1, standardize=False), **options)


# -- states ----
def test_codec_round_trips_a_learner_state_and_averages_counts():
    model = LogisticRegression(n_classes=3)
    rng = np.random.default_rng(0)
    model.learn(rng.normal(size=(20, 4)).astype(np.float32), rng.integers(0, 3, 20))
    state = model.state_dict()
    codec = StateCodec(state)
    vector = codec.flatten(state)
    back = codec.unflatten(vector)
    assert np.array_equal(back["learned"]["theta"], state["learned"]["theta"])
    assert back["learned"]["count"] == 20 and isinstance(back["learned"]["count"], int)
    clone = LogisticRegression(n_classes=3)
    clone.load_state_dict(back)
    X = rng.normal(size=(5, 4)).astype(np.float32)
    assert np.array_equal(clone.predict(X), model.predict(X))


def test_codec_names_what_cannot_be_averaged_or_does_not_fit():
    with pytest.raises(ValueError, match="'learned.mode' is a str"):
        StateCodec({"learned": {"w": np.ones(2), "mode": "adam"}})
    with pytest.raises(ValueError, match="'flag' is a bool"):
        StateCodec({"flag": True})
    codec = StateCodec({"w": np.ones(2)})
    with pytest.raises(ValueError, match=r"'w' has shape \(3,\), expected \(2,\)"):
        codec.flatten({"w": np.ones(3)})
    with pytest.raises(ValueError, match="state has no entry 'w'"):
        codec.flatten({"v": np.ones(2)})


class _Moody(BaseClassifier):
    """A classifier whose state holds a string: it cannot be federated."""

    def __init__(self, n_classes: int = 2, seed: int = 0):
        super().__init__(task="binary", n_classes=n_classes)
        self.seed = seed
        self.w = np.zeros(2)

    def _learn(self, X, y):
        self.w += 1

    def _predict_proba(self, X):
        return np.full((len(X), 2), 0.5)

    def _get_state(self):
        return {"w": self.w.copy(), "mood": "calm"}

    def _set_state(self, state):
        self.w = state["w"]

    def state_roles(self) -> StateRoles:
        return StateRoles()  # declares "mood" shared: it cannot be


def test_a_learner_with_non_numeric_state_is_refused_by_name():
    with pytest.raises(ValueError, match="'learned.mood' is a str"):
        Federation(_data(clients=2), _Moody())


# -- shards ----
def test_shards_are_non_iid_with_their_own_drift_times():
    data = _data(clients=8)
    mixes = np.array([s.class_mix for s in data.shards])
    assert mixes.max() - mixes.min() > 0.5  # very different class mixes
    ones = [float(s.train[0][1].mean()) for s in data.shards]
    assert max(ones) - min(ones) > 0.3
    times = [s.drift_times[0] for s in data.shards]
    assert len(set(times)) == 8 and all(140.0 <= t <= 160.0 for t in times)
    assert data.shards[0].concept_at(0.0) == 0 and data.shards[0].concept_at(200.0) == 1
    again = _data(clients=8)
    assert np.array_equal(again.shards[3].train[1][0], data.shards[3].train[1][0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"concepts": [0, 1], "drift_at": []}, "one more entry than drift_at"),
        ({"concepts": [0, 1, 2], "drift_at": [20.0, 10.0]}, "increasing"),
        ({"kind": "elec2"}, "has no 'concepts' parameter"),
        ({"kind": "nope"}, "unknown stream 'nope'"),
        ({"class_skew": 0.0}, "class_skew: must be > 0, got 0.0"),
        ({"clients": 0}, "clients: must be >= 1, got 0"),
        ({"clients": 2.0}, "clients: must be an integer, got 2.0"),
    ],
)
def test_bad_shard_settings_are_refused_by_name(kwargs, message):
    settings = dict(kind="sea", clients=2, samples_per_client=50, concepts=[0], drift_at=[])
    settings.update(kwargs)
    with pytest.raises(ValueError, match=message):
        make_federated_data(**settings)


# -- rules and server ----
def _view(model, version=0, alive=(0, 1, 2, 3), busy=()):
    n = len(alive)
    return ServerView(
        0.0,
        np.asarray(model, float),
        version,
        frozenset(alive),
        frozenset(busy),
        np.ones(n) / n,
        np.random.default_rng(0),
    )


def _update(uid, client, delta, base=0, n=10):
    return Update(uid, client, np.asarray(delta, float), base, n, 1, 0.0, 1.0)


def test_fedbuff_weights_stale_deltas_down_and_steps_after_k():
    rule = FedBuff(buffer_size=2, server_lr=1.0)
    assert rule.on_update(_update(0, 0, [4.0], base=8), _view([0.0], version=8)).model is None
    plan = rule.on_update(_update(1, 1, [4.0], base=0), _view([0.0], version=8))
    # fresh 4 * 1 and stale (tau = 8) 4 / sqrt(9), averaged over the buffer of 2
    assert plan.model.tolist() == pytest.approx([(4.0 + 4.0 / 3.0) / 2])


def test_fedfix_steps_on_its_window_with_data_weights():
    rule = FedFix(window=10.0)
    assert rule.start(_view([0.0])).timers == [10.0]
    rule.on_update(_update(0, 0, [8.0]), _view([0.0]))
    rule.on_update(_update(1, 2, [4.0]), _view([0.0]))
    plan = rule.on_timer(_view([1.0]))
    assert plan.model.tolist() == pytest.approx([1.0 + 8.0 / 4 + 4.0 / 4])
    assert rule.on_timer(_view([1.0])).model is None  # nothing arrived in this window


def test_fedstale_reuses_the_memory_of_clients_that_did_not_deliver():
    stale, fresh_only = FedStale(buffer_size=1, beta=1.0), FedStale(buffer_size=1, beta=0.0)
    for rule in (stale, fresh_only):
        rule.on_update(_update(0, 1, [4.0]), _view([0.0]))  # client 1 delivers once
    # next step: only client 0 delivers 0; with beta = 1 client 1's old delta still counts
    assert stale.on_update(_update(1, 0, [0.0]), _view([0.0])).model[0] == pytest.approx(1.0)
    assert fresh_only.on_update(_update(1, 0, [0.0]), _view([0.0])).model[0] == 0.0


def test_gossip_sends_each_client_its_own_model_and_merges_once_at_the_end():
    rule = Gossip(local_steps=1, peers=1)
    plan = rule.start(_view([0.0], alive=(0, 1, 2)))
    assert all(a.model is not None for a in plan.dispatch)
    rule.on_update(_update(0, 0, [3.0]), _view([0.0], alive=(0, 1, 2), busy=(1, 2)))
    final = rule.finish(_view([0.0], alive=(0, 1, 2)))
    assert final.model.tolist() == pytest.approx([1.0])  # the 3.0 spread, then averaged


def test_server_counts_each_update_once_and_drops_late_ones():
    server = Server(FedBuff(buffer_size=1, local_steps=1), np.zeros(1), np.ones(3) / 3)
    tasks = server.start(0.0)
    assert [t.client for t in tasks] == [0, 1, 2]
    server.receive(tasks[0].task_id, np.ones(1), 5, 1.0)
    server.receive(tasks[0].task_id, np.ones(1), 5, 1.1)  # a retried delivery
    server.fail(1, 2.0)
    server.receive(tasks[1].task_id, np.ones(1), 5, 3.0)  # from a client marked failed
    assert (server.counts["accepted"], server.counts["duplicate"], server.counts["late"]) == (
        1,
        1,
        1,
    )
    assert server.version == 1 and server.model.tolist() == [1.0]
    rejoined = server.rejoin(1, 4.0)
    assert [(t.client, t.version) for t in rejoined] == [(1, 1)]
    assert np.array_equal(rejoined[0].model, server.model)  # the current global model


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (lambda: FedAvg(clients_per_round=0), r"FedAvg\.clients_per_round: must be >= 1, got 0"),
        (lambda: FedBuff(staleness="cubic"), "staleness: must be 'none', 'sqrt' or 'poly'"),
        (lambda: FedStale(beta=1.5), r"FedStale\.beta: must be <= 1, got 1\.5"),
        (lambda: FedCompass(latest_factor=0.5), r"FedCompass\.latest_factor: must be >= 1"),
        (lambda: FedFix(window=-1), r"FedFix\.window: must be > 0, got -1"),
        (lambda: Gossip(peers=True), r"Gossip\.peers: must be an integer, got True"),
    ],
)
def test_bad_rule_parameters_are_refused_by_name(rule, message):
    with pytest.raises(ValueError, match=message):
        rule()


# -- the in-process engine ----
def test_local_engine_is_deterministic_given_the_seed():
    fed = _federation(duration=60.0)
    a = LocalEngine().run(fed, FedBuff(buffer_size=4))
    b = LocalEngine().run(_federation(duration=60.0), FedBuff(buffer_size=4))
    assert [r["accuracy"] for r in a.rows] == [r["accuracy"] for r in b.rows]
    assert a.counts == b.counts


def test_fedavg_waits_for_stragglers_and_async_rules_do_not():
    fed = _federation(duration=150.0)
    sync = LocalEngine().run(fed, FedAvg(clients_per_round=8, local_steps=5))
    # every round includes the two 10x slower clients: 5 steps * 10 units each
    assert sync.rows[-1]["version"] <= 150.0 / 50.0
    fast = LocalEngine().run(fed, FedBuff(buffer_size=4, local_steps=5, server_lr=0.5))
    assert fast.rows[-1]["version"] > 10 * sync.rows[-1]["version"]
    assert time_to(fast.rows, 0.8) is not None
    assert time_to(sync.rows, 0.8) is None or time_to(fast.rows, 0.8) < time_to(sync.rows, 0.8)


def test_fedcompass_makes_updates_arrive_in_groups():
    fed = _federation(duration=200.0, jitter=0.0)
    trace = LocalEngine().run(fed, FedCompass(max_steps=10))
    updates, steps = trace.counts["accepted"], trace.rows[-1]["version"]
    assert updates >= 2.5 * steps  # groups of several clients per server step
    slow = np.flatnonzero(fed.step_times > 1.0)
    # slow clients get fewer steps, so they deliver more often than 1 per 10 fast updates
    by_client = trace.accepted_by_client
    fast_rate = np.mean([by_client[c] for c in range(8) if c not in slow])
    assert np.mean([by_client[c] for c in slow]) > fast_rate / 10


def test_failed_clients_are_marked_restarted_and_never_double_counted():
    faults = (
        Fault(client=2, at=20.0, kind="raise"),
        Fault(client=3, at=30.0, kind="hang"),
        Fault(client=4, at=40.0, kind="late"),
        Fault(client=5, at=50.0, kind="duplicate"),
        Fault(client=6, at=60.0, kind="die"),
    )
    fed = _federation(duration=200.0, timeout=60.0, restart_after=10.0, faults=faults)
    trace = LocalEngine().run(fed, FedBuff(buffer_size=4, local_steps=5))
    counts = trace.counts
    assert counts["failures"] == 4  # raise, hang, late (after the timeout), die
    assert counts["rejoins"] == 4 and trace.failed_clients == []
    assert counts["duplicate"] == 1 and counts["late"] == 1
    assert counts["accepted"] == sum(trace.accepted_by_client.values())
    assert max(r["failed"] for r in trace.rows) >= 1 and trace.rows[-1]["failed"] == 0
    assert trace.rows[-1]["accuracy"] > 0.75  # the run went on


def test_fedavg_closes_a_round_without_a_client_that_hangs():
    fed = _federation(
        duration=120.0,
        timeout=20.0,
        restart_after=None,
        slow_fraction=0.0,
        faults=(Fault(client=0, at=0.0, kind="hang"),),
    )
    trace = LocalEngine().run(fed, FedAvg(clients_per_round=8, local_steps=2))
    assert trace.counts["failures"] == 1 and trace.failed_clients == [0]
    assert trace.rows[-1]["version"] > 10


def test_run_federation_records_curves_and_drift_segments_per_rule():
    fed = _federation(duration=300.0)
    rules = {"fedavg": FedAvg(clients_per_round=4), "gossip": Gossip()}
    result = run_federation(fed, rules, LocalEngine(), target=0.8, window=25.0, after=25.0)
    table = result.records.to_pandas()
    assert set(table["learner"]) == {"fedavg", "gossip"}
    gossip = table[table["learner"] == "gossip"]
    assert gossip["position"].tolist() == list(range(0, 301, 5))
    assert gossip["accuracy_batch"].iloc[-1] > 0.8
    assert [d["learner"] for d in result.drifts] == ["fedavg", "gossip"]
    assert result.federated["rules"]["gossip"]["accuracy_after_drift"][0] is not None


# -- experiment files and the command line ----
EXPERIMENT = """
name = "fed_test"
seed = 3
[stream]
kind = "hyperplane"
concepts = [0, 1]
n_features = 5
mag_change = 0.0
[federation]
clients = 6
samples_per_client = 200
drift_at = [60.0]
duration = 120.0
eval_every = 10.0
learner = { kind = "logistic", lr = 0.1, standardize = false }
[rules.fedavg]
kind = "fedavg"
clients_per_round = 3
[rules.fedbuff]
kind = "fedbuff"
buffer_size = 3
[evaluation]
target = 0.75
window = 20.0
after = 20.0
"""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('kind = "fedbuff"', 'kind = "fedwhat"'), "rules.fedbuff.kind: unknown aggregation"),
        (("buffer_size = 3", "buffer = 3"), "rules.fedbuff.buffer: unknown parameter"),
        (("clients = 6", "clients = 0"), "federation.clients: must be >= 1, got 0"),
        (("clients = 6", "clients = 6.0"), "federation.clients: must be an integer, got 6.0"),
        (
            ("duration = 120.0", "duration = true"),
            "federation.duration: must be a number, got True",
        ),
        (("duration = 120.0", "duration = 0.0"), "federation.duration: must be > 0, got 0.0"),
        (("duration = 120.0", "timeout = -1.0"), "federation.timeout: must be > 0, got -1.0"),
        (("n_features = 5", "n = 5"), "stream.n: set by the federation"),
        (("lr = 0.1", "lr = -1.0"), r"federation\.learner\.lr: must be > 0, got -1\.0"),
        (
            (
                'kind = "hyperplane"\nconcepts = [0, 1]\nn_features = 5\nmag_change = 0.0',
                'kind = "elec2"\nconcepts = [0, 1]',
            ),
            "stream.concepts: unknown parameter",
        ),
    ],
)
def test_federated_experiment_errors_name_the_field(change, message):
    with pytest.raises(ExperimentError, match=message):
        parse_experiment(EXPERIMENT.replace(*change))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("concepts = [0, 1]", "concepts = [0]"), "federation: concepts must have one more entry"),
    ],
)
def test_federated_experiment_errors_found_when_built_name_the_field(change, message):
    with pytest.raises(ExperimentError, match=message):
        build_federation(parse_experiment(EXPERIMENT.replace(*change)))


def test_federation_section_reads_the_federation_declaration():
    experiment = parse_experiment(EXPERIMENT.replace("duration = 120.0\n", ""))
    federation = build_federation(experiment)
    defaults = inspect.signature(Federation).parameters
    assert federation.duration == defaults["duration"].default  # not a default of the file's own
    assert federation.slow_factor == defaults["slow_factor"].default
    assert federation.n_clients == 6 and federation.seed == 3
    with pytest.raises(ValueError, match="Federation.duration: must be > 0, got 0"):
        Federation(federation.data, federation.learner, duration=0)


def test_cli_runs_a_federated_experiment_into_a_results_folder(tmp_path):
    path = tmp_path / "fed.toml"
    path.write_text(EXPERIMENT)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(out), "--engine", "local"])
    assert result.exit_code == 0, result.output
    assert "time to" in result.output and "fedbuff" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["federated"]["engine"] == "local"
    assert set(summary["federated"]["rules"]) == {"fedavg", "fedbuff"}
    assert summary["position_label"] == "simulated time (units)"
    records = pq.read_table(out / "records.parquet").to_pandas()
    assert records.groupby("learner").size().to_dict() == {"fedavg": 13, "fedbuff": 13}
    assert (out / "report.html").is_file() and (out / "figures" / "stream.png").is_file()


def test_cli_refuses_an_unknown_engine(tmp_path):
    path = tmp_path / "plain.toml"
    path.write_text('[stream]\nkind = "sea"\nn = 500\n[learners.lr]\nkind = "logistic"\n')
    result = CliRunner().invoke(app, ["run", str(path), "--engine", "spark"])
    assert result.exit_code == 2
    assert "--engine: must be 'local' or 'ray', got 'spark'" in result.output
