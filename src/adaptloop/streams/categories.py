"""Codes of a categorical column whose values keep arriving: the vocabulary grows as it reads.

A :class:`Vocabulary` starts from the values known before reading (given by the user, or the
first chunk's) with codes ``1..k`` in that order; a value seen later for the first time gets
the next free code, in order of first appearance, so a second pass over the same rows gives the
same codes. With ``max_categories`` the codes stop at that many values: a value beyond the cap
is hashed (CRC-32 of its UTF-8 text) into one of ``hash_buckets`` codes after the cap,
``max_categories + 1 .. max_categories + hash_buckets``. Code 0 is a missing value, and only
that. Every new and every overflowed value is counted (:meth:`Vocabulary.report`).

>>> import pyarrow as pa
>>> vocab = Vocabulary(["b", "a"], max_categories=3, hash_buckets=2)
>>> vocab.encode(pa.array(["a", "c", None, "d", "c", "b"])).tolist()
[2.0, 3.0, 0.0, 4.0, 3.0, 1.0]
>>> vocab.values, vocab.report()
(('b', 'a', 'c'), {'known': 2, 'new': 1, 'new_rows': 2, 'overflow_rows': 1, 'missing_rows': 1})
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def stable_hash(text: str) -> int:
    """A hash of ``text`` that is the same in every process (Python's ``hash`` is salted).

    >>> stable_hash("user_42")
    712180813
    """
    return zlib.crc32(text.encode("utf-8"))


class Vocabulary:
    """The growing codes of one categorical column (see the module doc)."""

    def __init__(
        self,
        known: Sequence[str],
        max_categories: int | None = None,
        hash_buckets: int = 1024,
    ) -> None:
        self._values = pa.array(list(known), type=pa.string())
        self.max_categories = max_categories
        self.hash_buckets = hash_buckets
        self.known = len(self._values)
        self.new_rows = 0
        self.overflow_rows = 0
        self.missing_rows = 0

    @property
    def values(self) -> tuple[str, ...]:
        """The values with a code of their own; value ``i`` has code ``i + 1``."""
        return tuple(self._values.to_pylist())

    def encode(self, values: pa.Array) -> np.ndarray:
        """The codes of ``values`` (float64), growing the vocabulary with their new values."""
        values = values.cast(pa.string())
        index = pc.index_in(values, value_set=self._values)
        valid = pc.is_valid(values)
        unseen = pc.and_(pc.is_null(index), valid)
        if pc.any(unseen).as_py():
            fresh = pc.unique(values.filter(unseen))  # in order of first appearance
            room = len(fresh)
            if self.max_categories is not None:
                room = max(0, min(room, self.max_categories - len(self._values)))
            if room:
                self._values = pa.concat_arrays([self._values, fresh.slice(0, room)])
                index = pc.index_in(values, value_set=self._values)
        if len(self._values) > self.known:
            later = pc.greater_equal(index, pa.scalar(self.known, index.type))
            self.new_rows += int(pc.sum(later).as_py() or 0)
        codes = index.to_numpy(zero_copy_only=False).astype(np.float64)  # NaN where null
        missing = ~valid.to_numpy(zero_copy_only=False)
        self.missing_rows += int(missing.sum())
        overflow = np.isnan(codes) & ~missing
        if overflow.any():
            self.overflow_rows += int(overflow.sum())
            assert self.max_categories is not None  # only a cap leaves valid values uncoded
            rows = np.flatnonzero(overflow)
            texts = values.take(pa.array(rows)).to_pylist()
            hashed = [stable_hash(t) % self.hash_buckets for t in texts]
            codes[rows] = np.asarray(hashed, dtype=np.float64) + self.max_categories
        codes[missing] = -1.0
        return codes + 1.0

    def report(self) -> dict[str, int]:
        """``known``: values before reading; ``new``: values that got a code while reading;
        ``new_rows``: rows holding one of them; ``overflow_rows``: rows hashed beyond the cap;
        ``missing_rows``: rows without a value (code 0)."""
        return {
            "known": self.known,
            "new": len(self._values) - self.known,
            "new_rows": self.new_rows,
            "overflow_rows": self.overflow_rows,
            "missing_rows": self.missing_rows,
        }
