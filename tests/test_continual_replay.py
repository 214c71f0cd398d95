"""Replay's buffer policies (reservoir, ring, class- and task-balanced), its draws (independent,
shuffled passes) and loss weighting, through the plugin's hooks on a recording host; and the
property that per-iteration evaluation leaves every strategy's final accuracies unchanged."""

import numpy as np
import pytest
import torch

from adaptloop.evaluation.continual import continual_evaluation
from adaptloop.learners import registry
from adaptloop.learners.continual import Batch, Continual, Replay, make_plugin
from adaptloop.learners.models.mlp import MLPClassifier
from adaptloop.parameters import ParameterError

torch.set_num_threads(1)


class RecordingHost:
    """A host whose network is the identity and whose loss is the mean of the targets it is
    given, recording them: what a step replays shows in ``replayed``."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.replayed: list[np.ndarray] = []

    @property
    def trainable(self):
        return self

    def inputs(self, X):
        return X

    def targets(self, y):
        return y

    def forward(self, inputs, weights=None):
        return inputs

    def loss(self, output, target):
        self.replayed.append(np.asarray(target).copy())
        return float(np.mean(target))


def step(plugin: Replay, host: RecordingHost, n_new: int = 4, loss: float = 100.0) -> float:
    X = np.zeros((n_new, 1), np.float32)
    return plugin.loss(host, Batch(X, np.zeros(n_new, np.int64), n_new, X, X, X), loss)


def task(labels, n_per_label, start=0):
    """Samples whose feature is their index from ``start``, ``n_per_label`` of each label."""
    y = np.repeat(np.asarray(labels), n_per_label)
    X = (start + np.arange(len(y), dtype=np.float32))[:, None]
    return X, y


def test_class_balanced_fills_at_task_ends_and_splits_the_memory_over_the_classes_seen():
    replay, host = Replay(memory=10, policy="class_balanced"), RecordingHost()
    X0, y0 = task([0, 1], 30)
    replay.after_step(host, X0[:8], y0[:8])  # training adds nothing: filled at task ends only
    assert replay.buffer_size_ == 0 and step(replay, host) == 100.0 and host.replayed == []
    replay.end_task(host, X0, y0)
    assert np.bincount(replay.buffer_y_).tolist() == [5, 5]
    first = set(replay.buffer_X_[:, 0].tolist())
    replay.end_task(host, *task([2, 3], 30, start=60))
    # 10 slots over 4 classes, the remainder to the lowest labels (Avalanche's group lengths)
    assert np.bincount(replay.buffer_y_).tolist() == [3, 3, 2, 2]
    old = set(replay.buffer_X_[replay.buffer_y_ < 2, 0].tolist())
    assert old <= first  # shrinking a class keeps a subset of what it held


def test_task_balanced_gives_each_finished_task_an_equal_share():
    replay, host = Replay(memory=10, policy="task_balanced"), RecordingHost()
    for t in range(3):
        replay.end_task(host, *task([2 * t, 2 * t + 1], 20, start=40 * t))
    per_task = np.bincount(replay.buffer_X_[:, 0].astype(int) // 40)
    assert per_task.tolist() == [4, 3, 3]


def test_ring_keeps_each_class_latest_samples():
    replay, host = Replay(memory=6, policy="ring"), RecordingHost()
    X, y = np.arange(40, dtype=np.float32)[:, None], np.arange(40) % 2
    for lo in range(0, 40, 8):
        replay.after_step(host, X[lo : lo + 8], y[lo : lo + 8])
    kept = sorted(replay.buffer_X_[:, 0].astype(int).tolist())
    assert kept == [34, 35, 36, 37, 38, 39]  # 3 slots per class, its most recent
    replay.after_step(host, np.array([[40.0], [41.0]], np.float32), np.array([2, 2]))
    assert np.bincount(replay.buffer_y_).tolist() == [2, 2, 2]  # a new class: shares re-split


def test_passes_replay_every_buffer_sample_once_per_pass():
    replay = Replay(memory=8, replay_batch=3, policy="task_balanced", draw="passes")
    host = RecordingHost()
    replay.end_task(host, np.arange(8, dtype=np.float32)[:, None], np.arange(8))
    for _ in range(6):
        step(replay, host)
    sizes = [len(r) for r in host.replayed]
    assert sizes == [3, 3, 2, 3, 3, 2]  # a pass ends on a shorter slice, as a data loader
    for first in (0, 3):
        assert sorted(np.concatenate(host.replayed[first : first + 3]).tolist()) == list(range(8))
    independent = Replay(memory=8, replay_batch=3, policy="task_balanced")
    independent.end_task(host, np.arange(8, dtype=np.float32)[:, None], np.arange(8))
    host.replayed = []
    for _ in range(20):
        step(independent, host)
    assert all(len(r) == 3 and len(set(r.tolist())) == 3 for r in host.replayed)


def test_a_saved_replay_goes_on_mid_pass_as_the_original():
    replay = Replay(memory=8, replay_batch=3, policy="class_balanced", draw="passes")
    host = RecordingHost(seed=4)
    replay.end_task(host, np.arange(8, dtype=np.float32)[:, None], np.arange(8) % 4)
    step(replay, host)
    copy = make_plugin(replay)
    copy.load_state_dict(replay.state_dict())
    copy_host = RecordingHost()
    copy_host.rng.bit_generator.state = host.rng.bit_generator.state
    for plugin, h in ((replay, host), (copy, copy_host)):
        h.replayed = []
        for _ in range(4):
            step(plugin, h)
    for a, b in zip(host.replayed, copy_host.replayed, strict=True):
        np.testing.assert_array_equal(a, b)


def test_new_weight_weighs_the_new_and_the_replayed_loss():
    replay = Replay(memory=4, policy="task_balanced", new_weight=0.3)
    host = RecordingHost()
    replay.end_task(host, np.zeros((4, 1), np.float32), np.full(4, 10))
    # 0.3 * L(new) + 0.7 * L(replay), the replay batch as large as the new one
    assert step(replay, host, n_new=2, loss=100.0) == pytest.approx(0.3 * 100 + 0.7 * 10)
    assert len(host.replayed[-1]) == 2
    # None: the mean over the union, as Avalanche's concatenated batch (2 new, 3 replayed)
    union = Replay(memory=4, replay_batch=3, policy="task_balanced", new_weight=None)
    union.end_task(host, np.zeros((4, 1), np.float32), np.full(4, 10))
    assert step(union, host, n_new=2, loss=100.0) == pytest.approx((2 * 100 + 3 * 10) / 5)


def test_an_unknown_policy_is_refused_naming_it():
    with pytest.raises(ParameterError, match=r"plugins\[0\]\.policy"):
        make_plugin({"kind": "replay", "policy": "fifo"}, "plugins[0]")


def mlp(seed=0):
    return MLPClassifier(
        n_classes=4, hidden=(32,), lr=0.1, optimizer="sgd", standardize=False, seed=seed
    )


def test_end_of_task_replay_keeps_the_old_task_where_fine_tuning_forgets_it(two_tasks):
    learners = {
        "finetune": registry.create("finetune", base=mlp()),
        "er": Continual(mlp(), [Replay(memory=60, policy="class_balanced", draw="passes")]),
    }
    summary = continual_evaluation(two_tasks, learners, batch_size=16, epochs=3).summary
    assert summary["er"]["final_task_acc"][0] > summary["finetune"]["final_task_acc"][0] + 0.5


def test_final_accuracies_are_the_same_with_and_without_per_iteration_evaluation(two_tasks):
    """Evaluating draws from no generator a learner uses (Avalanche's evaluation loader
    consumes the global torch generator and changes what follows)."""

    def learners():
        plugins = {
            "er": [{"kind": "replay", "memory": 40, "policy": "class_balanced", "draw": "passes"}],
            "reservoir": [{"kind": "replay", "memory": 40}],
            "ewc": ["ewc"],
            "lwf": ["lwf"],
            "agem": [{"kind": "agem", "memory_per_task": 20}],
            "gem": [{"kind": "gem", "memory_per_task": 20}],
        }
        return {name: Continual(mlp(seed=3), p, seed=3) for name, p in plugins.items()}

    runs = [
        continual_evaluation(two_tasks, learners(), batch_size=32, epochs=2, eval_every=every)
        for every in (1, 10**9)
    ]
    points = [len(r.curves("gem")[0]) for r in runs]
    assert points[0] > 10 * points[1]  # every iteration against the task ends only
    for name in runs[0].summary:
        first, second = (r.summary[name]["final_task_acc"] for r in runs)
        assert first == second, name
