"""Decentralised learning: topologies and mixing matrices, DFedSAM (SAM local steps, multiple
gossip steps), MoDeST, DADAO, gossip over a topology with variance-corrected merges, and the
messages and bytes every rule sends."""

from __future__ import annotations

import heapq

import numpy as np
import pytest

from adaptloop.config import load_experiment, run_experiment
from adaptloop.distributed import (
    DADAO,
    DFedSAM,
    FedAvg,
    FedBuff,
    Federation,
    Gossip,
    LocalEngine,
    MoDeST,
    make_federated_data,
    run_federation,
)
from adaptloop.distributed.aggregate import variance_corrected
from adaptloop.distributed.client import Client
from adaptloop.distributed.rules.base import ServerView, Update
from adaptloop.distributed.topology import (
    Network,
    Topology,
    is_connected,
    metropolis_hastings,
    spectral_gap,
)
from adaptloop.learners import LogisticRegression
from adaptloop.parameters import ParameterError

KINDS = ["complete", "ring", "torus", "regular", "erdos_renyi"]


def _federation(clients: int = 8, duration: float = 60.0, **kwargs) -> Federation:
    data = make_federated_data(
        "hyperplane",
        clients=clients,
        samples_per_client=200,
        concepts=[0],
        seed=3,
        n_features=5,
        mag_change=0.0,
        noise=0.05,
        class_skew=0.5,
    )
    settings = {"duration": duration, "eval_every": 10.0, "slow_fraction": 0.0, **kwargs}
    return Federation(data, LogisticRegression(lr=0.1, standardize=False), **settings)


# -- topologies ------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", [2, 7, 32])
def test_every_topology_is_connected_and_its_mixing_matrix_doubly_stochastic(kind, n):
    rng = np.random.default_rng(n)
    topology = Topology(kind, degree=3 if n % 2 == 0 else 4, edge_probability=0.3)
    adj = topology.adjacency(n, rng)
    assert adj.shape == (n, n) and not adj.diagonal().any() and (adj == adj.T).all()
    assert is_connected(adj)
    W = metropolis_hastings(adj)
    assert np.allclose(W.sum(axis=0), 1) and np.allclose(W.sum(axis=1), 1)
    assert np.allclose(W, W.T) and (W >= 0).all() and (W.diagonal() > 0).all()
    assert (W[~adj & ~np.eye(n, dtype=bool)] == 0).all()  # only neighbours mix
    assert 0 < spectral_gap(W) <= 1 + 1e-9


def test_the_graphs_have_their_degrees_and_sparser_graphs_mix_slower():
    rng = np.random.default_rng(0)
    degrees = {k: Topology(k, degree=4).adjacency(32, rng).sum(axis=1) for k in KINDS[:4]}
    assert set(degrees["ring"]) == {2} and set(degrees["torus"]) == {4}
    assert set(degrees["regular"]) == {4} and set(degrees["complete"]) == {31}
    gaps = {k: spectral_gap(metropolis_hastings(Topology(k).adjacency(32, rng))) for k in KINDS}
    assert gaps["ring"] < gaps["torus"] < gaps["complete"]


def test_a_time_varying_topology_is_drawn_again_and_a_fixed_one_is_kept():
    fixed, varying = (
        Network(Topology("regular", degree=3, time_varying=t), np.random.default_rng(1))
        for t in (False, True)
    )
    seen = {False: set(), True: set()}
    for _ in range(5):
        for net, flag in ((fixed, False), (varying, True)):
            net.refresh(list(range(10)))
            seen[flag].add(tuple(map(tuple, net.edges)))
    assert len(seen[False]) == 1 and len(seen[True]) > 1


def test_mixing_keeps_the_average_and_reaches_consensus():
    net = Network(Topology("ring"), np.random.default_rng(0))
    net.refresh(list(range(6)))
    models = {i: np.array([float(i), -2.0 * i]) for i in range(6)}
    mixed, messages = net.mix(models, steps=200)
    assert messages == 200 * 12
    assert np.allclose(np.mean(list(mixed.values()), axis=0), [2.5, -5.0])
    assert max(np.abs(m - [2.5, -5.0]).max() for m in mixed.values()) < 1e-6


def test_bad_topology_settings_are_refused_with_their_name():
    with pytest.raises(ParameterError, match="kind"):
        Topology("star")
    with pytest.raises(ValueError, match="degree"):
        Topology("regular", degree=3).adjacency(7, np.random.default_rng(0))
    with pytest.raises(ValueError, match="edge_probability"):
        Topology("erdos_renyi", edge_probability=0.001).adjacency(30, np.random.default_rng(0))
    with pytest.raises(ParameterError, match="DFedSAM.topology"):
        DFedSAM(topology="star")


# -- bytes sent ------------------------------------------------------------------------------
def test_every_rule_records_its_messages_and_bytes():
    fed = _federation()
    rules = {
        "fedavg": FedAvg(4, 2),
        "fedbuff": FedBuff(3, 2),
        "gossip": Gossip(2),
        "dfedsam": DFedSAM(2, topology="ring"),
        "modest": MoDeST(4, 1, 2),
        "dadao": DADAO(topology="ring", lr=3.2, smoothness=1.0, strong_convexity=0.1),
    }
    result = run_federation(fed, rules, LocalEngine(), target=0.6)
    model_bytes = fed.initial_model().nbytes
    records = result.records.to_pylist()
    for name, per in result.federated["rules"].items():
        rows = [r for r in records if r["learner"] == name]
        sent = [r["bytes_sent"] for r in rows]
        assert sent == sorted(sent) and sent[-1] == per["bytes_sent"] > 0, name
        assert per["bytes_sent"] == per["messages"] * model_bytes
        assert per["decentralised"] == (name in ("gossip", "dfedsam", "modest", "dadao"))
        assert per["bytes_to_target"] is None or per["bytes_to_target"] <= per["bytes_sent"]
    fedavg = result.federated["rules"]["fedavg"]
    # a server rule: one model down per task, one update up per delivery
    assert fedavg["messages"] >= 2 * fedavg["updates"]


def test_gossip_sends_two_messages_per_exchange_and_dfedsam_two_per_edge_and_step():
    fed = _federation()
    gossip = LocalEngine().run(fed, Gossip(2))
    assert gossip.counts["messages"] == 2 * gossip.counts["accepted"]
    trace = LocalEngine().run(fed, DFedSAM(2, rho=0.0, gossip_steps=3, topology="ring"))
    rounds = trace.rows[-1]["version"] - 1  # the last version is the final merge
    assert rounds > 2 and trace.counts["messages"] == rounds * 3 * 2 * 8


# -- DFedSAM ---------------------------------------------------------------------------------
def test_a_sam_step_is_the_perturbed_points_step_applied_at_the_start():
    fed = _federation()
    split, shard = fed.split, fed.data.shards[0]
    start = split.flatten(split.template) + 0.1
    plain = Client(0, fed.learner, shard, split, batch_size=16, seed=0)
    sam = Client(0, fed.learner, shard, split, batch_size=16, seed=0)
    d_plain, n_plain = plain.run(start, 1, 0.0)
    d_sam, n_sam = sam.run(start, 1, 0.0, sam_rho=0.5)
    assert n_plain == n_sam == 16  # the batch counts once
    # by hand: the same batch, a step from the perturbed point, applied at the start
    ascent = np.zeros_like(d_plain)
    for a, b in split.codec.spans:  # the parameters only
        ascent[a:b] = -d_plain[a:b]
    perturbed = start + 0.5 * ascent / np.linalg.norm(ascent)
    again = Client(0, fed.learner, shard, split, batch_size=16, seed=0)
    d_at_perturbed, _ = again.run(perturbed, 1, 0.0)
    assert np.allclose(split.statistics.strip(d_sam), split.statistics.strip(d_at_perturbed))
    assert not np.allclose(d_sam, d_plain)
    zero, _ = Client(0, fed.learner, shard, split, batch_size=16, seed=0).run(
        start, 1, 0.0, sam_rho=0
    )
    assert np.allclose(zero, d_plain)


def test_more_gossip_steps_keep_the_nodes_models_closer():
    fed = _federation(duration=40.0)

    def spread(rule: DFedSAM) -> float:
        LocalEngine().run(fed, rule)
        models = np.stack(list(rule.node_models().values()))
        return float(np.linalg.norm(models - models.mean(axis=0), axis=1).mean())

    one = spread(DFedSAM(3, rho=0.05, gossip_steps=1, topology="ring"))
    many = spread(DFedSAM(3, rho=0.05, gossip_steps=5, topology="ring"))
    assert many < 0.5 * one


def test_decentralised_rules_learn_and_record_their_nodes_accuracy():
    fed = _federation(duration=100.0)
    for rule in (
        DFedSAM(3, rho=0.05, topology="torus", time_varying=True),
        Gossip(3, topology="regular", degree=3),
        MoDeST(4, 2, 3),
    ):
        rows = LocalEngine().run(fed, rule).rows
        assert rows[-1]["accuracy"] > rows[0]["accuracy"] + 0.1, type(rule).__name__
        assert 0 < rows[-1]["accuracy_local"] <= 1


def test_a_failed_node_leaves_the_graph_and_rejoins_from_the_average():
    from adaptloop.distributed import Fault

    fed = _federation(duration=80.0, faults=(Fault(2, 15.0, "die"),), restart_after=20.0)
    trace = LocalEngine().run(fed, DFedSAM(2, topology="ring"))
    assert trace.counts["failures"] == 1 and trace.counts["rejoins"] == 1
    assert trace.accepted_by_client[2] > 0 and trace.rows[-1]["accuracy"] > 0.6


# -- MoDeST ----------------------------------------------------------------------------------
def test_modest_trains_a_sample_a_round_and_counts_the_aggregators_messages():
    rule = MoDeST(sample_size=3, aggregators=2, local_steps=1)
    rng = np.random.default_rng(0)
    view = ServerView(0.0, np.zeros(1), 0, frozenset(range(6)), frozenset(), np.ones(6) / 6, rng)
    sample = [a.client for a in rule.start(view).dispatch]
    assert len(sample) == 3
    plan = None
    for k, c in enumerate(sample):
        busy = frozenset(sample[k + 1 :])
        view = ServerView(1.0 + k, np.zeros(1), 0, view.alive, busy, view.weights, rng)
        plan = rule.on_update(Update(k, c, np.array([float(k)]), 0, 10, 1, 0.0, 1.0 + k), view)
    assert plan.model.tolist() == [1.0] and len(plan.dispatch) == 3
    nxt = [a.client for a in plan.dispatch]
    aggregators = nxt[:2]
    up = sum(1 for c in sample for g in aggregators if g != c)
    down = sum(1 for g in aggregators for c in nxt if c != g)
    assert plan.messages == up + down


def test_modest_with_a_success_fraction_closes_rounds_without_the_stragglers():
    fed = _federation(duration=100.0, slow_fraction=0.25, slow_factor=20.0)
    waits = LocalEngine().run(fed, MoDeST(8, 1, 2, success_fraction=1.0))
    closes = LocalEngine().run(fed, MoDeST(8, 1, 2, success_fraction=0.5))
    assert closes.rows[-1]["version"] > 2 * waits.rows[-1]["version"]


# -- DADAO -----------------------------------------------------------------------------------
def test_dadao_solves_a_decentralised_quadratic_at_its_papers_rate():
    # f_i(x) = |x - c_i|^2 / 2 on a ring: the optimum of the sum is the mean of the c_i
    n, rng = 8, np.random.default_rng(0)
    c = rng.normal(size=(n, 3))
    rule = DADAO(topology="ring", lr=1.0, smoothness=1.0, strong_convexity=1.0)
    weights = np.ones(n) / n

    def view(t: float) -> ServerView:
        return ServerView(t, np.zeros(3), 0, frozenset(range(n)), frozenset(), weights, rng)

    plan = rule.start(view(0.0))
    events = [(rng.exponential(), 0, a.client, a.model) for a in plan.dispatch]
    events += [(t, 1, -1, None) for t in plan.timers]
    heapq.heapify(events)
    k = 0
    while events:
        t, kind, i, x = heapq.heappop(events)
        if t > 150.0:
            break
        if kind == 0:
            plan = rule.on_update(Update(k, i, c[i] - x, 0, 1, 1, 0.0, t), view(t))
            k += 1
            a = plan.dispatch[0]
            heapq.heappush(events, (t + rng.exponential(), 0, a.client, a.model))
        else:
            heapq.heappush(events, (rule.on_timer(view(t)).timers[0], 1, -1, None))
    models = np.stack(list(rule.node_models().values()))
    assert np.abs(models - c.mean(axis=0)).max() < 1e-3


def test_dadao_learns_a_federation_and_reaches_consensus():
    fed = _federation(duration=100.0)
    rule = DADAO(topology="torus", lr=3.2, smoothness=1.0, strong_convexity=0.1)
    rows = LocalEngine().run(fed, rule).rows
    assert rows[-1]["accuracy"] > rows[0]["accuracy"] + 0.1
    assert abs(rows[-1]["accuracy_local"] - rows[-1]["accuracy"]) < 0.02


# -- variance correction ---------------------------------------------------------------------
def test_variance_corrected_merges_keep_each_layers_variance():
    rng = np.random.default_rng(0)
    models = [rng.normal(0, 1, 40), rng.normal(0, 3, 40)]
    layers = ((0, 20), (20, 40))
    merged = variance_corrected(0.5 * (models[0] + models[1]), models, [0.5, 0.5], layers)
    for a, b in layers:
        target = np.mean([m[a:b].var() for m in models])
        assert merged[a:b].var() == pytest.approx(target)
        plain = 0.5 * (models[0][a:b] + models[1][a:b])
        assert merged[a:b].mean() == pytest.approx(plain.mean())


def test_gossip_of_independent_inits_keeps_each_layers_variance_only_when_corrected():
    layers = ((0, 30), (30, 60))
    rng = np.random.default_rng(0)
    start = np.concatenate([rng.normal(0, 1, 30), rng.normal(0, 0.1, 30)])

    def variances(correct: bool) -> np.ndarray:
        rule = Gossip(1, independent_init=True, variance_correction=correct)
        view = ServerView(
            0.0,
            start,
            0,
            frozenset(range(8)),
            frozenset(),
            np.ones(8) / 8,
            np.random.default_rng(1),
            layers=layers,
        )
        rule.start(view)
        for k in range(200):  # no training: every change is a merge
            rule.on_update(Update(k, k % 8, np.zeros(60), 0, 1, 1, 0.0, 1.0), view)
        models = list(rule.node_models().values())
        return np.array([[m[a:b].var() for a, b in layers] for m in models]).mean(axis=0)

    initial = np.array([start[a:b].var() for a, b in layers])
    assert (variances(False) < 0.5 * initial).all()  # the vanishing variance
    assert variances(True) == pytest.approx(initial, rel=1e-6)


# -- the experiment file ---------------------------------------------------------------------
EXPERIMENT = """
seed = 1
[stream]
kind = "hyperplane"
concepts = [0]
n_features = 5
mag_change = 0.0
[federation]
clients = 8
samples_per_client = 200
duration = 40.0
eval_every = 10.0
slow_fraction = 0.0
learner = { kind = "logistic", lr = 0.1, standardize = false }
[rules.server]
kind = "fedavg"
clients_per_round = 4
[rules.ring]
kind = "dfedsam"
rho = 0.05
gossip_steps = 2
topology = "TOPOLOGY"
[evaluation]
target = 0.7
"""


def test_an_experiment_file_chooses_server_or_none_and_the_topology(tmp_path):
    path = tmp_path / "decentral.toml"
    path.write_text(EXPERIMENT.replace("TOPOLOGY", "torus"))
    result = run_experiment(load_experiment(path))
    rules = result.federated["rules"]
    assert rules["ring"]["params"]["topology"] == "torus" and rules["ring"]["decentralised"]
    assert not rules["server"]["decentralised"]
    assert "bytes_sent" in result.records.column_names
    path.write_text(EXPERIMENT.replace("TOPOLOGY", "star"))
    with pytest.raises(Exception, match=r"rules\.ring\.topology"):
        load_experiment(path)


def test_the_docs_page_python_example_runs(capsys):
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "decentralised.md").read_text()
    (snippet,) = re.findall(r"```python\n(.*?)```", page, flags=re.DOTALL)
    exec(compile(snippet, "docs/decentralised.md", "exec"), {})
    printed = capsys.readouterr().out.split()
    assert printed[::3] == ["fedavg", "gossip", "dfedsam_mgs", "modest"]


def test_under_a_participation_model_only_present_nodes_train_and_gossip():
    from adaptloop.distributed.participation import Participation

    fed = _federation(duration=100.0)
    fed.participation = Participation("bernoulli", probabilities=(0.0, 0.0) + (0.7,) * 6)
    for rule in (DFedSAM(2, rho=0.05, topology="ring"), MoDeST(3, 1, 2), Gossip(2)):
        trace = LocalEngine().run(fed, rule)
        trained = set(trace.accepted_by_client)
        if isinstance(rule, Gossip):  # asynchronous gossip has no rounds: everyone trains
            assert trained == set(range(8))
            continue
        assert trained == set(range(2, 8)), type(rule).__name__  # 0 and 1 never show up
        assert trace.rows[-1]["accuracy"] > trace.rows[0]["accuracy"] + 0.1
    fed.participation = Participation("bernoulli", probabilities=(0.0,) * 8)
    stalled = LocalEngine().run(fed, DFedSAM(2, topology="ring"))  # nobody, ever: it waits
    assert stalled.counts.get("accepted", 0) == 0 and stalled.counts.get("messages", 0) == 0
