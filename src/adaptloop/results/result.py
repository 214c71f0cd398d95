"""The one interface of every kind of run's result (prequential, continual, federated).

A result knows its records, writes its ``summary.json`` and produces its summary tables; the
CLI and :func:`~adaptloop.results.folder.write_results` only call these, so a new kind of run
needs no edit to either.

>>> import numpy as np
>>> from adaptloop.evaluation import prequential
>>> from adaptloop.learners.models.majority import MajorityClass
>>> from adaptloop.streams import ArrayStream
>>> stream = ArrayStream(np.zeros((20, 2)), np.arange(20, dtype=np.int64) % 2)
>>> result = prequential(stream, {"m": MajorityClass(n_classes=2)}, batch_size=10)
>>> isinstance(result, Result), [t.title for t in result.tables()]
(True, ['Summary'])
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import pyarrow as pa

from adaptloop.results.tables import Table


@runtime_checkable
class Result(Protocol):
    """What every run returns: records, a JSON summary, tables."""

    @property
    def records(self) -> pa.Table:
        """The rows of ``records.parquet`` (columns: :mod:`adaptloop.results.schema`)."""
        ...

    def summary_json(self, **extra) -> dict:
        """The JSON-ready content of ``summary.json`` (``extra`` keys at its top level)."""
        ...

    def tables(self) -> list[Table]:
        """The summary tables (the same the report shows for the written folder)."""
        ...
