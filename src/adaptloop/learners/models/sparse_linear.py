"""``SparseLogisticRegression``: River's ``LogisticRegression`` on sparse, growing inputs,
sample by sample in a compiled loop.

The model River fits behind ``OneHotEncoder`` or ``FeatureHasher``: one weight per input
column, created at zero when the column first appears (the width may grow from batch to
batch, as a growing one-hot encoding does), plain SGD on the log loss per sample, the
intercept with its own rate. Per sample ``i`` with raw score ``z = b + w . x_i``:
``g = dLog/dz`` (River's ``optim.losses.Log.gradient``, label in {-1, 1}, its cut-offs at
``|z| = 18``), ``b -= intercept_lr * g``, ``w_j -= lr * (g x_ij + l2 w_j)`` for the columns of
``x_i`` only (River's sparse dict update; its ``l2`` term is added to present keys only), and
``p = sigmoid(z)`` with River's cut-offs at ``|z| = 30``.

Inputs are ``scipy.sparse`` CSR matrices or dense arrays (float32 ``(n, d)``); the loop over
the nonzeros of a CSR row is compiled with numba (chosen because the samples depend on one
another, so nothing vectorises, and numba installs as a wheel and compiles at run time with no
toolchain; kernels are cached on disk). :meth:`predict_then_learn` is exact test-then-train
inside a batch: every sample is predicted by the weights that learned every earlier one.

>>> import numpy as np, scipy.sparse as sp
>>> X = sp.csr_matrix(np.array([[1, 0], [0, 1], [1, 0]], dtype=np.float32))
>>> model = SparseLogisticRegression(lr=0.5)
>>> model.predict_then_learn(X, np.array([1, 0, 1]))[:, 1].round(3).tolist()
[0.5, 0.562, 0.622]
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
import scipy.sparse as sp

from adaptloop.learners.base import BaseClassifier, StateRoles, registry
from adaptloop.validation import NonNegativeReal, PositiveReal, check_features, check_targets


@numba.njit(cache=True, nogil=True)
def _sigmoid(z: float) -> float:
    if z < -30.0:
        return 0.0
    if z > 30.0:
        return 1.0
    return 1.0 / (1.0 + math.exp(-z))


@numba.njit(cache=True, nogil=True)
def _log_gradient(label: int, z: float) -> float:
    sign = 1.0 if label == 1 else -1.0
    m = z * sign
    if m > 18.0:
        return math.exp(-m) * -sign
    if m < -18.0:
        return -sign
    return -sign / (math.exp(m) + 1.0)


@numba.njit(cache=True, nogil=True)
def _sgd(indptr, indices, data, y, w, b, lr, intercept_lr, l2, clip, out, predict):  # noqa: ANN001
    """Per-sample SGD over CSR rows; ``out[i]`` = P(y = 1) before learning row ``i`` (if
    ``predict``). ``b`` is a 1-element array (the intercept), updated in place with ``w``."""
    for i in range(len(y)):
        z = b[0]
        for k in range(indptr[i], indptr[i + 1]):
            z += w[indices[k]] * data[k]
        if predict:
            out[i] = _sigmoid(z)
        g = _log_gradient(y[i], z)
        g = min(max(g, -clip), clip)
        b[0] -= intercept_lr * g
        for k in range(indptr[i], indptr[i + 1]):
            j = indices[k]
            w[j] -= lr * (g * data[k] + l2 * w[j])


@numba.njit(cache=True, nogil=True)
def _scores(indptr, indices, data, w, b, out):  # noqa: ANN001
    for i in range(len(out)):
        z = b
        for k in range(indptr[i], indptr[i + 1]):
            j = indices[k]
            if j < len(w):
                z += w[j] * data[k]
        out[i] = _sigmoid(z)


def as_csr(X: object) -> sp.csr_matrix:
    """``X`` (a CSR matrix, another sparse matrix or a 2-d array) as CSR with float64 values,
    int64 indices and no explicit zeros; ``ValueError`` for anything else or non-finite
    values."""
    if sp.issparse(X):
        matrix = (
            X if X.format == "csr" and X.dtype == np.float64 else sp.csr_matrix(X, dtype=np.float64)
        )
    else:
        array = np.asarray(X)
        if array.ndim != 2 or array.dtype.kind not in "biuf":
            raise ValueError(f"X must be a 2-d numeric array or a sparse matrix, got {array.shape}")
        matrix = sp.csr_matrix(array.astype(np.float64))
    if not np.isfinite(matrix.data).all():
        raise ValueError("X has a NaN or infinite value")
    matrix.indices = matrix.indices.astype(np.int64, copy=False)
    matrix.indptr = matrix.indptr.astype(np.int64, copy=False)
    return matrix


@registry.register("sparse_logistic")
class SparseLogisticRegression(BaseClassifier):
    """Binary logistic regression on sparse, growing inputs, exact per sample (see the module
    doc). ``lr``: the weights' SGD step (River's ``optim.SGD(0.01)``); ``intercept_lr``;
    ``l2``; ``clip``: the loss gradient's bound (River's ``clip_gradient``)."""

    def __init__(
        self,
        n_classes: int = 2,
        lr: PositiveReal = 0.01,
        intercept_lr: NonNegativeReal = 0.01,
        l2: NonNegativeReal = 0.0,
        clip: PositiveReal = 1e12,
    ) -> None:
        if n_classes != 2:
            raise ValueError(
                f"SparseLogisticRegression is binary: n_classes must be 2, got {n_classes}"
            )
        super().__init__(task="binary", n_classes=2)
        self.lr, self.intercept_lr, self.l2, self.clip = lr, intercept_lr, l2, clip
        self._w = np.zeros(0)
        self._b = np.zeros(1)

    @property
    def width(self) -> int:
        """Input columns seen so far (weights held)."""
        return len(self._w)

    def check_X(self, X: object) -> sp.csr_matrix:  # type: ignore[override]
        """A sparse batch may be of any width (new columns get new weights); a dense one is
        checked as every learner's (a fixed width, finite float values)."""
        if sp.issparse(X):
            return as_csr(X)
        return as_csr(check_features(X, self.n_features_in_))

    def check_Xy(self, X: object, y: object) -> tuple[sp.csr_matrix, np.ndarray]:  # type: ignore[override]
        X = self.check_X(X)
        return X, check_targets(y, X.shape[0], "binary", 2)

    def learn(self, X: Any, y: np.ndarray) -> None:
        """Learn ``(X, y)`` sample by sample; the width may have grown (new weights at 0)."""
        dense = not sp.issparse(X)
        X, y = self.check_Xy(X, y)
        if dense and self.n_features_in_ is None:
            self.n_features_in_ = X.shape[1]
        self._fit(X, y, None)

    def predict_then_learn(self, X: Any, y: np.ndarray) -> np.ndarray:
        """Exact test-then-train inside the batch: the probabilities ``(n, 2)`` of each sample
        before it was learned, every earlier sample of the batch learned."""
        dense = not sp.issparse(X)
        X, y = self.check_Xy(X, y)
        if dense and self.n_features_in_ is None:
            self.n_features_in_ = X.shape[1]
        out = np.empty(X.shape[0])
        self._fit(X, y, out)
        return np.column_stack([1.0 - out, out])

    def _fit(self, X: sp.csr_matrix, y: np.ndarray, out: np.ndarray | None) -> None:
        if X.shape[1] > len(self._w):
            self._w = np.concatenate([self._w, np.zeros(X.shape[1] - len(self._w))])
        _sgd(
            X.indptr,
            X.indices,
            X.data,
            y.astype(np.int64),
            self._w,
            self._b,
            self.lr,
            self.intercept_lr,
            self.l2,
            self.clip,
            np.empty(0) if out is None else out,
            out is not None,
        )

    def _learn(self, X: Any, y: np.ndarray) -> None:  # learn() is overridden
        self._fit(X, y, None)

    def _predict_proba(self, X: sp.csr_matrix) -> np.ndarray:
        out = np.empty(X.shape[0])
        _scores(X.indptr, X.indices, X.data, self._w, float(self._b[0]), out)
        return np.column_stack([1.0 - out, out])

    def _get_state(self) -> dict[str, Any]:
        return {"w": self._w.copy(), "b": float(self._b[0])}

    def _set_state(self, state: dict[str, Any]) -> None:
        self._w = np.asarray(state["w"], dtype=np.float64).copy()
        self._b = np.array([float(state["b"])])

    def state_roles(self) -> StateRoles:
        return StateRoles()
