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

from adaptloop.results.metrics import check_metrics, default_metrics, get_metric
from adaptloop.validation import Task

__all__ = [
    "BinnedAUC",
    "MetricTracker",
    "ValueWindow",
    "check_metrics",
    "default_metrics",
    "roc_auc",
]

_AUC_BINS = 4096
_MAX_PENDING = 4096  # queued batches before they are scored (bounds memory)


class ValueWindow:
    """The last ``capacity`` values of a float64 series, written batch-wise (a metric's
    sliding window).

    >>> ring = ValueWindow(3)
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

    def load_values(self, values: np.ndarray) -> None:
        """Replace the contents with ``values`` (oldest first), as :meth:`values` returned."""
        self._next, self._size = 0, 0
        self._data[:] = 0.0
        self.extend(np.asarray(values, dtype=np.float64))


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

    def counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-bin counts of positives and negatives (copies)."""
        return self._pos.copy(), self._neg.copy()

    def load_counts(self, pos: np.ndarray, neg: np.ndarray) -> None:
        """Restore what :meth:`counts` returned."""
        self._pos = np.asarray(pos, dtype=np.int64).reshape(_AUC_BINS).copy()
        self._neg = np.asarray(neg, dtype=np.int64).reshape(_AUC_BINS).copy()

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
        self._additive = [get_metric(m) for m in self.metrics if get_metric(m).additive]
        self._sums = {m.name: 0.0 for m in self._additive}
        self._batch_sums = dict.fromkeys(self._sums, 0.0)
        self._rings = {m: ValueWindow(window) for m in self._sums}
        self._auc = BinnedAUC() if "roc_auc" in self.metrics else None
        self._auc_window = (ValueWindow(window), ValueWindow(window)) if self._auc else None
        self._keep_proba = self.needs_proba
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []

    @property
    def needs_proba(self) -> bool:
        return any(get_metric(m).needs_proba for m in self.metrics)

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
        for metric in self._additive:
            name = metric.name
            values = metric.per_sample(y, pred, proba)
            total = float(values.sum())
            self._sums[name] += total
            self._batch_sums[name] += total
            self._rings[name].extend(values)
        if self._auc is not None:
            score = proba[:, 1].astype(np.float64)
            self._auc.update(y, score)
            self._auc_window[0].extend(y.astype(np.float64))
            self._auc_window[1].extend(score)

    def state_dict(self) -> dict:
        """Everything counted, as plain values and arrays (for the service's checkpoints); the
        metrics, task, classes and window are the constructor's.

        >>> tracker = MetricTracker(["accuracy"], task="binary", n_classes=2, window=4)
        >>> tracker.update(np.array([0, 1, 1]), np.array([0, 1, 0]))
        >>> again = MetricTracker(["accuracy"], task="binary", n_classes=2, window=4)
        >>> again.load_state_dict(tracker.state_dict())
        >>> again.report()["accuracy"] == tracker.report()["accuracy"]
        True
        """
        self._flush()
        state: dict = {
            "count": self.count,
            "since_report": self._since_report,
            "sums": dict(self._sums),
            "batch_sums": dict(self._batch_sums),
            "rings": {name: ring.values() for name, ring in self._rings.items()},
        }
        if self._auc is not None:
            pos, neg = self._auc.counts()
            labels, scores = self._auc_window
            state["auc"] = {"pos": pos, "neg": neg, "y": labels.values(), "score": scores.values()}
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned (``ValueError`` when its metrics differ)."""
        if set(state.get("sums", {})) != set(self._sums) or ("auc" in state) != bool(self._auc):
            raise ValueError("tracker state: its metrics differ from this tracker's")
        self._pending.clear()
        self.count, self._since_report = int(state["count"]), int(state["since_report"])
        self._sums = {k: float(v) for k, v in state["sums"].items()}
        self._batch_sums = {k: float(v) for k, v in state["batch_sums"].items()}
        for name, ring in self._rings.items():
            ring.load_values(state["rings"][name])
        if self._auc is not None:
            auc = state["auc"]
            self._auc.load_counts(auc["pos"], auc["neg"])
            self._auc_window[0].load_values(auc["y"])
            self._auc_window[1].load_values(auc["score"])

    def report(self) -> dict[str, float]:
        """``{metric: cumulative, metric_window: windowed, metric_batch: since last report}``.

        ``metric_batch`` exists for per-sample metrics only (ROC AUC is not additive).
        """
        self._flush()
        out: dict[str, float] = {}
        for metric in self._additive:
            name = metric.name
            out[name] = metric.finish(self._sums[name], self.count)
            ring = self._rings[name]
            out[f"{name}_window"] = metric.finish(ring.total(), len(ring))
            out[f"{name}_batch"] = metric.finish(self._batch_sums[name], self._since_report)
            self._batch_sums[name] = 0.0
        if self._auc is not None:
            out["roc_auc"] = self._auc.value()
            labels, scores = self._auc_window
            out["roc_auc_window"] = roc_auc(labels.values().astype(np.int64), scores.values())
        self._since_report = 0
        return out
