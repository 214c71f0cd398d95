"""adaptloop.distributed on Ray: clients are actors; a killed actor is failed, restarted and
rejoins; the command line runs a federated experiment with --engine ray."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from adaptloop.cli import app
from adaptloop.distributed import FedBuff, Federation, make_federated_data
from adaptloop.distributed.ray_engine import RayEngine
from adaptloop.learners import LogisticRegression, MLPClassifier


@pytest.fixture(scope="module")
def engine():
    engine = RayEngine(time_unit_s=0.01, local_cpus=2)
    yield engine
    engine.close()


def _federation(duration: float, learner=None, timeout: float = 100.0) -> Federation:
    data = make_federated_data(
        "hyperplane",
        clients=3,
        samples_per_client=300,
        concepts=[0],
        drift_at=[],
        class_skew=1.0,
        seed=2,
        n_features=5,
        mag_change=0.0,
        noise=0.05,
    )
    return Federation(
        data,
        learner or LogisticRegression(lr=0.1, standardize=False),
        duration=duration,
        eval_every=10.0,
        slow_fraction=0.34,
        slow_factor=5.0,
        timeout=timeout,
        restart_after=5.0,
    )


def test_the_ray_engine_runs_a_torch_mlp(engine):
    # first: the actors start with torch loaded once; the runs after this one reuse them
    mlp = MLPClassifier(n_classes=2, hidden=(16,), lr=0.01, seed=0)
    fed = _federation(duration=200.0, learner=mlp, timeout=float("inf"))
    trace = engine.run(fed, FedBuff(buffer_size=2))
    assert trace.counts["accepted"] > 10 and trace.failed_clients == []
    first, last = trace.rows[0]["accuracy"], trace.rows[-1]["accuracy"]
    assert last > 0.85 and last > first + 0.1


def test_a_killed_actor_is_failed_restarted_and_rejoins(engine):
    fed = _federation(duration=300.0)
    killed: dict[str, object] = {}

    def kill_once(t: float) -> None:
        if t >= 40.0 and not killed:
            killed["actor"] = engine.actors[1]
            engine.ray.kill(engine.actors[1], no_restart=True)

    trace = engine.run(fed, FedBuff(buffer_size=2, local_steps=3), kill_once)
    assert killed and engine.actors[1] is not killed["actor"]  # a new actor
    kinds = [(kind, client) for _, kind, client in trace.events]
    assert kinds == [("failed", 1), ("rejoined", 1)]
    rejoined_at = trace.events[1][0]
    assert trace.last_update_at[1] > rejoined_at  # it delivered again after rejoining
    assert trace.failed_clients == [] and trace.rows[-1]["failed"] == 0
    counts = trace.counts
    assert counts["accepted"] == sum(trace.accepted_by_client.values())
    assert counts.get("duplicate", 0) == 0
    assert trace.rows[-1]["time"] == 300.0 and trace.rows[-1]["accuracy"] > 0.75


EXPERIMENT = """
name = "fed_ray"
seed = 2
[stream]
kind = "hyperplane"
concepts = [0]
n_features = 5
mag_change = 0.0
[federation]
clients = 2
samples_per_client = 200
duration = 60.0
eval_every = 10.0
learner = { kind = "logistic", lr = 0.1, standardize = false }
[engine]
time_unit_s = 0.02
[rules.fedbuff]
kind = "fedbuff"
buffer_size = 2
[evaluation]
target = 0.7
"""


def test_cli_runs_a_federated_experiment_on_ray(engine, tmp_path):
    path = tmp_path / "fed.toml"
    path.write_text(EXPERIMENT)
    out = tmp_path / "out"
    args = ["run", str(path), "--out", str(out), "--engine", "ray", "--no-report"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["federated"]["engine"] == "ray"
    rule = summary["federated"]["rules"]["fedbuff"]
    assert rule["updates"] > 10 and rule["wall_seconds"] >= 60 * 0.02


def test_participation_and_steered_steps_are_the_same_on_ray(engine):
    # the rounds' participants depend on the seed and the round only; the options of a task
    # (scale, correction, batch size) cross to the actors
    from adaptloop.distributed import LocalEngine
    from adaptloop.distributed.participation import Participation
    from adaptloop.distributed.rules import FedAMD, ScaffoldM

    fed = _federation(duration=150.0, timeout=float("inf"))
    fed.participation = Participation("bernoulli", probabilities=(1.0, 0.5, 0.0))
    for rule in (ScaffoldM(3, 2, beta=0.5), FedAMD(3, 2, anchor_probability=0.3)):
        ray_trace = engine.run(fed, rule)
        local = LocalEngine().run(fed, type(rule)(**rule.params()))
        for trace in (ray_trace, local):
            assert set(trace.accepted_by_client) == {0, 1}  # client 2 is never present
            assert trace.rows[-1]["accuracy"] > trace.rows[0]["accuracy"] + 0.1


def test_decentralised_rules_run_on_ray_and_count_their_messages(engine):
    from adaptloop.distributed import DADAO, DFedSAM, Gossip, MoDeST

    fed = _federation(duration=80.0)
    model_bytes = fed.initial_model().nbytes
    rules = {
        "dfedsam": DFedSAM(2, rho=0.05, gossip_steps=2, topology="ring"),  # SAM on the actors
        "modest": MoDeST(2, 1, 2),
        "gossip": Gossip(2, topology="ring"),
        "dadao": DADAO(topology="ring", lr=3.2, smoothness=1.0, strong_convexity=0.1),
    }
    for name, rule in rules.items():
        trace = engine.run(fed, rule)
        assert trace.counts["accepted"] > 3 and trace.failed_clients == [], name
        assert trace.rows[-1]["bytes_sent"] == trace.counts["messages"] * model_bytes > 0, name
        assert 0 < trace.rows[-1]["accuracy_local"] <= 1


def test_bristle_runs_its_client_hook_on_the_actors(engine):
    from adaptloop.distributed.rules.bristle import Bristle
    from adaptloop.learners.models.frozen_body import FrozenBodyClassifier, pretrain_body

    fed = _federation(duration=150.0)
    X, y = fed.data.shards[0].train[0]
    body = pretrain_body(X, y, n_classes=2, hidden=8, seed=0)
    fed = _federation(duration=150.0, learner=FrozenBodyClassifier(body, 2, lr=0.5))
    rule = Bristle(fanout=2, eval_samples=50)
    trace = engine.run(fed, rule)
    assert trace.counts["accepted"] > 5 and trace.failed_clients == []
    assert trace.rows[-1]["accuracy"] > 0.8 and len(rule.models) == 3
    # the receivers' say over their peers travels back from the actors into the trace
    assert trace.influence and {c for _, c, _ in trace.influence} <= {0, 1, 2}
