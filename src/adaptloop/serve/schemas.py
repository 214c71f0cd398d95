"""Request and response models of the service (pydantic), and turning records into arrays.

Feature values must be finite JSON numbers (booleans, strings, NaN and infinities are refused)
that stay finite in float32, the dtype the models use (``1e300`` is a finite Python float but
infinite in float32: refused, naming the field); records are objects keyed by the stream's
feature names; every refusal names the field.

>>> PredictRequest.model_validate({"records": [{"x0": 1, "x1": 2.5}]}).records
[{'x0': 1.0, 'x1': 2.5}]
>>> records_to_array([{"x0": 1.0, "x1": 2.0}], ("x0", "x1")).tolist()
[[1.0, 2.0]]
>>> records_to_array([{"x0": 1.0}], ("x0", "x1"))
Traceback (most recent call last):
...
adaptloop.serve.errors.InputError: records[0]: missing feature(s) 'x1'; expected x0, x1
>>> records_to_array([{"x0": 1.0, "x1": 1e300}], ("x0", "x1"))
Traceback (most recent call last):
...
adaptloop.serve.errors.InputError: records[0].x1: 1e+300 is outside the float32 range (...)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from adaptloop.serve.errors import InputError

Finite = Annotated[float, Field(strict=True, allow_inf_nan=False)]
"""A finite JSON number (an integer is accepted as a float)."""
Record = dict[str, Finite]
MAX_BATCH = 1000
"""Most records in one predict or feedback request."""
FLOAT32_MAX = float(np.finfo(np.float32).max)


def out_of_range(field: str, value: float) -> InputError:
    """The refusal of a value that is not finite in float32."""
    return InputError(field, f"{value!r} is outside the float32 range (|x| <= {FLOAT32_MAX:.8g})")


class PredictRequest(BaseModel):
    """``{"records": [{feature: value, ...}, ...]}`` (1 to 1,000 records)."""

    model_config = ConfigDict(extra="forbid")
    records: list[Record] = Field(min_length=1, max_length=MAX_BATCH)


class Prediction(BaseModel):
    """One prediction: its id (for feedback), the prediction, class probabilities."""

    id: str
    prediction: str | float
    probabilities: dict[str, float] | None = None


class PredictResponse(BaseModel):
    """The served model's version and one prediction per record, in order."""

    model_version: int
    predictions: list[Prediction]


class FeedbackItem(BaseModel):
    """The true label of an earlier prediction (``prediction_id``) or of a new ``record``.

    >>> try:
    ...     FeedbackItem.model_validate({"label": "1"})
    ... except ValueError as error:
    ...     print(error.errors()[0]["msg"])
    Value error, give exactly one of prediction_id or record
    """

    model_config = ConfigDict(extra="forbid")
    prediction_id: StrictStr | None = Field(None, min_length=1, max_length=64)
    record: Record | None = None
    label: StrictInt | StrictStr | Finite
    key: StrictStr | None = Field(None, min_length=1, max_length=128)
    """Idempotency key: feedback stored under a key is stored once; a retry is answered with
    the stored ``seq``."""

    @field_validator("label", mode="before")
    @classmethod
    def _label_type(cls, value: Any) -> Any:
        ok = isinstance(value, (int, str, float)) and not isinstance(value, bool)
        if not ok or (isinstance(value, float) and not math.isfinite(value)):
            raise ValueError(
                "must be a class name (string), a class code (integer) or a finite number, "
                f"got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _one_source(self) -> FeedbackItem:
        if (self.prediction_id is None) == (self.record is None):
            raise ValueError("give exactly one of prediction_id or record")
        return self


class FeedbackRequest(BaseModel):
    """``{"feedback": [{"prediction_id": ..., "label": ...}, ...]}`` (1 to 1,000 items)."""

    model_config = ConfigDict(extra="forbid")
    feedback: list[FeedbackItem] = Field(min_length=1, max_length=MAX_BATCH)


class FeedbackResponse(BaseModel):
    """How many records were stored (durably, before this answer) and their sequence numbers."""

    accepted: int
    seq: list[int]


class CheckpointInfo(BaseModel):
    """A checkpoint written by a snapshot, a rollback, a promotion or a periodic save."""

    model_config = ConfigDict(extra="allow")
    id: int
    version: int
    kind: str
    learned_seq: int


class ModelStatus(BaseModel):
    """``GET /v1/model``: version, prequential metrics over feedback, alarms, gate decisions."""

    version: int
    experiment: str
    learner: str
    task: str
    feature_names: list[str]
    classes: list[str] | None
    feedback: dict[str, int]
    metrics: dict[str, float | None]
    metrics_window: int
    drift_alarms: list[int]
    gate: dict[str, int | float]
    decisions: list[dict[str, Any]]
    last_checkpoint: dict[str, Any]
    skipped_checkpoints: list[str]
    restored_from_checkpoint: int | None
    replayed_on_start: int
    worker_error: str | None
    quarantine: dict[str, Any]
    role: str = "all"
    lease: dict[str, Any] | None = None


class Health(BaseModel):
    """``GET /healthz``."""

    status: str
    version: int


class Readiness(BaseModel):
    """``GET /readyz``: ``ready`` or ``not ready``, and each check's problem (None: ok)."""

    status: str
    version: int
    checks: dict[str, str | None]


def records_to_array(
    records: Sequence[Mapping[str, float]], feature_names: tuple[str, ...], field: str = "records"
) -> np.ndarray:
    """Records as a float32 ``(n, d)`` array in ``feature_names`` order; ``InputError``
    naming the record when its feature names differ."""
    expected = set(feature_names)
    for i, record in enumerate(records):
        if record.keys() != expected:
            missing = [name for name in feature_names if name not in record]
            unknown = sorted(set(record) - expected)
            parts = []
            if missing:
                parts.append("missing feature(s) " + ", ".join(map(repr, missing)))
            if unknown:
                parts.append("unknown feature(s) " + ", ".join(map(repr, unknown)))
            parts.append("expected " + ", ".join(feature_names))
            raise InputError(f"{field}[{i}]", "; ".join(parts))
    values = [[r[name] for name in feature_names] for r in records]
    if max(map(abs, itertools.chain.from_iterable(values))) <= FLOAT32_MAX:  # the common case
        return np.array(values, dtype=np.float32)
    return check_float32(np.array(values, dtype=np.float64), feature_names, field)


def check_float32(
    X: np.ndarray, feature_names: tuple[str, ...], field: str = "records"
) -> np.ndarray:
    """``X`` (n, d) as float32; ``InputError`` naming ``<field>[i].<feature>`` for the first
    value that is not finite in float32 (too large for it, or NaN/infinite already).

    >>> check_float32(np.array([[1.0, 3.5e38]]), ("a", "b"), "inputs")
    Traceback (most recent call last):
    ...
    adaptloop.serve.errors.InputError: inputs[0].b: 3.5e+38 is outside the float32 range (...)
    """
    X = np.asarray(X)
    if X.dtype == np.float32 or (np.abs(X) <= FLOAT32_MAX).all():  # the common case
        X32 = X.astype(np.float32, copy=False)
        if np.isfinite(X32).all():
            return X32
    with np.errstate(over="ignore", invalid="ignore"):
        bad = ~np.isfinite(X.astype(np.float32)) | ~(np.abs(X) <= FLOAT32_MAX)
    i, j = np.argwhere(bad)[0]
    raise out_of_range(f"{field}[{i}].{feature_names[j]}", float(X[i, j]))


def label_code(label: int | str | float, classes: tuple[str, ...] | None, field: str) -> float:
    """A label as stored: the class code (classification) or the value (regression).

    >>> label_code("1", ("0", "1"), "label"), label_code(0, ("0", "1"), "label")
    (1.0, 0.0)
    >>> label_code(1e300, None, "feedback[0].label")
    Traceback (most recent call last):
    ...
    adaptloop.serve.errors.InputError: feedback[0].label: 1e+300 is outside the float32 ...
    >>> label_code("yes", ("0", "1"), "feedback[0].label")
    Traceback (most recent call last):
    ...
    adaptloop.serve.errors.InputError: feedback[0].label: unknown label 'yes'; classes are '0', '1'
    """
    if classes is None:
        if isinstance(label, str):
            raise InputError(field, f"a regression label must be a number, got {label!r}")
        with np.errstate(over="ignore"):
            if not np.isfinite(np.float32(label)):
                raise out_of_range(field, label)
        return float(label)
    name = str(label) if isinstance(label, (int, str)) else None
    if name not in classes:
        raise InputError(
            field, f"unknown label {label!r}; classes are {', '.join(map(repr, classes))}"
        )
    return float(classes.index(name))
