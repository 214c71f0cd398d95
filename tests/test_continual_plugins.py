"""Plugins combined in one learner, over other torch learners, saved and restored, and on
drifting streams (task boundaries at known drifts or detector alarms)."""

import json

import numpy as np
import pytest
import torch

from adaptloop.evaluation.continual import continual_evaluation
from adaptloop.evaluation.prequential import prequential
from adaptloop.learners import registry, states_equal
from adaptloop.learners.continual import Continual, Plugin
from adaptloop.learners.models.mlp import MLPClassifier
from adaptloop.streams import ArrayStream
from adaptloop.streams.base import Drift

torch.set_num_threads(1)


def mlp(n_classes=4, **params):
    params = {"hidden": (32,), "lr": 0.1, "optimizer": "sgd", "standardize": False, **params}
    return MLPClassifier(n_classes=n_classes, **params)


class Recorder(Plugin):
    """Records the task hooks it gets: ``("begin", task, samples learned so far)`` and
    ``("end", samples in the task's data, samples learned so far)``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []
        self.learned = 0

    def begin_task(self, host, task):
        self.calls.append(("begin", task, self.learned))

    def end_task(self, host, X, y):
        self.calls.append(("end", len(y), self.learned))

    def after_step(self, host, X, y):
        self.learned += len(y)


def test_replay_and_lwf_combine_in_one_learner(two_tasks):
    plugins = {
        "replay": [{"kind": "replay", "memory": 100}],
        "lwf": [{"kind": "lwf", "alpha": 1.0}],
        "both": [{"kind": "replay", "memory": 100}, {"kind": "lwf", "alpha": 1.0}],
    }
    learners = {name: Continual(mlp(), plugins=p) for name, p in plugins.items()}
    result = continual_evaluation(two_tasks, learners, batch_size=16, epochs=3)
    final = {name: s["final_task_acc"] for name, s in result.summary.items()}
    assert final["both"][0] > 0.6 and final["both"][1] > 0.75  # both tasks learned
    assert final["both"] != final["replay"] and final["both"] != final["lwf"]
    both = learners["both"]
    assert both.plugins_[0].buffer_size_ == 100 and both.plugins_[1].old_classes_ == [0, 1]


def test_a_plugin_trains_the_ctr_model_and_a_cfc_regressor():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.integers(0, 20, 400), rng.integers(0, 5, 400)]).astype(np.float32)
    y = ((X[:, 0] % 2 == 0) ^ (X[:, 1] == 3)).astype(np.int64)
    ctr = registry.create("ctr", embedding_dim=4, hidden=(16,), lr=0.02, epochs=3, batch_size=32)
    model = Continual(ctr, plugins=["replay", "ewc"])
    before = model.predict_proba(X)
    model.learn(X[:200], y[:200])
    model.end_task(X[:200], y[:200])
    model.begin_task(1)
    model.learn(X[200:], y[200:])
    assert not np.allclose(model.predict_proba(X), before)
    assert model.plugins_[1].fisher_ is not None  # per-sample gradients through embeddings

    series = np.sin(2 * np.pi * np.arange(400) / 50).astype(np.float32)
    Xs = np.lib.stride_tricks.sliding_window_view(series[:-1], 8).copy()
    ys = series[8:].copy()
    cfc = registry.create("cfc", units=8, seq_len=8, lr=0.01, epochs=3, batch_size=32)
    model = Continual(cfc, plugins=["replay", "ewc", "gem"])
    error = np.abs(model.predict(Xs) - ys).mean()
    for lo in range(0, len(ys), 100):
        model.begin_task(lo // 100)
        model.learn(Xs[lo : lo + 100], ys[lo : lo + 100])
    assert np.abs(model.predict(Xs) - ys).mean() < 0.5 * error
    assert model.plugins_[2].n_memory_tasks_ == 3  # ended by begin_task on its kept samples
    with pytest.raises(ValueError, match="LwF needs a classifier"):
        Continual(cfc, plugins=["lwf"])


def test_state_round_trip_goes_on_as_the_original(two_tasks):
    first, second = two_tasks.tasks
    plugins = [{"kind": "replay", "memory": 50}, "lwf", "ewc", "agem", "joint"]
    model = Continual(mlp(batch_size=32), plugins=plugins, seed=1)
    model.learn(first.X_train, first.y_train)
    model.end_task(first.X_train, first.y_train)
    model.begin_task(1)
    model.learn(second.X_train[:64], second.y_train[:64])
    copy = model.clone()
    copy.load_state_dict(model.state_dict())
    assert states_equal(copy.state_dict(), model.state_dict())
    for learner in (model, copy):
        learner.learn(second.X_train[64:], second.y_train[64:])
    np.testing.assert_array_equal(
        model.predict_proba(first.X_test), copy.predict_proba(first.X_test)
    )
    with pytest.raises(ValueError, match="plugin state"):
        Continual(mlp(), plugins=["lwf"]).load_state_dict(model.state_dict())


def drifting(n=1200, drifts=(400, 900), seed=0):
    """Two features; the label is the sign of feature 0, flipped in every other concept."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2)).astype(np.float32)
    concept = np.searchsorted(np.asarray(drifts), np.arange(n), side="right")
    y = ((X[:, 0] > 0) ^ (concept % 2 == 1)).astype(np.int64)
    return ArrayStream(X, y, drifts=[Drift(p, 1) for p in drifts])


def test_known_drifts_begin_tasks_at_their_positions_on_a_stream():
    recorder = Recorder()
    model = Continual(mlp(n_classes=2, hidden=(8,)), plugins=[recorder], window=150)
    result = prequential(drifting(), {"continual": model}, batch_size=64)
    assert result.summary["continual"]["n_samples"] == 1200
    calls = model.plugins_[0].calls
    # each drift: the task ends on its last 150 samples, the next begins at the drift
    assert calls == [("end", 150, 400), ("begin", 1, 400), ("end", 150, 900), ("begin", 2, 900)]
    assert model.task_ == 2


def test_a_detector_finds_the_boundaries_itself_and_none_ignores_them():
    recorder = Recorder()
    model = Continual(mlp(n_classes=2, hidden=(8,)), plugins=[recorder], boundaries="adwin")
    prequential(drifting(n=3000, drifts=(1500,)), {"continual": model}, batch_size=50)
    assert any(1500 <= a < 1900 for a in model.alarms)  # the drift is found
    begins = [c for c in model.plugins_[0].calls if c[0] == "begin"]
    # a task per alarm, beginning after the alarming sample was learned
    assert begins == [("begin", k + 1, a + 1) for k, a in enumerate(model.alarms)]
    assert model.task_ == len(model.alarms)
    ignoring = Continual(mlp(n_classes=2), plugins=[Recorder()], boundaries="none")
    prequential(drifting(), {"continual": ignoring}, batch_size=64)
    ignoring.end_task(np.ones((2, 2), np.float32), np.array([0, 1]))
    assert ignoring.plugins_[0].calls == [] and ignoring.task_ == 0
    with pytest.raises(ValueError, match="needs a classifier base"):
        Continual(registry.create("mlp_regressor"), boundaries="ddm")


def test_the_continual_on_stream_example_runs_its_four_learners(tmp_path):
    from pathlib import Path

    from typer.testing import CliRunner

    from adaptloop.cli import app

    text = (Path(__file__).resolve().parents[1] / "examples/continual_on_stream.toml").read_text()
    text = text.replace("n = 24_000", "n = 2_400")  # a tenth of it, drifts scaled alike
    for at in ("6_000", "12_000", "18_000"):
        text = text.replace(f"at = {at}", f"at = {int(at.replace('_', '')) // 10}")
    path = tmp_path / "continual_on_stream.toml"
    path.write_text(text)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(out), "--no-report"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["learners"]) == {"finetune", "replay_lwf", "ewc", "drift_reset"}
    around = {(d["learner"], d["position"]) for d in summary["drifts"]}
    assert len(around) == 4 * 3  # each learner around each of the three drifts
