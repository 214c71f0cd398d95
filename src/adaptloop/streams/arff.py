"""ARFF files (Weka's format, as MOA and CapyMOA read them) as streams, registered ``"arff"``.

The header declares each attribute: ``numeric`` / ``real`` / ``integer`` become numbers,
nominal attributes (``{a, b, c}``) categorical features whose vocabulary is the declared values
in declared order (value ``i`` is encoded as ``i + 1``; ``?``, a missing value, as 0), and
``string`` attributes categorical features whose vocabulary is read from the data. The target
is the last attribute unless ``target`` names another (MOA's default class index); a nominal
target's classes are its declared values, in declared order, and a numeric one makes a
regression stream. Everything else (label coding, chunked reading in constant memory, errors
naming the row) is :class:`~adaptloop.streams.files.TableStream`'s, as for CSV and Parquet.
Files compressed with gzip (``.arff.gz``) are read as they are.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "toy.arff"
>>> _ = path.write_text('''% a comment
... @relation toy
... @attribute x numeric
... @attribute colour {red, green, 'dark blue'}
... @attribute class {DOWN, UP}
... @data
... 1.5, red, UP
... 2.0, 'dark blue', DOWN
... ?, ?, UP
... ''')
>>> stream = ARFFStream(path, chunk_rows=2)
>>> stream.info.classes, stream.info.feature_names, stream.categories["colour"]
(('DOWN', 'UP'), ('x', 'colour'), ('red', 'green', 'dark blue'))
>>> X, y = next(stream.iter_batches(2))
>>> X.tolist(), y.tolist()
([[1.5, 1.0], [2.0, 3.0]], [1, 0])

Sparse ARFF (``{index value, ...}`` rows), ``date`` and ``relational`` attributes are refused
with the line that has them; a missing numeric value is an error naming its row, as in a CSV
file (MOA would read it as NaN).
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from adaptloop.streams.base import Drift, registry
from adaptloop.streams.files import TableStream
from adaptloop.validation import Count, Task

NUMERIC = ("numeric", "real", "integer")
"""The ARFF types read as numbers."""


@dataclass(frozen=True)
class Attribute:
    """One ``@attribute`` line: its name, and its declared values if nominal (else None);
    ``numeric`` tells numbers from strings."""

    name: str
    numeric: bool
    values: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Header:
    """An ARFF header: the relation's name, the attributes in order, and the line the data
    starts after (``@data``)."""

    relation: str
    attributes: tuple[Attribute, ...]
    data_line: int


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return path.open(encoding="utf-8")


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _split(text: str) -> list[str]:
    """Values separated by commas, quoted with ``'`` or ``"``, spaces around them dropped."""
    quote = '"' if text.lstrip().startswith('"') else "'"
    row = next(csv.reader([text], quotechar=quote, skipinitialspace=True))
    return [_unquote(v) for v in row]


def read_header(path: str | os.PathLike) -> Header:
    """The header of an ARFF file (stops at ``@data``); malformed lines are refused by number.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "h.arff"
    >>> _ = path.write_text("@RELATION r\\n@ATTRIBUTE 'a b' REAL\\n@ATTRIBUTE c {x,y}\\n@DATA\\n")
    >>> read_header(path)  # doctest: +NORMALIZE_WHITESPACE
    Header(relation='r', attributes=(Attribute(name='a b', numeric=True, values=None),
           Attribute(name='c', numeric=False, values=('x', 'y'))), data_line=4)
    """
    path = Path(path)
    relation, attributes = "", []
    with _open_text(path) as file:
        for number, line in enumerate(file, start=1):
            text = line.strip()
            if not text or text.startswith("%"):
                continue
            keyword, _, rest = text.partition(" ")
            keyword = keyword.lower()
            if keyword == "@relation":
                relation = _unquote(rest)
            elif keyword == "@attribute":
                attributes.append(_attribute(rest.strip(), f"{path}:{number}"))
            elif keyword == "@data":
                if not attributes:
                    raise ValueError(f"{path}:{number}: @data before any @attribute")
                return Header(relation, tuple(attributes), number)
            else:
                raise ValueError(f"{path}:{number}: expected @relation, @attribute or @data")
    raise ValueError(f"{path}: no @data line: not an ARFF file")


def _attribute(text: str, where: str) -> Attribute:
    if text[:1] in "'\"":
        end = text.index(text[0], 1)
        name, kind = text[1:end], text[end + 1 :].strip()
    else:
        name, _, kind = text.partition(" ")
        kind = kind.strip()
        if "{" in name:  # "name{a,b}" without a space
            name, kind = name[: name.index("{")], name[name.index("{") :]
    if kind.startswith("{"):
        if not kind.endswith("}"):
            raise ValueError(f"{where}: nominal values of {name!r} must end with '}}'")
        values = tuple(_split(kind[1:-1])) if kind[1:-1].strip() else ()
        return Attribute(name, numeric=False, values=values)
    lowered = kind.lower()
    if lowered in NUMERIC:
        return Attribute(name, numeric=True)
    if lowered == "string":
        return Attribute(name, numeric=False)
    raise ValueError(
        f"{where}: attribute {name!r} has type {kind!r}; the arff stream reads numeric, "
        "nominal and string attributes (drop the others from the file)"
    )


class ARFFStream(TableStream):
    """An ARFF file as a stream of batches, ``chunk_rows`` rows at a time (see the module).

    ``target`` defaults to the last attribute; ``drop`` leaves attributes out; ``task`` and
    ``classes`` as for CSV files (a nominal target's classes default to its declared values);
    ``max_categories``, ``hash_buckets`` (for ``string`` attributes, whose values arrive over
    time) and the known ``drifts`` as for CSV files.
    """

    kind = "ARFF"

    def __init__(
        self,
        path: str | os.PathLike,
        target: str | None = None,
        task: Task | None = None,
        classes: Sequence[str] | None = None,
        drop: Sequence[str] | None = None,
        name: str | None = None,
        max_categories: Count | None = None,
        hash_buckets: Count = 1024,
        drifts: Sequence[Drift | Mapping[str, int]] = (),
        chunk_rows: Count = 65_536,
    ) -> None:
        self.chunk_rows = chunk_rows
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"ARFF file not found: {str(path)!r} (resolved to {path.resolve()})"
            )
        self.header = read_header(path)
        attributes = {a.name: a for a in self.header.attributes}
        target = self.header.attributes[-1].name if target is None else target
        label = attributes.get(target)
        if (
            label is not None
            and label.values is not None
            and classes is None
            and task != ("regression")
        ):
            classes = label.values
        if label is not None and label.numeric and task is None:
            task = "regression"
        categories = {
            a.name: a.values
            for a in self.header.attributes
            if a.values is not None and a.name != target and a.name not in (drop or ())
        }
        super().__init__(
            path,
            target=target,
            task=task,
            classes=classes,
            categories=categories,
            drop=drop,
            name=name or self.header.relation or None,
            max_categories=max_categories,
            hash_buckets=hash_buckets,
            drifts=drifts,
        )

    def _schema(self) -> pa.Schema:
        return pa.schema(
            [(a.name, pa.float64() if a.numeric else pa.string()) for a in self.header.attributes]
        )

    def _read(self, types: Mapping[str, pa.DataType]) -> Iterator[pa.RecordBatch]:
        names = [a.name for a in self.header.attributes]
        wanted = [(names.index(c), c, t) for c, t in types.items()]
        rows: list[list[str]] = []
        with _open_text(self.path) as file:
            for number, line in enumerate(file, start=1):
                if number <= self.header.data_line:
                    continue
                text = line.strip()
                if not text or text.startswith("%"):
                    continue
                if text.startswith("{"):
                    raise ValueError(f"{self.path}:{number}: sparse ARFF rows are not supported")
                values = _split(text)
                if len(values) != len(names):
                    raise ValueError(
                        f"{self.path}:{number}: {len(values)} values, expected {len(names)}"
                    )
                rows.append(values)
                if len(rows) == self.chunk_rows:
                    yield self._batch(rows, wanted)
                    rows = []
        if rows:
            yield self._batch(rows, wanted)

    def _batch(
        self, rows: list[list[str]], wanted: list[tuple[int, str, pa.DataType]]
    ) -> pa.RecordBatch:
        arrays = []
        for index, _, kind in wanted:
            column = pa.array([None if r[index] == "?" else r[index] for r in rows], pa.string())
            try:
                arrays.append(pc.cast(column, kind))
            except pa.ArrowInvalid as error:
                raise ValueError(f"{self.path}: {error}") from None
        return pa.RecordBatch.from_arrays(arrays, names=[c for _, c, _ in wanted])


registry.register("arff")(ARFFStream)
