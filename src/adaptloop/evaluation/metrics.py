"""Stream metrics, cumulative and over a sliding window, updated batch by batch in numpy.

A :class:`MetricTracker` scores one learner: each batch adds its predictions, and at any time
it reports every metric over all samples so far (cumulative), over the last ``window`` samples
(windowed) and over the samples added since the previous report (batch).

>>> import numpy as np
>>> tracker = MetricTracker(["accuracy", "log_loss"], task="binary", n_classes=2, window=4)
>>> proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
>>> tracker.update(np.array([0, 1, 1]), proba.argmax(1), proba)
>>> round(tracker.report()["accuracy"], 4)
0.6667
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from adaptloop.validation import Task

PER_SAMPLE_METRICS = ("accuracy", "log_loss", "mae", "rmse", "mape")
"""Metrics that are a mean (or root mean) of a per-sample quantity: additive over samples."""
RANKING_METRICS = ("roc_auc",)
METRICS_BY_TASK: dict[str, tuple[str, ...]] = {
    "binary": ("accuracy", "log_loss", "roc_auc"),
    "multiclass": ("accuracy", "log_loss"),
    "regression": ("mae", "rmse", "mape"),
}
HIGHER_IS_BETTER = {
    "accuracy": True,
    "roc_auc": True,
    "log_loss": False,
    "mae": False,
    "rmse": False,
    "mape": False,
}
NEEDS_PROBA = {"log_loss", "roc_auc"}
_EPS = 1e-15
_MAPE_FLOOR = 1e-8
_AUC_BINS = 4096
_MAX_PENDING = 4096  # queued batches before they are scored (bounds memory)


def default_metrics(task: Task) -> list[str]:
    """The metrics reported when an experiment names none.

    >>> default_metrics("regression")
    ['mae', 'rmse', 'mape']
    """
    return list(METRICS_BY_TASK[task])


def check_metrics(metrics: Sequence[str], task: Task) -> list[str]:
    """Refuse metric names that do not exist or do not fit the task.

    >>> check_metrics(["accuracy", "mae"], "binary")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: metric 'mae' does not apply to a binary task; choose from accuracy, ...
    """
    allowed = METRICS_BY_TASK[task]
    for name in metrics:
        if name not in allowed:
            raise ValueError(
                f"metric {name!r} does not apply to a {task} task; choose from {', '.join(allowed)}"
            )
    if len(set(metrics)) != len(metrics):
        raise ValueError(f"metrics are listed twice: {list(metrics)}")
    return list(metrics)


class RingBuffer:
    """The last ``capacity`` values of a float64 series, written batch-wise.

    >>> ring = RingBuffer(3)
    >>> ring.extend(np.array([1.0, 2.0, 3.0, 4.0]))
    >>> ring.values().tolist(), ring.total()
    ([2.0, 3.0, 4.0], 9.0)
    """

    def __init__(self, capacity: int) -> None:
        self._data = np.zeros(capacity, dtype=np.float64)
        self._next = 0
        self._size = 0

    def extend(self, values: np.ndarray) -> None:
        capacity = self._data.shape[0]
        if values.shape[0] >= capacity:
            self._data[:] = values[-capacity:]
            self._next, self._size = 0, capacity
            return
        end = self._next + values.shape[0]
        if end <= capacity:
            self._data[self._next : end] = values
        else:
            first = capacity - self._next
            self._data[self._next :] = values[:first]
            self._data[: end - capacity] = values[first:]
        self._next = end % capacity
        self._size = min(capacity, self._size + values.shape[0])

    def __len__(self) -> int:
        return self._size

    def total(self) -> float:
        """Sum of the stored values (recomputed, so no rounding error accumulates)."""
        return float(self._data[: self._size].sum())

    def values(self) -> np.ndarray:
        """The stored values, oldest first."""
        if self._size < self._data.shape[0]:
            return self._data[: self._size].copy()
        return np.concatenate([self._data[self._next :], self._data[: self._next]])


def per_sample(name: str, y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None) -> np.ndarray:
    """The per-sample quantity whose mean is the metric (squared error for ``rmse``)."""
    if name == "accuracy":
        return (pred == y).astype(np.float64)
    if name == "log_loss":
        p = proba[np.arange(y.shape[0]), y]
        return -np.log(np.clip(p, _EPS, 1.0))
    if name == "mae":
        return np.abs(pred.astype(np.float64) - y)
    if name == "rmse":
        return (pred.astype(np.float64) - y) ** 2
    if name == "mape":  # percent; targets near zero are floored at 1e-8 in magnitude
        y64 = y.astype(np.float64)
        return 100.0 * np.abs(pred.astype(np.float64) - y64) / np.maximum(np.abs(y64), _MAPE_FLOOR)
    raise ValueError(f"unknown per-sample metric {name!r}")


def finish(name: str, total: float, count: int) -> float:
    """Turn a sum of per-sample quantities into the metric value (NaN for no samples)."""
    if count == 0:
        return float("nan")
    mean = total / count
    return float(np.sqrt(mean)) if name == "rmse" else float(mean)


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Exact ROC AUC (Mann-Whitney U with tied ranks averaged); NaN if one class is absent.

    >>> roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
    """
    n_pos = int(y.sum())
    n_neg = y.shape[0] - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    sorted_scores = score[order]
    ranks = np.empty(score.shape[0], dtype=np.float64)
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    mean_rank = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(mean_rank, counts)
    u = ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


class BinnedAUC:
    """Cumulative ROC AUC over an unbounded stream in constant memory: scores are counted in
    4,096 equal-width bins per class; ties within a bin count half (error below 1e-3 for
    typical score distributions)."""

    def __init__(self) -> None:
        self._pos = np.zeros(_AUC_BINS, dtype=np.int64)
        self._neg = np.zeros(_AUC_BINS, dtype=np.int64)

    def update(self, y: np.ndarray, score: np.ndarray) -> None:
        bins = np.minimum((np.clip(score, 0.0, 1.0) * _AUC_BINS).astype(np.int64), _AUC_BINS - 1)
        self._pos += np.bincount(bins[y == 1], minlength=_AUC_BINS)
        self._neg += np.bincount(bins[y == 0], minlength=_AUC_BINS)

    def value(self) -> float:
        n_pos, n_neg = int(self._pos.sum()), int(self._neg.sum())
        if n_pos == 0 or n_neg == 0:
            return float("nan")
        neg_below = np.cumsum(self._neg) - self._neg
        wins = (self._pos * neg_below).sum() + 0.5 * (self._pos * self._neg).sum()
        return float(wins / (n_pos * n_neg))


class MetricTracker:
    """Cumulative, windowed and since-last-report values of several metrics for one learner."""

    def __init__(
        self, metrics: Sequence[str], task: Task, n_classes: int | None, window: int
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.metrics = check_metrics(metrics, task)
        self.task = task
        self.n_classes = n_classes
        self.window = window
        self.count = 0
        self._since_report = 0
        self._sums = {m: 0.0 for m in self.metrics if m in PER_SAMPLE_METRICS}
        self._batch_sums = dict.fromkeys(self._sums, 0.0)
        self._rings = {m: RingBuffer(window) for m in self._sums}
        self._auc = BinnedAUC() if "roc_auc" in self.metrics else None
        self._auc_window = (RingBuffer(window), RingBuffer(window)) if self._auc else None
        self._keep_proba = self.needs_proba
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []

    @property
    def needs_proba(self) -> bool:
        return any(m in NEEDS_PROBA for m in self.metrics)

    def update(self, y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None = None) -> None:
        """Add a batch of true labels, predictions and (for probability metrics) probabilities.

        Batches are only queued here and scored together at the next :meth:`report`, so
        one-sample batches cost a list append, not a round of numpy calls.
        """
        # y is copied: a stream may reuse its batch buffers
        self._pending.append((y.copy(), pred, proba if self._keep_proba else None))
        self.count += y.shape[0]
        self._since_report += y.shape[0]
        if len(self._pending) >= _MAX_PENDING:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        if len(self._pending) == 1:
            y, pred, proba = self._pending[0]
        else:
            y = np.concatenate([p[0] for p in self._pending])
            pred = np.concatenate([p[1] for p in self._pending])
            proba = np.concatenate([p[2] for p in self._pending]) if self._keep_proba else None
        self._pending.clear()
        for name in self._sums:
            values = per_sample(name, y, pred, proba)
            total = float(values.sum())
            self._sums[name] += total
            self._batch_sums[name] += total
            self._rings[name].extend(values)
        if self._auc is not None:
            score = proba[:, 1].astype(np.float64)
            self._auc.update(y, score)
            self._auc_window[0].extend(y.astype(np.float64))
            self._auc_window[1].extend(score)

    def report(self) -> dict[str, float]:
        """``{metric: cumulative, metric_window: windowed, metric_batch: since last report}``.

        ``metric_batch`` exists for per-sample metrics only (ROC AUC is not additive).
        """
        self._flush()
        out: dict[str, float] = {}
        for name, total in self._sums.items():
            out[name] = finish(name, total, self.count)
            ring = self._rings[name]
            out[f"{name}_window"] = finish(name, ring.total(), len(ring))
            out[f"{name}_batch"] = finish(name, self._batch_sums[name], self._since_report)
            self._batch_sums[name] = 0.0
        if self._auc is not None:
            out["roc_auc"] = self._auc.value()
            labels, scores = self._auc_window
            out["roc_auc_window"] = roc_auc(labels.values().astype(np.int64), scores.values())
        self._since_report = 0
        return out
