import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from adaptloop.evaluation.continual import (
    continual_evaluation,
    continual_metrics,
    min_acc,
    stability_gaps,
    wc_acc,
    windowed_forgetting,
    windowed_plasticity,
)
from adaptloop.learners.models.majority import MajorityClass
from adaptloop.results import CONTINUAL_RECORD_COLUMNS, write_results
from adaptloop.streams.tasks import split

NAN = np.nan

# Three tasks of 2 iterations each, evaluated every iteration (hand-made curves).
ITS = np.array([1, 2, 3, 4, 5, 6])
ACC = np.array(
    [
        [0.50, NAN, NAN],
        [0.90, NAN, NAN],
        [0.30, 0.60, NAN],  # task 0 collapses right after the switch
        [0.80, 0.95, NAN],  # ... and recovers
        [0.70, 0.40, 0.70],
        [0.85, 0.90, 1.00],
    ]
)
BOUNDS = [0, 2, 4]


def test_min_acc_is_the_mean_of_each_old_tasks_minimum_after_it_was_learned():
    # task 0 after iteration 2: min(0.3, 0.8, 0.7, 0.85) = 0.3; task 1 after 4: min(0.4, 0.9)
    assert min_acc(ITS, ACC, BOUNDS) == pytest.approx((0.30 + 0.40) / 2)
    assert np.isnan(min_acc(ITS[:2], ACC[:2, :1], [0]))


def test_wc_acc_weighs_the_current_task_by_one_over_t():
    assert wc_acc(1.0, 0.35, 3) == pytest.approx(1.0 / 3 + 2 / 3 * 0.35)
    assert wc_acc(0.8, float("nan"), 1) == 0.8


def test_windowed_forgetting_and_plasticity_respect_the_window():
    acc = np.array([0.9, 0.8, 0.2, 0.6])
    assert windowed_forgetting(acc, 2) == pytest.approx(0.6)  # 0.8 -> 0.2
    assert windowed_forgetting(acc, 3) == pytest.approx(0.7)  # 0.9 -> 0.2
    assert windowed_forgetting(acc, 1) == 0.0  # a window of one point holds no pair
    assert windowed_plasticity(acc, 2) == pytest.approx(0.4)  # 0.2 -> 0.6


def test_windows_count_evaluations_as_the_authors_deque_does():
    """De Lange et al.'s code keeps a deque of the last w accuracies per task: with evaluation
    every 5 iterations, a window of 2 still holds two consecutive evaluations."""
    rng = np.random.default_rng(0)
    curve = rng.uniform(size=40)
    for w in (2, 5, 10):
        window: list[float] = []
        expected = 0.0
        for a in curve:  # the authors' update, written out
            window = [*window, a][-w:]
            n = len(window)
            pairs = [window[i] - window[j] for i in range(n) for j in range(i + 1, n)]
            expected = max([expected, *pairs])
        assert windowed_forgetting(curve, w) == pytest.approx(expected)
    its = np.array([5, 10, 15, 20])
    acc = np.array([[0.9, NAN], [0.3, NAN], [0.2, 0.5], [0.8, 0.9]])
    assert continual_metrics(its, acc, [0, 10], windows=(2,))["wf"]["2"] == pytest.approx(0.6 / 2)


def test_continual_metrics_on_the_hand_made_curves():
    m = continual_metrics(ITS, ACC, BOUNDS, windows=(2, 10))
    assert m["avg_acc"] == pytest.approx((0.85 + 0.90 + 1.00) / 3)
    assert m["avg_acc_task_ends"] == pytest.approx([0.9, (0.8 + 0.95) / 2, m["avg_acc"]])
    assert m["min_acc"] == pytest.approx(0.35)
    assert m["wc_acc"] == pytest.approx(1.0 / 3 + 2 / 3 * 0.35)
    # over all tasks, as the authors' code averages: task 0's largest drop within 2 evaluations
    # is 0.9 -> 0.3, task 1's 0.95 -> 0.4, task 2 never drops; within 10: 0.9 -> 0.3 again
    assert m["wf"]["2"] == pytest.approx((0.6 + 0.55 + 0.0) / 3)
    assert m["wf"]["10"] == pytest.approx((0.6 + 0.55 + 0.0) / 3)
    # own-training gains: task 0 0.5 -> 0.9, task 1 0.6 -> 0.95, task 2 0.7 -> 1.0
    assert m["wp"]["2"] == pytest.approx((0.4 + 0.35 + 0.3) / 3)
    assert m["final_task_acc"] == pytest.approx([0.85, 0.9, 1.0])


def test_stability_gaps_measure_drop_and_recovery():
    gaps = stability_gaps(ITS, ACC, BOUNDS, eval_task=0, within=50, recover=0.95)
    assert [g["switch"] for g in gaps] == [2, 4]
    first, second = gaps
    assert first["before"] == 0.9 and first["minimum"] == 0.3 and first["iteration"] == 3
    assert first["drop"] == pytest.approx(0.6)
    assert first["recovery"] is None  # 0.8 < 0.95 * 0.9 before task 2 starts
    assert second["drop"] == pytest.approx(0.1) and second["recovery"] == 2  # 0.85 >= 0.76
    on_task_1 = stability_gaps(ITS, ACC, BOUNDS, eval_task=1, within=1, recover=0.9)
    assert on_task_1 == [  # 0.90 >= 0.9 * 0.95: recovered at the next point
        {
            "switch": 4,
            "task": 2,
            "before": 0.95,
            "minimum": 0.4,
            "iteration": 5,
            "drop": 0.55,
            "recovery": 2,
        }
    ]


def toy_sequence(scenario="class"):
    rng = np.random.default_rng(0)
    X = np.repeat(np.eye(4, dtype=np.float32), 10, axis=0) + rng.normal(0, 0.01, (40, 4))
    y = np.repeat(np.arange(4), 10)
    return split(X.astype(np.float32), y, X.astype(np.float32), y, [[0, 1], [2, 3]], scenario)


class Hooked(MajorityClass):
    """Majority class that logs the task hooks it receives."""

    def __init__(self, n_classes: int = 4) -> None:
        super().__init__(n_classes)
        self.calls: list = []

    def begin_task(self, task, classes):
        self.calls.append(("begin", task, classes))

    def end_task(self, X, y):
        self.calls.append(("end", len(y)))


def test_loop_records_every_k_iterations_and_at_task_ends():
    seq = toy_sequence()
    learner = Hooked()
    result = continual_evaluation(seq, {"m": learner}, batch_size=3, epochs=2, eval_every=3)
    # 20 samples per task in batches of 3: 7 iterations per epoch, 14 per task
    assert result.task_boundaries == [0, 14]
    table = result.records.to_pandas()
    assert list(table.columns) == list(CONTINUAL_RECORD_COLUMNS)
    points = sorted(set(table["iteration"]))
    assert points == [3, 6, 9, 12, 14, 15, 18, 21, 24, 27, 28]
    assert (
        table.groupby("iteration")["eval_task"].max() == table.groupby("iteration")["task"].max()
    ).all()
    assert learner.calls == [("begin", 0, None), ("end", 20), ("begin", 1, None), ("end", 20)]
    its, acc = result.curves("m")
    assert list(its) == points and acc.shape == (11, 2) and np.isnan(acc[0, 1])


def test_task_incremental_restricts_predictions_to_the_task_classes():
    learner_class, learner_task = Hooked(), Hooked()
    # the majority learner always answers class 0: task 1 (classes 2, 3) is 0 % class-IL,
    # and 50 % task-IL, where the arg-max is taken over classes 2 and 3 only
    cls = continual_evaluation(toy_sequence("class"), {"m": learner_class}, batch_size=40)
    task = continual_evaluation(toy_sequence("task"), {"m": learner_task}, batch_size=40)
    assert cls.summary["m"]["final_task_acc"] == [0.5, 0.0]
    assert task.summary["m"]["final_task_acc"] == [0.5, 0.5]
    assert learner_task.calls[2] == ("begin", 1, (2, 3))


class PerTask(Hooked):
    """Told each test set's task: answers the task's second class (``2 task + 1``)."""

    def predict_proba_task(self, X, task):
        self.calls.append(("task", len(X), task))
        proba = np.zeros((len(X), 4))
        proba[:, 2 * task + 1] = 1.0
        return proba


class Memorising(Hooked):
    """Answers correctly only the tasks whose ``end_task`` it has seen (a weight edit there)."""

    def __init__(self) -> None:
        super().__init__()
        self.known: dict[bytes, int] = {}

    def end_task(self, X, y):
        super().end_task(X, y)
        self.known.update({x.tobytes(): int(c) for x, c in zip(X, y, strict=True)})

    def predict(self, X):
        return np.array([self.known.get(x.tobytes(), 0) for x in self.check_X(X)])


def test_task_conditioned_learners_are_told_each_test_sets_task():
    from adaptloop.learners.base import TaskConditioned

    learner = PerTask()
    assert isinstance(learner, TaskConditioned) and not isinstance(Hooked(), TaskConditioned)
    task = continual_evaluation(toy_sequence("task"), {"m": learner}, batch_size=40)
    # every test set is answered by its own task's model: class 1 in task 0, class 3 in task 1
    assert task.summary["m"]["final_task_acc"] == [0.5, 0.5]
    assert [c for c in learner.calls if c[0] == "task"] == [
        ("task", 20, 0),
        ("task", 20, 0),
        ("task", 20, 1),
    ]
    learner = PerTask()  # without task identity at test time, plain predict
    cls = continual_evaluation(toy_sequence("class"), {"m": learner}, batch_size=40)
    assert cls.summary["m"]["final_task_acc"] == [0.5, 0.0]
    assert not [c for c in learner.calls if c[0] == "task"]


def test_a_tasks_last_point_is_evaluated_after_its_end_task():
    result = continual_evaluation(toy_sequence(), {"m": Memorising()}, batch_size=7)
    its, acc = result.curves("m")
    ends = [int(np.flatnonzero(its <= e)[-1]) for e in (3, 6)]  # 20 samples: 3 iterations
    assert acc[ends[0], 0] == 1.0 and acc[ends[1]].tolist() == [1.0, 1.0]
    assert acc[ends[0] - 1, 0] == 0.5 and result.summary["m"]["min_acc"] == 1.0


def test_the_hypernetwork_runs_through_the_continual_evaluation():
    from adaptloop.learners.continual import HyperNetwork
    from adaptloop.streams.tasks import permuted

    X = np.random.default_rng(0).random((60, 6)).astype(np.float32)
    y = (X[:, 0] > 0.5).astype(np.int64)
    seq = permuted(X, y, X, y, n_tasks=2, scenario="task")
    model = HyperNetwork(hidden=(8,), chunk_size=32, epochs=5, lr=0.01, seed=0)
    result = continual_evaluation(seq, {"hnet": model}, batch_size=20, epochs=3)
    direct = [
        float((model.predict_proba_task(t.X_test, k).argmax(1) == t.y_test).mean())
        for k, t in enumerate(seq)
    ]
    assert result.summary["hnet"]["final_task_acc"] == pytest.approx(direct)
    assert min(direct) > 0.8  # each task answered by its own generated network


def test_vectorised_evaluation_matches_per_task_predictions_and_subsamples_are_fixed():
    from adaptloop.learners import LogisticRegression
    from adaptloop.streams.tasks import registry

    seq = registry.create("split_digits")
    model = LogisticRegression(n_classes=10, lr=0.1)
    result = continual_evaluation(seq, {"lr": model}, batch_size=64, eval_every=2)
    final = [float((model.predict(t.X_test) == t.y_test).mean()) for t in seq]
    assert result.summary["lr"]["final_task_acc"] == pytest.approx(final)
    a, b = (
        continual_evaluation(seq, {"lr": LogisticRegression(n_classes=10)}, 64, eval_subsample=30)
        for _ in range(2)
    )
    assert a.records["accuracy"].equals(b.records["accuracy"])
    accuracy = a.records["accuracy"].to_numpy()
    assert np.allclose(accuracy * 30, np.round(accuracy * 30))  # 30 samples per task


def test_bad_settings_are_refused():
    seq = toy_sequence()
    for kwargs, pattern in [
        ({"eval_every": 0}, "eval_every"),
        ({"epochs": 1.5}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"eval_subsample": -1}, "eval_subsample"),
        ({"windows": [0]}, "windows"),
    ]:
        with pytest.raises(ValueError, match=pattern):
            continual_evaluation(seq, {"m": MajorityClass(4)}, **kwargs)
    with pytest.raises(ValueError, match="at least one"):
        continual_evaluation(seq, {})


def test_results_folder_schema(tmp_path):
    result = continual_evaluation(toy_sequence(), {"a": MajorityClass(4), "b": Hooked()}, 5)
    folder = write_results(result, tmp_path / "out", "x = 1\n", seed=3)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["kind"] == "continual" and summary["seed"] == 3
    assert summary["tasks"] == ["0-1", "2-3"] and summary["task_boundaries"] == [0, 4]
    assert summary["eval_every"] == 1 and "adaptloop_version" in summary
    keys = {"avg_acc", "min_acc", "wc_acc", "wf", "final_task_acc", "train_seconds", "eval_seconds"}
    assert keys <= set(summary["learners"]["a"])
    records = pq.read_table(folder / "records.parquet")
    assert records.schema.names == [
        "sequence",
        "seed",
        "learner",
        "iteration",
        "task",
        "eval_task",
        "accuracy",
    ]
    assert set(records["sequence"].to_pylist()) == {"split"}
    assert set(records["seed"].to_pylist()) == {0}
    # nested per sequence and seed; the first sequence is also at the top level
    assert summary["seeds"] == [0] and list(summary["sequences"]) == ["split"]
    nested = summary["sequences"]["split"]
    assert nested["tasks"] == summary["tasks"] and nested["learners"] == summary["learners"]
    run = nested["seeds"]["0"]["learners"]["a"]
    assert run["avg_acc"] == summary["learners"]["a"]["avg_acc"]
    assert summary["learners"]["a"]["std"]["avg_acc"] == 0.0
    assert str(records.schema.field("iteration").type) == "int64"
    assert records.num_rows == 2 * (4 + 4 * 2)
    assert (folder / "experiment.toml").read_text() == "x = 1\n"
