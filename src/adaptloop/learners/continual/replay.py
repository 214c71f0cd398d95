"""Rehearsal plugins: experience replay from a reservoir (``replay``) and joint training on
every finished task's data (``joint``, the upper bound)."""

from __future__ import annotations

from typing import Any

import numpy as np

from adaptloop.learners.continual.plugin import Batch, Host, Plugin, plugins
from adaptloop.validation import Count, Fraction

__all__ = ["Joint", "Replay"]


@plugins.register("replay")
class Replay(Plugin):
    """Experience replay with a reservoir buffer (Chaudhry et al. 2019, "On tiny episodic
    memories in continual learning", Alg. 1; reservoir sampling: Vitter 1985, Algorithm R).

    Every new sample is offered to a buffer of ``memory`` samples by reservoir sampling (the
    n-th sample seen replaces a uniformly drawn slot with probability ``memory / n``), after
    the step on its batch. Each step draws ``replay_batch`` samples (``None``: as many as the
    new batch) from the buffer without replacement and minimises, as in De Lange et al. (2023,
    their code's ``Lw_new``), ``new_weight * L(new) + (1 - new_weight) * L(replay)``, where
    ``L(new)`` is the loss so far (the learner's own loss, then earlier plugins') and
    ``L(replay)`` the learner's loss on the replayed samples (cross-entropy for classifiers).
    Deviation from De Lange et al.: they fill a class-balanced buffer at the end of each task;
    the reservoir here is filled online, so it also holds samples of the current task, and it
    needs no task boundaries (it works on a stream as is).

    >>> import numpy as np
    >>> from adaptloop.learners.continual import Continual
    >>> from adaptloop.learners.models.mlp import MLPClassifier
    >>> model = Continual(MLPClassifier(hidden=(4,)), plugins=[Replay(memory=3)], seed=1)
    >>> for i in range(5):
    ...     model.learn(np.full((2, 1), i, dtype=np.float32), np.array([0, 1]))
    >>> replay = model.plugins_[0]
    >>> replay.buffer_size_, replay.n_offered_
    (3, 10)
    """

    def __init__(
        self, memory: Count = 200, replay_batch: Count | None = None, new_weight: Fraction = 0.5
    ) -> None:
        self.memory = memory
        self.replay_batch = replay_batch
        self.new_weight = new_weight
        self._fill(None, None, 0)

    def _fill(self, X: np.ndarray | None, y: np.ndarray | None, offered: int) -> None:
        """Empty buffers shaped for ``X`` (``None``: until the first sample), holding ``X``."""
        self.buffer_X_: np.ndarray | None = None
        self.buffer_y_: np.ndarray | None = None
        self.n_offered_ = offered
        self.buffer_size_ = 0 if X is None else len(X)
        if X is not None and y is not None:
            self.buffer_X_ = np.empty((self.memory, X.shape[1]), dtype=np.float32)
            self.buffer_y_ = np.empty(self.memory, dtype=y.dtype)
            self.buffer_X_[: len(X)], self.buffer_y_[: len(X)] = X, y

    def after_step(self, host: Host, X: np.ndarray, y: np.ndarray) -> None:
        if self.buffer_X_ is None:
            self._fill(X[:0], y[:0], self.n_offered_)
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

    def loss(self, host: Host, batch: Batch, loss: Any) -> Any:
        if self.buffer_size_ == 0:
            return loss
        k = min(self.replay_batch or batch.n_new, self.buffer_size_)
        idx = host.rng.choice(self.buffer_size_, size=k, replace=False)
        X, y = self.buffer_X_[idx], self.buffer_y_[idx]
        model = host.trainable
        replayed = host.loss(host.forward(model.inputs(X)), model.targets(y))
        w = self.new_weight
        return w * loss + (1 - w) * replayed

    def state_dict(self) -> dict[str, Any]:
        n = self.buffer_size_
        if self.buffer_X_ is None or self.buffer_y_ is None:
            return {"X": None, "y": None, "offered": self.n_offered_}
        X, y = self.buffer_X_[:n].copy(), self.buffer_y_[:n].copy()
        return {"X": X, "y": y, "offered": self.n_offered_}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        X, y = state["X"], state["y"]
        self._fill(
            None if X is None else np.asarray(X, np.float32),
            None if y is None else np.asarray(y),
            int(state["offered"]),
        )


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
