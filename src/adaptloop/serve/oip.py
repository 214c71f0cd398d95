"""The Open Inference Protocol (v2, as KServe, Triton and MLServer speak it): the wire format.

The routes (``/v2/health/live``, ``/v2/health/ready``, ``/v2/models/{name}[/ready]``,
``POST /v2/models/{name}/infer``) live in :mod:`adaptloop.serve.app`; this module turns an
inference request's body into a feature matrix and predictions into a response body, in JSON
or with the binary tensor extension (``Inference-Header-Content-Length``: the JSON header,
then each tensor's raw little-endian bytes), which ``tritonclient`` uses by default.

Inputs, by name: either one tensor of shape ``[n, d]`` (any name, features in the model's
order), or one tensor per feature, named by the feature, of shape ``[n]`` or ``[n, 1]``.
Datatypes: ``FP32`` (and the other numeric ones, cast to float32). Outputs: ``prediction``
(class names as ``BYTES``, or ``FP32`` values for regression), ``probabilities`` (``FP32``
``[n, classes]``, classification only) and ``id`` (``BYTES``: the prediction ids, for
feedback). Values outside float32 are refused as in ``/v1/predict``.

>>> import numpy as np
>>> body = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}
>>> request = parse_infer(json.dumps(body).encode(), None)
>>> features(request, ("x0", "x1")).tolist()
[[1.0, 2.0]]
>>> features(parse_infer(b'{"inputs": []}', None), ("x0",))
Traceback (most recent call last):
...
adaptloop.serve.errors.InputError: inputs: give one [n, d] tensor or one tensor per feature (x0)
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adaptloop.serve.errors import InputError
from adaptloop.serve.schemas import MAX_BATCH, check_float32

DTYPES = {
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
}
"""Input datatypes accepted (cast to float32)."""


class InferTensor(BaseModel):
    """One input tensor of an inference request."""

    model_config = ConfigDict(extra="allow")
    name: str = Field(min_length=1, max_length=256)
    shape: list[int] = Field(min_length=1, max_length=2)
    datatype: str
    data: list[Any] | None = None
    parameters: dict[str, Any] | None = None


class InferOutput(BaseModel):
    """A requested output."""

    model_config = ConfigDict(extra="allow")
    name: str
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    """``POST /v2/models/{name}/infer``'s JSON (the header, with the binary extension)."""

    model_config = ConfigDict(extra="allow")
    id: str | None = None
    inputs: list[InferTensor] = Field(max_length=1024)
    outputs: list[InferOutput] | None = None
    parameters: dict[str, Any] | None = None


@dataclass(frozen=True)
class Parsed:
    """A parsed request: its JSON part and each input's values (flat numpy arrays)."""

    request: InferRequest
    values: list[np.ndarray]


def _flat(data: Any) -> list[Any]:
    """Tensor data may be nested lists (row-major); flatten it."""
    if not isinstance(data, list):
        return [data]
    out: list[Any] = []
    for item in data:
        out.extend(_flat(item) if isinstance(item, list) else [item])
    return out


def parse_infer(body: bytes, header_length: int | None) -> Parsed:
    """The request in ``body`` (JSON, or ``header_length`` bytes of JSON then the binary
    tensors); ``InputError`` naming the field when it is malformed."""
    if header_length is not None and not 0 < header_length <= len(body):
        raise InputError("Inference-Header-Content-Length", "outside the body")
    head = body if header_length is None else body[:header_length]
    try:
        request = InferRequest.model_validate_json(head)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "body"
        raise InputError(where, first["msg"]) from None
    binary = memoryview(body)[header_length:] if header_length is not None else memoryview(b"")
    offset = 0
    values = []
    for i, tensor in enumerate(request.inputs):
        field = f"inputs[{i}]"
        dtype = DTYPES.get(tensor.datatype)
        if dtype is None:
            raise InputError(f"{field}.datatype", f"{tensor.datatype!r} is not numeric")
        if any(size < 0 for size in tensor.shape) or int(np.prod(tensor.shape)) > MAX_BATCH * 1024:
            raise InputError(f"{field}.shape", f"{tensor.shape} is not a valid input shape")
        count = int(np.prod(tensor.shape))
        size = (tensor.parameters or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size != count * np.dtype(dtype).itemsize:
                raise InputError(f"{field}.parameters.binary_data_size", f"{size!r} != shape")
            if offset + size > len(binary):
                raise InputError(f"{field}.parameters.binary_data_size", "past the body's end")
            array = np.frombuffer(
                binary[offset : offset + size], dtype=np.dtype(dtype).newbyteorder("<")
            )
            offset += size
        else:
            data = _flat(tensor.data) if tensor.data is not None else []
            if len(data) != count:
                raise InputError(f"{field}.data", f"{len(data)} values for shape {tensor.shape}")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in data):
                raise InputError(f"{field}.data", "values must be numbers")
            with np.errstate(over="ignore", invalid="ignore"):
                array = np.array(data, dtype=np.float64)
        values.append(array.reshape(tensor.shape))
    return Parsed(request, values)


def features(parsed: Parsed, feature_names: tuple[str, ...]) -> np.ndarray:
    """The float32 ``(n, d)`` matrix of a parsed request (see the module docstring)."""
    request, values = parsed.request, parsed.values
    d = len(feature_names)
    names = [tensor.name for tensor in request.inputs]
    if len(values) == 1 and values[0].ndim == 2 and values[0].shape[1] == d and d > 1:
        matrix = values[0]
    elif sorted(names) == sorted(feature_names) and len(set(names)) == d:
        columns = []
        for name in feature_names:
            array = values[names.index(name)]
            if array.ndim == 2 and array.shape[1] != 1:
                raise InputError(f"inputs[{names.index(name)}].shape", "must be [n] or [n, 1]")
            columns.append(array.reshape(-1))
        if len({column.shape[0] for column in columns}) != 1:
            raise InputError("inputs", "the feature tensors differ in length")
        matrix = np.stack(columns, axis=1)
    elif len(values) == 1 and values[0].ndim == 2 and values[0].shape[1] == d:
        matrix = values[0]
    else:
        raise InputError(
            "inputs",
            f"give one [n, d] tensor or one tensor per feature ({', '.join(feature_names)})",
        )
    if not 1 <= matrix.shape[0] <= MAX_BATCH:
        raise InputError("inputs", f"1 to {MAX_BATCH} rows, got {matrix.shape[0]}")
    return check_float32(matrix, feature_names, "inputs")


def _bytes_tensor(strings: list[str]) -> bytes:
    return b"".join(struct.pack("<I", len(s.encode())) + s.encode() for s in strings)


def infer_response(
    model: str,
    version: int,
    request: InferRequest,
    ids: list[str],
    pred: np.ndarray,
    proba: np.ndarray | None,
    classes: tuple[str, ...] | None,
) -> tuple[bytes, int | None]:
    """The response body and, when any output is binary, the JSON header's length."""
    outputs: list[tuple[str, str, list[int], Any]] = []
    if classes is None:
        outputs.append(("prediction", "FP32", [len(ids)], np.asarray(pred, dtype=np.float32)))
    else:
        outputs.append(("prediction", "BYTES", [len(ids)], [classes[int(c)] for c in pred]))
        values = np.asarray(proba, dtype=np.float32)
        outputs.append(("probabilities", "FP32", list(values.shape), values))
    outputs.append(("id", "BYTES", [len(ids)], list(ids)))
    wanted = {o.name: o for o in request.outputs} if request.outputs else None
    default_binary = bool((request.parameters or {}).get("binary_data_output", False))
    head: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, datatype, shape, data in outputs:
        if wanted is not None and name not in wanted:
            continue
        asked = wanted[name].parameters if wanted is not None else None
        binary = bool((asked or {}).get("binary_data", default_binary))
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape}
        if binary:
            blob = _bytes_tensor(data) if datatype == "BYTES" else data.astype("<f4").tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = data if datatype == "BYTES" else data.reshape(-1).tolist()
        head.append(entry)
    document = {"model_name": model, "model_version": str(version), "outputs": head}
    if request.id is not None:
        document["id"] = request.id
    text = json.dumps(document, separators=(",", ":"), allow_nan=False).encode()
    if not blobs:
        return text, None
    return text + b"".join(blobs), len(text)


def model_metadata(
    model: str, version: int, feature_names: tuple[str, ...], classes: tuple[str, ...] | None
) -> dict[str, Any]:
    """``GET /v2/models/{name}``."""
    outputs = [
        {"name": "prediction", "datatype": "FP32" if classes is None else "BYTES", "shape": [-1]},
        {"name": "id", "datatype": "BYTES", "shape": [-1]},
    ]
    if classes is not None:
        outputs.insert(
            1, {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(classes)]}
        )
    return {
        "name": model,
        "versions": [str(version)],
        "platform": "adaptloop",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, len(feature_names)]}],
        "outputs": outputs,
        "parameters": {"feature_names": list(feature_names)},
    }
