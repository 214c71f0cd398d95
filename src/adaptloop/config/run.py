"""Run a parsed experiment of any kind: prequential, continual, federated or graph.

>>> from adaptloop.config.schema import parse_experiment
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

from collections.abc import Callable

from adaptloop.config.build import (
    build_all_tasks,
    build_engine,
    build_federation,
    build_learners,
    build_rules,
    build_stream,
    build_tasks,
)
from adaptloop.config.grid import ENGINES, Part, combine, map_parts, split
from adaptloop.config.schema import (
    AnyExperiment,
    ContinualExperiment,
    Experiment,
    ExperimentError,
    FederatedExperiment,
    GraphExperiment,
    with_engine,
)
from adaptloop.distributed.ray_engine import RayEngine
from adaptloop.distributed.run import FederatedResult, run_federation
from adaptloop.evaluation.continual import ContinualResult, ContinualSuite, continual_evaluation
from adaptloop.evaluation.delay import LabelSchedule
from adaptloop.evaluation.graphs import GraphResult, graph_prequential
from adaptloop.evaluation.metrics import check_metrics
from adaptloop.evaluation.prequential import PrequentialResult, prequential
from adaptloop.streams.base import StreamInfo
from adaptloop.streams.tasks import TaskSequence

OnStart = Callable[[StreamInfo, int | None], None]
"""``on_start(info, total)``: called once with the data's info and the amount of work (samples,
iterations or time units; None if unknown)."""
OnProgress = Callable[[int], None]
"""``on_batch(done)``: called with the work done so far."""


def run_prequential(
    experiment: Experiment,
    on_start: OnStart | None = None,
    on_batch: OnProgress | None = None,
) -> PrequentialResult:
    """Build the stream and learners and evaluate them prequentially; ``on_batch`` gets the
    samples read so far."""
    stream = build_stream(experiment)
    learners = build_learners(experiment, stream.info)
    section, evaluation = experiment.stream, experiment.evaluation
    if evaluation.metrics is not None:
        try:
            check_metrics(evaluation.metrics, stream.info.task)
        except ValueError as error:
            raise ExperimentError(f"{experiment.origin}: evaluation.metrics: {error}") from None
    try:  # the label delay's columns exist in this stream
        LabelSchedule(section.delay, section.timestamp, stream.info)
    except ValueError as error:
        raise ExperimentError(f"{experiment.origin}: stream.{error}") from None
    total = stream.info.n_samples
    if section.max_samples is not None:
        total = min(total or section.max_samples, section.max_samples)
    if on_start is not None:
        on_start(stream.info, total)
    return prequential(
        stream,
        learners,
        **section.arguments(prequential),
        **evaluation.arguments(prequential),
        on_batch=on_batch,
    )


def run_continual(
    experiment: ContinualExperiment,
    on_start: OnStart | None = None,
    on_iteration: OnProgress | None = None,
) -> ContinualSuite:
    """Run every task sequence with every seed (learners built afresh for each run).

    ``on_start(info, total)`` gets the first sequence's info and the total number of
    iterations over all sequences, seeds and learners; ``on_iteration(done)`` the iterations
    done so far, over all of them.
    """
    evaluation, seeds = experiment.evaluation, experiment.seeds

    def iterations(index: int, sequence: TaskSequence) -> int:  # per learner and run
        section = experiment.tasks[index]
        return section.epochs * sum(-(-len(t.y_train) // section.batch_size) for t in sequence)

    # other seeds' sequences are built when their run starts (MNIST is large); the total
    # assumes that task sizes do not depend on the seed, as in every built-in sequence
    firsts = build_all_tasks(experiment, seeds[0])
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
            per_learner, offset = iterations(index, sequence), done

            def progress(name: str, iteration: int, per: int = per_learner, at: int = offset):
                if on_iteration is not None:
                    on_iteration(at + order[name] * per + iteration)

            runs.setdefault(sequence.name, {})[seed] = continual_evaluation(
                sequence,
                build_learners(seeded, sequence.info),
                batch_size=section.batch_size,
                epochs=section.epochs,
                **evaluation.arguments(continual_evaluation),
                seed=seed,
                on_iteration=progress,
            )
            done += per_learner * n_learners
    return ContinualSuite(runs)


def run_federated(
    experiment: FederatedExperiment,
    on_start: OnStart | None = None,
    on_batch: OnProgress | None = None,
) -> FederatedResult:
    """Run every rule on the experiment's engine; ``on_batch`` gets the time units done."""
    federation = build_federation(experiment)
    rules = build_rules(experiment, federation.data)
    if on_start is not None:
        on_start(federation.data.info, int(round(federation.duration * len(rules))))
    engine = build_engine(experiment)
    try:
        return run_federation(
            federation,
            rules,
            engine,
            **experiment.evaluation.arguments(run_federation),
            on_time=None if on_batch is None else (lambda t: on_batch(int(round(t)))),
        )
    finally:
        if isinstance(engine, RayEngine):
            engine.close()


def run_graph(
    experiment: GraphExperiment,
    on_start: OnStart | None = None,
    on_batch: OnProgress | None = None,
) -> GraphResult:
    """Build the graph stream and learners and evaluate them snapshot by snapshot
    (:func:`~adaptloop.evaluation.graphs.graph_prequential`); ``on_batch`` gets the snapshots
    done."""
    stream = build_stream(experiment)
    learners = build_learners(experiment, stream.info)
    settings = experiment.graph.arguments(graph_prequential)
    if on_start is not None:
        total = len(stream.bounds) - 1  # type: ignore[attr-defined]
        on_start(stream.info, min(total, settings["max_snapshots"] or total))
    return graph_prequential(stream, learners, **settings, on_snapshot=on_batch)  # type: ignore[arg-type]


RUNNERS: dict[type, Callable[..., PrequentialResult | ContinualSuite | GraphResult]] = {
    Experiment: run_prequential,
    ContinualExperiment: run_continual,
    FederatedExperiment: run_federated,
    GraphExperiment: run_graph,
}
"""How each kind of experiment is run."""


def run_part(part: Part) -> PrequentialResult | ContinualSuite:
    """One part of an experiment (:func:`adaptloop.config.grid.split`), run in this process
    (the function each Ray task runs)."""
    return RUNNERS[type(part.experiment)](part.experiment)


def run_experiment(
    experiment: AnyExperiment,
    on_start: OnStart | None = None,
    on_batch: OnProgress | None = None,
    engine: str = "local",
    address: str | None = None,
    cpus: int | None = None,
) -> PrequentialResult | ContinualSuite | GraphResult:
    """Build and run ``experiment`` (any kind); ``on_start(info, total)`` is called once with the
    data's info and the work to do, ``on_batch(done)`` as it progresses.

    An experiment with a ``[grid]``, or run with ``engine="ray"``, runs as its independent
    parts (:mod:`adaptloop.config.grid`): one after the other here, or as Ray tasks (on the
    cluster at ``address``, else on a Ray started here with ``cpus`` CPUs); the work
    ``on_start`` and ``on_batch`` count is then parts. The numbers are those of the experiment
    run whole. A federated experiment runs on ``engine`` (its clients as Ray actors); a graph
    experiment runs here only.
    """
    if isinstance(experiment, FederatedExperiment):
        if engine != "local" or address is not None:
            experiment = with_engine(experiment, "ray", address)
        return run_federated(experiment, on_start, on_batch)
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if isinstance(experiment, GraphExperiment) and engine != "local":
        raise ValueError("engine: a graph experiment runs in this process only ('local')")
    if engine == "local" and not experiment.grid:
        return RUNNERS[type(experiment)](experiment, on_start, on_batch)
    parts = split(experiment)
    if on_start is not None:  # built here first: a part that cannot be built fails now
        first = parts[0].experiment
        info = (
            build_tasks(first).info
            if isinstance(first, ContinualExperiment)
            else build_stream(first).info
        )
        on_start(info, len(parts))
    results = map_parts(run_part, parts, engine, address, cpus, on_batch)
    return combine(experiment, parts, results)
