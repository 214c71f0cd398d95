"""The summary tables of a run, built from its ``summary.json`` alone, so that ``adaptloop run``
(Rich, in the terminal) and the HTML report show the same numbers, formatted by the same
:func:`format_number`: one module per kind of run, :mod:`~adaptloop.results.tables.common` for
what they share (and the helpers the report's own sentences use).

A :class:`Table` is plain data: a title, columns and rows of text :class:`Cell` s (marked
``best`` or ``never`` where that matters). Columns flagged ``terminal=False`` are left out of
the terminal, where space is short, and so are tables without a ``terminal_title``; the report
shows everything.

>>> [t.title for t in continual_tables({"tasks": ["A"], "learners": {"m": {"avg_acc": 0.5}}})]
['Summary', 'Final accuracy per task']
"""

from adaptloop.results.tables.common import Cell, Column, Table, format_number, short_number
from adaptloop.results.tables.continual import continual_tables
from adaptloop.results.tables.graphs import graph_tables
from adaptloop.results.tables.prequential import prequential_tables

__all__ = [
    "Cell",
    "Column",
    "Table",
    "continual_tables",
    "format_number",
    "graph_tables",
    "prequential_tables",
    "short_number",
]
