"""Value objects that describe how to build something (a schedule, an optimiser).

A :class:`Spec` is equal to another of its class with the same parameters and prints as the
call that builds it, so experiment files, ``state_dict`` round trips and tests can compare them.

>>> class Box(Spec):
...     def __init__(self, size: int = 3) -> None:
...         self.size = size
...     def _params(self) -> dict:
...         return {"size": self.size}
>>> Box(2), Box(2) == Box(2), Box(2) == Box(3)
(Box(size=2), True, False)
"""

from __future__ import annotations

from typing import Any


class Spec:
    """Equality, hash and ``repr`` from ``_params()`` (the constructor's arguments)."""

    def _params(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and repr(other) == repr(self)

    def __hash__(self) -> int:
        return hash(repr(self))
