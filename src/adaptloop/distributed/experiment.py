"""Federated experiment files: ``[stream]``, ``[federation]``, ``[engine]``, ``[rules.*]``.

A file with a ``[federation]`` section is a :class:`FederatedExperiment` (``adaptloop run``
tells them apart, as it does continual ones). ``[stream]`` names the generator the client
shards are drawn from (its ``concepts`` in time order, other keys go to the generator);
``[federation]`` the clients, their data, speeds and the clock (see
:class:`~adaptloop.distributed.federation.Federation`), the ``learner`` every client runs and
which parts of its state stay on each client (``local``) or are shared against the defaults
(``share``; path patterns, see :mod:`~adaptloop.distributed.sharing`);
``[engine]`` ``kind = "local"`` (simulated clock) or ``"ray"`` (with ``address`` to join a
cluster, ``time_unit_s`` wall seconds per time unit); ``[rules.NAME]`` one aggregation rule
each; ``[evaluation]`` the ``target`` accuracy and the drift-segment settings, in time units.

>>> exp = parse_federated('''
... seed = 1
... [stream]
... kind = "sea"
... concepts = [0, 3]
... noise = 0.0
... [federation]
... clients = 4
... samples_per_client = 200
... drift_at = [20.0]
... duration = 40.0
... eval_every = 10.0
... learner = { kind = "logistic", standardize = false }
... [rules.buff]
... kind = "fedbuff"
... buffer_size = 2
... [evaluation]
... target = 0.6
... ''')
>>> result = run_federated(exp)
>>> result.summary["buff"]["accuracy_final"] > 0.6
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adaptloop.distributed.data import make_federated_data
from adaptloop.distributed.federation import Federation
from adaptloop.distributed.local import LocalEngine
from adaptloop.distributed.rules import registry as rule_registry
from adaptloop.distributed.rules.base import AggregationRule
from adaptloop.distributed.run import FederatedResult, run_federation
from adaptloop.distributed.sharing import StateSplit
from adaptloop.streams.base import StreamInfo

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib


class _Stream(BaseModel):
    model_config = ConfigDict(extra="allow")
    kind: str
    concepts: list[int] = Field(min_length=1)


class _Federation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    clients: int = Field(32, ge=1)
    samples_per_client: int = Field(1000, ge=10)
    class_skew: float = Field(0.5, gt=0)
    test_fraction: float = Field(0.2, gt=0, lt=1)
    drift_at: list[float] = []
    drift_jitter: float = Field(0.0, ge=0)
    duration: float = Field(600.0, gt=0)
    eval_every: float = Field(5.0, gt=0)
    batch_size: int = Field(32, ge=1)
    step_time: float = Field(1.0, gt=0)
    slow_fraction: float = Field(0.25, ge=0, le=1)
    slow_factor: float = Field(10.0, ge=1)
    latency: float = Field(0.1, ge=0)
    jitter: float = Field(0.1, ge=0)
    timeout: float = Field(float("inf"), gt=0)
    restart_after: float | None = Field(10.0, ge=0)
    learner: dict[str, Any] = {"kind": "logistic"}
    share: list[str] = []
    local: list[str] = []


class _Engine(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["local", "ray"] = "local"
    address: str = ""
    time_unit_s: float = Field(0.02, gt=0)
    num_cpus: float = Field(0.01, ge=0)


class _Rule(BaseModel):
    model_config = ConfigDict(extra="allow")
    kind: str


class _Evaluation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: float | None = Field(None, gt=0, le=1)
    window: float = Field(50.0, gt=0)
    after: float = Field(50.0, gt=0)
    tolerance: float = Field(0.02, ge=0)


class FederatedExperiment(BaseModel):
    """A validated federated experiment (see the module docstring for its sections)."""

    model_config = ConfigDict(extra="forbid")
    name: str = "federated"
    seed: int = 0
    stream: _Stream
    federation: _Federation = _Federation()
    engine: _Engine = _Engine()
    rules: dict[str, _Rule] = Field(min_length=1)
    evaluation: _Evaluation = _Evaluation()
    source: str = Field("", exclude=True, description="the TOML text as read")

    @property
    def learners(self) -> dict[str, _Rule]:
        """The rules: each is one curve ("learner") of the results."""
        return self.rules


def parse_federated(text: str, origin: str = "experiment") -> FederatedExperiment:
    """Parse, validate and build once (so every component error surfaces now)."""
    from adaptloop.experiment import ExperimentError

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ExperimentError(f"{origin}: not valid TOML: {error}") from None
    return validate_federated(data, text, origin)


def validate_federated(data: dict, text: str, origin: str) -> FederatedExperiment:
    """A :class:`FederatedExperiment` from parsed TOML ``data``, its components checked."""
    from adaptloop.experiment import ExperimentError, _first_error

    try:
        experiment = FederatedExperiment.model_validate({**data, "source": text})
    except ValidationError as error:
        raise ExperimentError(f"{origin}: {_first_error(error)}") from None
    try:
        info = build_data(experiment, clients=1).info
        learner = build_learner(experiment, info)
        fed = experiment.federation
        try:
            StateSplit.for_learner(learner, info.n_features, info.n_classes, fed.share, fed.local)
        except ValueError as error:
            raise ValueError(f"federation.learner: {error}") from None
        build_rules(experiment)
    except (ValueError, TypeError) as error:
        raise ExperimentError(f"{origin}: {error}") from None
    return experiment


def build_data(experiment: FederatedExperiment, clients: int | None = None):
    """The client shards (``clients`` overrides the count, for quick checks)."""
    from adaptloop import streams
    from adaptloop.experiment import _checked_params

    section, fed = experiment.stream, experiment.federation
    params = dict(section.model_extra or {})
    if section.kind in streams.registry:
        for reserved in ("n", "seed", "drifts"):
            if reserved in params:
                raise ValueError(
                    f"stream.{reserved}: set by the federation (samples_per_client, seed, "
                    "drift_at); remove it"
                )
        params = _checked_params(streams.registry, section.kind, params, "stream")
    return make_federated_data(
        section.kind,
        clients=clients or fed.clients,
        samples_per_client=fed.samples_per_client,
        concepts=section.concepts,
        drift_at=fed.drift_at,
        drift_jitter=fed.drift_jitter,
        class_skew=fed.class_skew,
        test_fraction=fed.test_fraction,
        seed=experiment.seed,
        **params,
    )


def build_learner(experiment: FederatedExperiment, info: StreamInfo):
    """The learner every client clones (``federation.learner``)."""
    from adaptloop.experiment import _build_learner_spec

    spec = experiment.federation.learner
    return _build_learner_spec(spec, "federation.learner", info, experiment.seed)


def build_rules(experiment: FederatedExperiment) -> dict[str, AggregationRule]:
    """One fresh rule per ``[rules.NAME]`` section."""
    from adaptloop.experiment import _checked_params

    rules = {}
    for name, section in experiment.rules.items():
        if section.kind not in rule_registry:
            known = ", ".join(rule_registry.names())
            raise ValueError(
                f"rules.{name}.kind: unknown aggregation rule {section.kind!r}; known: {known}"
            )
        params = _checked_params(
            rule_registry, section.kind, dict(section.model_extra or {}), f"rules.{name}"
        )
        rules[name] = rule_registry.create(section.kind, **params)
    return rules


def build_federation(experiment: FederatedExperiment) -> Federation:
    """Shards, learner, speeds and clock settings of the experiment."""
    data = build_data(experiment)
    fed = experiment.federation
    return Federation(
        data,
        build_learner(experiment, data.info),
        batch_size=fed.batch_size,
        duration=fed.duration,
        eval_every=fed.eval_every,
        step_time=fed.step_time,
        slow_fraction=fed.slow_fraction,
        slow_factor=fed.slow_factor,
        latency=fed.latency,
        jitter=fed.jitter,
        timeout=fed.timeout,
        restart_after=fed.restart_after,
        seed=experiment.seed,
        share=tuple(fed.share),
        local=tuple(fed.local),
    )


def with_engine(
    experiment: FederatedExperiment, kind: str, address: str | None = None
) -> FederatedExperiment:
    """The same experiment on another engine (``adaptloop run --engine``, ``--address``)."""
    if kind not in ("local", "ray"):
        raise ValueError(f"engine must be 'local' or 'ray', got {kind!r}")
    update: dict[str, Any] = {"kind": kind}
    if address is not None:
        update["address"] = address
    return experiment.model_copy(update={"engine": experiment.engine.model_copy(update=update)})


def run_federated(
    experiment: FederatedExperiment,
    on_start: Callable[[StreamInfo, int | None], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> FederatedResult:
    """Run every rule on the experiment's engine; ``on_batch`` gets the time units done."""
    federation = build_federation(experiment)
    rules = build_rules(experiment)
    if on_start is not None:
        on_start(federation.data.info, int(round(federation.duration * len(rules))))
    section = experiment.engine
    if section.kind == "ray":
        from adaptloop.distributed.ray_engine import RayEngine

        engine: Any = RayEngine(section.address or None, section.time_unit_s, section.num_cpus)
    else:
        engine = LocalEngine()
    evaluation = experiment.evaluation
    try:
        return run_federation(
            federation,
            rules,
            engine,
            target=evaluation.target,
            window=evaluation.window,
            after=evaluation.after,
            tolerance=evaluation.tolerance,
            on_time=None if on_batch is None else (lambda t: on_batch(int(round(t)))),
        )
    finally:
        if section.kind == "ray":
            engine.close()
