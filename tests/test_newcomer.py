"""A newcomer's first hour (issue 16), through the command line: one line and exit code 2 for
every mistake and missing extra (square brackets printed as they are), `list` without torch,
tables that never cut a number, `--out` that never mixes runs, `summary.csv`, MLflow logging
into a real local store. Fresh interpreters where what is imported matters."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import polars as pl
import pytest
from typer.testing import CliRunner

from adaptloop.cli import app

runner = CliRunner()
SRC = str(Path(__file__).resolve().parents[1] / "src")

SMALL = """
name = "small"
seed = 3

[stream]
kind = "sea"
n = 2_000
drifts = [{ at = 1_000, width = 1 }]
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
window = 200
after = 200
"""


def write(folder: Path, text: str = SMALL, name: str = "exp.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def adaptloop(*args: str, hide: tuple[str, ...] = (), cwd: Path | None = None, **env: str):
    """``python -m adaptloop ARGS`` in a fresh interpreter; ``hide``: top-level modules that
    fail to import there, as on a machine without them."""
    shim = Path(cwd or ".") / "_hidden_modules"
    paths = [SRC]
    if hide:
        shim.mkdir(exist_ok=True)
        for module in hide:
            (shim / f"{module}.py").write_text(
                f"raise ModuleNotFoundError(\"No module named '{module}'\", name={module!r})\n"
            )
        paths.insert(0, str(shim))
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "COLUMNS": "80", **env}
    return subprocess.run(
        [sys.executable, "-m", "adaptloop", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment,
        timeout=300,
    )


# -- mistakes and missing extras: one line, exit 2 ------------------------------------------------
def test_a_missing_torch_is_one_line_naming_the_extra(tmp_path):
    text = SMALL.replace('base = { kind = "logistic" }\nwindow', 'base = { kind = "mlp" }\nwindow')
    done = adaptloop("run", str(write(tmp_path, text)), "--no-report", "-o", str(tmp_path / "o"),
                     hide=("torch",), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "pip install 'adaptloop[torch]'" in done.stderr


def test_serve_without_its_extra_names_it_with_its_brackets(tmp_path):
    done = adaptloop("serve", hide=("fastapi", "uvicorn"), cwd=tmp_path)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "adaptloop[serve]" in done.stderr


def test_help_and_errors_keep_square_brackets(tmp_path):
    assert "[serve]" in runner.invoke(app, ["serve", "--help"]).output
    missing = tmp_path / "runs[1]" / "exp[2].toml"
    result = runner.invoke(app, ["run", str(missing)])
    assert result.exit_code == 2 and "exp[2].toml" in result.output


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("window = 500", 'window = "2000"',
         "learners.retrain.window: must be an integer, got '2000'"),
        ("every = 250", "evry = 250",
         "learners.retrain.evry: unknown parameter; did you mean 'every'?"),
        ('"window_retrain"', '"windw_retrain"', "did you mean 'window_retrain'?"),
        ("after = 200", 'after = 200\nmetrics = ["acuracy"]',
         "unknown metric 'acuracy'; did you mean 'accuracy'?"),
    ],
)  # fmt: skip
def test_mistakes_in_a_file_are_one_line_with_the_key_path(tmp_path, old, new, expected):
    result = runner.invoke(app, ["run", str(write(tmp_path, SMALL.replace(old, new, 1)))])
    assert result.exit_code == 2
    assert expected in result.output and len(result.output.strip().splitlines()) == 1


def test_list_is_one_line_per_component_and_imports_no_torch(tmp_path):
    code = (
        "import sys\nfrom adaptloop.cli import app\n"
        "try:\n    app(['list'])\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules, file=sys.stderr)"
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.stderr.strip().endswith("False"), done.stderr
    lines = done.stdout.splitlines()
    assert any(line.split()[:1] == ["window_retrain"] for line in lines)
    assert not any("``" in line or ":func:" in line or "…" in line for line in lines)
    one = runner.invoke(app, ["list", "drift_reset"])
    assert "window: int >= 1 = 2000" in one.output
    assert runner.invoke(app, ["list", "adwn"]).exit_code == 2


# -- tables that never cut a number -------------------------------------------------------------
def test_piped_output_prints_every_number_whole(tmp_path):
    done = adaptloop("run", str(write(tmp_path)), "--no-report", "-o", str(tmp_path / "o"),
                     cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "…" not in done.stdout
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    for name, values in summary["learners"].items():
        row = next(line for line in done.stdout.splitlines() if line.startswith(name + " "))
        assert f"{values['accuracy']:.4f}" in row and f"{values['log_loss']:.4f}" in row
    assert "log_loss" in done.stdout  # headers whole too


def test_markdown_tables(tmp_path):
    result = runner.invoke(
        app, ["run", str(write(tmp_path)), "--no-report", "-o", str(tmp_path / "o"),
              "--format", "markdown"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "| learner |" in result.output and "---: |" in result.output


# -- the results folder ---------------------------------------------------------------------------
def test_out_refuses_a_foreign_folder_and_replaces_a_results_folder_whole(tmp_path):
    path, out = write(tmp_path), tmp_path / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("mine")
    refused = runner.invoke(app, ["run", str(path), "-o", str(out), "--no-report"])
    assert refused.exit_code == 2 and "--force" in refused.output
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]  # nothing ran, nothing written
    assert (
        runner.invoke(app, ["run", str(path), "-o", str(out), "--no-report", "--force"]).exit_code
        == 0
    )
    assert (out / "thesis.tex").read_text() == "mine"

    results = tmp_path / "results"
    assert runner.invoke(app, ["run", str(path), "-o", str(results)]).exit_code == 0
    assert (results / "report.html").exists()
    again = runner.invoke(app, ["run", str(path), "-o", str(results), "--no-report"])
    assert again.exit_code == 0
    assert not (results / "report.html").exists()  # no stale report beside the new results


def test_summary_csv_and_records_read_as_they_are_with_pandas_and_polars(tmp_path):
    out = tmp_path / "o"
    assert (
        runner.invoke(app, ["run", str(write(tmp_path)), "-o", str(out), "--no-report"]).exit_code
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    table = pd.read_csv(out / "summary.csv").set_index("learner")
    for name, values in summary["learners"].items():
        assert table.loc[name, "accuracy"] == pytest.approx(values["accuracy"], rel=1e-12)
    assert pl.read_csv(out / "summary.csv").height == 2
    assert pl.read_parquet(out / "records.parquet").height == len(
        pd.read_parquet(out / "records.parquet")
    )


# -- MLflow ----------------------------------------------------------------------------------------
def test_mlflow_logs_parameters_metrics_and_the_folder_to_a_local_file_store(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    store = tmp_path / "mlruns"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    out = tmp_path / "o"
    result = runner.invoke(app, ["run", str(write(tmp_path)), "-o", str(out), "--mlflow"])
    assert result.exit_code == 0, result.output
    client = mlflow.MlflowClient(tracking_uri=store.as_uri())
    experiment = client.get_experiment_by_name("small")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.params["learners.retrain.window"] == "500" and run.data.params["seed"] == "3"
    summary = json.loads((out / "summary.json").read_text())
    assert run.data.metrics["adwin/final/accuracy"] == pytest.approx(
        summary["learners"]["adwin"]["accuracy"]
    )
    history = client.get_metric_history(run.info.run_id, "retrain/accuracy_window")
    assert [m.step for m in history] == sorted(m.step for m in history) and history[
        -1
    ].step == 2_000
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"summary.json", "summary.csv", "records.parquet", "report.html"} <= artifacts


def test_mlflow_without_its_extra_fails_before_the_run(tmp_path):
    done = adaptloop("run", str(write(tmp_path)), "--mlflow", "-o", str(tmp_path / "o"),
                     hide=("mlflow",), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2 and "adaptloop[mlflow]" in done.stderr
    assert not (tmp_path / "o").exists()
