"""Per-slot metrics: the stream cut into ``N`` chronological slots of equal length, and every
per-sample metric over each slot, as papers on shifting data report them (accuracy per month,
per chunk of the stream).

Slot ``k`` of a run over ``n`` samples covers samples ``[k n / N, (k + 1) n / N)`` (integer
bounds, :func:`slot_bounds`). A record (the samples ``(position - n_record, position]``) counts
in the slot of its last sample, so the slots' resolution is the record interval (the batch
size by default), as for the drift segments of :mod:`adaptloop.evaluation.drift`. Only
per-sample metrics (accuracy, log loss, MAE, ...) add up over a slot; ROC AUC is left out.

>>> import numpy as np
>>> columns = {"position": np.array([25, 50, 75, 100]), "n": np.array([25, 25, 25, 25]),
...            "accuracy_batch": np.array([1.0, 0.6, 0.4, 0.8])}
>>> [(s["start"], s["end"], s["accuracy"]) for s in slot_metrics(columns, ["accuracy"], 2)]
[(0, 50, 0.8), (50, 100, 0.6)]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from adaptloop.results.metrics import get_metric


def slot_bounds(n: int, slots: int) -> np.ndarray:
    """The ``slots + 1`` sample indices that cut ``n`` samples into equal chronological slots.

    >>> slot_bounds(10, 3).tolist()
    [0, 3, 6, 10]
    """
    if slots < 1:
        raise ValueError(f"slots must be >= 1, got {slots}")
    return (np.arange(slots + 1, dtype=np.int64) * n) // slots


def slot_of(positions: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """The slot of each record, by its last sample (``position - 1``).

    >>> slot_of(np.array([3, 4, 10]), slot_bounds(10, 3)).tolist()
    [0, 1, 2]
    """
    last = np.asarray(positions, dtype=np.int64) - 1
    return np.searchsorted(bounds, last, side="right") - 1


def slot_metrics(
    columns: Mapping[str, np.ndarray], metrics: Sequence[str], slots: int
) -> list[dict]:
    """Every per-sample metric of ``metrics`` over each slot of one learner's records.

    ``columns`` needs ``position``, ``n`` and ``{metric}_batch``; the run's length is the last
    record's position. One dict per slot: ``slot``, ``start``, ``end`` (sample bounds), ``n``
    (samples scored in it) and each metric (``None`` for a slot without a record).
    """
    positions = np.asarray(columns["position"], dtype=np.int64)
    counts = np.asarray(columns["n"], dtype=np.int64)
    total = int(positions[-1]) if positions.size else 0
    bounds = slot_bounds(total, slots)
    owner = slot_of(positions, bounds)
    additive = [get_metric(m) for m in metrics if get_metric(m).additive]
    out = []
    for k in range(slots):
        mask = owner == k
        row: dict = {
            "slot": k,
            "start": int(bounds[k]),
            "end": int(bounds[k + 1]),
            "n": int(counts[mask].sum()),
        }
        for metric in additive:
            values = np.asarray(columns[f"{metric.name}_batch"], dtype=np.float64)[mask]
            row[metric.name] = metric.weighted(values, counts[mask]) if mask.any() else None
        out.append(row)
    return out
