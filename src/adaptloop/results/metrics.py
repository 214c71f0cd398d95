"""Metrics as objects: each :class:`Metric` carries its own facts (direction, whether it needs
probabilities, the tasks it applies to, its per-sample quantity, its axis label), as River's
metrics carry ``bigger_is_better``. Every other module (the evaluation loop, drift segments,
the CLI's and the report's tables, the figures) reads these objects; none keeps a table of its
own.

Adding a metric is one :func:`register_metric` call with a :class:`Metric`.

>>> get_metric("log_loss").bigger_is_better, get_metric("log_loss").needs_proba
(False, True)
>>> default_metrics("regression")
['mae', 'rmse', 'mape']
>>> get_metric("roc_auc").additive
False
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from adaptloop.validation import Task

PerSample = Callable[[np.ndarray, np.ndarray, "np.ndarray | None"], np.ndarray]
"""``(y, pred, proba) -> per-sample values`` whose mean is the metric."""

_EPS = 1e-15
_MAPE_FLOOR = 1e-8


@dataclass(frozen=True)
class Metric:
    """One metric and what every reader needs to know about it.

    ``per_sample`` is ``None`` for a metric that is not a mean of a per-sample quantity (ROC
    AUC, which ranks); ``root`` marks a metric that is the square root of that mean (RMSE).

    >>> m = get_metric("rmse")
    >>> m.finish(8.0, 2), m.direction, m.axis_label
    (2.0, 'lower is better', 'rmse (target units)')
    """

    name: str
    bigger_is_better: bool
    tasks: tuple[Task, ...]
    unit: str = ""
    needs_proba: bool = False
    per_sample: PerSample | None = None
    root: bool = False

    @property
    def additive(self) -> bool:
        """Whether the metric is a mean (or root mean) of a per-sample quantity, so that it
        adds up over samples: windows, batches and drift segments use these."""
        return self.per_sample is not None

    @property
    def direction(self) -> str:
        """``"higher is better"`` or ``"lower is better"`` (for titles and captions)."""
        return "higher is better" if self.bigger_is_better else "lower is better"

    @property
    def axis_label(self) -> str:
        """The name with its unit, for an axis."""
        return f"{self.name} ({self.unit})" if self.unit else self.name

    def finish(self, total: float, count: int) -> float:
        """The metric from a sum of ``count`` per-sample values (NaN for no samples)."""
        if count == 0:
            return float("nan")
        mean = total / count
        return float(np.sqrt(mean)) if self.root else float(mean)

    def weighted(self, values: np.ndarray, weights: np.ndarray) -> float:
        """The metric over several groups of samples, from each group's value and size.

        >>> float(get_metric("rmse").weighted(np.array([3.0, 4.0]), np.array([1, 1])))
        3.5355339059327378
        """
        values, weights = values.astype(np.float64), weights.astype(np.float64)
        if self.root:
            return float(np.sqrt(np.average(values**2, weights=weights)))
        return float(np.average(values, weights=weights))

    def better(self, a: float, b: float) -> bool:
        """Whether value ``a`` is better than ``b``.

        >>> get_metric("mae").better(0.1, 0.2)
        True
        """
        return a > b if self.bigger_is_better else a < b


METRICS: dict[str, Metric] = {}
"""Every metric by name, in registration order (the order of :func:`default_metrics`)."""


def register_metric(metric: Metric) -> Metric:
    """Add ``metric`` to :data:`METRICS` (names are unique)."""
    if metric.name in METRICS:
        raise ValueError(f"metric {metric.name!r} is already registered")
    METRICS[metric.name] = metric
    return metric


def get_metric(name: str) -> Metric:
    """The registered metric called ``name`` (or a link-prediction one, :data:`LINK_METRICS`).

    >>> get_metric("accurasy")
    Traceback (most recent call last):
    ...
    ValueError: unknown metric 'accurasy'; choose from accuracy, log_loss, roc_auc, mae, rmse, mape
    """
    try:
        return METRICS[name] if name in METRICS else LINK_METRICS[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; choose from {', '.join(METRICS)}") from None


def default_metrics(task: Task) -> list[str]:
    """Names of the metrics that apply to ``task``: the default when an experiment names none.

    >>> default_metrics("binary")
    ['accuracy', 'log_loss', 'roc_auc']
    """
    return [name for name, metric in METRICS.items() if task in metric.tasks]


def check_metrics(metrics: Sequence[str], task: Task) -> list[str]:
    """Refuse metric names that do not exist or do not fit the task.

    >>> check_metrics(["accuracy", "mae"], "binary")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: metric 'mae' does not apply to a binary task; choose from accuracy, ...
    """
    allowed = default_metrics(task)
    for name in metrics:
        if name not in allowed:
            raise ValueError(
                f"metric {name!r} does not apply to a {task} task; choose from {', '.join(allowed)}"
            )
    if len(set(metrics)) != len(metrics):
        raise ValueError(f"metrics are listed twice: {list(metrics)}")
    return list(metrics)


# -- per-sample quantities -----------------------------------------------------------------------
def _correct(y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None) -> np.ndarray:
    return (pred == y).astype(np.float64)


def _neg_log_proba(y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None) -> np.ndarray:
    p = proba[np.arange(y.shape[0]), y]
    return -np.log(np.clip(p, _EPS, 1.0))


def _abs_error(y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None) -> np.ndarray:
    return np.abs(pred.astype(np.float64) - y)


def _squared_error(y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None) -> np.ndarray:
    return (pred.astype(np.float64) - y) ** 2


def _abs_percent_error(y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None) -> np.ndarray:
    """Percent; targets near zero are floored at 1e-8 in magnitude."""
    y64 = y.astype(np.float64)
    return 100.0 * np.abs(pred.astype(np.float64) - y64) / np.maximum(np.abs(y64), _MAPE_FLOOR)


CLASSIFICATION: tuple[Task, ...] = ("binary", "multiclass")
register_metric(Metric("accuracy", True, CLASSIFICATION, "fraction correct", per_sample=_correct))
register_metric(
    Metric("log_loss", False, CLASSIFICATION, "nats", needs_proba=True, per_sample=_neg_log_proba)
)
register_metric(Metric("roc_auc", True, ("binary",), "area under ROC", needs_proba=True))
register_metric(Metric("mae", False, ("regression",), "target units", per_sample=_abs_error))
register_metric(
    Metric("rmse", False, ("regression",), "target units", per_sample=_squared_error, root=True)
)
register_metric(Metric("mape", False, ("regression",), "percent", per_sample=_abs_percent_error))

LINK_METRICS: dict[str, Metric] = {
    "roc_auc": METRICS["roc_auc"],
    "ap": Metric("ap", True, ("binary",), "area under precision-recall"),
    "mrr": Metric("mrr", True, ("binary",), "mean reciprocal rank"),
}
"""Temporal link prediction's metrics (:mod:`adaptloop.evaluation.graphs`): ranks of a true
edge among its sampled negatives, per query. Not registered: no stream's evaluation computes
AP or MRR, so an experiment's ``metrics`` cannot name them; :func:`get_metric` knows them."""
