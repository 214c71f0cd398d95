"""Partial participation: the participation models (full, Bernoulli, Markov, cyclic; seeded per
round), how clients take steered local steps, and the rules for it (FedAU, FedHyper, FedAvg-M,
SCAFFOLD-M, FedAMD) on hand-computable cases and on the in-process engine; the experiment
file's ``[participation]`` section."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from adaptloop.cli import app
from adaptloop.config import ExperimentError, parse_experiment
from adaptloop.config.build import build_federation
from adaptloop.distributed import Federation, LocalEngine, make_federated_data
from adaptloop.distributed.participation import Participation
from adaptloop.distributed.rules import FedAMD, FedAU, FedAvg, FedAvgM, FedHyper, ScaffoldM
from adaptloop.distributed.rules.base import ServerView, Update
from adaptloop.learners import LogisticRegression


def view(n=2, model=(0.0,), schedule=None):
    return ServerView(
        0.0,
        np.asarray(model, float),
        0,
        frozenset(range(n)),
        frozenset(),
        np.ones(n) / n,
        np.random.default_rng(0),
        schedule,
    )


def update(client, delta, steps=1, uid=None):
    uid = client if uid is None else uid
    return Update(uid, client, np.asarray(delta, float), 0, 10, steps, 0.0, 1.0)


def federation(participation=None, clients=6, duration=120.0, lr=0.1, skew=0.5):
    data = make_federated_data(
        "hyperplane",
        clients=clients,
        samples_per_client=200,
        concepts=[0],
        class_skew=skew,
        seed=3,
        n_features=5,
        mag_change=0.0,
        noise=0.05,
    )
    return Federation(
        data,
        LogisticRegression(lr=lr, standardize=False),
        duration=duration,
        eval_every=20.0,
        slow_fraction=0.0,
        seed=3,
        participation=participation,
    )


# -- participation models -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["bernoulli", "markov", "cyclic"])
def test_each_pattern_is_present_about_p_of_the_rounds(kind):
    p = (0.1, 0.5, 0.9)
    schedule = Participation(kind, probabilities=p, cycle=10, switch=0.2).schedule(3, seed=1)
    counts = np.zeros(3)
    for t in range(3000):
        counts[list(schedule.present(t))] += 1
    assert counts / 3000 == pytest.approx(p, abs=0.05)


def test_a_schedule_is_the_same_for_a_seed_whatever_the_order_of_the_questions():
    participation = Participation("markov", probabilities=(0.3, 0.6, 0.8))
    first = participation.schedule(3, seed=5)
    again = participation.schedule(3, seed=5)
    late = again.present(40)
    assert [first.present(t) for t in range(41)][-1] == late
    assert [first.present(t) for t in range(41)] == [again.present(t) for t in range(41)]
    other = participation.schedule(3, seed=6)
    assert [other.present(t) for t in range(41)] != [first.present(t) for t in range(41)]


def test_the_markov_pattern_stays_present_longer_than_bernoulli():
    p = (0.5,)

    def runs(kind):
        s = Participation(kind, probabilities=p, switch=0.05).schedule(1, seed=0)
        present = [bool(s.present(t)) for t in range(4000)]
        return sum(1 for a, b in zip(present, present[1:], strict=False) if a != b)

    assert runs("markov") < runs("bernoulli") / 4  # switches rarely: long stays and absences


def test_drawn_probabilities_follow_the_class_mix_and_the_minimum():
    mixes = [np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([0.5, 0.5])]
    p = Participation("bernoulli", mean=0.5, skew=0.5, minimum=0.05).draw(mixes, seed=0)
    m = np.random.default_rng([0, 20]).dirichlet([0.5, 0.5])
    expected = np.clip(2 * 0.5 * np.array([m[0], m[1], 0.5]), 0.05, 1.0)
    assert p.tolist() == pytest.approx(expected.tolist())
    assert Participation("full").draw(mixes).tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "sometimes"}, "Participation.kind: must be .full., .bernoulli."),
        ({"probabilities": (1.5,)}, r"Participation.probabilities\[0\]: must be <= 1"),
        ({"mean": 0.0}, "Participation.mean: must be > 0"),
        ({"minimum": 2.0}, "Participation.minimum: must be <= 1"),
        ({"cycle": 0}, "Participation.cycle: must be >= 1"),
    ],
)
def test_bad_participation_settings_are_refused_by_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Participation(**kwargs)


def test_probabilities_must_match_the_clients():
    with pytest.raises(ValueError, match="has 2 values for 3 clients"):
        Participation("bernoulli", probabilities=(0.5, 0.5)).draw(3)


# -- the server under a participation model --------------------------------------------------------
def test_full_participation_gives_the_same_run_as_no_participation_model():
    plain = LocalEngine().run(federation(), FedAvg(3, 2))
    full = LocalEngine().run(federation(Participation("full")), FedAvg(3, 2))
    assert [r["accuracy"] for r in plain.rows] == [r["accuracy"] for r in full.rows]
    assert plain.accepted_by_client == full.accepted_by_client


def test_only_present_clients_take_part_and_empty_rounds_do_not_stall():
    p = (1.0, 1.0, 0.0, 0.0, 0.5, 0.5)
    trace = LocalEngine().run(federation(Participation("bernoulli", probabilities=p)), FedAvg(6, 2))
    assert set(trace.accepted_by_client) == {0, 1, 4, 5}
    assert trace.accepted_by_client[0] > trace.accepted_by_client[4]
    nobody = Participation("bernoulli", probabilities=(0.0,) * 6)
    idle = LocalEngine().run(federation(nobody), FedAvg(6, 2))
    assert idle.rows[-1]["time"] == 120.0 and idle.rows[-1]["version"] == 0


def test_the_view_tells_probabilities_only_when_known():
    unknown = Participation("bernoulli", probabilities=(0.5, 1.0)).schedule(2, seed=0)
    known = Participation("bernoulli", probabilities=(0.5, 1.0), known=True).schedule(2, seed=0)
    assert view(schedule=unknown).probabilities is None
    assert view(schedule=known).probabilities.tolist() == [0.5, 1.0]
    assert view().probabilities.tolist() == [1.0, 1.0]  # no model: everyone, always


# -- clients' steered local steps ----------------------------------------------------------------
def test_a_client_scales_its_steps_adds_a_correction_and_takes_another_batch_size():
    fed = federation(lr=0.05)
    model = fed.initial_model()
    plain, n = fed.make_client(0).run(model, 1, 0.0)
    half, _ = fed.make_client(0).run(model, 1, 0.0, scale=0.5)
    assert half == pytest.approx(0.5 * plain)
    push = np.full_like(model, 0.01)
    two, _ = fed.make_client(0).run(model, 2, 0.0, correction=push)
    bare, _ = fed.make_client(0).run(model, 2, 0.0)
    assert np.abs(two - bare).max() > 0.015  # the correction is added after each step
    _, big = fed.make_client(0).run(model, 2, 0.0, batch_size=50)
    assert (n, big) == (32, 100)


# -- FedAU ---------------------------------------------------------------------------------------
def test_fedau_estimates_one_over_the_participation_probability():
    rule = FedAU()
    schedule = Participation("bernoulli", probabilities=(0.2, 0.5, 1.0)).schedule(3, seed=0)
    v = view(n=3)
    for t in range(4000):
        rule.round_closed([], [update(c, [0.0]) for c in sorted(schedule.present(t))], v)
    assert rule.weights(3) == pytest.approx([5.0, 2.0, 1.0], rel=0.1)


def test_fedau_cutoff_counts_long_absences_as_intervals_of_k():
    rule = FedAU(cutoff=3)
    v = view(n=2)
    for _ in range(9):  # client 1 never shows up: intervals of 3
        rule.round_closed([0], [update(0, [0.0])], v)
    assert rule.weights(2).tolist() == [1.0, 3.0]


def test_fedau_weighs_a_delta_by_its_estimate_before_this_round():
    rule = FedAU(server_lr=1.0)
    rule.start(view())
    v = view()
    rule.round_closed([0], [update(0, [0.0])], v)  # client 1 absent once: S_1 = 1
    rule.round_closed([0, 1], [update(0, [0.0]), update(1, [0.0])], v)  # interval 2 for 1
    assert rule.coefficients([update(0, [1.0]), update(1, [1.0])], v) == [0.5, 1.0]


def test_fedau_known_weighting_needs_known_probabilities():
    unknown = Participation("bernoulli", probabilities=(0.5, 0.5)).schedule(2, seed=0)
    with pytest.raises(ValueError, match="known = true"):
        FedAU(weighting="known").coefficients([update(0, [1.0])], view(schedule=unknown))
    known = Participation("bernoulli", probabilities=(0.5, 0.25), known=True).schedule(2, 0)
    got = FedAU(weighting="known").coefficients([update(1, [1.0])], view(schedule=known))
    assert got == [pytest.approx(0.5 * 4.0)]


def test_fedau_beats_fedavg_when_participation_follows_the_data():
    participation = Participation("bernoulli", mean=0.3, skew=0.1, minimum=0.05)
    fed = federation(participation, clients=12, duration=300.0, skew=0.1)
    avg = LocalEngine().run(fed, FedAvg(12, 2))
    au = LocalEngine().run(fed, FedAU(local_steps=2))
    final = [np.mean([r["accuracy"] for r in t.rows[-5:]]) for t in (avg, au)]
    assert final[1] > final[0]


# -- FedHyper ------------------------------------------------------------------------------------
def test_fedhyper_rate_grows_with_agreeing_rounds_shrinks_with_opposite_ones_within_bounds():
    rule = FedHyper(hyper_lr=1.0, low=-0.5, high=2.0)
    v = view(model=(0.0, 0.0))
    rule.server_model(v, np.array([1.0, 0.0]))
    rule.server_model(v, np.array([1.0, 0.0]))
    assert rule.rate == 2.0
    rule.server_model(v, np.array([5.0, 0.0]))
    assert rule.rate == 3.0  # clipped at 1 + high
    rule.server_model(v, np.array([-5.0, 0.0]))
    assert rule.rate == 0.5  # clipped at 1 + low


def test_fedhyper_local_schedule_scales_the_clients_steps():
    rule = FedHyper(adapt="local", local_max=1.5)
    v = view(model=(0.0,))
    rule.server_model(v, np.array([1.0]))
    model = rule.server_model(v, np.array([1.0]))
    assert model.tolist() == [1.0]  # the global step stays FedAvg's
    assert rule.assignment(0, v).scale == 1.5
    with pytest.raises(ValueError, match="FedHyper.adapt: must be"):
        FedHyper(adapt="sideways")
    with pytest.raises(ValueError, match="FedHyper.low, FedHyper.high: need"):
        FedHyper(low=0.5)


# -- momentum ------------------------------------------------------------------------------------
def test_fedavg_m_with_beta_one_is_fedavg():
    fed = federation()
    a = LocalEngine().run(fed, FedAvg(3, 2))
    m = LocalEngine().run(fed, FedAvgM(3, 2, beta=1.0))
    assert [r["accuracy"] for r in a.rows] == [r["accuracy"] for r in m.rows]


def test_scaffold_m_control_variates_follow_the_papers_update():
    rule = ScaffoldM(clients_per_round=2, local_steps=2, beta=0.5)
    v = view()
    rule.start(v)
    # round 1: no momentum, no controls: clients took plain half steps, deltas 2 and 6 over 2 steps
    rule.round_closed([0, 1], [update(0, [2.0], 2), update(1, [6.0], 2, uid=2)], v)
    # D = mean delta per step = 2; C_i = (0 - Delta_i / K) / beta = -2 and -6; C = -4
    a0 = rule.assignment(0, v)
    assert a0.scale == 0.5
    assert a0.correction.tolist() == pytest.approx([0.5 * (-2.0 + 4.0) + 0.5 * 2.0])


def test_momentum_rules_run_on_the_engine_and_learn():
    fed = federation(skew=0.1)
    for rule in (FedAvgM(3, 2, beta=0.5), ScaffoldM(3, 2, beta=0.5)):
        trace = LocalEngine().run(fed, rule)
        assert trace.rows[-1]["accuracy"] > trace.rows[0]["accuracy"] + 0.1


# -- FedAMD --------------------------------------------------------------------------------------
def test_fedamd_miners_are_steered_by_the_mean_bullseye():
    rule = FedAMD(2, 3, anchor_probability=0.0, anchor_batch=64, batch_size=64)
    v = view()
    first = rule.start(v)
    assert [(a.steps, a.batch_size) for a in first.dispatch] == [(1, 64), (1, 64)]
    rule.on_update(update(0, [1.0]), v)
    plan = rule.on_update(update(1, [3.0]), v)  # bullseyes 1 and 3: V = 2
    assert plan.model is None  # anchors' deltas do not move the model
    miners = {a.client: a for a in plan.dispatch}
    assert miners[0].steps == 3 and miners[0].correction.tolist() == [1.0]
    assert miners[1].correction.tolist() == [-1.0]
    plan = rule.on_update(update(0, [4.0], 3, uid=2), v)
    plan = rule.on_update(update(1, [2.0], 3, uid=3), v)
    assert plan.model.tolist() == [3.0]  # the miners' mean delta


def test_fedamd_runs_on_the_engine_and_learns():
    trace = LocalEngine().run(federation(), FedAMD(3, 2, anchor_probability=0.3, anchor_batch=64))
    assert trace.rows[-1]["accuracy"] > trace.rows[0]["accuracy"] + 0.1


# -- the experiment file --------------------------------------------------------------------------
EXPERIMENT = """
name = "partial"
seed = 3
[stream]
kind = "hyperplane"
concepts = [0]
n_features = 5
mag_change = 0.0
[federation]
clients = 6
samples_per_client = 200
duration = 60.0
eval_every = 20.0
slow_fraction = 0.0
learner = { kind = "logistic", lr = 0.1, standardize = false }
[participation]
kind = "bernoulli"
mean = 0.5
skew = 0.5
[rules.fedavg]
kind = "fedavg"
clients_per_round = 6
local_steps = 2
[rules.fedau]
kind = "fedau"
local_steps = 2
"""


def test_the_participation_section_builds_the_model(tmp_path):
    experiment = parse_experiment(EXPERIMENT)
    fed = build_federation(experiment)
    assert fed.participation == Participation("bernoulli", mean=0.5, skew=0.5)
    path = tmp_path / "partial.toml"
    path.write_text(EXPERIMENT)
    out = tmp_path / "out"
    args = ["run", str(path), "--out", str(out), "--no-report"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    recorded = summary["federated"]["participation"]
    assert recorded["kind"] == "bernoulli" and len(recorded["probabilities"]) == 6


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('kind = "bernoulli"', 'kind = "often"'), "participation.kind: must be .full."),
        (("mean = 0.5", "mean = -1.0"), "participation.mean: must be > 0"),
        (("mean = 0.5", "probabilities = [0.5]"), "participation: .*has 1 values for 6 clients"),
    ],
)
def test_participation_errors_name_the_key(change, message):
    with pytest.raises(ExperimentError, match=message):
        build_federation(parse_experiment(EXPERIMENT.replace(*change)))
