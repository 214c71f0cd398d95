"""An experiment cut into its independent parts, run one after the other or as Ray tasks, and
the parts' results put back together into one result.

A part is one learner on one data set-up: a prequential experiment's learner on the stream (each
part reads the stream afresh: streams are seeded, so it reads the same samples), a continual
experiment's learner on one task sequence with one seed. A ``[grid]``
(:func:`~adaptloop.config.schema.grid_cells`) multiplies the parts: every cell of the grid runs
every learner, except that a cell differing only in another learner's parameters reuses the
part it already has (a learner's run is the same whatever the others are set to).

Put back together, the parts make the result the whole experiment makes in one process: same
records, same summary, same order (timings aside), so :func:`combine` of the parts of an
experiment without a grid gives exactly what :func:`~adaptloop.config.run.run_experiment`
gives locally. With a grid, each run is named after its learner and the grid values it ran
with (``lr (seed=2, noise=0.1)``; a continual run names its task sequence so), and
``summary.json`` gets a ``"grid"`` entry: the keys, and per run its learner (or sequence) and
values, from which the report's grid table compares the cells.

>>> from adaptloop.config.schema import parse_experiment
>>> exp = parse_experiment('''
... [stream]
... kind = "sea"
... [learners.lr]
... kind = "logistic"
... [learners.nb]
... kind = "forgetting_nb"
... [grid]
... seed = [1, 2]
... learners.lr.lr = [0.01, 0.1]
... ''')
>>> [part.name for part in split(exp)]  # nb does not depend on lr's lr: run once per seed
['lr (seed=1, lr=0.01)', 'nb (seed=1)', 'lr (seed=1, lr=0.1)', 'lr (seed=2, lr=0.01)', \
'nb (seed=2)', 'lr (seed=2, lr=0.1)']
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from adaptloop.config.schema import (
    AnyExperiment,
    ContinualExperiment,
    Experiment,
    grid_cells,
    vary,
)
from adaptloop.distributed.ray_engine import import_ray
from adaptloop.evaluation.continual import ContinualResult, ContinualSuite
from adaptloop.evaluation.prequential import PrequentialResult
from adaptloop.results import Result, json_safe
from adaptloop.results.tables.grid import grid_labels, grid_value

ENGINES = ("local", "ray")
"""Where the parts run: one after the other in this process, or as Ray tasks."""


@dataclass(frozen=True)
class Part:
    """One independent part of an experiment: ``experiment`` cut to one learner (and, for a
    continual one, to one task sequence and one seed), with the grid ``values`` it depends on
    set. ``name`` is its run's name in the results (a prequential learner's; a continual
    sequence's); ``index`` and ``seed`` say which sequence and seed of a continual run it is."""

    experiment: Experiment | ContinualExperiment
    learner: str
    values: dict[str, Any]
    name: str
    index: int = 0
    seed: int = 0


# -- names -----------------------------------------------------------------------------------
def label(values: dict[str, Any]) -> str:
    """The grid values of a run as its name shows them.

    >>> label({"seed": 1, "stream.noise": 0.1, "stream.kind": "sea"})
    'seed=1, noise=0.1, kind=sea'
    """
    names = grid_labels(list(values))
    return ", ".join(f"{n}={grid_value(v)}" for n, v in zip(names, values.values(), strict=True))


def named(base: str, values: dict[str, Any]) -> str:
    """``base`` with the grid values it ran with: ``lr (seed=1)``; ``base`` alone without."""
    return f"{base} ({label(values)})" if values else base


def _concerns(key: str, learner: str) -> bool:
    """Whether the grid key ``key`` can change ``learner``'s run (another learner's parameters
    cannot)."""
    parts = key.split(".")
    return parts[0] != "learners" or parts[1] == learner


# -- cutting an experiment into parts ---------------------------------------------------------
def split(experiment: AnyExperiment) -> list[Part]:
    """The parts of ``experiment`` in the order their results are put together: grid cell by
    cell (a cell's runs that an earlier cell already has are left out), then, for a continual
    experiment, task sequence by sequence and seed by seed, then learner by learner."""
    parts: dict[str, Part] = {}
    for _cell, values, index, seed, learner in _runs(experiment):
        key = _key(learner, index, seed, values)
        if key in parts:
            continue
        varied = vary(experiment, values) if values else experiment
        update: dict[str, Any] = {"learners": {learner: varied.learners[learner]}}
        if isinstance(varied, ContinualExperiment):
            update["tasks"] = [varied.tasks[index]]
            update["seed"] = seed
            update["evaluation"] = varied.evaluation.model_copy(update={"seeds": None})
        name = named(learner, values)
        parts[key] = Part(varied.model_copy(update=update), learner, values, name, index, seed)
    return list(parts.values())


def _key(learner: str, index: int, seed: int, values: dict[str, Any]) -> str:
    """What tells two runs apart: the same key, the same numbers."""
    return json.dumps([learner, index, seed, sorted(values.items())], default=str)


def _runs(experiment: AnyExperiment) -> Iterator[tuple[dict, dict, int, int, str]]:
    """Every run of the experiment in result order: ``(cell, the cell's values the learner's
    run depends on, sequence index, seed, learner)``."""
    continual = isinstance(experiment, ContinualExperiment)
    sequences = range(len(experiment.tasks)) if continual else range(1)  # type: ignore[union-attr]
    seeds = experiment.seeds if continual else [experiment.seed]  # type: ignore[union-attr]
    for cell in grid_cells(experiment):
        for index in sequences:
            for seed in seeds:
                for learner in experiment.learners:
                    values = {k: v for k, v in cell.items() if _concerns(k, learner)}
                    yield cell, values, index, seed, learner


# -- putting the parts' results together -------------------------------------------------------
@dataclass
class PrequentialGrid(PrequentialResult):
    """A prequential run over a grid: one run per learner and grid cell (see :func:`combine`);
    ``summary.json`` has a ``"grid"`` entry (keys; per run its learner and values)."""

    grid: dict = field(default_factory=dict)

    def summary_json(self, **extra) -> dict:
        return super().summary_json(grid=self.grid, **extra)


@dataclass
class ContinualGrid(ContinualSuite):
    """A continual run over a grid: each cell's task sequences named after the cell (see
    :func:`combine`); ``summary.json`` has a ``"grid"`` entry (keys; per sequence its own
    name and the cell's values)."""

    grid: dict = field(default_factory=dict)

    def summary_json(self, **extra) -> dict:
        return super().summary_json(grid=self.grid, **extra)


def _renamed(records: pa.Table, column: str, name: str) -> pa.Table:
    index = records.schema.get_field_index(column)
    return records.set_column(index, column, pa.array([name] * len(records), pa.string()))


def combine(
    experiment: AnyExperiment, parts: Sequence[Part], results: Sequence[Any]
) -> PrequentialResult | ContinualSuite:
    """The one result of ``experiment`` from its parts' (``results[i]`` is ``parts[i]``'s):
    the same numbers, names and order as the experiment run whole."""
    if isinstance(experiment, ContinualExperiment):
        return _combine_continual(experiment, parts, results)
    first: PrequentialResult = results[0]
    runs = []
    for part, result in zip(parts, results, strict=True):
        records = _renamed(result.records, "learner", part.name)
        drifts = [{**d, "learner": part.name} for d in result.drifts]
        runs.append((part, records, result.summary[part.learner], drifts))
    combined = dict(
        info=first.info,
        metrics=first.metrics,
        window=first.window,
        records=pa.concat_tables([records for _, records, _, _ in runs]),
        summary={part.name: summary for part, _, summary, _ in runs},
        drifts=[d for *_, drifts in runs for d in drifts],
        stream_summary=first.stream_summary,
        slots=first.slots,
        label_delay=first.label_delay,
    )
    if not experiment.grid:
        return PrequentialResult(**combined)
    grid = {
        "keys": list(experiment.grid),
        "runs": {p.name: {"learner": p.learner, "values": p.values} for p in parts},
    }
    return PrequentialGrid(**combined, grid=grid)


def _combine_continual(
    experiment: ContinualExperiment, parts: Sequence[Part], results: Sequence[ContinualSuite]
) -> ContinualSuite:
    done = {}
    for part, suite in zip(parts, results, strict=True):
        done[_key(part.learner, part.index, part.seed, part.values)] = suite.first
    runs: dict[str, dict[int, ContinualResult]] = {}
    grid_runs: dict[str, dict] = {}
    merged: dict[tuple[str, int], list[ContinualResult]] = {}
    for cell, values, index, seed, learner in _runs(experiment):
        result = done[_key(learner, index, seed, values)]
        name = named(result.sequence.name, cell)
        grid_runs[name] = {"sequence": result.sequence.name, "values": cell}
        merged.setdefault((name, seed), []).append(result)
    for (name, seed), results_ in merged.items():
        first = results_[0]
        runs.setdefault(name, {})[seed] = dataclasses.replace(
            first,
            sequence=dataclasses.replace(first.sequence, name=name),
            records=_renamed(pa.concat_tables([r.records for r in results_]), "sequence", name),
            summary={k: v for r in results_ for k, v in r.summary.items()},
        )
    if not experiment.grid:
        return ContinualSuite(runs)
    return ContinualGrid(runs, grid={"keys": list(experiment.grid), "runs": grid_runs})


def _timing(key: str) -> bool:
    return key.endswith(("_seconds", "_per_second")) or key == "created"


def numbers(result: Result) -> dict[str, Any]:
    """What a run measured, but when and how fast: its records and ``summary.json`` without
    the timings (``*_seconds``, ``*_per_second``, ``created``), NaN as None. Two runs of an
    experiment with the same seeds, here or on Ray, whole or in parts, have equal numbers.

    >>> from adaptloop.config.schema import parse_experiment
    >>> from adaptloop.config.run import run_experiment
    >>> exp = parse_experiment('[stream]\\nkind = "sea"\\nn = 500\\n'
    ...                        '[learners.lr]\\nkind = "logistic"')
    >>> numbers(run_experiment(exp)) == numbers(run_experiment(exp))
    True
    """

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if not _timing(k)}
        return [strip(v) for v in value] if isinstance(value, list) else value

    records = result.records
    kept = records.select([c for c in records.column_names if not _timing(c)])
    return {
        "records": json_safe(kept.to_pylist()),
        "summary": strip(result.summary_json()),
    }


# -- running the parts ----------------------------------------------------------------------------
@contextmanager
def ray_session(address: str | None = None, cpus: int | None = None) -> Iterator[Any]:
    """Ray, connected: to the cluster at ``address``, else started on this machine with
    ``cpus`` CPUs (default: all) and no dashboard; a Ray already connected is used as it is.
    Ray is shut down on leaving if it was started here."""
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address is None and cpus is not None:
            options["num_cpus"] = cpus
        ray.init(address=address, **options)
        started = True
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def map_parts(
    run_part: Callable[[Part], Any],
    parts: Sequence[Part],
    engine: str = "local",
    address: str | None = None,
    cpus: int | None = None,
    on_done: Callable[[int], None] | None = None,
) -> list[Any]:
    """``run_part`` of every part, in order: one after the other here (``engine="local"``) or
    as Ray tasks (``"ray"``, one CPU each; see :func:`ray_session` for ``address`` and
    ``cpus``). ``on_done(n)`` is called as parts finish (``n`` done so far). An error in a part
    is raised here as it was raised there (the other parts are cancelled)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "local":
        results = []
        for part in parts:
            results.append(run_part(part))
            if on_done is not None:
                on_done(len(results))
        return results
    with ray_session(address, cpus) as ray:
        task = ray.remote(num_cpus=1, max_retries=0)(run_part)
        pending = [task.remote(part) for part in parts]
        index = {ref: i for i, ref in enumerate(pending)}
        results = [None] * len(parts)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1, timeout=1.0)
                for ref in ready:
                    results[index[ref]] = _get(ray, ref)
                if ready and on_done is not None:
                    on_done(len(parts) - len(pending))
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
        return results


def _get(ray: Any, ref: Any) -> Any:
    """A task's result, or the error it raised (not Ray's wrapper of it)."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as error:
        if isinstance(error.cause, Exception):
            raise error.cause from None
        raise
