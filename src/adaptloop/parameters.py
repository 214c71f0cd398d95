"""Parameters declared once: a component's constructor signature *is* its declaration.

A component (learner, stream, detector, schedule, rule, ...) declares each parameter once, in
its signature, with a type and a default; constraints ride on the type as ``Annotated``
metadata, with the named types of :mod:`adaptloop.validation` (``Count``, ``PositiveReal``,
``Fraction``, ...). Everything else reads that declaration:

* the constructor: :func:`declared` (applied by :meth:`adaptloop.registry.Registry.register`)
  checks every call before the body runs;
* experiment files: :func:`check_parameters` checks a TOML table against the same declaration
  without building anything, naming the key path;
* ``adaptloop list``: :func:`describe_annotation` prints the type and constraint.

Plain ``int``, ``float`` and ``bool`` in a declaration are exact: ``"7"``, ``7.0`` and ``True``
are not integers, ``"0.5"`` and ``True`` are not numbers, ``1`` is not a bool (numpy scalars are
accepted). A refused value raises :class:`ParameterError` (a ``ValueError``) naming the key path.

>>> from typing import Annotated
>>> from annotated_types import Ge
>>> @declared
... def window(size: Annotated[int, Ge(1)] = 10, scale: float = 1.0, name: str = "w"):
...     return size, scale
>>> window(size=3, scale=2)
(3, 2.0)
>>> window(size="3")
Traceback (most recent call last):
...
adaptloop.parameters.ParameterError: window.size: must be an integer, got '3'
>>> check_parameters(window, {"size": 0}, where="learners.w")
Traceback (most recent call last):
...
adaptloop.parameters.ParameterError: learners.w.size: must be >= 1, got 0
>>> describe_annotation(parameter_hints(window)["size"])
'int >= 1'
"""

from __future__ import annotations

import functools
import inspect
import sys
import types
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar, Union

import annotated_types as at
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from adaptloop.validation import EXACT_CHECKS, Flag, Integer, Real

F = TypeVar("F", bound=Callable[..., Any])

_EXACT: dict[Any, Any] = {bool: Flag, int: Integer, float: Real}
_BOUNDS = {
    "greater_than_equal": (">=", "ge"),
    "greater_than": (">", "gt"),
    "less_than_equal": ("<=", "le"),
    "less_than": ("<", "lt"),
}
_MODELS: dict[tuple[Any, frozenset[str]], type[BaseModel]] = {}


class ParameterError(ValueError):
    """A parameter value refused by its declaration; ``path`` is the key path, e.g.
    ``learners.incremental.window``."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.reason = message


def _target(factory: Callable[..., Any]) -> Callable[..., Any]:
    init = factory.__init__ if isinstance(factory, type) else factory
    return inspect.unwrap(init)


def _declared_parameters(factory: Callable[..., Any]) -> list[inspect.Parameter]:
    signature = inspect.signature(_target(factory))
    return [
        p
        for p in signature.parameters.values()
        if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]


def parameter_hints(factory: Callable[..., Any]) -> dict[str, Any]:
    """The declared type of each parameter of ``factory`` (``Any`` where none can be resolved).

    >>> def f(n: int, label="a"): ...
    >>> parameter_hints(f)
    {'n': <class 'int'>, 'label': typing.Any}
    """
    target = _target(factory)
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except Exception:  # one unresolvable annotation: resolve the others one by one
        hints = {}
        namespace = vars(sys.modules.get(target.__module__, types.ModuleType("_")))
        for name, text in getattr(target, "__annotations__", {}).items():
            try:
                hints[name] = eval(text, namespace) if isinstance(text, str) else text
            except Exception:
                hints[name] = Any
    return {p.name: hints.get(p.name, Any) for p in _declared_parameters(factory)}


def exact(annotation: Any) -> Any:
    """``annotation`` as checked: plain ``int``, ``float`` and ``bool`` in their exact forms
    (:data:`~adaptloop.validation.Integer`, ...), inside ``Annotated``, optionals, unions of
    literals and tuples or lists too.

    Anything richer (a learner, a table of a known shape, a spec object) is the component's to
    check, in its own words: it is declared as ``Any`` here.

    >>> exact(int | None) == (Integer | None), exact(dict[str, int])
    (True, typing.Any)
    """
    if annotation in _EXACT:
        return _EXACT[annotation]
    if annotation in (str, type(None)):
        return annotation
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        if any(meta in EXACT_CHECKS for meta in annotation.__metadata__):
            return annotation  # already exact
        inner = exact(args[0])
        return Any if inner is Any else Annotated[(inner, *annotation.__metadata__)]
    if origin is typing.Literal:
        return annotation
    if origin is Callable:  # a function (e.g. a source of public rows): the component's to check
        return Any
    inner = tuple(a if a is Ellipsis else exact(a) for a in args)
    if Any in inner:
        return Any
    if origin in (Union, types.UnionType):
        return Union[inner]  # noqa: UP007 - built from a tuple
    if origin in (tuple, list):
        return origin[inner]
    return Any


def parameter_model(
    factory: Callable[..., Any], replace: Mapping[str, Any] | None = None
) -> type[BaseModel]:
    """The pydantic model of ``factory``'s declaration; ``replace`` gives other types for some
    parameters (an experiment file gives a learner parameter as a table, for example)."""
    replace = dict(replace or {})
    key = (_target(factory), frozenset(replace.items()))
    model = _MODELS.get(key)
    if model is None:
        hints = parameter_hints(factory)
        fields: dict[str, Any] = {}
        for p in _declared_parameters(factory):
            annotation = replace[p.name] if p.name in replace else exact(hints[p.name])
            fields[p.name] = (annotation, ... if p.default is p.empty else p.default)
        config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
        name = getattr(factory, "__qualname__", "component").replace(".", "_")
        model = _MODELS[key] = create_model(name, __config__=config, **fields)
    return model


def error_message(detail: Mapping[str, Any]) -> str:
    """One pydantic error as a sentence: what was expected and what was given."""
    kind, message = detail["type"], detail["msg"]
    if kind == "extra_forbidden":
        return "unknown parameter"
    if kind == "missing":
        return "required, not given"
    if kind == "value_error":
        return message.removeprefix("Value error, ")
    if kind in _BOUNDS:
        sign, key = _BOUNDS[kind]
        return f"must be {sign} {(detail.get('ctx') or {}).get(key)}, got {detail.get('input')!r}"
    if message.startswith("Input should be"):
        message = "must be" + message.removeprefix("Input should be")
    if "input" in detail:
        message += f", got {detail['input']!r}"
    return message[0].lower() + message[1:]


def first_error(error: ValidationError, where: str = "") -> ParameterError:
    """The first error of ``error`` as a :class:`ParameterError` under the key path ``where``."""
    detail = error.errors()[0]
    path = where
    for part in detail["loc"]:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return ParameterError(path, error_message(detail))


def check_parameters(
    factory: Callable[..., Any],
    params: Mapping[str, Any],
    where: str = "",
    replace: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``params`` checked against ``factory``'s declaration: the values as the constructor
    gets them (numpy scalars as Python numbers, lists as declared tuples). Builds nothing."""
    model = parameter_model(factory, replace)
    try:
        validated = model.model_validate(dict(params))
    except ValidationError as error:
        raise first_error(error, where) from None
    return {name: getattr(validated, name) for name in params}


def declared(factory: F) -> F:
    """Check every call of ``factory`` (a function, or a class's ``__init__``) against its
    declaration before the body runs; a class is changed in place and returned.

    Parameters beyond the declared ones (``*args``, ``**kwargs``) pass through unchecked. A
    class from another library (a River detector) is left as it is: it checks its own.
    """
    if isinstance(factory, type):
        if not factory.__module__.startswith("adaptloop"):
            return factory
        init = factory.__dict__.get("__init__")
        if init is not None and not getattr(init, "__declared__", False):
            factory.__init__ = _checked(init, factory)  # type: ignore[misc]
        return factory
    if getattr(factory, "__declared__", False):
        return factory
    return _checked(factory, factory)  # type: ignore[return-value]


def _checked(function: Callable[..., Any], owner: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(function)
    names = {p.name for p in _declared_parameters(owner)}
    is_method = isinstance(owner, type)

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        given = {k: v for k, v in bound.arguments.items() if k in names}
        where = type(args[0]).__name__ if is_method else owner.__name__
        bound.arguments.update(check_parameters(owner, given, where))
        return function(*bound.args, **bound.kwargs)

    wrapper.__declared__ = True  # type: ignore[attr-defined]
    return wrapper


def describe_annotation(annotation: Any) -> str:
    """A declaration as people read it: ``int >= 1``, ``float in [0, 1]``, ``str | None``.

    >>> from adaptloop.validation import Fraction
    >>> describe_annotation(Fraction), describe_annotation(int | None)
    ('float in [0, 1]', 'int | None')
    """
    if annotation is Any or annotation is inspect.Parameter.empty:
        return ""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        base = describe_annotation(args[0])
        bounds = {}
        for meta in annotation.__metadata__:
            for field, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
                if isinstance(meta, getattr(at, field.capitalize())):
                    bounds[sign] = getattr(meta, field)
        if set(bounds) in ({">=", "<="}, {">", "<="}, {">=", "<"}, {">", "<"}):
            low = "[" if ">=" in bounds else "("
            high = "]" if "<=" in bounds else ")"
            lower, upper = bounds.get(">=", bounds.get(">")), bounds.get("<=", bounds.get("<"))
            return f"{base} in {low}{lower}, {upper}{high}"
        return " ".join([base, *(f"{sign} {value}" for sign, value in bounds.items())])
    if origin in (Union, types.UnionType):
        return " | ".join(describe_annotation(a) or "None" for a in args)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin is not None and args:
        inner = ", ".join("..." if a is Ellipsis else describe_annotation(a) or "Any" for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation).replace("typing.", ""))
