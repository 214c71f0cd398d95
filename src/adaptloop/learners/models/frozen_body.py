"""A softmax output layer on a frozen, pretrained body: the transfer-learning part of Bristle.

Bristle (Verbraeken, de Vos & Pouwelse, arXiv:2110.11006, 2021; the rule is
:mod:`adaptloop.distributed.rules.bristle`) fixes and freezes the non-output layers of the
network in advance, learned on public data, so that peers train and exchange the output layer
only. :func:`pretrain_body` fits a one-hidden-layer tanh network on a public split and keeps its
hidden layer (:class:`Body`); :class:`FrozenBodyClassifier` is a learner whose state holds the
output layer only (a softmax layer ``theta``, one column per class, on ``[tanh(X W + b), 1]``):
the body is a constructor argument, so it is never sent, averaged or attacked.

:func:`frozen_body` (registered as ``frozen_body``) builds one from ``public``: a function giving
``n`` public rows ``(X, y)``. In a federated experiment file the federation fills it with rows of
the clients' stream drawn after their pool (no client holds them;
:class:`~adaptloop.distributed.data.PublicSamples`), so ``learner = { kind = "frozen_body",
body_samples = 600 }`` is Bristle's learner.

>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(400, 3)); y = (X[:, 0] > 0).astype(np.int64)
>>> model = frozen_body(public=lambda n: (X[:n], y[:n]), body_hidden=8, body_samples=400, lr=1.0)
>>> for _ in range(30):
...     model.learn(X.astype(np.float32), y)
>>> float((model.predict(X.astype(np.float32)) == y).mean()) > 0.9
True
>>> model.state_dict()["learned"]["theta"].shape  # the output layer: 8 units + bias, 2 classes
(9, 2)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from annotated_types import Ge
from scipy.special import softmax

from adaptloop.learners.base import BaseClassifier, StateRoles, registry
from adaptloop.validation import Count, PositiveReal, Seed

__all__ = ["Body", "FrozenBodyClassifier", "PublicRows", "frozen_body", "pretrain_body"]

PublicRows = Callable[[int], tuple[np.ndarray, np.ndarray]]
"""Where public data comes from: called with ``n``, it gives ``n`` rows ``(X, y)`` that no
client holds."""


@dataclass(frozen=True)
class Body:
    """The frozen non-output layers: features ``tanh(X @ weights + bias)``."""

    weights: np.ndarray
    bias: np.ndarray

    def features(self, X: np.ndarray) -> np.ndarray:
        """The body's output for ``X`` (shape ``(n, hidden)``)."""
        return np.tanh(np.asarray(X, dtype=np.float64) @ self.weights + self.bias)


def pretrain_body(
    X: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    hidden: Count = 32,
    epochs: Count = 300,
    lr: PositiveReal = 0.5,
    seed: Seed = 0,
) -> Body:
    """Fit a one-hidden-layer tanh network with a softmax output on ``(X, y)`` (public data) by
    full-batch gradient descent and keep its hidden layer: Bristle's transfer-learning step.

    >>> rng = np.random.default_rng(1)
    >>> X = rng.normal(size=(50, 4)); y = (X[:, 1] > 0).astype(np.int64)
    >>> pretrain_body(X, y, n_classes=2, hidden=5, epochs=10).weights.shape
    (4, 5)
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if X.ndim != 2 or len(X) != len(y) or len(y) == 0:
        raise ValueError(f"X must be (n, d) and y (n,) with n > 0, got {X.shape} and {y.shape}")
    rng = np.random.default_rng([seed, 21])
    n, d = X.shape
    W = rng.normal(0.0, 1.0 / np.sqrt(d), (d, hidden))
    b = np.zeros(hidden)
    V = np.zeros((hidden + 1, n_classes))
    Y = np.eye(n_classes)[y]
    for _ in range(epochs):
        H = np.tanh(X @ W + b)
        Hb = np.hstack([H, np.ones((n, 1))])
        G = (softmax(Hb @ V, axis=1) - Y) / n  # dLoss/dZ
        dH = (G @ V[:-1].T) * (1.0 - H * H)
        V -= lr * Hb.T @ G
        W -= lr * X.T @ dH
        b -= lr * dH.sum(axis=0)
    return Body(W, b)


class FrozenBodyClassifier(BaseClassifier):
    """A softmax output layer on a frozen :class:`Body` (None: on the raw features); only the
    output layer ``theta`` (``(hidden + 1, n_classes)``) is learned and in the state. Each
    ``learn`` takes one gradient step of size ``lr`` on the batch's mean cross-entropy."""

    def __init__(
        self,
        body: Body | None = None,
        n_classes: Annotated[int, Ge(2)] = 2,
        lr: PositiveReal = 0.5,
    ) -> None:
        super().__init__(task="binary" if n_classes == 2 else "multiclass", n_classes=n_classes)
        self.body = body
        self.lr = lr
        self._theta: np.ndarray | None = None

    def _hidden(self, X: np.ndarray) -> np.ndarray:
        H = X.astype(np.float64) if self.body is None else self.body.features(X)
        return np.hstack([H, np.ones((len(H), 1))])

    def _learn(self, X: np.ndarray, y: np.ndarray) -> None:
        H = self._hidden(X)
        if self._theta is None:
            self._theta = np.zeros((H.shape[1], self._n_classes))
        G = (softmax(H @ self._theta, axis=1) - np.eye(self._n_classes)[y]) / len(y)
        self._theta -= self.lr * H.T @ G

    def _predict_proba(self, X: np.ndarray) -> np.ndarray:
        if self._theta is None:
            return np.full((len(X), self._n_classes), 1.0 / self._n_classes)
        return softmax(self._hidden(X) @ self._theta, axis=1)

    def _get_state(self) -> dict[str, Any]:
        return {"theta": None if self._theta is None else self._theta.copy()}

    def _set_state(self, state: Any) -> None:
        theta = state["theta"]
        self._theta = None if theta is None else np.array(theta, dtype=np.float64)

    def state_roles(self) -> StateRoles:
        """Federation: everything in the state (the output layer) is shared."""
        return StateRoles()


@registry.register("frozen_body")
def frozen_body(
    public: PublicRows | None = None,
    n_classes: Annotated[int, Ge(2)] = 2,
    lr: PositiveReal = 0.5,
    body_hidden: Count = 32,
    body_samples: Count = 600,
    body_epochs: Count = 300,
    body_lr: PositiveReal = 0.5,
    seed: Seed = 0,
) -> FrozenBodyClassifier:
    """A :class:`FrozenBodyClassifier` (output-layer step size ``lr``) on a body of
    ``body_hidden`` units pretrained on ``body_samples`` rows of ``public`` (:func:`pretrain_body`:
    ``body_epochs`` full-batch steps of size ``body_lr``): Bristle's learner. A federated
    experiment file fills ``public`` with rows of its stream that no client holds."""
    if not callable(public):
        raise ValueError(
            f"public: no function giving public rows to pretrain the body on (got {public!r}); "
            "a federated experiment draws them from its stream (rows no client holds), or pass "
            "public=lambda n: (X[:n], y[:n])"
        )
    X, y = public(body_samples)
    body = pretrain_body(
        X, y, n_classes, hidden=body_hidden, epochs=body_epochs, lr=body_lr, seed=seed
    )
    return FrozenBodyClassifier(body, n_classes=n_classes, lr=lr)
