"""Evaluation that shows adaptation: test-then-train over a stream, metrics, drift segments.

>>> from adaptloop.evaluation import prequential, default_metrics
>>> default_metrics("binary")
['accuracy', 'log_loss', 'roc_auc']
"""

from adaptloop.evaluation.drift import drift_segments
from adaptloop.evaluation.metrics import MetricTracker, check_metrics, default_metrics, roc_auc
from adaptloop.evaluation.prequential import RECORD_COLUMNS, PrequentialResult, prequential

__all__ = [
    "RECORD_COLUMNS",
    "MetricTracker",
    "PrequentialResult",
    "check_metrics",
    "default_metrics",
    "drift_segments",
    "prequential",
    "roc_auc",
]
