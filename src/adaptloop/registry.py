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

import ast
import importlib
import importlib.util
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from adaptloop.parameters import declared

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
        self._lazy: dict[str, str] = {}  # name -> "module:attribute", imported by get()

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator registering ``factory`` under ``name``; names are unique per registry.

        The factory's calls are checked against its declaration from then on
        (:func:`adaptloop.parameters.declared`), from Python as from an experiment file.
        """

        def decorator(factory: F) -> F:
            factory = declared(factory)
            taken = name in self._lazy or self._factories.get(name, factory) is not factory
            if taken:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._factories[name] = factory
            return factory

        return decorator

    def register_lazy(self, name: str, target: str) -> None:
        """Register ``"package.module:attribute"`` under ``name``, imported on first use: for
        factories whose module is slow to import and often not needed.

        >>> registry = Registry("thing")
        >>> registry.register_lazy("fraction", "fractions:Fraction")
        >>> "fraction" in registry, registry.create("fraction", numerator=1, denominator=2)
        (True, Fraction(1, 2))
        """
        if name in self._factories or name in self._lazy:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        if target.count(":") != 1:
            raise ValueError(f"lazy target must read 'module:attribute', got {target!r}")
        self._lazy[name] = target

    def names(self) -> list[str]:
        return sorted([*self._factories, *self._lazy])

    def __contains__(self, name: object) -> bool:
        return name in self._factories or name in self._lazy

    def get(self, name: str) -> Callable[..., Any]:
        if name in self._lazy:
            module, attribute = self._lazy.pop(name).split(":")
            factory = getattr(importlib.import_module(module), attribute)
            self._factories[name] = declared(factory)
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
        """The first sentence of the factory's docstring, as plain text (:func:`plain_text`).

        A factory registered lazily is described without importing its module (its source is
        read), so listing every component stays fast and needs no optional dependency.

        >>> registry = Registry("thing")
        >>> registry.register_lazy("fraction", "fractions:Fraction")
        >>> registry.describe("fraction"), "fraction" in registry._lazy
        ('This class implements rational numbers.', True)
        """
        paragraph = plain_text(self.doc(name)).split("\n\n", 1)[0].replace("\n", " ")
        end = _SENTENCE_END.search(paragraph)
        return paragraph[: end.start() + 1] if end else paragraph

    def doc(self, name: str) -> str:
        """The factory's whole docstring (cleaned of indentation), as written."""
        if name in self._lazy:
            doc = _source_doc(*self._lazy[name].split(":"))
            if doc is not None:
                return doc
        return inspect.getdoc(self.get(name)) or ""


def _module_file(module: str) -> Path | None:
    """The source file of ``module``, found without importing it or its packages."""
    top, *parts = module.split(".")
    spec = importlib.util.find_spec(top)
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin)
    for part in parts:
        folder = path.parent / part
        path = folder / "__init__.py" if folder.is_dir() else path.parent / f"{part}.py"
    return path if path.is_file() else None


def _source_doc(module: str, attribute: str, depth: int = 3) -> str | None:
    """The docstring of ``module.attribute`` read from the source, following ``from .x import
    attribute`` re-exports ``depth`` deep; None if it cannot be found that way."""
    path = _module_file(module)
    if path is None:
        return None
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name == attribute:
            return inspect.cleandoc(ast.get_docstring(node) or "")
        reexports = isinstance(node, ast.ImportFrom) and any(
            alias.name == attribute and alias.asname is None for alias in node.names
        )
        if reexports and depth > 0:
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            source = ".".join(part for part in (base, node.module) if part)
            return _source_doc(source, attribute, depth - 1)
    return None


_SENTENCE_END = re.compile(
    r"(?<!\bal)(?<!\be\.g)(?<!\bi\.e)(?<!\beq)(?<!\bcf)(?<!\bvs)\.(?=\s+[A-Z(]|$)"
)
"""The end of a sentence: a full stop before a capital (not "et al.", "e.g.", "eq.", ...)."""

_ROLE = re.compile(r":(?:[a-z]+:)*[a-z]+:`~?(?:[^`<]*<)?([^`>]+)>?`")


def plain_text(doc: str) -> str:
    r"""A reStructuredText docstring as a terminal shows it: roles (``:func:`~a.b.f```) as the
    name alone, inline literals and bold without their marks, ``>>>`` examples left out.

    >>> plain_text("Wraps ``base``; see :func:`~adaptloop.x.make` and :class:`Y`.\n\n>>> 1\n1")
    'Wraps base; see make and Y.'
    """
    lines, example = [], False
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped.startswith((">>>", "...")) or (example and stripped):
            example = True
            continue
        example = False
        lines.append(line)
    text = _ROLE.sub(lambda m: m.group(1).rsplit(".", 1)[-1], "\n".join(lines))
    text = re.sub(r"``([^`]+)``", r"\1", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"\1", text)
    text = re.sub(r"\[\^\d+\]", "", text)  # footnote marks (River's docstrings)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _annotation_text(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return ""
    return (
        annotation
        if isinstance(annotation, str)
        else getattr(annotation, "__name__", str(annotation))
    )
