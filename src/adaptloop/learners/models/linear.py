"""Linear learners in numpy: logistic / softmax regression and linear regression.

Both are fitted by gradient descent on each batch, fully vectorised, with optional online
standardisation of the features: a running mean and variance, merged batch by batch with
Chan's formula and updated *before* the gradient step, as River's
``StandardScaler() | LogisticRegression()`` pipeline does sample by sample.

**Batch size and step size.** ``lr`` is the *per-sample* step size. A ``learn`` call on ``n``
samples moves the weights as far as ``n`` per-sample SGD steps of size ``lr`` would (to first
order): it takes ``k`` steps of size ``lr * n / k`` on the batch's mean gradient, with ``k``
the smallest number that keeps every step within the curvature bound of the batch
(``step <= 1 / (c * mean ||x||^2 + l2)``, ``c`` = 0.25 for the logistic, 0.5 for the softmax and
1 for the squared loss), and at most ``max_steps``. At batch 256 it takes a handful of steps
and so keeps up with per-sample SGD where a single mean-gradient step with the same ``lr``
would learn ~256x slower. With ``optimizer="adam"`` a call takes one Adam step of size
``lr * sqrt(n)``.

**One sample at a time.** A batch of one, and every sample of
:meth:`~LogisticRegression.test_then_train` (exact test-then-train inside a batch, what
``prequential`` runs at any ``batch_size``: the learners are
:class:`~adaptloop.learners.base.Sequential`), run the compiled kernels of
:mod:`~adaptloop.learners.models.linear_kernels`: River's per-sample SGD step of ``lr``
(``optim.SGD(0.01)`` by default), without the cap above (River has none: an outlier of the
standardised features takes the full step), so both give the same numbers bit for bit, and
River's up to float rounding.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(512, 2)).astype(np.float32)
>>> y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
>>> model = LogisticRegression()
>>> for start in range(0, 512, 64):
...     model.learn(X[start:start + 64], y[start:start + 64])
>>> float((model.predict(X) == y).mean()) > 0.9
True
>>> model.predict_proba(X[:2]).shape
(2, 2)
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from annotated_types import Ge

from adaptloop.learners.base import (
    BaseClassifier,
    BaseLearner,
    StateRoles,
    check_sequence,
    registry,
    sequence_is_checked,
    shared_arguments,
    shares,
)
from adaptloop.learners.models import linear_kernels as kernels
from adaptloop.validation import (
    Count,
    NonNegativeReal,
    PositiveReal,
    Seed,
    check_features,
    check_targets,
)

if TYPE_CHECKING:
    from adaptloop.learners.detectors import CompiledDetector

Optimizer = Literal["sgd", "adam"]

_ADAM_BETA1 = 0.9
_ADAM_BETA2 = 0.999
_ADAM_EPS = 1e-8

_STATE_KEYS = ("theta", "count", "mean", "m2", "inv_std", "steps", "adam_m", "adam_v")


def linear_parameters(
    *,
    lr: PositiveReal = 0.01,
    optimizer: Optimizer = "sgd",
    l2: NonNegativeReal = 0.0,
    standardize: bool = True,
    seed: Seed = 0,
    max_steps: Count = 16,
) -> None:
    """The declaration of the linear learners' shared parameters (see the module doc)."""


class _LinearCore:
    """Parameters, running feature statistics and optimiser state of the linear learners.

    ``theta`` has shape ``(d + 1, k)``: one row per feature plus the intercept row, one column
    per output (``k = 1`` for the logistic and the linear regression, ``n_classes`` for the
    softmax). Outputs are ``Z = [standardise(X), 1] @ theta``. ``stats`` holds the running
    mean, M2 and 1 / std of the features (rows), ``counters`` the samples they have taken and
    the optimiser's steps.

    One sample at a time (a batch of one, or :meth:`test_then_train`) runs the compiled
    per-sample kernels of :mod:`~adaptloop.learners.models.linear_kernels`; larger batches
    numpy.
    """

    lr: float
    optimizer: str
    l2: float
    standardize: bool
    max_steps: int
    _kind: str  # "binary", "multiclass" or "regression"
    _k: int  # outputs
    _curvature: float  # bound on the second derivative of the loss in Z

    def _init_core(self, kind: str, k: int) -> None:
        self._kind = kind
        self._k = k
        self._curvature = {"binary": 0.25, "multiclass": 0.5, "regression": 1.0}[kind]
        self._params = kernels.pack(kind, lr=self.lr, l2=self.l2, standardize=self.standardize)
        self._d = 0
        self._theta: np.ndarray | None = None
        self._stats = np.zeros((3, 0))
        self._counters = np.zeros(2, dtype=np.int64)
        self._adam_m: np.ndarray | None = None
        self._adam_v: np.ndarray | None = None

    def _allocate(self, d: int) -> None:
        self._d = d
        self._theta = np.zeros((d + 1, self._k))
        self._stats = np.zeros((3, d))
        if self.optimizer == "adam":
            self._adam_m, self._adam_v = np.zeros((d + 1, self._k)), np.zeros((d + 1, self._k))

    def _plan(self, n: int, mean_sq_norm: float) -> tuple[int, float]:
        """Number of steps and step size for a batch of ``n`` (see the module docstring)."""
        cap = 1.0 / (self._curvature * mean_sq_norm + self.l2)
        total = self.lr * n
        k = math.ceil(total / cap)
        if k <= 1:
            return 1, total
        if k > self.max_steps:
            return self.max_steps, cap
        return k, total / k

    # -- numpy path ----------------------------------------------------------------------------
    def _standardized(self, X: np.ndarray, update: bool) -> np.ndarray:
        """``[standardise(X), 1]`` as float64, shape ``(n, d + 1)``; with ``update`` the running
        statistics first take in the batch (Chan et al.'s merge of mean and M2).

        The batch statistics come from one small Gram matrix of ``X - old mean`` (shifted
        sums, so no cancellation when the mean is far from zero).
        """
        n, d = X.shape
        Xa = np.empty((n, d + 1))
        Xa[:, d] = 1.0
        xs = Xa[:, :d]
        if not self.standardize:
            xs[...] = X
            return Xa
        mean, m2, inv_std = self._stats
        np.subtract(X, mean, out=xs)
        if update:
            gram = Xa.T @ Xa
            sums = gram[d, :d]  # sum of (x - old mean)
            delta = sums / n  # batch mean - old mean
            batch_m2 = np.maximum(gram.diagonal()[:d] - sums * delta, 0.0)
            count = int(self._counters[0])
            total = count + n
            shift = delta * (n / total)  # new mean - old mean
            mean += shift
            m2 += batch_m2 + delta * delta * (count * n / total)
            self._counters[0] = total
            std = np.sqrt(m2 / total)
            inv_std[...] = np.divide(1.0, std, out=np.zeros(d), where=std > 0)
            xs -= shift
        xs *= inv_std
        return Xa

    def _outputs_numpy(self, X: np.ndarray) -> np.ndarray:
        """Raw outputs ``Z``, shape ``(n, k)``; standardisation folded into the weights."""
        theta, d = self._theta, self._d
        if not self.standardize:
            return X @ theta[:d] + theta[d]
        mean, _, inv_std = self._stats
        W = theta[:d] * inv_std[:, None]
        return X @ W + (theta[d] - mean @ W)

    def _learn_numpy(self, X: np.ndarray, y: np.ndarray) -> None:
        Xa = self._standardized(X, update=True)
        n, d = X.shape
        kind, theta = self._kind, self._theta
        if self._k == 1:
            theta = theta[:, 0]  # a view: gemv instead of gemm
        if kind == "binary":
            target = 1.0 - 2.0 * y  # 2 * (p - y) = tanh(z / 2) + 1 - 2y
        elif kind == "regression":
            target = y.astype(np.float64)
        else:
            target = np.zeros((n, self._k))
            target[np.arange(n), y] = 1.0

        def gradient() -> np.ndarray:  # d loss / d theta, summed over the batch
            Z = Xa @ theta
            if kind == "binary":
                Z *= 0.5
                np.tanh(Z, out=Z)
                Z += target
                Z *= 0.5
            elif kind == "regression":
                Z -= target
            else:
                Z -= Z.max(axis=1, keepdims=True)
                np.exp(Z, out=Z)
                Z /= Z.sum(axis=1, keepdims=True)
                Z -= target
            return Z @ Xa if Z.ndim == 1 else Xa.T @ Z

        if self.optimizer == "adam":
            g = gradient() / n
            self._adam_step(g.reshape(d + 1, self._k), self.lr * math.sqrt(n))
            return
        steps, step = self._plan(n, float(np.vdot(Xa, Xa)) / n)
        for _ in range(steps):
            g = gradient()
            if self.l2:
                theta[:d] *= 1.0 - step * self.l2
            g *= step / n
            theta -= g
        self._counters[1] += steps

    def _adam_step(self, g: np.ndarray, lr: float) -> None:
        theta, m, v = self._theta, self._adam_m, self._adam_v
        if self.l2:
            g[:-1] += self.l2 * theta[:-1]
        self._counters[1] += 1
        t = int(self._counters[1])
        m *= _ADAM_BETA1
        m += (1.0 - _ADAM_BETA1) * g
        v *= _ADAM_BETA2
        v += (1.0 - _ADAM_BETA2) * (g * g)
        step = lr * math.sqrt(1.0 - _ADAM_BETA2**t) / (1.0 - _ADAM_BETA1**t)
        theta -= step * m / (np.sqrt(v) + _ADAM_EPS)

    # -- compiled per-sample path ----------------------------------------------------------------
    def _sequence(
        self,
        X: np.ndarray,
        X_learn: np.ndarray,
        y_learn: np.ndarray,
        learn_at: np.ndarray,
        detector: tuple = kernels.NO_DETECTOR,
    ) -> tuple[np.ndarray, int, int, bool]:
        """Run :func:`~adaptloop.learners.models.linear_kernels.sequence`: raw outputs of the
        predictions made, predictions made, learned samples consumed, alarm.

        Arguments already as :func:`~adaptloop.learners.base.check_sequence` returns them
        (:func:`~adaptloop.learners.base.sequence_is_checked`, O(1)) go straight to the
        compiled loop, which checks their values before it changes anything; others, and the
        first call (which sizes the model), are checked here first. A refused value raises
        ``ValueError`` by ``check_sequence``, the model unchanged."""
        if self._theta is None or not sequence_is_checked(self, X, X_learn, y_learn, learn_at):
            X, X_learn, y_learn, learn_at = check_sequence(self, X, X_learn, y_learn, learn_at)
            label = np.float32 if self._kind == "regression" else np.int64
            y_learn = np.ascontiguousarray(y_learn, dtype=label)  # also an empty one's
            learn_at = np.ascontiguousarray(learn_at)
        if self._theta is None:
            self._allocate(X.shape[1] if X_learn.shape[0] == 0 else X_learn.shape[1])
            if self.n_features_in_ is None and X_learn.shape[0]:
                self.n_features_in_ = X_learn.shape[1]
        scores = np.empty((X.shape[0], self._k))
        made, consumed, alarm = kernels.sequence(
            self._params,
            self._theta,
            self._stats,
            self._counters,
            X,
            X_learn,
            y_learn,
            learn_at,
            scores,
            *detector,
        )
        if made < 0:  # the compiled check refused a value: say which
            check_sequence(self, X, X_learn, y_learn, learn_at)
            raise ValueError("test_then_train: a feature, label or learn_at value is refused")
        return scores[:made], made, consumed, alarm

    @property
    def test_then_train(self) -> Callable[..., np.ndarray]:
        """Exact test-then-train inside a batch (:class:`~adaptloop.learners.base.Sequential`);
        missing with ``optimizer="adam"`` (its steps are per batch)."""
        if self.optimizer != "sgd":
            raise AttributeError(
                f"{type(self).__name__} with optimizer={self.optimizer!r} learns per batch: "
                "no test_then_train"
            )
        return self._test_then_train

    def _test_then_train(
        self,
        X: np.ndarray,
        X_learn: np.ndarray,
        y_learn: np.ndarray,
        learn_at: np.ndarray,
        proba: bool = False,
    ) -> np.ndarray:
        return self._finish(self._sequence(X, X_learn, y_learn, learn_at)[0], proba)

    @property
    def monitored_test_then_train(self) -> Callable[..., tuple[np.ndarray, int, int, bool]]:
        """:class:`~adaptloop.learners.base.MonitoredSequential`: test-then-train that feeds the
        error of each learned sample, predicted just before it is learned, to a compiled drift
        detector and stops at its first alarm."""
        self.test_then_train  # noqa: B018 - the same condition
        return self._monitored

    def _monitored(
        self,
        X: np.ndarray,
        X_learn: np.ndarray,
        y_learn: np.ndarray,
        learn_at: np.ndarray,
        detector: CompiledDetector,
        judge_from: int = 0,
        proba: bool = False,
    ) -> tuple[np.ndarray, int, int, bool]:
        scores, made, consumed, alarm = self._sequence(
            X, X_learn, y_learn, learn_at, (judge_from, *detector.state)
        )
        return self._finish(scores, proba), made, consumed, alarm

    @abstractmethod
    def _finish(self, scores: np.ndarray, proba: bool) -> np.ndarray:
        """Predictions from raw outputs, as ``predict`` (or ``predict_proba``) returns them."""

    def _core_state(self) -> dict[str, Any]:
        def arr(value: Any) -> np.ndarray | None:
            return None if value is None else np.array(value, dtype=np.float64)

        empty = self._theta is None
        return {
            "theta": arr(self._theta),
            "count": int(self._counters[0]),
            "mean": None if empty else self._stats[0].copy(),
            "m2": None if empty else self._stats[1].copy(),
            "inv_std": None if empty else self._stats[2].copy(),
            "steps": int(self._counters[1]),
            "adam_m": arr(self._adam_m),
            "adam_v": arr(self._adam_v),
        }

    def _set_core_state(self, state: Any) -> None:
        name = type(self).__name__
        if not isinstance(state, dict) or set(state) != set(_STATE_KEYS):
            raise ValueError(f"state of {name} must be a dict with keys {list(_STATE_KEYS)}")
        theta = state["theta"]
        if theta is None:
            self._init_core(self._kind, self._k)
            return
        if not isinstance(theta, np.ndarray) or theta.ndim != 2 or theta.shape[1] != self._k:
            raise ValueError(
                f"state theta of {name} must have shape (d + 1, {self._k}); was it saved by a "
                "learner with other parameters?"
            )
        if (state["adam_m"] is None) != (self.optimizer != "adam"):
            raise ValueError(f"state of {name} does not match optimizer={self.optimizer!r}")
        self._d = theta.shape[0] - 1
        self._theta = np.array(theta, dtype=np.float64)
        self._stats = np.array([state["mean"], state["m2"], state["inv_std"]], dtype=np.float64)
        self._stats = self._stats.reshape(3, self._d)
        self._counters = np.array([int(state["count"]), int(state["steps"])], dtype=np.int64)
        self._adam_m, self._adam_v = state["adam_m"], state["adam_v"]

    # -- dispatch ----------------------------------------------------------------------------------
    def _learn(self, X: np.ndarray, y: np.ndarray) -> None:
        if self._theta is None:
            self._allocate(X.shape[1])
        if X.shape[0] == 1 and self.optimizer == "sgd":
            kernels.learn_rows(self._params, self._theta, self._stats, self._counters, X, y)
        else:
            self._learn_numpy(X, y)

    def _outputs(self, X: np.ndarray) -> np.ndarray:
        """Raw outputs ``Z``, shape ``(n, k)``: one sample by the compiled kernel (as inside
        :meth:`test_then_train`), more by numpy."""
        if X.shape[0] == 1:
            scores = np.empty((1, self._k))
            kernels.predict_rows(self._params, self._theta, self._stats, X, scores)
            return scores
        return self._outputs_numpy(X)

    def learn(self, X: np.ndarray, y: np.ndarray) -> None:
        """Update on a batch; a refused batch raises ``ValueError`` and changes nothing."""
        X = check_features(X, self.n_features_in_)
        y = check_targets(y, X.shape[0], self._task, self._n_classes)
        if self.n_features_in_ is None:
            self.n_features_in_ = X.shape[1]
        self._learn(X, y)

    def _get_state(self) -> dict[str, Any]:
        return self._core_state()

    def _set_state(self, state: Any) -> None:
        self._set_core_state(state)

    def state_roles(self) -> StateRoles:
        """Federation: the optimiser's step count and moments stay on each client; the running
        feature statistics (``count``, ``mean``, ``m2`` beside ``theta``) are pooled."""
        local = ("learned.steps", "learned.adam_m", "learned.adam_v")
        return StateRoles(local=local, statistics=("learned",))


@registry.register("logistic")
@registry.register("softmax")
@shares(linear_parameters)
class LogisticRegression(_LinearCore, BaseClassifier):
    """Logistic regression (2 classes, sigmoid) or softmax regression (more classes), numpy.

    Parameters: ``n_classes`` (>= 2), ``lr`` (per-sample step size, see the module
    docstring), ``optimizer`` (``"sgd"`` or ``"adam"``), ``l2`` (penalty on the weights, not
    the intercept), ``standardize`` (online standardisation of the features), ``seed`` (kept
    for the common interface: the weights start at zero, so nothing here is random) and
    ``max_steps`` (most gradient steps one ``learn`` call of more than one sample takes).

    The defaults (``lr=0.01``, SGD, standardised features) reproduce River's
    ``StandardScaler() | LogisticRegression()`` at batch 1. Before the first ``learn`` it
    predicts uniform probabilities (class 0).

    >>> import numpy as np
    >>> model = LogisticRegression(n_classes=3, lr=0.1)
    >>> model.predict_proba(np.zeros((1, 2), dtype=np.float32))
    array([[0.33333333, 0.33333333, 0.33333333]])
    >>> X = np.array([[0, 0], [5, 0], [0, 5]], dtype=np.float32)
    >>> for _ in range(50):
    ...     model.learn(X, np.array([0, 1, 2]))
    >>> model.predict(X)
    array([0, 1, 2])
    """

    def __init__(self, n_classes: Annotated[int, Ge(2)] = 2, **params: Any) -> None:
        super().__init__(task="binary" if n_classes == 2 else "multiclass", n_classes=n_classes)
        vars(self).update(shared_arguments(self, linear_parameters, params))
        k = self._n_classes
        self._init_core("binary" if k == 2 else "multiclass", 1 if k == 2 else k)

    def _finish(self, scores: np.ndarray, proba: bool) -> np.ndarray:
        return self._proba(scores) if proba else self._codes(scores)

    def _predict_proba(self, X: np.ndarray) -> np.ndarray:
        n, c = X.shape[0], self._n_classes
        if self._theta is None:
            return np.full((n, c), 1.0 / c)
        return self._proba(self._outputs(X))

    def _proba(self, Z: np.ndarray) -> np.ndarray:
        out = np.empty((Z.shape[0], self._n_classes))
        kernels.probabilities(Z, out)
        return out

    def _predict(self, X: np.ndarray) -> np.ndarray:
        if self._theta is None:
            return np.zeros(X.shape[0], dtype=np.int64)
        return self._codes(self._outputs(X))

    def _codes(self, Z: np.ndarray) -> np.ndarray:
        if self._n_classes == 2:
            return (Z[:, 0] > 0).astype(np.int64)
        return Z.argmax(axis=1).astype(np.int64)


@registry.register("linear")
@shares(linear_parameters)
class LinearRegression(_LinearCore, BaseLearner):
    """Linear regression (squared loss ``0.5 * (prediction - y) ** 2``) in numpy.

    Same parameters as :class:`LogisticRegression` without ``n_classes``; predictions are
    float32, 0.0 before any learning.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(256, 2)).astype(np.float32)
    >>> y = (3 * X[:, 0] - X[:, 1] + 1).astype(np.float32)
    >>> model = LinearRegression()
    >>> model.predict(X[:1])
    array([0.], dtype=float32)
    >>> for _ in range(20):
    ...     model.learn(X, y)
    >>> bool(np.abs(model.predict(X) - y).mean() < 0.1)
    True
    """

    def __init__(self, **params: Any) -> None:
        super().__init__(task="regression")
        vars(self).update(shared_arguments(self, linear_parameters, params))
        self._init_core("regression", 1)

    def _finish(self, scores: np.ndarray, proba: bool) -> np.ndarray:
        if proba:
            raise ValueError("a regressor has no probabilities")
        return scores[:, 0].astype(np.float32)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        if self._theta is None:
            return np.zeros(X.shape[0], dtype=np.float32)
        return self._finish(self._outputs(X), False)
