"""Federated weighted least squares by ADMM over noisy links, with random client scheduling.

Lari, Arablouei, Gogineni & Werner, "Noise-Robust and Resource-Efficient ADMM-based Federated
Learning" (arXiv:2409.13451, 2024) solve weighted least squares (WLS),
``min_w sum_k f_k(w)``, ``f_k(w) = 1/2 (y_k - X_k w)^T Omega_k (y_k - X_k w)``, as consensus
ADMM between ``K`` clients and a server that, at every iteration, talks with a random subset of
the clients over links that add noise. Write ``A_k = X_k^T Omega_k X_k``,
``b_k = X_k^T Omega_k y_k`` (so ``grad f_k(w) = A_k w - b_k``), ``z~`` the noisy global model a
client receives, ``rho`` the penalty.

**Standard ADMM** (the baseline; consensus ADMM in the scaled form of Boyd et al. 2011, Sec.
7.1, with partial participation: only the scheduled clients update): a scheduled client receives
the global model ``z~^t``, updates ``w_k <- (A_k + rho I)^-1 (b_k + rho (z~^t - u_k))`` and sends
``w_k + u_k``; the server's ``z^{t+1}`` is the mean of every client's latest message; the client
then receives ``z~^{t+1}`` and updates its dual ``u_k <- u_k + w_k - z~^{t+1}``. So it uses two
noisy global models per participation, and the dual, a running sum, accumulates the noise of the
second (what the paper's modification removes).

**Noise-robust ADMM** (:func:`admm_wls` with ``variant="noise_robust"``). The three changes the
paper's abstract names, as we derive them:

1. *random scheduling*: every iteration each client is scheduled with probability
   ``schedule``; the server's global model is the mean of every client's latest message;
2. *the dual eliminated, a new local update*: the local update's optimality condition with the
   dual update gives ``lambda_k = -grad f_k(w_k) - rho (z_old - z_new)``; dropping the
   difference of the two global models (zero at convergence) leaves ``lambda_k = b_k - A_k w_k``
   and the local update ``w_k <- (A_k + rho I)^-1 (A_k w_k + rho z~)``, which uses *one* noisy
   global model; the client sends ``w_k + (b_k - A_k w_k) / rho`` (its model plus its scaled
   dual). The fixed point is the WLS solution (``w_k = z``, ``sum_k (b_k - A_k z) = 0``);
3. *local updates of unscheduled clients* (``local_updates``): an unscheduled client applies the
   same local update with the last global model it received.

Deferring the standard variant's dual update to the client's next participation, so that one
received model serves both updates (as an earlier version of this module did), makes it
numerically the noise-robust variant without local updates at steady state: the comparison needs
the textbook order above.

Derived, not taken from the paper (only its abstract could be consulted here): the exact form
of the new local update and of the message in 2 and 3 above, the server's mean over the latest
messages, and the noise model (white Gaussian at a set SNR on every message, both ways, by
:class:`~adaptloop.distributed.attacks.Adversary`; the paper's noise variances and its
closed-form steady-state MSE are not reproduced). :func:`fedavg_wls` is the FedAvg baseline on
the same problem. These solvers run in synchronous iterations of their own, not on the engines:
WLS is their model problem, not our learners.

>>> problem = wls_problem(clients=8, dim=4, samples=20, seed=0)
>>> clean = admm_wls(problem, iterations=200, rho=10.0, schedule=1.0, snr_db=None)
>>> bool(clean[-1] < 1e-6)
True
>>> noisy = admm_wls(problem, iterations=200, rho=10.0, schedule=0.5, snr_db=20.0)
>>> bool(noisy[-50:].mean() < 0.1)
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from adaptloop.distributed.attacks import Adversary, Attack
from adaptloop.parameters import declared
from adaptloop.validation import Count, Fraction, PositiveReal, Real, Seed


@dataclass(frozen=True)
class WLSProblem:
    """Each client's ``A_k = X_k^T Omega_k X_k`` and ``b_k = X_k^T Omega_k y_k``, and the
    centralised WLS solution ``w_star``."""

    A: tuple[np.ndarray, ...]
    b: tuple[np.ndarray, ...]
    w_star: np.ndarray


@declared
def wls_problem(
    clients: Count = 32,
    dim: Count = 8,
    samples: Count = 50,
    noise: PositiveReal = 0.1,
    seed: Seed = 0,
) -> WLSProblem:
    """A non-IID WLS problem: client ``k``'s features are Gaussian with its own scale and mean,
    ``y = X w + noise``, sample weights ``Omega_k`` uniform in ``[0.5, 1.5]``.

    >>> p = wls_problem(clients=2, dim=3, samples=5)
    >>> len(p.A), p.A[0].shape, p.w_star.shape
    (2, (3, 3), (3,))
    """
    rng = np.random.default_rng([seed, 19])
    w_true = rng.normal(size=dim)
    A, b = [], []
    for _ in range(clients):
        X = rng.normal(rng.normal(0.0, 1.0, dim), rng.uniform(0.5, 2.0), size=(samples, dim))
        y = X @ w_true + rng.normal(0.0, noise, samples)
        omega = rng.uniform(0.5, 1.5, samples)
        A.append(X.T @ (omega[:, None] * X))
        b.append(X.T @ (omega * y))
    w_star = np.linalg.solve(sum(A), sum(b))
    return WLSProblem(tuple(A), tuple(b), w_star)


def _rmse(z: np.ndarray, problem: WLSProblem) -> float:
    return float(np.sqrt(np.mean((z - problem.w_star) ** 2)))


@declared
def admm_wls(
    problem: WLSProblem,
    iterations: Count = 500,
    rho: PositiveReal = 10.0,
    schedule: Fraction = 0.25,
    snr_db: Real | None = 20.0,
    variant: Literal["standard", "noise_robust"] = "noise_robust",
    local_updates: bool = True,
    seed: Seed = 0,
) -> np.ndarray:
    """Run ADMM (``variant``, see the module docstring; ``local_updates``: unscheduled clients
    of the noise-robust variant keep updating) and return the RMSE of the global model against
    the WLS solution after every iteration."""
    K, d = len(problem.A), len(problem.w_star)
    rng = np.random.default_rng([seed, 20])
    links = Adversary(Attack("none", snr_db=snr_db), K, None, seed)
    solve = [np.linalg.inv(A + rho * np.eye(d)) for A in problem.A]
    w = [np.zeros(d) for _ in range(K)]
    u = [np.zeros(d) for _ in range(K)]  # the standard variant's scaled duals
    received = [np.zeros(d) for _ in range(K)]  # the global model each client received last
    sent = [np.zeros(d) for _ in range(K)]  # the server's latest message from each client
    z = np.zeros(d)
    rmse = np.empty(iterations)
    for t in range(iterations):
        scheduled = rng.random(K) < schedule
        for k in range(K):
            A, b = problem.A[k], problem.b[k]
            if scheduled[k]:
                received[k] = links.downlink(z)
                if variant == "standard":
                    w[k] = solve[k] @ (b + rho * (received[k] - u[k]))
                    message = w[k] + u[k]
                else:
                    w[k] = solve[k] @ (A @ w[k] + rho * received[k])
                    message = w[k] + (b - A @ w[k]) / rho
                sent[k] = links.uplink(k, message, float(t))
            elif local_updates and variant == "noise_robust":
                w[k] = solve[k] @ (A @ w[k] + rho * received[k])
        z = np.mean(sent, axis=0)
        if variant == "standard":  # the dual update, with a second noisy global model
            for k in np.flatnonzero(scheduled):
                u[k] = u[k] + w[k] - links.downlink(z)
        rmse[t] = _rmse(z, problem)
    return rmse


@declared
def fedavg_wls(
    problem: WLSProblem,
    iterations: Count = 500,
    local_steps: Count = 5,
    schedule: Fraction = 0.25,
    snr_db: Real | None = 20.0,
    seed: Seed = 0,
) -> np.ndarray:
    """FedAvg on the same problem: each scheduled client takes ``local_steps`` gradient steps
    of size ``1 / lambda_max(A_k)`` on ``f_k`` from the noisy global model and sends its model;
    the global model is the data-weighted mean (``trace A_k``) of every client's latest one.
    Returns the RMSE after every iteration.

    >>> problem = wls_problem(clients=4, dim=3, samples=20, seed=0)
    >>> bool(fedavg_wls(problem, iterations=100, schedule=1.0, snr_db=None)[-1] < 1.0)
    True
    """
    K, d = len(problem.A), len(problem.w_star)
    rng = np.random.default_rng([seed, 20])
    links = Adversary(Attack("none", snr_db=snr_db), K, None, seed)
    step = [1.0 / float(np.linalg.eigvalsh(A)[-1]) for A in problem.A]
    weight = np.array([np.trace(A) for A in problem.A])
    weight /= weight.sum()
    sent = [np.zeros(d) for _ in range(K)]
    z = np.zeros(d)
    rmse = np.empty(iterations)
    for t in range(iterations):
        scheduled = rng.random(K) < schedule
        for k in np.flatnonzero(scheduled):
            w = links.downlink(z)
            for _ in range(local_steps):
                w = w - step[k] * (problem.A[k] @ w - problem.b[k])
            sent[k] = links.uplink(int(k), w, float(t))
        z = np.einsum("k,kd->d", weight, np.stack(sent))
        rmse[t] = _rmse(z, problem)
    return rmse
