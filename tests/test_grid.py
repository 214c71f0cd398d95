"""Experiment grids and experiments run as their parts: a [grid] is checked key by key, expands
into named runs, runs here one part after the other, and gives the numbers of the experiment
run whole; `adaptloop run` writes one results folder and one report with a grid table."""

from __future__ import annotations

import json
import sys

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from adaptloop.cli import app
from adaptloop.config import ExperimentError, load_experiment, parse_experiment, run_experiment
from adaptloop.config.grid import combine, map_parts, numbers, split
from adaptloop.config.run import run_part

PREQUENTIAL = """
name = "tiny"
seed = 3
[stream]
kind = "sea"
n = 1_500
drifts = [{ at = 700, width = 1 }]
batch_size = 100
[learners.lr]
kind = "logistic"
[learners.reset]
kind = "drift_reset"
base = "logistic"
detector = "adwin"
[learners.nb]
kind = "forgetting_nb"
"""

CONTINUAL = """
[tasks]
kind = "split_digits"
batch_size = 128
[learners.lr]
kind = "logistic"
[learners.nb]
kind = "forgetting_nb"
n_classes = 10
[evaluation]
seeds = [0, 1]
eval_every = 4
"""


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ("stream.noise = [0.0, -1.0]", "grid.stream.noise: must be >= 0, got -1.0"),
        (
            '"learners.lr.lrr" = [0.1]',
            "grid.learners.lr.lrr: unknown parameter; did you mean 'lr'?",
        ),
        ("learners.x.lr = [0.1]", "grid.learners.x.lr: no learner 'x'; the file's: lr, reset, nb"),
        ("learners.lr = [1]", "grid.learners.lr: name a learner's parameter"),
        ("evaluation.window = [10]", "grid.evaluation.window: a grid varies seed, stream.*, lear"),
        ("seed = 3", "grid.seed: must be a list of values, got 3"),
        ("seed = []", "grid.seed: must be a list of values, got []"),
        ("seed = [1, 1]", "grid.seed: a value is repeated in [1, 1]"),
        ('stream.kind = ["sea", "agrawl"]', "grid.stream.kind: unknown stream 'agrawl'"),
        ('"stream.noise" = [0.1]\nstream.noise = [0.2]', "grid: stream.noise: given twice"),
    ],
)
def test_every_grid_key_is_checked_and_named(grid, message):
    with pytest.raises(ExperimentError) as refused:
        parse_experiment(f"{PREQUENTIAL}[grid]\n{grid}\n", "exp.toml")
    assert str(refused.value).startswith(f"exp.toml: {message}")


def test_a_continual_grid_varies_tasks_and_learners_but_not_seed():
    with pytest.raises(ExperimentError, match=r"grid.seed: .* \[evaluation\] seeds"):
        parse_experiment(CONTINUAL + "[grid]\nseed = [1, 2]\n")
    exp = parse_experiment(CONTINUAL + '[grid]\ntasks.scenario = ["class", "task"]\n')
    assert exp.grid == {"tasks.scenario": ["class", "task"]}


def test_a_grid_expands_into_named_runs_without_repeating_a_run():
    exp = parse_experiment(
        PREQUENTIAL + "[grid]\nseed = [1, 2]\nlearners.lr.lr = [0.01, 0.1]\n"
        'learners.reset.base.lr = [0.05]\n"stream.noise" = [0.1]\n'
    )
    names = [part.name for part in split(exp)]
    assert names[:4] == [
        "lr (seed=1, lr=0.01, noise=0.1)",
        "reset (seed=1, base.lr=0.05, noise=0.1)",
        "nb (seed=1, noise=0.1)",
        "lr (seed=1, lr=0.1, noise=0.1)",
    ]
    assert len(names) == len(set(names)) == 8  # reset and nb once per seed, lr twice
    reset = split(exp)[1].experiment
    assert reset.seed == 1 and list(reset.learners) == ["reset"]
    assert reset.learners["reset"].params["base"] == {"kind": "logistic", "lr": 0.05}
    assert reset.stream.params["noise"] == 0.1


def test_the_parts_put_together_are_the_experiment_run_whole():
    for text in (PREQUENTIAL, CONTINUAL):
        exp = parse_experiment(text)
        parts = split(exp)
        together = combine(exp, parts, map_parts(run_part, parts))
        assert numbers(together) == numbers(run_experiment(exp))


def test_a_grid_cell_has_the_numbers_of_the_file_set_to_its_values():
    exp = parse_experiment(PREQUENTIAL + "[grid]\nseed = [4, 5]\nlearners.lr.lr = [0.2]\n")
    grid = run_experiment(exp)
    text = PREQUENTIAL.replace("seed = 3", "seed = 5").replace(
        '"logistic"\n', '"logistic"\nlr = 0.2\n', 1
    )
    alone = run_experiment(parse_experiment(text))
    for learner, run in (("lr", "lr (seed=5, lr=0.2)"), ("nb", "nb (seed=5)")):
        ours, theirs = grid.summary[run], alone.summary[learner]
        assert ours["accuracy"] == theirs["accuracy"] and ours["log_loss"] == theirs["log_loss"]


def test_cli_runs_a_grid_into_one_folder_and_one_report(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(PREQUENTIAL + "[grid]\nseed = [1, 2]\nlearners.lr.lr = [0.01, 0.1]\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(out), "--format", "plain"])
    assert result.exit_code == 0, result.output
    assert (
        "tiny: 3 learners, seeds 1, 2, grid seed (2) x learners.lr.lr (2); 8 runs" in result.output
    )
    assert "grid (mean ± std over the seeds)" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["grid"]["keys"] == ["seed", "learners.lr.lr"]
    assert summary["grid"]["runs"]["nb (seed=2)"] == {"learner": "nb", "values": {"seed": 2}}
    records = pq.read_table(out / "records.parquet")
    assert len(set(records["learner"].to_pylist())) == 8
    page = (out / "report.html").read_text()
    assert "Grid" in page and "lr (seed=2, lr=0.1)" in page


def test_a_grid_over_data_files_reads_them_relative_to_the_experiment(tmp_path):
    (tmp_path / "data").mkdir()
    for name, flip in (("a.csv", 0), ("b.csv", 1)):
        rows = [f"{i % 7},{(i % 2) ^ flip}" for i in range(200)]
        (tmp_path / "data" / name).write_text("x,y\n" + "\n".join(rows) + "\n")
    path = tmp_path / "files.toml"
    path.write_text(
        '[stream]\nkind = "csv"\npath = "data/a.csv"\ntarget = "y"\nbatch_size = 50\n'
        '[learners.nb]\nkind = "forgetting_nb"\n'
        '[grid]\nstream.path = ["data/a.csv", "data/b.csv"]\n'
    )
    exp = load_experiment(path)
    assert exp.grid["stream.path"] == [str(tmp_path / "data" / n) for n in ("a.csv", "b.csv")]
    assert len(run_experiment(exp).summary) == 2


def test_a_missing_ray_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    path = tmp_path / "plain.toml"
    path.write_text(PREQUENTIAL)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    result = CliRunner().invoke(
        app, ["run", str(path), "--engine", "ray", "-o", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert "pip install 'adaptloop[distributed]'" in result.output
    assert "Traceback" not in result.output


def test_cli_refuses_an_address_without_ray(tmp_path):
    path = tmp_path / "plain.toml"
    path.write_text(PREQUENTIAL)
    args = ["run", str(path), "--engine", "local", "--address", "auto", "-o", str(tmp_path / "o")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "--address and --cpus apply to --engine ray" in result.output


def test_cli_seed_runs_the_grid_with_that_seed_only(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(PREQUENTIAL + "[grid]\nseed = [1, 2]\nlearners.lr.lr = [0.01, 0.1]\n")
    out = tmp_path / "out"
    args = ["run", str(path), "--seed", "7", "-o", str(out), "--no-report", "--format", "plain"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    runs = json.loads((out / "summary.json").read_text())["grid"]["runs"]
    assert list(runs) == [
        "lr (seed=7, lr=0.01)",
        "reset (seed=7)",
        "nb (seed=7)",
        "lr (seed=7, lr=0.1)",
    ]
    assert "seed = [7]" in (out / "experiment.toml").read_text()
