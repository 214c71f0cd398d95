"""adaptloop.config: experiment files are checked against the components' own declarations
(the same words as their constructors), parsed without building, built without running."""

from __future__ import annotations

import inspect
import math
import time

import pytest

from adaptloop.config import (
    ContinualExperiment,
    Experiment,
    ExperimentError,
    FederatedExperiment,
    build_federation,
    build_learners,
    build_stream,
    build_tasks,
    parse_experiment,
    run_experiment,
)
from adaptloop.config.schema import (
    ContinualEvaluationSection,
    EvaluationSection,
    FederatedEvaluationSection,
)
from adaptloop.distributed import Federation
from adaptloop.distributed.run import run_federation
from adaptloop.evaluation.continual import continual_evaluation
from adaptloop.evaluation.prequential import prequential
from adaptloop.learners import LogisticRegression, WindowRetrain

PREQUENTIAL = """
seed = 7
[stream]
kind = "sea"
n = 2_000
batch_size = 100
[learners.incremental]
kind = "window_retrain"
base = { kind = "logistic" }
window = 500
every = 250
"""

FEDERATED = """
seed = 3
[stream]
kind = "sea"
concepts = [0, 1]
[federation]
clients = 4
samples_per_client = 100
drift_at = [20.0]
duration = 40.0
eval_every = 10.0
learner = { kind = "logistic", standardize = false }
[rules.avg]
kind = "fedavg"
clients_per_round = 2
"""


def _reason(error: BaseException, path: str) -> str:
    """What follows ``path: `` in a one-line error."""
    message = str(error)
    assert path in message, message
    return message.split(f"{path}: ", 1)[1]


@pytest.mark.parametrize(
    ("old", "new", "path", "python"),
    [
        ("window = 500", 'window = "2000"', "learners.incremental.window", {"window": "2000"}),
        ("every = 250", "every = true", "learners.incremental.every", {"every": True}),
        ("every = 250", "every = 7.0", "learners.incremental.every", {"every": 7.0}),
    ],
)
def test_a_wrong_type_is_refused_from_toml_with_the_constructors_words(old, new, path, python):
    with pytest.raises(ExperimentError) as toml:
        parse_experiment(PREQUENTIAL.replace(old, new), "sea.toml")
    message = str(toml.value)
    assert message.startswith(f"sea.toml: {path}: ") and len(message.splitlines()) == 1
    with pytest.raises(ValueError) as constructor:
        WindowRetrain(LogisticRegression(), **python)
    name = path.rsplit(".", 1)[1]
    assert _reason(toml.value, path) == _reason(constructor.value, f"WindowRetrain.{name}")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("seed = 7", 'seed = "7"', "seed: must be an integer, got '7'"),
        ("seed = 7", "seed = -1", "seed: must be >= 0, got -1"),
        ("batch_size = 100", 'batch_size = "5"', "stream.batch_size: must be an integer, got '5'"),
        ("batch_size = 100", "batch_size = true",
         "stream.batch_size: must be an integer, got True"),
        ("n = 2_000", 'n = "2000"', "stream.n: must be an integer, got '2000'"),
        ("every = 250", 'every = 250\nseed = "7"', "learners.incremental.seed: unknown parameter"),
        ('base = { kind = "logistic" }', 'base = { kind = "logistic", seed = "7" }',
         "learners.incremental.base.seed: must be an integer, got '7'"),
        ('base = { kind = "logistic" }', 'base = { kind = "logistic", lr = "fast" }',
         "learners.incremental.base.lr: must be a number, got 'fast'"),
        ('base = { kind = "logistic" }', "base = 3",
         "learners.incremental.base: must be a learner name or a table with a 'kind', got 3"),
        ("every = 250", "every = 250\n[evaluation]\nwindow = 0",
         "evaluation.window: must be >= 1, got 0"),
        ("every = 250", "every = 250\n[evaluation]\nwindows = 3",
         "evaluation.windows: unknown key; did you mean 'window'?"),
    ],
)  # fmt: skip
def test_errors_name_the_key_path_in_one_line(old, new, expected):
    with pytest.raises(ExperimentError) as error:
        parse_experiment(PREQUENTIAL.replace(old, new, 1), "x.toml")
    assert str(error.value) == f"x.toml: {expected}"


@pytest.mark.parametrize(
    ("learner", "expected"),
    [
        (
            'kind = "drift_reset"\nbase = "logistic"\ndetector = { kind = "adwin", delat = 0.1 }',
            "learners.l.detector.delat: unknown parameter",
        ),
        (
            'kind = "drift_reset"\nbase = "logistic"\ndetector = "adwn"',
            "learners.l.detector.kind: unknown detector 'adwn'",
        ),
        (
            'kind = "static"\nbase = { kind = "mlp", schedule = "cosin" }',
            "learners.l.base.schedule: unknown schedule 'cosin'",
        ),
        (
            'kind = "static"\nbase = { kind = "static", base = { kind = "nope" } }',
            "learners.l.base.base.kind: unknown learner 'nope'",
        ),
        (
            'kind = "continual"\nbase = "mlp"\nplugins = [{ kind = "replay" }, { kind = "lwf", '
            'alpha = "1" }]',
            r"learners.l.plugins\[1\].alpha: must be a number, got '1'",
        ),
    ],
)
def test_nested_components_are_checked_against_their_own_declarations(learner, expected):
    text = f'[stream]\nkind = "sea"\n[learners.l]\n{learner}\n'
    with pytest.raises(ExperimentError, match=expected):
        parse_experiment(text)


def test_parsing_builds_nothing_building_names_the_key_path():
    # a file stream and a task sequence whose files are missing, a federation too large to
    # build in a test: all parse; building finds what is wrong and names where it is
    stream = parse_experiment(
        PREQUENTIAL.replace('kind = "sea"\nn = 2_000', 'kind = "elec2"\npath = "/no/elec2.csv"'),
        "files.toml",
    )
    assert isinstance(stream, Experiment)
    with pytest.raises(ExperimentError, match=r"^files.toml: stream: .*/no/elec2.csv"):
        build_stream(stream)
    tasks = parse_experiment(
        '[[tasks]]\nkind = "split_mnist"\npath = "/no/mnist.npz"\n'
        '[learners.ft]\nkind = "finetune"\nbase = "mlp"\n',
        "mnist.toml",
    )
    assert isinstance(tasks, ContinualExperiment)
    with pytest.raises(ExperimentError, match=r"^mnist.toml: tasks: .*/no/mnist.npz"):
        build_tasks(tasks)
    started = time.perf_counter()
    huge = parse_experiment(FEDERATED.replace("clients = 4", "clients = 1_000_000_000"))
    assert isinstance(huge, FederatedExperiment) and time.perf_counter() - started < 5


def test_seed_and_n_classes_are_filled_in_nested_learners():
    experiment = parse_experiment(
        '[stream]\nkind = "rbf"\nn_classes = 4\n[learners.w]\nkind = "window_retrain"\n'
        'base = { kind = "logistic" }\n'
    )
    stream = build_stream(experiment)
    base = build_learners(experiment, stream.info)["w"].base
    assert (base.n_classes, base.seed) == (4, experiment.seed)


def test_a_prequential_file_runs_with_its_settings():
    result = run_experiment(parse_experiment(PREQUENTIAL + "[evaluation]\nwindow = 123\n"))
    assert result.window == 123 and result.summary["incremental"]["n_samples"] == 2000


@pytest.mark.parametrize(
    ("section", "runs"),
    [
        (EvaluationSection, prequential),
        (ContinualEvaluationSection, continual_evaluation),
        (FederatedEvaluationSection, run_federation),
    ],
)
def test_every_evaluation_setting_reaches_the_evaluation(section, runs):
    declared = set(inspect.signature(runs).parameters)
    assert set(section.model_fields) - {"seeds"} <= declared


@pytest.mark.parametrize(
    ("setting", "toml", "python", "reason"),
    [
        ("batch_size", '"5"', "5", "must be an integer, got '5'"),
        ("step_time", "true", True, "must be a number, got True"),
        ("slow_fraction", "1.5", 1.5, "must be <= 1, got 1.5"),
        ("slow_factor", "0.5", 0.5, "must be >= 1, got 0.5"),
        ("restart_after", "-1.0", -1.0, "must be >= 0, got -1.0"),
    ],
)
def test_federation_settings_are_the_federations_declaration(setting, toml, python, reason):
    with pytest.raises(ExperimentError) as from_file:
        parse_experiment(FEDERATED.replace("[rules.avg]", f"{setting} = {toml}\n[rules.avg]"))
    assert _reason(from_file.value, f"federation.{setting}") == reason
    federation = build_federation(parse_experiment(FEDERATED))
    with pytest.raises(ValueError) as constructor:
        Federation(federation.data, federation.learner, **{setting: python})
    assert _reason(constructor.value, f"Federation.{setting}") == reason


def test_a_federated_file_builds_with_the_declared_defaults():
    federation = build_federation(parse_experiment(FEDERATED))
    defaults = inspect.signature(Federation).parameters
    assert federation.timeout == defaults["timeout"].default == math.inf
    assert federation.batch_size == defaults["batch_size"].default
    assert federation.n_clients == 4 and federation.duration == 40.0
    no_limit = parse_experiment(FEDERATED.replace("duration = 40.0", "timeout = inf"))
    assert build_federation(no_limit).timeout == math.inf
