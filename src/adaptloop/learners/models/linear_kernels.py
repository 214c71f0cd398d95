"""Compiled per-sample loops of the linear learners (:mod:`adaptloop.learners.models.linear`).

One function, :func:`sequence`, runs exact test-then-train over a batch: it predicts the
batch's samples in order and learns labelled samples between them, each with one SGD step
(River's ``StandardScaler() | LogisticRegression()``: the running mean and variance take the
sample first, then the standardised sample takes the gradient step). Which labels are learned
before which prediction is the caller's (``learn_at``), so label delay is a setting of the
evaluation, not of the model. With a drift detector (:mod:`adaptloop.learners.detector_kernels`)
every learned sample is first predicted by the model as it stands, its error goes to the
detector, and the loop stops at the first alarm (for
:class:`~adaptloop.learners.wrappers.drift_reset.DriftReset`, which re-fits and resumes).

The same code serves a ``learn`` or ``predict`` call on a single sample (:func:`learn_rows` runs
the loop's learning steps, :func:`predict_rows` its :func:`score`), so the per-sample path
inside a batch and a loop of batches of one give the same numbers, bit for bit.

Why numba: it ships as a pip wheel with its own LLVM (llvmlite), so installing needs no C
toolchain; the loops compile on first use (a few seconds, once) and are cached on disk
(``cache=True``). A plain-Python loop costs microseconds per sample in interpreter overhead;
compiled, one sample of Elec2 (8 features) takes tens of nanoseconds.

Parameters travel as one float64 array ``params`` (:func:`pack`); the model's state as
``theta`` (``(d + 1, k)``: one row per feature, the intercept last), ``stats`` (``(3, d)``:
running mean, M2 and 1 / std) and ``counters`` (int64: samples in the statistics, SGD steps).

>>> import numpy as np
>>> params = pack("binary", lr=0.1, l2=0.0, standardize=True)
>>> theta, stats, counters = np.zeros((3, 1)), np.zeros((3, 2)), np.zeros(2, dtype=np.int64)
>>> X = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
>>> y = np.array([1.0, 0.0, 1.0])
>>> scores = np.zeros((3, 1))
>>> done = sequence(params, theta, stats, counters, X, X, y, np.arange(1, 4), scores, *NO_DETECTOR)
>>> done, counters.tolist(), bool(scores[2, 0] > 0)
((3, 3, False), [3, 3], True)
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from adaptloop.learners import detector_kernels

KINDS = {"binary": 0, "multiclass": 1, "regression": 2}

NO_DETECTOR = (0, np.zeros(1), np.zeros(1, dtype=np.int64), np.zeros((2, 1, 1)))
"""``judge_from`` and an unused detector state: :func:`sequence` without a detector."""


def pack(kind: str, *, lr: float, l2: float, standardize: bool) -> np.ndarray:
    """The parameters of a linear learner as :func:`sequence` takes them."""
    return np.array([KINDS[kind], lr, l2, float(standardize)], dtype=np.float64)


@njit(cache=True, error_model="numpy", inline="always")
def score(params, theta, stats, x, out) -> None:  # noqa: ANN001 - numba arrays
    """Raw outputs of one sample into ``out`` (``k`` values): ``theta[d] + sum e_f theta[f]``
    with ``e_f = (x_f - mean_f) / std_f`` (or ``x_f`` without standardisation)."""
    d, k = theta.shape[0] - 1, theta.shape[1]
    standardize = params[3] != 0.0
    if k == 1:  # the usual case: one accumulator in a register
        z = theta[d, 0]
        if standardize:
            for f in range(d):
                z += (x[f] - stats[0, f]) * stats[2, f] * theta[f, 0]
        else:
            for f in range(d):
                z += float(x[f]) * theta[f, 0]
        out[0] = z
        return
    for j in range(k):
        out[j] = theta[d, j]
    for f in range(d):
        e = (x[f] - stats[0, f]) * stats[2, f] if standardize else float(x[f])
        for j in range(k):
            out[j] += e * theta[f, j]


@njit(cache=True, error_model="numpy")
def predict_rows(params, theta, stats, X, scores) -> None:  # noqa: ANN001
    """Raw outputs of every row of ``X`` by :func:`score` (what a ``predict`` of one sample
    runs: fewer arguments than :func:`sequence`, so a cheaper call)."""
    for p in range(X.shape[0]):
        score(params, theta, stats, X[p], scores[p])


@njit(cache=True, error_model="numpy")
def learn_rows(params, theta, stats, counters, X, y) -> None:  # noqa: ANN001
    """Learn every row of ``X`` in order (a ``learn`` call of one sample): the learning steps
    of :func:`sequence`, with nothing to predict."""
    m = X.shape[0]
    _loop(
        params,
        theta,
        stats,
        counters,
        X[:0],
        X,
        y,
        np.zeros(m, dtype=np.int64),
        np.empty((0, theta.shape[1])),
        0,
        np.zeros(1),
        np.zeros(1, dtype=np.int64),
        np.zeros((2, 1, 1)),
    )


@njit(cache=True, error_model="numpy")
def probabilities(Z, out) -> None:  # noqa: ANN001
    """Class probabilities from raw outputs: the sigmoid of one output (clipped to +-700, where
    ``exp`` is still finite) as ``[1 - p, p]``, or the softmax of several."""
    n, k = Z.shape
    for p in range(n):
        if k == 1:
            z = min(max(Z[p, 0], -700.0), 700.0)
            q = 1.0 / (1.0 + math.exp(-z))
            out[p, 0] = 1.0 - q
            out[p, 1] = q
            continue
        top = Z[p, 0]
        for j in range(1, k):
            top = max(top, Z[p, j])
        total = 0.0
        for j in range(k):
            out[p, j] = math.exp(Z[p, j] - top)
            total += out[p, j]
        for j in range(k):
            out[p, j] /= total


@njit(cache=True, error_model="numpy", inline="always")
def _error(kind, z, y) -> float:  # noqa: ANN001
    """The error a drift detector takes: 0/1 mistake of the class code, or |value - y| with
    the value as ``predict`` returns it (float32)."""
    if kind == 2:
        return abs(float(np.float32(z[0])) - y)
    if kind == 0:
        code = 1 if z[0] > 0 else 0
    else:
        code = 0
        for j in range(1, z.shape[0]):
            if z[j] > z[code]:
                code = j
    return 1.0 if code != int(y) else 0.0


@njit(cache=True, error_model="numpy", inline="always")
def _finite(A) -> bool:  # noqa: ANN001
    for p in range(A.shape[0]):
        for f in range(A.shape[1]):
            if not abs(float(A[p, f])) < math.inf:  # NaN fails too
                return False
    return True


@njit(cache=True, error_model="numpy", inline="always")
def refused(kind, k, X, X_learn, y_learn, learn_at) -> bool:  # noqa: ANN001
    """Whether :func:`~adaptloop.learners.base.check_sequence` refuses a value of these
    arrays (it says which; this only finds out, without a Python call per batch): a NaN or
    infinite feature, a class code outside ``[0, classes)`` (2 for ``kind`` 0, ``k`` for
    ``kind`` 1) or a non-finite regression target (``kind`` 2), a ``learn_at`` that decreases
    or leaves ``[0, len(X)]``."""
    if not (_finite(X) and _finite(X_learn)):
        return True
    m = y_learn.shape[0]
    limit = 2 if kind == 0 else k
    for j in range(m):
        v = float(y_learn[j])
        if kind == 2:
            if not abs(v) < math.inf:
                return True
        elif not (v >= 0 and v < limit and v == math.floor(v)):
            return True
    if m and (learn_at[0] < 0 or learn_at[m - 1] > X.shape[0]):
        return True
    for j in range(1, m):  # noqa: SIM110 - compiled: a loop, not a generator
        if learn_at[j] < learn_at[j - 1]:
            return True
    return False


@njit(cache=True, error_model="numpy")
def sequence(
    params,
    theta,
    stats,
    counters,
    X,
    X_learn,
    y_learn,
    learn_at,
    scores,
    judge_from,
    df,
    di,
    db,
):  # noqa: ANN001, ANN201
    """Predict ``X`` in order into ``scores`` (raw outputs), learning sample ``j`` of
    ``X_learn`` after the first ``learn_at[j]`` predictions.

    With a detector (``df, di, db`` from :mod:`adaptloop.learners.detector_kernels`; a
    one-element ``df`` means none), each learned sample from index ``judge_from`` on is first
    predicted, its error fed to the detector; at an alarm the loop stops before learning that
    sample. Returns (predictions made, samples consumed -- learned, or the alarming one
    included --, whether it stopped at an alarm), or ``(-1, 0, False)`` without changing
    anything when :func:`refused` finds a value ``check_sequence`` refuses."""
    if refused(int(params[0]), theta.shape[1], X, X_learn, y_learn, learn_at):
        return -1, 0, False
    return _loop(
        params,
        theta,
        stats,
        counters,
        X,
        X_learn,
        y_learn,
        learn_at,
        scores,
        judge_from,
        df,
        di,
        db,
    )


@njit(cache=True, error_model="numpy", inline="always")
def _loop(
    params,
    theta,
    stats,
    counters,
    X,
    X_learn,
    y_learn,
    learn_at,
    scores,
    judge_from,
    df,
    di,
    db,
):  # noqa: ANN001, ANN201
    """:func:`sequence` on checked values; also every ``learn`` of one sample
    (:func:`learn_rows`).

    Learning sample ``j`` is River's ``StandardScaler() | LogisticRegression()`` step: the
    running mean and variance take ``x`` first (Welford), then one SGD step of size ``lr`` on
    the standardised sample (``optim.SGD(lr)``, no step-size cap; the logistic gradient
    ``sigmoid(z) - y``, a regression's ``z - y`` clipped to +-1e12 as River's
    ``clip_gradient``, the softmax's probabilities minus the one-hot target; ``l2`` decays the
    weights, not the intercept). It is written out here, not in a function of its own: inlined
    from one, the loop ran 1.5x slower (SEA, 3 features)."""
    d, k = theta.shape[0] - 1, theta.shape[1]
    kind, lr, l2 = int(params[0]), params[1], params[2]
    standardize = params[3] != 0.0
    detect = df.shape[0] > 1
    xa = np.empty(d + 1)  # the standardised sample and the intercept's 1
    work = np.empty(k)
    z = np.empty(k)
    n, m = X.shape[0], X_learn.shape[0]
    p = 0
    for j in range(m):
        while p < learn_at[j]:
            score(params, theta, stats, X[p], scores[p])
            p += 1
        y = float(y_learn[j])
        if detect and j >= judge_from:
            score(params, theta, stats, X_learn[j], z)
            if detector_kernels.update(df, di, db, _error(kind, z, y)):
                return p, j + 1, True
        if standardize:
            count = counters[0] + 1
            counters[0] = count
            for f in range(d):
                xi = float(X_learn[j, f])
                mean = stats[0, f]
                m2 = stats[1, f]
                delta = xi - mean
                mean += delta / count
                e = xi - mean
                m2 += delta * e
                r = math.sqrt(count / m2) if m2 > 0 else 0.0
                stats[0, f] = mean
                stats[1, f] = m2
                stats[2, f] = r
                xa[f] = e * r
        else:
            for f in range(d):
                xa[f] = float(X_learn[j, f])
        xa[d] = 1.0
        if k == 1:  # logistic or linear regression: the gradient stays in a register
            out = 0.0
            for f in range(d + 1):
                out += xa[f] * theta[f, 0]
            if kind == 0:
                g = 0.5 * math.tanh(0.5 * out) + 0.5 - y  # sigmoid(z) - y
            else:
                g = min(max(out - y, -1e12), 1e12)
            if l2 == 0.0:  # the usual case
                a = lr * g
                for f in range(d + 1):
                    theta[f, 0] -= a * xa[f]
            else:
                decay = 1.0 - lr * l2
                for f in range(d + 1):
                    w = theta[f, 0] * decay if f < d else theta[f, 0]
                    theta[f, 0] = w - lr * g * xa[f]
        else:  # softmax minus the one-hot target
            for c in range(k):
                out = 0.0
                for f in range(d + 1):
                    out += xa[f] * theta[f, c]
                work[c] = out
            top = work[0]
            for c in range(1, k):
                top = max(top, work[c])
            total = 0.0
            for c in range(k):
                work[c] = math.exp(work[c] - top)
                total += work[c]
            for c in range(k):
                work[c] /= total
            work[int(y)] -= 1.0
            decay = 1.0 - lr * l2
            for f in range(d + 1):
                for c in range(k):
                    w = theta[f, c] * decay if f < d else theta[f, c]
                    theta[f, c] = w - lr * work[c] * xa[f]
        counters[1] += 1
    while p < n:
        score(params, theta, stats, X[p], scores[p])
        p += 1
    return p, m, False
