"""Online encoders: one-hot that grows, feature hashing, standard scaling.

An encoder takes some columns of a float32 batch ``X`` (category codes for the first two, as
the streams give them: 0 missing, ``1..`` values) and gives a block of new columns:
:meth:`Encoder.learn` updates its state on a batch, :meth:`Encoder.transform` encodes a batch
with the state it has. Every bit of state is in :meth:`Encoder.state_dict`. The blocks are
``scipy.sparse`` CSR matrices for the one-hot and hashing encoders (their width is the number
of categories, or ``2**20`` buckets, of which a row holds one entry per column: building CSR
from the codes is a few vectorised numpy calls, and a dense block would cost its full width per
row) and dense arrays for the scaler. Encoders compose with ``|`` into a
:class:`~adaptloop.features.pipeline.Pipeline` in front of a learner.

References: River's ``preprocessing.OneHotEncoder``, ``FeatureHasher`` and ``StandardScaler``;
the numbers match theirs on the same tokens (``tests/test_features.py``).

>>> import numpy as np
>>> onehot = OneHotEncoder(columns=(0,))
>>> X = np.array([[3, 0.5], [1, 0.2], [3, 0.1]], dtype=np.float32)
>>> onehot.learn(X)
>>> onehot.transform(X).toarray().tolist(), onehot.width
([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], 2)
"""

from __future__ import annotations

import copy
import inspect
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from adaptloop.parameters import ParameterError
from adaptloop.registry import Registry
from adaptloop.validation import Count, NonNegativeInt, Seed

registry = Registry("encoder")
"""Encoders by name (``one_hot``, ``hashing``, ``standard_scaler``): the ``steps`` of a pipeline."""

Columns = tuple[str | NonNegativeInt, ...] | None
"""Which input columns an encoder takes: feature names or indices; ``None``: its default."""


class Encoder(ABC):
    """An online encoder of some columns of ``X`` (see the module doc).

    ``columns`` names them; :meth:`bind` resolves names against the input's feature names
    (the pipeline does it). ``categorical``: whether its default columns are the categorical
    ones (one-hot, hashing) or the others (scaling). ``stable``: whether a row's encoding does
    not depend on the rows learned before it, except through columns no model has weights
    for yet (one-hot, hashing): then encoding a whole batch at once and learning it sample by
    sample is exact test-then-train."""

    categorical: bool = True
    stable: bool = True

    def __init__(self, columns: Columns = None) -> None:
        if columns is not None and len(set(columns)) != len(columns):
            raise ParameterError(
                f"{type(self).__name__}.columns", f"lists a column twice: {columns!r}"
            )
        self.columns = None if columns is None else tuple(columns)
        self.index_: tuple[int, ...] | None = None if columns is None else self._indices(None)

    def _indices(self, names: Sequence[str] | None) -> tuple[int, ...] | None:
        assert self.columns is not None
        out = []
        for c in self.columns:
            if isinstance(c, str):
                if names is None:
                    return None  # resolved by bind
                if c not in names:
                    raise ParameterError(
                        f"{type(self).__name__}.columns",
                        f"unknown column {c!r}; columns: {list(names)}",
                    )
                out.append(list(names).index(c))
            else:
                out.append(int(c))
        return tuple(out)

    def bind(self, names: Sequence[str] | None, default: Sequence[int]) -> None:
        """Resolve ``columns`` against the input's feature ``names``; ``default``: the columns
        taken when ``columns`` is None."""
        if self.columns is None:
            self.index_ = tuple(default)
            return
        index = self._indices(names)
        if index is None:
            raise ParameterError(
                f"{type(self).__name__}.columns",
                f"names columns {self.columns!r} but the input's feature names are unknown; "
                "give the pipeline feature_names=... (experiment files do)",
            )
        self.index_ = index

    def check(self, X: np.ndarray) -> None:
        """Refuse a batch whose columns this encoder cannot take (nothing changes)."""
        assert self.index_ is not None
        if self.index_ and max(self.index_) >= X.shape[1]:
            raise ValueError(
                f"{type(self).__name__}: column {max(self.index_)} does not exist: X has "
                f"{X.shape[1]} columns"
            )

    @property
    @abstractmethod
    def width(self) -> int:
        """Columns of the block :meth:`transform` gives now."""

    @property
    def grows(self) -> bool:
        """Whether :attr:`width` may grow as the encoder learns (then only a learner that takes
        sparse input can follow it)."""
        return False

    role: str = "local"
    """What its state is in federation: ``"statistics"`` (``count``, ``mean``, ``m2``, pooled
    exactly) or ``"local"`` (kept by each client: a one-hot table's columns are its own)."""

    @abstractmethod
    def learn(self, X: np.ndarray) -> None:
        """Update the state on a batch (all columns of ``X``; the encoder picks its own)."""

    @abstractmethod
    def transform(self, X: np.ndarray) -> np.ndarray | sp.csr_matrix:
        """The block of a batch, with the state as it is (``(n, width)``)."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything learned, as plain Python and numpy values."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` gave."""

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments, read back from the attributes of the same name."""
        names = [n for n in inspect.signature(type(self).__init__).parameters if n != "self"]
        return {n: getattr(self, n) for n in names}

    def clone(self) -> Encoder:
        """A new encoder with the same parameters, nothing learned."""
        return type(self)(**copy.deepcopy(self.get_params()))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def __or__(self, other: Any) -> Any:
        from adaptloop.features.pipeline import pipeline  # the pipeline imports encoders

        return pipeline(self, other)

    def _codes(self, X: np.ndarray) -> np.ndarray:
        assert self.index_ is not None
        codes = X[:, list(self.index_)]
        bad = (codes < 0) | (codes != np.floor(codes))
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise ValueError(
                f"{type(self).__name__}: column {self.index_[j]} must hold category codes "
                f"(integers >= 0), got {codes[i, j]:g}"
            )
        return codes.astype(np.int64)


def _csr(rows: int, cols: np.ndarray, values: np.ndarray, width: int) -> sp.csr_matrix:
    """One entry per (row, column of the encoder), zeros dropped: ``cols`` is ``(n, k)``."""
    keep = values != 0
    if keep.all():  # no missing value: k entries per row, already in row order
        k = cols.shape[1]
        indptr = np.arange(0, rows * k + 1, k, dtype=np.int64)
        return sp.csr_matrix((values.ravel(), cols.ravel(), indptr), shape=(rows, width))
    counts = keep.sum(axis=1)
    indptr = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return sp.csr_matrix((values[keep], cols[keep], indptr), shape=(rows, width))


MAX_CODE = 1 << 24
"""The largest category code the one-hot encoder takes (its lookup tables are arrays indexed
by code); larger codes are refused: hash them instead."""


@registry.register("one_hot")
class OneHotEncoder(Encoder):
    """One-hot encoding that grows: each (column, value) pair gets an output column when first
    learned, in order of appearance, and keeps it. Code 0 (missing) has no column; a value not
    yet learned encodes as zeros (River's ``OneHotEncoder`` emits its key, which a linear model
    has no weight for yet: the same prediction). ``max_categories``: at most that many values
    per column, the others sharing one overflow column; the width is then fixed,
    ``len(columns) * (max_categories + 1)``, so a dense learner can follow it. Codes up to
    :data:`MAX_CODE`; the lookup is one array per column indexed by code (vectorised).

    >>> import numpy as np
    >>> enc = OneHotEncoder(columns=(0,), max_categories=2)
    >>> X = np.array([[5], [7], [9], [5]], dtype=np.float32)
    >>> enc.learn(X)
    >>> enc.transform(X).toarray().astype(int).tolist(), enc.width
    ([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]], 3)
    """

    def __init__(self, columns: Columns = None, max_categories: Count | None = None) -> None:
        super().__init__(columns)
        self.max_categories = max_categories
        self._tables: list[np.ndarray] = []  # per column: code -> output column, -1 unseen
        self._sizes: list[int] = []  # per column: values with a column of their own
        self._next = 0

    @property
    def width(self) -> int:
        if self.max_categories is None:
            return self._next
        return len(self.index_ or ()) * (self.max_categories + 1)

    @property
    def grows(self) -> bool:
        return self.max_categories is None

    def _ensure(self, codes: np.ndarray) -> None:
        while len(self._tables) < codes.shape[1]:
            self._tables.append(np.full(1, -1, dtype=np.int64))
            self._sizes.append(0)
        top = int(codes.max(initial=0))
        if top >= MAX_CODE:
            raise ValueError(
                f"OneHotEncoder: code {top} is above {MAX_CODE}; hash such a column instead"
            )
        for j, table in enumerate(self._tables):
            if top >= len(table):
                grown = np.full(max(top + 1, 2 * len(table)), -1, dtype=np.int64)
                grown[: len(table)] = table
                self._tables[j] = grown

    def learn(self, X: np.ndarray) -> None:
        codes = self._codes(X)
        self._ensure(codes)
        for j, table in enumerate(self._tables):
            column = codes[:, j]
            unseen = column[(table[column] < 0) & (column > 0)]
            if unseen.size == 0:
                continue
            values, first = np.unique(unseen, return_index=True)
            values = values[np.argsort(first)]  # in order of first appearance
            if self.max_categories is not None:
                values = values[: max(0, self.max_categories - self._sizes[j])]
                table[values] = (
                    j * (self.max_categories + 1) + self._sizes[j] + np.arange(len(values))
                )
            else:
                table[values] = self._next + np.arange(len(values))
                self._next += len(values)
            self._sizes[j] += len(values)

    def transform(self, X: np.ndarray) -> sp.csr_matrix:
        codes = self._codes(X)
        self._ensure(codes)
        cols = np.empty(codes.shape, dtype=np.int64)
        for j, table in enumerate(self._tables):
            found = table[codes[:, j]]
            if self.max_categories is not None:  # learned-out values share the overflow column
                other = j * (self.max_categories + 1) + self.max_categories
                found = np.where((found < 0) & (codes[:, j] > 0), other, found)
            cols[:, j] = found
        values = (cols >= 0).astype(np.float64)
        return _csr(len(X), np.maximum(cols, 0), values, self.width)

    def state_dict(self) -> dict[str, Any]:
        return {
            "tables": [t.copy() for t in self._tables],
            "sizes": list(self._sizes),
            "next": self._next,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._tables = [np.asarray(t, dtype=np.int64).copy() for t in state["tables"]]
        self._sizes = [int(v) for v in state["sizes"]]
        self._next = int(state["next"])


@registry.register("hashing")
class FeatureHasher(Encoder):
    """The hashing trick (Weinberger et al., ICML 2009): value ``v`` of column ``name`` is the
    token ``"name=v"``, hashed with the signed 32-bit MurmurHash3 (scikit-learn's) into bucket
    ``h mod n_features`` with sign ``+1`` for ``h >= 0`` and ``-1`` otherwise
    (``alternate_sign``), as River's ``FeatureHasher(n_features, seed)`` does for a string
    value (its 32-bit seed drawn the same way from ``seed``). Code 0 (missing) adds nothing.
    Nothing is learned: the width is fixed, and no state but the parameters. Tokens use the
    pipeline's feature names (``x<j>`` without them) and the integer code.

    >>> import numpy as np
    >>> enc = FeatureHasher(columns=(0,), n_features=8, seed=1)
    >>> enc.bind(None, ())
    >>> block = enc.transform(np.array([[3], [0]], dtype=np.float32))
    >>> block.shape, block.indptr.tolist(), block.indices.tolist(), block.data.tolist()
    ((2, 8), [0, 1, 1], [4], [-1.0])
    """

    def __init__(
        self,
        columns: Columns = None,
        n_features: Count = 1 << 20,
        seed: Seed = 0,
        alternate_sign: bool = True,
    ) -> None:
        super().__init__(columns)
        self.n_features = n_features
        self.seed = seed
        self.alternate_sign = alternate_sign
        self._murmur_seed = int(np.random.RandomState(seed).randint(0, 2**32, dtype=np.uint32))
        self._names: tuple[str, ...] = ()
        self._memo: list[dict[int, tuple[int, float]]] = []  # a cache: a function of the params

    def bind(self, names: Sequence[str] | None, default: Sequence[int]) -> None:
        super().bind(names, default)
        assert self.index_ is not None
        self._names = tuple(names[j] if names else f"x{j}" for j in self.index_)
        self._memo = [{} for _ in self.index_]

    @property
    def width(self) -> int:
        return self.n_features

    def learn(self, X: np.ndarray) -> None:
        self._codes(X)  # checked; nothing to learn

    def _bucket(self, name: str, code: int) -> tuple[int, float]:
        # imported here: scikit-learn costs seconds to import, and `adaptloop list` imports this
        # module only to list the encoders
        from sklearn.utils import murmurhash3_32

        h = murmurhash3_32(f"{name}={code}", seed=self._murmur_seed)
        return h % self.n_features, (1.0 if h >= 0 or not self.alternate_sign else -1.0)

    def transform(self, X: np.ndarray) -> sp.csr_matrix:
        codes = self._codes(X)
        if not self._names:
            self.bind(None, self.index_ or ())
        cols = np.zeros(codes.shape, dtype=np.int64)
        values = np.zeros(codes.shape, dtype=np.float32)
        for j, memo in enumerate(self._memo):
            uniq, inverse = np.unique(codes[:, j], return_inverse=True)
            found = [memo.get(v) for v in uniq.tolist()]
            for k, v in enumerate(uniq.tolist()):
                if found[k] is None:
                    found[k] = memo[v] = (0, 0.0) if v == 0 else self._bucket(self._names[j], v)
            index = np.array([f[0] for f in found], dtype=np.int64)
            sign = np.array([f[1] for f in found], dtype=np.float32)
            cols[:, j] = index[inverse.ravel()]
            values[:, j] = sign[inverse.ravel()]
        matrix = _csr(len(X), cols, values, self.n_features)
        matrix.sum_duplicates()  # two columns may share a bucket, as in River
        return matrix

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError("FeatureHasher has no state; got a non-empty state")


@registry.register("standard_scaler")
class StandardScaler(Encoder):
    """Online standardisation ``(x - mean) / std`` with running mean and variance (Chan et
    al.'s merge, batch by batch; at batch 1 Welford's update, River's ``StandardScaler``). The
    statistics take in a batch before it is scaled, as River's pipeline learns before it
    transforms; a column with zero variance scales to 0. Default columns: those that are not
    categorical.

    >>> import numpy as np
    >>> scaler = StandardScaler(columns=(0,))
    >>> X = np.array([[1.0], [3.0]], dtype=np.float32)
    >>> scaler.learn(X)
    >>> scaler.transform(X).ravel().tolist()
    [-1.0, 1.0]
    """

    categorical = False
    stable = False
    role = "statistics"

    def __init__(self, columns: Columns = None) -> None:
        super().__init__(columns)
        self._count = 0
        self._mean = np.zeros(0)
        self._m2 = np.zeros(0)

    @property
    def width(self) -> int:
        return len(self.index_ or ())

    def learn(self, X: np.ndarray) -> None:
        assert self.index_ is not None
        x = X[:, list(self.index_)].astype(np.float64)
        if self._mean.size != x.shape[1]:
            self._mean, self._m2 = np.zeros(x.shape[1]), np.zeros(x.shape[1])
        n = len(x)
        if n == 0:
            return
        batch_mean = x.mean(axis=0)
        batch_m2 = ((x - batch_mean) ** 2).sum(axis=0)
        total = self._count + n
        delta = batch_mean - self._mean
        self._mean = self._mean + delta * (n / total)
        self._m2 = self._m2 + batch_m2 + delta**2 * (self._count * n / total)
        self._count = total

    def transform(self, X: np.ndarray) -> np.ndarray:
        assert self.index_ is not None
        x = X[:, list(self.index_)].astype(np.float64)
        if self._count == 0:
            return np.zeros_like(x, dtype=np.float32)
        std = np.sqrt(self._m2 / self._count)
        scaled = np.divide(x - self._mean, std, out=np.zeros_like(x), where=std > 0)
        return scaled.astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"count": self._count, "mean": self._mean.copy(), "m2": self._m2.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._count = int(state["count"])
        self._mean = np.asarray(state["mean"], dtype=np.float64).copy()
        self._m2 = np.asarray(state["m2"], dtype=np.float64).copy()


EncoderSpec = Encoder | str | dict[str, Any]
"""A pipeline step: an encoder, a registered encoder name or ``{"kind": name, ...}``."""
