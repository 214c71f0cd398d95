"""One self-contained HTML page for a run: figures embedded as data URIs, inline CSS, no scripts.

The page opens with what happened in a few sentences (:func:`highlights`), then the main figure,
the tables (from ``summary.json``), the other figures, the experiment file, and the versions and
machine. Nothing in it requests anything from the network.

>>> import tempfile
>>> from adaptloop.report.data import load_results
>>> from adaptloop.report.synthetic import write_prequential_folder
>>> results = load_results(write_prequential_folder(tempfile.mkdtemp()))
>>> page = render_html(results, [])
>>> page.startswith("<!DOCTYPE html>"), "http://" in page or "https://" in page
(True, False)
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from adaptloop import __version__
from adaptloop.report.data import (
    ContinualResults,
    ContinualSequence,
    GraphResults,
    PrequentialResults,
)
from adaptloop.report.figures import FigureFile
from adaptloop.results.metrics import get_metric
from adaptloop.results.tables.common import (
    Column,
    Table,
    best_of,
    format_number,
    plus_minus,
    short_number,
)
from adaptloop.results.tables.continual import SCORES

KEY_PACKAGES = ("numpy", "pyarrow", "pandas", "river", "torch", "matplotlib", "scikit-learn")
"""Packages whose versions the report lists (as installed when the report was built)."""

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
 margin:0;color:#1a1a1a;background:#fafafa;line-height:1.45}
main{max-width:1240px;margin:0 auto;padding:24px 28px 48px;background:#fff}
h1{font-size:1.6em;margin:0 0 4px}h3{font-size:1.05em;margin:18px 0 6px}
h2{font-size:1.2em;margin:28px 0 8px;
 border-bottom:2px solid #0072B2;padding-bottom:3px}
.meta{color:#555;font-size:.92em;margin:0 0 12px}
.glance{background:#eef5fb;border-left:5px solid #0072B2;padding:10px 18px;margin:12px 0}
.glance li{margin:3px 0}
figure{margin:10px 0 18px}figure img{max-width:100%;height:auto;border:1px solid #e3e3e3}
figcaption{color:#444;font-size:.92em;margin-top:4px;max-width:1100px}
table{border-collapse:collapse;font-size:.9em;margin:6px 0 10px}
th,td{padding:4px 10px;border-bottom:1px solid #e3e3e3;text-align:right}
th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}
td.best{font-weight:700;color:#005a8c}td.never{color:#b34700;font-weight:600}
pre{background:#f6f6f6;border:1px solid #e3e3e3;padding:10px;overflow-x:auto;font-size:.86em}
.note{color:#555;font-size:.88em}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def package_versions() -> dict[str, str]:
    """Installed versions of adaptloop's key dependencies (``not installed`` when absent).

    >>> "numpy" in package_versions()
    True
    """
    out = {}
    for name in KEY_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def table_element(table: Table) -> str:
    """``table`` as an HTML ``<table>`` (marked cells get their mark as CSS class)."""
    head = "".join(f"<th>{_e(c.name)}</th>" for c in table.columns)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{c.mark}">{_e(c.text)}</td>' if c.mark else f"<td>{_e(c.text)}</td>"
            for c in row
        )
        + "</tr>"
        for row in table.rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def table_html(table: Table, heading: str = "h2") -> str:
    """``table`` under its title (as ``heading``) and note.

    >>> from adaptloop.results import Cell
    >>> table = Table("Summary", [Column.label("learner")], [[Cell("a", "best")]])
    >>> page = table_html(table)
    >>> page[:16], page.endswith('<td class="best">a</td></tr></tbody></table>')
    ('<h2>Summary</h2>', True)
    """
    note = f"<p class='note'>{_e(table.note)}</p>" if table.note else ""
    return f"<{heading}>{_e(table.title)}</{heading}>{note}{table_element(table)}"


def _grid(header: list[str], rows: list[list[str]]) -> str:
    """A plain two-way table of texts."""
    columns = [Column.label(h) for h in header]
    return table_element(Table("", columns, rows))


# -- prequential -----------------------------------------------------------------------------
def _prequential_highlights(results: PrequentialResults) -> list[str]:
    """What happened in a few plain sentences, from the summary alone.

    >>> import tempfile
    >>> from adaptloop.report.data import load_results
    >>> from adaptloop.report.synthetic import write_prequential_folder
    >>> lines = highlights(load_results(write_prequential_folder(tempfile.mkdtemp())))
    >>> print(lines[0])
    60,000 samples from stream synthetic (binary), 3 learners, 2 known drifts at 20,000 and 40,000.
    """
    summary = results.summary
    stats = summary["learners"]
    stream = summary["stream"]
    metric = results.metric
    higher = get_metric(metric).bigger_is_better
    drifts = stream.get("drifts") or []
    n = stream.get("n_samples") or max(s.get("n_samples", 0) for s in stats.values())
    where = ""
    if drifts:
        places = [f"{d['position']:,}" for d in drifts]
        listed = places[0] if len(places) == 1 else ", ".join(places[:-1]) + " and " + places[-1]
        where = f", {len(drifts)} known drift{'s' if len(drifts) > 1 else ''} at {listed}"
    else:
        where = ", no known drifts"
    lines = [
        f"{n:,} samples from stream {stream.get('name', '?')} ({stream.get('task', '?')}),"
        f" {len(stats)} learner{'s' if len(stats) != 1 else ''}{where}."
    ]
    overall = {name: s.get(metric) for name, s in stats.items()}
    best = best_of(overall, higher)
    worst = best_of(overall, not higher)
    if best is not None:
        line = f"Best {metric} over the whole stream: {best} ({format_number(overall[best])})"
        if worst is not None and worst != best:
            line += f"; worst: {worst} ({format_number(overall[worst])})"
        lines.append(line + ".")
    for d, drift in enumerate(drifts):
        segs = [s for s in summary["drifts"] if int(s.get("drift", -1)) == d]
        if not segs:
            continue
        drops = {s["learner"]: s.get("drop") for s in segs}
        recoveries = {s["learner"]: s.get("recovery") for s in segs}
        parts = []
        least = best_of(drops, False)
        if least is not None and drops[least] < 0:
            parts.append(f"{least} even got better ({format_number(-drops[least], 3)})")
        elif least is not None:
            parts.append(f"smallest drop {least} ({format_number(drops[least], 3)})")
        fastest = best_of({k: v for k, v in recoveries.items() if v is not None}, False)
        if fastest is not None:
            parts.append(
                f"fastest back to its pre-drift level {fastest} ({recoveries[fastest]:,} samples)"
            )
        never = [k for k, v in recoveries.items() if v is None]
        if never:
            parts.append("never recovered: " + ", ".join(never))
        lines.append(f"Drift {d + 1} at {drift['position']:,}: " + "; ".join(parts) + ".")
    alarms = {name: s.get("alarms") or [] for name, s in stats.items()}
    raised = {k: v for k, v in alarms.items() if v}
    if raised:
        lines.append(
            "Drift detector alarms: "
            + "; ".join(f"{k} {len(v)} (first at {v[0]:,})" for k, v in raised.items())
            + "."
        )
    else:
        lines.append("No drift detector raised an alarm.")
    rates = {name: s.get("samples_per_second") for name, s in stats.items()}
    fastest = best_of(rates, True)
    if fastest is not None:
        slowest = best_of(rates, False)
        lines.append(
            f"Fastest: {fastest} ({short_number(rates[fastest])} samples/s); "
            f"slowest: {slowest} ({short_number(rates[slowest])} samples/s)."
        )
    return lines


# -- continual -------------------------------------------------------------------------------
def _seed_list(sequence: ContinualSequence) -> str:
    return ", ".join(sequence.runs)


def _best_scores(sequence: ContinualSequence) -> list[tuple[str, str]]:
    """``(score, "<learner> (<mean ± std>)")`` for the best learner by each score."""
    out = []
    for key, _, label in SCORES:
        values = {name: s.get(key) for name, s in sequence.learners.items()}
        best = best_of(values, True)
        if best is not None:
            std = (sequence.learners[best].get("std") or {}).get(key)
            spread = std if sequence.n_seeds > 1 else None
            out.append((label, f"{best} ({plus_minus(values[best], spread)})"))
    return out


def _continual_highlights(results: ContinualResults) -> list[str]:
    sequences = results.sequences
    n_learners = len(results.learners)
    learners = f"{n_learners} learner{'s' if n_learners != 1 else ''}"
    first = sequences[0]
    if len(sequences) > 1:
        seeds = {s.n_seeds for s in sequences}
        each = ""
        if max(seeds) > 1:
            each = f", each over {first.n_seeds} seeds ({_seed_list(first)})"
            each = each if len(seeds) == 1 else ", over several seeds"
        lines = [
            f"{len(sequences)} task sequences, {learners}{each}: "
            + "; ".join(f"{s.name} ({len(s.tasks)} tasks: {', '.join(s.tasks)})" for s in sequences)
            + "."
        ]
        for sequence in sequences:
            lines.append(_sequence_highlight(sequence))
        return lines
    tasks = ", ".join(first.tasks)
    lines = [f"{len(first.tasks)} tasks trained in sequence ({tasks}), {learners}."]
    if first.n_seeds > 1:
        lines[0] = (
            lines[0][:-1] + f", each over {first.n_seeds} seeds ({_seed_list(first)}): numbers "
            "are means ± standard deviation over the seeds."
        )
    lines += [f"Best {label}: {best}." for label, best in _best_scores(first)]
    return lines + _gap_highlights(first)


def _sequence_highlight(sequence: ContinualSequence) -> str:
    """One line per sequence of a run with several: the best learner by each score and the
    largest stability gap of the first task per learner."""
    stats = sequence.learners
    parts = [f"best {label} {best}" for label, best in _best_scores(sequence)]
    gaps = {name: s.get("max_gap") for name, s in stats.items() if s.get("max_gap") is not None}
    if gaps:
        parts.append(
            f"largest stability gap of {sequence.tasks[0]}: "
            + ", ".join(f"{name} {format_number(gap, 2)}" for name, gap in gaps.items())
        )
    return f"{sequence.name}: " + "; ".join(parts) + "."


def _gap_highlights(sequence: ContinualSequence) -> list[str]:
    """The largest stability gap of the first task per learner, as ``summary.json`` has it
    (the gaps the figure marks and the table lists)."""
    tasks = sequence.tasks
    lines = []
    for name in sequence.learners:
        recorded = [g for g in sequence.gaps(name) if g.get("drop") is not None]
        if recorded:  # as the evaluation measured it (for the first task)
            worst = max(recorded, key=lambda g: g["drop"])
            if worst["drop"] <= 0:
                lines.append(f"{name}: no stability gap on {tasks[0]} (it never dipped).")
                continue
            new = int(worst.get("task", 0))
            back = worst.get("recovery")
            before, low = format_number(worst["before"], 2), format_number(worst["minimum"], 2)
            lines.append(
                f"{name}: largest stability gap on {tasks[0]}: {before} → {low} when "
                f"{tasks[new] if new < len(tasks) else new} started, "
                + (
                    "never back to 95 % before the next task."
                    if back is None
                    else f"back to 95 % after {format_number(back, 1)} iterations."
                )
            )
    return lines


# -- graph -----------------------------------------------------------------------------------
def _graph_highlights(results: GraphResults) -> list[str]:
    """The graph run in a few sentences, from the summary alone.

    >>> summary = {"stream": {"name": "g", "snapshots": 50, "events": [{"at": 20,
    ...            "kind": "failure"}]}, "metrics": ["rmse"], "drifts": [{"learner": "a",
    ...            "after": 0.5, "after_samples": 12, "recovery": 3}],
    ...            "learners": {"a": {"rmse": 0.1}, "b": {"rmse": 0.2}}}
    >>> results = GraphResults(None, summary, None, "rmse", {}, None, None, "day", [20])
    >>> for line in _graph_highlights(results): print(line)
    50 snapshots of g, 2 learners, failure at snapshot 20.
    Best rmse over all snapshots: a (0.1000); worst: b (0.2000).
    From the failure at snapshot 20: a 0.5000 over the first 12 snapshots, back in 3.
    """
    summary, metric = results.summary, results.metric
    stats = summary["learners"]
    stream = summary["stream"]
    events = stream.get("events") or []
    kinds = [str(ev.get("kind", "failure")) for ev in events]
    at = ", ".join(f"{k} at snapshot {ev['at']:,}" for k, ev in zip(kinds, events, strict=True))
    lines = [
        f"{stream.get('snapshots', 0):,} snapshots of {stream.get('name', '?')}, {len(stats)} "
        f"learner{'s' if len(stats) != 1 else ''}, " + (f"{at}." if at else "no failures.")
    ]
    overall = {name: s.get(metric) for name, s in stats.items()}
    higher = get_metric(metric).bigger_is_better
    best, worst = best_of(overall, higher), best_of(overall, not higher)
    if best is not None:
        line = f"Best {metric} over all snapshots: {best} ({format_number(overall[best])})"
        if worst is not None and worst != best:
            line += f"; worst: {worst} ({format_number(overall[worst])})"
        lines.append(line + ".")
    for d, position in enumerate(results.failures):
        segs = [s for s in summary["drifts"] if int(s.get("drift", 0)) == d]
        parts = [
            f"{s['learner']} {format_number(s.get('after'))} over the first "
            f"{format_number(s.get('after_samples'))} snapshots, "
            + ("never back" if s.get("recovery") is None else f"back in {s['recovery']:,}")
            for s in segs
        ]
        kind = kinds[d] if d < len(kinds) else "failure"
        if parts:
            lines.append(f"From the {kind} at snapshot {position:,}: " + "; ".join(parts) + ".")
    return lines


# -- page ------------------------------------------------------------------------------------
def _figure_html(figure: FigureFile) -> str:
    data = base64.b64encode(figure.path.read_bytes()).decode("ascii")
    return (
        f'<figure id="fig-{_e(figure.name)}"><img src="data:image/png;base64,{data}" '
        f'width="{figure.width}" height="{figure.height}" alt="{_e(figure.title)}">'
        f"<figcaption><b>{_e(figure.title)}.</b> {_e(figure.caption)}</figcaption></figure>"
    )


def _environment(results: PrequentialResults | ContinualResults | GraphResults) -> str:
    summary = results.summary
    machine = summary.get("machine") or {}
    ran = summary.get("adaptloop_version") or summary.get("version") or "not recorded"
    rows = [["adaptloop (run)", ran], ["adaptloop (report)", __version__]]
    rows += [[f"{k} (report)", v] for k, v in package_versions().items()]
    machine_rows = [[str(k), str(v)] for k, v in machine.items()]
    for key in ("created", "wall_seconds", "seed"):
        if key in summary:
            value = summary[key]
            machine_rows.append(
                [key, format_number(value, 1) if key == "wall_seconds" else str(value)]
            )
    return (
        "<h2>Versions and machine</h2><p class='note'>The run recorded adaptloop's version "
        "and its machine; the other versions are those installed where this report was "
        "built.</p><div style='display:flex;gap:40px;flex-wrap:wrap'>"
        + _grid(["package", "version"], rows)
        + _grid(["run", "value"], machine_rows or [["machine", "not recorded"]])
        + "</div>"
    )


def _sequence_intro(results: ContinualResults, name: str) -> str:
    """The heading and one line about a task sequence of a run with several."""
    sequence = next(s for s in results.sequences if s.name == name)
    seeds = f", {sequence.n_seeds} seeds ({_seed_list(sequence)})" if sequence.n_seeds > 1 else ""
    return (
        f"<h2>Sequence {_e(sequence.name)}</h2><p class='note'>{len(sequence.tasks)} tasks "
        f"({_e(', '.join(sequence.tasks))}){_e(seeds)}.</p>"
    )


@dataclass(frozen=True)
class PageKind:
    """What the page of one kind of run says: its name, its highlights and the introduction of
    a section (the runs of a kind with several, such as task sequences; None for kinds
    without sections)."""

    label: str
    highlights: Callable
    section_intro: Callable | None = None


KINDS = {
    "prequential": PageKind("prequential", _prequential_highlights),
    "continual": PageKind("continual learning", _continual_highlights, _sequence_intro),
    "graph": PageKind("graph", _graph_highlights),
}
"""The page of each kind of results folder (``summary.json``'s ``"kind"``)."""


def highlights(results: PrequentialResults | ContinualResults | GraphResults) -> list[str]:
    """What happened in a few plain sentences, from the summary alone.

    >>> from adaptloop.report.synthetic import example_results
    >>> print(highlights(example_results("prequential"))[0])
    60,000 samples from stream synthetic (binary), 3 learners, 2 known drifts at 20,000 and 40,000.
    """
    return KINDS[results.kind].highlights(results)


def _sections(
    results: PrequentialResults | ContinualResults | GraphResults, figures: list[FigureFile]
) -> tuple[str, list[FigureFile]]:
    """The main figure and the tables, and the figures left for the end; a run with several
    sections (sequences) gets one each: its first figure, its tables (under ``h3`` headings),
    then its other figures."""
    tables = results.tables()
    names = list(dict.fromkeys(t.section for t in tables if t.section is not None))
    if not names:
        main = "".join(_figure_html(f) for f in figures[:1]) + "".join(map(table_html, tables))
        return main, figures[1:]
    out = ""
    for name in names:
        mine = [f for f in figures if f.sequence == name]
        out += (
            KINDS[results.kind].section_intro(results, name)
            + "".join(_figure_html(f) for f in mine[:1])
            + "".join(table_html(t, "h3") for t in tables if t.section == name)
            + "".join(_figure_html(f) for f in mine[1:])
        )
    return out, [f for f in figures if f.sequence is None]


def render_html(
    results: PrequentialResults | ContinualResults | GraphResults, figures: list[FigureFile]
) -> str:
    """The report page as one HTML string (figures read from their PNG files).

    >>> from adaptloop.report.synthetic import example_results
    >>> page = render_html(example_results("continual"), [])
    >>> "<h2>Final accuracy per task</h2>" in page, "<script" in page
    (True, False)
    """
    summary = results.summary
    name = (
        summary.get("experiment_name")
        or (
            summary.get("stream", {}).get("name")
            if isinstance(summary.get("stream"), dict)
            else None
        )
        or results.folder.name
    )
    meta = [f"{KINDS[results.kind].label} run", f"results folder {results.folder}"]
    if summary.get("created"):
        meta.append(f"created {summary['created']}")
    if summary.get("seed") is not None:
        meta.append(f"seed {summary['seed']}")
    elif len(summary.get("seeds") or []) > 1:
        meta.append("seeds " + ", ".join(str(seed) for seed in summary["seeds"]))
    meta.append(f"{results.n_records:,} records")
    glance = "".join(f"<li>{_e(line)}</li>" for line in highlights(results))
    sections, rest = _sections(results, figures)
    experiment = (
        f"<pre>{_e(results.experiment)}</pre>"
        if results.experiment is not None
        else "<p class='note'>No experiment.toml in the results folder.</p>"
    )
    body = (
        f"<h1>{_e(name)}</h1><p class='meta'>{_e(' · '.join(meta))}</p>"
        f"<div class='glance'><b>At a glance</b><ul>{glance}</ul></div>"
        + sections
        + ("<h2>More figures</h2>" if rest else "")
        + "".join(_figure_html(f) for f in rest)
        + "<h2>Experiment</h2>"
        + experiment
        + _environment(results)
    )
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(name)} — adaptloop report</title><style>{CSS}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )
