"""Evaluation on graph streams: test-then-train one snapshot at a time, metrics per snapshot,
link-prediction metrics as TGB reports them, and drift segments at failures.

:func:`graph_prequential` runs every learner over the snapshots of a
:class:`~adaptloop.streams.graphs.GraphStream` (``bounds`` gives them): each snapshot's rows
are predicted by every learner, scored, then learned. Any learner works -- a graph learner sees
a snapshot as one batch, a per-row learner (CfC, MLP, persistence) as rows.

Per snapshot and learner it records:

- regression: ``rmse`` and ``mae`` over the snapshot's rows;
- link prediction (``group_size > 0``: every query is ``group_size`` rows, the true edge
  first): ``roc_auc`` and ``ap`` (ROC AUC and average precision of all rows, positives against
  the sampled negatives) and ``mrr`` (mean over queries of ``1 / rank`` of the true edge among
  its query's negatives; ties count half, the mean of TGB's optimistic and pessimistic ranks);

plus ``predict_seconds`` and ``learn_seconds``. The summary is the mean over snapshots
(weighted by rows for the errors: RMSE from the pooled squared error); drift segments use
:func:`adaptloop.evaluation.drift.segment` with snapshots as positions: ``before`` over the
``window`` snapshots before a failure, ``after`` over the ``after`` snapshots from it,
``recovery`` in snapshots.

The result also describes how the graph drifts (:meth:`GraphStream.timeline
<adaptloop.streams.graphs.GraphStream.timeline>`): TGX's measures over time
(:func:`~adaptloop.streams.graphs.graph_measures`) and the edge x time matrix of a Temporal
Edge Traffic plot (:func:`~adaptloop.streams.graphs.edge_presence`, the first ``max_edges``
edges), which ``summary.json`` keeps as runs of presence (:func:`presence_runs`). It is a
:class:`~adaptloop.results.Result`: ``adaptloop run`` writes its folder (``records.parquet``,
``summary.json`` of kind ``"graph"``) and the report draws TEA, TET, the measures and the
metrics per snapshot from it.

>>> import numpy as np
>>> from adaptloop.streams.graphs import EdgeEvents, EdgeEventStream
>>> from adaptloop.learners.models.graph import EvolveGCNLinkPredictor
>>> events = EdgeEvents.from_arrays([0, 1, 2] * 20, [1, 2, 0] * 20, np.arange(60) * 3600.0)
>>> stream = EdgeEventStream(events=events, unit="hourly", negatives=2, seed=0)
>>> result = graph_prequential(stream, {"egcn": EvolveGCNLinkPredictor(hidden=4)})
>>> sorted(result.summary["egcn"])[:4], len(result.records)
(['ap', 'learn_seconds', 'mrr', 'predict_seconds'], 60)
>>> result.summary_json()["graph"]["measures"]["n_edges"][:3]
[1, 1, 1]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from adaptloop.evaluation.drift import segment
from adaptloop.evaluation.metrics import roc_auc
from adaptloop.learners.base import Learner, is_classifier
from adaptloop.results import json_safe, run_metadata
from adaptloop.results.metrics import LINK_METRICS, get_metric
from adaptloop.results.tables import Table, graph_tables
from adaptloop.streams.base import Drift
from adaptloop.streams.graphs import GraphStream, edge_presence, graph_measures
from adaptloop.validation import Count, NonNegativeReal

__all__ = [
    "GraphResult",
    "average_precision",
    "graph_prequential",
    "link_prediction_metrics",
    "mean_reciprocal_rank",
    "presence_runs",
]


def average_precision(y: np.ndarray, score: np.ndarray) -> float:
    """Average precision (the area under the precision-recall steps, as scikit-learn's
    ``average_precision_score``; tied scores form one step); NaN without positives.

    >>> average_precision(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.1]))
    0.8333333333333333
    """
    y = np.asarray(y)
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-np.asarray(score), kind="mergesort")
    s, t = np.asarray(score)[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the last row of every tie group
    tp = np.cumsum(t)[last]
    precision = tp / (last + 1)
    recall_gain = np.diff(np.r_[0, tp]) / n_pos
    return float(np.sum(precision * recall_gain))


def mean_reciprocal_rank(score: np.ndarray, group_size: int) -> float:
    """MRR of queries of ``group_size`` consecutive scores, the true edge first: the rank of
    the true edge is ``1 + (#negatives scored higher) + (#ties) / 2``.

    >>> mean_reciprocal_rank(np.array([0.9, 0.1, 0.2, 0.1, 0.5, 0.1]), 3)  # ranks 1 and 2.5
    0.7
    """
    groups = np.asarray(score, dtype=np.float64).reshape(-1, group_size)
    true, negatives = groups[:, :1], groups[:, 1:]
    rank = 1.0 + (negatives > true).sum(axis=1) + 0.5 * (negatives == true).sum(axis=1)
    return float(np.mean(1.0 / rank))


def link_prediction_metrics(y: np.ndarray, score: np.ndarray, group_size: int) -> dict:
    """``roc_auc``, ``ap`` and ``mrr`` of rows grouped into queries (see the module doc).

    >>> m = link_prediction_metrics(np.array([1, 0, 1, 0]), np.array([0.9, 0.2, 0.3, 0.4]), 2)
    >>> m["roc_auc"], m["mrr"]
    (0.75, 0.75)
    """
    return {
        "roc_auc": roc_auc(np.asarray(y), np.asarray(score, dtype=np.float64)),
        "ap": average_precision(y, score),
        "mrr": mean_reciprocal_rank(score, group_size),
    }


def presence_runs(presence: np.ndarray) -> list[list[int]]:
    """The ``True`` cells of an edge x snapshot matrix as runs ``[edge, start, stop)``, edge by
    edge (how ``summary.json`` keeps a TET matrix: a link up for days is one run).

    >>> presence_runs(np.array([[1, 1, 0, 1], [0, 0, 0, 0], [0, 1, 1, 1]], dtype=bool))
    [[0, 0, 2], [0, 3, 4], [2, 1, 4]]
    """
    presence = np.asarray(presence, dtype=bool)
    padded = np.zeros((presence.shape[0], presence.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = presence
    rows, starts = np.nonzero(np.diff(padded, axis=1) == 1)
    _, stops = np.nonzero(np.diff(padded, axis=1) == -1)
    return np.column_stack([rows, starts, stops]).tolist()


@dataclass
class GraphResult:
    """What :func:`graph_prequential` measured: ``records`` (one row per learner and snapshot:
    ``learner``, ``snapshot``, ``n``, the metrics, ``predict_seconds``, ``learn_seconds``),
    ``summary`` (per learner: mean metrics, seconds, rows), ``drifts`` (one dict per learner
    and failure: the segment of :func:`adaptloop.evaluation.drift.segment`, positions in
    snapshots), ``stream_summary`` (the stream's name, task, snapshots, rows per query and
    failures / repairs by snapshot) and ``graph`` (the graph over time: ``unit``, ``measures``,
    ``presence``, see the module doc). A :class:`~adaptloop.results.Result`."""

    stream: str
    metrics: list[str]
    records: pa.Table
    summary: dict[str, dict]
    drifts: list[dict] = field(default_factory=list)
    stream_summary: dict = field(default_factory=dict)
    graph: dict = field(default_factory=dict)
    window: int = 12

    def summary_json(self, **extra) -> dict:
        """JSON-ready ``summary.json``: run metadata, the stream, metrics, per-learner
        summaries, drift segments and the graph over time (``extra`` keys at the top level)."""
        graph = dict(self.graph)
        if "presence" in graph:
            presence = np.asarray(graph["presence"])
            graph["presence"] = {"shape": list(presence.shape), "runs": presence_runs(presence)}
        if "measures" in graph:
            graph["measures"] = {k: np.asarray(v).tolist() for k, v in graph["measures"].items()}
        return json_safe(
            {
                "kind": "graph",
                **run_metadata(),
                "stream": {"name": self.stream, **self.stream_summary},
                "metrics": self.metrics,
                "window": self.window,
                "learners": self.summary,
                "drifts": self.drifts,
                "graph": graph,
                **extra,
            }
        )

    def tables(self) -> list[Table]:
        """The summary tables (:func:`~adaptloop.results.tables.graph_tables`)."""
        return graph_tables(self.summary_json())

    def series(self, learner: str, metric: str) -> np.ndarray:
        """One learner's per-snapshot values of ``metric``."""
        rows = self.records.filter(pa.compute.equal(self.records["learner"], learner))
        return rows[metric].to_numpy(zero_copy_only=False)


def _scores(learner: Learner, X: np.ndarray) -> np.ndarray:
    if is_classifier(learner):
        return learner.predict_proba(X)[:, 1]  # type: ignore[attr-defined]
    return learner.predict(X)


def graph_prequential(
    stream: GraphStream,
    learners: Mapping[str, Learner],
    *,
    window: Count = 12,
    after: Count = 12,
    tolerance: NonNegativeReal = 0.5,
    max_snapshots: Count | None = None,
    max_edges: Count = 2_000,
    on_snapshot: Callable[[int], None] | None = None,
) -> GraphResult:
    """Predict, score, then learn every snapshot of ``stream`` with every learner.

    ``window`` / ``after`` / ``tolerance``: the drift segments' parameters, in snapshots, at
    every failure and repair of ``stream.events``; ``max_snapshots``: stop early;
    ``max_edges``: rows of the Temporal Edge Traffic matrix kept (edges in order of first
    appearance); ``on_snapshot(done)``: called after every snapshot with the snapshots done.
    """
    if not learners:
        raise ValueError("no learners to evaluate")
    for name, learner in learners.items():
        if not isinstance(learner, Learner):
            raise ValueError(f"learner {name!r} is not a Learner")
    links = stream.group_size > 0
    metrics = list(LINK_METRICS) if links else ["rmse", "mae"]
    columns: dict[str, dict[str, list]] = {name: {} for name in learners}
    n_snapshots = len(stream.bounds) - 1
    if max_snapshots is not None:
        n_snapshots = min(n_snapshots, max_snapshots)
    for i, X, y in stream.snapshots():
        if i >= n_snapshots:
            break
        for name, learner in learners.items():
            t0 = time.perf_counter()
            score = _scores(learner, X)
            t1 = time.perf_counter()
            learner.learn(X, y)
            t2 = time.perf_counter()
            if links:
                values = link_prediction_metrics(y, score, stream.group_size)
            else:
                error = np.asarray(score, dtype=np.float64) - y
                values = {
                    "rmse": float(np.sqrt(np.mean(error**2))),
                    "mae": float(np.mean(abs(error))),
                }
            row = {"snapshot": i, "n": len(y), **values}
            row |= {"predict_seconds": t1 - t0, "learn_seconds": t2 - t1}
            for key, value in row.items():
                columns[name].setdefault(key, []).append(value)
        if on_snapshot is not None:
            on_snapshot(i + 1)
    tables = [pa.table({"learner": [n] * len(c["snapshot"]), **c}) for n, c in columns.items()]
    summary, drifts = {}, []
    for name, c in columns.items():
        n = np.asarray(c["n"], dtype=np.float64)
        out: dict = {"snapshots": len(n), "rows": int(n.sum())}
        for metric in metrics:
            values = np.asarray(c[metric], dtype=np.float64)
            if not links:  # pooled over rows (RMSE from the pooled squared error)
                out[metric] = get_metric(metric).weighted(values, n)
            else:
                out[metric] = float(np.nanmean(values))
        out["predict_seconds"] = float(np.sum(c["predict_seconds"]))
        out["learn_seconds"] = float(np.sum(c["learn_seconds"]))
        summary[name] = out
        if not links:
            drifts += _segments(name, c, stream, window, after, tolerance)
    events, seconds, unit = stream.timeline()
    stream_summary = {
        "task": stream.info.task,
        "snapshots": n_snapshots,
        "rows": int(stream.bounds[n_snapshots]),
        "group_size": stream.group_size,
        "events": [
            {"at": int(ev["at"]), "kind": str(ev.get("kind", "failure"))}
            for ev in stream.events
            if 0 <= ev["at"] < n_snapshots
        ],
    }
    graph = {
        "unit": unit,
        "measures": graph_measures(events, seconds),
        "presence": edge_presence(events, seconds, max_edges),
    }
    return GraphResult(
        stream.info.name,
        metrics,
        pa.concat_tables(tables),
        summary,
        drifts,
        stream_summary,
        graph,
        window,
    )


def _segments(name: str, c: dict, stream: GraphStream, window, after, tolerance) -> list[dict]:
    """Drift segments of RMSE at every failure / repair, in snapshots."""
    positions = np.asarray(c["snapshot"]) + 1  # a record ends after its snapshot
    counts = np.asarray(c["n"])
    squared = np.asarray(c["rmse"]) ** 2
    cum = np.cumsum(np.r_[0.0, squared * counts])
    cum_n = np.cumsum(np.r_[0, counts])
    lo = np.maximum(0, np.arange(1, len(counts) + 1) - window)
    rolling = np.sqrt((cum[1:] - cum[lo]) / (cum_n[1:] - cum_n[lo]))
    at = sorted(ev["at"] for ev in stream.events if 0 < ev["at"] < len(counts))
    out = []
    for k, position in enumerate(at):
        horizon = at[k + 1] if k + 1 < len(at) else int(positions[-1])
        seg = segment(
            Drift(position),
            positions,
            counts,
            np.sqrt(squared),
            rolling,
            "rmse",
            window,
            after,
            tolerance,
            horizon,
        )
        out.append({"learner": name, "drift": k, **seg})
    return out
