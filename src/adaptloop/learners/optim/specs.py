"""Value objects that describe how to build something (a schedule, an optimiser).

A :class:`Spec` declares its parameters in its constructor's signature (every call is checked
against it, see :mod:`adaptloop.parameters`) and stores each under its name; it is equal to
another of its class with the same parameters and prints as the call that builds it, so
experiment files, ``state_dict`` round trips and tests can compare them. :func:`make_spec`
builds one from a name or a table, as experiment files give them.

>>> class Box(Spec):
...     def __init__(self, size: int = 3) -> None:
...         self.size = size
>>> Box(2), Box(2) == Box(2), Box(2) == Box(3)
(Box(size=2), True, False)
>>> Box(size=2.5)
Traceback (most recent call last):
...
adaptloop.parameters.ParameterError: Box.size: must be an integer, got 2.5
>>> make_spec({"name": "box", "size": 4}, "box", {"box": Box}, "{name = 'box'}")
Box(size=4)
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, TypeVar

from adaptloop.parameters import ParameterError, declared

__all__ = ["Spec", "make_spec"]

S = TypeVar("S", bound="Spec")


class Spec:
    """Declared parameters, and equality, hash and ``repr`` from them."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared(cls)

    def _params(self) -> dict[str, Any]:
        """The constructor's arguments, read back from the attributes of the same name."""
        signature = inspect.signature(type(self).__init__)
        return {
            p.name: getattr(self, p.name)
            for p in signature.parameters.values()
            if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and repr(other) == repr(self)

    def __hash__(self) -> int:
        return hash(repr(self))


def make_spec(spec: object, kind: str, known: Mapping[str, type[S]], example: str) -> S:
    """``spec`` as a :class:`Spec` of one of the ``known`` classes (by name): an instance as
    is, a name, or a table ``{"name": ..., **parameters}`` (``example`` shows one). Unknown
    names and parameters raise ``ValueError`` listing the known ones; a refused parameter
    value a :class:`~adaptloop.parameters.ParameterError` under ``kind`` (``optimizer.momentum``).
    """
    if isinstance(spec, tuple(known.values())):
        return spec  # type: ignore[return-value]
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise ValueError(
            f"{kind} must be a name ({', '.join(map(repr, known))}), a table with a 'name' "
            f"(e.g. {example}) or a {kind} object, got {spec!r}"
        )
    name = spec["name"]
    if name not in known:
        raise ValueError(f"unknown {kind} {name!r}; known: {', '.join(known)}")
    cls = known[name]
    params = {k: v for k, v in spec.items() if k != "name"}
    accepted = list(inspect.signature(cls).parameters)
    for key in params:
        if key not in accepted:
            raise ValueError(
                f"{kind} {name!r} takes no parameter {key!r}; it takes: {', '.join(accepted)}"
            )
    try:
        return cls(**params)
    except ParameterError as error:  # name the parameter as the table does
        raise ParameterError(kind + error.path.removeprefix(cls.__name__), error.reason) from None
