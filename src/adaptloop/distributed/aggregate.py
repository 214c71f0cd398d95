"""The aggregation math of every rule, as shared functions (as Flower's ``strategy/aggregate.py``).

Rules (:mod:`~adaptloop.distributed.rules`) decide *when* the server steps and *whose* deltas
count; the arithmetic is here, once, and tested on its own:

* :func:`shares` — each client's share of the samples (``n_k / n``);
* :func:`staleness_weight` — the down-weighting of an update computed some server steps ago;
* :func:`weighted_sum` — ``sum_k c_k * delta_k``, in the order given (the one sum every rule
  uses, so seeded runs give the same numbers whichever rule calls it);
* :func:`weighted_mean` — ``sum_k (w_k / sum w) * delta_k`` (FedAvg's average);
* :func:`stale_mix` — FedStale's mix of fresh deltas and remembered ones;
* :func:`compass_mix` — FedCompass's (APPFL's) mix of local models into the global one;
* :func:`server_step` — ``model + server_lr * direction``.

A robust aggregate (coordinate-wise median, trimmed mean, Krum) is one more function here with
:func:`weighted_mean`'s signature (the deltas and their weights in, one direction out).

>>> import numpy as np
>>> deltas = [np.array([1.0, 0.0]), np.array([4.0, 3.0])]
>>> weighted_mean(deltas, [10, 30]).tolist()
[3.25, 2.25]
>>> server_step(np.zeros(2), weighted_mean(deltas, [1, 1]), server_lr=0.5).tolist()
[1.25, 0.75]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

Staleness = Literal["none", "sqrt", "poly"]
"""How an update's weight falls with its staleness (see :func:`staleness_weight`)."""


def shares(sizes: Sequence[float]) -> list[float]:
    """Each size's share of their total: ``n_k / n`` (the weights of FedAvg).

    >>> shares([10, 30])
    [0.25, 0.75]
    """
    total = sum(sizes)
    if not total > 0:
        raise ValueError(f"sizes must have a positive total, got {list(sizes)}")
    return [size / total for size in sizes]


def staleness_weight(staleness: int, kind: Staleness = "sqrt", exponent: float = 0.5) -> float:
    """Down-weighting of an update computed ``staleness`` server steps ago.

    ``"sqrt"``: ``1 / sqrt(1 + staleness)`` (FedBuff, Nguyen et al. 2022, Sec. 5);
    ``"poly"``: ``(1 + staleness) ** -exponent`` (FedAsync's polynomial function, Xie et al.
    2019); ``"none"``: 1.

    >>> staleness_weight(3, "sqrt"), staleness_weight(3, "poly", 1.0), staleness_weight(3, "none")
    (0.5, 0.25, 1.0)
    """
    if kind == "none":
        return 1.0
    if kind == "sqrt":
        return 1.0 / math.sqrt(1.0 + staleness)
    if kind == "poly":
        return float((1.0 + staleness) ** -exponent)
    raise ValueError(f"staleness must be 'none', 'sqrt' or 'poly', got {kind!r}")


def weighted_sum(deltas: Sequence[np.ndarray], coefficients: Sequence[float]) -> np.ndarray:
    """``sum_k coefficients[k] * deltas[k]``, added in the order given (a new array).

    >>> weighted_sum([np.array([1.0, 2.0]), np.array([3.0, 0.0])], [0.5, 2.0]).tolist()
    [6.5, 1.0]
    """
    if len(deltas) != len(coefficients):
        raise ValueError(f"{len(deltas)} deltas but {len(coefficients)} coefficients")
    if not len(deltas):
        raise ValueError("no deltas to aggregate")
    total = coefficients[0] * deltas[0]
    for coefficient, delta in zip(coefficients[1:], deltas[1:], strict=True):
        total = total + coefficient * delta
    return total


def weighted_mean(deltas: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """The mean of ``deltas`` weighted by ``weights`` (samples behind each, say):
    ``sum_k (w_k / sum w) * delta_k``.

    >>> weighted_mean([np.array([1.0]), np.array([4.0])], [10, 30]).tolist()
    [3.25]
    """
    return weighted_sum(deltas, shares(weights))


def stale_mix(
    fresh: Mapping[int, np.ndarray],
    memory: Mapping[int, np.ndarray],
    alpha: np.ndarray,
    participation: Mapping[int, float],
    beta: float,
) -> np.ndarray:
    """FedStale's direction (Rodio & Neglia 2024): the remembered deltas ``h_j`` of every
    client, weighted ``beta * alpha_j``, plus each fresh delta corrected by its client's memory
    and weighted by the inverse of its participation ``q_i``:

        v = beta * sum_j alpha_j h_j + sum_{i fresh} (alpha_i / q_i) * (Delta_i - beta * h_i)

    >>> fresh, memory = {0: np.array([2.0])}, {0: np.array([1.0]), 1: np.array([4.0])}
    >>> alpha = np.array([0.5, 0.5])
    >>> stale_mix(fresh, memory, alpha, {0: 0.5}, beta=0.5).tolist()  # 1.25 + 1 * 1.5
    [2.75]
    """
    deltas: list[np.ndarray] = []
    coefficients: list[float] = []
    for j, h in memory.items():
        deltas.append(h)
        coefficients.append(beta * alpha[j])
    for i, delta in fresh.items():
        stale = memory.get(i)
        deltas.append(delta if stale is None else delta - beta * stale)
        coefficients.append(alpha[i] / participation[i])
    return weighted_sum(deltas, coefficients)


def compass_mix(
    model: np.ndarray, models: Sequence[np.ndarray], weights: Sequence[float]
) -> np.ndarray:
    """APPFL's ``FedCompassAggregator.aggregate`` (model-based, ``gradient_based=False``):
    ``(1 - sum_i a_i) * model + sum_i a_i * models[i]``, the local models ``models`` mixed into
    the global ``model`` with weights ``a_i`` (``alpha * s(tau_i) / N`` there).

    >>> compass_mix(np.array([0.0]), [np.array([2.0]), np.array([4.0])], [0.25, 0.5]).tolist()
    [2.5]
    """
    return (1.0 - float(sum(weights))) * model + weighted_sum(list(models), list(weights))


def server_step(model: np.ndarray, direction: np.ndarray, server_lr: float = 1.0) -> np.ndarray:
    """The new global model: ``model + server_lr * direction``.

    >>> server_step(np.array([1.0]), np.array([2.0]), 0.5).tolist()
    [2.0]
    """
    return model + server_lr * direction
