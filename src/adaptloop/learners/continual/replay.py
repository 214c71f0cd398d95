"""Rehearsal plugins: experience replay from a buffer (``replay``: reservoir, ring, class- or
task-balanced) and joint training on every finished task's data (``joint``, the upper bound)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from adaptloop.learners.continual.plugin import Batch, Host, Plugin, plugins
from adaptloop.validation import Count, Fraction

__all__ = ["Joint", "Replay"]

Policy = Literal["reservoir", "ring", "class_balanced", "task_balanced"]
Draw = Literal["independent", "passes"]


def group_shares(memory: int, n_groups: int) -> np.ndarray:
    """Slots per group: ``memory`` split equally, the remainder to the first groups (Avalanche's
    ``BalancedExemplarsBuffer.get_group_lengths`` with ``adaptive_size``).

    >>> group_shares(200, 3).tolist()
    [67, 67, 66]
    """
    shares = np.full(n_groups, memory // n_groups, dtype=np.int64)
    shares[: memory - shares.sum()] += 1
    return shares


def keep_top(group: np.ndarray, key: np.ndarray, memory: int) -> np.ndarray:
    """Rows to keep: in each group (ascending ids) its :func:`group_shares` share of ``memory``,
    the rows of highest ``key``; returned in group, then descending key order.

    >>> keep_top(np.array([0, 0, 0, 1]), np.array([0.1, 0.9, 0.5, 0.3]), 3).tolist()
    [1, 2, 3]
    """
    ids = np.unique(group)
    order = np.lexsort((-key, group))  # by group, then highest key first
    starts = np.searchsorted(group[order], ids)
    take = [order[s : s + n] for s, n in zip(starts, group_shares(memory, len(ids)), strict=True)]
    return np.concatenate(take)


@plugins.register("replay")
class Replay(Plugin):
    """Experience replay (Chaudhry et al. 2019, "On tiny episodic memories in continual
    learning", section 4; De Lange et al. 2023, their code's ``ERStrategy``): a buffer of
    ``memory`` samples; each step draws ``replay_batch`` of them (``None``: as many as the new
    batch, the papers' equal-size replay batch) and minimises ``new_weight * L(new) +
    (1 - new_weight) * L(replay)`` (De Lange et al.'s ``Lw_new``: 0.3 in their experiments),
    where ``L(new)`` is the loss so far (the learner's own loss, then earlier plugins') and
    ``L(replay)`` the learner's mean loss on the replayed samples. ``new_weight = None`` weighs
    them by their sizes, ``n_new / (n_new + n_replayed)``: the mean over the union, which is
    what Avalanche's ``ReplayPlugin`` computes on its concatenated batch. With
    ``replay_batch`` fixed (Avalanche replays ``train_mb_size`` samples with every batch) the
    two differ only on an epoch's last, shorter new batch -- but that step is the last before a
    task ends and is evaluated: on Split-Digits, matching Avalanche there (``replay_batch=16,
    new_weight=None``) moved our final ER accuracy from about 82 to 86 % (docs/continual.md).

    ``policy``, what the buffer holds:

    - ``"reservoir"`` (default): every new sample is offered after its step, by reservoir
      sampling (Vitter 1985, Algorithm R: the ``n``-th sample replaces a uniformly drawn slot
      with probability ``memory / n``); a uniform sample of the stream so far, current task
      included, and it needs no task boundaries.
    - ``"ring"`` (Chaudhry et al. 2019's ring buffer): each class a FIFO of its most recent
      samples, filled after every step. Deviation: the memory is split equally over the
      classes seen so far (remainder to the lowest labels), not fixed in advance from the total
      number of classes, so all of it is used from the start.
    - ``"class_balanced"`` (Avalanche's ``ClassBalancedBuffer``, which De Lange et al.'s ER
      uses): filled at each task's end (``end_task``) from its training data; the memory is
      split equally over the classes seen, each class keeping a uniform random subset of all
      its samples offered so far (each sample gets a uniform random key once, a class keeps
      its highest keys, as Avalanche's ``ReservoirSamplingBuffer``).
    - ``"task_balanced"`` (Avalanche's ``ExperienceBalancedBuffer``, ``ReplayPlugin``'s
      default): the same, with one group per finished task instead of per class.

    The end-of-task policies replay nothing during the first task and need task boundaries
    (``end_task``). ``draw``, how a step picks its replayed samples: ``"independent"``: a
    uniform draw without replacement, afresh each step; ``"passes"``: shuffled passes through
    the buffer, consecutive slices of a random permutation, the last slice of a pass shorter
    (Avalanche's ``ReplayDataLoader`` cycling a shuffled loader over the buffer); a pass
    restarts when the buffer changes (at a task's end; every step for ``ring``; for
    ``reservoir`` while it fills).

    >>> import numpy as np
    >>> from adaptloop.learners.continual import Continual
    >>> from adaptloop.learners.models.mlp import MLPClassifier
    >>> model = Continual(MLPClassifier(hidden=(4,)), plugins=[Replay(memory=3)], seed=1)
    >>> for i in range(5):
    ...     model.learn(np.full((2, 1), i, dtype=np.float32), np.array([0, 1]))
    >>> replay = model.plugins_[0]
    >>> replay.buffer_size_, replay.n_offered_
    (3, 10)
    >>> balanced = Replay(memory=5, policy="class_balanced")
    >>> model = Continual(MLPClassifier(n_classes=3, hidden=(4,)), plugins=[balanced], seed=1)
    >>> model.end_task(np.zeros((6, 1), np.float32), np.array([0, 0, 0, 1, 1, 1]))
    >>> model.end_task(np.ones((6, 1), np.float32), np.full(6, 2))
    >>> np.bincount(model.plugins_[0].buffer_y_).tolist()  # 5 slots over 3 classes
    [2, 2, 1]
    """

    def __init__(
        self,
        memory: Count = 200,
        replay_batch: Count | None = None,
        new_weight: Fraction | None = 0.5,
        policy: Policy = "reservoir",
        draw: Draw = "independent",
    ) -> None:
        self.memory = memory
        self.replay_batch = replay_batch
        self.new_weight = new_weight
        self.policy = policy
        self.draw = draw
        self._set(None, None, np.empty(0, np.int64), np.empty(0), 0, 0)
        self._order = np.empty(0, np.int64)  # the current pass (``draw = "passes"``)
        self._cursor = 0

    def _set(
        self,
        X: np.ndarray | None,
        y: np.ndarray | None,
        group: np.ndarray,
        key: np.ndarray,
        offered: int,
        tasks: int,
    ) -> None:
        """Hold ``X``, ``y`` (``None``: nothing yet) with their groups and keys."""
        self.n_offered_ = offered
        self.n_tasks_ended_ = tasks
        self.buffer_size_ = 0 if y is None else len(y)
        self.group_, self.key_ = group, key
        self.buffer_X_: np.ndarray | None = None
        self.buffer_y_: np.ndarray | None = None
        if X is None or y is None:
            return
        if self.policy == "reservoir":  # slots replaced in place: room for all of them
            self.buffer_X_ = np.empty((self.memory, X.shape[1]), dtype=np.float32)
            self.buffer_y_ = np.empty(self.memory, dtype=y.dtype)
            self.buffer_X_[: len(y)], self.buffer_y_[: len(y)] = X, y
        else:
            self.buffer_X_, self.buffer_y_ = X, y

    def _offer(self, X: np.ndarray, y: np.ndarray, group: np.ndarray, key: np.ndarray) -> None:
        """Pool the buffer with ``X``, ``y`` and keep each group's share of highest keys."""
        if self.buffer_X_ is not None and self.buffer_y_ is not None:
            X = np.concatenate([self.buffer_X_, X])
            y = np.concatenate([self.buffer_y_, y])
            group = np.concatenate([self.group_, group])
            key = np.concatenate([self.key_, key])
        keep = keep_top(group, key, self.memory)
        self._set(X[keep], y[keep], group[keep], key[keep], self.n_offered_, self.n_tasks_ended_)
        self._order = np.empty(0, np.int64)  # the buffer changed: a new pass

    def after_step(self, host: Host, X: np.ndarray, y: np.ndarray) -> None:
        if self.policy == "ring":  # the key is the arrival order: each class keeps its latest
            key = (self.n_offered_ + np.arange(len(y))).astype(np.float64)
            self._offer(X, y, y.astype(np.int64), key)
            self.n_offered_ += len(y)
        elif self.policy == "reservoir":
            self._reservoir(host, X, y)

    def _reservoir(self, host: Host, X: np.ndarray, y: np.ndarray) -> None:
        if self.buffer_X_ is None:
            self._set(X[:0], y[:0], self.group_, self.key_, self.n_offered_, 0)
        seen = self.n_offered_ + np.arange(len(y))  # 0-based index of each sample in the stream
        slots = np.where(seen < self.memory, seen, host.rng.integers(0, seen + 1))
        keep = slots < self.memory
        slots, rows = slots[keep], np.flatnonzero(keep)
        # a later sample drawing the same slot replaces an earlier one: keep the last writer
        _, last = np.unique(slots[::-1], return_index=True)
        rows, slots = rows[::-1][last], slots[::-1][last]
        self.buffer_X_[slots] = X[rows]
        self.buffer_y_[slots] = y[rows]
        self.n_offered_ += len(y)
        self.buffer_size_ = min(self.memory, self.n_offered_)

    def end_task(self, host: Host, X: np.ndarray, y: np.ndarray) -> None:
        if self.policy in ("class_balanced", "task_balanced"):
            group = y.astype(np.int64)
            if self.policy == "task_balanced":
                group = np.full(len(y), self.n_tasks_ended_, dtype=np.int64)
            self._offer(X, y, group, host.rng.random(len(y)))
            self.n_offered_ += len(y)
        self.n_tasks_ended_ += 1

    def stored_samples(self) -> int:
        return self.buffer_size_

    def _draw(self, host: Host, k: int) -> np.ndarray:
        """Buffer rows to replay this step."""
        if self.draw == "independent":
            return host.rng.choice(self.buffer_size_, size=k, replace=False)
        if self._cursor >= len(self._order) or len(self._order) != self.buffer_size_:
            self._order, self._cursor = host.rng.permutation(self.buffer_size_), 0
        idx = self._order[self._cursor : self._cursor + k]
        self._cursor += k
        return idx

    def loss(self, host: Host, batch: Batch, loss: Any) -> Any:
        if self.buffer_size_ == 0:
            return loss
        idx = self._draw(host, min(self.replay_batch or batch.n_new, self.buffer_size_))
        X, y = self.buffer_X_[idx], self.buffer_y_[idx]
        model = host.trainable
        replayed = host.loss(host.forward(model.inputs(X)), model.targets(y))
        w = self.new_weight
        if w is None:  # the mean over the union of the new and the replayed samples
            w = batch.n_new / (batch.n_new + len(idx))
        return w * loss + (1 - w) * replayed

    def state_dict(self) -> dict[str, Any]:
        n = self.buffer_size_
        stored = self.buffer_X_ is not None and self.buffer_y_ is not None
        return {
            "X": self.buffer_X_[:n].copy() if stored else None,
            "y": self.buffer_y_[:n].copy() if stored else None,
            "group": self.group_.copy(),
            "key": self.key_.copy(),
            "offered": self.n_offered_,
            "tasks": self.n_tasks_ended_,
            "pass": self._order.copy(),
            "cursor": self._cursor,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        X, y = state["X"], state["y"]
        self._set(
            None if X is None else np.asarray(X, np.float32),
            None if y is None else np.asarray(y),
            np.asarray(state["group"], np.int64),
            np.asarray(state["key"], np.float64),
            int(state["offered"]),
            int(state["tasks"]),
        )
        self._order, self._cursor = np.asarray(state["pass"], np.int64), int(state["cursor"])


@plugins.register("joint")
class Joint(Plugin):
    """Incremental joint training (the upper bound): the data of every finished task is kept,
    and each new batch of ``n`` samples is trained together with ``n`` samples per finished
    task, drawn uniformly from that task's data -- one loss over the union, so every task seen
    so far weighs the same (as shuffling the union of equally sized tasks would).

    >>> import numpy as np
    >>> from adaptloop.learners.continual import Continual
    >>> from adaptloop.learners.models.mlp import MLPClassifier
    >>> model = Continual(MLPClassifier(n_classes=4, hidden=(8,)), plugins=["joint"])
    >>> model.end_task(np.eye(4, dtype=np.float32)[:2], np.array([0, 1]))
    >>> [len(y) for _, y in model.plugins_[0].tasks_data_]
    [2]
    """

    def __init__(self) -> None:
        self.tasks_data_: list[tuple[np.ndarray, np.ndarray]] = []

    def end_task(self, host: Host, X: np.ndarray, y: np.ndarray) -> None:
        self.tasks_data_.append((X.copy(), y.copy()))

    def stored_samples(self) -> int:
        return sum(len(y) for _, y in self.tasks_data_)

    def extra_batch(self, host: Host, n: int) -> tuple[np.ndarray, np.ndarray] | None:
        if not self.tasks_data_:
            return None
        draws = [host.rng.integers(0, len(y), n) for _, y in self.tasks_data_]
        X = np.concatenate([X[idx] for (X, _), idx in zip(self.tasks_data_, draws, strict=True)])
        y = np.concatenate([y[idx] for (_, y), idx in zip(self.tasks_data_, draws, strict=True)])
        return X, y

    def state_dict(self) -> dict[str, Any]:
        return {"tasks": [{"X": X.copy(), "y": y.copy()} for X, y in self.tasks_data_]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tasks_data_ = [(np.asarray(t["X"]), np.asarray(t["y"])) for t in state["tasks"]]
