"""First Session Adaptation (``fsa``): adapt the body on the first session, then an exact LDA head.

Panos, Kobe, Olmeda Reino, Aljundi and Turner, "First Session Adaptation: A Strong Replay-Free
Baseline for Class-Incremental Learning", ICCV 2023 (section numbers not checked: the search
tool reached the abstract only): the body (feature extractor)
is adapted on the first session only, with a linear soft-max head, and then fixed; the head is
replaced by linear discriminant analysis on the body's features -- class means and one shared
covariance -- which is updated exactly as every later session's samples arrive, so the
learner never stores nor replays a sample and its head equals the batch LDA fit on all data
seen (eq. of the LDA head: ``w_c = S^-1 mu_c``, ``b_c = -1/2 mu_c^T S^-1 mu_c + log pi_c``).

Deviations (stated): the paper adapts an ImageNet-pretrained ResNet / EfficientNet body
(full-body fine-tuning in the high-shot setting; FiLM adapters in the few-shot one, not
implemented here); this learner trains the base network (an MLP) from its own initialisation
on the first session, since the digit sequences have no pre-trained body. The shared
covariance is shrunk towards the identity, ``S = (1 - shrinkage) * Sigma + shrinkage * I``
(the paper regularises the covariance with a multiple of the identity; the value is a
parameter here). Class priors are uniform (``uniform_prior = True``, default) or the class
frequencies seen.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from adaptloop.learners.base import Learner, TorchTrainable, registry
from adaptloop.learners.wrappers.base import Wrapper
from adaptloop.validation import Flag, Fraction

__all__ = ["FirstSessionAdaptation", "StreamingLDA"]


class StreamingLDA:
    """Exact incremental LDA: per-class counts and sums, and the total second moment, in float64.

    ``update(Z, y)`` adds samples; the fitted head is the same whatever the order and batching
    (``Sigma = (sum z z^T - sum_c n_c mu_c mu_c^T) / n``, the pooled within-class covariance).

    >>> lda = StreamingLDA(n_classes=3, dim=2, shrinkage=0.1)
    >>> lda.update(np.array([[0.0, 0.0], [0.2, 0.0]]), np.array([0, 0]))
    >>> lda.update(np.array([[2.0, 2.0], [2.2, 2.0]]), np.array([2, 2]))
    >>> lda.predict(np.array([[0.1, 0.1], [1.9, 2.1]])).tolist()
    [0, 2]
    >>> lda.seen.tolist()
    [True, False, True]
    """

    def __init__(
        self, n_classes: int, dim: int, shrinkage: float = 0.1, uniform_prior: bool = True
    ) -> None:
        self.shrinkage = shrinkage
        self.uniform_prior = uniform_prior
        self.counts = np.zeros(n_classes)
        self.sums = np.zeros((n_classes, dim))
        self.moment = np.zeros((dim, dim))
        self._head: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def seen(self) -> np.ndarray:
        """Which classes have at least one sample."""
        return self.counts > 0

    def update(self, Z: np.ndarray, y: np.ndarray) -> None:
        """Add samples ``Z`` (features) with labels ``y``."""
        Z = np.asarray(Z, dtype=np.float64)
        np.add.at(self.counts, y, 1.0)
        np.add.at(self.sums, y, Z)
        self.moment += Z.T @ Z
        self._head = None

    def head(self) -> tuple[np.ndarray, np.ndarray]:
        """The linear head ``(W, b)``: scores ``Z @ W.T + b``; ``-inf`` for unseen classes."""
        if self._head is None:
            seen = self.seen
            n = self.counts.sum()
            means = self.sums[seen] / self.counts[seen, None]
            within = self.moment - (self.counts[seen, None] * means).T @ means
            dim = self.moment.shape[0]
            cov = (1 - self.shrinkage) * within / max(n, 1.0) + self.shrinkage * np.eye(dim)
            W = np.zeros_like(self.sums)
            W[seen] = np.linalg.solve(cov, means.T).T
            b = np.full(len(self.counts), -np.inf)
            b[seen] = -0.5 * np.einsum("cd,cd->c", W[seen], means)
            if not self.uniform_prior:
                b[seen] += np.log(self.counts[seen] / n)
            self._head = (W, b)
        return self._head

    def scores(self, Z: np.ndarray) -> np.ndarray:
        """Discriminant scores ``(n, n_classes)``; ``-inf`` for unseen classes."""
        W, b = self.head()
        return np.asarray(Z, dtype=np.float64) @ W.T + b

    def predict(self, Z: np.ndarray) -> np.ndarray:
        """The class of highest score."""
        return self.scores(Z).argmax(1).astype(np.int64)

    def state(self) -> dict[str, np.ndarray]:
        """The statistics, as copies."""
        return {
            "counts": self.counts.copy(),
            "sums": self.sums.copy(),
            "moment": self.moment.copy(),
        }

    @classmethod
    def from_state(
        cls, state: dict[str, np.ndarray], shrinkage: float, uniform_prior: bool
    ) -> StreamingLDA:
        """The LDA whose :meth:`state` was ``state``."""
        sums = np.asarray(state["sums"], dtype=np.float64)
        lda = cls(sums.shape[0], sums.shape[1], shrinkage, uniform_prior)
        lda.counts = np.asarray(state["counts"], dtype=np.float64).copy()
        lda.sums, lda.moment = sums.copy(), np.asarray(state["moment"], dtype=np.float64).copy()
        return lda


@registry.register("fsa")
class FirstSessionAdaptation(Wrapper):
    """First Session Adaptation over a torch classifier with hidden layers (see the module doc).

    The first session (until the first ``end_task``) trains the base as is (body and soft-max
    head). At that ``end_task`` the body -- the base network without its last layer, i.e. its
    ``hidden_representation`` -- is frozen and an LDA head is fitted on the session's data;
    every later ``learn`` only adds its samples' features to the LDA statistics (exact, one
    pass, no replay) and predictions come from the LDA head. ``begin_task`` is accepted and
    ignored (class-incremental: no task identity is needed).

    >>> from adaptloop.learners.models.mlp import MLPClassifier
    >>> rng = np.random.default_rng(0)
    >>> centres = np.eye(4, dtype=np.float32) * 3
    >>> y = np.repeat(np.arange(4), 20)
    >>> X = (centres[y] + rng.normal(0, 0.3, (80, 4))).astype(np.float32)
    >>> model = FirstSessionAdaptation(MLPClassifier(n_classes=4, hidden=(8,), seed=0))
    >>> first = y < 2
    >>> model.learn(X[first], y[first]); model.end_task(X[first], y[first])
    >>> model.adapted
    True
    >>> model.learn(X[~first], y[~first])
    >>> float((model.predict(X) == y).mean()) > 0.9
    True
    """

    def __init__(
        self, base: Learner, shrinkage: Fraction = 0.1, uniform_prior: Flag = True
    ) -> None:
        super().__init__(base)
        if not isinstance(self.base, TorchTrainable) or not hasattr(
            self.base, "hidden_representation"
        ):
            raise ValueError(
                f"base of {type(self).__name__} must be a torch classifier with a hidden "
                f"representation (mlp), got {type(self.base).__name__}"
            )
        if self.task == "regression":
            raise ValueError(f"{type(self).__name__} needs a classifier base, got a regressor")
        self.shrinkage = shrinkage
        self.uniform_prior = uniform_prior
        self.lda_: StreamingLDA | None = None

    @property
    def stored_samples(self) -> int:
        """0: the LDA head keeps per-class statistics, never samples."""
        return 0

    @property
    def adapted(self) -> bool:
        """Whether the first session ended: the body is frozen and the LDA head serves."""
        return self.lda_ is not None

    def _features(self, X: np.ndarray) -> np.ndarray:
        return self.model_.hidden_representation(X)  # type: ignore[attr-defined]

    def begin_task(self, task: int, classes: Any = None) -> None:
        """Accepted for the continual evaluation; FSA needs no task identity."""

    def end_task(self, X: np.ndarray, y: np.ndarray) -> None:
        """The first call ends the first session: freeze the body, fit LDA on ``X``, ``y``.
        Later calls change nothing (their samples were added as they were learned)."""
        X, y = self.check_Xy(X, y)
        if self.lda_ is None:
            Z = self._features(X)
            lda = StreamingLDA(self.n_classes or 0, Z.shape[1], self.shrinkage, self.uniform_prior)
            lda.update(Z, y)
            self.lda_ = lda

    def _learn(self, X: np.ndarray, y: np.ndarray) -> None:
        if self.lda_ is None:
            self.model_.learn(X, y)
        else:
            self.lda_.update(self._features(X), y)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        if self.lda_ is None:
            return self.model_.predict(X)
        return self.lda_.predict(self._features(X))

    def _predict_proba(self, X: np.ndarray) -> np.ndarray:
        X = self.check_X(X)
        if self.lda_ is None:
            return self.model_.predict_proba(X)  # type: ignore[attr-defined]
        s = self.lda_.scores(self._features(X))
        s = np.exp(s - s.max(1, keepdims=True))
        return (s / s.sum(1, keepdims=True)).astype(np.float32)

    def _get_state(self) -> dict[str, Any]:
        return {
            "model": self.model_.state_dict(),
            "lda": None if self.lda_ is None else self.lda_.state(),
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or "lda" not in state:
            raise ValueError(f"{type(self).__name__} state must be a dict with keys model, lda")
        model = self._new_model(state)
        lda = state["lda"]
        self.model_ = model
        self.lda_ = (
            None
            if lda is None
            else StreamingLDA.from_state(lda, self.shrinkage, self.uniform_prior)
        )
