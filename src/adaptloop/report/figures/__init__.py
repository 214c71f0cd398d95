"""Figures of a run as PNG files (matplotlib, Agg canvas, no pyplot state), one module per kind
of run: :mod:`~adaptloop.report.figures.prequential` (also federated runs),
:mod:`~adaptloop.report.figures.continual` and :mod:`~adaptloop.report.figures.graphs`;
:mod:`~adaptloop.report.figures.common` holds the size, palette and shared drawing helpers.

>>> import tempfile
>>> from adaptloop.report.synthetic import example_results
>>> files = render_figures(example_results("prequential"), Path(tempfile.mkdtemp()) / "figures")
>>> [f.name for f in files]
['stream', 'drifts', 'throughput']
>>> files[0].path.read_bytes()[:8] == b"\\x89PNG\\r\\n\\x1a\\n", files[0].width
(True, 1200)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from adaptloop.report.data import ContinualResults, GraphResults, PrequentialResults
from adaptloop.report.figures import continual, graphs, prequential
from adaptloop.report.figures.common import OKABE_ITO, FigureFile, FigureSpec, style, write_figures
from adaptloop.report.figures.continual import (
    continual_time_figure,
    final_accuracy_figure,
    gap_markers,
    task_accuracy_figure,
)
from adaptloop.report.figures.prequential import (
    communication_figure,
    drift_figure,
    metrics_figure,
    stream_figure,
    throughput_figure,
)

SPECS: dict[str, Callable[..., list[FigureSpec]]] = {
    "prequential": prequential.specs,
    "continual": continual.specs,
    "graph": graphs.specs,
}
"""The figures of each kind of results folder (``summary.json``'s ``"kind"``)."""


def render_figures(
    results: PrequentialResults | ContinualResults | GraphResults, out_dir: str | Path
) -> list[FigureFile]:
    """Draw every figure of ``results``, write each as ``out_dir/<name>.png``, describe them.

    >>> import tempfile
    >>> from adaptloop.report.synthetic import example_results
    >>> results = example_results("continual", iterations_per_task=50)
    >>> [(f.name, f.path.name) for f in render_figures(results, tempfile.mkdtemp())]
    [('tasks', 'tasks.png'), ('final', 'final.png'), ('time', 'time.png')]
    """
    return write_figures(SPECS[results.kind](results), Path(out_dir))


__all__ = [
    "OKABE_ITO",
    "SPECS",
    "FigureFile",
    "communication_figure",
    "continual_time_figure",
    "drift_figure",
    "final_accuracy_figure",
    "gap_markers",
    "metrics_figure",
    "render_figures",
    "stream_figure",
    "style",
    "task_accuracy_figure",
    "throughput_figure",
]
