"""The two indexes behind ``ErrorMemory``: a SimHash sketch (ReLoop2's) and an exact top-K FIFO.

Both store, for each written sample, a key ``h`` (float32 vector) and a value row (the true
target and the base prediction, side by side), and answer a batch of queries with up to ``k``
candidate entries per query: their keys, their values and how many written samples each
candidate stands for (a sketch bucket's count, 1 for an exact entry, 0 where there is none).
``ErrorMemory`` turns candidates into attention weights; the indexes only store and retrieve.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> keys = rng.normal(size=(100, 4)).astype(np.float32)
>>> values = rng.random((100, 2))
>>> sketch = SketchIndex(dim=4, n_values=2, k=3, n_bits=4, seed=0)
>>> sketch.write(keys, values)
>>> cand_keys, cand_values, counts = sketch.read(keys[:5])
>>> cand_keys.shape, cand_values.shape, bool((counts > 0).all())  # every query finds its buckets
((5, 3, 4), (5, 3, 2), True)
>>> exact = ExactIndex(dim=4, n_values=2, k=3, capacity=50)
>>> exact.write(keys, values)
>>> len(exact), bool(np.allclose(exact.read(keys[-1:])[0][0, 0], keys[-1]))  # nearest is itself
(50, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["ExactIndex", "SketchIndex", "cosine"]


def cosine(queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Cosine similarity of each query ``(n, d)`` with its candidates ``(n, k, d)`` -> ``(n, k)``.

    A zero vector has similarity 0 with everything.

    >>> cosine(np.array([[1.0, 0.0]]), np.array([[[2.0, 0.0], [0.0, 1.0], [0.0, 0.0]]]))
    array([[1., 0., 0.]])
    """
    dots = np.einsum("nd,nkd->nk", queries, candidates)
    norms = np.linalg.norm(queries, axis=1)[:, None] * np.linalg.norm(candidates, axis=2)
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)


class SketchIndex:
    """ReLoop2's locality-sensitive sketch: ``k`` tables of ``2**n_bits`` buckets.

    Table ``t`` addresses a key by ``n_bits`` SimHash bits (Charikar 2002): the signs of its
    projections on ``n_bits`` random Gaussian hyperplanes (drawn from ``seed``). Each bucket
    keeps running sums of the keys, of the value rows and a count; a write adds a batch to the
    ``k`` buckets of each sample (one per table), a read returns, per query, the mean key and
    mean value row of its ``k`` buckets and their counts (0 for an empty bucket). Write and
    read cost O(k) per sample whatever the number of samples written: constant time and space.

    Vectorised over the batch: addresses are one matrix product; a write sorts the batch's
    bucket ids, sums rows sharing a bucket (``np.add.at`` with repeated ids is several times
    slower on 2-D rows), then adds the sums with one fancy-indexed update. Rows sharing a
    bucket are summed by rank within their run when runs are short (the usual case with many
    buckets; ``np.add.reduceat`` costs ~0.3 us per run even for runs of one), else by
    ``np.add.reduceat``. Sums are float32 (half the memory of float64; counts stay
    exact up to 2**24 samples per bucket).

    >>> import numpy as np
    >>> index = SketchIndex(dim=2, n_values=1, k=2, n_bits=3, seed=1)
    >>> same_direction = np.array([[1.0, 0.5], [2.0, 1.0]], dtype=np.float32)
    >>> index.write(same_direction, np.array([[1.0], [0.0]]))
    >>> _, values, counts = index.read(np.array([[4.0, 2.0]], dtype=np.float32))
    >>> values[0, :, 0].tolist(), counts.tolist()  # both writes share each bucket
    ([0.5, 0.5], [[2.0, 2.0]])
    """

    def __init__(self, dim: int, n_values: int, k: int = 4, n_bits: int = 10, seed: int = 0):
        self.dim, self.n_values, self.k, self.n_bits = int(dim), int(n_values), int(k), int(n_bits)
        rng = np.random.default_rng([int(seed), 0x5EED])
        self.planes = rng.standard_normal((self.dim, self.k * self.n_bits)).astype(np.float32)
        self._weights = (1 << np.arange(self.n_bits, dtype=np.int64)).astype(np.float32)
        self._offsets = np.arange(self.k, dtype=np.int64) * (1 << self.n_bits)
        # one row per bucket: key sums (dim), value sums (n_values), count
        self.table = np.zeros((self.k << self.n_bits, self.dim + self.n_values + 1), np.float32)

    def addresses(self, keys: np.ndarray) -> np.ndarray:
        """Flat bucket ids ``(n, k)``: table ``t``'s bucket of each key, offset by ``t * 2**L``."""
        bits = (keys @ self.planes > 0).astype(np.float32).reshape(len(keys), self.k, self.n_bits)
        return (bits @ self._weights).astype(np.int64) + self._offsets

    def write(self, keys: np.ndarray, values: np.ndarray) -> None:
        """Add each sample's key and value row to its ``k`` buckets."""
        ids = self.addresses(keys).ravel()
        rows = np.empty((len(keys), self.table.shape[1]), dtype=np.float32)
        rows[:, : self.dim], rows[:, self.dim : -1], rows[:, -1] = keys, values, 1.0
        order = np.argsort(ids, kind="stable")
        ids, rows = ids[order], rows[order // self.k]
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        if len(starts) == len(ids):  # no bucket twice in the batch (usual at 2**16 buckets)
            self.table[ids] += rows
            return
        lengths = np.diff(np.r_[starts, len(ids)])
        if lengths.max() > 16:  # crowded buckets: one pass of reduceat
            self.table[ids[starts]] += np.add.reduceat(rows, starts, axis=0)
            return
        sums = rows[starts]  # a few repeats: add the r-th sample of every longer run, r = 1, 2 ..
        for r in range(1, int(lengths.max())):
            runs = np.flatnonzero(lengths > r)
            sums[runs] += rows[starts[runs] + r]
        self.table[ids[starts]] += sums

    def read(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per query: mean keys ``(n, k, dim)``, mean values ``(n, k, n_values)``, counts."""
        rows = self.table[self.addresses(keys)]
        count = rows[..., -1:]
        means = np.divide(rows[..., :-1], count, out=np.zeros_like(rows[..., :-1]), where=count > 0)
        return means[..., : self.dim], means[..., self.dim :], count[..., 0]

    def __len__(self) -> int:
        """Samples written (each sample is counted once, in every table)."""
        return int(self.table[: 1 << self.n_bits, -1].sum())

    def clear(self) -> None:
        self.table[:] = 0.0

    def state(self) -> dict[str, Any]:
        return {"table": self.table.copy()}

    def load(self, state: dict[str, Any]) -> None:
        table = np.asarray(state.get("table") if isinstance(state, dict) else None)
        if table.shape != self.table.shape:
            raise ValueError(
                f"sketch state must hold a table of shape {self.table.shape} "
                f"(k, n_bits and the key size must match), got {table.shape}"
            )
        self.table = table.astype(np.float32, copy=True)


class ExactIndex:
    """The last ``capacity`` samples in a FIFO ring; reads return the exact top-``k`` by cosine.

    For small memories and for checking the sketch against: cost O(capacity) per query (one
    matrix product per batch), where the sketch's is O(k).

    >>> import numpy as np
    >>> index = ExactIndex(dim=2, n_values=1, k=1, capacity=2)
    >>> keys = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32)
    >>> index.write(keys, np.array([[0.0], [1.0], [2.0]]))
    >>> len(index), index.read(np.array([[1, 0.1]], dtype=np.float32))[1].tolist()  # [1, 0] left
    (2, [[[2.0]]])
    """

    def __init__(self, dim: int, n_values: int, k: int = 4, capacity: int = 2000):
        self.dim, self.n_values, self.k, self.capacity = (
            int(dim),
            int(n_values),
            int(k),
            int(capacity),
        )
        self.keys = np.zeros((self.capacity, self.dim), dtype=np.float32)
        self.values = np.zeros((self.capacity, self.n_values), dtype=np.float32)
        self.size = 0
        self.position = 0  # next slot to overwrite

    def write(self, keys: np.ndarray, values: np.ndarray) -> None:
        """Append a batch, overwriting the oldest entries when full."""
        keys, values = keys[-self.capacity :], values[-self.capacity :]
        slots = (self.position + np.arange(len(keys))) % self.capacity
        self.keys[slots], self.values[slots] = keys, values
        self.position = int((self.position + len(keys)) % self.capacity)
        self.size = min(self.capacity, self.size + len(keys))

    def read(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per query: the ``k`` most cosine-similar stored keys, their values, counts (1 or 0)."""
        n, k = len(keys), min(self.k, self.size)
        if k == 0:
            shape = (n, self.k)
            return (
                np.zeros((*shape, self.dim), np.float32),
                np.zeros((*shape, self.n_values), np.float32),
                np.zeros(shape, dtype=np.float32),
            )
        stored = self.keys[: self.size]
        norms = np.linalg.norm(stored, axis=1) * np.linalg.norm(keys, axis=1)[:, None]
        sims = np.divide(keys @ stored.T, norms, out=np.zeros_like(norms), where=norms > 0)
        top = (
            np.argpartition(-sims, k - 1, axis=1)[:, :k]
            if k < self.size
            else np.tile(np.arange(self.size), (n, 1))
        )
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(sims, top, 1), 1), 1)
        pad = self.k - k
        cand_keys = np.pad(stored[top], ((0, 0), (0, pad), (0, 0)))
        cand_values = np.pad(self.values[: self.size][top], ((0, 0), (0, pad), (0, 0)))
        counts = np.pad(np.ones((n, k), dtype=np.float32), ((0, 0), (0, pad)))
        return cand_keys, cand_values, counts

    def __len__(self) -> int:
        return self.size

    def clear(self) -> None:
        self.size = self.position = 0

    def state(self) -> dict[str, Any]:
        """The stored entries in slot order, and the next slot to overwrite."""
        return {
            "keys": self.keys[: self.size].copy(),
            "values": self.values[: self.size].copy(),
            "position": self.position,
        }

    def load(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or not {"keys", "values", "position"} <= set(state):
            raise ValueError("exact memory state must be a dict with keys keys, values, position")
        keys, values = np.asarray(state["keys"]), np.asarray(state["values"])
        n, position = len(keys), state["position"]
        if (
            keys.ndim != 2
            or keys.shape[1:] != (self.dim,)
            or values.shape != (n, self.n_values)
            or n > self.capacity
            or not isinstance(position, (int, np.integer))
            or not (position == n if n < self.capacity else 0 <= position < n)
        ):
            raise ValueError(
                f"exact memory state holds keys {keys.shape}, values {values.shape} and position "
                f"{position!r}; expected (n, {self.dim}), (n, {self.n_values}) with "
                f"n <= capacity={self.capacity}, and a slot position"
            )
        self.keys[:n], self.values[:n] = keys, values
        self.size, self.position = n, int(position)
