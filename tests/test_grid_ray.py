"""Experiments on Ray: `adaptloop run --engine ray` runs the parts of an experiment (learners,
seeds, task sequences, grid cells) as Ray tasks and writes the numbers of the local run."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from adaptloop.cli import app
from adaptloop.config import parse_experiment, run_experiment
from adaptloop.config.grid import numbers

ray = pytest.importorskip("ray")

EXPERIMENT = """
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


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_an_experiment_and_its_grid_on_ray_have_the_local_numbers(local_ray, tmp_path):
    plain = parse_experiment(EXPERIMENT)
    assert numbers(run_experiment(plain, engine="ray")) == numbers(run_experiment(plain))
    continual = parse_experiment(
        '[tasks]\nkind = "split_digits"\nbatch_size = 128\n[learners.lr]\nkind = "logistic"\n'
        "[evaluation]\nseeds = [0, 1]\neval_every = 4\n"
    )
    assert numbers(run_experiment(continual, engine="ray")) == numbers(run_experiment(continual))

    path = tmp_path / "grid.toml"
    path.write_text(EXPERIMENT + "[grid]\nseed = [1, 2]\nlearners.lr.lr = [0.01, 0.1]\n")
    folders = {}
    for engine in ("local", "ray"):
        folders[engine] = out = tmp_path / engine
        args = ["run", str(path), "--engine", engine, "-o", str(out), "--no-report"]
        result = CliRunner().invoke(app, [*args, "--format", "plain"])
        assert result.exit_code == 0, result.output
        assert ("8 runs on Ray" in result.output) == (engine == "ray")
    assert ray.is_initialized()  # a Ray it did not start is left running

    def numbers_of(folder):
        records = pq.read_table(folder / "records.parquet").to_pandas()
        summary = json.loads((folder / "summary.json").read_text())
        timings = [c for c in records.columns if c.endswith("_seconds")]
        return (
            records.drop(columns=timings),
            summary["grid"],
            {
                run: {k: v for k, v in s.items() if not k.endswith(("_seconds", "_second"))}
                for run, s in summary["learners"].items()
            },
        )

    local, remote = numbers_of(folders["local"]), numbers_of(folders["ray"])
    assert local[0].equals(remote[0]) and local[1:] == remote[1:]
