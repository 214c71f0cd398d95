"""Build the parts of a parsed experiment: streams, task sequences, learners, and a federated
experiment's federation, rules and engine. Nothing here runs anything.

``seed`` (the experiment's), ``n_classes``, ``feature_names`` and ``categorical`` (the
stream's) are filled in where a component declares them and the file does not set them, in
nested learners (``base``) too; in a federated experiment, ``public`` (rows of its stream no
client holds: :class:`~adaptloop.distributed.data.PublicSamples`, one part for the learner,
another for the rules, so a frozen body and a rule's validation sample never share a row). A
component that
cannot be built (a missing data file, a constructor's own check) raises
:class:`~adaptloop.config.schema.ExperimentError` naming its key path.

>>> from adaptloop.config.schema import load_experiment
>>> exp = load_experiment()  # its adwin_reset: base = { kind = "logistic" }, seed 7
>>> stream = build_stream(exp)
>>> learner = build_learners(exp, stream.info)["adwin_reset"]
>>> type(learner).__name__, learner.base.n_classes, learner.base.seed
('DriftReset', 2, 7)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from adaptloop import learners, streams
from adaptloop.config.schema import (
    ContinualExperiment,
    Experiment,
    ExperimentError,
    ExperimentFile,
    FederatedExperiment,
    accepts,
    component_spec,
)
from adaptloop.distributed.attacks import Attack
from adaptloop.distributed.data import FederatedData, make_federated_data
from adaptloop.distributed.federation import Federation
from adaptloop.distributed.local import LocalEngine
from adaptloop.distributed.participation import Participation
from adaptloop.distributed.ray_engine import RayEngine
from adaptloop.distributed.rules import AggregationRule
from adaptloop.distributed.rules import registry as rules
from adaptloop.distributed.run import Engine
from adaptloop.learners.base import Learner
from adaptloop.parameters import ParameterError, parameter_hints
from adaptloop.registry import Registry
from adaptloop.streams import tasks
from adaptloop.streams.base import StreamInfo


def build_component(registry: Registry, spec: object, where: str, fill: dict[str, Any]) -> Any:
    """The component ``spec`` names (a name or ``{kind = ..., ...}``); its learner-valued
    parameters are built the same way; ``fill`` gives values for the parameters it declares
    and ``spec`` does not set. Errors name ``where``."""
    kind, params = component_spec(registry, spec, where)
    hints = parameter_hints(registry.get(kind))
    for name, value in params.items():
        if accepts(hints[name], Learner):
            params[name] = build_component(learners.registry, value, f"{where}.{name}", fill)
    for name, value in fill.items():
        # the stream's feature names go to components that take columns by name
        if name in hints and (name != "feature_names" or "categorical" in hints):
            params.setdefault(name, value)
    try:
        return registry.create(kind, **params)
    except (ValueError, TypeError, OSError) as error:  # a constructor's own check, a file
        raise ParameterError(where, str(error)) from None


@contextmanager
def _named(experiment: ExperimentFile, where: str = "") -> Iterator[None]:
    """Errors inside as :class:`ExperimentError`, naming the file and ``where`` (the parts
    built by :func:`build_component` name themselves)."""
    try:
        yield
    except ExperimentError:
        raise
    except (ValueError, TypeError, OSError) as error:
        at = f"{where}: " if where else ""
        raise ExperimentError(f"{experiment.origin}: {at}{error}") from None


def build_stream(experiment: Experiment) -> streams.Stream:
    """The experiment's stream (its ``batch_size`` and ``max_samples`` are evaluation settings)."""
    with _named(experiment):
        fill = {"seed": experiment.seed}
        return build_component(streams.registry, experiment.stream.spec(), "stream", fill)


def build_tasks(
    experiment: ContinualExperiment, index: int = 0, seed: int | None = None
) -> tasks.TaskSequence:
    """The experiment's ``index``-th task sequence, named by its ``name`` if set, built with
    ``seed`` (default: the experiment's) unless it sets its own (``batch_size`` and ``epochs``
    are training settings)."""
    section = experiment.tasks[index]
    fill = {"seed": experiment.seed if seed is None else seed}
    with _named(experiment):
        where = experiment.tasks_where(index)
        sequence = build_component(tasks.registry, section.spec(), where, fill)
    return sequence if section.name is None else dataclasses.replace(sequence, name=section.name)


def build_all_tasks(
    experiment: ContinualExperiment, seed: int | None = None
) -> list[tasks.TaskSequence]:
    """Every task sequence of the experiment (see :func:`build_tasks`); their names must differ."""
    sequences: list[tasks.TaskSequence] = []
    for index in range(len(experiment.tasks)):
        sequence = build_tasks(experiment, index, seed)
        if any(s.name == sequence.name for s in sequences):
            raise ExperimentError(
                f"{experiment.origin}: {experiment.tasks_where(index)}: a second sequence named "
                f"{sequence.name!r}; give it another 'name'"
            )
        sequences.append(sequence)
    return sequences


def _learner(
    experiment: ExperimentFile,
    spec: object,
    where: str,
    info: StreamInfo,
    fill: dict[str, Any] | None = None,
) -> Learner:
    fill = {"seed": experiment.seed, **(fill or {})}
    if info.n_classes is not None:
        fill["n_classes"] = info.n_classes
    # learners that take columns by name (pipelines, the CTR model) read them from the stream
    fill["feature_names"] = info.feature_names
    fill["categorical"] = info.categorical
    with _named(experiment):
        return build_component(learners.registry, spec, where, fill)


def build_learner(
    experiment: Experiment | ContinualExperiment, name: str, info: StreamInfo
) -> Learner:
    """The learner ``learners.<name>``, with ``n_classes`` and ``seed`` filled in when unset."""
    return _learner(experiment, experiment.learners[name].spec(), f"learners.{name}", info)


def build_learners(
    experiment: Experiment | ContinualExperiment, info: StreamInfo
) -> dict[str, Learner]:
    """Every learner of the experiment, by name (see :func:`build_learner`)."""
    return {name: build_learner(experiment, name, info) for name in experiment.learners}


# -- federated experiments -----------------------------------------------------------------------
def build_data(experiment: FederatedExperiment) -> FederatedData:
    """The client shards: ``[stream]``'s generator, ``[federation]``'s data settings."""
    stream = experiment.stream
    with _named(experiment, "federation"):
        return make_federated_data(
            stream.kind,
            stream.concepts,
            seed=experiment.seed,
            **experiment.federation.arguments(make_federated_data),
            **stream.params,
        )


def _public(data: FederatedData, user: Literal["learner", "rules"]) -> dict[str, Any]:
    """``public`` for ``user``: its own part of the public rows (none without them)."""
    part = data.public_part(user)
    return {} if part is None else {"public": part}


def build_federation(experiment: FederatedExperiment) -> Federation:
    """Shards, learner, speeds and clock settings of the experiment."""
    data = build_data(experiment)
    spec, where = experiment.federation.learner, "federation.learner"
    learner = _learner(experiment, spec, where, data.info, _public(data, "learner"))
    settings = experiment.federation.arguments(Federation)
    with _named(experiment, "attack"):
        attack = Attack(**experiment.attack.arguments(Attack))
        attack.byzantine(data.n_clients, experiment.seed)  # listed clients must exist
    with _named(experiment, "participation"):
        participation = Participation(**experiment.participation.arguments(Participation))
        participation.draw(data.n_clients)  # as many probabilities as clients
    with _named(experiment, "federation"):  # the learner's state and share / local patterns
        return Federation(
            **{**settings, "data": data, "learner": learner, "seed": experiment.seed},
            attack=attack,
            participation=participation,
        )


def build_rules(
    experiment: FederatedExperiment, data: FederatedData | None = None
) -> dict[str, AggregationRule]:
    """One fresh rule per ``[rules.NAME]`` section; ``data``: the federation's (default: drawn
    again), whose public rows a rule may take (Bristle's ``validation_samples``)."""
    public = _public(build_data(experiment) if data is None else data, "rules")
    with _named(experiment):
        return {
            name: build_component(rules, table.spec(), f"rules.{name}", public)
            for name, table in experiment.rules.items()
        }


def build_engine(experiment: FederatedExperiment) -> Engine:
    """The ``[engine]``: the in-process engine, or Ray's (started or joined now; close it)."""
    section = experiment.engine
    if section.kind == "local":
        return LocalEngine()
    with _named(experiment, "engine"):
        return RayEngine(**section.arguments(RayEngine))
