"""Figures of a prequential (or federated) run: the windowed metric over the stream with known
drifts, detector alarms and recovery points marked (``stream``); before / just after /
recovered per drift and the recovery time (``drifts``, when the stream has known drifts); the
other metrics (``metrics``); throughput (``throughput``); for a federated run, accuracy against
simulated time and against bytes sent per rule (``communication``) and, under an attack, each
rule's final accuracy and whose updates it down-weighted (``attack``).

>>> from adaptloop.report.synthetic import example_results
>>> [name for name, *_ in specs(example_results("prequential", records_per_learner=60))]
['stream', 'drifts', 'metrics', 'communication', 'attack', 'throughput']
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from adaptloop.report.data import PrequentialResults
from adaptloop.report.figures.common import (
    Boundary,
    FigureSpec,
    finish,
    grid,
    new_figure,
    style,
    time_bars,
)
from adaptloop.results.metrics import get_metric
from adaptloop.results.tables import short_number

PHASES = {
    "before": ("#0072B2", "o", "before the drift"),
    "after": ("#D55E00", "v", "just after"),
    "recovered": ("#009E73", "D", "when recovered"),
}
MAX_DRIFT_PANELS = 6


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

    >>> from adaptloop.report.synthetic import example_results
    >>> results = example_results("prequential", records_per_learner=60)
    >>> [ax.get_xlabel() for ax in stream_figure(results).axes]
    ['', 'stream position (samples seen)']
    """
    summary = results.summary
    learners = results.learners
    window = int(summary["window"])
    metric = results.metric
    seen = max((float(x[-1]) for x, _ in results.curves.values() if len(x)), default=0.0)
    n_samples = seen or float(summary["stream"].get("n_samples") or 1)  # max_samples may cut
    fig = new_figure(5.2 + 0.22 * len(learners))
    layout = fig.add_gridspec(2, 1, height_ratios=[4.0, 0.6 + 0.22 * len(learners)])
    ax = fig.add_subplot(layout[0])
    strip = fig.add_subplot(layout[1], sharex=ax)
    handles = []
    for i, learner in enumerate(learners):
        x, y = results.curves[learner]
        (line,) = ax.plot(x, y, lw=1.4, label=learner, **style(i))
        handles.append(line)
    drifts = summary["stream"].get("drifts") or []
    for d, drift in enumerate(drifts):
        position, width = float(drift["position"]), float(drift.get("width", 1) or 1)
        for axis in (ax, strip):
            Boundary.line(axis, position)
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
        handles.append(Boundary.handle("known drift"))
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
    ax.set_ylabel(f"{get_metric(metric).axis_label}\nover the last {window:,} samples")
    direction = get_metric(metric).direction
    ax.set_title(
        f"{metric} over the stream, sliding window of {window:,} samples ({direction})",
        loc="left",
        pad=(44 if any(float(d.get("width", 1) or 1) > 1 for d in drifts) else 30) if drifts else 8,
    )
    grid(ax)
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
    return finish(fig, handles=handles)


def drift_figure(results: PrequentialResults) -> Figure | None:
    """Per known drift: the metric before, just after and when recovered; recovery times.

    >>> from adaptloop.report.synthetic import example_results
    >>> results = example_results("prequential", records_per_learner=60)
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
    fig = new_figure(max(3.4, 2.0 + 0.5 * n))
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
        ax.set_xlabel(f"{metric}\n({get_metric(metric).direction})")
        grid(ax, "x")
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
    grid(rec, "x")
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
    total = len(summary["stream"].get("drifts") or [])
    more = f" (first {MAX_DRIFT_PANELS} of {total} drifts)" if total > MAX_DRIFT_PANELS else ""
    title = f"around each known drift: {metric} before, just after and when recovered{more}"
    return finish(fig, title, handles)


def metrics_figure(results: PrequentialResults) -> Figure | None:
    """The other windowed metrics over the stream, one panel each (None if there are none).

    >>> from adaptloop.report.synthetic import example_results
    >>> results = example_results("prequential", records_per_learner=60)
    >>> metrics_figure(results) is None  # the synthetic run has accuracy only
    True
    """
    others = [m for m in results.metric_curves if m != results.metric][:4]
    if not others:
        return None
    learners = results.learners
    window = int(results.summary["window"])
    drifts = results.summary["stream"].get("drifts") or []
    fig = new_figure(3.8)
    axes = np.atleast_1d(fig.subplots(1, len(others), squeeze=False)[0])
    for ax, metric in zip(axes, others, strict=True):
        curves = results.metric_curves[metric]
        for i, learner in enumerate(learners):
            ax.plot(*curves[learner], lw=1.2, label=learner if ax is axes[0] else None, **style(i))
        for drift in drifts:
            Boundary.line(ax, float(drift["position"]), lw=1.0)
        _clip_warm_up(ax, curves.values(), window)
        ax.set_title(f"{metric} ({get_metric(metric).direction})", fontsize=10)
        ax.set_ylabel(f"{get_metric(metric).axis_label}, last {window:,}")
        ax.set_xlabel(_position_label(results.summary))
        ax.xaxis.set_major_formatter(FuncFormatter(short_number))
        ax.set_xlim(0, max((float(x[-1]) for x, _ in curves.values() if len(x)), default=1.0))
        grid(ax)
    handles = [Line2D([], [], lw=1.4, label=name, **style(i)) for i, name in enumerate(learners)]
    if drifts:
        handles.append(Boundary.handle("known drift"))
    return finish(
        fig, f"the other metrics over the stream, sliding window of {window:,} samples", handles
    )


def throughput_figure(results: PrequentialResults) -> Figure:
    """Samples per second per learner and where the time went (predict / learn).

    >>> from adaptloop.report.synthetic import example_results
    >>> results = example_results("prequential", records_per_learner=60)
    >>> [ax.get_xlabel() for ax in throughput_figure(results).axes][1]
    'time spent (seconds)'
    """
    learners = results.learners
    stats = results.summary["learners"]
    n = len(learners)
    fig = new_figure(max(3.0, 1.5 + 0.45 * n))
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
    speed.set_xlabel("throughput (samples per second, predict + learn)")
    speed.xaxis.set_major_formatter(FuncFormatter(short_number))
    grid(speed, "x")
    seconds = {
        key: np.array([float(stats[name][f"{key}_seconds"] or 0) for name in learners])
        for key in ("predict", "learn")
    }
    parts = [("predict", seconds["predict"], "#56B4E9"), ("learn", seconds["learn"], "#E69F00")]
    time_bars(split, learners, parts, "time spent (seconds)")
    return finish(fig, "throughput per learner")


def communication_figure(results: PrequentialResults) -> Figure | None:
    """A federated run's accuracy per rule against simulated time and against the bytes it sent
    (solid: the rule's model; dashed: the mean accuracy of a decentralised rule's nodes' own
    models); None for other runs.

    >>> from adaptloop.report.synthetic import example_results
    >>> communication_figure(example_results("prequential", records_per_learner=60)) is None
    True
    """
    if not results.communication:
        return None
    fig = new_figure(4.4)
    by_time, by_bytes = fig.subplots(1, 2, sharey=True)
    handles = []
    for i, (rule, (t, sent, acc, local)) in enumerate(results.communication.items()):
        sent_some = sent > 0  # the log axis starts at the first message
        megabytes = sent[sent_some] / 1e6
        (line,) = by_time.plot(t, acc, lw=1.4, label=rule, **style(i))
        by_bytes.plot(megabytes, acc[sent_some], lw=1.4, **style(i))
        if not np.allclose(local, acc):
            for ax, x, y in ((by_time, t, local), (by_bytes, megabytes, local[sent_some])):
                ax.plot(x, y, lw=1.0, ls="--", color=line.get_color(), alpha=0.8)
        handles.append(line)
    by_time.set_xlabel(_position_label(results.summary))
    by_time.set_ylabel("accuracy (mean over clients)")
    by_bytes.set_xlabel("megabytes sent (log scale)")
    by_bytes.set_xscale("log")
    for ax in (by_time, by_bytes):
        grid(ax)
    handles.append(Line2D([], [], lw=1.0, ls="--", color="#555555", label="nodes' own models"))
    return finish(fig, "accuracy against time and against bytes sent, per rule", handles)


def attack_figure(results: PrequentialResults) -> Figure | None:
    """A federated run under attack: each rule's final accuracy (left) and, per client, the
    share of the times the rule weighed the client's update that it down-weighted or rejected
    it (right: Byzantine clients first; beside each row, the share over all Byzantine / all
    honest clients; for Bristle, the times a receiving peer gave the client's model almost no
    say); None for other runs.

    >>> from adaptloop.report.synthetic import example_results
    >>> attack_figure(example_results("prequential", records_per_learner=60)) is None
    True
    """
    fed = results.summary.get("federated") or {}
    if not fed.get("attack"):
        return None
    rules = list(fed["rules"])
    clients = int(fed["clients"])
    bad = sorted({int(c) for c in next(iter(fed["rules"].values())).get("byzantine", [])})
    order = bad + [c for c in range(clients) if c not in set(bad)]

    def per_client(rule: str, key: str) -> np.ndarray:
        values = fed["rules"][rule].get(key, {})
        return np.array([values.get(str(c), 0) for c in order], dtype=float)

    down = np.array([per_client(rule, "down_weighted_by_client") for rule in rules])
    weighed = "weighed_by_client"  # older runs: per update accepted
    sent = [
        per_client(r, weighed if weighed in fed["rules"][r] else "updates_by_client") for r in rules
    ]
    sent = np.array(sent)
    counts = down / np.maximum(sent, 1)  # the share of the times its update was weighed
    fig = new_figure(1.6 + 0.32 * len(rules))
    kept, whose = fig.subplots(1, 2, width_ratios=[1, 2.4])
    final = [results.summary["learners"][rule].get("accuracy_final") or 0.0 for rule in rules]
    rows = np.arange(len(rules))
    kept.barh(rows, final, color=[style(i)["color"] for i in rows])
    for row, value in zip(rows, final, strict=True):
        kept.text(value, row, f" {value:.3f}", va="center", fontsize=8)
    if fed.get("target") is not None:
        kept.axvline(fed["target"], **Boundary.STYLE, lw=1.0)
    kept.set(yticks=rows, yticklabels=rules, xlim=(0, 1.15), xlabel="final accuracy")
    kept.invert_yaxis()
    image = whose.imshow(
        counts,
        aspect="auto",
        cmap="Reds",
        vmin=0,
        vmax=1,
        interpolation="nearest",
    )
    whose.set(yticks=rows, yticklabels=[])
    whose.set_xticks([(len(bad) - 1) / 2, len(bad) + (clients - len(bad) - 1) / 2])
    whose.set_xticklabels([f"{len(bad)} Byzantine", f"{clients - len(bad)} honest"])
    whose.axvline(len(bad) - 0.5, color="#222222", lw=1.2)
    whose.set_xlabel("clients: share of their weighed updates down-weighted")
    n = len(bad)
    for row, (d, u) in enumerate(zip(down, sent, strict=True)):
        per = [d[k].sum() / max(u[k].sum(), 1) for k in (slice(0, n), slice(n, None))]
        label = "none" if not d.any() else f"{per[0]:.2f} / {per[1]:.2f}"
        whose.text(clients - 0.4, row, f" {label}", va="center", fontsize=8, clip_on=False)
    fig.colorbar(image, ax=whose, shrink=0.8, pad=0.12, label="share down-weighted")
    kind = fed["attack"].get("kind", "attack")
    return finish(
        fig, f"under attack ({kind}): final accuracy and whose updates were rejected", handles=[]
    )


def specs(results: PrequentialResults) -> list[FigureSpec]:
    """The figures of a prequential run: name, how to draw it, title and caption."""
    metric, window = results.metric, int(results.summary["window"])
    higher = get_metric(metric).bigger_is_better
    worse, better = ("a drop", "the climb") if higher else ("a rise", "the fall")
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
            "communication",
            lambda: communication_figure(results),
            "Accuracy against time and bytes sent",
            "Left: each rule's accuracy over simulated time; right: the same accuracy against "
            "the bytes the rule had sent by then (models to and from the server, or between "
            "the nodes of a decentralised rule; log scale). A rule further left on the right "
            "panel reaches an accuracy with less communication. Dashed: the mean accuracy of "
            "the models a decentralised rule's nodes hold (solid: their average, or the "
            "latest aggregate).",
            None,
        ),
        (
            "attack",
            lambda: attack_figure(results),
            "Under attack",
            "Left: each rule's accuracy at the end of the run (dashed: the target), under the "
            "experiment's attack: a robust rule keeps its accuracy. Right: one row per rule, one "
            "cell per client, Byzantine clients left of the line: how often the rule "
            "down-weighted or rejected the client's update, as a share of the times it weighed "
            "it (a robust block: influence below one half; Bristle: a receiving peer gave the "
            "client's model almost no say); beside each row, the same share over all Byzantine "
            '/ all honest clients. A plain mean weighs nothing ("none"). A rule that tells '
            "the attackers apart has its left cells dark and its right ones light.",
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
