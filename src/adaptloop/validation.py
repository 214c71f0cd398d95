"""Checks for arrays and numeric parameters crossing the edge of a learner or a stream.

Every check raises ``ValueError`` with a message naming the argument, the expected shape or
type and what was found, before any state is touched.

>>> import numpy as np
>>> check_features(np.ones((2, 3))).dtype
dtype('float32')
>>> check_features(np.ones((2, 3)), n_features=4)
Traceback (most recent call last):
...
ValueError: X has 3 features, expected 4
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from typing import Annotated, Literal

import numpy as np
from annotated_types import Ge, Gt, Le
from pydantic import BeforeValidator

Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[str, ...] = ("binary", "multiclass", "regression")

_SMALL = 64  # up to this many values, plain Python beats the fixed cost of numpy calls


def _all_finite(a: np.ndarray) -> bool:
    """True if no value of the float array ``a`` is NaN or infinite.

    Small arrays are summed as Python floats (float64): the sum of float32 or float64 values
    is NaN or infinite exactly when one of them is (``inf - inf`` is NaN).
    """
    if a.size <= _SMALL and a.dtype.itemsize <= 4:
        return math.isfinite(sum(a.ravel().tolist()))
    return bool(np.isfinite(a).all())


def check_features(X: object, n_features: int | None = None, name: str = "X") -> np.ndarray:
    """Return ``X`` as a C-contiguous float32 ``(n, d)`` array, or raise ``ValueError``.

    Accepts real numeric arrays (bool, integer, float); refuses other dtypes, other ranks,
    empty batches, NaN/inf and a feature count different from ``n_features``.
    """
    if not isinstance(X, np.ndarray):
        raise ValueError(f"{name} must be a numpy array of shape (n, d), got {type(X).__name__}")
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{name} must have a real numeric dtype (float32 expected), got {X.dtype}")
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-dimensional (n, d), got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {X.shape})")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"{name} has {X.shape[1]} features, expected {n_features}")
    X = np.ascontiguousarray(X, dtype=np.float32)
    if not _all_finite(X):
        bad = int(np.count_nonzero(~np.isfinite(X)))
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s)")
    return X


def check_targets(
    y: object, n_samples: int, task: Task, n_classes: int | None = None, name: str = "y"
) -> np.ndarray:
    """Return ``y`` as int64 class codes (classification) or float32 values (regression).

    Class codes must be integers in ``[0, n_classes)``; a label outside it is an unknown label.

    >>> check_targets(np.array([0, 1]), 2, "binary", 2)
    array([0, 1])
    >>> check_targets(np.array([0, 2]), 2, "binary", 2)
    Traceback (most recent call last):
    ...
    ValueError: y contains unknown label(s) [2]; known labels are 0..1
    """
    if not isinstance(y, np.ndarray):
        raise ValueError(f"{name} must be a numpy array of shape (n,), got {type(y).__name__}")
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-dimensional (n,), got shape {y.shape}")
    if y.shape[0] != n_samples:
        raise ValueError(f"{name} has {y.shape[0]} labels for {n_samples} samples")
    if task == "regression":
        if y.dtype.kind not in "biuf":
            raise ValueError(f"{name} must be numeric for regression, got dtype {y.dtype}")
        y = y.astype(np.float32, copy=False)
        if not _all_finite(y):
            raise ValueError(f"{name} contains NaN or infinite value(s)")
        return y
    if y.dtype.kind == "f":
        if not np.isfinite(y).all() or not np.all(y == np.round(y)):
            raise ValueError(f"{name} must hold integer class codes, got non-integer floats")
    elif y.dtype.kind not in "biu":
        raise ValueError(f"{name} must hold integer class codes (int64), got dtype {y.dtype}")
    y = y.astype(np.int64, copy=False)
    limit = n_classes if n_classes is not None else (2 if task == "binary" else None)
    if y.size <= _SMALL:  # batches of a few: Python's min/max beat three numpy calls
        values = y.tolist()
        if min(values) >= 0 and (limit is None or max(values) < limit):
            return y
    bad = (y < 0) | (y >= limit) if limit is not None else y < 0
    unknown = np.unique(y[bad]) if bad.any() else ()
    if len(unknown):
        shown = unknown[:10].tolist()
        raise ValueError(
            f"{name} contains unknown label(s) {shown}; known labels are 0..{(limit or 1) - 1}"
        )
    return y


def check_number(value: object, name: str, low: float = -math.inf, high: float = math.inf) -> float:
    """``value`` as a float when it is a real number (not a bool) in ``[low, high]``, else
    ``ValueError`` naming ``name``, the range and the value.

    >>> check_number(1, "phi", 0.0, 2.0)
    1.0
    >>> check_number(True, "phi", 0.0, 2.0)
    Traceback (most recent call last):
    ...
    ValueError: phi must be a number in [0.0, 2.0], got True
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}")
    if not low <= float(value) <= high:
        raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}")
    return float(value)


def check_integer(value: object, name: str, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int when it is an integer (numpy integers too; not a bool, a float or a
    string) in ``[low, high]``, else ``ValueError`` naming ``name``, the range and the value.

    For values that are not a component's parameters (a batch size passed to a call, an entry
    of a table such as a drift position); parameters declare :data:`Count` and the like.

    >>> check_integer(3, "batch_size", low=1)
    3
    >>> check_integer(5.0, "drifts[0].at", low=0)
    Traceback (most recent call last):
    ...
    ValueError: drifts[0].at must be an integer >= 0, got 5.0
    >>> check_integer(7, "concepts[1]", 0, 3)
    Traceback (most recent call last):
    ...
    ValueError: concepts[1] must be an integer in 0..3, got 7
    """
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if ok and (low is None or value >= low) and (high is None or value <= high):
        return int(value)
    if low is not None and high is not None:
        expected = f"an integer in {low}..{high}"
    elif low is not None:
        expected = f"an integer >= {low}"
    else:
        expected = "an integer" if high is None else f"an integer <= {high}"
    raise ValueError(f"{name} must be {expected}, got {value!r}")


def did_you_mean(name: object, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` when ``name`` is close to one of ``choices``, else ``""``: the
    tail of a message refusing an unknown key, component or metric.

    >>> did_you_mean("evry", ["every", "window"]), did_you_mean("zzz", ["every"])
    ("; did you mean 'every'?", '')
    """
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


# -- declared parameter types ------------------------------------------------------------------
# Constructors declare their parameters with these (adaptloop.parameters reads the
# declarations): the same check, and the same words, from Python, TOML and HTTP.
def _integer(value: object) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"must be an integer, got {value!r}")
    return int(value)


def _number(value: object) -> float:
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, (int, float, np.integer, np.floating))
        or math.isnan(value)
    ):
        raise ValueError(f"must be a number, got {value!r}")
    return float(value)


def _real(value: object) -> float:
    if not math.isfinite(_number(value)):
        raise ValueError(f"must be a finite number, got {value!r}")
    return float(value)


def _flag(value: object) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"must be true or false, got {value!r}")
    return bool(value)


_INTEGER, _REAL, _FLAG = BeforeValidator(_integer), BeforeValidator(_real), BeforeValidator(_flag)
_NUMBER = BeforeValidator(_number)
EXACT_CHECKS = (_INTEGER, _REAL, _FLAG, _NUMBER)
"""The validators that make a declared ``int``, ``float`` or ``bool`` exact."""


def check_delay(value: object) -> int | float | str:
    """A label delay (:mod:`adaptloop.evaluation.delay`): a number >= 0 (an integer stays
    one) or a column name, or ``ValueError``.

    >>> check_delay(1000), check_delay(2.5), check_delay("lag")
    (1000, 2.5, 'lag')
    """
    if isinstance(value, str):
        return value
    number = _real(value)
    if number < 0:
        raise ValueError(f"must be >= 0 or a column name, got {value!r}")
    return int(value) if isinstance(value, (int, np.integer)) else number


Integer = Annotated[int, _INTEGER]
"""An integer (numpy integers too); not a bool, a float or a string."""
Real = Annotated[float, _REAL]
"""A finite real number (integers too); not a bool or a string."""
Delay = Annotated[int | float | str, BeforeValidator(check_delay)]
"""A label delay: samples (or time units of a timestamp column), or the name of a column
holding each sample's delay."""
Flag = Annotated[bool, _FLAG]
"""True or False (numpy bools too); not 0/1 or a string."""
Count = Annotated[int, _INTEGER, Ge(1)]
"""An integer >= 1: sizes, counts, periods."""
NonNegativeInt = Annotated[int, _INTEGER, Ge(0)]
"""An integer >= 0."""
Seed = Annotated[int, _INTEGER, Ge(0)]
"""A random seed: an integer >= 0 (what numpy's generators take)."""
PositiveReal = Annotated[float, _REAL, Gt(0)]
"""A finite number > 0: rates, scales."""
NonNegativeReal = Annotated[float, _REAL, Ge(0)]
"""A finite number >= 0: penalties, tolerances, decays."""
Fraction = Annotated[float, _REAL, Ge(0), Le(1)]
"""A number in [0, 1]: probabilities, shares, noise levels."""
Limit = Annotated[float, _NUMBER, Gt(0)]
"""A number > 0, ``inf`` included: a time limit that may be none."""
