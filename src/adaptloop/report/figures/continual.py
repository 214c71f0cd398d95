"""Figures of a continual run: per-task accuracy over training iterations with task boundaries
and the stability gaps of ``summary.json`` marked (``tasks``), the final accuracy on every task
(``final``) and the time spent (``time``). A run over several task sequences gets
``tasks_<sequence>`` and ``final_<sequence>`` for each; over several seeds, the curves are the
mean over the seeds with their minimum-to-maximum band shaded and the final bars carry ±1
standard deviation over the seeds.

>>> from adaptloop.report.synthetic import example_results
>>> [name for name, *_ in specs(example_results("continual", iterations_per_task=50))]
['tasks', 'final', 'time']
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from adaptloop.report.data import ContinualResults, ContinualSequence
from adaptloop.report.figures.common import (
    Boundary,
    FigureSpec,
    finish,
    grid,
    new_figure,
    slug,
    style,
    time_bars,
)
from adaptloop.results.tables import format_number


def gap_markers(sequence: ContinualSequence, learner: str) -> list[dict]:
    """Where the task-accuracy figure marks ``learner``'s stability gaps: exactly the gaps of
    ``summary.json`` (:meth:`ContinualSequence.gaps`), at the iteration and accuracy of their
    lowest point (folders written before gaps recorded their iteration get no markers).

    >>> from adaptloop.report.synthetic import example_results
    >>> sequence = example_results("continual", iterations_per_task=50).sequences[0]
    >>> [(g["task"], g["drop"]) for g in gap_markers(sequence, "replay")] == [
    ...     (g["task"], g["drop"]) for g in sequence.gaps("replay")]
    True
    """
    return [g for g in sequence.gaps(learner) if g.get("iteration") is not None]


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

    >>> from adaptloop.report.synthetic import example_results
    >>> results = example_results("continual", iterations_per_task=50)
    >>> [ax.get_ylabel() for ax in task_accuracy_figure(results).axes]
    ['naive\\naccuracy (fraction)', 'replay\\naccuracy (fraction)']
    """
    sequence = sequence or results.sequences[0]
    learners = list(sequence.learners)
    tasks = sequence.tasks
    fig = new_figure(1.4 + 2.5 * len(learners))
    axes = np.atleast_1d(fig.subplots(len(learners), 1, sharex=True, squeeze=False)[:, 0])
    last = max((float(x[-1]) for x, _ in sequence.curves.values() if len(x)), default=1.0)
    edges = list(sequence.boundaries) + [last]
    for row, (ax, learner) in enumerate(zip(axes, learners, strict=True)):
        for k in range(len(tasks)):
            if k % 2 == 1:
                ax.axvspan(edges[k], edges[k + 1], color="#eeeeee", lw=0, zorder=0)
            if k > 0:
                Boundary.line(ax, edges[k])
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
        gaps = gap_markers(sequence, learner)
        for gap in gaps:
            ax.plot(
                [gap["iteration"]],
                [gap["minimum"]],
                marker="v",
                ms=8,
                ls="none",
                color=style(0)["color"],
                mec="black",
                zorder=5,
                gid=f"gap:{learner}:{gap['task']}",
            )
        if gaps:
            worst = max(gaps, key=lambda g: g["drop"])
            new = int(worst["task"])
            ax.annotate(
                f"stability gap: {tasks[0]} falls {format_number(worst['drop'], 2)}\n"
                f"when {tasks[new] if new < len(tasks) else new} starts",
                (worst["iteration"], worst["minimum"]),
                xytext=(12, -4),
                textcoords="offset points",
                fontsize=8,
                va="top",
                bbox={"boxstyle": "round", "fc": "white", "ec": "#999999"},
            )
        ax.set_ylim(-0.03, 1.03)
        ax.set_ylabel(f"{learner}\naccuracy (fraction)")
        grid(ax)
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
        Boundary.handle("new task starts"),
        Line2D(
            [],
            [],
            marker="v",
            color="#777777",
            mec="black",
            ls="none",
            label=f"lowest point of {tasks[0]}\nafter a new task\nstarts (stability gap)",
        ),
    ]
    title = (
        f"{sequence.name}: accuracy on each task during training"
        if len(results.sequences) > 1
        else "accuracy on each task while training on the task sequence"
    )
    return finish(fig, title + _seeds_text(sequence), handles)


def final_accuracy_figure(
    results: ContinualResults, sequence: ContinualSequence | None = None
) -> Figure:
    """Final accuracy on every task per learner of ``sequence`` (default: the first), with the
    learner's average marked; with several seeds, means with ±1 standard deviation bars.

    >>> from adaptloop.report.synthetic import example_results
    >>> results = example_results("continual", iterations_per_task=50)
    >>> final_accuracy_figure(results).axes[0].get_ylabel()
    'final accuracy (fraction)'
    """
    sequence = sequence or results.sequences[0]
    learners = list(sequence.learners)
    tasks = sequence.tasks
    stats = sequence.learners
    spread = sequence.n_seeds > 1
    stds = {name: sequence.final_task_std(name) for name in learners} if spread else {}
    fig = new_figure(4.2)
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
    grid(ax, "y")
    if spread:
        ax.plot([], [], color="#333333", lw=1, label=f"±1 sd over\n{sequence.n_seeds} seeds")
    return finish(
        fig,
        f"{_sequence_title(results, sequence)}accuracy on each task after the whole sequence"
        + (f" (mean over {sequence.n_seeds} seeds)" if spread else ""),
    )


def run_seconds(results: ContinualResults, learner: str, key: str) -> float:
    """``learner``'s ``key`` (``train_seconds`` or ``eval_seconds``) summed over every sequence
    and seed of the run (a sequence without per-seed entries counts its own value once).

    >>> from adaptloop.report.synthetic import example_results
    >>> results = example_results("continual", iterations_per_task=50)
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

    >>> from adaptloop.report.synthetic import example_results
    >>> results = example_results("continual", iterations_per_task=50)
    >>> continual_time_figure(results).axes[0].get_xlabel()
    'time spent (seconds)'
    """
    learners = results.learners
    fig = new_figure(max(2.8, 1.5 + 0.45 * len(learners)))
    seconds = {
        key: np.array([run_seconds(results, name, f"{key}_seconds") for name in learners])
        for key in ("train", "eval")
    }
    parts = [("train", seconds["train"], "#E69F00"), ("evaluate", seconds["eval"], "#56B4E9")]
    time_bars(fig.subplots(), learners, parts, "time spent (seconds)")
    return finish(fig, "time per learner")


def specs(results: ContinualResults) -> list[FigureSpec]:
    """The figures of a continual run: name, how to draw it, title and caption, sequence."""
    several = len(results.sequences) > 1
    specs: list[FigureSpec] = []
    names: set[str] = set()
    for k, sequence in enumerate(results.sequences):
        suffix = ""
        if several:
            suffix = "_" + slug(sequence.name)
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
                "few iterations. Dashed lines mark where training on a new task starts. ▼ marks "
                "the lowest accuracy on the first task shortly after each new task starts: the "
                "stability gaps of the summary, listed in the stability-gap table (a dip that "
                "climbs back is a stability gap; a line that stays low is forgetting)." + mean,
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
