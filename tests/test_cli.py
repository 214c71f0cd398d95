import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from adaptloop.cli import app
from adaptloop.config import (
    Experiment,
    ExperimentError,
    build_stream,
    load_experiment,
    parse_experiment,
)

runner = CliRunner()

SMALL = """
name = "small"
seed = 3

[stream]
kind = "sea"
n = 3_000
drifts = [{ at = 1_500, width = 1 }]
batch_size = 100

[learners.retrain]
kind = "window_retrain"
base = { kind = "logistic" }
window = 500
every = 250

[learners.adwin]
kind = "drift_reset"
base = { kind = "logistic" }
detector = "adwin"

[evaluation]
window = 300
after = 300
"""


def write(tmp_path, text, name="exp.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_run_writes_results_folder_and_prints_summary(tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(write(tmp_path, SMALL)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "prequential summary" in result.output and "retrain" in result.output
    written = {"records.parquet", "summary.json", "summary.csv", "experiment.toml"}
    written |= {"report.html", "figures"}
    assert {p.name for p in out.iterdir()} == written
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["learners"]) == {"retrain", "adwin"}
    assert summary["stream"]["drifts"] == [{"position": 1500, "width": 1}]
    assert {d["learner"] for d in summary["drifts"]} == {"retrain", "adwin"}
    records = pq.read_table(out / "records.parquet").to_pandas()
    assert len(records) == 2 * 30
    assert (out / "experiment.toml").read_text() == SMALL


def test_seed_override_is_recorded_and_reproducible(tmp_path):
    path = write(tmp_path, SMALL)
    outs = [tmp_path / f"o{i}" for i in range(3)]
    for out, seed in zip(outs, (11, 11, 12), strict=True):
        assert (
            runner.invoke(app, ["run", str(path), "-o", str(out), "--seed", str(seed)]).exit_code
            == 0
        )
    tables = [pq.read_table(o / "records.parquet").to_pandas() for o in outs]
    assert tables[0]["accuracy"].equals(tables[1]["accuracy"])
    assert not tables[0]["accuracy"].equals(tables[2]["accuracy"])
    assert "seed = 11" in (outs[0] / "experiment.toml").read_text()
    assert json.loads((outs[0] / "summary.json").read_text())["seed"] == 11


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("seed = 3", "seed = 3\ncolour = 'red'"), "colour: unknown key"),
        (("window = 500", "window = 500\nwindoww = 3"), "learners.retrain.windoww"),
        (("window = 500", 'window = "big"'), "learners.retrain.window"),
        (('kind = "sea"', 'kind = "seaa"'), "unknown stream 'seaa'"),
        (
            ('base = { kind = "logistic" }\nwindow', 'base = { kind = "nope" }\nwindow'),
            "learners.retrain.base.kind",
        ),
        (('detector = "adwin"', 'detector = "nope"'), "nope"),
        (("window = 300\n", "window = 300\nmetrics = ['mae']\n"), "mae"),
        (("batch_size = 100", "batch_size = 0"), "stream.batch_size"),
        (("[learners.adwin]", "[learners.adwin"), "not valid TOML"),
    ],
)
def test_bad_experiment_gives_one_line_and_exit_code_2(tmp_path, change, expected):
    old, new = change
    assert old in SMALL
    path = write(tmp_path, SMALL.replace(old, new, 1))
    result = runner.invoke(app, ["run", str(path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert expected in message
    assert len(message.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_missing_experiment_file(tmp_path):
    result = runner.invoke(app, ["run", str(tmp_path / "absent.toml")])
    assert result.exit_code == 2
    assert "absent.toml" in result.output


def test_missing_data_file_parses_and_is_named_when_built(tmp_path):
    text = """
[stream]
kind = "elec2"
path = "/nowhere/elec2.csv.gz"
[learners.lr]
kind = "logistic"
"""
    experiment = parse_experiment(text, "elec.toml")  # parsing opens no file
    with pytest.raises(ExperimentError, match=r"^elec.toml: stream: .*/nowhere/elec2.csv.gz"):
        build_stream(experiment)
    path = write(tmp_path, text)
    result = runner.invoke(app, ["run", str(path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1 and "/nowhere/elec2.csv.gz" in result.output


def test_default_experiment_validates():
    experiment = load_experiment()
    assert set(experiment.learners) == {
        "static",
        "window_retrain",
        "adwin_reset",
        "hoeffding_adaptive_tree",
    }
    assert experiment.stream.kind == "sea"


def test_list_shows_streams_learners_and_detectors():
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0
    for name in ("sea", "hyperplane", "rbf", "elec2", "logistic", "window_retrain", "adwin"):
        assert name in result.output
    one = runner.invoke(app, ["list", "window_retrain"])
    assert one.exit_code == 0
    assert "window: int >= 1 = 2000" in one.output  # each parameter's declared type


EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.toml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_examples_validate(path, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # data paths in an experiment file are relative to the file
    text = path.read_text()
    missing = re.findall(r'path = "([^"]+)"', text)
    missing = [p for p in missing if not (path.parent / p).exists()]
    experiment = load_experiment(path)  # parses without reading data
    assert experiment.name == path.stem
    if missing and isinstance(experiment, Experiment):
        with pytest.raises(ExperimentError, match=re.escape(missing[0])):
            build_stream(experiment)
