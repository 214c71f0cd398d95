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
* :func:`variance_corrected` — a merge of models rescaled, layer by layer, to the variance of
  the models merged (the vanishing-variance correction of decentralised averaging);
* :func:`server_step` — ``model + server_lr * direction``.

Byzantine-robust blocks, each with :func:`weighted_mean`'s signature (deltas and weights in)
returning the direction and every input's *influence* (1: used as is, 0: rejected; which updates
a rule down-weighted is recorded from it): :func:`coordinate_median`, :func:`trimmed_mean`,
:func:`krum` (Krum and Multi-Krum), :func:`centered_clip` and :func:`fltrust` (which also takes
the server's own update on its small root dataset). :class:`RobustBlock` picks one by name and
keeps a rule's weights' total (staleness weighting), so every rule uses it in place of its
weighted sum.

>>> import numpy as np
>>> deltas = [np.array([1.0, 0.0]), np.array([4.0, 3.0])]
>>> weighted_mean(deltas, [10, 30]).tolist()
[3.25, 2.25]
>>> server_step(np.zeros(2), weighted_mean(deltas, [1, 1]), server_lr=0.5).tolist()
[1.25, 0.75]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Literal

import numpy as np
from annotated_types import Ge, Lt

from adaptloop.validation import Real

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


def variance_corrected(
    merged: np.ndarray,
    models: Sequence[np.ndarray],
    weights: Sequence[float],
    layers: Sequence[tuple[int, int]] = (),
) -> np.ndarray:
    """``merged`` (a weighted average of ``models``) rescaled around its mean, layer by layer,
    so that each layer's variance is the ``weights``-weighted mean of the merged models' own:

        w <- mean(w) + (w - mean(w)) * sqrt( sum_k a_k Var(w_k) / Var(w) )

    Tian et al., "Vanishing Variance Problem in Fully Decentralized Neural-Network Systems"
    (2024): averaging uncorrelated models shrinks each layer's weight variance below what
    Xavier initialisation set (by ``1 / K`` for ``K`` independent models), which delays
    training; their variance-corrected averaging restores the variance after every merge.
    Deviation: the paper's exact estimator could not be checked against its text; this is the
    per-layer rescaling it describes. ``layers`` are ``(start, stop)`` spans (empty: the whole
    vector is one layer); a layer of one entry or of zero variance is left as it is.

    >>> a, b = np.array([1.0, -1.0]), np.array([-1.0, 1.0])  # uncorrelated: the mean is 0
    >>> variance_corrected(0.5 * (a + b), [a, b], [0.5, 0.5]).tolist()  # nothing to rescale
    [0.0, 0.0]
    >>> c = np.array([3.0, -3.0])  # variances 1 and 9; their merge [2, -2] has 4, not 5
    >>> np.round(variance_corrected(0.5 * (a + c), [a, c], [0.5, 0.5]) ** 2, 6).tolist()
    [5.0, 5.0]
    """
    out = np.array(merged, dtype=np.float64)
    total = float(sum(weights))
    for start, stop in layers or ((0, len(out)),):
        if stop - start < 2:
            continue
        part = out[start:stop]
        current = float(part.var())
        target = sum(a * float(m[start:stop].var()) for a, m in zip(weights, models, strict=True))
        target /= total
        if current > 0.0 and target > 0.0:
            center = float(part.mean())
            out[start:stop] = center + (part - center) * math.sqrt(target / current)
    return out


def server_step(model: np.ndarray, direction: np.ndarray, server_lr: float = 1.0) -> np.ndarray:
    """The new global model: ``model + server_lr * direction``.

    >>> server_step(np.array([1.0]), np.array([2.0]), 0.5).tolist()
    [2.0]
    """
    return model + server_lr * direction


Robust = Literal["mean", "median", "trimmed_mean", "krum", "multi_krum", "clip", "fltrust"]
"""A robust block by name (see :class:`RobustBlock`); ``"mean"``: the rule's own weighted sum."""

ROBUST_KINDS: tuple[str, ...] = Robust.__args__  # type: ignore[attr-defined]
"""The robust blocks' names, in the order of :data:`Robust`."""

RobustFraction = Annotated[Real, Ge(0), Lt(0.5)]
"""The share of inputs a robust block assumes Byzantine: a number in [0, 0.5)."""

DOWN_WEIGHTED = 0.5
"""An update whose influence is below this counts as down-weighted (or rejected)."""


def _stack(deltas: Sequence[np.ndarray], weights: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    if len(deltas) != len(weights):
        raise ValueError(f"{len(deltas)} deltas but {len(weights)} weights")
    if not len(deltas):
        raise ValueError("no deltas to aggregate")
    w = np.asarray(weights, dtype=np.float64)
    if np.any(w < 0) or not w.sum() > 0:
        raise ValueError(f"weights must be >= 0 with a positive total, got {list(weights)}")
    return np.stack([np.asarray(d, dtype=np.float64) for d in deltas]), w / w.sum()


def _rank_kept(X: np.ndarray, k: int) -> np.ndarray:
    """Each row's share of the coordinates that vary (not all rows equal) on which it ranks
    neither among the ``k`` smallest nor the ``k`` largest (ties in input order)."""
    n = len(X)
    varying = X.max(axis=0) > X.min(axis=0)
    if not varying.any():
        return np.ones(n)
    order = np.argsort(X[:, varying], axis=0, kind="stable")[k : n - k]
    kept = np.zeros(n)
    np.add.at(kept, order.ravel(), 1.0)
    return kept / int(varying.sum())


def coordinate_median(
    deltas: Sequence[np.ndarray], weights: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Coordinate-wise weighted median (Yin, Chen, Ramchandran & Bartlett, ICML 2018, Def. 1;
    weighted: the smallest value whose cumulative weight reaches half) and each input's
    influence: the median has no per-input weight, so it is the input's share of (varying)
    coordinates inside the middle half by rank (neither among the ``max(1, floor(n / 4))``
    smallest nor largest), the values a 25 % trimmed mean would keep.

    >>> direction, influence = coordinate_median(
    ...     [np.array([1.0, 0.0]), np.array([2.0, 1.0]), np.array([90.0, -50.0])], [1, 1, 1])
    >>> direction.tolist(), influence.tolist()
    ([2.0, 0.0], [0.5, 0.5, 0.0])
    """
    X, w = _stack(deltas, weights)
    k = max(1, len(X) // 4) if len(X) >= 3 else 0
    return _weighted_median(X, w), _rank_kept(X, k)


def _weighted_median(X: np.ndarray, w: np.ndarray) -> np.ndarray:
    order = np.argsort(X, axis=0, kind="stable")
    ranked = np.take_along_axis(X, order, axis=0)
    at = np.argmax(np.cumsum(w[order], axis=0) >= 0.5 - 1e-12, axis=0)
    return ranked[at, np.arange(X.shape[1])]


def trimmed_mean(
    deltas: Sequence[np.ndarray], weights: Sequence[float], trim: float = 0.25
) -> tuple[np.ndarray, np.ndarray]:
    """Coordinate-wise trimmed mean (Yin et al., ICML 2018, Def. 2): per coordinate the
    ``floor(trim * n)`` largest and smallest values are dropped and the rest averaged with their
    weights; influence: each input's share of the (varying) coordinates on which it was kept.

    >>> direction, influence = trimmed_mean(
    ...     [np.array([1.0]), np.array([2.0]), np.array([3.0]), np.array([100.0])], [1, 1, 1, 1])
    >>> direction.tolist(), influence.tolist()
    ([2.5], [0.0, 1.0, 1.0, 0.0])
    """
    if not 0 <= trim < 0.5:
        raise ValueError(f"trim must be in [0, 0.5), got {trim!r}")
    X, w = _stack(deltas, weights)
    n = len(X)
    k = int(math.floor(trim * n))
    order = np.argsort(X, axis=0, kind="stable")[k : n - k]
    kept = np.take_along_axis(X, order, axis=0)
    kept_w = w[order]
    total = kept_w.sum(axis=0)
    uniform = np.full_like(kept_w, 1.0 / len(kept))  # where every kept weight is zero
    kept_w = np.where(total > 0, kept_w / np.where(total > 0, total, 1.0), uniform)
    return (kept * kept_w).sum(axis=0), _rank_kept(X, k)


def krum(
    deltas: Sequence[np.ndarray], weights: Sequence[float], byzantine: int = 0, keep: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Krum (``keep=1``) and Multi-Krum (Blanchard, El Mhamdi, Guerraoui & Stainer, NeurIPS
    2017, Sec. 4): each input's score is the sum of its squared distances to its
    ``n - byzantine - 2`` nearest others; the ``keep`` lowest-scoring inputs are averaged with
    their weights. Influence: 1 for the selected, 0 for the others. Deviation: with fewer than
    ``byzantine + 3`` inputs the score uses the one nearest other.

    >>> direction, influence = krum([np.array([0.0]), np.array([0.1]), np.array([0.2]),
    ...                              np.array([9.0])], [1, 1, 1, 1], byzantine=1, keep=2)
    >>> direction.tolist(), influence.tolist()
    ([0.05], [1.0, 1.0, 0.0, 0.0])
    """
    X, w = _stack(deltas, weights)
    n = len(X)
    keep = min(max(1, keep), n)
    squared = (X * X).sum(axis=1)
    distances = np.maximum(squared[:, None] + squared[None, :] - 2.0 * X @ X.T, 0.0)
    np.fill_diagonal(distances, np.inf)
    nearest = min(max(1, n - byzantine - 2), max(n - 1, 1))
    scores = np.sort(distances, axis=1)[:, :nearest].sum(axis=1) if n > 1 else np.zeros(1)
    chosen = np.argsort(scores, kind="stable")[:keep]
    influence = np.zeros(n)
    influence[chosen] = 1.0
    return weighted_mean([X[i] for i in chosen], [w[i] + 1e-300 for i in chosen]), influence


def centered_clip(
    deltas: Sequence[np.ndarray],
    weights: Sequence[float],
    center: np.ndarray | None = None,
    radius: float | None = None,
    iterations: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Centred clipping (Karimireddy, He & Jaggi, "Learning from History for Byzantine Robust
    Optimization", ICML 2021, Eq. (CC)): ``v <- v + sum_i w_i (x_i - v) min(1, tau / ||x_i -
    v||)``, ``iterations`` times from ``center`` (the previous aggregate there). Deviations:
    ``center=None`` starts from the coordinate-wise median; ``radius=None`` takes ``tau`` as the
    median distance to the centre (the paper fixes ``tau``). Influence: each input's clip
    factor ``min(1, tau / ||x_i - v||)`` in the last iteration.

    >>> direction, influence = centered_clip([np.array([1.0]), np.array([1.0]),
    ...                                       np.array([101.0])], [1, 1, 1], np.zeros(1))
    >>> direction.tolist(), influence.round(3).tolist()
    ([1.0], [1.0, 1.0, 0.01])
    """
    X, w = _stack(deltas, weights)
    v = _weighted_median(X, w) if center is None else np.asarray(center, float)
    factors = np.ones(len(X))
    for _ in range(max(1, iterations)):
        gaps = X - v
        norms = np.sqrt((gaps * gaps).sum(axis=1))
        tau = float(np.median(norms)) if radius is None else radius
        factors = np.minimum(1.0, tau / np.maximum(norms, 1e-300))
        v = v + (w * factors) @ gaps
    return v, factors


def fltrust(
    deltas: Sequence[np.ndarray],
    weights: Sequence[float],
    reference: np.ndarray,
    entries: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """FLTrust (Cao, Fang, Liu & Gong, "FLTrust: Byzantine-robust Federated Learning via Trust
    Bootstrapping", NDSS 2021, Sec. IV, Algorithm 1): the server computes its own update
    ``g0`` (``reference``) on a small clean root dataset; each input ``g_i`` gets the trust
    score ``TS_i = ReLU(cos(g_i, g0))`` and is rescaled to ``g0``'s norm,
    ``g_i * ||g0|| / ||g_i||``; the direction is the trust-weighted mean of the rescaled inputs
    (all zeros when every score is 0). Weighted: ``weights`` multiply the trust scores (a rule's
    staleness and data weights keep their effect; the paper's plain mean is equal weights).
    ``entries``: the vector's entries that are model parameters (cosines, norms and rescaling
    are computed on them; the other entries, counters, are the trust-weighted mean of the raw
    values); None: all. Influence: the trust score.

    >>> direction, influence = fltrust(
    ...     [np.array([1.0, 1.0]), np.array([2.0, 2.1]), np.array([-8.0, -8.0])], [1, 1, 1],
    ...     reference=np.array([1.0, 1.0]))
    >>> direction.round(3).tolist(), influence.round(3).tolist()
    ([0.988, 1.012], [1.0, 1.0, 0.0])
    """
    X, w = _stack(deltas, weights)
    g0 = np.asarray(reference, dtype=np.float64)
    if g0.shape != X.shape[1:]:
        raise ValueError(f"reference has shape {g0.shape}, the deltas {X.shape[1:]}")
    part = np.arange(X.shape[1]) if entries is None else np.asarray(entries, dtype=np.int64)
    norms = np.sqrt((X[:, part] ** 2).sum(axis=1))
    norm0 = float(np.sqrt((g0[part] ** 2).sum()))
    cosines = X[:, part] @ g0[part] / np.maximum(norms * norm0, 1e-300)
    trust = np.maximum(cosines, 0.0)
    combined = trust * w
    if not combined.sum() > 0:
        return np.zeros_like(g0), trust
    scaled = X.copy()
    scaled[:, part] *= (norm0 / np.maximum(norms, 1e-300))[:, None]
    return (combined / combined.sum()) @ scaled, trust


@dataclass
class RobustBlock:
    """A robust aggregate used inside a rule in place of its weighted sum ``sum_k c_k delta_k``:
    the block's weighted direction with the weights ``c_k`` scaled back to their total, so a
    rule's staleness and data weights keep their effect. ``fraction`` is the share of inputs
    assumed Byzantine: the trimmed mean's ``trim``, Krum's ``byzantine = floor(fraction * n)``,
    Multi-Krum keeps ``n - byzantine``. Centred clipping starts from the block's previous
    direction (per unit of weight), as the paper's momentum. ``"mean"`` is the plain weighted
    sum (influence 1 for all). ``bucket`` > 1 runs the block on the means of random buckets of
    that many inputs (see :meth:`_bucketed`; ``seed`` draws the buckets). ``"fltrust"`` needs
    the server's own update on its root data: the call's ``reference`` (a function, called only
    by that block), and ``entries`` the parameter entries (see :func:`fltrust`).

    >>> block = RobustBlock("multi_krum", fraction=0.25)
    >>> deltas = [np.array([2.0]), np.array([2.0]), np.array([2.0]), np.array([-50.0])]
    >>> direction, influence = block(deltas, [0.125, 0.125, 0.125, 0.125])
    >>> direction.tolist(), influence.tolist()  # half of the mean of those kept
    ([1.0], [1.0, 1.0, 1.0, 0.0])
    """

    kind: Robust = "mean"
    fraction: float = 0.25
    bucket: int = 1
    seed: int = 0
    _center: np.ndarray | None = field(default=None, repr=False)
    _rng: np.random.Generator | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in ROBUST_KINDS:
            raise ValueError(f"robust must be one of {', '.join(ROBUST_KINDS)}, got {self.kind!r}")
        if not 0 <= self.fraction < 0.5:
            raise ValueError(f"robust_fraction must be in [0, 0.5), got {self.fraction!r}")
        if not (isinstance(self.bucket, (int, np.integer)) and self.bucket >= 1):
            raise ValueError(f"robust_bucket must be an integer >= 1, got {self.bucket!r}")
        if self.kind == "fltrust" and self.bucket > 1:
            raise ValueError("robust_bucket must be 1 with robust = 'fltrust' (no bucketing)")
        self._rng = np.random.default_rng([self.seed, 24])

    def __call__(
        self,
        deltas: Sequence[np.ndarray],
        coefficients: Sequence[float],
        reference: Callable[[], np.ndarray] | None = None,
        entries: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(direction, influence)``: ``sum(c) *`` the block's ``c``-weighted direction."""
        if self.kind == "mean":
            return weighted_sum(deltas, coefficients), np.ones(len(deltas))
        total = float(sum(coefficients))
        if self.kind == "fltrust":
            if reference is None:
                raise ValueError("robust = 'fltrust' needs the server's update on its root data")
            unit, influence = fltrust(deltas, coefficients, reference(), entries)
            return total * unit, influence
        if self.bucket > 1:
            return self._bucketed(deltas, coefficients, total)
        n = len(deltas)
        byzantine = int(math.floor(self.fraction * n))
        if self.kind == "median":
            unit, influence = coordinate_median(deltas, coefficients)
        elif self.kind == "trimmed_mean":
            unit, influence = trimmed_mean(deltas, coefficients, self.fraction)
        elif self.kind == "krum":
            unit, influence = krum(deltas, coefficients, byzantine, 1)
        elif self.kind == "multi_krum":
            unit, influence = krum(deltas, coefficients, byzantine, n - byzantine)
        else:
            unit, influence = centered_clip(deltas, coefficients, self._center)
            self._center = unit
        return total * unit, influence

    def _bucketed(
        self, deltas: Sequence[np.ndarray], coefficients: Sequence[float], total: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Bucketing (Karimireddy, He & Jaggi, "Byzantine-Robust Learning on Heterogeneous
        Datasets via Bucketing", ICLR 2022, Algorithm 1): shuffle the inputs, average them in
        buckets of ``bucket`` (weighted), run the block on the bucket means (each weighted by
        its bucket's total); an input's influence is its bucket's."""
        order = self._rng.permutation(len(deltas))
        groups = [order[i : i + self.bucket] for i in range(0, len(order), self.bucket)]
        means = [
            weighted_mean([deltas[i] for i in g], [coefficients[i] + 1e-300 for i in g])
            for g in groups
        ]
        weights = [float(sum(coefficients[i] for i in g)) for g in groups]
        inner = RobustBlock(self.kind, self.fraction, 1, self.seed, self._center)
        direction, kept = inner(means, weights)
        self._center = inner._center
        influence = np.empty(len(deltas))
        for g, k in zip(groups, kept, strict=True):
            influence[g] = k
        return direction, influence
