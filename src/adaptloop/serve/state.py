"""Learner states as arrays + JSON: how checkpoints hold a ``state_dict()`` without pickle.

:func:`pack` turns a state (the ``state_dict()`` every learner returns, or the service's own
state made of them) into bytes, :func:`unpack` turns them back; nothing in between executes
code. The bytes are::

    adaptloop-state 1\\n          <- magic line and schema version
    {"$schema": 1, "tree": ...}\\n  <- the state's structure as JSON (sorted keys)
    <safetensors>                   <- every array, referenced from the JSON by name

The JSON tree (schema 1) holds ``None``, booleans, integers (any size), strings and finite
floats as themselves, lists as arrays and string-keyed dicts as objects. Everything else is an
object with a ``"$"`` key: ``{"$": "float", "v": "nan" | "inf" | "-inf"}``,
``{"$": "tuple", "items": [...]}``, ``{"$": "dict", "items": [[key, value], ...]}`` (a dict
with non-string keys or a ``"$"`` key), ``{"$": "array" | "scalar" | "torch" | "bytes", "ref":
NAME}`` (a numpy array, a numpy scalar, a torch tensor or a bytes value: the tensor ``NAME`` of
the safetensors part; numeric and boolean dtypes only). Any other value (a set, an object) is
refused with :class:`StateEncodingError` naming its key path (``learned.model``), so a learner
whose state is not plain values cannot be checkpointed.

**Pickled values inside a state.** Two learners keep a River object inside their state as
pickle bytes: the drift-reset wrapper its drift detector, and the River adapter its whole
River model; their ``load_state_dict`` unpickles them. A checkpoint would then run whatever
code a forged file put there. So every ``bytes`` value is checked, when packed and again when
unpacked, by unpickling it with an unpickler that resolves only the globals of
:data:`SAFE_GLOBALS` (River's registered drift detectors and the numpy, ``collections`` and
``random`` types their pickles use; ``getattr`` only for a method of one of those classes):
a value that names any other global is refused, so a detector travels and a River model is
refused at checkpoint time, with a message naming the learner's key path and the class.

>>> import numpy as np
>>> state = {"w": np.arange(3, dtype=np.float32), "n": 7, "tag": ("a", float("nan"))}
>>> back = unpack(pack(state))
>>> back["w"].dtype, back["w"].tolist(), back["n"], back["tag"][0], back["tag"][1] != back["tag"][1]
(dtype('float32'), [0.0, 1.0, 2.0], 7, 'a', True)
>>> pack({"s": {1, 2}})
Traceback (most recent call last):
...
adaptloop.serve.state.StateEncodingError: s: a set cannot be stored in a checkpoint (...)
"""

from __future__ import annotations

import io
import json
import math
import pickle
from typing import Any

import numpy as np
from safetensors.numpy import load as load_tensors
from safetensors.numpy import save as save_tensors

MAGIC = b"adaptloop-state 1\n"
"""First line of a packed state (schema version 1)."""
SCHEMA = 1

SAFE_GLOBALS = frozenset(
    {
        ("collections", "deque"),
        ("random", "Random"),
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        *(
            (f"numpy.{core}.{module}", name)
            for core in ("core", "_core")
            for module, name in (
                ("multiarray", "scalar"),
                ("multiarray", "_reconstruct"),
                ("numeric", "_frombuffer"),
            )
        ),
        ("river._river_rust.drift", "AdaptiveWindowing"),
        ("river._river_rust.stats", "RsEWMean"),
        ("river.drift.adwin", "ADWIN"),
        ("river.drift.binary.ddm", "DDM"),
        ("river.drift.binary.eddm", "EDDM"),
        ("river.drift.binary.fhddm", "FHDDM"),
        ("river.drift.binary.hddm_a", "HDDMA"),
        ("river.drift.binary.hddm_w", "HDDMW"),
        ("river.drift.binary.hddm_w", "SampleInfo"),
        ("river.drift.kswin", "KSWIN"),
        ("river.drift.page_hinkley", "PageHinkley"),
        ("river.stats.ewmean", "EWMean"),
        ("river.stats.mean", "Mean"),
        ("river.stats.var", "Var"),
    }
)
"""The globals a pickled value inside a state may name: what River's registered drift
detectors pickle into (collected by pickling each fresh and after updates), nothing that
reaches files, processes or imports. ``builtins.getattr`` is resolved to
:func:`_method_of`, which hands out only public or single-underscore methods of these classes."""

_DTYPES = frozenset(
    {"bool", "float16", "float32", "float64"}
    | {f"{sign}int{bits}" for sign in ("", "u") for bits in (8, 16, 32, 64)}
)


class StateEncodingError(ValueError):
    """A state that cannot be packed or unpacked; the message starts with its key path."""


class _Refused(pickle.UnpicklingError):
    pass


def _method_of(obj: Any, name: str) -> Any:
    """``getattr`` as a pickled detector uses it: a method of an allowed class only."""
    cls = obj if isinstance(obj, type) else type(obj)
    if (cls.__module__, cls.__qualname__) not in SAFE_GLOBALS:
        raise _Refused(f"getattr on {cls.__module__}.{cls.__qualname__}")
    if not isinstance(name, str) or name.startswith("__"):
        raise _Refused(f"getattr of {name!r}")
    value = getattr(obj, name)
    if not callable(value):
        raise _Refused(f"getattr of {name!r}: not a method")
    return value


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("builtins", "getattr"):
            return _method_of
        if (module, name) not in SAFE_GLOBALS:
            raise _Refused(f"{module}.{name}")
        return super().find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused("a persistent id")


def check_pickled(blob: bytes, path: str) -> None:
    """Refuse ``blob`` when it is a pickle naming a global outside :data:`SAFE_GLOBALS`
    (:class:`StateEncodingError` naming ``path`` and the global). Bytes that are not a pickle
    pass: unpickling them fails the same way wherever it is tried.

    >>> import collections
    >>> check_pickled(pickle.dumps(collections.deque([1.5])), "x")
    >>> check_pickled(b"cos\\nsystem\\n(S'echo hi'\\ntR.", "learned.detector")
    Traceback (most recent call last):
    ...
    adaptloop.serve.state.StateEncodingError: learned.detector: holds a pickled os.system, ...
    """
    try:
        _SafeUnpickler(io.BytesIO(blob)).load()
    except _Refused as refused:
        raise StateEncodingError(
            f"{path}: holds a pickled {refused}, which a checkpoint does not load "
            "(only River's drift detectors are allowed)"
        ) from None
    except Exception:  # noqa: BLE001 - not a pickle: nothing would run
        return


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


class _Packer:
    def __init__(self) -> None:
        self.tensors: dict[str, np.ndarray] = {}

    def ref(self, kind: str, array: np.ndarray, path: str) -> dict[str, str]:
        if array.dtype.name not in _DTYPES:
            raise StateEncodingError(
                f"{path}: an array of dtype {array.dtype} cannot be stored in a checkpoint "
                "(numeric and boolean dtypes only)"
            )
        name = f"t{len(self.tensors)}"
        self.tensors[name] = array if array.flags.c_contiguous else array.copy(order="C")
        return {"$": kind, "ref": name}

    def node(self, value: Any, path: str) -> Any:
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, int) and not isinstance(value, np.generic):
            return int(value)
        if isinstance(value, float) and not isinstance(value, np.generic):
            if math.isfinite(value):
                return float(value)
            return {
                "$": "float",
                "v": "nan" if value != value else ("inf" if value > 0 else "-inf"),
            }
        if isinstance(value, np.ndarray):
            return self.ref("array", value, path)
        if isinstance(value, np.generic):
            return self.ref("scalar", np.asarray(value), path)
        if isinstance(value, bytes):
            check_pickled(value, path)
            return self.ref("bytes", np.frombuffer(value, dtype=np.uint8), path)
        if isinstance(value, list):
            return [self.node(v, _join(path, i)) for i, v in enumerate(value)]
        if isinstance(value, tuple):
            return {
                "$": "tuple",
                "items": [self.node(v, _join(path, i)) for i, v in enumerate(value)],
            }
        if isinstance(value, dict):
            if all(isinstance(k, str) for k in value) and "$" not in value:
                return {k: self.node(v, _join(path, k)) for k, v in value.items()}
            items = [[self.node(k, path), self.node(v, _join(path, k))] for k, v in value.items()]
            return {"$": "dict", "items": items}
        if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
            return self.ref("torch", value.detach().cpu().numpy(), path)
        raise StateEncodingError(
            f"{path or 'state'}: a {type(value).__name__} cannot be stored in a checkpoint "
            "(arrays and JSON values only)"
        )


def pack(state: Any) -> bytes:
    """The bytes of ``state`` (see the module docstring); :class:`StateEncodingError` naming
    the key path of a value that cannot be stored."""
    packer = _Packer()
    tree = packer.node(state, "")
    text = json.dumps({"$schema": SCHEMA, "tree": tree}, sort_keys=True, allow_nan=False)
    return MAGIC + text.encode() + b"\n" + save_tensors(packer.tensors)


def is_packed(blob: bytes) -> bool:
    """True for bytes written by :func:`pack` (False for a legacy pickle).

    >>> is_packed(pack({})), is_packed(pickle.dumps({}))
    (True, False)
    """
    return blob.startswith(MAGIC)


def _torch_tensor(array: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(array.copy())


class _Unpacker:
    def __init__(self, tensors: dict[str, np.ndarray]) -> None:
        self.tensors = tensors

    def tensor(self, node: dict, path: str) -> np.ndarray:
        ref = node.get("ref")
        if ref not in self.tensors:
            raise StateEncodingError(f"{path or 'state'}: no tensor {ref!r}")
        return self.tensors[ref]

    def node(self, node: Any, path: str) -> Any:
        if isinstance(node, list):
            return [self.node(v, _join(path, i)) for i, v in enumerate(node)]
        if not isinstance(node, dict):
            return node
        kind = node.get("$")
        if kind is None:
            return {k: self.node(v, _join(path, k)) for k, v in node.items()}
        if kind == "float":
            return float(node["v"])
        if kind == "tuple":
            return tuple(self.node(v, _join(path, i)) for i, v in enumerate(node["items"]))
        if kind == "dict":
            out = {}
            for key, value in node["items"]:
                key = self.node(key, path)
                out[key] = self.node(value, _join(path, key))
            return out
        if kind == "array":
            return self.tensor(node, path).copy()
        if kind == "scalar":
            return self.tensor(node, path)[()]
        if kind == "bytes":
            blob = self.tensor(node, path).tobytes()
            check_pickled(blob, path)
            return blob
        if kind == "torch":
            return _torch_tensor(self.tensor(node, path))
        raise StateEncodingError(f"{path or 'state'}: unknown kind {kind!r}")


def unpack(blob: bytes) -> Any:
    """The state :func:`pack` wrote; :class:`StateEncodingError` when ``blob`` is not one
    (or holds a pickled value naming a global outside :data:`SAFE_GLOBALS`)."""
    if not blob.startswith(MAGIC):
        raise StateEncodingError("state: not an adaptloop state (a legacy pickle?)")
    end = blob.find(b"\n", len(MAGIC))
    try:
        if end < 0:
            raise ValueError("no end of the JSON part")
        document = json.loads(blob[len(MAGIC) : end])
        if not isinstance(document, dict) or document.get("$schema") != SCHEMA:
            raise ValueError(f"unsupported schema {document.get('$schema')!r}")
        tensors = load_tensors(blob[end + 1 :])
        return _Unpacker(tensors).node(document["tree"], "")
    except StateEncodingError:
        raise
    except Exception as error:  # noqa: BLE001 - any malformed part: one message
        raise StateEncodingError(f"state: malformed ({type(error).__name__}: {error})") from None


__all__ = [
    "MAGIC",
    "SAFE_GLOBALS",
    "StateEncodingError",
    "check_pickled",
    "is_packed",
    "pack",
    "unpack",
]
