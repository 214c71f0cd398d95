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
import math
from importlib.metadata import PackageNotFoundError, version

from adaptloop import __version__
from adaptloop.report.data import (
    ContinualResults,
    ContinualSequence,
    PrequentialResults,
    higher_is_better,
)
from adaptloop.report.figures import FigureFile, short_number

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


def _fmt(value: object, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


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


def _table(header: list[str], rows: list[list[tuple[str, str]]]) -> str:
    """``rows`` of (text, css class) cells."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{c}">{_e(t)}</td>' if c else f"<td>{_e(t)}</td>" for t, c in row)
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _best(values: dict[str, float | None], higher: bool) -> str | None:
    known = {k: v for k, v in values.items() if v is not None and math.isfinite(v)}
    if not known:
        return None
    return (max if higher else min)(known, key=known.get)


# -- prequential -----------------------------------------------------------------------------
def highlights(results: PrequentialResults | ContinualResults) -> list[str]:
    """What happened in a few plain sentences, from the summary alone.

    >>> import tempfile
    >>> from adaptloop.report.data import load_results
    >>> from adaptloop.report.synthetic import write_prequential_folder
    >>> lines = highlights(load_results(write_prequential_folder(tempfile.mkdtemp())))
    >>> print(lines[0])
    60,000 samples from stream synthetic (binary), 3 learners, 2 known drifts at 20,000 and 40,000.
    """
    if isinstance(results, ContinualResults):
        return _continual_highlights(results)
    summary = results.summary
    stats = summary["learners"]
    stream = summary["stream"]
    metric = results.metric
    higher = higher_is_better(metric)
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
    best = _best(overall, higher)
    worst = _best(overall, not higher)
    if best is not None:
        line = f"Best {metric} over the whole stream: {best} ({_fmt(overall[best])})"
        if worst is not None and worst != best:
            line += f"; worst: {worst} ({_fmt(overall[worst])})"
        lines.append(line + ".")
    for d, drift in enumerate(drifts):
        segs = [s for s in summary["drifts"] if int(s.get("drift", -1)) == d]
        if not segs:
            continue
        drops = {s["learner"]: s.get("drop") for s in segs}
        recoveries = {s["learner"]: s.get("recovery") for s in segs}
        parts = []
        least = _best(drops, higher=False)
        if least is not None and drops[least] < 0:
            parts.append(f"{least} even got better ({_fmt(-drops[least], 3)})")
        elif least is not None:
            parts.append(f"smallest drop {least} ({_fmt(drops[least], 3)})")
        fastest = _best({k: v for k, v in recoveries.items() if v is not None}, higher=False)
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
    fastest = _best(rates, higher=True)
    if fastest is not None:
        slowest = _best(rates, higher=False)
        lines.append(
            f"Fastest: {fastest} ({short_number(rates[fastest])} samples/s); "
            f"slowest: {slowest} ({short_number(rates[slowest])} samples/s)."
        )
    return lines


def _prequential_tables(results: PrequentialResults) -> str:
    summary = results.summary
    stats = summary["learners"]
    metrics = list(summary["metrics"])
    window = int(summary["window"])
    header = [
        "learner",
        *metrics,
        f"{results.metric} last {window:,}",
        "samples/s",
        "predict s",
        "learn s",
        "alarms",
    ]
    best = {m: _best({k: s.get(m) for k, s in stats.items()}, higher_is_better(m)) for m in metrics}
    rows = []
    for name, s in stats.items():
        rows.append(
            [
                (name, ""),
                *((_fmt(s.get(m)), "best" if best[m] == name else "") for m in metrics),
                (_fmt(s.get(f"{results.metric}_window")), ""),
                (short_number(s["samples_per_second"] or 0), ""),
                (_fmt(s.get("predict_seconds"), 3), ""),
                (_fmt(s.get("learn_seconds"), 3), ""),
                (f"{len(s.get('alarms') or []):,}", ""),
            ]
        )
    out = (
        "<h2>Summary</h2><p class='note'>Metrics over the whole stream (best in bold) and "
        f"over the last {window:,} samples; throughput over predict and learn.</p>"
        + _table(header, rows)
    )
    if summary["drifts"]:
        first = summary["drifts"][0]
        metric, after = first.get("metric", results.metric), first.get("after_samples")
        header = [
            "learner",
            "drift",
            "at",
            f"{metric} before",
            f"first {_fmt(after)} after",
            "drop",
            "when recovered",
            "recovery (samples)",
        ]
        rows = []
        for seg in summary["drifts"]:
            recovered = results.recovered.get((seg["learner"], int(seg.get("drift", 0))))
            recovery = seg.get("recovery")
            rows.append(
                [
                    (seg["learner"], ""),
                    (str(int(seg.get("drift", 0)) + 1), ""),
                    (_fmt(seg.get("position")), ""),
                    (_fmt(seg.get("before")), ""),
                    (_fmt(seg.get("after")), ""),
                    (_fmt(seg.get("drop")), ""),
                    (_fmt(recovered), ""),
                    ("never", "never") if recovery is None else (_fmt(recovery), ""),
                ]
            )
        out += (
            "<h2>Around each drift</h2><p class='note'>before: the window before the drift;"
            f" after: the first {_fmt(after)} samples from the drift; drop: how much worse "
            "(positive = worse); recovery: samples from the drift to the start of the first"
            " full window back within tolerance of the pre-drift level.</p>" + _table(header, rows)
        )
    return out


# -- continual -------------------------------------------------------------------------------
def _pm(value: object, std: object, digits: int = 4) -> str:
    """``value ± std`` (``value`` alone when ``std`` is None).

    >>> _pm(0.81234, 0.0123), _pm(0.5, None), _pm(None, 0.1)
    ('0.8123 ± 0.0123', '0.5000', '–')
    """
    if std is None or value is None:
        return _fmt(value, digits)
    return f"{_fmt(value, digits)} ± {_fmt(float(std), digits)}"


def _seed_list(sequence: ContinualSequence) -> str:
    return ", ".join(sequence.runs)


def _std(sequence: ContinualSequence, learner: str, key: str) -> float | None:
    """The standard deviation over seeds of a learner's ``key``; None with a single seed."""
    if sequence.n_seeds == 1:
        return None
    return (sequence.learners[learner].get("std") or {}).get(key)


SCORES = (
    ("avg_acc", "final average accuracy"),
    ("min_acc", "min-ACC (worst dip of earlier tasks)"),
    ("wc_acc", "worst-case accuracy (WC-ACC)"),
)


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
    stats = first.learners
    for key, label in SCORES:
        values = {name: s.get(key) for name, s in stats.items()}
        best = _best(values, True)
        if best is not None:
            spread = _std(first, best, key)
            lines.append(f"Best {label}: {best} ({_pm(values[best], spread)}).")
    return lines + _gap_highlights(results, first)


def _sequence_highlight(sequence: ContinualSequence) -> str:
    """One line per sequence of a run with several: the best learner by each score and the
    largest stability gap of the first task per learner."""
    stats = sequence.learners
    parts = []
    for key, label in SCORES:
        values = {name: s.get(key) for name, s in stats.items()}
        best = _best(values, True)
        if best is not None:
            spread = _std(sequence, best, key)
            parts.append(f"best {label} {best} ({_pm(values[best], spread)})")
    gaps = {name: s.get("max_gap") for name, s in stats.items() if s.get("max_gap") is not None}
    if gaps:
        parts.append(
            f"largest stability gap of {sequence.tasks[0]}: "
            + ", ".join(f"{name} {_fmt(gap, 2)}" for name, gap in gaps.items())
        )
    return f"{sequence.name}: " + "; ".join(parts) + "."


def _gap_highlights(results: ContinualResults, sequence: ContinualSequence) -> list[str]:
    from adaptloop.report.figures import stability_gaps

    tasks = sequence.tasks
    lines = []
    for name, s in sequence.learners.items():
        recorded = [g for g in s.get("gaps") or [] if g.get("drop") is not None]
        if recorded:  # as the evaluation measured it (for the first task)
            worst = max(recorded, key=lambda g: g["drop"])
            if worst["drop"] <= 0:
                lines.append(f"{name}: no stability gap on {tasks[0]} (it never dipped).")
                continue
            new = int(worst.get("task", 0))
            back = worst.get("recovery")
            lines.append(
                f"{name}: largest stability gap on {tasks[0]}: {_fmt(worst['before'], 2)} → "
                f"{_fmt(worst['minimum'], 2)} when {tasks[new] if new < len(tasks) else new} "
                "started, "
                + (
                    "never back to 95 % before the next task."
                    if back is None
                    else f"back to 95 % after {_fmt(back, 1)} iterations."
                )
            )
            continue
        gaps = stability_gaps(sequence, name)
        if gaps:
            worst = max(gaps, key=lambda g: g["gap"])
            lines.append(
                f"{name}: largest stability gap {worst['gap']:.2f}: accuracy on "
                f"{tasks[worst['task']]} fell from {worst['before']:.2f} to "
                f"{worst['accuracy']:.2f} after {tasks[worst['boundary']]} started."
            )
    return lines


def _numeric(key: str) -> tuple:
    return (0, float(key), "") if str(key).replace(".", "", 1).isdigit() else (1, 0.0, str(key))


def _recovery_cell(gap: dict, n_seeds: int) -> tuple[str, str]:
    """The recovery of a gap: iterations (the mean over seeds if all recovered), ``never``, or
    how many seeds never recovered.

    >>> _recovery_cell({"recovery": 3}, 1), _recovery_cell({"recovery": 2.5}, 2)
    (('3', ''), ('2.5', ''))
    >>> _recovery_cell({"recovery": None, "recoveries": [4, None, None]}, 3)
    ('never in 2 of 3 seeds', 'never')
    """
    back = gap.get("recovery")
    if back is not None:
        return (_fmt(back), "") if n_seeds == 1 else (_fmt(float(back), 1), "")
    missing = [r for r in gap.get("recoveries") or [] if r is None]
    if n_seeds > 1 and 0 < len(missing) < n_seeds:
        return f"never in {len(missing)} of {n_seeds} seeds", "never"
    return "never", "never"


def _continual_tables(
    results: ContinualResults, sequence: ContinualSequence | None = None, heading: str = "h2"
) -> str:
    """The tables of ``sequence`` (default: the first): summary, final accuracy per task,
    stability gap and, with several seeds, each seed's numbers; headings as ``heading``."""
    sequence = sequence or results.sequences[0]
    stats = sequence.learners
    tasks = sequence.tasks
    n_seeds = sequence.n_seeds
    spread = n_seeds > 1
    wf_keys = sorted({k for s in stats.values() for k in (s.get("wf") or {})}, key=_numeric)
    wp_keys = sorted({k for s in stats.values() for k in (s.get("wp") or {})}, key=_numeric)
    header = ["learner"] + ["seeds"] * spread + ["avg acc", "min-ACC", "WC-ACC"]
    header += [f"WF {k}" for k in wf_keys] + [f"WP {k}" for k in wp_keys]
    header += ["train s", "eval s"]
    scores = ("avg_acc", "min_acc", "wc_acc")
    best = {k: _best({n: s.get(k) for n, s in stats.items()}, True) for k in scores}
    rows = []
    for name, s in stats.items():
        wf, wp = s.get("wf") or {}, s.get("wp") or {}
        std = (s.get("std") or {}) if spread else {}
        row = [(name, "")] + [(str(n_seeds), "")] * spread
        row += [(_pm(s.get(k), std.get(k)), "best" if best[k] == name else "") for k in scores]
        row += [(_pm(wf.get(k), (std.get("wf") or {}).get(k)), "") for k in wf_keys]
        row += [(_pm(wp.get(k), (std.get("wp") or {}).get(k)), "") for k in wp_keys]
        row += [(_fmt(s.get("train_seconds"), 2), ""), (_fmt(s.get("eval_seconds"), 2), "")]
        rows.append(row)
    over = (
        f" With {n_seeds} seeds ({_seed_list(sequence)}), each cell is the mean ± the standard "
        "deviation over the seeds (population, as summary.json records it; seconds: the mean "
        "per run); each seed's own numbers are in the last table."
        if spread
        else ""
    )
    out = (
        f"<{heading}>Summary</{heading}><p class='note'>avg acc: final accuracy averaged over "
        "tasks; min-ACC: average over earlier tasks of their lowest accuracy after being learned;"
        " WC-ACC: worst-case accuracy; WF / WP: windowed forgetting / plasticity over the given "
        f"number of iterations (best in bold).{_e(over)}</p>" + _table(header, rows)
    )
    task_rows = []
    for name, s in stats.items():
        finals = list(s.get("final_task_acc") or [])[: len(tasks)]
        finals += [None] * (len(tasks) - len(finals))
        stds = sequence.final_task_std(name) if spread else [None] * len(tasks)
        cells = [(_pm(v, d), "") for v, d in zip(finals, stds, strict=True)]
        task_rows.append([(name, ""), *cells])
    out += f"<{heading}>Final accuracy per task</{heading}>" + _table(
        ["learner", *tasks], task_rows
    )
    gap_rows = []
    for name, s in stats.items():
        for gap in s.get("gaps") or []:
            new = int(gap.get("task", 0))
            gap_rows.append(
                [
                    (name, ""),
                    (tasks[new] if 0 <= new < len(tasks) else str(new), ""),
                    (_fmt(gap.get("switch")), ""),
                    (_fmt(gap.get("before")), ""),
                    (_fmt(gap.get("minimum")), ""),
                    (_fmt(gap.get("drop")), ""),
                    _recovery_cell(gap, n_seeds),
                ]
            )
    if gap_rows:
        header = ["learner", "new task", "at iteration", "before", "lowest", "gap", "recovery"]
        out += (
            f"<{heading}>Stability gap of {_e(tasks[0])}</{heading}><p class='note'>Accuracy on "
            "the first task just before each new task starts, its lowest point shortly after, "
            "and the iterations until it is back to 95 % of the level before"
            + (f" (means over the {n_seeds} seeds)." if spread else ".")
            + "</p>"
            + _table(header, gap_rows)
        )
    if spread:
        out += _per_seed_table(sequence, heading, wf_keys)
    return out


def _per_seed_table(sequence: ContinualSequence, heading: str, wf_keys: list[str]) -> str:
    """Each seed's own scores per learner (from ``summary.json``'s per-seed entries)."""
    header = ["learner", "seed", "avg acc", "min-ACC", "WC-ACC"]
    header += [f"WF {k}" for k in wf_keys] + [f"final {t}" for t in sequence.tasks] + ["max gap"]
    rows = []
    for name in sequence.learners:
        for seed, run in sequence.runs.items():
            s = run.get(name)
            if s is None:
                continue
            finals = list(s.get("final_task_acc") or [])[: len(sequence.tasks)]
            finals += [None] * (len(sequence.tasks) - len(finals))
            row = [(name, ""), (seed, "")]
            row += [(_fmt(s.get(k)), "") for k in ("avg_acc", "min_acc", "wc_acc")]
            row += [(_fmt((s.get("wf") or {}).get(k)), "") for k in wf_keys]
            row += [(_fmt(v), "") for v in finals] + [(_fmt(s.get("max_gap")), "")]
            rows.append(row)
    return (
        f"<{heading}>Per seed</{heading}><p class='note'>Each seed's run on its own "
        "(max gap: the largest stability gap of the first task).</p>" + _table(header, rows)
    )


# -- page ------------------------------------------------------------------------------------
def _figure_html(figure: FigureFile) -> str:
    data = base64.b64encode(figure.path.read_bytes()).decode("ascii")
    return (
        f'<figure id="fig-{_e(figure.name)}"><img src="data:image/png;base64,{data}" '
        f'width="{figure.width}" height="{figure.height}" alt="{_e(figure.title)}">'
        f"<figcaption><b>{_e(figure.title)}.</b> {_e(figure.caption)}</figcaption></figure>"
    )


def _environment(results: PrequentialResults | ContinualResults) -> str:
    summary = results.summary
    machine = summary.get("machine") or {}
    ran = summary.get("adaptloop_version") or summary.get("version") or "not recorded"
    rows = [[("adaptloop (run)", ""), (ran, "")], [("adaptloop (report)", ""), (__version__, "")]]
    rows += [[(f"{k} (report)", ""), (v, "")] for k, v in package_versions().items()]
    machine_rows = [[(str(k), ""), (str(v), "")] for k, v in machine.items()]
    for key in ("created", "wall_seconds", "seed"):
        if key in summary:
            value = summary[key]
            machine_rows.append(
                [(key, ""), (_fmt(value, 1) if key == "wall_seconds" else str(value), "")]
            )
    return (
        "<h2>Versions and machine</h2><p class='note'>The run recorded adaptloop's version "
        "and its machine; the other versions are those installed where this report was "
        "built.</p><div style='display:flex;gap:40px;flex-wrap:wrap'>"
        + _table(["package", "version"], rows)
        + _table(["run", "value"], machine_rows or [[("machine", ""), ("not recorded", "")]])
        + "</div>"
    )


def _sequence_section(
    results: ContinualResults, sequence: ContinualSequence, figures: list[FigureFile]
) -> str:
    """A run with several sequences: one section per sequence, its accuracy figure, its tables,
    then its other figures."""
    mine = [f for f in figures if f.sequence == sequence.name]
    seeds = f", {sequence.n_seeds} seeds ({_seed_list(sequence)})" if sequence.n_seeds > 1 else ""
    return (
        f"<h2>Sequence {_e(sequence.name)}</h2><p class='note'>{len(sequence.tasks)} tasks "
        f"({_e(', '.join(sequence.tasks))}){_e(seeds)}.</p>"
        + "".join(_figure_html(f) for f in mine[:1])
        + _continual_tables(results, sequence, "h3")
        + "".join(_figure_html(f) for f in mine[1:])
    )


def render_html(results: PrequentialResults | ContinualResults, figures: list[FigureFile]) -> str:
    """The report page as one HTML string (figures read from their PNG files).

    >>> import tempfile
    >>> from adaptloop.report.data import load_results
    >>> from adaptloop.report.synthetic import write_continual_folder
    >>> page = render_html(load_results(write_continual_folder(tempfile.mkdtemp())), [])
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
    kind = "continual learning" if isinstance(results, ContinualResults) else "prequential"
    meta = [f"{kind} run", f"results folder {results.folder}"]
    if summary.get("created"):
        meta.append(f"created {summary['created']}")
    if summary.get("seed") is not None:
        meta.append(f"seed {summary['seed']}")
    elif len(summary.get("seeds") or []) > 1:
        meta.append("seeds " + ", ".join(str(seed) for seed in summary["seeds"]))
    meta.append(f"{results.n_records:,} records")
    glance = "".join(f"<li>{_e(line)}</li>" for line in highlights(results))
    if isinstance(results, ContinualResults) and len(results.sequences) > 1:
        sections = "".join(_sequence_section(results, s, figures) for s in results.sequences)
        rest = [f for f in figures if f.sequence is None]
    else:
        first, rest = figures[:1], figures[1:]
        tables = (
            _continual_tables(results)
            if isinstance(results, ContinualResults)
            else _prequential_tables(results)
        )
        sections = "".join(_figure_html(f) for f in first) + tables
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
