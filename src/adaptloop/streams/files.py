"""File streams: CSV (optionally gzip) and Parquet, read in chunks with constant memory.

Both readers share :class:`TableStream`: pick the label column by name, encode categorical
columns with a vocabulary that grows as values arrive (code 0 is a missing value; the values
known before reading get ``1..k``, later ones the next codes in order of first appearance,
optionally capped with hashing beyond the cap: :mod:`adaptloop.streams.categories`), map
labels to codes ``0..k-1`` of ``info.classes`` and refuse missing or non-finite values with an
error naming the column and the row. Rows are counted from 0 in file order, header excluded.
Known drifts of the data are declared with ``drifts``. Registered as ``"csv"`` and
``"parquet"``.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "toy.csv"
>>> _ = path.write_text("x,colour,label\\n1.5,red,yes\\n2.0,blue,no\\n0.5,red,yes\\n")
>>> stream = CSVStream(path, target="label")
>>> stream.info.classes, stream.info.feature_names, stream.categories
(('no', 'yes'), ('x', 'colour'), {'colour': ('blue', 'red')})
>>> X, y = next(stream.iter_batches(3))
>>> X.tolist(), y.tolist()
([[1.5, 2.0], [2.0, 1.0], [0.5, 2.0]], [1, 0, 1])
"""

from __future__ import annotations

import os
from abc import abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from adaptloop.streams.base import Batch, Drift, Stream, StreamInfo, registry
from adaptloop.streams.batching import rebatch
from adaptloop.streams.categories import Vocabulary
from adaptloop.streams.drift import parse_drifts
from adaptloop.validation import TASKS, Count, Task

MAX_CLASSES = 10_000
"""Most distinct labels collected when classes are inferred (keeps the scan constant-memory)."""

MAX_NUMERIC_CLASSES = 50
"""A numeric label with more distinct values than this is not taken as classes unless told."""


class TableStream(Stream):
    """Shared machinery of the file streams; subclasses only say how to read chunks.

    ``target`` names the label column, ``drop`` columns to ignore; every other column is a
    feature, in file order. Columns read as strings (and those in ``categorical`` or
    ``categories``) are categorical; the values known before reading are
    ``categories[column]`` when given, else the sorted distinct values of the first chunk
    read, and every value seen later gets a new code as it appears (at most
    ``max_categories`` codes per column when set; values beyond are hashed into
    ``hash_buckets`` codes after them). :meth:`summary` counts, after a pass, the values
    that were new and the rows that overflowed. ``drifts`` declares known drifts
    (``[{"at": row, "width": w}]``, as the generators take them): the drift table and
    recovery times of a prequential run are computed at them. ``classes`` fixes the label
    names in code order; without it one streaming pass over the label column finds them
    (sorted, numerically when all are numbers). ``task`` is inferred for classification;
    a numeric label with many distinct values needs ``task="regression"``.

    The constructor reads the label column once (to count rows, and to find or check the
    classes); :meth:`iter_batches` reads the file again from the start on every call.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "toy.csv"
    >>> _ = path.write_text("a,b,y\\n1,2,0.5\\n3,4,1.5\\n")
    >>> stream = CSVStream(path, target="y", task="regression")
    >>> stream.info.task, stream.info.n_samples, next(stream.iter_batches(8))[1].tolist()
    ('regression', 2, [0.5, 1.5])
    """

    kind = "table"

    def __init__(
        self,
        path: str | os.PathLike,
        target: str,
        task: Task | None = None,
        classes: Sequence[str] | None = None,
        categorical: Sequence[str] | None = None,
        categories: Mapping[str, Sequence[str]] | None = None,
        drop: Sequence[str] | None = None,
        name: str | None = None,
        max_categories: Count | None = None,
        hash_buckets: Count = 1024,
        drifts: Sequence[Drift | Mapping[str, int]] = (),
    ) -> None:
        self.max_categories = max_categories
        self.hash_buckets = hash_buckets
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(
                f"{self.kind} file not found: {str(path)!r} (resolved to {self.path.resolve()})"
            )
        if task is not None and task not in TASKS:
            raise ValueError(f"task must be one of {TASKS} or None, got {task!r}")
        schema = self._schema()
        columns = list(schema.names)
        if len(set(columns)) != len(columns):
            dup = sorted({c for c in columns if columns.count(c) > 1})
            raise ValueError(f"{self.path}: duplicate column name(s) {dup}")
        if target not in columns:
            raise ValueError(
                f"target column {target!r} not found in {self.path}; columns: {columns}"
            )
        categories = dict(categories or {})
        for param, names in (
            ("drop", drop or ()),
            ("categorical", categorical or ()),
            ("categories", categories),
        ):
            if isinstance(names, str):
                raise ValueError(f"{param} must be a list of column names, got {names!r}")
            missing = [c for c in names if c not in columns]
            if missing:
                raise ValueError(f"{param} names unknown column(s) {missing}; columns: {columns}")
        dropped = set(drop or ()) | {target}
        self._features = tuple(c for c in columns if c not in dropped)
        if not self._features:
            raise ValueError(f"{self.path} has no feature columns besides target {target!r}")
        explicit = set(categorical or ()) | set(categories)
        types: dict[str, pa.DataType] = {}
        for column in self._features:
            types[column] = _feature_type(column, schema.field(column).type, column in explicit)
        self._categorical = tuple(c for c in self._features if types[c] == pa.string())
        self.target = target

        self._vocab: dict[str, list[str]] = {}
        learn = [c for c in self._categorical if c not in categories]
        for column, values in categories.items():
            values = [str(v) for v in values]
            if len(set(values)) != len(values):
                raise ValueError(f"categories[{column!r}] has duplicate values")
            self._vocab[column] = values
        if learn:
            reader = self._read({c: pa.string() for c in learn})
            try:
                first = next(reader, None)
            finally:
                reader.close()
            for column in learn:
                values = [] if first is None else pc.unique(first.column(column)).drop_null()
                self._vocab[column] = sorted(v.as_py() for v in values)
        self._last_pass = self._vocabularies()

        if task == "regression":
            if classes is not None:
                raise ValueError("classes must be None for task='regression'")
            types[target] = pa.float64()
            n_samples = self._count(pa.float64())
        else:
            types[target] = pa.string()
            if classes is None:
                classes, n_samples = self._find_classes(task)
            else:
                classes = _check_classes(classes)
                self._classes = pa.array(classes, pa.string())
                n_samples = self._count(pa.string(), check_labels=True)
            if task is None:
                task = "binary" if len(classes) <= 2 else "multiclass"
            if task == "binary" and len(classes) > 2:
                raise ValueError(
                    f"task='binary' but target {target!r} has {len(classes)} classes: "
                    f"{list(classes)[:20]}"
                )
        self._classes = None if task == "regression" else pa.array(classes, pa.string())
        self._types = types
        self._info = StreamInfo(
            name=name or self.path.name.split(".")[0],
            feature_names=self._features,
            task=task,
            classes=None if task == "regression" else tuple(classes),
            n_samples=n_samples,
            drifts=parse_drifts(drifts, n_samples),
            categorical=self._categorical,
        )

    @property
    def info(self) -> StreamInfo:
        return self._info

    @property
    def categories(self) -> dict[str, tuple[str, ...]]:
        """The vocabulary of each categorical feature after the last pass (before reading: the
        values known then); value ``i`` of it is encoded as ``i + 1``."""
        return {c: vocab.values for c, vocab in self._last_pass.items()}

    def summary(self) -> dict:
        """What the last pass found in each categorical column: ``{"categories": {column:
        {known, new, new_rows, overflow_rows, missing_rows}}}`` (see
        :meth:`adaptloop.streams.categories.Vocabulary.report`)."""
        if not self._categorical:
            return {}
        return {"categories": {c: v.report() for c, v in self._last_pass.items()}}

    def _vocabularies(self) -> dict[str, Vocabulary]:
        return {
            c: Vocabulary(self._vocab[c], self.max_categories, self.hash_buckets)
            for c in self._categorical
        }

    def iter_batches(self, batch_size: int) -> Iterator[Batch]:
        """Yield ``(X float32, y)`` batches from the first row, holding one chunk at a time."""
        return rebatch(self._chunks(), batch_size)

    # -- subclass hooks --------------------------------------------------------------------

    @abstractmethod
    def _schema(self) -> pa.Schema:
        """Column names and (inferred) types of the file."""

    @abstractmethod
    def _read(self, types: Mapping[str, pa.DataType]) -> Iterator[pa.RecordBatch]:
        """Record batches of the columns in ``types``, converted to those types, from row 0."""

    # -- shared machinery --------------------------------------------------------------------

    def _chunks(self) -> Iterator[Batch]:
        row = 0
        vocabularies = self._last_pass = self._vocabularies()  # every pass grows the same way
        for batch in self._read(self._types):
            m = batch.num_rows
            if m == 0:
                continue
            X = np.empty((m, len(self._features)), dtype=np.float32)
            for j, column in enumerate(self._features):
                values = batch.column(column)
                if column in vocabularies:
                    X[:, j] = vocabularies[column].encode(values)
                else:
                    X[:, j] = self._finite(values, f"column {column!r}", row)
            yield X, self._labels(batch.column(self.target), row)
            row += m

    def _labels(self, values: pa.Array, row: int) -> np.ndarray:
        if self._classes is None:
            return self._finite(values, f"target {self.target!r}", row).astype(np.float32)
        codes = pc.index_in(values, value_set=self._classes)
        if codes.null_count:
            bad = int(np.argmax(codes.is_null().to_numpy(zero_copy_only=False)))
            value = values[bad].as_py()
            if value is None:
                raise ValueError(
                    f"{self.path}: missing label in target {self.target!r} at row {row + bad}"
                )
            raise ValueError(
                f"{self.path}: label {value!r} at row {row + bad} is not one of the classes "
                f"{self._classes.to_pylist()[:20]}"
            )
        return codes.to_numpy(zero_copy_only=False).astype(np.int64)

    def _finite(self, values: pa.Array, what: str, row: int) -> np.ndarray:
        x = pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
        finite = np.isfinite(x)
        if not finite.all():
            bad = int(np.argmin(finite))
            raise ValueError(
                f"{self.path}: {what} has a missing, NaN or infinite value at row {row + bad}"
            )
        return x

    def _count(self, label_type: pa.DataType, check_labels: bool = False) -> int:
        rows = 0
        for batch in self._read({self.target: label_type}):
            if check_labels:
                self._labels(batch.column(self.target), rows)
            rows += batch.num_rows
        return rows

    def _find_classes(self, task: Task | None) -> tuple[list[str], int]:
        seen: set[str] = set()
        rows = 0
        for batch in self._read({self.target: pa.string()}):
            values = batch.column(self.target)
            if values.null_count:
                bad = int(np.argmax(values.is_null().to_numpy(zero_copy_only=False)))
                raise ValueError(
                    f"{self.path}: missing label in target {self.target!r} at row {rows + bad}"
                )
            seen.update(pc.unique(values).to_pylist())
            rows += batch.num_rows
            if len(seen) > MAX_CLASSES:
                raise ValueError(
                    f"target {self.target!r} has more than {MAX_CLASSES} distinct values; "
                    "pass task='regression' for a numeric target, or classes=[...]"
                )
        if not seen:
            raise ValueError(f"{self.path} has no rows: cannot find the classes of {self.target!r}")
        numbers = _as_numbers(seen)
        if numbers is not None and task is None and len(seen) > MAX_NUMERIC_CLASSES:
            raise ValueError(
                f"target {self.target!r} is numeric with {len(seen)} distinct values; pass "
                "task='regression' for regression, or task='multiclass' / classes=[...]"
            )
        ordered = sorted(seen, key=numbers.__getitem__) if numbers else sorted(seen)
        return ordered, rows


def _feature_type(column: str, inferred: pa.DataType, categorical: bool) -> pa.DataType:
    """Type to read a feature column as: string for categoricals, else float64 (or bool)."""
    if categorical or pa.types.is_string(inferred) or pa.types.is_large_string(inferred):
        return pa.string()
    if pa.types.is_dictionary(inferred):
        return pa.string()
    if pa.types.is_boolean(inferred):
        return pa.bool_()
    if (
        pa.types.is_integer(inferred)
        or pa.types.is_floating(inferred)
        or pa.types.is_null(inferred)
    ):
        return pa.float64()
    raise ValueError(
        f"column {column!r} has type {inferred}, which is neither numeric nor text; "
        "list it in categorical=[...] or drop=[...]"
    )


def _check_classes(classes: Sequence[str]) -> list[str]:
    if isinstance(classes, str) or not isinstance(classes, Sequence) or not classes:
        raise ValueError(f"classes must be a non-empty list of label names, got {classes!r}")
    names = [str(c) for c in classes]
    if len(set(names)) != len(names):
        raise ValueError(f"classes has duplicate names: {names}")
    return names


def _as_numbers(values: set[str]) -> dict[str, float] | None:
    try:
        return {v: float(v) for v in values}
    except ValueError:
        return None


class CSVStream(TableStream):
    """A CSV file (gzip and other compressions inferred from the name) as a stream of batches.

    Read with pyarrow's streaming CSV reader in blocks of ``block_size`` bytes, so memory
    stays constant whatever the file size. Missing values are ``""``, ``NA``, ``NaN`` and
    the like; in a categorical column they get code 0, elsewhere they are an error.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "toy.csv"
    >>> _ = path.write_text("a,b,y\\n1,2,UP\\n3,4,DOWN\\n5,6,UP\\n")
    >>> stream = CSVStream(path, target="y")
    >>> stream.info.classes, [y.tolist() for _, y in stream.iter_batches(2)]
    (('DOWN', 'UP'), [[1, 0], [1]])
    """

    kind = "CSV"

    def __init__(
        self,
        path: str | os.PathLike,
        target: str,
        task: Task | None = None,
        classes: Sequence[str] | None = None,
        categorical: Sequence[str] | None = None,
        categories: Mapping[str, Sequence[str]] | None = None,
        drop: Sequence[str] | None = None,
        name: str | None = None,
        max_categories: Count | None = None,
        hash_buckets: Count = 1024,
        drifts: Sequence[Drift | Mapping[str, int]] = (),
        block_size: Count = 1 << 20,
    ) -> None:
        self.block_size = block_size
        super().__init__(
            path,
            target,
            task,
            classes,
            categorical,
            categories,
            drop,
            name,
            max_categories,
            hash_buckets,
            drifts,
        )

    def _schema(self) -> pa.Schema:
        reader = self._open(pacsv.ConvertOptions(strings_can_be_null=True))
        try:
            return reader.schema
        finally:
            reader.close()

    def _read(self, types: Mapping[str, pa.DataType]) -> Iterator[pa.RecordBatch]:
        options = pacsv.ConvertOptions(
            column_types=dict(types),
            include_columns=list(types),
            strings_can_be_null=True,
        )
        reader = self._open(options)
        try:
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                except pa.ArrowInvalid as error:
                    raise ValueError(f"{self.path}: {error}") from None
                yield batch
        finally:
            reader.close()

    def _open(self, options: pacsv.ConvertOptions) -> pacsv.CSVStreamingReader:
        try:
            return pacsv.open_csv(
                self.path,
                read_options=pacsv.ReadOptions(block_size=self.block_size),
                convert_options=options,
            )
        except pa.ArrowInvalid as error:
            raise ValueError(f"{self.path}: cannot read as CSV: {error}") from None


class ParquetStream(TableStream):
    """A Parquet file as a stream of batches, read ``chunk_rows`` rows at a time.

    >>> import tempfile, pathlib, pyarrow as pa, pyarrow.parquet as pq
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "toy.parquet"
    >>> pq.write_table(pa.table({"a": [1.0, 2.0, 3.0], "y": [0, 1, 1]}), path)
    >>> stream = ParquetStream(path, target="y")
    >>> stream.info.task, stream.info.classes, next(stream.iter_batches(8))[1].tolist()
    ('binary', ('0', '1'), [0, 1, 1])
    """

    kind = "Parquet"

    def __init__(
        self,
        path: str | os.PathLike,
        target: str,
        task: Task | None = None,
        classes: Sequence[str] | None = None,
        categorical: Sequence[str] | None = None,
        categories: Mapping[str, Sequence[str]] | None = None,
        drop: Sequence[str] | None = None,
        name: str | None = None,
        max_categories: Count | None = None,
        hash_buckets: Count = 1024,
        drifts: Sequence[Drift | Mapping[str, int]] = (),
        chunk_rows: Count = 65_536,
    ) -> None:
        self.chunk_rows = chunk_rows
        super().__init__(
            path,
            target,
            task,
            classes,
            categorical,
            categories,
            drop,
            name,
            max_categories,
            hash_buckets,
            drifts,
        )

    def _schema(self) -> pa.Schema:
        try:
            return pq.read_schema(self.path)
        except pa.ArrowInvalid as error:
            raise ValueError(f"{self.path}: cannot read as Parquet: {error}") from None

    def _read(self, types: Mapping[str, pa.DataType]) -> Iterator[pa.RecordBatch]:
        with pq.ParquetFile(self.path) as file:
            for batch in file.iter_batches(batch_size=self.chunk_rows, columns=list(types)):
                try:
                    arrays = [pc.cast(batch.column(c), t) for c, t in types.items()]
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
                    raise ValueError(f"{self.path}: {error}") from None
                yield pa.RecordBatch.from_arrays(arrays, names=list(types))


registry.register("csv")(CSVStream)
registry.register("parquet")(ParquetStream)
