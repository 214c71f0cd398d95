"""The shared aggregation functions every rule uses (adaptloop.distributed.aggregate)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptloop.distributed.aggregate import (
    server_step,
    shares,
    stale_mix,
    staleness_weight,
    weighted_mean,
    weighted_sum,
)

sizes = st.lists(st.integers(1, 10_000), min_size=1, max_size=8)


@settings(max_examples=50, deadline=None)
@given(sizes, st.integers(0, 2**16))
def test_weighted_mean_is_numpys_weighted_average(weights, seed):
    deltas = list(np.random.default_rng(seed).normal(size=(len(weights), 5)))
    expected = np.average(np.array(deltas), axis=0, weights=weights)
    np.testing.assert_allclose(weighted_mean(deltas, weights), expected, rtol=1e-10, atol=1e-12)
    assert sum(shares(weights)) == pytest.approx(1.0)


def test_weighted_mean_does_not_depend_on_the_scale_of_the_weights():
    deltas = [np.array([1.0, -2.0]), np.array([3.0, 0.5]), np.array([0.0, 4.0])]
    np.testing.assert_allclose(weighted_mean(deltas, [1, 2, 3]), weighted_mean(deltas, [5, 10, 15]))


def test_weighted_sum_adds_in_the_order_given():
    # 1 + 1e16 - 1e16 is 0 in float64 added left to right, 1e16 - 1e16 + 1 is 1: the order is
    # part of the result, so a rule gives the same numbers whoever adds its deltas
    big, one = np.array([1e16]), np.array([1.0])
    assert weighted_sum([one, big, -big], [1.0, 1.0, 1.0]).tolist() == [0.0]
    assert weighted_sum([big, -big, one], [1.0, 1.0, 1.0]).tolist() == [1.0]


def test_weighted_sum_leaves_its_inputs_alone():
    deltas = [np.array([1.0, 2.0])]
    out = weighted_sum(deltas, [2.0])
    out += 1.0
    assert deltas[0].tolist() == [1.0, 2.0]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: weighted_sum([], []), "no deltas"),
        (lambda: weighted_sum([np.ones(2)], [1.0, 2.0]), "1 deltas but 2 coefficients"),
        (lambda: shares([0, 0]), "positive total"),
        (lambda: staleness_weight(1, "cubic"), "staleness must be 'none', 'sqrt' or 'poly'"),
    ],
)
def test_bad_input_is_refused_by_name(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("kind", ["sqrt", "poly"])
def test_staleness_weights_start_at_one_and_fall(kind):
    weights = [staleness_weight(tau, kind, exponent=0.5) for tau in range(6)]
    assert weights[0] == 1.0
    assert all(a > b for a, b in zip(weights, weights[1:], strict=False))
    assert {staleness_weight(tau, "none") for tau in range(6)} == {1.0}


def test_stale_mix_without_memory_weight_is_the_unbiased_fresh_average():
    fresh = {0: np.array([2.0]), 2: np.array([-1.0])}
    memory = {0: np.array([5.0]), 1: np.array([7.0])}
    alpha, q = np.array([0.2, 0.3, 0.5]), {0: 0.5, 2: 0.25}
    out = stale_mix(fresh, memory, alpha, q, beta=0.0)
    assert out.tolist() == pytest.approx([0.2 / 0.5 * 2.0 + 0.5 / 0.25 * -1.0])


def test_stale_mix_with_every_client_fresh_and_full_memory_weight_is_fedavg():
    # beta = 1 (FedVARP): the memory terms cancel when everyone delivered (q = 1)
    fresh = {i: np.array([float(i + 1)]) for i in range(3)}
    memory = {i: np.array([10.0 * i]) for i in range(3)}
    alpha = np.array([0.2, 0.3, 0.5])
    out = stale_mix(fresh, memory, alpha, dict.fromkeys(range(3), 1.0), beta=1.0)
    assert out.tolist() == pytest.approx(weighted_sum(list(fresh.values()), alpha).tolist())


def test_server_step_moves_the_model_by_the_rate():
    model = np.array([1.0, 1.0])
    assert server_step(model, np.array([2.0, -2.0]), 0.25).tolist() == [1.5, 0.5]
    assert model.tolist() == [1.0, 1.0]
