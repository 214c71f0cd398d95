"""``SampleWindow``: the last samples of a stream, as the window-based learners keep them.

>>> import numpy as np
>>> window = SampleWindow(3)
>>> window.extend(np.arange(8, dtype=np.float32).reshape(4, 2), np.array([0, 1, 0, 1]))
>>> X, y = window.get()
>>> X[:, 0], y
(array([2., 4., 6.], dtype=float32), array([1, 0, 1]))
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["SampleWindow"]


class SampleWindow:
    """The last ``capacity`` samples ``(X, y)`` of a stream, in preallocated numpy arrays.

    Writes are vectorised (at most two slice copies per batch, whatever the batch size);
    ``get`` returns copies, oldest sample first.

    >>> buf = SampleWindow(4)
    >>> buf.extend(np.ones((2, 1)), np.array([1.0, 2.0]))
    >>> len(buf), buf.get()[1]
    (2, array([1., 2.]))
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._X: np.ndarray | None = None
        self._y: np.ndarray | None = None
        self._pos = 0  # next slot to write
        self._size = 0  # filled slots

    def __len__(self) -> int:
        return self._size

    def extend(self, X: np.ndarray, y: np.ndarray) -> None:
        """Append a batch; only its last ``capacity`` samples can stay."""
        cap = self.capacity
        if self._X is None:
            self._X = np.empty((cap, X.shape[1]), dtype=X.dtype)
            self._y = np.empty(cap, dtype=y.dtype)
        assert self._y is not None
        if len(X) >= cap:
            self._X[:] = X[-cap:]
            self._y[:] = y[-cap:]
            self._pos, self._size = 0, cap
            return
        n = len(X)
        first = min(n, cap - self._pos)
        self._X[self._pos : self._pos + first] = X[:first]
        self._y[self._pos : self._pos + first] = y[:first]
        rest = n - first
        if rest:
            self._X[:rest] = X[first:]
            self._y[:rest] = y[first:]
        self._pos = (self._pos + n) % cap
        self._size = min(cap, self._size + n)

    def get(self) -> tuple[np.ndarray, np.ndarray]:
        """The stored samples, oldest first (copies); empty arrays before any ``extend``."""
        if self._X is None or self._y is None:
            return np.empty((0, 0), dtype=np.float32), np.empty(0, dtype=np.float32)
        if self._size < self.capacity:
            return self._X[: self._size].copy(), self._y[: self._size].copy()
        order = np.r_[self._pos : self.capacity, 0 : self._pos]
        return self._X[order], self._y[order]

    def state(self) -> dict[str, Any] | None:
        """The contents, oldest first, as plain arrays (``None`` when never written)."""
        if self._X is None:
            return None
        X, y = self.get()
        return {"X": X, "y": y}

    @classmethod
    def from_state(cls, capacity: int, state: dict[str, Any] | None) -> SampleWindow:
        """A buffer holding what ``state()`` returned."""
        buf = cls(capacity)
        if state is None:
            return buf
        if not isinstance(state, dict) or not {"X", "y"} <= set(state):
            raise ValueError("buffer state must be None or a dict with keys X, y")
        X, y = np.asarray(state["X"]), np.asarray(state["y"])
        if X.ndim != 2 or y.ndim != 1 or len(X) != len(y) or len(X) > capacity:
            raise ValueError(
                f"buffer state holds X {X.shape} and y {y.shape}; expected (n, d) and (n,) "
                f"with n <= window={capacity}"
            )
        buf._X = np.empty((capacity, X.shape[1]), dtype=X.dtype)
        buf._y = np.empty(capacity, dtype=y.dtype)
        if len(X):
            buf.extend(X, y)
        return buf
