"""Figures of a run as PNG files (matplotlib, Agg canvas, no pyplot state).

Prequential runs get: the windowed metric over the stream with known drifts, detector alarms and
recovery points marked (``stream``); before / just after / recovered per drift and the recovery
time (``drifts``, when the stream has known drifts); throughput (``throughput``). Continual runs
get: per-task accuracy over training iterations with task boundaries and the stability gap marked
(``tasks``), the final accuracy on every task (``final``) and the time spent (``time``). A run
over several task sequences gets ``tasks_<sequence>`` and ``final_<sequence>`` for each; over
several seeds, the curves are the mean over the seeds with their minimum-to-maximum band shaded
and the final bars carry ±1 standard deviation over the seeds.

Colours are Okabe-Ito (safe for colour-blind readers), lines also differ in style beyond seven
learners, and legends sit outside the data.

>>> import tempfile
>>> from adaptloop.report.data import load_results
>>> from adaptloop.report.synthetic import write_prequential_folder
>>> folder = write_prequential_folder(tempfile.mkdtemp())
>>> files = render_figures(load_results(folder), Path(folder) / "figures")
>>> [f.name for f in files]
['stream', 'drifts', 'throughput']
>>> files[0].path.read_bytes()[:8] == b"\\x89PNG\\r\\n\\x1a\\n", files[0].width
(True, 1200)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator

from adaptloop.report.data import (
    ContinualResults,
    ContinualSequence,
    PrequentialResults,
    higher_is_better,
)

DPI = 100
WIDTH_INCHES = 12.0
OKABE_ITO = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#D55E00",  # vermillion
    "#000000",  # black
    "#F0E442",  # yellow (last: weak on white)
)
"""The Okabe-Ito palette, ordered for white backgrounds."""
LINESTYLES = ("-", "--", ":", "-.")
PHASES = {
    "before": ("#0072B2", "o", "before the drift"),
    "after": ("#D55E00", "v", "just after"),
    "recovered": ("#009E73", "D", "when recovered"),
}
MAX_DRIFT_PANELS = 6


@dataclass
class FigureFile:
    """A figure written as PNG: its short name, path, size in pixels, title and caption;
    ``sequence`` names the task sequence it shows when a continual run has several."""

    name: str
    path: Path
    width: int
    height: int
    title: str
    caption: str
    sequence: str | None = None


def style(index: int) -> dict:
    """Colour and line style of the ``index``-th learner (or task).

    >>> style(0)["color"], style(8)["linestyle"]
    ('#0072B2', '--')
    """
    return {
        "color": OKABE_ITO[index % len(OKABE_ITO)],
        "linestyle": LINESTYLES[(index // len(OKABE_ITO)) % len(LINESTYLES)],
    }


def short_number(value: float, _pos: object = None) -> str:
    """Axis labels for counts: 950, 20k, 1.5M.

    >>> short_number(20_000), short_number(1_500_000), short_number(950)
    ('20k', '1.5M', '950')
    """
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def _figure(height: float) -> Figure:
    fig = Figure(figsize=(WIDTH_INCHES, height), dpi=DPI, layout="constrained")
    fig.get_layout_engine().set(h_pad=0.08, w_pad=0.08)
    return fig


def _direction(metric: str) -> str:
    return "higher is better" if higher_is_better(metric) else "lower is better"


def _metric_label(metric: str) -> str:
    units = {"accuracy": "fraction correct", "roc_auc": "area under ROC", "log_loss": "nats"}
    unit = units.get(metric, "target units" if metric in ("mae", "rmse") else "")
    if metric == "mape":
        unit = "fraction of |y|"
    return f"{metric} ({unit})" if unit else metric


# -- prequential -----------------------------------------------------------------------------
def _clip_warm_up(ax, curves, window: int) -> bool:
    """Scale the y axis to the full windows; shade the first window if its values fall off."""
    steady = [y[(x >= window) & np.isfinite(y)] for x, y in curves]
    warm = [y[(x < window) & np.isfinite(y)] for x, y in curves]
    steady = np.concatenate(steady) if steady else np.zeros(0)
    warm = np.concatenate(warm) if warm else np.zeros(0)
    if not len(steady):
        return False
    lo, hi = float(steady.min()), float(steady.max())
    pad = max(hi - lo, 1e-6) * 0.08
    if len(warm) and (warm.min() < lo - pad or warm.max() > hi + pad):
        ax.set_ylim(lo - pad, hi + pad)
        ax.axvspan(0, window, color="#cccccc", alpha=0.6, lw=0, zorder=0)
        return True
    return False


def _position_label(summary: dict) -> str:
    """The x-axis label: stream position, or what a run says its positions are (a federated
    run's are simulated time)."""
    return summary.get("position_label") or "stream position (samples seen)"


def stream_figure(results: PrequentialResults) -> Figure:
    """The windowed primary metric over the stream per learner, drifts, alarms and recoveries.

    >>> import tempfile
    >>> from adaptloop.report.data import load_results
    >>> from adaptloop.report.synthetic import write_prequential_folder
    >>> results = load_results(write_prequential_folder(tempfile.mkdtemp(), records_per_learner=60))
    >>> [ax.get_xlabel() for ax in stream_figure(results).axes]
    ['', 'stream position (samples seen)']
    """
    summary = results.summary
    learners = results.learners
    window = int(summary["window"])
    metric = results.metric
    seen = max((float(x[-1]) for x, _ in results.curves.values() if len(x)), default=0.0)
    n_samples = seen or float(summary["stream"].get("n_samples") or 1)  # max_samples may cut
    fig = _figure(5.2 + 0.22 * len(learners))
    grid = fig.add_gridspec(2, 1, height_ratios=[4.0, 0.6 + 0.22 * len(learners)])
    ax = fig.add_subplot(grid[0])
    strip = fig.add_subplot(grid[1], sharex=ax)
    handles = []
    for i, learner in enumerate(learners):
        x, y = results.curves[learner]
        (line,) = ax.plot(x, y, lw=1.4, label=learner, **style(i))
        handles.append(line)
    drifts = summary["stream"].get("drifts") or []
    for d, drift in enumerate(drifts):
        position, width = float(drift["position"]), float(drift.get("width", 1) or 1)
        for axis in (ax, strip):
            axis.axvline(position, color="#444444", ls=(0, (4, 3)), lw=1.1, zorder=1)
            if width > 1:
                axis.axvspan(
                    position - width / 2,
                    position + width / 2,
                    color="#999999",
                    alpha=0.18,
                    lw=0,
                    zorder=0,
                )
        ax.text(
            position,
            1.01,
            f"drift {d + 1}\nat {position:,.0f}"
            + (f"\ngradual over {width:,.0f}" if width > 1 else ""),
            ha="center",
            va="bottom",
            fontsize=9,
            transform=ax.get_xaxis_transform(),
        )
    recovered_any = False
    for seg in summary["drifts"]:
        value = results.recovered.get((seg.get("learner"), int(seg.get("drift", 0))))
        if value is None or seg.get("learner") not in learners:
            continue
        i = learners.index(seg["learner"])
        x = int(seg["position"]) + int(seg["recovery"]) + window
        ax.plot(
            [x],
            [value],
            marker="o",
            ms=9,
            mfc="white",
            mew=2.2,
            mec=style(i)["color"],
            ls="none",
            zorder=6,
        )
        recovered_any = True
    if drifts:
        handles.append(Line2D([], [], color="#444444", ls=(0, (4, 3)), label="known drift"))
    if any(float(d.get("width", 1) or 1) > 1 for d in drifts):
        handles.append(Patch(color="#999999", alpha=0.3, label="gradual drift (width)"))
    if recovered_any:
        handles.append(
            Line2D(
                [],
                [],
                marker="o",
                ms=8,
                mfc="white",
                mec="#444444",
                mew=2,
                ls="none",
                label="back to pre-drift level\n(end of first recovered\nwindow)",
            )
        )
    handles.append(
        Line2D(
            [],
            [],
            marker="|",
            ms=10,
            mew=2,
            color="#444444",
            ls="none",
            label="drift detector alarm",
        )
    )
    if _clip_warm_up(ax, results.curves.values(), window):
        handles.append(
            Patch(color="#cccccc", alpha=0.6, label="first window\n(not yet full, off scale)")
        )
    ax.set_ylabel(f"{_metric_label(metric)}\nover the last {window:,} samples")
    ax.set_title(
        f"{metric} over the stream, sliding window of {window:,} samples ({_direction(metric)})",
        loc="left",
        pad=(44 if any(float(d.get("width", 1) or 1) > 1 for d in drifts) else 30) if drifts else 8,
    )
    ax.grid(True, color="#dddddd", lw=0.6)
    ax.tick_params(labelbottom=False)
    any_alarm = False
    for i, learner in enumerate(learners):
        alarms = np.asarray(summary["learners"][learner].get("alarms") or [], dtype=float)
        if len(alarms):
            any_alarm = True
            strip.plot(
                alarms,
                np.full(len(alarms), i),
                marker="|",
                ms=11,
                mew=2,
                ls="none",
                color=style(i)["color"],
            )
    if not any_alarm:
        strip.text(
            0.5,
            0.5,
            "no drift detector alarms in this run",
            ha="center",
            va="center",
            transform=strip.transAxes,
            color="#555555",
            fontsize=9,
        )
    strip.set_yticks(range(len(learners)), learners, fontsize=8)
    strip.set_ylim(len(learners) - 0.5, -0.5)
    strip.set_title("drift detector alarms", loc="left", fontsize=9)
    strip.set_xlabel(_position_label(summary))
    strip.xaxis.set_major_formatter(FuncFormatter(short_number))
    strip.set_xlim(0, n_samples)
    fig.legend(handles=handles, loc="outside right upper", frameon=False, fontsize=9)
    return fig


def drift_figure(results: PrequentialResults) -> Figure | None:
    """Per known drift: the metric before, just after and when recovered; recovery times.

    >>> import tempfile
    >>> from adaptloop.report.data import load_results
    >>> from adaptloop.report.synthetic import write_prequential_folder
    >>> results = load_results(write_prequential_folder(tempfile.mkdtemp(), records_per_learner=60))
    >>> [ax.get_title() for ax in drift_figure(results).axes]
    ['drift 1 at 2,000', 'drift 2 at 4,000', 'recovery time']
    """
    summary = results.summary
    drifts = (summary["stream"].get("drifts") or [])[:MAX_DRIFT_PANELS]
    segments = {(s.get("learner"), int(s.get("drift", 0))): s for s in summary["drifts"]}
    if not drifts or not segments:
        return None
    learners = results.learners
    metric = next(iter(segments.values())).get("metric", results.metric)
    after = next(iter(segments.values())).get("after_samples")
    n = len(learners)
    fig = _figure(max(3.4, 2.0 + 0.5 * n))
    axes = fig.subplots(1, len(drifts) + 1, sharey=True, width_ratios=[1.0] * len(drifts) + [1.2])
    rows = np.arange(n)
    for d, (ax, drift) in enumerate(zip(axes, drifts, strict=False)):
        for j, learner in enumerate(learners):
            seg = segments.get((learner, d))
            if seg is None:
                continue
            points = {
                "before": seg.get("before"),
                "after": seg.get("after"),
                "recovered": results.recovered.get((learner, d)),
            }
            known = [v for v in (points["before"], points["after"]) if v is not None]
            if len(known) == 2:
                ax.plot(known, [j, j], color="#bbbbbb", lw=3, zorder=1, solid_capstyle="round")
            for phase, value in points.items():
                if value is not None:
                    color, marker, _ = PHASES[phase]
                    ax.plot(
                        [value],
                        [j],
                        marker=marker,
                        color=color,
                        ms=9,
                        ls="none",
                        zorder=3,
                        mec="white" if phase != "after" else color,
                    )
        ax.set_title(f"drift {d + 1} at {float(drift['position']):,.0f}", fontsize=10)
        ax.set_xlabel(f"{metric}\n({_direction(metric)})")
        ax.grid(True, axis="x", color="#dddddd", lw=0.6)
        ax.margins(x=0.15)
    axes[0].set_yticks(rows, learners)
    axes[0].set_ylim(n - 0.5, -0.5)
    rec = axes[-1]
    height = 0.8 / len(drifts)
    longest = max((s.get("recovery") or 0 for s in segments.values()), default=0) or 1
    for d in range(len(drifts)):
        offsets = rows - 0.4 + height * (d + 0.5)
        shade = 1.0 - 0.55 * d / max(1, len(drifts) - 1)
        for j, learner in enumerate(learners):
            seg = segments.get((learner, d))
            if seg is None:
                continue
            value = seg.get("recovery")
            if value is None:
                rec.text(
                    0,
                    offsets[j],
                    " never",
                    va="center",
                    fontsize=8,
                    color="#D55E00",
                    fontweight="bold",
                )
                continue
            rec.barh(
                offsets[j],
                value,
                height=height * 0.9,
                color="#0072B2",
                alpha=shade,
                hatch=("", "//", "..", "xx", "\\\\", "++")[d % 6],
                edgecolor="white",
            )
            rec.text(value + longest * 0.02, offsets[j], f"{value:,}", va="center", fontsize=8)
    rec.set_xlim(0, longest * 1.3)
    rec.set_title("recovery time", fontsize=10)
    rec.set_xlabel("samples from the drift until the\nwindowed metric is back")
    rec.xaxis.set_major_formatter(FuncFormatter(short_number))
    rec.grid(True, axis="x", color="#dddddd", lw=0.6)
    handles = [
        Line2D([], [], marker=m, color=c, ls="none", ms=8, label=label)
        for c, m, label in PHASES.values()
    ]
    handles[1].set_label(f"just after (first {after:,} samples)" if after else "just after")
    if len(drifts) > 1:
        handles += [
            Patch(
                facecolor="#0072B2",
                alpha=1.0 - 0.55 * d / (len(drifts) - 1),
                hatch=("", "//", "..", "xx", "\\\\", "++")[d % 6],
                edgecolor="white",
                label=f"recovery, drift {d + 1}",
            )
            for d in range(len(drifts))
        ]
    fig.legend(handles=handles, loc="outside right upper", frameon=False, fontsize=9)
    total = len(summary["stream"].get("drifts") or [])
    more = f" (first {MAX_DRIFT_PANELS} of {total} drifts)" if total > MAX_DRIFT_PANELS else ""
    fig.suptitle(
        f"around each known drift: {metric} before, just after and when recovered{more}",
        x=0.01,
        ha="left",
        fontsize=11,
    )
    return fig


def metrics_figure(results: PrequentialResults) -> Figure | None:
    """The other windowed metrics over the stream, one panel each (None if there are none).

    >>> import tempfile
    >>> from adaptloop.report.data import load_results
    >>> from adaptloop.report.synthetic import write_prequential_folder
    >>> results = load_results(write_prequential_folder(tempfile.mkdtemp(), records_per_learner=60))
    >>> metrics_figure(results) is None  # the synthetic run has accuracy only
    True
    """
    others = [m for m in results.metric_curves if m != results.metric][:4]
    if not others:
        return None
    learners = results.learners
    window = int(results.summary["window"])
    drifts = results.summary["stream"].get("drifts") or []
    fig = _figure(3.8)
    axes = np.atleast_1d(fig.subplots(1, len(others), squeeze=False)[0])
    for ax, metric in zip(axes, others, strict=True):
        curves = results.metric_curves[metric]
        for i, learner in enumerate(learners):
            ax.plot(*curves[learner], lw=1.2, label=learner if ax is axes[0] else None, **style(i))
        for drift in drifts:
            ax.axvline(float(drift["position"]), color="#444444", ls=(0, (4, 3)), lw=1.0)
        _clip_warm_up(ax, curves.values(), window)
        ax.set_title(f"{metric} ({_direction(metric)})", fontsize=10)
        ax.set_ylabel(f"{_metric_label(metric)}, last {window:,}")
        ax.set_xlabel(_position_label(results.summary))
        ax.xaxis.set_major_formatter(FuncFormatter(short_number))
        ax.set_xlim(0, max((float(x[-1]) for x, _ in curves.values() if len(x)), default=1.0))
        ax.grid(True, color="#dddddd", lw=0.6)
    handles = [Line2D([], [], lw=1.4, label=name, **style(i)) for i, name in enumerate(learners)]
    if drifts:
        handles.append(Line2D([], [], color="#444444", ls=(0, (4, 3)), label="known drift"))
    fig.legend(handles=handles, loc="outside right upper", frameon=False, fontsize=9)
    fig.suptitle(
        f"the other metrics over the stream, sliding window of {window:,} samples",
        x=0.01,
        ha="left",
        fontsize=11,
    )
    return fig


def throughput_figure(results: PrequentialResults) -> Figure:
    """Samples per second per learner and where the time went (predict / learn).

    >>> import tempfile
    >>> from adaptloop.report.data import load_results
    >>> from adaptloop.report.synthetic import write_prequential_folder
    >>> results = load_results(write_prequential_folder(tempfile.mkdtemp(), records_per_learner=60))
    >>> [ax.get_xlabel() for ax in throughput_figure(results).axes][1]
    'time spent (seconds)'
    """
    learners = results.learners
    stats = results.summary["learners"]
    n = len(learners)
    fig = _figure(max(3.0, 1.5 + 0.45 * n))
    speed, split = fig.subplots(1, 2, sharey=True)
    rows = np.arange(n)
    rates = np.array([float(stats[name]["samples_per_second"] or 0) for name in learners])
    colors = [style(i)["color"] for i in range(n)]
    speed.barh(rows, rates, color=colors, height=0.6)
    positive = rates[rates > 0]
    if len(positive) and positive.max() / positive.min() > 20:
        speed.set_xscale("log")
        speed.set_xlim(positive.min() / 2, positive.max() * 8)
    else:
        speed.set_xlim(0, max(rates.max(), 1) * 1.25)
    for j, rate in enumerate(rates):
        speed.text(
            rate * (1.08 if speed.get_xscale() == "log" else 1.01) or 0,
            j,
            f" {short_number(rate)}/s",
            va="center",
            fontsize=9,
        )
    speed.set_yticks(rows, learners)
    speed.set_ylim(n - 0.5, -0.5)
    speed.set_xlabel("throughput (samples per second, predict + learn)")
    speed.xaxis.set_major_formatter(FuncFormatter(short_number))
    speed.grid(True, axis="x", color="#dddddd", lw=0.6)
    predict = np.array([float(stats[name]["predict_seconds"] or 0) for name in learners])
    learn = np.array([float(stats[name]["learn_seconds"] or 0) for name in learners])
    split.barh(rows, predict, height=0.6, color="#56B4E9", label="predict")
    split.barh(
        rows,
        learn,
        left=predict,
        height=0.6,
        color="#E69F00",
        label="learn",
        hatch="//",
        edgecolor="white",
    )
    split.set_xlabel("time spent (seconds)")
    split.set_xlim(0, max((predict + learn).max(), 1e-9) * 1.1)
    split.grid(True, axis="x", color="#dddddd", lw=0.6)
    fig.legend(loc="outside right upper", frameon=False, fontsize=9)
    fig.suptitle("throughput per learner", x=0.01, ha="left", fontsize=11)
    return fig


# -- continual -------------------------------------------------------------------------------
def _value_before(x: np.ndarray, y: np.ndarray, at: float) -> float | None:
    i = int(np.searchsorted(x, at)) - 1
    return float(y[i]) if i >= 0 and np.isfinite(y[i]) else None


def stability_gaps(
    results: ContinualResults | ContinualSequence,
    learner: str,
    least: float = 0.05,
    rebound: float = 0.25,
) -> list[dict]:
    """Dips of earlier tasks' accuracy after a new task starts that recover (for marking only),
    on the (mean) curves of a sequence (of the first one for a whole run).

    For each boundary and earlier task: ``before`` is the last accuracy before the boundary,
    ``iteration`` / ``accuracy`` the lowest point until the next boundary, ``gap`` their
    difference and ``after`` the accuracy at the segment's last point. A dip counts as a
    stability gap when ``gap >= least`` and it climbs back at least ``rebound * gap`` by the
    end of the segment (a drop that stays is forgetting, not a gap).

    >>> import tempfile
    >>> from adaptloop.report.data import load_results
    >>> from adaptloop.report.synthetic import write_continual_folder
    >>> results = load_results(write_continual_folder(tempfile.mkdtemp()))
    >>> gap = stability_gaps(results, "replay")[0]
    >>> gap["task"], gap["boundary"], gap["gap"] > 0.3, gap["after"] > gap["accuracy"]
    (0, 1, True, True)
    """
    gaps = []
    edges = list(results.boundaries) + [np.inf]
    for k in range(1, len(results.boundaries)):
        start, stop = edges[k], edges[k + 1]
        for t in range(k):
            curve = results.curves.get((learner, t))
            if curve is None:
                continue
            x, y = curve
            before = _value_before(x, y, start)
            mask = (x >= start) & (x < stop) & np.isfinite(y)
            if before is None or not mask.any():
                continue
            i = int(np.argmin(np.where(mask, y, np.inf)))
            low, after = float(y[i]), float(y[np.flatnonzero(mask)[-1]])
            gap = before - low
            if gap >= least and after - low >= rebound * gap:
                gaps.append(
                    {
                        "task": t,
                        "boundary": k,
                        "before": before,
                        "iteration": float(x[i]),
                        "accuracy": low,
                        "after": after,
                        "gap": gap,
                    }
                )
    return gaps


def _seeds_text(sequence: ContinualSequence) -> str:
    """What a sequence's curves are when it ran with several seeds (empty with one).

    >>> _seeds_text(ContinualSequence("s", ["A"], [0], {}, {"0": {}, "1": {}}, {}))
    ', mean over 2 seeds (band: min to max)'
    """
    if sequence.n_seeds == 1:
        return ""
    return f", mean over {sequence.n_seeds} seeds (band: min to max)"


def _sequence_title(results: ContinualResults, sequence: ContinualSequence) -> str:
    """``"<name>: "`` when the run has several sequences, else empty."""
    return f"{sequence.name}: " if len(results.sequences) > 1 else ""


def task_accuracy_figure(
    results: ContinualResults, sequence: ContinualSequence | None = None
) -> Figure:
    """Accuracy on every task over training iterations, one panel per learner, for ``sequence``
    (default: the first); with several seeds, the mean line and the seeds' min-max band.

    >>> import tempfile
    >>> from adaptloop.report.data import load_results
    >>> from adaptloop.report.synthetic import write_continual_folder
    >>> results = load_results(write_continual_folder(tempfile.mkdtemp(), iterations_per_task=50))
    >>> [ax.get_ylabel() for ax in task_accuracy_figure(results).axes]
    ['naive\\naccuracy (fraction)', 'replay\\naccuracy (fraction)']
    """
    sequence = sequence or results.sequences[0]
    learners = list(sequence.learners)
    tasks = sequence.tasks
    fig = _figure(1.4 + 2.5 * len(learners))
    axes = np.atleast_1d(fig.subplots(len(learners), 1, sharex=True, squeeze=False)[:, 0])
    last = max((float(x[-1]) for x, _ in sequence.curves.values() if len(x)), default=1.0)
    edges = list(sequence.boundaries) + [last]
    for row, (ax, learner) in enumerate(zip(axes, learners, strict=True)):
        for k in range(len(tasks)):
            if k % 2 == 1:
                ax.axvspan(edges[k], edges[k + 1], color="#eeeeee", lw=0, zorder=0)
            if k > 0:
                ax.axvline(edges[k], color="#444444", ls=(0, (4, 3)), lw=1.1, zorder=1)
            if row == 0:
                ax.text(
                    (edges[k] + edges[k + 1]) / 2,
                    1.02,
                    f"training {tasks[k]}",
                    ha="center",
                    va="bottom",
                    fontsize=9,
                    transform=ax.get_xaxis_transform(),
                )
        for t in range(len(tasks)):
            curve = sequence.curves.get((learner, t))
            if curve is not None:
                ax.plot(*curve, lw=1.5, label=f"accuracy on {tasks[t]}", **style(t))
            band = sequence.bands.get((learner, t))
            if curve is not None and band is not None:
                ax.fill_between(curve[0], *band, color=style(t)["color"], alpha=0.2, lw=0)
        gaps = stability_gaps(sequence, learner)
        for gap in gaps:
            ax.plot(
                [gap["iteration"]],
                [gap["accuracy"]],
                marker="v",
                ms=8,
                ls="none",
                color=style(gap["task"])["color"],
                mec="black",
                zorder=5,
            )
        if gaps:
            worst = max(gaps, key=lambda g: g["gap"])
            ax.annotate(
                f"stability gap: {tasks[worst['task']]} falls {worst['gap']:.2f}\n"
                f"when {tasks[worst['boundary']]} starts",
                (worst["iteration"], worst["accuracy"]),
                xytext=(12, -4),
                textcoords="offset points",
                fontsize=8,
                va="top",
                bbox={"boxstyle": "round", "fc": "white", "ec": "#999999"},
            )
        ax.set_ylim(-0.03, 1.03)
        ax.set_ylabel(f"{learner}\naccuracy (fraction)")
        ax.grid(True, color="#dddddd", lw=0.6)
    axes[-1].set_xlabel("training iteration")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1].set_xlim(edges[0], last)
    handles = [
        Line2D([], [], lw=1.5, label=f"accuracy on {t}", **style(i)) for i, t in enumerate(tasks)
    ]
    if sequence.bands:
        handles.append(
            Patch(
                color="#777777",
                alpha=0.3,
                label=f"min to max over\n{sequence.n_seeds} seeds (line: mean)",
            )
        )
    handles += [
        Line2D([], [], color="#444444", ls=(0, (4, 3)), label="new task starts"),
        Line2D(
            [],
            [],
            marker="v",
            color="#777777",
            mec="black",
            ls="none",
            label="lowest point after a\nnew task starts\n(stability gap)",
        ),
    ]
    fig.legend(handles=handles, loc="outside right upper", frameon=False, fontsize=9)
    fig.suptitle(
        (
            f"{sequence.name}: accuracy on each task during training"
            if len(results.sequences) > 1
            else "accuracy on each task while training on the task sequence"
        )
        + _seeds_text(sequence),
        x=0.01,
        ha="left",
        fontsize=11,
    )
    return fig


def final_accuracy_figure(
    results: ContinualResults, sequence: ContinualSequence | None = None
) -> Figure:
    """Final accuracy on every task per learner of ``sequence`` (default: the first), with the
    learner's average marked; with several seeds, means with ±1 standard deviation bars.

    >>> import tempfile
    >>> from adaptloop.report.data import load_results
    >>> from adaptloop.report.synthetic import write_continual_folder
    >>> results = load_results(write_continual_folder(tempfile.mkdtemp(), iterations_per_task=50))
    >>> final_accuracy_figure(results).axes[0].get_ylabel()
    'final accuracy (fraction)'
    """
    sequence = sequence or results.sequences[0]
    learners = list(sequence.learners)
    tasks = sequence.tasks
    stats = sequence.learners
    spread = sequence.n_seeds > 1
    stds = {name: sequence.final_task_std(name) for name in learners} if spread else {}
    fig = _figure(4.2)
    ax = fig.subplots()
    width = 0.8 / len(tasks)
    for t, task in enumerate(tasks):
        values = [
            (stats[name].get("final_task_acc") or [np.nan] * len(tasks))[t]
            if t < len(stats[name].get("final_task_acc") or [])
            else np.nan
            for name in learners
        ]
        values = [np.nan if v is None else float(v) for v in values]
        errors = [stds[name][t] for name in learners] if spread else None
        ax.bar(
            np.arange(len(learners)) - 0.4 + width * (t + 0.5),
            values,
            width * 0.92,
            color=style(t)["color"],
            label=task,
            yerr=None if errors is None else [np.nan if e is None else e for e in errors],
            error_kw={"ecolor": "#333333", "capsize": 3, "lw": 1},
        )
    for j, name in enumerate(learners):
        avg = stats[name].get("avg_acc")
        if avg is not None:
            ax.hlines(
                avg,
                j - 0.45,
                j + 0.45,
                color="black",
                lw=2,
                label="average over tasks" if j == 0 else None,
            )
    ax.set_xticks(range(len(learners)), learners)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("final accuracy (fraction)")
    ax.grid(True, axis="y", color="#dddddd", lw=0.6)
    if spread:
        ax.plot([], [], color="#333333", lw=1, label=f"±1 sd over\n{sequence.n_seeds} seeds")
    fig.legend(loc="outside right upper", frameon=False, fontsize=9)
    fig.suptitle(
        f"{_sequence_title(results, sequence)}accuracy on each task after the whole sequence"
        + (f" (mean over {sequence.n_seeds} seeds)" if spread else ""),
        x=0.01,
        ha="left",
        fontsize=11,
    )
    return fig


def run_seconds(results: ContinualResults, learner: str, key: str) -> float:
    """``learner``'s ``key`` (``train_seconds`` or ``eval_seconds``) summed over every sequence
    and seed of the run (a sequence without per-seed entries counts its own value once).

    >>> import tempfile
    >>> from adaptloop.report.data import load_results
    >>> from adaptloop.report.synthetic import write_continual_folder
    >>> results = load_results(write_continual_folder(tempfile.mkdtemp(), iterations_per_task=50))
    >>> run_seconds(results, "naive", "train_seconds") == results.summary["learners"]["naive"][
    ...     "train_seconds"]
    True
    """
    total = 0.0
    for sequence in results.sequences:
        entries = [run[learner] for run in sequence.runs.values() if learner in run]
        for entry in entries or [sequence.learners.get(learner, {})]:
            total += float(entry.get(key) or 0)
    return total


def continual_time_figure(results: ContinualResults) -> Figure:
    """Training and evaluation time per learner, summed over all sequences and seeds.

    >>> import tempfile
    >>> from adaptloop.report.data import load_results
    >>> from adaptloop.report.synthetic import write_continual_folder
    >>> results = load_results(write_continual_folder(tempfile.mkdtemp(), iterations_per_task=50))
    >>> continual_time_figure(results).axes[0].get_xlabel()
    'time spent (seconds)'
    """
    learners = results.learners
    n = len(learners)
    fig = _figure(max(2.8, 1.5 + 0.45 * n))
    ax = fig.subplots()
    rows = np.arange(n)
    train = np.array([run_seconds(results, name, "train_seconds") for name in learners])
    evaluate = np.array([run_seconds(results, name, "eval_seconds") for name in learners])
    ax.barh(rows, train, height=0.6, color="#E69F00", label="train")
    ax.barh(
        rows,
        evaluate,
        left=train,
        height=0.6,
        color="#56B4E9",
        label="evaluate",
        hatch="//",
        edgecolor="white",
    )
    ax.set_yticks(rows, learners)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlabel("time spent (seconds)")
    ax.set_xlim(0, max((train + evaluate).max(), 1e-9) * 1.1)
    ax.grid(True, axis="x", color="#dddddd", lw=0.6)
    fig.legend(loc="outside right upper", frameon=False, fontsize=9)
    fig.suptitle("time per learner", x=0.01, ha="left", fontsize=11)
    return fig


# -- writing ---------------------------------------------------------------------------------
def _slug(name: str) -> str:
    """A file-name-safe form of a sequence name.

    >>> _slug("split digits/class")
    'split_digits_class'
    """
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "sequence"


FigureSpec = tuple[str, Callable[[], Figure | None], str, str, str | None]
"""(name, draw, title, caption, sequence) of one figure."""


def _continual_specs(results: ContinualResults) -> list[FigureSpec]:
    several = len(results.sequences) > 1
    specs: list[FigureSpec] = []
    names: set[str] = set()
    for k, sequence in enumerate(results.sequences):
        suffix = ""
        if several:
            suffix = "_" + _slug(sequence.name)
            suffix = suffix if suffix not in names else f"{suffix}_{k + 1}"
            names.add(suffix)
        label = sequence.name if several else None
        of = f" ({sequence.name})" if several else ""
        seeds = sequence.n_seeds
        mean = (
            f" Lines are the mean over the {seeds} seeds; the shaded band spans the lowest to the "
            "highest seed at each iteration."
            if seeds > 1
            else ""
        )
        specs += [
            (
                f"tasks{suffix}",
                lambda s=sequence: task_accuracy_figure(results, s),
                f"Accuracy on each task during training{of}",
                "Each panel is one learner; each line is the accuracy on one task, measured every "
                "few iterations. Dashed lines mark where training on a new task starts. A dip of an"
                " earlier task right after a boundary (▼) is the stability gap; a line that stays "
                "low is forgetting." + mean,
                label,
            ),
            (
                f"final{suffix}",
                lambda s=sequence: final_accuracy_figure(results, s),
                f"Final accuracy per task{of}",
                "Accuracy on every task after training on the whole sequence; the black bar is the"
                " learner's average over tasks."
                + (
                    f" Bars are the mean over the {seeds} seeds, whiskers ±1 standard deviation "
                    "(population) over them."
                    if seeds > 1
                    else ""
                ),
                label,
            ),
        ]
    runs = sum(sequence.n_seeds for sequence in results.sequences)
    specs.append(
        (
            "time",
            lambda: continual_time_figure(results),
            "Time per learner",
            "Seconds spent training and evaluating each learner"
            + (f", summed over the {runs} runs (sequences × seeds)." if runs > 1 else "."),
            None,
        )
    )
    return specs


def _specs(results: PrequentialResults | ContinualResults) -> list[FigureSpec]:
    if isinstance(results, ContinualResults):
        return _continual_specs(results)
    metric, window = results.metric, int(results.summary["window"])
    worse, better = ("a drop", "the climb") if higher_is_better(metric) else ("a rise", "the fall")
    return [
        (
            "stream",
            lambda: stream_figure(results),
            f"{metric} over the stream",
            f"Each line is one learner's {metric} over the last {window:,} samples, as the stream "
            "goes by. Dashed vertical lines are the known drifts (grey bands: gradual drifts); "
            f"{worse} after one shows the drift hurting, {better} after it the learner "
            "adapting. Hollow circles mark where a "
            "learner's windowed metric got back to its pre-drift level. The strip below shows "
            "when each learner's drift detector raised an alarm.",
            None,
        ),
        (
            "drifts",
            lambda: drift_figure(results),
            "Around each drift",
            f"For every known drift and learner: {metric} over the window before the drift (●), "
            "over the first samples after it (▼) and over the first window that is back within "
            "tolerance of the pre-drift level (◆); right: how many samples that took.",
            None,
        ),
        (
            "metrics",
            lambda: metrics_figure(results),
            "The other metrics",
            "The remaining metrics of the run over the same sliding window, with the known "
            "drifts dashed.",
            None,
        ),
        (
            "throughput",
            lambda: throughput_figure(results),
            "Throughput",
            "Samples per second through predict and learn (the test-then-train loop), and how "
            "the time splits between predicting and learning.",
            None,
        ),
    ]


def render_figures(
    results: PrequentialResults | ContinualResults, out_dir: str | Path
) -> list[FigureFile]:
    """Draw every figure of ``results``, write each as ``out_dir/<name>.png``, describe them.

    >>> import tempfile
    >>> from adaptloop.report.data import load_results
    >>> from adaptloop.report.synthetic import write_continual_folder
    >>> results = load_results(write_continual_folder(tempfile.mkdtemp(), iterations_per_task=50))
    >>> [(f.name, f.path.name) for f in render_figures(results, tempfile.mkdtemp())]
    [('tasks', 'tasks.png'), ('final', 'final.png'), ('time', 'time.png')]
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for name, draw, title, caption, sequence in _specs(results):
        fig = draw()
        if fig is None:
            continue
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=DPI, facecolor="white")
        width, height = (round(v * DPI) for v in fig.get_size_inches())
        files.append(FigureFile(name, path, width, height, title, caption, sequence))
    return files
