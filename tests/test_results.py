"""Every kind of run's result is a ``Result``: it writes the same folder shape, and the tables
it gives the CLI are those a report builds from the written folder."""

import json

import numpy as np
import pytest

from adaptloop.evaluation import prequential
from adaptloop.evaluation.continual import ContinualSuite, continual_evaluation
from adaptloop.learners.models.majority import MajorityClass
from adaptloop.report import load_results
from adaptloop.results import (
    RESULT_FILES,
    Result,
    ResultsError,
    format_number,
    read_summary,
    write_results,
)
from adaptloop.streams import ArrayStream, Drift
from adaptloop.streams.tasks import split


def _prequential():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 2))
    y = np.where(np.arange(600) < 300, X[:, 0] > 0, X[:, 0] < 0).astype(np.int64)
    stream = ArrayStream(X, y, drifts=[Drift(300)])
    return prequential(stream, {"m": MajorityClass(n_classes=2)}, batch_size=50, window=100)


def _continual(seeds):
    X = np.repeat(np.eye(4, dtype=np.float32), 8, axis=0)
    y = np.repeat(np.arange(4), 8)
    sequence = split(X, y, X, y, [[0, 1], [2, 3]])
    runs = {s: continual_evaluation(sequence, {"m": MajorityClass(4)}, 4, seed=s) for s in seeds}
    return ContinualSuite({sequence.name: runs})


def _federated():
    from adaptloop.distributed.data import make_federated_data
    from adaptloop.distributed.federation import Federation
    from adaptloop.distributed.local import LocalEngine
    from adaptloop.distributed.rules import FedAvg
    from adaptloop.distributed.run import run_federation
    from adaptloop.learners import LogisticRegression

    data = make_federated_data(
        "sea", clients=4, samples_per_client=200, concepts=[0, 3], drift_at=[20.0], seed=0
    )
    fed = Federation(data, LogisticRegression(lr=0.05), duration=40.0, eval_every=5.0)
    return run_federation(fed, {"avg": FedAvg(2)}, LocalEngine(), target=0.6, window=10)


KINDS = {
    "prequential": _prequential,
    "continual": lambda: _continual((0,)),
    "continual over seeds": lambda: _continual((0, 1)),
    "one continual run": lambda: _continual((0,)).first,
    "federated": _federated,
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_result_writes_its_folder_and_the_report_shows_its_tables(kind, tmp_path):
    result = KINDS[kind]()
    assert isinstance(result, Result)
    folder = write_results(result, tmp_path / "run", "seed = 1\n", seed=1, wall_seconds=0.5)
    assert sorted(p.name for p in folder.iterdir()) == sorted(RESULT_FILES)
    summary = read_summary(folder)
    assert summary["wall_seconds"] == 0.5 and "adaptloop_version" in summary
    printed = [t.for_terminal() for t in result.tables() if t.terminal_title]
    assert printed, kind
    shown = {t.terminal_title: t.for_terminal() for t in load_results(folder).tables()}
    for table in printed:
        assert [c.name for c in shown[table.terminal_title].columns] == [
            c.name for c in table.columns
        ]
        rows = shown[table.terminal_title].rows
        assert [[c.text for c in r] for r in rows] == [[c.text for c in r] for r in table.rows]


def test_a_run_over_several_seeds_records_them_not_one_seed(tmp_path):
    folder = write_results(_continual((3, 4)), tmp_path / "c", "", seed=3)
    summary = read_summary(folder)
    assert "seed" not in summary and summary["seeds"] == [3, 4]


def test_federated_summary_has_the_federation_and_its_table():
    result = _federated()
    summary = result.summary_json()
    assert summary["kind"] == "prequential" and summary["position_label"]
    assert set(summary["federated"]["rules"]) == {"avg"}
    titles = [t.title for t in result.tables()]
    assert titles[:2] == ["Summary", "Federation"]


def test_numbers_are_written_one_way():
    assert format_number(0.123456) == "0.1235"
    assert format_number(float("nan")) == format_number(None) == "–"
    assert format_number(np.int64(12345)) == "12,345"
    assert format_number(np.float32(0.5), 2) == "0.50"


def test_json_has_no_nan(tmp_path):
    result = _prequential()
    result.summary["m"]["accuracy"] = float("nan")
    folder = write_results(result, tmp_path / "r", "")
    text = (folder / "summary.json").read_text()
    assert "NaN" not in text and json.loads(text)["learners"]["m"]["accuracy"] is None


def test_reading_a_folder_that_is_not_one_names_the_problem(tmp_path):
    with pytest.raises(ResultsError, match="results folder not found"):
        read_summary(tmp_path / "absent")
    (tmp_path / "summary.json").write_text("[1, 2]")
    with pytest.raises(ResultsError, match="summary.json is not a JSON object"):
        read_summary(tmp_path)
