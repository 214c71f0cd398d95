"""``MajorityClass``: a tiny classifier whose behaviour is obvious (examples and tests)."""

from __future__ import annotations

from typing import Any

import numpy as np

from adaptloop.learners.base import BaseLearner, StateRoles

__all__ = ["MajorityClass"]


class MajorityClass(BaseLearner):
    """A tiny classifier predicting the most frequent label learned so far (ties: lowest code).

    Not registered; the wrappers' examples use it because its behaviour is obvious.
    Unfitted, it predicts class 0 with uniform probabilities.

    >>> m = MajorityClass(n_classes=3)
    >>> m.learn(np.zeros((3, 1)), np.array([2, 2, 1]))
    >>> m.predict(np.zeros((2, 1))), m.predict_proba(np.zeros((1, 1))).round(2)
    (array([2, 2]), array([[0.  , 0.33, 0.67]]))
    """

    def __init__(self, n_classes: int = 2) -> None:
        super().__init__(task="binary" if n_classes == 2 else "multiclass", n_classes=n_classes)
        self.counts = np.zeros(self._n_classes or 2, dtype=np.int64)

    def _learn(self, X: np.ndarray, y: np.ndarray) -> None:
        self.counts += np.bincount(y, minlength=len(self.counts))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class frequencies, the same row for every sample."""
        X = self.check_X(X)
        total = self.counts.sum()
        p = self.counts / total if total else np.full(len(self.counts), 1 / len(self.counts))
        return np.tile(p, (len(X), 1))

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return np.full(len(X), int(self.counts.argmax()), dtype=np.int64)

    def _get_state(self) -> dict[str, Any]:
        return {"counts": self.counts.copy()}

    def state_roles(self) -> StateRoles:
        """Federation: the counts are shared (averaged)."""
        return StateRoles()

    def _set_state(self, state: dict[str, Any]) -> None:
        self.counts = np.asarray(state["counts"], dtype=np.int64).copy()
