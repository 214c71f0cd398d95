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
toolchain; kernels are cached on disk). :meth:`test_then_train` is exact test-then-train
inside a batch: every sample is predicted by the weights that learned every earlier one.

>>> import numpy as np, scipy.sparse as sp
>>> X = sp.csr_matrix(np.array([[1, 0], [0, 1], [1, 0]], dtype=np.float32))
>>> model = SparseLogisticRegression(lr=0.5)
>>> proba = model.test_then_train(X, X, np.array([1, 0, 1]), np.arange(1, 4), proba=True)
>>> proba[:, 1].round(3).tolist()
[0.5, 0.501, 0.562]
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
def _score(indptr, indices, data, i, w, b):  # noqa: ANN001
    z = b
    for k in range(indptr[i], indptr[i + 1]):
        z += w[indices[k]] * data[k]
    return z


@numba.njit(cache=True, nogil=True)
def _update(indptr, indices, data, i, label, w, b, lr, intercept_lr, l2, clip):  # noqa: ANN001
    g = _log_gradient(label, _score(indptr, indices, data, i, w, b[0]))
    g = min(max(g, -clip), clip)
    b[0] -= intercept_lr * g
    for k in range(indptr[i], indptr[i + 1]):
        j = indices[k]
        w[j] -= lr * (g * data[k] + l2 * w[j])


@numba.njit(cache=True, nogil=True)
def _test_then_train(
    p_ptr, p_idx, p_val, l_ptr, l_idx, l_val, y, learn_at, w, b, lr, ilr, l2, clip, out
):  # noqa: ANN001, E501
    """Predict the rows of P in order (``out[i]`` = P(y = 1)) and learn row ``j`` of L (label
    ``y[j]``) once ``learn_at[j]`` rows were predicted; ``b``: the intercept, a 1-array."""
    j = 0
    for i in range(len(out)):
        while j < len(y) and learn_at[j] <= i:
            _update(l_ptr, l_idx, l_val, j, y[j], w, b, lr, ilr, l2, clip)
            j += 1
        out[i] = _sigmoid(_score(p_ptr, p_idx, p_val, i, w, b[0]))
    while j < len(y):
        _update(l_ptr, l_idx, l_val, j, y[j], w, b, lr, ilr, l2, clip)
        j += 1


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
        X, y = self._checked(X, y)
        self._run(X[:0], X, y, np.zeros(len(y), dtype=np.int64))

    def test_then_train(
        self,
        X: Any,
        X_learn: Any,
        y_learn: np.ndarray,
        learn_at: np.ndarray,
        proba: bool = False,
    ) -> np.ndarray:
        """Exact test-then-train (the ``Sequential`` protocol): predict the rows of ``X`` in
        order, learning sample ``j`` of ``(X_learn, y_learn)`` once ``learn_at[j]`` rows were
        predicted; class codes, or probabilities ``(n, 2)`` with ``proba``. With ``X_learn =
        X`` and ``learn_at = 1..n`` every sample is predicted by the weights that learned
        every earlier one."""
        X = self.check_X(X) if X.shape[0] else as_csr(sp.csr_matrix(X.shape))
        if X_learn.shape[0]:
            X_learn, y_learn = self._checked(X_learn, y_learn)
        else:  # no label has arrived
            X_learn, y_learn = as_csr(sp.csr_matrix(X_learn.shape)), np.zeros(0, np.int64)
        learn_at = np.asarray(learn_at, dtype=np.int64)
        if learn_at.shape != y_learn.shape or (np.diff(learn_at) < 0).any():
            raise ValueError("learn_at must be non-decreasing, one entry per sample to learn")
        out = self._run(X, X_learn, y_learn, learn_at)
        if proba:
            return np.column_stack([1.0 - out, out])
        return (out > 0.5).astype(np.int64)

    def _checked(self, X: Any, y: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
        dense = not sp.issparse(X)
        X, y = self.check_Xy(X, y)
        if dense and self.n_features_in_ is None:
            self.n_features_in_ = X.shape[1]
        return X, y

    def _run(
        self, X: sp.csr_matrix, X_learn: sp.csr_matrix, y: np.ndarray, learn_at: np.ndarray
    ) -> np.ndarray:
        width = max(X.shape[1], X_learn.shape[1])
        if width > len(self._w):
            self._w = np.concatenate([self._w, np.zeros(width - len(self._w))])
        out = np.empty(X.shape[0])
        _test_then_train(
            X.indptr,
            X.indices,
            X.data,
            X_learn.indptr,
            X_learn.indices,
            X_learn.data,
            y.astype(np.int64),
            learn_at,
            self._w,
            self._b,
            self.lr,
            self.intercept_lr,
            self.l2,
            self.clip,
            out,
        )
        return out

    def _learn(self, X: Any, y: np.ndarray) -> None:  # learn() is overridden
        self._run(X[:0], X, y, np.zeros(len(y), dtype=np.int64))

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
