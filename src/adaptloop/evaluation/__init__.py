"""Evaluation that shows adaptation: test-then-train over a stream, metrics, drift segments;
its results are written with :func:`write_results` (from :mod:`adaptloop.results`).

>>> from adaptloop.evaluation import prequential, default_metrics
>>> default_metrics("binary")
['accuracy', 'log_loss', 'roc_auc']
"""

from adaptloop.evaluation.drift import drift_segments
from adaptloop.evaluation.metrics import MetricTracker, roc_auc
from adaptloop.evaluation.prequential import PrequentialResult, prequential
from adaptloop.results import check_metrics, default_metrics, write_results

__all__ = [
    "MetricTracker",
    "PrequentialResult",
    "check_metrics",
    "default_metrics",
    "drift_segments",
    "prequential",
    "roc_auc",
    "write_results",
]
