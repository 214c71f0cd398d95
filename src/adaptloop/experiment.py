"""Experiments as small TOML files: which stream, which learners, which evaluation.

Components are named by their registry names; their parameters are checked against the
factories' signatures and type hints, so an unknown key, a wrong type or a missing file gives
one clear line naming it (:class:`ExperimentError`). ``adaptloop run`` without a file runs
:data:`DEFAULT_EXPERIMENT`.

>>> exp = parse_experiment('''
... seed = 1
... [stream]
... kind = "sea"
... n = 2_000
... drifts = [{ at = 1_000, width = 1 }]
... batch_size = 100
... [learners.lr]
... kind = "logistic"
... ''')
>>> result = run_experiment(exp)
>>> result.summary["lr"]["n_samples"]
2000
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from adaptloop import learners as _learners
from adaptloop import streams as _streams
from adaptloop.evaluation.continual import ContinualResult, ContinualSuite, continual_evaluation
from adaptloop.evaluation.prequential import PrequentialResult, prequential
from adaptloop.learners.base import Learner
from adaptloop.registry import Registry
from adaptloop.streams import tasks as _tasks

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DEFAULT_EXPERIMENT = "default.toml"
"""The built-in experiment (package data in ``adaptloop/experiments/``)."""

LEARNER_PARAMS = ("base",)
"""Parameters whose value is itself a learner, given as a table with a ``kind``."""


class ExperimentError(ValueError):
    """An experiment file that cannot be run; the message is one line naming the problem."""


class StreamSection(BaseModel):
    model_config = ConfigDict(extra="allow")
    kind: str
    batch_size: int = Field(256, ge=1)
    max_samples: int | None = Field(None, ge=1)


class LearnerSection(BaseModel):
    model_config = ConfigDict(extra="allow")
    kind: str


class EvaluationSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metrics: list[str] | None = None
    window: int = Field(1000, ge=1)
    record_every: int | None = Field(None, ge=1)
    after: int = Field(1000, ge=1)
    tolerance: float = Field(0.02, ge=0)


class Experiment(BaseModel):
    """A validated experiment file (sections ``stream``, ``learners.*``, ``evaluation``)."""

    model_config = ConfigDict(extra="forbid")
    name: str = "experiment"
    seed: int = 0
    stream: StreamSection
    learners: dict[str, LearnerSection] = Field(min_length=1)
    evaluation: EvaluationSection = EvaluationSection()
    source: str = Field("", exclude=True, description="the TOML text as read")


class TasksSection(BaseModel):
    model_config = ConfigDict(extra="allow")
    kind: str
    name: str | None = None
    batch_size: int = Field(16, ge=1)
    epochs: int = Field(1, ge=1)


class ContinualEvaluationSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seeds: list[int] | None = Field(None, min_length=1)
    eval_every: int = Field(1, ge=1)
    eval_subsample: int | None = Field(None, ge=1)
    windows: list[int] = [10, 100]
    gap_within: int = Field(50, ge=1)
    gap_recover: float = Field(0.95, gt=0, le=1)


class ContinualExperiment(BaseModel):
    """A continual-learning experiment: ``[tasks]`` (a task sequence) instead of ``[stream]``,
    evaluated by :func:`adaptloop.evaluation.continual.continual_evaluation`.

    Several sequences are ``[[tasks]]`` tables (each may set ``name``, default: the
    sequence's own, and its ``batch_size`` / ``epochs``); ``[evaluation] seeds = [0, 1, 2]``
    runs each sequence with every seed (default: the top-level ``seed``), learners built afresh
    for every run."""

    model_config = ConfigDict(extra="forbid")
    name: str = "experiment"
    seed: int = 0
    tasks: list[TasksSection] = Field(min_length=1)
    learners: dict[str, LearnerSection] = Field(min_length=1)
    evaluation: ContinualEvaluationSection = ContinualEvaluationSection()
    source: str = Field("", exclude=True, description="the TOML text as read")

    @field_validator("tasks", mode="before")
    @classmethod
    def _one_table_is_a_list_of_one(cls, value: object) -> object:
        return [value] if isinstance(value, dict) else value

    @property
    def seeds(self) -> list[int]:
        """The seeds each sequence is run with."""
        return list(self.evaluation.seeds or [self.seed])


def _location(loc: tuple) -> str:
    return ".".join(str(part) for part in loc)


def _first_error(error: ValidationError, prefix: str = "") -> str:
    detail = error.errors()[0]
    where = _location((prefix,) + tuple(detail["loc"]) if prefix else tuple(detail["loc"]))
    message = detail["msg"]
    if detail["type"] == "extra_forbidden":
        message = "unknown key"
    elif "input" in detail and detail["type"] != "missing":
        message += f" (got {detail['input']!r})"
    return f"{where}: {message}"


def parse_experiment(text: str, origin: str = "experiment") -> Experiment | ContinualExperiment:
    """Parse and validate an experiment from TOML text (components are checked too).

    A file with a ``[tasks]`` section is a :class:`ContinualExperiment`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ExperimentError(f"{origin}: not valid TOML: {error}") from None
    if "federation" in data:  # many clients: adaptloop.distributed
        from adaptloop.distributed.experiment import validate_federated

        return validate_federated(data, text, origin)
    kind = ContinualExperiment if "tasks" in data else Experiment
    try:
        experiment = kind.model_validate({**data, "source": text})
    except ValidationError as error:
        raise ExperimentError(f"{origin}: {_first_error(error)}") from None
    if isinstance(experiment, ContinualExperiment):
        try:
            if len(set(experiment.seeds)) != len(experiment.seeds):
                raise ValueError(f"evaluation.seeds: repeated seed in {experiment.seeds}")
            names: set[str] = set()
            for index in range(len(experiment.tasks)):
                sequence = build_tasks(experiment, index)
                if sequence.name in names:
                    raise ValueError(
                        f"{_tasks_where(experiment, index)}: a second sequence named "
                        f"{sequence.name!r}; give it another 'name'"
                    )
                names.add(sequence.name)
                for name in experiment.learners:
                    build_learner(experiment, name, sequence.info)
        except (ValueError, TypeError, FileNotFoundError) as error:
            raise ExperimentError(f"{origin}: {error}") from None
        return experiment
    try:
        stream = build_stream(experiment)
        for name in experiment.learners:
            build_learner(experiment, name, stream.info)
        if experiment.evaluation.metrics:
            from adaptloop.evaluation.metrics import check_metrics

            check_metrics(experiment.evaluation.metrics, stream.info.task)
    except (ValueError, TypeError, FileNotFoundError) as error:
        raise ExperimentError(f"{origin}: {error}") from None
    return experiment


def load_experiment(path: str | Path | None = None) -> Experiment:
    """Read an experiment file, or the built-in default when ``path`` is None."""
    if path is None:
        text = resources.files("adaptloop.experiments").joinpath(DEFAULT_EXPERIMENT).read_text()
        return parse_experiment(text, f"built-in {DEFAULT_EXPERIMENT}")
    path = Path(path)
    if not path.is_file():
        raise ExperimentError(f"experiment file not found: {path}")
    return parse_experiment(path.read_text(encoding="utf-8"), str(path))


def with_seed(experiment: Experiment, seed: int) -> Experiment:
    """The same experiment with another seed (the recorded source text says so too).

    A continual experiment's ``[evaluation] seeds`` list becomes ``[seed]``."""
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
    return experiment.model_copy(update=update)


# -- building components ---------------------------------------------------------------------
def _parameter_model(registry: Registry, kind: str) -> type[BaseModel]:
    factory = registry.get(kind)
    target = factory.__init__ if isinstance(factory, type) else factory
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # unresolvable annotations: check names only
        hints = {}
    fields: dict[str, Any] = {}
    for param in registry.parameters(kind):
        annotation = Any if param.name in LEARNER_PARAMS else hints.get(param.name, Any)
        default = ... if param.required else param.default
        fields[param.name] = (annotation, default)
    config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    return create_model(f"{registry.kind}_{kind}", __config__=config, **fields)


def _checked_params(registry: Registry, kind: str, params: dict, where: str) -> dict:
    model = _parameter_model(registry, kind)
    try:
        validated = model.model_validate(params)
    except ValidationError as error:
        raise ValueError(_first_error(error, where)) from None
    return {name: getattr(validated, name) for name in params}


def build_stream(experiment: Experiment) -> _streams.Stream:
    """The experiment's stream (its ``batch_size`` and ``max_samples`` are evaluation settings)."""
    section = experiment.stream
    params = dict(section.model_extra or {})
    if section.kind not in _streams.registry:
        raise ValueError(f"stream.kind: {_unknown(_streams.registry, section.kind)}")
    if "seed" in _streams.registry.parameter_names(section.kind):
        params.setdefault("seed", experiment.seed)
    params = _checked_params(_streams.registry, section.kind, params, "stream")
    return _streams.registry.create(section.kind, **params)


def _tasks_where(experiment: ContinualExperiment, index: int) -> str:
    return "tasks" if len(experiment.tasks) == 1 else f"tasks[{index}]"


def build_tasks(
    experiment: ContinualExperiment, index: int = 0, seed: int | None = None
) -> _tasks.TaskSequence:
    """The experiment's ``index``-th task sequence, named by its ``name`` if set, built with
    ``seed`` (default: the experiment's) unless it sets its own (``batch_size`` and ``epochs``
    are training settings)."""
    section = experiment.tasks[index]
    where = _tasks_where(experiment, index)
    params = dict(section.model_extra or {})
    if section.kind not in _tasks.registry:
        raise ValueError(f"{where}.kind: {_unknown(_tasks.registry, section.kind)}")
    if "seed" in _tasks.registry.parameter_names(section.kind):
        params.setdefault("seed", experiment.seed if seed is None else seed)
    params = _checked_params(_tasks.registry, section.kind, params, where)
    sequence = _tasks.registry.create(section.kind, **params)
    return sequence if section.name is None else dataclasses.replace(sequence, name=section.name)


def _unknown(registry: Registry, kind: str) -> str:
    return f"unknown {registry.kind} {kind!r}; known: {', '.join(registry.names())}"


def _build_learner_spec(spec: dict, where: str, info: _streams.StreamInfo, seed: int) -> Learner:
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ValueError(f"{where}: expected a table with a 'kind' key, got {spec!r}")
    params = {k: v for k, v in spec.items() if k != "kind"}
    kind = spec["kind"]
    if kind not in _learners.registry:
        raise ValueError(f"{where}.kind: {_unknown(_learners.registry, kind)}")
    accepted = _learners.registry.parameter_names(kind)
    for name in LEARNER_PARAMS:
        if name in params:
            params[name] = _build_learner_spec(params[name], f"{where}.{name}", info, seed)
    if "n_classes" in accepted and info.n_classes is not None:
        params.setdefault("n_classes", info.n_classes)
    if "seed" in accepted:
        params.setdefault("seed", seed)
    params = _checked_params(_learners.registry, kind, params, where)
    try:
        return _learners.registry.create(kind, **params)
    except ValueError as error:  # a constructor's check: say which learner it is
        raise ValueError(f"{where}: {error}") from None


def build_learner(experiment: Experiment, name: str, info: _streams.StreamInfo) -> Learner:
    """The learner ``learners.<name>``, with ``n_classes`` and ``seed`` filled in when unset."""
    section = experiment.learners[name]
    spec = {"kind": section.kind, **(section.model_extra or {})}
    return _build_learner_spec(spec, f"learners.{name}", info, experiment.seed)


def run_experiment(
    experiment: Experiment | ContinualExperiment,
    on_start: Callable[[_streams.StreamInfo, int | None], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> PrequentialResult | ContinualSuite:
    """Build the stream and learners and evaluate them prequentially.

    ``on_start(info, total)`` is called once with the stream info and the number of samples
    that will be read (None if unknown); ``on_batch(position)`` after every batch. A
    continual experiment is run by :func:`run_continual` instead, a federated one (with a
    ``[federation]`` section) by :func:`adaptloop.distributed.experiment.run_federated`.
    """
    if isinstance(experiment, ContinualExperiment):
        return run_continual(experiment, on_start, on_batch)
    from adaptloop.distributed.experiment import FederatedExperiment, run_federated

    if isinstance(experiment, FederatedExperiment):
        return run_federated(experiment, on_start, on_batch)
    stream = build_stream(experiment)
    learners = {name: build_learner(experiment, name, stream.info) for name in experiment.learners}
    total = stream.info.n_samples
    if experiment.stream.max_samples is not None:
        total = min(total or experiment.stream.max_samples, experiment.stream.max_samples)
    if on_start is not None:
        on_start(stream.info, total)
    evaluation = experiment.evaluation
    return prequential(
        stream,
        learners,
        batch_size=experiment.stream.batch_size,
        metrics=evaluation.metrics,
        window=evaluation.window,
        record_every=evaluation.record_every,
        max_samples=experiment.stream.max_samples,
        after=evaluation.after,
        tolerance=evaluation.tolerance,
        on_batch=on_batch,
    )


def run_continual(
    experiment: ContinualExperiment,
    on_start: Callable[[_streams.StreamInfo, int | None], None] | None = None,
    on_iteration: Callable[[int], None] | None = None,
) -> ContinualSuite:
    """Run every task sequence with every seed (learners built afresh for each run).

    ``on_start(info, total)`` gets the first sequence's info and the total number of
    iterations over all sequences, seeds and learners; ``on_iteration(done)`` the iterations
    done so far, over all of them.
    """
    evaluation, seeds = experiment.evaluation, experiment.seeds

    def iterations(index: int, sequence: _tasks.TaskSequence) -> int:  # per learner and run
        section = experiment.tasks[index]
        return section.epochs * sum(-(-len(t.y_train) // section.batch_size) for t in sequence)

    # other seeds' sequences are built when their run starts (MNIST is large); the total
    # assumes that task sizes do not depend on the seed, as in every built-in sequence
    firsts = [build_tasks(experiment, index, seeds[0]) for index in range(len(experiment.tasks))]
    n_learners = len(experiment.learners)
    if on_start is not None:
        total = sum(iterations(i, seq) for i, seq in enumerate(firsts)) * len(seeds) * n_learners
        on_start(firsts[0].info, total)
    order = {name: i for i, name in enumerate(experiment.learners)}
    runs: dict[str, dict[int, ContinualResult]] = {}
    done = 0
    for index, section in enumerate(experiment.tasks):
        for seed in seeds:
            sequence = firsts[index] if seed == seeds[0] else build_tasks(experiment, index, seed)
            seeded = experiment.model_copy(update={"seed": seed})
            learners = {
                name: build_learner(seeded, name, sequence.info) for name in experiment.learners
            }
            per_learner, offset = iterations(index, sequence), done

            def progress(name: str, iteration: int, per: int = per_learner, at: int = offset):
                if on_iteration is not None:
                    on_iteration(at + order[name] * per + iteration)

            runs.setdefault(sequence.name, {})[seed] = continual_evaluation(
                sequence,
                learners,
                batch_size=section.batch_size,
                epochs=section.epochs,
                eval_every=evaluation.eval_every,
                eval_subsample=evaluation.eval_subsample,
                windows=evaluation.windows,
                gap_within=evaluation.gap_within,
                gap_recover=evaluation.gap_recover,
                seed=seed,
                on_iteration=progress,
            )
            done += per_learner * n_learners
    return ContinualSuite(runs)
