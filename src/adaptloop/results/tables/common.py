"""What every summary table is made of: :class:`Table`, :class:`Column`, :class:`Cell`, and
the one number formatter (:func:`format_number`) that the terminal and the report share.

>>> Table("t", [Column("a")], [[Cell("1")], [Cell("2")]]).for_terminal().rows[1][0].text
'2'
>>> print(Table("t", [Column.label("learner"), Column("log_loss")], [["a", "0.6031 ± 0.0123"]],
...             terminal_title="summary").to_text("markdown"))
**summary**
<BLANKLINE>
| learner | log_loss |
| :--- | ---: |
| a | 0.6031 ± 0.0123 |
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

MISSING = "–"
"""How a missing number (None, NaN) is shown."""


# -- numbers ------------------------------------------------------------------------------------
def format_number(value: object, digits: int = 4) -> str:
    """The one way a number is written in a table: ``digits`` decimals for floats, thousands
    separators for integers, :data:`MISSING` for None and non-finite values.

    >>> format_number(0.91234), format_number(12345), format_number(None), format_number(2.5, 1)
    ('0.9123', '12,345', '–', '2.5')
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    return str(value)


def short_number(value: float, _pos: object = None) -> str:
    """Counts and rates, short: 950, 20k, 1.5M (also a matplotlib tick formatter).

    >>> short_number(20_000), short_number(1_500_000), short_number(950)
    ('20k', '1.5M', '950')
    """
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def plus_minus(value: object, std: object, digits: int = 4) -> str:
    """``value ± std`` (``value`` alone when ``std`` is None).

    >>> plus_minus(0.81234, 0.0123), plus_minus(0.5, None), plus_minus(None, 0.1)
    ('0.8123 ± 0.0123', '0.5000', '–')
    """
    if std is None or value is None:
        return format_number(value, digits)
    return f"{format_number(value, digits)} ± {format_number(float(std), digits)}"


def best_of(values: dict[str, float | None], bigger_is_better: bool) -> str | None:
    """The key of the best finite value (None if there is none).

    >>> best_of({"a": 0.2, "b": None, "c": 0.5}, True), best_of({"a": 0.2, "c": 0.5}, False)
    ('c', 'a')
    """
    known = {k: v for k, v in values.items() if v is not None and math.isfinite(v)}
    if not known:
        return None
    return (max if bigger_is_better else min)(known, key=known.get)


# -- tables -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    """A column: its header, whether it holds numbers (right-aligned) and whether the terminal
    shows it."""

    name: str
    numeric: bool = True
    terminal: bool = True

    @classmethod
    def label(cls, name: str) -> Column:
        """A column of names (left-aligned)."""
        return cls(name, numeric=False)


@dataclass(frozen=True)
class Cell:
    """A cell's text and its mark: ``"best"`` (best in its column), ``"never"`` (no recovery)
    or ``""``."""

    text: str
    mark: str = ""


@dataclass
class Table:
    """One summary table. ``title`` heads it in the report (``note`` explains it there);
    ``terminal_title`` is its title in the terminal, None for tables only the report shows;
    ``section`` names the task sequence it belongs to when a run has several. Plain texts in
    ``rows`` become unmarked cells."""

    title: str
    columns: list[Column]
    rows: list[list[Cell]]
    terminal_title: str | None = None
    note: str = ""
    section: str | None = None

    def __post_init__(self) -> None:
        self.rows = [[c if isinstance(c, Cell) else Cell(c) for c in row] for row in self.rows]

    def to_text(self, format: str = "plain") -> str:
        """The table as text that is never cut: ``"plain"`` (columns padded to their widest
        cell, for logs and pipes) or ``"markdown"`` (a pipe table); its terminal title (else
        its title) above it. Marks are left out.

        >>> print(Table("t", [Column.label("learner"), Column("acc")], [["a", "0.9"]]).to_text())
        t
        learner  acc
        a        0.9
        """
        title = self.terminal_title or self.title
        header = [c.name for c in self.columns]
        body = [[cell.text for cell in row] for row in self.rows]
        if format == "markdown":
            lines = [f"**{title}**", "", "| " + " | ".join(header) + " |"]
            lines.append("| " + " | ".join("---:" if c.numeric else ":---" for c in self.columns))
            lines[-1] += " |"
            lines += ["| " + " | ".join(row) + " |" for row in body]
            return "\n".join(lines)
        if format != "plain":
            raise ValueError(f"format must be 'plain' or 'markdown', got {format!r}")
        widths = [max(len(text) for text in column) for column in zip(header, *body, strict=True)]

        def line(texts: list[str]) -> str:
            cells = (
                text.rjust(width) if column.numeric else text.ljust(width)
                for text, width, column in zip(texts, widths, self.columns, strict=True)
            )
            return "  ".join(cells).rstrip()

        return "\n".join([title, line(header), *(line(row) for row in body)])

    def for_terminal(self) -> Table:
        """The table without the columns the terminal leaves out."""
        keep = [i for i, column in enumerate(self.columns) if column.terminal]
        return replace(
            self,
            columns=[self.columns[i] for i in keep],
            rows=[[row[i] for i in keep] for row in self.rows],
        )
