"""Experiment files: read (:mod:`~adaptloop.config.schema`, nothing built), built
(:mod:`~adaptloop.config.build`, nothing run) and run (:mod:`~adaptloop.config.run`), for every
kind: prequential, continual, federated and graph. ``adaptloop run`` without a file runs
:data:`DEFAULT_EXPERIMENT`.

>>> from adaptloop.config import load_experiment, build_stream
>>> build_stream(load_experiment()).info.name
'sea'
"""

from adaptloop.config.build import (
    build_all_tasks,
    build_component,
    build_data,
    build_engine,
    build_federation,
    build_learner,
    build_learners,
    build_rules,
    build_stream,
    build_tasks,
)
from adaptloop.config.run import (
    run_continual,
    run_experiment,
    run_federated,
    run_graph,
    run_prequential,
)
from adaptloop.config.schema import (
    DEFAULT_EXPERIMENT,
    AnyExperiment,
    ContinualExperiment,
    Experiment,
    ExperimentError,
    FederatedExperiment,
    GraphExperiment,
    check_component,
    load_experiment,
    parse_experiment,
    with_engine,
    with_seed,
)

__all__ = [
    "DEFAULT_EXPERIMENT",
    "AnyExperiment",
    "ContinualExperiment",
    "Experiment",
    "ExperimentError",
    "FederatedExperiment",
    "GraphExperiment",
    "build_all_tasks",
    "build_component",
    "build_data",
    "build_engine",
    "build_federation",
    "build_learner",
    "build_learners",
    "build_rules",
    "build_stream",
    "build_tasks",
    "check_component",
    "load_experiment",
    "parse_experiment",
    "run_continual",
    "run_experiment",
    "run_federated",
    "run_graph",
    "run_prequential",
    "with_engine",
    "with_seed",
]
