import json

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from adaptloop.cli import app
from adaptloop.experiment import ContinualExperiment, ExperimentError, parse_experiment

runner = CliRunner()

SMALL = """
name = "gap"
seed = 2

[tasks]
kind = "split_digits"
batch_size = 64
epochs = 1

[learners.finetune]
kind = "finetune"
base = { kind = "mlp", hidden = [16], lr = 0.1, optimizer = "sgd", standardize = false }

[learners.er]
kind = "er"
base = { kind = "mlp", hidden = [16], lr = 0.1, optimizer = "sgd", standardize = false }
memory = 50

[evaluation]
eval_every = 2
eval_subsample = 20
"""


def test_continual_run_writes_the_continual_results_folder(tmp_path):
    path = tmp_path / "gap.toml"
    path.write_text(SMALL)
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(path), "--out", str(out), "--no-report"])
    assert result.exit_code == 0, result.output
    assert "continual evaluation" in result.output and "min-ACC" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kind"] == "continual" and summary["seed"] == 2
    assert summary["tasks"] == ["0-1", "2-3", "4-5", "6-7", "8-9"]
    assert summary["eval_every"] == 2 and summary["task_boundaries"][0] == 0
    assert set(summary["learners"]) == {"finetune", "er"}
    records = pq.read_table(out / "records.parquet").to_pandas()
    assert set(records["learner"]) == {"finetune", "er"}
    assert (records["eval_task"] <= records["task"]).all()
    assert (out / "experiment.toml").read_text() == SMALL


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("epochs = 1", "epochs = 1\ncolour = 1"), "tasks.colour: unknown key"),
        (("eval_every = 2", "eval_every = 0"), "evaluation.eval_every"),
        (("eval_every = 2", "eval_evry = 2"), "evaluation.eval_evry: unknown key"),
        (('kind = "split_digits"', 'kind = "split_cifar"'), "unknown task sequence"),
        (("memory = 50", "memory = 'big'"), "learners.er.memory"),
    ],
)
def test_bad_continual_experiment_gives_one_line_and_exit_code_2(tmp_path, change, expected):
    old, new = change
    path = tmp_path / "gap.toml"
    path.write_text(SMALL.replace(old, new, 1))
    result = runner.invoke(app, ["run", str(path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert expected in result.output.strip()
    assert len(result.output.strip().splitlines()) == 1


def test_prequential_and_continual_files_parse_to_their_kind():
    assert isinstance(parse_experiment(SMALL), ContinualExperiment)
    with pytest.raises(ExperimentError, match="stream: unknown key"):
        parse_experiment(SMALL + '\n[stream]\nkind = "sea"\n')
