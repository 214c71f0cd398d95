"""Drift-segmented metrics: how good a learner was before each known drift, how far it fell
right after it, and how many samples it needed to recover.

Definitions (``m`` is a per-sample metric such as accuracy or MAE, ``w`` the metric window):

- ``before``: ``m`` over the ``w`` samples just before the drift starts (``position - width/2``);
- ``after``: ``m`` over the first ``after`` samples from the drift position;
- ``drop``: how much worse ``after`` is than ``before`` (positive = worse, in metric units);
- ``recovery``: the number of samples from the drift position to the start of the first full
  window lying after the drift whose ``m`` is within ``tolerance`` (relative) of ``before``;
  ``None`` if that never happens before the next drift or the end of the stream. A learner the
  drift does not hurt has recovery 0.

Values are computed from the per-record ``{m}_batch`` and ``{m}_window`` columns, so their
resolution is the record interval (the batch size by default).

>>> import numpy as np
>>> from adaptloop.streams import Drift
>>> pos = np.arange(100, 1001, 100)
>>> acc = np.where(pos <= 500, 0.9, np.where(pos <= 700, 0.5, 0.9))
>>> seg = segment(Drift(500), pos, np.full(10, 100), acc, acc, "accuracy", 100, 200, 0.02, 1000)
>>> seg["before"], seg["after"], seg["recovery"]
(0.9, 0.5, 200)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from adaptloop.results.metrics import Metric, get_metric
from adaptloop.streams.base import Drift


def _mean_over(positions, counts, batch_values, metric: Metric, lo: int, hi: int) -> float | None:
    """The metric over the records ending in ``(lo, hi]``, from their batch values."""
    mask = (positions > lo) & (positions <= hi)
    if not mask.any():
        return None
    return metric.weighted(batch_values[mask], counts[mask])


def segment(
    drift: Drift,
    positions: np.ndarray,
    counts: np.ndarray,
    batch_values: np.ndarray,
    window_values: np.ndarray,
    metric: str,
    window: int,
    after: int,
    tolerance: float,
    horizon: int,
) -> dict:
    """Before / after / drop / recovery for one learner and one drift (see the module doc).

    ``horizon`` is where the search for recovery stops: the next drift's start or the end.
    """
    scored = get_metric(metric)
    before = _mean_over(positions, counts, batch_values, scored, drift.start - window, drift.start)
    after_value = _mean_over(
        positions, counts, batch_values, scored, drift.position, drift.position + after
    )
    higher = scored.bigger_is_better
    drop = None
    if before is not None and after_value is not None:
        drop = before - after_value if higher else after_value - before
    recovery = None
    if before is not None:
        slack = tolerance * abs(before)
        candidates = (positions >= drift.position + window) & (positions <= horizon)
        ok = window_values >= before - slack if higher else window_values <= before + slack
        hits = np.flatnonzero(candidates & ok)
        if hits.size:
            recovery = max(0, int(positions[hits[0]]) - window - drift.position)
    return {
        "position": drift.position,
        "width": drift.width,
        "metric": metric,
        "before": before,
        "after": after_value,
        "after_samples": after,
        "drop": drop,
        "recovery": recovery,
    }


def drift_segments(
    columns: dict[str, np.ndarray],
    drifts: Sequence[Drift],
    metric: str,
    window: int,
    after: int = 1000,
    tolerance: float = 0.02,
) -> list[dict]:
    """Segments for every learner and drift from record columns (one learner's rows).

    ``columns`` needs ``position``, ``n``, ``{metric}_batch`` and ``{metric}_window``.
    """
    positions = np.asarray(columns["position"])
    counts = np.asarray(columns["n"])
    batch_values = np.asarray(columns[f"{metric}_batch"])
    window_values = np.asarray(columns[f"{metric}_window"])
    end = int(positions[-1]) if positions.size else 0
    out = []
    for i, drift in enumerate(drifts):
        horizon = drifts[i + 1].start if i + 1 < len(drifts) else end
        seg = segment(
            drift,
            positions,
            counts,
            batch_values,
            window_values,
            metric,
            window,
            after,
            tolerance,
            horizon,
        )
        out.append({"drift": i, **seg})
    return out
