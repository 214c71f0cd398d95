"""Noise-robust ADMM for federated weighted least squares, against standard ADMM and FedAvg."""

from __future__ import annotations

import numpy as np
import pytest

from adaptloop.distributed.rules.admm import admm_wls, fedavg_wls, wls_problem
from adaptloop.parameters import ParameterError


@pytest.fixture(scope="module")
def problem():
    return wls_problem(clients=8, dim=4, samples=30, seed=3)


@pytest.mark.parametrize("variant", ["standard", "noise_robust"])
def test_both_variants_reach_the_wls_solution_on_clean_links(problem, variant):
    rmse = admm_wls(problem, iterations=300, rho=10.0, schedule=1.0, snr_db=None, variant=variant)
    assert rmse[-1] < 1e-6 and rmse[0] > 1e-2


def test_random_scheduling_and_local_updates_still_converge_on_clean_links(problem):
    for local in (True, False):
        rmse = admm_wls(problem, 600, 30.0, schedule=0.25, snr_db=None, local_updates=local)
        assert rmse[-1] < 1e-4


def test_noise_leaves_a_steady_error_that_grows_as_the_snr_falls(problem):
    errors = [
        admm_wls(problem, 300, 30.0, schedule=0.5, snr_db=snr, seed=1)[-100:].mean()
        for snr in (30.0, 10.0)
    ]
    assert 0 < errors[0] < errors[1] < 1.0


def test_one_noisy_global_model_per_update_beats_standard_admms_two(problem):
    """The paper's point: standard ADMM's dual sums the noise of a second received global
    model; eliminating the dual leaves one, so the steady-state error is lower at the same
    penalty, SNR and schedule (every seed)."""
    for seed in range(3):
        standard, robust = (
            admm_wls(problem, 600, 30.0, schedule=0.5, snr_db=20.0, variant=v,
                     local_updates=False, seed=seed)[-300:].mean()
            for v in ("standard", "noise_robust")
        )  # fmt: skip
        assert robust < 0.9 * standard


def test_the_same_seed_gives_the_same_curve(problem):
    a = admm_wls(problem, 50, snr_db=20.0, seed=4)
    assert np.array_equal(a, admm_wls(problem, 50, snr_db=20.0, seed=4))


def test_fedavg_on_wls_approaches_the_solution(problem):
    rmse = fedavg_wls(problem, iterations=300, local_steps=1, schedule=1.0, snr_db=None)
    assert rmse[-1] < 0.1 * rmse[0]


def test_bad_settings_are_refused_with_their_name(problem):
    with pytest.raises(ParameterError, match="schedule"):
        admm_wls(problem, schedule=1.5)
    with pytest.raises(ParameterError, match="variant"):
        admm_wls(problem, variant="fast")
