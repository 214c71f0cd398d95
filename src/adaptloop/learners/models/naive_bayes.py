"""``ForgettingNB``: Gaussian naive Bayes whose old samples fade with a half-life.

A small learner that adapts to drift by forgetting. Each class keeps the weighted count, mean
and variance of its samples per feature, where a sample's weight halves every ``half_life``
samples learned after it (``None``: never forget, plain Gaussian naive Bayes as River's and
scikit-learn's ``GaussianNB``). A class's probability is its weighted share times the product of
per-feature normal densities; classes not seen yet get none, and before any sample every class
is equally likely.

Learning is exact per sample at any batch size: the samples of a batch of ``n`` weigh
``r ** (n - 1 - i)`` with ``r = 0.5 ** (1 / half_life)``, as in ``n`` batches of one.

It is the worked example of CONTRIBUTING.md: one file, one registration, one suite case.

>>> import numpy as np
>>> model = ForgettingNB(n_classes=2, half_life=100)
>>> X = np.array([[0.0, 0.0], [0.2, 0.1], [4.0, 4.0], [4.2, 3.9]], dtype=np.float32)
>>> model.learn(X, np.array([0, 0, 1, 1]))
>>> model.predict(np.array([[0.5, 0.0], [3.0, 4.0]], dtype=np.float32))
array([0, 1])
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from annotated_types import Ge

from adaptloop.learners.base import BaseClassifier, StateRoles, registry
from adaptloop.validation import Count, PositiveReal

__all__ = ["ForgettingNB"]


@registry.register("forgetting_nb")
class ForgettingNB(BaseClassifier):
    """Gaussian naive Bayes with exponential forgetting (see the module docstring).

    Parameters: ``n_classes``; ``half_life``: samples after which a sample's weight halves
    (``None``: never); ``var_smoothing``: added to every variance, as a share of the largest
    one (scikit-learn's default, 1e-9), so that a constant feature does not divide by zero.
    """

    def __init__(
        self,
        n_classes: Annotated[int, Ge(2)] = 2,
        half_life: Count | None = None,
        var_smoothing: PositiveReal = 1e-9,
    ) -> None:
        super().__init__(task="binary" if n_classes == 2 else "multiclass", n_classes=n_classes)
        self.half_life = half_life
        self.var_smoothing = var_smoothing
        self._weights = np.zeros(n_classes)  # per class: the sum of its samples' weights
        self._sums: np.ndarray | None = None  # (classes, features): weighted sums of x
        self._squares: np.ndarray | None = None  # (classes, features): weighted sums of x^2

    def _learn(self, X: np.ndarray, y: np.ndarray) -> None:
        n, X = len(X), X.astype(np.float64)
        rate = 1.0 if self.half_life is None else 0.5 ** (1.0 / self.half_life)
        weight = rate ** np.arange(n - 1, -1, -1, dtype=np.float64)  # the last sample: 1
        if self._sums is None:
            self._sums = np.zeros((self.n_classes, X.shape[1]))
            self._squares = np.zeros((self.n_classes, X.shape[1]))
        for total in (self._weights, self._sums, self._squares):
            total *= rate**n
        np.add.at(self._weights, y, weight)
        np.add.at(self._sums, y, weight[:, None] * X)
        np.add.at(self._squares, y, weight[:, None] * X * X)

    def _predict_proba(self, X: np.ndarray) -> np.ndarray:
        seen = self._weights > 0
        if self._sums is None or not seen.any():
            return np.full((len(X), self.n_classes), 1.0 / self.n_classes)
        w = self._weights[seen, None]
        mean = self._sums[seen] / w
        var = np.maximum(self._squares[seen] / w - mean * mean, 0.0)
        var += self.var_smoothing * max(float(var.max()), 1e-12)
        log_prior = np.log(self._weights[seen] / self._weights.sum())
        distance = ((X[:, None, :] - mean[None]) ** 2 / var[None]).sum(axis=2)
        log_joint = log_prior - 0.5 * (np.log(2 * np.pi * var).sum(axis=1) + distance)
        log_joint -= log_joint.max(axis=1, keepdims=True)
        proba = np.zeros((len(X), self.n_classes))
        proba[:, seen] = np.exp(log_joint) / np.exp(log_joint).sum(axis=1, keepdims=True)
        return proba

    def _get_state(self) -> dict[str, Any]:
        sums = None if self._sums is None else {"x": self._sums.copy(), "x2": self._squares.copy()}
        return {"weights": self._weights.copy(), "sums": sums}

    def _set_state(self, state: dict[str, Any]) -> None:
        weights = np.asarray(state["weights"], dtype=np.float64)
        if weights.shape != (self.n_classes,):
            raise ValueError(f"state holds {weights.size} class weights, expected {self.n_classes}")
        sums = state["sums"]
        self._weights = weights
        self._sums = None if sums is None else np.asarray(sums["x"], dtype=np.float64)
        self._squares = None if sums is None else np.asarray(sums["x2"], dtype=np.float64)

    def state_roles(self) -> StateRoles:
        """Nothing is local: federated clients average the weights and weighted sums."""
        return StateRoles()
