"""Compiled drift detectors: ADWIN, DDM and Page-Hinkley as numba functions on plain arrays.

They are ports of River's own detectors (``river.drift.ADWIN``, whose core is River's Rust
``AdaptiveWindowing``; ``river.drift.binary.DDM``; ``river.drift.PageHinkley``), operation for
operation, so that on the same sequence of inputs they raise the same alarms at the same
samples (``tests/test_detector_kernels.py`` checks this against ``river.drift`` directly). As in
River, a detector that raised an alarm starts afresh at its next ``update``.

Why compiled: a per-sample loop that calls a Python detector costs about a microsecond per
sample on the call alone; the exact test-then-train path
(:class:`~adaptloop.learners.wrappers.drift_reset.DriftReset` around a linear model) runs the
model and the detector in one compiled loop. numba is the compiler because it ships as a pip
wheel with its own LLVM (llvmlite): nothing to build at install time, no C toolchain, and the
functions compile on first use and are cached on disk.

The state of one detector is three arrays (see :func:`new_state`): ``f`` (float64: parameters
then running statistics), ``i`` (int64: kind, flags, counters, ADWIN's bucket counts) and
``b`` (float64 ``(2, rows, max_buckets + 1)``: ADWIN's bucket totals and variances).

>>> import numpy as np
>>> f, i, b = new_state(ADWIN, {"delta": 0.002, "clock": 32, "max_buckets": 5,
...                             "min_window_length": 5, "grace_period": 10})
>>> values = np.r_[np.zeros(1000), np.ones(1000)]
>>> int(first_alarm(f, i, b, values))
1023
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit

ADWIN, DDM, PAGE_HINKLEY = 0, 1, 2
"""Kinds of compiled detectors (``i[0]``)."""

PARAMETERS = {
    ADWIN: ("delta", "clock", "max_buckets", "min_window_length", "grace_period"),
    DDM: ("warm_start", "warning_threshold", "drift_threshold"),
    PAGE_HINKLEY: ("min_instances", "delta", "threshold", "alpha", "mode"),
}
"""The River constructor parameters each kind reads, in the order they are stored in ``f``."""

_PH_MODES = {"both": 0.0, "up": 1.0, "down": 2.0}
_ROWS = 64  # ADWIN bucket rows: row r holds buckets of 2**r samples

# f: parameters at 0..4, statistics from 5 on
_P = 5
# i: kind, drift flag, warning flag, then ADWIN's counters; bucket counts from _COUNTS on
_KIND, _DRIFT, _WARNING, _N_BUCKETS, _MAX_N_BUCKETS, _TICK, _N_DETECTIONS, _N_ROWS = range(8)
_COUNTS = 8


def new_state(kind: int, params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A fresh state of detector ``kind`` with River's constructor ``params`` (by name)."""
    f = np.zeros(_P + 8)
    for index, name in enumerate(PARAMETERS[kind]):
        value = params[name]
        f[index] = _PH_MODES[value] if name == "mode" else float(value)
    i = np.zeros(_COUNTS + _ROWS, dtype=np.int64)
    i[_KIND] = kind
    rows = _ROWS if kind == ADWIN else 1
    b = np.zeros((2, rows, int(f[2]) + 1 if kind == ADWIN else 1))
    reset(f, i, b)
    return f, i, b


@njit(cache=True, error_model="numpy")
def reset(f: np.ndarray, i: np.ndarray, b: np.ndarray) -> None:
    """Start afresh, keeping the parameters (River's ``_reset``)."""
    f[_P:] = 0.0
    i[1:] = 0
    b[:] = 0.0
    kind = i[_KIND]
    if kind == ADWIN:
        i[_N_ROWS] = 1
    elif kind == DDM:
        f[_P + 2] = math.nan  # p_min (None)
        f[_P + 3] = math.nan  # s_min (None)
        f[_P + 4] = math.inf  # ps_min
    else:
        f[_P + 4] = math.inf  # min_increase
        f[_P + 5] = -1.0  # max_decrease


@njit(cache=True, error_model="numpy")
def update(f: np.ndarray, i: np.ndarray, b: np.ndarray, x: float) -> bool:
    """Feed one value (a 0/1 error for DDM); whether it raised an alarm."""
    if i[_DRIFT]:
        reset(f, i, b)
    kind = i[_KIND]
    if kind == ADWIN:
        drift = _adwin_update(f, i, b, x)
    elif kind == DDM:
        drift = _ddm_update(f, i, x)
    else:
        drift = _page_hinkley_update(f, i, x)
    i[_DRIFT] = 1 if drift else 0
    return drift


@njit(cache=True, error_model="numpy")
def first_alarm(f: np.ndarray, i: np.ndarray, b: np.ndarray, values: np.ndarray) -> int:
    """Feed ``values`` in order up to the first alarm; its index, or -1 if none."""
    for k in range(values.shape[0]):
        if update(f, i, b, values[k]):
            return k
    return -1


# -- DDM (river.drift.binary.DDM) ----------------------------------------------------------------
@njit(cache=True, error_model="numpy")
def _ddm_update(f: np.ndarray, i: np.ndarray, x: float) -> bool:
    warm_start, warning_threshold, drift_threshold = f[0], f[1], f[2]
    n = f[_P] + 1.0  # river.stats.Mean
    mean = f[_P + 1] + (1.0 / n) * (x - f[_P + 1])
    f[_P], f[_P + 1] = n, mean
    s = math.sqrt(mean * (1 - mean) / n)
    drift = False
    if n > warm_start:
        if mean + s <= f[_P + 4]:
            f[_P + 2] = mean
            f[_P + 3] = s
            f[_P + 4] = mean + s
        p_min, s_min = f[_P + 2], f[_P + 3]
        i[_WARNING] = 1 if mean + s > p_min + warning_threshold * s_min else 0
        if mean + s > p_min + drift_threshold * s_min:
            drift = True
            i[_WARNING] = 0
    return drift


# -- Page-Hinkley (river.drift.PageHinkley) -------------------------------------------------------
@njit(cache=True, error_model="numpy")
def _page_hinkley_update(f: np.ndarray, i: np.ndarray, x: float) -> bool:
    min_instances, delta, threshold, alpha, mode = f[0], f[1], f[2], f[3], f[4]
    n = f[_P] + 1.0
    mean = f[_P + 1] + (1.0 / n) * (x - f[_P + 1])
    f[_P], f[_P + 1] = n, mean
    dev = x - mean
    f[_P + 2] = alpha * f[_P + 2] + dev - delta
    f[_P + 3] = alpha * f[_P + 3] + dev + delta
    if f[_P + 2] < f[_P + 4]:
        f[_P + 4] = f[_P + 2]
    if f[_P + 3] > f[_P + 5]:
        f[_P + 5] = f[_P + 3]
    if n >= min_instances:
        up = f[_P + 2] - f[_P + 4] > threshold
        down = f[_P + 5] - f[_P + 3] > threshold
        if mode == 1.0:
            return up
        if mode == 2.0:
            return down
        return up or down
    return False  # River leaves the flag as it was: False (a raised one was reset above)


# -- ADWIN (river.drift.ADWIN: River's Rust AdaptiveWindowing) -------------------------------------
# f[_P:] = total, variance, width, total_width
@njit(cache=True, error_model="numpy")
def _insert(b: np.ndarray, i: np.ndarray, row: int, total: float, variance: float) -> None:
    k = i[_COUNTS + row]
    b[0, row, k] = total
    b[1, row, k] = variance
    i[_COUNTS + row] = k + 1


@njit(cache=True, error_model="numpy")
def _compress(b: np.ndarray, i: np.ndarray, row: int, n_elements: int) -> None:
    current = i[_COUNTS + row]
    remaining = current - n_elements
    for k in range(remaining):
        b[0, row, k] = b[0, row, k + n_elements]
        b[1, row, k] = b[1, row, k + n_elements]
    for k in range(max(remaining, 0), current):
        b[0, row, k] = 0.0
        b[1, row, k] = 0.0
    i[_COUNTS + row] = remaining


@njit(cache=True, error_model="numpy")
def _adwin_update(f: np.ndarray, i: np.ndarray, b: np.ndarray, value: float) -> bool:
    max_buckets = int(f[2])
    # insert_element(value, 0.0)
    _insert(b, i, 0, value, 0.0)
    i[_N_BUCKETS] += 1
    if i[_N_BUCKETS] > i[_MAX_N_BUCKETS]:
        i[_MAX_N_BUCKETS] = i[_N_BUCKETS]
    f[_P + 2] += 1.0
    width = f[_P + 2]
    incremental = 0.0
    if width > 1.0:
        delta_v = value - f[_P] / (width - 1.0)
        incremental = (width - 1.0) * delta_v * delta_v / width
    f[_P + 1] += incremental
    f[_P] += value
    # compress_buckets
    row = 0
    while i[_COUNTS + row] == max_buckets + 1:
        n1 = float(1 << row)
        t0, t1 = b[0, row, 0], b[0, row, 1]
        v0, v1 = b[1, row, 0], b[1, row, 1]
        mu1 = t0 / n1
        mu2 = t1 / n1
        total12 = t0 + t1
        temp = n1 * 0.5 * (mu1 - mu2) * (mu1 - mu2)
        v12 = v0 + v1 + temp
        if row + 1 >= i[_N_ROWS]:
            i[_N_ROWS] = row + 2
        _insert(b, i, row + 1, total12, v12)
        i[_N_BUCKETS] += 1
        _compress(b, i, row, 2)
        if i[_COUNTS + row + 1] <= max_buckets:
            break
        row += 1
    return _adwin_detect(f, i, b)


@njit(cache=True, error_model="numpy")
def _adwin_detect(f: np.ndarray, i: np.ndarray, b: np.ndarray) -> bool:
    delta, clock, min_window, grace = f[0], int(f[1]), f[3], f[4]
    change = False
    i[_TICK] += 1
    if i[_TICK] % clock == 0 and f[_P + 2] > grace:
        reduce_width = True
        while reduce_width:
            reduce_width = False
            exit_flag = False
            n0 = 0.0
            n1 = f[_P + 2]
            u0 = 0.0
            u1 = f[_P]
            deleted = False
            width = f[_P + 2]
            delta_prime = math.log(2.0 * math.log(width) / delta)  # the same for every cut
            for row in range(i[_N_ROWS] - 1, -1, -1):
                if exit_flag or deleted:
                    break
                size = float(1 << row)
                current = i[_COUNTS + row]
                for k in range(current):
                    n0 += size
                    n1 -= size
                    total_at = b[0, row, k]
                    u0 += total_at
                    u1 -= total_at
                    if row == 0 and k == current - 1:
                        exit_flag = True
                        break
                    delta_mean = (u0 / n0) - (u1 / n1)
                    if n1 >= min_window and n0 >= min_window:
                        m_recip = 1.0 / (n0 - min_window + 1.0) + 1.0 / (n1 - min_window + 1.0)
                        epsilon = (
                            math.sqrt(2.0 * m_recip * (f[_P + 1] / width) * delta_prime)
                            + 2.0 / 3.0 * delta_prime * m_recip
                        )
                        if abs(delta_mean) > epsilon:
                            reduce_width = True
                            change = True
                            if width > 0.0:
                                _adwin_delete(f, i, b)
                                deleted = True
                                break
    f[_P + 3] += f[_P + 2]
    if change:
        i[_N_DETECTIONS] += 1
    return change


@njit(cache=True, error_model="numpy")
def _adwin_delete(f: np.ndarray, i: np.ndarray, b: np.ndarray) -> None:
    last = i[_N_ROWS] - 1
    n = float(1 << last)
    u = b[0, last, 0]
    v = b[1, last, 0]
    mu = u / n
    f[_P + 2] -= n
    f[_P] -= u
    width = f[_P + 2]
    mu_window = f[_P] / width
    f[_P + 1] -= v + n * width * (mu - mu_window) * (mu - mu_window) / (n + width)
    _compress(b, i, last, 1)
    i[_N_BUCKETS] -= 1
    if i[_COUNTS + last] == 0:
        i[_N_ROWS] = last


def adwin_width(f: np.ndarray) -> float:
    """ADWIN's window width (River's ``ADWIN.width``)."""
    return float(f[_P + 2])


def n_detections(i: np.ndarray) -> int:
    """ADWIN's detections since its last reset (River's ``ADWIN.n_detections``)."""
    return int(i[_N_DETECTIONS])


def drift_flag(i: np.ndarray) -> bool:
    """Whether the last update raised an alarm (River's ``drift_detected``)."""
    return bool(i[_DRIFT])


def warning_flag(i: np.ndarray) -> bool:
    """DDM's warning (River's ``warning_detected``)."""
    return bool(i[_WARNING])
