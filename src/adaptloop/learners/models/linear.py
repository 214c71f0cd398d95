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
1 for the squared loss), and at most ``max_steps``. At batch 1 this is exactly per-sample SGD
(River's default ``optim.SGD(0.01)``); at batch 256 it takes a handful of steps and so keeps up
with per-sample SGD where a single mean-gradient step with the same ``lr`` would learn ~256x
slower. With ``optimizer="adam"`` a call takes one Adam step of size ``lr * sqrt(n)``.

At batch 1 the learners run on plain Python floats (a handful of numpy calls on a 1-row
array cost more than the arithmetic itself), at larger batches on numpy arrays; both give
the same numbers up to float rounding.

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
from typing import Annotated, Any, Literal

import numpy as np
from annotated_types import Ge

from adaptloop.learners.base import (
    BaseClassifier,
    BaseLearner,
    StateRoles,
    registry,
    shared_arguments,
    shares,
)
from adaptloop.validation import (
    Count,
    NonNegativeReal,
    PositiveReal,
    Seed,
    check_features,
    check_targets,
)

Optimizer = Literal["sgd", "adam"]

_ADAM_BETA1 = 0.9
_ADAM_BETA2 = 0.999
_ADAM_EPS = 1e-8
_MAX_LOGIT = 700.0  # exp(700) is still finite in float64

_sqrt, _tanh, _mul = math.sqrt, math.tanh, float.__mul__  # bound once: hot batch-of-one loops

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


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(max(z, -_MAX_LOGIT))
    return e / (1.0 + e)


class _LinearCore:
    """Parameters, running feature statistics and optimiser state of the linear learners.

    ``theta`` has shape ``(d + 1, k)``: one row per feature plus the intercept row, one column
    per output (``k = 1`` for the logistic and the linear regression, ``n_classes`` for the
    softmax). Outputs are ``Z = [standardise(X), 1] @ theta``.

    Between batches of one the parameters live as flat Python lists (``_py`` is True), between
    larger batches as numpy arrays; ``_to_numpy`` / ``_to_python`` switch (exactly: a float64
    and a Python float are the same number).
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
        self._d = 0
        self._py = False
        self._theta: Any = None
        self._count = 0
        self._mean: Any = None
        self._m2: Any = None
        self._inv_std: Any = None
        self._steps = 0
        self._adam_m: np.ndarray | None = None
        self._adam_v: np.ndarray | None = None

    # -- representations -------------------------------------------------------------------
    def _to_numpy(self) -> None:
        if self._py:
            self._theta = np.array(self._theta).reshape(self._d + 1, self._k)
            self._mean = np.array(self._mean)
            self._m2 = np.array(self._m2)
            self._inv_std = np.array(self._inv_std)
            self._py = False

    def _to_python(self) -> None:
        if not self._py and self._theta is not None:
            self._theta = self._theta.ravel().tolist()
            self._mean = self._mean.tolist()
            self._m2 = self._m2.tolist()
            self._inv_std = self._inv_std.tolist()
            self._py = True

    def _allocate(self, d: int) -> None:
        self._d = d
        self._py = False
        self._theta = np.zeros((d + 1, self._k))
        self._mean, self._m2, self._inv_std = np.zeros(d), np.zeros(d), np.zeros(d)
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
        np.subtract(X, self._mean, out=xs)
        if update:
            gram = Xa.T @ Xa
            sums = gram[d, :d]  # sum of (x - old mean)
            delta = sums / n  # batch mean - old mean
            batch_m2 = np.maximum(gram.diagonal()[:d] - sums * delta, 0.0)
            count = self._count
            total = count + n
            shift = delta * (n / total)  # new mean - old mean
            self._mean = self._mean + shift
            self._m2 = self._m2 + batch_m2 + delta * delta * (count * n / total)
            self._count = total
            std = np.sqrt(self._m2 / total)
            self._inv_std = np.divide(1.0, std, out=np.zeros(d), where=std > 0)
            xs -= shift
        xs *= self._inv_std
        return Xa

    def _outputs_numpy(self, X: np.ndarray) -> np.ndarray:
        """Raw outputs ``Z``, shape ``(n, k)``; standardisation folded into the weights."""
        self._to_numpy()
        theta, d = self._theta, self._d
        if not self.standardize:
            return X @ theta[:d] + theta[d]
        W = theta[:d] * self._inv_std[:, None]
        return X @ W + (theta[d] - self._mean @ W)

    def _learn_numpy(self, X: np.ndarray, y: np.ndarray) -> None:
        self._to_numpy()
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
        self._steps += steps

    def _adam_step(self, g: np.ndarray, lr: float) -> None:
        theta, m, v = self._theta, self._adam_m, self._adam_v
        if self.l2:
            g[:-1] += self.l2 * theta[:-1]
        self._steps += 1
        t = self._steps
        m *= _ADAM_BETA1
        m += (1.0 - _ADAM_BETA1) * g
        v *= _ADAM_BETA2
        v += (1.0 - _ADAM_BETA2) * (g * g)
        step = lr * math.sqrt(1.0 - _ADAM_BETA2**t) / (1.0 - _ADAM_BETA1**t)
        theta -= step * m / (np.sqrt(v) + _ADAM_EPS)

    # -- Python path (one sample, SGD) ------------------------------------------------------------
    # Plain loops over the features: for one sample they beat numpy's per-call overhead. B905
    # (zip without strict=) is silenced on these lines: the lists have the same length by
    # construction and strict=True costs a measurable share of a batch-of-one call.
    def _augment_one(self, x: list[float]) -> list[float]:
        if self.standardize:
            x = [(xi - m) * r for xi, m, r in zip(x, self._mean, self._inv_std)]  # noqa: B905
        x.append(1.0)
        return x

    def _outputs_one(self, x: list[float]) -> list[float]:
        theta, k = self._theta, self._k
        if k == 1 and self.standardize:
            z = theta[-1]
            for xi, m, r, t in zip(x, self._mean, self._inv_std, theta):  # noqa: B905
                z += (xi - m) * r * t
            return [z]
        xa = self._augment_one(x)
        if k == 1:
            return [_dot(xa, theta)]
        return [_dot(xa, theta[j::k]) for j in range(k)]

    def _learn_one(self, x: list[float], y: float | int) -> None:
        self._to_python()
        k, kind = self._k, self._kind
        theta = self._theta
        if self.standardize:
            # Update the scaler, standardise x, and take |x|^2 and (for one output) x @ theta,
            # all in one pass over the features.
            count = self._count + 1
            self._count = count
            mean: list[float] = []
            m2: list[float] = []
            inv: list[float] = []
            xa: list[float] = []
            sq = 1.0
            z = theta[-1]
            thetas = theta if k == 1 else theta[::k]
            for xi, m, s, t in zip(x, self._mean, self._m2, thetas):  # noqa: B905
                delta = xi - m
                m += delta / count
                e = xi - m
                s += delta * e
                r = _sqrt(count / s) if s > 0 else 0.0  # 1 / std
                e *= r
                sq += e * e
                z += e * t
                mean.append(m)
                m2.append(s)
                inv.append(r)
                xa.append(e)
            self._mean, self._m2, self._inv_std = mean, m2, inv
            xa.append(1.0)
        else:
            xa = x
            xa.append(1.0)
            sq = _dot(xa, xa)
            z = _dot(xa, theta) if k == 1 else 0.0
        l2 = self.l2
        if self.lr * (self._curvature * sq + l2) <= 1.0:
            steps, step = 1, self.lr  # the usual case, spelled out for speed
        else:
            steps, step = self._plan(1, sq)
        n_weights = len(theta) - k  # the intercept row (last) takes no penalty
        for i in range(steps):
            if k == 1:
                if i:
                    z = _dot(xa, theta)
                g = 0.5 * _tanh(0.5 * z) + 0.5 - y if kind == "binary" else z - y
                a = step * g
                if not l2:  # the usual case, in one pass
                    self._theta = theta = [t - a * xi for t, xi in zip(theta, xa)]  # noqa: B905
                    continue
                change = [a * xi for xi in xa]
            else:
                zs = [_dot(xa, theta[j::k]) for j in range(k)]
                top = max(zs)
                e = [math.exp(zj - top) for zj in zs]
                total = sum(e)
                a = [step * ej / total for ej in e]
                a[int(y)] -= step
                change = [aj * xi for xi in xa for aj in a]  # row-major, like theta
            if l2:  # decay after the gradient is taken, as in the numpy path
                decay = 1.0 - step * l2
                theta[:n_weights] = [t * decay for t in theta[:n_weights]]
            self._theta = theta = [t - c for t, c in zip(theta, change)]  # noqa: B905
        self._steps += steps

    def _core_state(self) -> dict[str, Any]:
        def arr(value: Any, shape: tuple[int, ...]) -> np.ndarray | None:
            if value is None:
                return None
            return np.array(value, dtype=np.float64).reshape(shape)

        d, k = self._d, self._k
        return {
            "theta": arr(self._theta, (d + 1, k)),
            "count": self._count,
            "mean": arr(self._mean, (d,)),
            "m2": arr(self._m2, (d,)),
            "inv_std": arr(self._inv_std, (d,)),
            "steps": self._steps,
            "adam_m": arr(self._adam_m, (d + 1, k)),
            "adam_v": arr(self._adam_v, (d + 1, k)),
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
        self._py = False
        self._theta = theta.astype(np.float64)
        self._count = int(state["count"])
        self._mean = np.asarray(state["mean"], dtype=np.float64)
        self._m2 = np.asarray(state["m2"], dtype=np.float64)
        self._inv_std = np.asarray(state["inv_std"], dtype=np.float64)
        self._steps = int(state["steps"])
        self._adam_m, self._adam_v = state["adam_m"], state["adam_v"]

    # -- dispatch ----------------------------------------------------------------------------------
    def _learn(self, X: np.ndarray, y: np.ndarray) -> None:
        if self._theta is None:
            self._allocate(X.shape[1])
        if X.shape[0] == 1 and self.optimizer == "sgd":
            self._learn_one(X[0].tolist(), y.tolist()[0])
        else:
            self._learn_numpy(X, y)

    def _outputs(self, X: np.ndarray) -> np.ndarray | list[float]:
        """Raw outputs ``Z``: a list of ``k`` floats for one sample in Python mode, else (n, k)."""
        if X.shape[0] == 1 and self._py:
            return self._outputs_one(X[0].tolist())
        return self._outputs_numpy(X)

    def learn(self, X: np.ndarray, y: np.ndarray) -> None:
        """Update on a batch; a refused batch raises ``ValueError`` and changes nothing.

        Same checks as ``BaseLearner.learn``, called directly: at batch 1 the call overhead
        is a visible share of the cost.
        """
        X = check_features(X, self.n_features_in_)
        y = check_targets(y, X.shape[0], self._task, self._n_classes)
        if self._py and X.shape[0] == 1:
            self._learn_one(X.ravel().tolist(), y.tolist()[0])
            return
        if self.n_features_in_ is None:
            self.n_features_in_ = X.shape[1]
        self._learn(X, y)

    def _output_one(self, X: np.ndarray) -> float | None:
        """The single output of a one-row batch in Python mode, else None."""
        if not self._py or X.shape[0] != 1 or self._k != 1:
            return None
        x = X.ravel().tolist()
        theta = self._theta
        z = theta[-1]
        if self.standardize:
            for xi, m, r, t in zip(x, self._mean, self._inv_std, theta):  # noqa: B905
                z += (xi - m) * r * t
        else:
            for xi, t in zip(x, theta):  # noqa: B905
                z += xi * t
        return z

    def _get_state(self) -> dict[str, Any]:
        return self._core_state()

    def _set_state(self, state: Any) -> None:
        self._set_core_state(state)

    def state_roles(self) -> StateRoles:
        """Federation: the optimiser's step count and moments stay on each client; the running
        feature statistics (``count``, ``mean``, ``m2`` beside ``theta``) are pooled."""
        local = ("learned.steps", "learned.adam_m", "learned.adam_v")
        return StateRoles(local=local, statistics=("learned",))


def _dot(a: list[float], b: list[float]) -> float:
    return sum(map(_mul, a, b))


@registry.register("logistic")
@registry.register("softmax")
@shares(linear_parameters)
class LogisticRegression(_LinearCore, BaseClassifier):
    """Logistic regression (2 classes, sigmoid) or softmax regression (more classes), numpy.

    Parameters: ``n_classes`` (>= 2), ``lr`` (per-sample step size, see the module
    docstring), ``optimizer`` (``"sgd"`` or ``"adam"``), ``l2`` (penalty on the weights, not
    the intercept), ``standardize`` (online standardisation of the features), ``seed`` (kept
    for the common interface: the weights start at zero, so nothing here is random) and
    ``max_steps`` (most gradient steps one ``learn`` call takes).

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

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probabilities, shape ``(n, n_classes)``, rows summing to one."""
        X = check_features(X, self.n_features_in_)
        z = self._output_one(X)
        if z is None:
            return self._predict_proba(X)
        p = _sigmoid(z)
        out = np.empty((1, 2))
        out[0, 0] = 1.0 - p
        out[0, 1] = p
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class codes, int64, shape ``(n,)``."""
        X = check_features(X, self.n_features_in_)
        z = self._output_one(X)
        if z is None:
            return self._predict(X)
        return np.array([int(z > 0)], dtype=np.int64)

    def _predict_proba(self, X: np.ndarray) -> np.ndarray:
        n, c = X.shape[0], self._n_classes
        if self._theta is None:
            return np.full((n, c), 1.0 / c)
        Z = self._outputs(X)
        if isinstance(Z, list):
            if c == 2:
                p = _sigmoid(Z[0])
                return np.array([[1.0 - p, p]])
            top = max(Z)
            e = [math.exp(z - top) for z in Z]
            s = sum(e)
            return np.array([[v / s for v in e]])
        if c == 2:
            out = np.empty((n, 2))
            p = out[:, 1]
            np.clip(Z[:, 0], -_MAX_LOGIT, _MAX_LOGIT, out=p)
            np.negative(p, out=p)
            np.exp(p, out=p)
            p += 1.0
            np.reciprocal(p, out=p)
            np.subtract(1.0, p, out=out[:, 0])
            return out
        Z -= Z.max(axis=1, keepdims=True)
        np.exp(Z, out=Z)
        Z /= Z.sum(axis=1, keepdims=True)
        return Z

    def _predict(self, X: np.ndarray) -> np.ndarray:
        n = X.shape[0]
        if self._theta is None:
            return np.zeros(n, dtype=np.int64)
        Z = self._outputs(X)
        if isinstance(Z, list):
            code = int(Z[0] > 0) if self._n_classes == 2 else max(range(len(Z)), key=Z.__getitem__)
            return np.array([code], dtype=np.int64)
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

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted values, float32, shape ``(n,)``."""
        X = check_features(X, self.n_features_in_)
        z = self._output_one(X)
        if z is None:
            return self._predict(X)
        return np.array([z], dtype=np.float32)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        if self._theta is None:
            return np.zeros(X.shape[0], dtype=np.float32)
        Z = self._outputs(X)
        if isinstance(Z, list):
            return np.array(Z, dtype=np.float32)
        return Z[:, 0].astype(np.float32)
