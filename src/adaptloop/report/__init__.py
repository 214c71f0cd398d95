"""Reports from a results folder alone: PNG figures and one self-contained HTML page.

:func:`build_report` reads the folder (:mod:`adaptloop.report.data`), draws the figures
(:mod:`adaptloop.report.figures`) and writes the page (:mod:`adaptloop.report.html`). Nothing is
recomputed: the numbers in the tables are those of ``summary.json``; curves are downsampled for
plotting only. Both prequential and continual-learning folders are understood.

>>> import tempfile
>>> from adaptloop.report.synthetic import write_prequential_folder
>>> report = build_report(write_prequential_folder(tempfile.mkdtemp()))
>>> report.html.name, [f.name for f in report.figures]
('report.html', ['stream', 'drifts', 'throughput'])
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from adaptloop.report.data import ReportError, load_results
from adaptloop.report.figures import FigureFile, render_figures
from adaptloop.report.html import render_html

REPORT_FILE = "report.html"
FIGURES_DIR = "figures"


@dataclass
class Report:
    """Where a report was written: the HTML page and the PNG figures."""

    html: Path
    figures: list[FigureFile]


def build_report(
    results_dir: str | Path, out: str | Path | None = None, figures_dir: str | Path | None = None
) -> Report:
    """Write the report of ``results_dir``: ``out`` (default ``results_dir/report.html``) and
    its figures in ``figures_dir`` (default ``figures/`` next to the HTML file).

    Raises :class:`ReportError` (one line naming what is missing) for a missing or partial
    results folder.

    >>> import tempfile
    >>> from adaptloop.report.synthetic import write_continual_folder
    >>> out = Path(tempfile.mkdtemp()) / "site" / "gap.html"
    >>> report = build_report(write_continual_folder(tempfile.mkdtemp()), out)
    >>> report.html == out, sorted(p.name for p in (out.parent / "figures").iterdir())
    (True, ['final.png', 'tasks.png', 'time.png'])
    """
    results = load_results(results_dir)
    html_path = Path(out) if out is not None else Path(results_dir) / REPORT_FILE
    figures_path = Path(figures_dir) if figures_dir is not None else html_path.parent / FIGURES_DIR
    figures = render_figures(results, figures_path)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(render_html(results, figures), encoding="utf-8")
    return Report(html_path, figures)


__all__ = ["FigureFile", "Report", "ReportError", "build_report", "load_results"]
