"""Graph experiments end to end: a [graph] file through `adaptloop run`, its results folder
and report (TEA, TET, measures, metric per snapshot), and the refusals of bad files."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from adaptloop.cli import app
from adaptloop.config import ExperimentError, GraphExperiment, parse_experiment
from adaptloop.evaluation.graphs import graph_prequential
from adaptloop.learners import Persistence
from adaptloop.report import ReportError, build_report, load_results
from adaptloop.results import write_results
from adaptloop.streams.graphs import EdgeEvents, EdgeEventStream, LinkLoadGraphStream

runner = CliRunner()

LINKLOAD = """
name = "backbone"
seed = 0
[stream]
kind = "linkload_graph"
linkload = { days = 0.5, history = 6, failures = [{ at = 100, severity = "drastic" }] }
[learners.last]
kind = "persistence"
seq_len = 6
[learners.mean]
kind = "ewma"
seq_len = 6
[graph]
window = 6
after = 6
"""


def _run(tmp_path, text: str, name: str = "graph.toml"):
    path = tmp_path / name
    path.write_text(text)
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(path), "--out", str(out), "--format", "plain"])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_adaptloop_run_writes_a_graph_folder_and_its_report(tmp_path):
    out, printed = _run(tmp_path, LINKLOAD)
    assert "graph summary" in printed and "around each failure" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kind"] == "graph" and summary["experiment_name"] == "backbone"
    assert summary["stream"]["snapshots"] == 144
    assert summary["stream"]["events"] == [{"at": 100, "kind": "failure"}]
    records = pq.read_table(out / "records.parquet")
    assert records.num_rows == 2 * 144 and {"snapshot", "rmse", "mae"} <= set(records.schema.names)
    figures = sorted(p.stem for p in (out / "figures").iterdir())
    assert figures == ["around_failure", "measures", "rmse_per_snapshot", "tea", "tet"]
    page = (out / "report.html").read_text()
    assert "Temporal Edge Appearance" in page and "Temporal Edge Traffic" in page
    assert "graph run" in page and "From the failure at snapshot 100" in page


def test_report_keeps_the_graph_as_the_stream_had_it(tmp_path):
    stream = LinkLoadGraphStream(
        linkload={"days": 0.5, "history": 6, "failures": [{"at": 100, "severity": "drastic"}]}
    )
    result = graph_prequential(stream, {"last": Persistence(seq_len=6)})
    results = load_results(write_results(result, tmp_path, ""))
    failed = stream.events[0]["link"]
    assert results.presence.shape == (41, 144)
    # the failed link is absent from the failure on; every other link is always there
    row = int(np.flatnonzero(~results.presence.all(axis=1))[0])
    assert results.presence[row].tolist() == [True] * 100 + [False] * 44
    assert results.presence.sum() == 41 * 144 - 44 and failed >= 0
    assert results.measures["n_edges"][99:101].tolist() == [41, 40]
    assert results.failures == [100] and results.unit == "5-minute step"
    assert results.series["rmse"]["last"][1].shape == (144,)


def test_a_link_prediction_run_reports_auc_per_snapshot_and_edges_by_day(tmp_path):
    day = 86_400.0
    src = [0, 1, 2, 0, 3, 1] * 5
    dst = [1, 2, 0, 3, 1, 0] * 5
    events = EdgeEvents.from_arrays(src, dst, np.arange(30) * day / 3)
    stream = EdgeEventStream(events=events, negatives=2, batch_events=6, seed=0)
    result = graph_prequential(stream, {"last": Persistence(seq_len=1)})
    folder = write_results(result, tmp_path, "")
    report = build_report(folder)
    assert [f.name for f in report.figures] == ["roc_auc_per_snapshot", "tea", "tet", "measures"]
    results = load_results(folder)
    assert results.unit == "day" and len(results.measures["snapshot"]) == 10
    assert results.measures["new_edges"].sum() == 6  # six distinct edges, all new once


def test_a_broken_graph_summary_is_named(tmp_path):
    stream = LinkLoadGraphStream(linkload={"days": 0.2, "history": 4})
    folder = write_results(
        graph_prequential(stream, {"last": Persistence(seq_len=4)}), tmp_path, ""
    )
    summary = json.loads((folder / "summary.json").read_text())
    summary["graph"]["presence"] = {"shape": [2]}
    (folder / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(ReportError, match="graph.presence is not shape \\+ runs"):
        load_results(folder)
    del summary["graph"]
    (folder / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(ReportError, match="summary.json has no 'graph'"):
        load_results(folder)


def test_graph_files_are_checked_before_anything_runs():
    experiment = parse_experiment(LINKLOAD)
    assert isinstance(experiment, GraphExperiment) and experiment.graph.window == 6
    with pytest.raises(ExperimentError, match="graph.windw: unknown key; did you mean 'window'"):
        parse_experiment(LINKLOAD.replace("window = 6", "windw = 6"))
    with pytest.raises(ExperimentError, match="graph.after: must be >= 1, got 0"):
        parse_experiment(LINKLOAD.replace("after = 6", "after = 0"))
    not_a_graph = LINKLOAD.replace('kind = "linkload_graph"', 'kind = "linkload"')
    with pytest.raises(ExperimentError, match="stream.kind: 'linkload' is not a graph stream"):
        parse_experiment(not_a_graph)


def test_the_top_level_seed_reaches_the_simulator_unless_linkload_sets_one(tmp_path):
    spec = {"days": 0.2, "history": 4}
    seeded = LinkLoadGraphStream(linkload=spec, seed=3)
    assert seeded.source.seed == 3
    assert LinkLoadGraphStream(linkload={**spec, "seed": 1}, seed=3).source.seed == 1
