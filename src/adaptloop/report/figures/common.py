"""What every figure shares: size, palette, line styles, the PNG file description, and small
drawing helpers.

Colours are Okabe-Ito (safe for colour-blind readers), lines also differ in style beyond seven
learners, and legends sit outside the data.

>>> style(0)["color"], style(8)["linestyle"]
('#0072B2', '--')
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

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
GRID = {"color": "#dddddd", "lw": 0.6}
"""Grid lines of every axis."""


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


def new_figure(height: float) -> Figure:
    """A figure of the report's width and ``height`` inches, laid out with constrained layout."""
    fig = Figure(figsize=(WIDTH_INCHES, height), dpi=DPI, layout="constrained")
    fig.get_layout_engine().set(h_pad=0.08, w_pad=0.08)
    return fig


def finish(fig: Figure, title: str | None = None, handles: list | None = None) -> Figure:
    """Give ``fig`` its legend (``handles``, default: the labelled artists), outside the axes
    on the right, and its ``title``, left-aligned; return it."""
    kwargs = {"handles": handles} if handles is not None else {}
    fig.legend(loc="outside right upper", frameon=False, fontsize=9, **kwargs)
    if title is not None:
        fig.suptitle(title, x=0.01, ha="left", fontsize=11)
    return fig


def grid(ax: Axes, axis: str = "both") -> None:
    """Light grid lines on ``axis`` (``"x"``, ``"y"`` or ``"both"``)."""
    ax.grid(True, axis=axis, **GRID)


class Boundary:
    """Dashed vertical lines: known drifts, task boundaries.

    >>> Boundary.handle("known drift").get_linestyle()
    '--'
    """

    STYLE = {"color": "#444444", "ls": (0, (4, 3))}

    @classmethod
    def line(cls, ax: Axes, x: float, lw: float = 1.1) -> None:
        """A boundary at ``x`` on ``ax``."""
        ax.axvline(x, **cls.STYLE, lw=lw, zorder=1)

    @classmethod
    def handle(cls, label: str) -> Line2D:
        """A legend entry for boundaries."""
        return Line2D([], [], **cls.STYLE, label=label)


def time_bars(
    ax: Axes, names: list[str], parts: list[tuple[str, np.ndarray, str]], xlabel: str
) -> None:
    """Horizontal stacked bars of time per name: ``parts`` are ``(label, seconds, colour)``,
    the second one hatched.

    >>> fig = new_figure(2.0)
    >>> ax = fig.subplots()
    >>> time_bars(ax, ["a", "b"], [("x", np.ones(2), "#E69F00"), ("y", np.ones(2), "#56B4E9")],
    ...           "seconds")
    >>> round(float(ax.get_xlim()[1]), 6)
    2.2
    """
    rows = np.arange(len(names))
    left = np.zeros(len(names))
    for k, (label, seconds, colour) in enumerate(parts):
        hatch = {"hatch": "//", "edgecolor": "white"} if k % 2 else {}
        ax.barh(rows, seconds, left=left, height=0.6, color=colour, label=label, **hatch)
        left = left + seconds
    ax.set_yticks(rows, names)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_xlabel(xlabel)
    ax.set_xlim(0, max(left.max(), 1e-9) * 1.1)
    grid(ax, "x")


def slug(name: str) -> str:
    """A file-name-safe form of a sequence name.

    >>> slug("split digits/class")
    'split_digits_class'
    """
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "sequence"


FigureSpec = tuple[str, Callable[[], Figure | None], str, str, str | None]
"""(name, draw, title, caption, sequence) of one figure."""


def write_figures(specs: list[FigureSpec], out_dir: Path) -> list[FigureFile]:
    """Draw every figure of ``specs`` (skipping those that draw nothing), write each as
    ``out_dir/<name>.png`` and describe them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for name, draw, title, caption, sequence in specs:
        fig = draw()
        if fig is None:
            continue
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=DPI, facecolor="white")
        width, height = (round(v * DPI) for v in fig.get_size_inches())
        files.append(FigureFile(name, path, width, height, title, caption, sequence))
    return files
