"""Learner states as flat vectors: what a client sends is the difference of two of them.

A learner's ``state_dict()`` is a nest of dicts and lists whose leaves are numbers, numpy
arrays, torch tensors or ``None``. :class:`StateCodec` fixes the layout of one such state (the
*template*) and maps every state of the same layout to one float64 vector and back, so that
aggregation rules only ever add and scale vectors. ``None`` leaves are kept as they are;
integer leaves (sample counts, step counters) are averaged as floats and rounded back. A leaf
that is not numeric (a string, a bool, a random generator's state, an optimiser's step
counter dict ...) cannot be averaged: the codec refuses it with its path.

>>> import numpy as np
>>> codec = StateCodec({"w": np.zeros((2, 2)), "count": 3, "extra": None})
>>> codec.size
5
>>> vector = codec.flatten({"w": np.ones((2, 2)), "count": 5, "extra": None})
>>> vector.tolist()
[1.0, 1.0, 1.0, 1.0, 5.0]
>>> codec.unflatten(vector * 0.5)["count"]
2
>>> StateCodec({"w": np.ones(2), "name": "adam"})
Traceback (most recent call last):
...
ValueError: state entry 'name' is a str, not a number or numeric array: it cannot be averaged
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from adaptloop.learners.base import Learner

Keys = tuple[Any, ...]
"""Where an entry sits in a state: its dict keys and list indices from the root."""


def dotted(keys: Keys) -> str:
    """The entry's path as it is shown: keys joined by dots (a key may hold dots itself).

    >>> dotted(("learned", "model", "0.weight"))
    'learned.model.0.weight'
    """
    return ".".join(str(key) for key in keys)


ARRAYS = ("array", "tensor")
"""The kinds of leaf that hold arrays (the others: ``int``, ``float`` scalars and ``none``)."""


@dataclass(frozen=True)
class _Leaf:
    keys: Keys
    kind: str  # "array", "tensor", "int", "float", "none"
    shape: tuple[int, ...]
    dtype: Any
    start: int
    stop: int

    @property
    def path(self) -> str:
        return dotted(self.keys)


def _is_tensor(value: object) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


class StateCodec:
    """The layout of a learner state: ``flatten`` to a float64 vector, ``unflatten`` back.

    ``template`` is a state as ``state_dict()`` returns it; every state passed later must have
    the same keys, shapes and ``None`` leaves (a :class:`ValueError` names the first mismatch).
    """

    def __init__(self, template: dict[str, Any]) -> None:
        if not isinstance(template, dict):
            raise ValueError(f"a learner state must be a dict, got {type(template).__name__}")
        self._template = template
        self._leaves: list[_Leaf] = []
        self.size = 0
        self._walk(template, ())

    def _walk(self, value: Any, keys: Keys) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                self._walk(item, (*keys, key))
            return
        if isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                self._walk(item, (*keys, index))
            return
        prefix = dotted(keys)
        if value is None:
            self._leaves.append(_Leaf(keys, "none", (), None, self.size, self.size))
            return
        if _is_tensor(value):
            kind, array = "tensor", value.detach().cpu().numpy()
            dtype: Any = value.dtype
        elif isinstance(value, np.ndarray):
            kind, array, dtype = "array", value, value.dtype
        elif isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)
        ):
            raise ValueError(
                f"state entry {prefix!r} is a {type(value).__name__}, not a number or numeric "
                "array: it cannot be averaged"
            )
        else:
            kind = "int" if isinstance(value, (int, np.integer)) else "float"
            array, dtype = np.asarray(value), None
        if array.dtype.kind not in "iuf":
            raise ValueError(
                f"state entry {prefix!r} has dtype {array.dtype}, not numeric: it cannot be "
                "averaged"
            )
        start = self.size
        self.size += int(array.size)
        self._leaves.append(_Leaf(keys, kind, tuple(array.shape), dtype, start, self.size))

    @property
    def spans(self) -> list[tuple[int, int]]:
        """The ``(start, stop)`` of each array leaf in the vector (one per weight matrix, bias,
        ...: the model's parameters, not its scalar counters), in vector order.

        >>> StateCodec({"n": 3, "w": np.zeros((2, 2)), "b": np.zeros(2)}).spans
        [(1, 5), (5, 7)]
        """
        return [(leaf.start, leaf.stop) for leaf in self._leaves if leaf.kind in ARRAYS]

    @property
    def paths(self) -> list[str]:
        """The dotted paths of the numeric leaves, in vector order."""
        return [leaf.path for leaf in self._leaves if leaf.kind != "none"]

    def flatten(self, state: dict[str, Any]) -> np.ndarray:
        """The state as one float64 vector of length :attr:`size`."""
        out = np.empty(self.size)
        for leaf in self._leaves:
            value = lookup(state, leaf.keys)
            if leaf.kind == "none":
                if value is not None:
                    raise ValueError(f"state entry {leaf.path!r} was None and is now set")
                continue
            if value is None:
                raise ValueError(f"state entry {leaf.path!r} is None but was set")
            array = value.detach().cpu().numpy() if _is_tensor(value) else np.asarray(value)
            if tuple(array.shape) != leaf.shape:
                raise ValueError(
                    f"state entry {leaf.path!r} has shape {tuple(array.shape)}, "
                    f"expected {leaf.shape}"
                )
            out[leaf.start : leaf.stop] = array.ravel()
        return out

    def unflatten(self, vector: np.ndarray) -> dict[str, Any]:
        """A state of the template's layout holding the numbers of ``vector``."""
        return replace_leaves(self._template, self.values(vector))[0]

    def values(self, vector: np.ndarray) -> dict[Keys, Any]:
        """Every leaf's value in ``vector``, by its keys (``None`` leaves included)."""
        vector = np.asarray(vector, dtype=np.float64)
        if vector.shape != (self.size,):
            raise ValueError(f"state vector must have shape ({self.size},), got {vector.shape}")
        return {leaf.keys: self._leaf_value(leaf, vector) for leaf in self._leaves}

    @staticmethod
    def _leaf_value(leaf: _Leaf, vector: np.ndarray) -> Any:
        part = vector[leaf.start : leaf.stop]
        if leaf.kind == "none":
            return None
        if leaf.kind == "int":
            return int(round(float(part[0])))
        if leaf.kind == "float":
            return float(part[0])
        array = part.reshape(leaf.shape)
        if np.dtype(leaf.dtype if leaf.kind == "array" else np.float64).kind in "iu":
            array = np.rint(array)
        if leaf.kind == "tensor":
            import torch

            return torch.as_tensor(array.copy()).to(leaf.dtype)
        return array.astype(leaf.dtype)


def lookup(state: Any, keys: Keys) -> Any:
    """The entry at ``keys`` in ``state``, or a ValueError naming the path.

    >>> lookup({"a": [{"b": 1}]}, ("a", 0, "b"))
    1
    """
    value = state
    for key in keys:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            raise ValueError(f"state has no entry {dotted(keys)!r}") from None
    return value


def replace_leaves(state: Any, values: dict[Keys, Any]) -> tuple[Any, set[Keys]]:
    """``state`` with the entries at the keys of ``values`` replaced (a new nest of dicts and
    lists; entries not replaced are the same objects), and the keys that were found.

    >>> replace_leaves({"a": 1, "b": [2, 3]}, {("b", 1): 4, ("c",): 5})
    ({'a': 1, 'b': [2, 4]}, {('b', 1)})
    """
    found: set[Keys] = set()

    def walk(value: Any, keys: Keys) -> Any:
        if keys in values:
            found.add(keys)
            return values[keys]
        if isinstance(value, dict):
            return {k: walk(v, (*keys, k)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(walk(v, (*keys, i)) for i, v in enumerate(value))
        return value

    return walk(state, ()), found


def initial_state(learner: Learner, n_features: int, n_classes: int | None) -> dict[str, Any]:
    """A state with every parameter allocated, to start the global model from.

    A fresh learner often has no parameters until its first ``learn`` (their shapes depend on
    the features). This learns one class-balanced batch of all-zero features on a clone: the
    linear learners' weights stay exactly zero (the gradients of the classes cancel), other
    learners take one small step from their seeded initialisation.

    >>> from adaptloop.learners import LogisticRegression
    >>> state = initial_state(LogisticRegression(), n_features=3, n_classes=2)
    >>> state["learned"]["theta"].ravel().tolist()
    [0.0, 0.0, 0.0, 0.0]
    """
    model = learner.clone()
    k = n_classes or 1
    X = np.zeros((k, n_features), dtype=np.float32)
    y = np.arange(k, dtype=np.int64) if n_classes else np.zeros(1, dtype=np.float32)
    model.learn(X, y)
    return model.state_dict()
