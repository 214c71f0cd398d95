"""The federation rules' equations on small hand-computable cases: FedCompass as APPFL
(defaults, the model mix ``alpha s(tau) / N``, groups), FedStale's direction, Fraboni et al.'s
server update for FedFix (``d_i = ceil(tau_i / dt) p_i``) and FedBuff (``d_i = 1 / c``), and
their client-time scenario."""

from __future__ import annotations

import numpy as np
import pytest

from adaptloop.distributed.aggregate import compass_mix, stale_mix
from adaptloop.distributed.federation import linear_speed_profile
from adaptloop.distributed.rules import FedBuff, FedCompass, FedFix, FedStale
from adaptloop.distributed.rules.base import ServerView, Update


def view(model, version=0, now=0.0, n=2, busy=()):
    return ServerView(
        now,
        np.asarray(model, float),
        version,
        frozenset(range(n)),
        frozenset(busy),
        np.ones(n) / n,
        np.random.default_rng(0),
    )


def update(client, delta, base=0, sent=0.0, time=1.0, steps=1, uid=None):
    uid = client if uid is None else uid
    return Update(uid, client, np.asarray(delta, float), base, 10, steps, sent, time)


# -- FedCompass -----------------------------------------------------------------------------------
def test_fedcompass_defaults_are_appfls():
    rule = FedCompass()
    assert (rule.max_steps, rule.q_ratio * rule.max_steps, rule.latest_factor) == (100, 20, 1.5)
    assert (rule.speed_momentum, rule.alpha, rule.staleness, rule.exponent) == (
        0.9,
        0.9,
        "poly",
        0.5,
    )


def test_compass_mix_is_appfls_model_average():
    # (1 - 0.2 - 0.3) * 1 + 0.2 * 3 + 0.3 * 5 = 0.5 + 0.6 + 1.5
    got = compass_mix(np.array([1.0]), [np.array([3.0]), np.array([5.0])], [0.2, 0.3])
    assert got.tolist() == pytest.approx([2.6])


def test_fedcompass_first_arrival_mixes_the_local_model_with_staleness():
    rule = FedCompass(max_steps=10)
    rule.start(view([0.0]))  # both clients sent the model 0
    # three server steps later the global model is 1; client 0 returns 0 + 2 (tau = 3):
    # alpha_0 = 0.9 * (3 + 1)^-0.5 / 2 = 0.225, theta = 0.775 * 1 + 0.225 * 2
    plan = rule.on_update(update(0, [2.0], base=0, time=10.0, steps=10), view([1.0], 3, 10.0))
    assert plan.model.tolist() == pytest.approx([1.225])


def test_fedcompass_group_aggregates_local_models_from_the_models_sent():
    rule = FedCompass(max_steps=10, q_ratio=0.2)
    rule.start(view([0.0]))
    # first arrivals: each applied alone and put into a group (speed 1 per step)
    p0 = rule.on_update(update(0, [2.0], time=10.0, steps=10), view([0.0], 0, 10.0, busy=(1,)))
    assert p0.model.tolist() == pytest.approx([0.9 * 2.0 / 2])  # 0.9
    assert [(a.client, a.steps) for a in p0.dispatch] == [(0, 10)]  # a new group, T_a = 20
    v1 = view(p0.model, 1, 12.0, busy=(0,))
    p1 = rule.on_update(update(1, [4.0], time=12.0, steps=10, uid=1), v1)
    # 0.1 * 0.9 + 0.45 * 4 (tau = 1: 0.9 * 2^-0.5 / 2)
    a1 = 0.9 * 2**-0.5 / 2
    assert p1.model.tolist() == pytest.approx([(1 - a1) * 0.9 + a1 * 4.0])
    # client 1 joins client 0's group: Q = floor((20 - 12) / 1.2) = 6 steps, within [2, 10]
    assert [(a.client, a.steps) for a in p1.dispatch] == [(1, 6)]
    # both arrive in time: one aggregation, each local model = model sent + delta
    sent0, sent1, now = p0.model, p1.model, p1.model
    assert rule.on_update(update(0, [1.0], 1, 10.0, 20.0, 10, 2), view(now, 2, 20.0)).model is None
    last = rule.on_update(update(1, [3.0], 2, 12.0, 20.0, 6, 3), view(now, 2, 20.0))
    w0, w1 = 0.9 * 2**-0.5 / 2, 0.9 * 1.0 / 2  # tau 1 and 0
    expected = (1 - w0 - w1) * now + w0 * (sent0 + 1.0) + w1 * (sent1 + 3.0)
    assert last.model.tolist() == pytest.approx(expected.tolist())
    assert sorted(a.client for a in last.dispatch) == [0, 1]


# -- FedStale -------------------------------------------------------------------------------------
def test_fedstale_direction_by_hand():
    # alpha = (0.5, 0.25, 0.25), memories h = (2, 4, 8), client 0 fresh 6 with p_0 = 0.5, beta 0.5:
    # 0.5 * (0.5 * 2 + 0.25 * 4 + 0.25 * 8) + (0.5 / 0.5) * (6 - 0.5 * 2) = 2 + 5
    alpha = np.array([0.5, 0.25, 0.25])
    memory = {0: np.array([2.0]), 1: np.array([4.0]), 2: np.array([8.0])}
    v = stale_mix({0: np.array([6.0])}, memory, alpha, {0: 0.5}, beta=0.5)
    assert v.tolist() == pytest.approx([7.0])
    # beta = 0: unbiased FedAvg (alpha_i / p_i) Delta_i; beta = 1: FedVARP
    assert stale_mix({0: np.array([6.0])}, memory, alpha, {0: 0.5}, 0.0).tolist() == [6.0]
    assert stale_mix({0: np.array([6.0])}, memory, alpha, {0: 0.5}, 1.0).tolist() == [8.0]


def test_fedstale_rule_remembers_each_participants_last_delta():
    rule = FedStale(buffer_size=1, beta=1.0, local_steps=1)
    # q estimated: (deliveries + prior 1/2) / (steps + 1); first step q_0 = 0.5
    assert rule.on_update(update(0, [2.0]), view([0.0])).model.tolist() == [2.0]
    # client 1 (q = 0.5 / 2): 0.5 * h_0 + (0.5 / 0.25) * 4 = 1 + 8
    assert rule.on_update(update(1, [4.0]), view([0.0])).model.tolist() == pytest.approx([9.0])


# -- Fraboni et al.: FedFix and FedBuff ------------------------------------------------------------
def test_fedfix_scales_a_client_by_the_windows_its_update_spans():
    rule = FedFix(window=10.0)
    rule.start(view([0.0]))
    rule.on_update(update(0, [4.0], sent=0.0, time=8.0), view([0.0], now=8.0))  # 1 window
    rule.on_update(update(1, [4.0], sent=0.0, time=25.0), view([0.0], now=25.0))  # 3 windows
    # theta + sum_i ceil(tau_i / dt) p_i Delta_i = 1 * 0.5 * 4 + 3 * 0.5 * 4
    assert rule.on_timer(view([1.0], now=30.0)).model.tolist() == pytest.approx([1.0 + 2 + 6])


def test_fedbuff_without_staleness_is_frabonis_one_over_c():
    rule = FedBuff(buffer_size=2, staleness="none", local_steps=1)
    rule.on_update(update(0, [2.0], base=0), view([0.0], version=5))
    plan = rule.on_update(update(1, [6.0], base=3), view([0.0], version=5))
    assert plan.model.tolist() == pytest.approx([(2.0 + 6.0) / 2])


def test_frabonis_client_times():
    # tau_i = 1 - i (P / 100) / (n - 1): the fastest client P % faster than the slowest
    np.testing.assert_allclose(linear_speed_profile(3, 1.0, 50.0), [1.0, 0.75, 0.5])
    np.testing.assert_allclose(linear_speed_profile(1, 2.0, 50.0), [2.0])


def test_federation_runs_frabonis_scenario():
    from adaptloop.distributed.data import make_federated_data
    from adaptloop.distributed.federation import Federation
    from adaptloop.learners import LogisticRegression
    from adaptloop.parameters import ParameterError

    data = make_federated_data(
        "sea", clients=5, samples_per_client=50, concepts=[0], drift_at=[], seed=0
    )
    fed = Federation(data, LogisticRegression(), step_time=2.0, faster_pct=40.0)
    np.testing.assert_allclose(fed.step_times, [2.0, 1.8, 1.6, 1.4, 1.2])
    with pytest.raises(ParameterError, match="faster_pct"):
        Federation(data, LogisticRegression(), faster_pct=100.0)
