"""Figures of a drifting graph: how it changes (TGX's Temporal Edge Appearance and Temporal Edge
Traffic plots, measures over time) and how learners fare snapshot by snapshot.

The figures take plain arrays: the dict of
:func:`adaptloop.streams.graphs.graph_measures`, the matrix of
:func:`adaptloop.streams.graphs.edge_presence`, per-snapshot metric series (as
:meth:`adaptloop.evaluation.graphs.GraphResult.series` gives them); :func:`graph_figures`
writes them as PNG files for a report.

- **TEA** (:func:`tea_figure`): per snapshot, the edges seen for the first time stacked on the
  edges seen before, with the novelty index in the title (TGX, Gastinger et al. 2024).
- **TET** (:func:`tet_figure`): edges (rows, in order of first appearance) x snapshots; a cell
  is coloured where the edge occurs: its first occurrence, or a repeat.
- **Measures** (:func:`measures_figure`): active nodes, distinct edges, average degree, novelty.
- **Per-snapshot metric** (:func:`snapshot_metric_figure`): one line per learner, failures
  marked.

>>> import tempfile
>>> from pathlib import Path
>>> from adaptloop.streams.graphs import EdgeEvents, edge_presence, graph_measures
>>> e = EdgeEvents.from_arrays([0, 1, 0, 2], [1, 2, 1, 0], [0, 90_000, 180_000, 200_000])
>>> files = graph_figures(Path(tempfile.mkdtemp()), graph_measures(e), edge_presence(e))
>>> [f.name for f in files]
['tea', 'tet', 'measures']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from adaptloop.report.data import GraphResults
from adaptloop.report.figures.common import (
    OKABE_ITO,
    Boundary,
    FigureFile,
    FigureSpec,
    finish,
    grid,
    new_figure,
    style,
    write_figures,
)
from adaptloop.results.metrics import get_metric

__all__ = [
    "graph_figures",
    "specs",
    "measures_figure",
    "snapshot_metric_figure",
    "tea_figure",
    "tet_figure",
]

NEW, REPEATED = OKABE_ITO[1], OKABE_ITO[0]


def tea_figure(measures: Mapping[str, np.ndarray], unit: str = "snapshot") -> Figure:
    """TGX's Temporal Edge Appearance plot: new and repeated edges per snapshot.

    >>> m = {"snapshot": np.arange(3), "new_edges": np.array([3, 1, 0]),
    ...      "repeated_edges": np.array([0, 2, 2]), "novelty": np.array([1.0, 1 / 3, 0.0])}
    >>> tea_figure(m).axes[0].get_ylabel()
    'edges'
    """
    fig = new_figure(3.6)
    ax = fig.subplots()
    x = np.asarray(measures["snapshot"])
    new, repeated = np.asarray(measures["new_edges"]), np.asarray(measures["repeated_edges"])
    ax.bar(x, repeated, width=1.0, color=REPEATED, label="repeated (seen before)")
    ax.bar(x, new, bottom=repeated, width=1.0, color=NEW, label="new (first seen)")
    ax.set_xlabel(unit)
    ax.set_ylabel("edges")
    ax.set_xlim(x[0] - 0.5, x[-1] + 0.5)
    grid(ax, "y")
    novelty = float(np.nanmean(np.asarray(measures["novelty"], dtype=np.float64)))
    return finish(fig, f"Temporal Edge Appearance (novelty index {novelty:.2f})")


def tet_figure(presence: np.ndarray, unit: str = "snapshot") -> Figure:
    """TGX's Temporal Edge Traffic plot: where each edge (row, by first appearance) occurs.

    >>> tet_figure(np.array([[1, 0, 1], [0, 1, 1]], dtype=bool)).axes[0].get_xlabel()
    'snapshot'
    """
    presence = np.asarray(presence, dtype=bool)
    first = np.zeros_like(presence)
    rows = np.flatnonzero(presence.any(axis=1))
    first[rows, presence[rows].argmax(axis=1)] = True
    image = np.where(first, 1, np.where(presence, 2, 0))
    fig = new_figure(4.2)
    ax = fig.subplots()
    cmap = ListedColormap(["#ffffff", NEW, REPEATED])
    ax.imshow(image, aspect="auto", interpolation="nearest", cmap=cmap, vmin=0, vmax=2)
    ax.set_xlabel(unit)
    ax.set_ylabel("edge (by first appearance)")
    handles = [Patch(color=NEW, label="first occurrence"), Patch(color=REPEATED, label="repeat")]
    return finish(fig, f"Temporal Edge Traffic ({len(presence):,} edges)", handles)


def measures_figure(measures: Mapping[str, np.ndarray], unit: str = "snapshot") -> Figure:
    """Active nodes, distinct edges, average degree and novelty per snapshot.

    >>> m = {"snapshot": np.arange(2), "n_nodes": np.array([2, 3]), "n_edges": np.array([1, 2]),
    ...      "average_degree": np.array([1.0, 1.3]), "novelty": np.array([1.0, 0.5])}
    >>> [ax.get_ylabel() for ax in measures_figure(m).axes]
    ['active nodes', 'distinct edges', 'average degree', 'novelty']
    """
    fig = new_figure(5.0)
    axes = fig.subplots(2, 2, sharex=True).ravel()
    x = np.asarray(measures["snapshot"])
    keys = (
        ("n_nodes", "active nodes"),
        ("n_edges", "distinct edges"),
        ("average_degree", "average degree"),
        ("novelty", "novelty"),
    )
    for i, (ax, (key, label)) in enumerate(zip(axes, keys, strict=True)):
        ax.plot(x, np.asarray(measures[key], dtype=np.float64), color=OKABE_ITO[i % 4], lw=1.2)
        ax.set_ylabel(label)
        grid(ax)
    for ax in axes[2:]:
        ax.set_xlabel(unit)
    fig.suptitle("The graph over time", x=0.01, ha="left", fontsize=11)
    return fig


def snapshot_metric_figure(
    series: Mapping[str, np.ndarray | tuple[np.ndarray, np.ndarray]],
    metric: str,
    failures: Sequence[int] = (),
    unit: str = "snapshot",
    zoom: tuple[int, int] | None = None,
    log: bool = False,
) -> Figure:
    """One line per learner of ``metric`` per snapshot (``series``: learner -> values, or
    ``(snapshots, values)``); failures as dashed lines; ``zoom``: the snapshot range shown;
    ``log``: a log scale (errors that span orders of magnitude around a failure).

    >>> fig = snapshot_metric_figure({"a": np.array([0.1, 0.5, 0.2])}, "rmse", failures=[1])
    >>> fig.axes[0].get_ylabel()
    'rmse'
    """
    fig = new_figure(3.8)
    ax = fig.subplots()
    for i, (name, values) in enumerate(series.items()):
        x, y = values if isinstance(values, tuple) else (np.arange(len(values)), values)
        ax.plot(x, y, lw=1.1, label=name, **style(i))
    for at in failures:
        Boundary.line(ax, at)
    if zoom is not None:
        ax.set_xlim(*zoom)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(unit)
    ax.set_ylabel(metric)
    grid(ax)
    handles = ax.get_legend_handles_labels()[0]
    if failures:
        handles.append(Boundary.handle("failure"))
    return finish(fig, f"{metric} per {unit}", handles)


def graph_figures(
    out_dir: str | Path,
    measures: Mapping[str, np.ndarray] | None = None,
    presence: np.ndarray | None = None,
    series: Mapping[str, np.ndarray] | None = None,
    metric: str = "rmse",
    failures: Sequence[int] = (),
    unit: str = "snapshot",
) -> list[FigureFile]:
    """Write the figures that the given data allow: TEA and measures (``measures``), TET
    (``presence``), per-snapshot ``metric`` (``series``: learner -> values), as PNG files in
    ``out_dir``; return their descriptions."""
    specs: list[FigureSpec] = []
    if measures is not None:
        specs.append(
            (
                "tea",
                lambda: tea_figure(measures, unit),
                "Temporal Edge Appearance",
                "New and repeated edges per snapshot (TGX's TEA plot).",
                None,
            )
        )
    if presence is not None:
        specs.append(
            (
                "tet",
                lambda: tet_figure(presence, unit),
                "Temporal Edge Traffic",
                "Where every edge occurs over time, edges in order of first appearance.",
                None,
            )
        )
    if measures is not None:
        specs.append(
            (
                "measures",
                lambda: measures_figure(measures, unit),
                "Measures over time",
                "Active nodes, distinct edges, average degree and novelty per snapshot.",
                None,
            )
        )
    if series is not None:
        specs.append(
            (
                f"{metric}_per_snapshot",
                lambda: snapshot_metric_figure(series, metric, failures, unit),
                f"{metric} per snapshot",
                f"Every learner's {metric} per snapshot; dashed lines mark failures.",
                None,
            )
        )
    return write_figures(specs, Path(out_dir))


AROUND = (24, 48)
"""Snapshots shown before and after the first failure in the zoomed metric figure."""


def specs(results: GraphResults) -> list[FigureSpec]:
    """The figures of a graph run (``summary.json`` kind ``"graph"``): the primary metric per
    snapshot (and zoomed on the first failure), then TEA, TET and the measures over time."""
    metric, failures, unit = results.metric, results.failures, results.unit
    series = results.series[metric]
    out: list[FigureSpec] = [
        (
            f"{metric}_per_snapshot",
            lambda: snapshot_metric_figure(series, metric, failures),
            f"{metric} per snapshot",
            f"Every learner's {metric} on each snapshot, predicted before it was learned"
            + ("; dashed lines mark failures and repairs." if failures else "."),
            None,
        )
    ]
    if failures:
        at = failures[0]
        zoom = (max(0, at - AROUND[0]), at + AROUND[1])
        log = not get_metric(metric).bigger_is_better
        out.append(
            (
                "around_failure",
                lambda: snapshot_metric_figure(series, metric, failures, zoom=zoom, log=log),
                f"{metric} around the first failure",
                f"The same{' on a log scale' if log else ''}, from {AROUND[0]} snapshots before "
                f"the failure at snapshot {at} to "
                f"{AROUND[1]} after it: the failure snapshot itself (no model knows of it), then"
                " how fast each learner settles on the new topology.",
                None,
            )
        )
    measures, presence = results.measures, results.presence
    if measures is not None:
        out.append(
            (
                "tea",
                lambda: tea_figure(measures, unit),
                "Temporal Edge Appearance",
                f"New and repeated edges per {unit} (TGX's TEA plot): edges seen for the first "
                "time on top of edges seen before; the title gives the novelty index.",
                None,
            )
        )
    if presence is not None:
        out.append(
            (
                "tet",
                lambda: tet_figure(presence, unit),
                "Temporal Edge Traffic",
                f"Where every edge occurs, per {unit} (TGX's TET plot), edges in order of first "
                f"appearance ({len(presence):,} shown): a gap in a row is an edge absent then.",
                None,
            )
        )
    if measures is not None:
        out.append(
            (
                "measures",
                lambda: measures_figure(measures, unit),
                "Measures over time",
                f"Active nodes, distinct edges, average degree and novelty per {unit}.",
                None,
            )
        )
    return out
