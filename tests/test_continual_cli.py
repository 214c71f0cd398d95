import json
import re

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from adaptloop.cli import app
from adaptloop.config import (
    ContinualExperiment,
    ExperimentError,
    build_all_tasks,
    parse_experiment,
)

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
        (("epochs = 1", "epochs = 1\ncolour = 1"), "tasks.colour: unknown parameter"),
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


MULTI = """
name = "gap2"

[[tasks]]
kind = "split_digits"
batch_size = 128

[[tasks]]
kind = "rotated_digits"
name = "rot"
angles = [0.0, 90.0]
batch_size = 256

[learners.finetune]
kind = "finetune"
base = { kind = "mlp", hidden = [16], lr = 0.1, optimizer = "sgd", standardize = false }

[evaluation]
seeds = [0, 1, 2]
eval_every = 2
eval_subsample = 20
"""


def test_two_sequences_and_three_seeds_in_one_run(tmp_path):
    path = tmp_path / "gap2.toml"
    path.write_text(MULTI)
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(path), "--out", str(out), "--no-report"])
    assert result.exit_code == 0, result.output
    assert re.search(r"\d+/\d+ iterations", result.output)  # progress counts iterations
    assert not re.search(r"\d+/\d+ samples", result.output)
    assert "split_digits_class: continual evaluation" in result.output
    assert "rot: continual evaluation" in result.output and "3 seeds" in result.output
    assert "±" in result.output
    records = pq.read_table(out / "records.parquet").to_pandas()
    runs = records.groupby(["sequence", "seed"]).size()
    assert sorted(runs.index) == [
        (s, seed) for s in ("rot", "split_digits_class") for seed in (0, 1, 2)
    ]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == [0, 1, 2] and "seed" not in summary
    assert list(summary["sequences"]) == ["split_digits_class", "rot"]
    rot = summary["sequences"]["rot"]
    assert rot["tasks"] == ["rot0", "rot90"] and list(rot["seeds"]) == ["0", "1", "2"]
    per_seed = [rot["seeds"][s]["learners"]["finetune"]["avg_acc"] for s in ("0", "1", "2")]
    mean = rot["learners"]["finetune"]
    assert mean["avg_acc"] == pytest.approx(sum(per_seed) / 3)
    assert mean["std"]["avg_acc"] == pytest.approx(float(np.std(per_seed)))
    assert len(set(per_seed)) > 1  # the seeds differ (split, batch order, initial weights)
    # the first sequence is also at the top level, so single-sequence readers keep working
    assert summary["tasks"] == summary["sequences"]["split_digits_class"]["tasks"]
    assert summary["learners"] == summary["sequences"]["split_digits_class"]["learners"]
    # the report reads the first sequence, its curves averaged over the seeds
    from adaptloop.report.data import load_results

    loaded = load_results(out)
    x, y = loaded.curves[("finetune", 0)]
    split = records[(records["sequence"] == "split_digits_class") & (records["eval_task"] == 0)]
    expected = split.groupby("iteration")["accuracy"].mean()
    np.testing.assert_array_equal(x, expected.index.to_numpy())
    np.testing.assert_allclose(y, expected.to_numpy())


def test_seed_option_runs_one_seed_of_a_seeds_list(tmp_path):
    path = tmp_path / "gap2.toml"
    path.write_text(MULTI)
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(path), "-o", str(out), "--no-report", "--seed", "4"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == [4] and summary["seed"] == 4
    assert "seeds = [4]" in (out / "experiment.toml").read_text()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("seeds = [0, 1, 2]", "seeds = [0, 0]"), "evaluation.seeds: repeated seed"),
        (("seeds = [0, 1, 2]", "seeds = []"), "evaluation.seeds"),
        (('kind = "rotated_digits"', 'kind = "rotated_cifar"'), "tasks[1].kind: unknown"),
        (("angles = [0.0, 90.0]", "angles = 'wide'"), "tasks[1].angles"),
    ],
)
def test_bad_multi_sequence_experiment_names_the_field(tmp_path, change, expected):
    old, new = change
    with pytest.raises(ExperimentError, match=re.escape(expected)):
        parse_experiment(MULTI.replace(old, new, 1))


def test_two_sequences_of_one_name_are_refused():
    # named in the file: refused when parsed; by their built names: when built
    twice = MULTI.replace('kind = "split_digits"', 'kind = "split_digits"\nname = "rot"')
    with pytest.raises(ExperimentError, match=re.escape("tasks[1].name: a second sequence named")):
        parse_experiment(twice)
    same = parse_experiment(MULTI.replace('name = "rot"', 'name = "split_digits_class"'))
    with pytest.raises(ExperimentError, match=re.escape("tasks[1]: a second sequence named")):
        build_all_tasks(same)
