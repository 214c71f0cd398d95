"""A small name -> factory registry; each package keeps one (streams, learners, detectors).

Experiment files refer to components by these names, and ``adaptloop list`` prints them
with their parameters, read from the factories' signatures.

>>> reg = Registry("widgets")
>>> @reg.register("box")
... def make_box(size: int = 3):
...     return ("box", size)
>>> reg.create("box", size=4)
('box', 4)
>>> reg.names()
['box']
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Parameter:
    """One parameter of a registered factory, as ``adaptloop list`` shows it."""

    name: str
    default: Any
    annotation: str

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty


class Registry:
    """Maps names to factories (classes or functions) of one kind of component."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator registering ``factory`` under ``name``; names are unique per registry."""

        def decorator(factory: F) -> F:
            if name in self._factories and self._factories[name] is not factory:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._factories[name] = factory
            return factory

        return decorator

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def get(self, name: str) -> Callable[..., Any]:
        try:
            return self._factories[name]
        except KeyError:
            known = ", ".join(self.names())
            raise ValueError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def create(self, name: str, **params: Any) -> Any:
        """Build the component ``name`` with ``params``; unknown parameters are refused by name."""
        factory = self.get(name)
        accepted = self.parameter_names(name)
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            raise ValueError(
                f"{self.kind} {name!r} has no parameter {', '.join(map(repr, unknown))}; "
                f"parameters: {', '.join(accepted) or '(none)'}"
            )
        return factory(**params)

    def parameter_names(self, name: str) -> list[str]:
        return [p.name for p in self.parameters(name)]

    def parameters(self, name: str) -> list[Parameter]:
        signature = inspect.signature(self.get(name))
        return [
            Parameter(p.name, p.default, _annotation_text(p.annotation))
            for p in signature.parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]

    def describe(self, name: str) -> str:
        """First line of the factory's docstring."""
        doc = inspect.getdoc(self.get(name)) or ""
        return doc.splitlines()[0] if doc else ""


def _annotation_text(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return ""
    return (
        annotation
        if isinstance(annotation, str)
        else getattr(annotation, "__name__", str(annotation))
    )
