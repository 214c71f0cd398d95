"""Experiment files: what they may say, checked without building anything.

A file is one of four kinds, told apart by its sections (:func:`experiment_kind`): a
``[federation]`` section makes a :class:`FederatedExperiment`, ``[tasks]`` (or ``[[tasks]]``) a
:class:`ContinualExperiment`, ``[graph]`` a :class:`GraphExperiment`, anything else a
prequential :class:`Experiment`. Each section's own
settings (``batch_size``, ``[evaluation]``, ...) are typed with :mod:`adaptloop.validation`'s exact
types; the federation's settings are read from their one declaration (``Federation`` and
``make_federated_data``). Component tables (``[stream]``, ``[learners.*]``, ``[[tasks]]``,
``[rules.*]``, a learner's ``base``, ``detector``, ``plugins``, ``schedule``, ``optimizer``) are
checked against the registered factory's own declaration
(:func:`adaptloop.parameters.check_parameters`), recursively, without building the component: a
refused value names its key path in one line, with the words the constructor uses
(:class:`ExperimentError`).

>>> exp = parse_experiment('''
... [stream]
... kind = "sea"
... [learners.w]
... kind = "window_retrain"
... base = { kind = "logistic" }
... window = "2000"
... ''', "sea.toml")
Traceback (most recent call last):
...
adaptloop.config.schema.ExperimentError: sea.toml: learners.w.window: must be an integer, got '2000'
"""

from __future__ import annotations

import inspect
import os
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from annotated_types import Gt, Le, MinLen
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from adaptloop import features, learners, streams
from adaptloop.distributed.attacks import Attack
from adaptloop.distributed.data import make_federated_data
from adaptloop.distributed.federation import Federation
from adaptloop.distributed.participation import Participation
from adaptloop.distributed.ray_engine import RayEngine
from adaptloop.distributed.rules import registry as rules
from adaptloop.evaluation.graphs import graph_prequential
from adaptloop.evaluation.prequential import prequential
from adaptloop.learners.base import Learner
from adaptloop.learners.continual.plugin import PluginSpec, plugins
from adaptloop.learners.detectors import DetectorSpec, detectors
from adaptloop.learners.optim.optimizers import OptimizerLike, make_optimizer
from adaptloop.learners.optim.schedules import ScheduleLike, make_schedule
from adaptloop.parameters import (
    ParameterError,
    check_parameters,
    first_error,
    parameter_hints,
    parameter_model,
)
from adaptloop.registry import Registry
from adaptloop.results.metrics import METRICS
from adaptloop.streams import tasks
from adaptloop.streams.graphs import GraphStream
from adaptloop.validation import Count, NonNegativeReal, PositiveReal, Real, Seed, did_you_mean

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DEFAULT_EXPERIMENT = "default.toml"
"""The built-in experiment (package data in ``adaptloop/experiments/``)."""


class ExperimentError(ValueError):
    """An experiment file that cannot be run; the message is one line,
    ``origin: key.path: what is wrong``."""


# -- component tables ----------------------------------------------------------------------------
def component_spec(registry: Registry, spec: object, where: str) -> tuple[str, dict[str, Any]]:
    """The ``kind`` and the parameters of ``spec``: a registered name or a table
    ``{kind = name, ...parameters}``; anything else, or an unknown name, is refused at ``where``.

    >>> component_spec(learners.registry, {"kind": "logistic", "lr": 0.1}, "learners.lr")
    ('logistic', {'lr': 0.1})
    """
    if isinstance(spec, str):
        kind, params = spec, {}
    elif isinstance(spec, Mapping) and isinstance(spec.get("kind"), str):
        kind, params = spec["kind"], {k: v for k, v in spec.items() if k != "kind"}
    else:
        raise ParameterError(
            where, f"must be a {registry.kind} name or a table with a 'kind', got {spec!r}"
        )
    if kind not in registry:
        hint = did_you_mean(kind, registry.names()) or f"; known: {', '.join(registry.names())}"
        raise ParameterError(f"{where}.kind", f"unknown {registry.kind} {kind!r}{hint}")
    return kind, params


def check_component(registry: Registry, spec: object, where: str) -> None:
    """Check ``spec`` (see :func:`component_spec`) against the factory's declaration, and the
    values that are themselves components (:data:`NESTED`) against theirs. Builds nothing.

    >>> check_component(learners.registry, {"kind": "drift_reset", "base": "logistic",
    ...                 "detector": {"kind": "adwin", "delat": 0.1}}, "learners.reset")
    ... # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    adaptloop.parameters.ParameterError: learners.reset.detector.delat: unknown parameter;
    did you mean 'delta'?
    """
    kind, params = component_spec(registry, spec, where)
    factory = registry.get(kind)
    try:
        check_parameters(factory, params, where)
    except ParameterError as error:
        if error.reason != "unknown parameter":
            raise
        name = error.path.rpartition(".")[2]
        raise ParameterError(
            error.path, error.reason + did_you_mean(name, registry.parameter_names(kind))
        ) from None
    hints = parameter_hints(factory)
    for name, value in params.items():
        check_nested(hints[name], value, f"{where}.{name}")


def _resolved_by(make: Callable[[Any], object]) -> Callable[[Any, str], None]:
    def check(value: object, where: str) -> None:
        try:
            make(value)
        except ValueError as error:
            raise ParameterError(where, str(error)) from None

    return check


NESTED: list[tuple[Any, Callable[[Any, str], None]]] = [
    (Learner, lambda spec, where: check_component(learners.registry, spec, where)),
    (DetectorSpec, lambda spec, where: check_component(detectors, spec, where)),
    (features.EncoderSpec, lambda spec, where: check_component(features.registry, spec, where)),
    (PluginSpec, lambda spec, where: check_component(plugins, spec, where)),
    (ScheduleLike, _resolved_by(make_schedule)),
    (OptimizerLike, _resolved_by(make_optimizer)),
]
"""Parameters whose value is itself a component, known by their declared type: a learner (a
wrapper's ``base``), a drift detector, a continual-learning plugin, a learning-rate schedule, an
optimiser; and how a file's
value for them is checked. A parameter declared as a list of one of these types is checked item
by item (``plugins = [{kind = ...}, ...]``)."""


def _members(annotation: Any) -> set[Any]:
    """The types a declaration accepts: the members of its unions, without ``Annotated``."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return set().union(*(_members(a) for a in typing.get_args(annotation)))
    return {annotation}


def accepts(annotation: Any, kind: Any) -> bool:
    """Whether a parameter declared as ``annotation`` takes the values ``kind`` names.

    >>> accepts(Learner | None, Learner), accepts(int, Learner)
    (True, False)
    """
    return _members(kind) <= _members(annotation)


def check_nested(annotation: Any, value: object, where: str) -> None:
    """Check ``value`` if the declaration ``annotation`` makes it a component (:data:`NESTED`)."""
    for kind, check in NESTED:
        if accepts(annotation, kind):
            check(value, where)
            return
    items = typing.get_args(annotation)
    if (
        typing.get_origin(annotation) in (list, tuple, Sequence)
        and items
        and isinstance(value, list)
    ):
        for index, entry in enumerate(value):
            check_nested(items[0], entry, f"{where}[{index}]")


def declared_fields(
    factory: Callable[..., Any], *skip: str, only: Sequence[str] | None = None
) -> dict[str, Any]:
    """The parameters of ``factory``'s declaration (but ``skip``; or ``only`` those named) as
    pydantic fields: a section of an experiment file that sets them reads their types, bounds
    and defaults from there."""
    names = [n for n in inspect.signature(factory).parameters if n != "self"]
    unwanted = {n for n in names if n in skip or (only is not None and n not in only)}
    fields = parameter_model(factory, dict.fromkeys(unwanted, Any)).model_fields
    return {name: (f.annotation, f) for name, f in fields.items() if name not in unwanted}


# -- sections ------------------------------------------------------------------------------------
class _Settings(BaseModel):
    def arguments(self, factory: Callable[..., Any]) -> dict[str, Any]:
        """The settings of this section that ``factory`` declares, by name."""
        declared = inspect.signature(factory).parameters
        return {name: getattr(self, name) for name in type(self).model_fields if name in declared}


class Section(_Settings):
    """A section with fixed keys: an unknown one is refused."""

    model_config = ConfigDict(extra="forbid")


class Table(_Settings):
    """A component table: ``kind`` names a registered component, the other keys (but the
    section's own settings) are its parameters."""

    model_config = ConfigDict(extra="allow")
    kind: str

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def spec(self) -> dict[str, Any]:
        """The component as ``{"kind": ..., **parameters}``."""
        return {"kind": self.kind, **self.params}


class LearnerTable(Table):
    """A ``[learners.NAME]`` table; a ``steps`` list of encoders puts them in front of the
    learner (a :class:`~adaptloop.features.Pipeline` of the other keys' learner)."""

    def spec(self) -> dict[str, Any]:
        params = self.params
        steps = params.pop("steps", None)
        learner = {"kind": self.kind, **params}
        return (
            learner if steps is None else {"kind": "pipeline", "steps": steps, "learner": learner}
        )


StreamSection = create_model(
    "StreamSection",
    __base__=Table,
    __doc__="``[stream]``: the stream, and how it is read (speed only: ``batch_size``; a cap: "
    "``max_samples``; when labels arrive: ``delay``, ``timestamp``), as "
    ":func:`~adaptloop.evaluation.prequential.prequential` declares them.",
    **declared_fields(prequential, only=("batch_size", "delay", "timestamp", "max_samples")),
)


class EvaluationSection(Section):
    """``[evaluation]`` of a prequential experiment (see
    :func:`adaptloop.evaluation.prequential.prequential`)."""

    metrics: list[str] | None = None
    window: Count = 1000

    @field_validator("metrics")
    @classmethod
    def _known(cls, metrics: list[str] | None) -> list[str] | None:
        for name in metrics or ():
            if name not in METRICS:
                hint = did_you_mean(name, METRICS) or f"; choose from {', '.join(METRICS)}"
                raise ValueError(f"unknown metric {name!r}{hint}")
        return metrics

    record_every: Count | None = None
    after: Count = 1000
    tolerance: NonNegativeReal = 0.02
    slots: Count | None = None


class TasksSection(Table):
    """One ``[[tasks]]`` table: a task sequence, its ``name`` (default: the sequence's own) and
    its training settings."""

    name: str | None = None
    batch_size: Count = 16
    epochs: Count = 1


class ContinualEvaluationSection(Section):
    """``[evaluation]`` of a continual experiment (see
    :func:`adaptloop.evaluation.continual.continual_evaluation`); ``seeds``: every sequence is run
    with each (default: the top-level ``seed``)."""

    seeds: Annotated[list[Seed], MinLen(1)] | None = None
    eval_every: Count = 1
    eval_subsample: Count | None = None
    windows: list[Count] = [10, 100]
    gap_within: Count = 50
    gap_recover: Annotated[Real, Gt(0), Le(1)] = 0.95

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, seeds: list[int] | None) -> list[int] | None:
        if seeds is not None and len(set(seeds)) != len(seeds):
            raise ValueError(f"repeated seed in {seeds}")
        return seeds


FederatedStreamSection = create_model(
    "FederatedStreamSection",
    __base__=Table,
    __doc__="``[stream]`` of a federated experiment: the generator the client shards are drawn "
    "from, its ``concepts`` in time order (as "
    ":func:`~adaptloop.distributed.data.make_federated_data` declares them).",
    concepts=declared_fields(make_federated_data)["concepts"],
)

SET_BY_THE_FEDERATION = ("n", "seed", "drifts")
"""Generator parameters a federated ``[stream]`` may not set: the federation sets them
(``samples_per_client``, ``seed``, ``drift_at``)."""

FederationSection = create_model(
    "FederationSection",
    __base__=Section,
    __doc__="``[federation]``: the clients' data (the settings of "
    ":func:`~adaptloop.distributed.data.make_federated_data`), the clock and speeds (those of "
    ":class:`~adaptloop.distributed.federation.Federation`) and the ``learner`` every client "
    "runs.",
    learner=(dict[str, Any], {"kind": "logistic"}),
    **declared_fields(make_federated_data, "kind", "concepts", "seed"),
    **declared_fields(Federation, "data", "learner", "seed", "faults", "attack", "participation"),
)

AttackSection = create_model(
    "AttackSection",
    __base__=Section,
    __doc__="``[attack]`` of a federated experiment: Byzantine clients and noisy links (the "
    "settings of :class:`~adaptloop.distributed.attacks.Attack`).",
    **declared_fields(Attack),
)

ParticipationSection = create_model(
    "ParticipationSection",
    __base__=Section,
    __doc__="``[participation]`` of a federated experiment: which clients are available in "
    "each round (the settings of "
    ":class:`~adaptloop.distributed.participation.Participation`).",
    **declared_fields(Participation),
)

EngineSection = create_model(
    "EngineSection",
    __base__=Section,
    __doc__="``[engine]``: ``local`` (simulated clock) or ``ray``, with the settings of "
    ":class:`~adaptloop.distributed.ray_engine.RayEngine`.",
    kind=(Literal["local", "ray"], "local"),
    **declared_fields(RayEngine),
)


class FederatedEvaluationSection(Section):
    """``[evaluation]`` of a federated experiment, in time units (see
    :func:`adaptloop.distributed.run.run_federation`)."""

    target: Annotated[Real, Gt(0), Le(1)] | None = None
    window: PositiveReal = 50.0
    after: PositiveReal = 50.0
    tolerance: NonNegativeReal = 0.02


# -- the kinds of files --------------------------------------------------------------------
class ExperimentFile(Section):
    """What every kind of experiment file has: a ``name``, a ``seed``, and where it came from
    (``source``: the TOML text as read; ``origin``: the file, for messages)."""

    name: str = "experiment"
    seed: Seed = 0
    grid: dict[str, Any] = Field(default_factory=dict)
    source: str = Field("", exclude=True)
    origin: str = Field("experiment", exclude=True)

    @field_validator("grid")
    @classmethod
    def _dotted(cls, grid: dict[str, Any]) -> dict[str, Any]:
        return flat_grid(grid)

    def components(self) -> Iterator[tuple[Registry, object, str]]:
        """Every component table of the file: its registry, the table and its key path."""
        return iter(())


def _learner_tables(tables: Mapping[str, LearnerTable]) -> Iterator[tuple[Registry, object, str]]:
    for name, table in tables.items():
        yield learners.registry, table.spec(), f"learners.{name}"


class Experiment(ExperimentFile):
    """A prequential experiment: ``[stream]``, ``[learners.*]``, ``[evaluation]``."""

    stream: StreamSection  # type: ignore[valid-type]
    learners: dict[str, LearnerTable] = Field(min_length=1)
    evaluation: EvaluationSection = EvaluationSection()

    @property
    def seeds(self) -> list[int]:
        """The seeds it runs with: its ``[grid]``'s ``seed`` values, else its ``seed``."""
        return list(self.grid.get("seed") or [self.seed])

    def components(self) -> Iterator[tuple[Registry, object, str]]:
        yield streams.registry, self.stream.spec(), "stream"
        yield from _learner_tables(self.learners)


class ContinualExperiment(ExperimentFile):
    """A continual-learning experiment: ``[tasks]`` (a task sequence) instead of ``[stream]``,
    evaluated by :func:`adaptloop.evaluation.continual.continual_evaluation`.

    Several sequences are ``[[tasks]]`` tables (each may set ``name``, default: the
    sequence's own, and its ``batch_size`` / ``epochs``); ``[evaluation] seeds = [0, 1, 2]``
    runs each sequence with every seed (default: the top-level ``seed``), learners built afresh
    for every run."""

    tasks: list[TasksSection] = Field(min_length=1)
    learners: dict[str, LearnerTable] = Field(min_length=1)
    evaluation: ContinualEvaluationSection = ContinualEvaluationSection()

    @field_validator("tasks", mode="before")
    @classmethod
    def _one_table_is_a_list_of_one(cls, value: object) -> object:
        return [value] if isinstance(value, dict) else value

    @property
    def seeds(self) -> list[int]:
        """The seeds each sequence is run with."""
        return list(self.evaluation.seeds or [self.seed])

    def tasks_where(self, index: int) -> str:
        """The key path of the ``index``-th task sequence."""
        return "tasks" if len(self.tasks) == 1 else f"tasks[{index}]"

    def components(self) -> Iterator[tuple[Registry, object, str]]:
        named: dict[str, int] = {}
        for index, section in enumerate(self.tasks):
            if section.name is not None and named.setdefault(section.name, index) != index:
                raise ParameterError(
                    f"{self.tasks_where(index)}.name",
                    f"a second sequence named {section.name!r}; give it another 'name'",
                )
            yield tasks.registry, section.spec(), self.tasks_where(index)
        yield from _learner_tables(self.learners)


class FederatedExperiment(ExperimentFile):
    """A federated experiment: ``[stream]`` (the generator the client shards are drawn from),
    ``[federation]`` (clients, data, speeds, clock, the ``learner`` and which parts of its state
    clients ``share`` or keep ``local``), ``[engine]``, ``[attack]`` (Byzantine clients, noisy
    links), ``[participation]`` (which clients are available in each round), ``[rules.*]`` (one
    aggregation rule
    each: each is one curve of the results) and ``[evaluation]`` (the ``target`` accuracy and
    the drift-segment settings, in time units)."""

    name: str = "federated"
    stream: FederatedStreamSection  # type: ignore[valid-type]
    federation: FederationSection = FederationSection()  # type: ignore[valid-type]
    engine: EngineSection = EngineSection()  # type: ignore[valid-type]
    attack: AttackSection = AttackSection()  # type: ignore[valid-type]
    participation: ParticipationSection = ParticipationSection()  # type: ignore[valid-type]
    rules: dict[str, Table] = Field(min_length=1)
    evaluation: FederatedEvaluationSection = FederatedEvaluationSection()

    @property
    def learners(self) -> dict[str, Table]:
        """The rules: each is one curve ("learner") of the results."""
        return self.rules

    def components(self) -> Iterator[tuple[Registry, object, str]]:
        for key in SET_BY_THE_FEDERATION:
            if key in self.stream.params:
                raise ParameterError(
                    f"stream.{key}",
                    "set by the federation (samples_per_client, seed, drift_at); remove it",
                )
        yield streams.registry, {**self.stream.spec(), "concepts": self.stream.concepts}, "stream"
        yield learners.registry, self.federation.learner, "federation.learner"
        for name, table in self.rules.items():
            yield rules, table.spec(), f"rules.{name}"


GraphSection = create_model(
    "GraphSection",
    __base__=Section,
    __doc__="``[graph]``: evaluate snapshot by snapshot (the settings of "
    ":func:`~adaptloop.evaluation.graphs.graph_prequential`, in snapshots).",
    **declared_fields(
        graph_prequential, only=("window", "after", "tolerance", "max_snapshots", "max_edges")
    ),
)


def is_graph_stream(kind: str) -> bool:
    """Whether the registered stream ``kind`` is a stream of graph snapshots (a
    :class:`~adaptloop.streams.graphs.GraphStream`, what a ``[graph]`` experiment takes).

    >>> is_graph_stream("linkload_graph"), is_graph_stream("linkload")
    (True, False)
    """
    made = streams.registry.get(kind)
    return isinstance(made, type) and issubclass(made, GraphStream)


class GraphExperiment(ExperimentFile):
    """A graph experiment: ``[stream]`` (a graph stream, :func:`is_graph_stream`),
    ``[learners.*]`` and ``[graph]`` (its settings, possibly none): every snapshot is
    predicted, scored, then learned by every learner
    (:func:`~adaptloop.evaluation.graphs.graph_prequential`); the report adds how the graph
    drifts (TEA, TET, measures over time)."""

    stream: Table
    learners: dict[str, LearnerTable] = Field(min_length=1)
    graph: GraphSection = GraphSection()  # type: ignore[valid-type]

    def components(self) -> Iterator[tuple[Registry, object, str]]:
        kind = self.stream.kind
        if kind in streams.registry and not is_graph_stream(kind):
            raise ParameterError(
                "stream.kind",
                f"{kind!r} is not a graph stream; a [graph] experiment takes one of "
                + ", ".join(n for n in streams.registry.names() if is_graph_stream(n)),
            )
        yield streams.registry, self.stream.spec(), "stream"
        yield from _learner_tables(self.learners)


AnyExperiment = Experiment | ContinualExperiment | FederatedExperiment | GraphExperiment

KINDS: tuple[tuple[str, type[ExperimentFile]], ...] = (
    ("federation", FederatedExperiment),
    ("tasks", ContinualExperiment),
    ("graph", GraphExperiment),
)
"""The section that makes a file of each kind other than prequential."""


def experiment_kind(data: Mapping[str, Any]) -> type[ExperimentFile]:
    """The kind of an experiment file, told by its sections.

    >>> experiment_kind({"tasks": {}}).__name__, experiment_kind({"stream": {}}).__name__
    ('ContinualExperiment', 'Experiment')
    """
    return next((kind for section, kind in KINDS if section in data), Experiment)


# -- grids -------------------------------------------------------------------------------------
def flat_grid(grid: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A ``[grid]`` table by dotted key path: ``stream.noise = [...]`` (a TOML dotted key, a
    nested table) and ``"stream.noise" = [...]`` (one quoted key) name the same path.

    >>> flat_grid({"seed": [1, 2], "stream": {"noise": [0.0]}, "learners.lr.lr": [0.1]})
    {'seed': [1, 2], 'stream.noise': [0.0], 'learners.lr.lr': [0.1]}
    """
    flat: dict[str, Any] = {}
    for key, value in grid.items():
        path = f"{prefix}{key}"
        inner = flat_grid(value, f"{path}.") if isinstance(value, Mapping) else {path: value}
        for name, values in inner.items():
            if name in flat:
                raise ValueError(f"{name}: given twice")
            flat[name] = values
    return flat


GRID_ROOTS: dict[type[ExperimentFile], tuple[str, ...]] = {
    Experiment: ("seed", "stream", "learners"),
    ContinualExperiment: ("tasks", "learners"),
}
"""What a ``[grid]`` may vary in each kind of file: the top-level ``seed``, parameters of the
data (``stream.*``, ``tasks.*``) and of the learners (``learners.NAME.*``, nested ones too:
``learners.NAME.base.lr``)."""


def _grid_path(experiment: ExperimentFile, key: str) -> list[str]:
    """``key`` split into its parts, refused (naming ``grid.KEY``) unless it names a
    parameter the grid may vary in this file."""
    parts = key.split(".")
    roots = GRID_ROOTS.get(type(experiment))
    where = f"grid.{key}"
    if isinstance(experiment, FederatedExperiment):
        raise ParameterError("grid", "a federated experiment has no grid (its runs are its rules)")
    if roots is None:
        raise ParameterError("grid", f"a {type(experiment).__name__} has no grid")
    if parts[0] == "seed" and isinstance(experiment, ContinualExperiment):
        raise ParameterError(where, "a continual experiment runs its [evaluation] seeds = [...]")
    if parts[0] not in roots or (parts[0] == "seed") != (len(parts) == 1):
        choices = ", ".join(r if r == "seed" else f"{r}.*" for r in roots)
        raise ParameterError(where, f"a grid varies {choices}; got {key!r}")
    if parts[0] == "learners":
        names = list(experiment.learners)  # type: ignore[attr-defined]
        if len(parts) < 3:
            raise ParameterError(where, "name a learner's parameter: learners.NAME.PARAMETER")
        if parts[1] not in names:
            hint = did_you_mean(parts[1], names) or f"; the file's: {', '.join(names)}"
            raise ParameterError(where, f"no learner {parts[1]!r}{hint}")
    if parts[0] == "tasks" and len(experiment.tasks) > 1:  # type: ignore[attr-defined]
        raise ParameterError(where, "a grid over tasks.* needs a single [tasks] table")
    if parts[0] in ("stream", "tasks") and len(parts) < 2:
        raise ParameterError(where, f"name a parameter: {parts[0]}.PARAMETER")
    return parts


def _put(data: dict[str, Any], parts: list[str], value: object, key: str) -> None:
    """Set ``value`` at ``parts`` in an experiment's data (a component given by its name
    becomes a table, so that its parameters can be set; ``tasks`` is its single table)."""
    node: Any = data
    for depth, part in enumerate(parts[:-1]):
        inner = node.get(part)
        if isinstance(inner, list) and len(inner) == 1:  # [[tasks]]: one table
            inner = inner[0]
        if isinstance(inner, str):
            inner = node[part] = {"kind": inner}
        if not isinstance(inner, dict):
            path = ".".join(parts[: depth + 1])
            raise ParameterError(
                f"grid.{key}", f"{path} is not a table in the file; set it to vary its parameters"
            )
        node = inner
    node[parts[-1]] = value


def grid_cells(experiment: ExperimentFile) -> list[dict[str, Any]]:
    """Every combination of the ``[grid]``'s values, by key path (the first key varies the
    slowest); one empty cell without a grid.

    >>> exp = parse_experiment('[stream]\\nkind = "sea"\\n[learners.lr]\\nkind = "logistic"\\n'
    ...                        '[grid]\\nseed = [1, 2]\\nlearners.lr.lr = [0.1, 0.5]')
    >>> [tuple(cell.values()) for cell in grid_cells(exp)]
    [(1, 0.1), (1, 0.5), (2, 0.1), (2, 0.5)]
    """
    import itertools

    keys = list(experiment.grid)
    return [
        dict(zip(keys, values, strict=True))
        for values in itertools.product(*experiment.grid.values())
    ]


def vary(experiment: AnyExperiment, values: Mapping[str, object]) -> AnyExperiment:
    """The experiment with the grid ``values`` set (key path -> value) and without its grid,
    checked as a file would be; a refused value names ``grid.KEY``.

    >>> exp = parse_experiment('[stream]\\nkind = "sea"\\n[learners.w]\\nkind = "window_retrain"'
    ...                        '\\nbase = "logistic"')
    >>> vary(exp, {"learners.w.base.lr": 0.5, "seed": 3}).learners["w"].params["base"]
    {'kind': 'logistic', 'lr': 0.5}
    >>> vary(exp, {"stream.noise": -1.0})
    Traceback (most recent call last):
    ...
    adaptloop.parameters.ParameterError: grid.stream.noise: must be >= 0, got -1.0
    """
    data = experiment.model_dump(exclude={"grid"})
    data.update(source=experiment.source, origin=experiment.origin)
    for key, value in values.items():
        _put(data, _grid_path(experiment, key), value, key)
    key = ", ".join(f"grid.{k}" for k in values)

    def refused(path: str, reason: str) -> ParameterError:
        inner = f"{path}: " if f"grid.{path}" != key else ""
        return ParameterError(key, f"{inner}{reason}")

    try:
        varied = type(experiment).model_validate(data)
    except ValidationError as error:
        first = first_error(error)
        raise refused(first.path, first.reason) from None
    try:
        for registry, table, where in varied.components():
            check_component(registry, table, where)
    except ParameterError as error:
        raise refused(error.path, error.reason) from None
    return varied  # type: ignore[return-value]


def check_grid(experiment: AnyExperiment) -> None:
    """Check every key of the ``[grid]`` and each of its values (each with the file's other
    settings); a refusal names ``grid.KEY``."""
    for key, values in experiment.grid.items():
        _grid_path(experiment, key)
        if not isinstance(values, list) or not values:
            raise ParameterError(f"grid.{key}", f"must be a list of values, got {values!r}")
        if len({repr(v) for v in values}) < len(values):
            raise ParameterError(f"grid.{key}", f"a value is repeated in {values!r}")
        for value in values:
            vary(experiment, {key: value})


# -- reading files -------------------------------------------------------------------------------
def _keys(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """The keys the section at ``loc`` (a pydantic error location below ``model``) takes."""
    for part in loc[:-1]:
        field = model.model_fields.get(str(part)) if isinstance(part, str) else None
        inner = [
            a
            for a in (field.annotation, *typing.get_args(field.annotation))
            if field
            if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        if not inner:
            return []
        model = inner[0]
    return [name for name in model.model_fields if name not in ("source", "origin")]


def _refused(
    error: ValidationError, origin: str, model: type[BaseModel] = BaseModel
) -> ExperimentError:
    refused = first_error(error)
    detail = error.errors()[0]
    if detail["type"] == "extra_forbidden":
        loc = detail["loc"]
        reason = "unknown key" + did_you_mean(loc[-1], _keys(model, loc))
    else:
        reason = refused.reason
    return ExperimentError(f"{origin}: {refused.path}: {reason}")


def parse_experiment(text: str, origin: str = "experiment") -> AnyExperiment:
    """Read an experiment from TOML text and check every section and component table; nothing
    is built (a missing data file is found when the stream is built,
    :mod:`adaptloop.config.build`).

    >>> exp = parse_experiment('seed = 1\\n[[tasks]]\\nkind = "split_digits"\\n'
    ...                        '[learners.ft]\\nkind = "finetune"\\nbase = "mlp"')
    >>> type(exp).__name__, exp.seeds
    ('ContinualExperiment', [1])
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ExperimentError(f"{origin}: not valid TOML: {error}") from None
    kind = experiment_kind(data)
    try:
        experiment = kind.model_validate({**data, "source": text, "origin": origin})
    except ValidationError as error:
        raise _refused(error, origin, kind) from None
    try:
        for registry, table, where in experiment.components():
            check_component(registry, table, where)
        check_grid(experiment)  # type: ignore[arg-type]
    except ValueError as error:
        raise ExperimentError(f"{origin}: {error}") from None
    return experiment  # type: ignore[return-value]


def load_experiment(path: str | Path | None = None) -> AnyExperiment:
    """Read an experiment file, or the built-in default when ``path`` is None.

    >>> load_experiment().stream.kind
    'sea'
    """
    if path is None:
        text = resources.files("adaptloop.experiments").joinpath(DEFAULT_EXPERIMENT).read_text()
        return parse_experiment(text, f"built-in {DEFAULT_EXPERIMENT}")
    path = Path(path)
    if not path.is_file():
        raise ExperimentError(f"experiment file not found: {path}")
    experiment = parse_experiment(path.read_text(encoding="utf-8"), str(path))
    for table in _data_tables(experiment):
        relative_to(table, path.parent)
    for key, values in experiment.grid.items():  # a grid over data files: grid."stream.path"
        root, _, name = key.partition(".")
        if root in ("stream", "tasks") and "." not in name:
            table = _data_tables(experiment)[0]
            for index, value in enumerate(values):
                extra = {**table.params, "kind": table.kind, name: value}
                varied = type(table).model_validate(extra)
                relative_to(varied, path.parent)
                values[index] = varied.params[name]
    return experiment


def _data_tables(experiment: ExperimentFile) -> list[Table]:
    """The tables of ``experiment`` that may name data files: ``[stream]``, ``[[tasks]]``."""
    if isinstance(experiment, ContinualExperiment):
        return list(experiment.tasks)
    stream = getattr(experiment, "stream", None)
    return [stream] if stream is not None else []


def relative_to(table: Table, folder: Path) -> None:
    """Resolve the relative file paths of a component table against ``folder`` (the experiment
    file's), in place: a parameter declared as ``os.PathLike``, or called ``path``.

    >>> table = StreamSection(kind="csv", path="data/x.csv", target="y")
    >>> relative_to(table, Path("/exp")); table.params["path"]
    '/exp/data/x.csv'
    """
    registry = tasks.registry if isinstance(table, TasksSection) else streams.registry
    hints = parameter_hints(registry.get(table.kind))
    extra = table.model_extra or {}
    for name, value in extra.items():
        is_path = name == "path" or accepts(hints.get(name, Any), os.PathLike)
        if is_path and isinstance(value, str) and not Path(value).expanduser().is_absolute():
            extra[name] = str(folder / value)


def with_seed(experiment: AnyExperiment, seed: int) -> AnyExperiment:
    """The same experiment with another seed (the recorded source text says so too).

    A continual experiment's ``[evaluation] seeds`` list becomes ``[seed]``, and so does a
    ``[grid]``'s ``seed`` list.

    >>> with_seed(load_experiment(), 3).seed
    3
    >>> exp = parse_experiment('[stream]\\nkind = "sea"\\n[learners.lr]\\nkind = "logistic"\\n'
    ...                        '[grid]\\nseed = [1, 2]\\nlearners.lr.lr = [0.1]\\n')
    >>> changed = with_seed(exp, 7)
    >>> changed.grid, changed.source.splitlines()[-2]
    ({'seed': [7], 'learners.lr.lr': [0.1]}, 'seed = [7]')
    """
    pattern = re.compile(r"^seed\s*=.*$", re.MULTILINE)
    header = experiment.source.split("\n[", 1)[0]
    if pattern.search(header):
        source = pattern.sub(f"seed = {seed}", experiment.source, count=1)
    else:
        source = f"seed = {seed}\n{experiment.source}"
    update: dict[str, Any] = {"seed": seed, "source": source}
    if isinstance(experiment, ContinualExperiment) and experiment.evaluation.seeds:
        seeds = re.compile(r"^seeds\s*=[^\n#]*", re.MULTILINE)
        update["source"] = seeds.sub(f"seeds = [{seed}]", source, count=1)
        update["evaluation"] = experiment.evaluation.model_copy(update={"seeds": None})
    if "seed" in experiment.grid:
        update["grid"] = {**experiment.grid, "seed": [seed]}
        section = re.search(r"^\[grid\][^\n]*\n(.*?)(?=^\[|\Z)", source, re.M | re.S)
        if section is not None:
            line = re.compile(r"^seed\s*=[^\n#]*", re.MULTILINE)
            text = line.sub(f"seed = [{seed}]", section.group(1), count=1)
            update["source"] = source[: section.start(1)] + text + source[section.end(1) :]
    return experiment.model_copy(update=update)


def with_engine(
    experiment: FederatedExperiment,
    kind: str,
    address: str | None = None,
    cpus: int | None = None,
) -> FederatedExperiment:
    """The same experiment on another engine (``adaptloop run --engine``, ``--address``,
    ``--cpus``: the CPUs of a Ray started here)."""
    if kind not in ("local", "ray"):
        raise ValueError(f"engine must be 'local' or 'ray', got {kind!r}")
    update: dict[str, Any] = {"kind": kind}
    if address is not None:
        update["address"] = address
    if cpus is not None:
        update["local_cpus"] = cpus
    return experiment.model_copy(update={"engine": experiment.engine.model_copy(update=update)})
