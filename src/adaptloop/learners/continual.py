"""Continual-learning strategies as wrappers around the PyTorch :class:`MLPClassifier`.

Each strategy is a :class:`ContinualStrategy` (a ``Wrapper``): it trains the wrapped MLP's
network itself through the MLP's public step (``begin_learn``, ``train_step``: the base's
optimiser, schedule, ``epochs`` and ``batch_size`` apply within a ``learn`` call, as for the
MLP; under Drop-Muon the gradients a strategy sees and adjusts are those of the blocks the step
updates), one optimiser step per mini-batch, and changes only what its paper changes --
which samples join the batch, the loss, or the gradient. Strategies are one level deep and
small: ``Finetune``, ``Joint``, ``ER``, ``EWC``, ``LwF``, ``AGEM``, ``GEM`` (registry names
``finetune``, ``joint``, ``er``, ``ewc``, ``lwf``, ``agem``, ``gem``); GEM and A-GEM share
one episodic memory (``_EpisodicMemory``).

Task boundaries come through two optional calls, made by
:func:`adaptloop.evaluation.continual.continual_evaluation`: ``begin_task(task, classes)``
(``classes``: the task's labels in a task-incremental sequence, whose training logits are then
restricted to the labels of each sample's own task; ``None`` otherwise) and
``end_task(X, y)`` with the task's training data. Used as a plain stream learner, without
them, every strategy but ER behaves as ``Finetune``.

Why hand-written: Avalanche holds these strategies but is a heavy dependency with a deep class
hierarchy (DESIGN.md); each method here is a few lines on our MLP and follows its paper.

>>> import numpy as np
>>> from adaptloop.learners.models.mlp import MLPClassifier
>>> model = ER(MLPClassifier(n_classes=4, hidden=(16,), lr=0.1, optimizer="sgd"), memory=20)
>>> X = np.eye(4, dtype=np.float32)
>>> model.learn(X[:2], np.array([0, 1]))
>>> model.buffer_size_, model.predict_proba(X).shape
(2, (4, 4))
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np

from adaptloop.learners.base import Learner, registry
from adaptloop.learners.models.mlp import MLPClassifier
from adaptloop.learners.models.torch_core import import_torch as _torch
from adaptloop.learners.wrappers.base import Wrapper
from adaptloop.streams.drift import check_positive_int
from adaptloop.validation import check_number

__all__ = [
    "AGEM",
    "ER",
    "EWC",
    "GEM",
    "ContinualStrategy",
    "Finetune",
    "Joint",
    "LwF",
    "gem_project",
]


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    return int(seed)


class ContinualStrategy(Wrapper):
    """The shared training step: ``_batch`` (extra samples), ``_loss``, ``_adjust_gradient``,
    ``_after_step``; plus the task hooks and state framing. On its own it is ``Finetune``.

    ``base`` must be an :class:`MLPClassifier` (a ``{"kind": "mlp", ...}`` table in TOML).
    """

    def __init__(self, base: Learner, seed: int = 0) -> None:
        super().__init__(base)
        if not isinstance(self.base, MLPClassifier):
            raise ValueError(
                f"base of {type(self).__name__} must be an MLPClassifier (kind 'mlp'), "
                f"got {type(self.base).__name__}"
            )
        self.seed = _check_seed(seed)
        self._reset()

    # -- state owned by the strategy ----------------------------------------------------------
    def _reset(self) -> None:
        self.task_ = -1
        self.label_mask_: np.ndarray | None = None  # (C, C): allowed logits per label
        self.rng_ = np.random.default_rng(self.seed)

    def _strategy_state(self) -> dict[str, Any]:
        return {}

    def _load_strategy_state(self, state: dict[str, Any]) -> None:
        pass

    def _get_state(self) -> dict[str, Any]:
        return {
            "model": self.model_.state_dict(),
            "task": self.task_,
            "label_mask": None if self.label_mask_ is None else self.label_mask_.copy(),
            "rng": copy.deepcopy(self.rng_.bit_generator.state),
            "strategy": self._strategy_state(),
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        keys = {"model", "task", "label_mask", "rng", "strategy"}
        if not isinstance(state, dict) or set(state) != keys:
            raise ValueError(f"{type(self).__name__} state must be a dict with keys {sorted(keys)}")
        model = self._new_model(state)
        self.model_ = model
        self.task_ = int(state["task"])
        mask = state["label_mask"]
        self.label_mask_ = None if mask is None else np.asarray(mask, dtype=bool).copy()
        self.rng_ = np.random.default_rng()
        self.rng_.bit_generator.state = copy.deepcopy(state["rng"])
        self._load_strategy_state(copy.deepcopy(state["strategy"]))

    # -- task hooks ----------------------------------------------------------------------------
    def begin_task(self, task: int, classes: Sequence[int] | None = None) -> None:
        """A new task starts; ``classes`` (task-incremental) restricts its samples' logits."""
        if classes is not None:
            n = self.n_classes or 0
            if not classes or any(not 0 <= int(c) < n for c in classes):
                raise ValueError(f"classes must be label codes in [0, {n}), got {classes!r}")
            if self.label_mask_ is None:
                self.label_mask_ = np.ones((n, n), dtype=bool)
            codes = [int(c) for c in classes]
            self.label_mask_[codes] = False
            self.label_mask_[np.ix_(codes, codes)] = True
        self.task_ = int(task)

    def end_task(self, X: np.ndarray, y: np.ndarray) -> None:
        """The current task's training data, after its last iteration (checked first)."""
        self.check_Xy(X, y)

    # -- the training step -----------------------------------------------------------------------
    @property
    def _mlp(self) -> MLPClassifier:
        return self.model_  # type: ignore[return-value]

    def _inputs(self, X: np.ndarray) -> Any:
        return self._mlp.inputs(X)

    def _labels(self, y: np.ndarray) -> Any:
        return _torch().from_numpy(np.asarray(y, dtype=np.int64))

    def _masked(self, logits: Any, y: Any) -> Any:
        if self.label_mask_ is None:
            return logits
        allowed = _torch().from_numpy(self.label_mask_)[y]
        return logits.masked_fill(~allowed, float("-inf"))

    def _ce(self, net: Any, x: Any, y: Any) -> Any:
        return _torch().nn.functional.cross_entropy(self._masked(net(x), y), y)

    def _batch(self, n_new: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Samples to train on together with the new batch (replay), or ``None``."""
        return None

    def _loss(self, net: Any, x: Any, y: Any, replay: tuple[Any, Any] | None) -> Any:
        return self._ce(net, x, y)

    def _adjust_gradient(self, net: Any) -> None:
        """Change the gradients in place before the optimiser step (A-GEM)."""

    def _after_step(self, X: np.ndarray, y: np.ndarray) -> None:
        """Called with every new mini-batch after its step (ER's reservoir)."""

    def _learn(self, X: np.ndarray, y: np.ndarray) -> None:
        mlp = self._mlp
        mlp.begin_learn(X)
        n = len(X)
        size = n if mlp.batch_size is None else min(mlp.batch_size, n)
        net = mlp._net
        net.train()
        for _ in range(mlp.epochs):
            order = mlp._rng.permutation(n) if size < n else np.arange(n)
            for start in range(0, n, size):
                index = order[start : start + size]
                Xb, yb = X[index], y[index]
                extra = self._batch(len(Xb))
                replay = None if extra is None else (self._inputs(extra[0]), self._labels(extra[1]))
                x, labels = self._inputs(Xb), self._labels(yb)
                mlp.train_step(
                    lambda x=x, labels=labels, replay=replay: self._loss(net, x, labels, replay),
                    adjust=lambda: self._adjust_gradient(net),
                )
                self._after_step(Xb, yb)
        net.eval()


@registry.register("finetune")
class Finetune(ContinualStrategy):
    """Naive fine-tuning: plain cross-entropy on each new batch (the lower bound).

    >>> import numpy as np
    >>> model = Finetune(MLPClassifier(n_classes=3, hidden=(8,), lr=0.1, epochs=20))
    >>> model.learn(np.eye(3, dtype=np.float32), np.array([0, 1, 2]))
    >>> model.predict(np.eye(3, dtype=np.float32))
    array([0, 1, 2])
    """


@registry.register("joint")
class Joint(ContinualStrategy):
    """Incremental joint training (the upper bound): the data of every finished task is kept,
    and each new batch of ``n`` samples is trained together with ``n`` samples per finished
    task, drawn uniformly from that task's data -- one cross-entropy over the union, so every
    task seen so far weighs the same (as shuffling the union of equally sized tasks would).

    >>> import numpy as np
    >>> model = Joint(MLPClassifier(n_classes=4, hidden=(8,)))
    >>> model.end_task(np.eye(4, dtype=np.float32)[:2], np.array([0, 1]))
    >>> [len(y) for _, y in model.tasks_data_]
    [2]
    """

    def _reset(self) -> None:
        super()._reset()
        self.tasks_data_: list[tuple[np.ndarray, np.ndarray]] = []

    def end_task(self, X: np.ndarray, y: np.ndarray) -> None:
        X, y = self.check_Xy(X, y)
        self.tasks_data_.append((X.copy(), y.copy()))

    def _batch(self, n_new: int) -> tuple[np.ndarray, np.ndarray] | None:
        if not self.tasks_data_:
            return None
        draws = [self.rng_.integers(0, len(y), n_new) for _, y in self.tasks_data_]
        X = np.concatenate([X[idx] for (X, _), idx in zip(self.tasks_data_, draws, strict=True)])
        y = np.concatenate([y[idx] for (_, y), idx in zip(self.tasks_data_, draws, strict=True)])
        return X, y

    def _loss(self, net, x, y, replay):
        if replay is None:
            return self._ce(net, x, y)
        torch = _torch()
        return self._ce(net, torch.cat([x, replay[0]]), torch.cat([y, replay[1]]))

    def _strategy_state(self) -> dict[str, Any]:
        return {"tasks": [{"X": X.copy(), "y": y.copy()} for X, y in self.tasks_data_]}

    def _load_strategy_state(self, state: dict[str, Any]) -> None:
        self.tasks_data_ = [(np.asarray(t["X"]), np.asarray(t["y"])) for t in state["tasks"]]


@registry.register("er")
class ER(ContinualStrategy):
    """Experience replay with a reservoir buffer (Chaudhry et al. 2019, "On tiny episodic
    memories in continual learning", Alg. 1; reservoir sampling: Vitter 1985, Algorithm R).

    Every new sample is offered to a buffer of ``memory`` samples by reservoir sampling (the
    n-th sample seen replaces a uniformly drawn slot with probability ``memory / n``), after
    the step on its batch. Each step draws ``replay_batch`` samples (``None``: as many as the
    new batch) from the buffer without replacement and minimises, as in De Lange et al. (2023,
    their code's ``Lw_new``), ``new_weight * CE(new) + (1 - new_weight) * CE(replay)``.
    Deviation from De Lange et al.: they fill a class-balanced buffer at the end of each task;
    the reservoir here is filled online, so it also holds samples of the current task.

    >>> import numpy as np
    >>> model = ER(MLPClassifier(n_classes=2, hidden=(4,)), memory=3, seed=1)
    >>> for i in range(5):
    ...     model.learn(np.full((2, 1), i, dtype=np.float32), np.array([0, 1]))
    >>> model.buffer_size_, model.n_offered_
    (3, 10)
    """

    def __init__(
        self,
        base: Learner,
        memory: int = 200,
        replay_batch: int | None = None,
        new_weight: float = 0.5,
        seed: int = 0,
    ) -> None:
        self.memory = check_positive_int(memory, "memory")
        if replay_batch is not None:
            replay_batch = check_positive_int(replay_batch, "replay_batch")
        self.replay_batch = replay_batch
        self.new_weight = check_number(new_weight, "new_weight", 0.0, 1.0)
        super().__init__(base, seed)

    def _reset(self) -> None:
        super()._reset()
        self.buffer_X_: np.ndarray | None = None
        self.buffer_y_ = np.empty(0, dtype=np.int64)
        self.buffer_size_ = 0
        self.n_offered_ = 0

    def _after_step(self, X: np.ndarray, y: np.ndarray) -> None:
        if self.buffer_X_ is None:
            self.buffer_X_ = np.empty((self.memory, X.shape[1]), dtype=np.float32)
            self.buffer_y_ = np.empty(self.memory, dtype=np.int64)
        seen = self.n_offered_ + np.arange(len(y))  # 0-based index of each sample in the stream
        slots = np.where(seen < self.memory, seen, self.rng_.integers(0, seen + 1))
        keep = slots < self.memory
        slots, rows = slots[keep], np.flatnonzero(keep)
        # a later sample drawing the same slot replaces an earlier one: keep the last writer
        _, last = np.unique(slots[::-1], return_index=True)
        rows, slots = rows[::-1][last], slots[::-1][last]
        self.buffer_X_[slots] = X[rows]
        self.buffer_y_[slots] = y[rows]
        self.n_offered_ += len(y)
        self.buffer_size_ = min(self.memory, self.n_offered_)

    def _batch(self, n_new: int) -> tuple[np.ndarray, np.ndarray] | None:
        if self.buffer_size_ == 0:
            return None
        k = min(self.replay_batch or n_new, self.buffer_size_)
        idx = self.rng_.choice(self.buffer_size_, size=k, replace=False)
        return self.buffer_X_[idx], self.buffer_y_[idx]

    def _loss(self, net, x, y, replay):
        if replay is None:
            return self._ce(net, x, y)
        w = self.new_weight
        return w * self._ce(net, x, y) + (1 - w) * self._ce(net, *replay)

    def _strategy_state(self) -> dict[str, Any]:
        n = self.buffer_size_
        X = None if self.buffer_X_ is None else self.buffer_X_[:n].copy()
        return {"X": X, "y": self.buffer_y_[:n].copy(), "offered": self.n_offered_}

    def _load_strategy_state(self, state: dict[str, Any]) -> None:
        self._reset_buffer(state["X"], np.asarray(state["y"]), int(state["offered"]))

    def _reset_buffer(self, X: np.ndarray | None, y: np.ndarray, offered: int) -> None:
        self.buffer_X_, self.buffer_y_ = None, np.empty(0, dtype=np.int64)
        self.n_offered_, self.buffer_size_ = offered, 0 if X is None else len(X)
        if X is not None:
            self.buffer_X_ = np.empty((self.memory, X.shape[1]), dtype=np.float32)
            self.buffer_y_ = np.empty(self.memory, dtype=np.int64)
            self.buffer_X_[: len(X)], self.buffer_y_[: len(X)] = X, y


def _params(net: Any) -> list[Any]:
    return [p for p in net.parameters() if p.requires_grad]


@registry.register("ewc")
class EWC(ContinualStrategy):
    """Online EWC (Schwarz et al. 2018, "Progress & Compress", section 2.3; Kirkpatrick et al.
    2017, eq. 3): the loss is ``CE + strength / 2 * sum_i F_i (theta_i - theta*_i)^2``.

    At the end of each task, ``theta*`` becomes the current parameters and the diagonal Fisher
    is updated as ``F <- gamma * F + F_task``, where ``F_task`` is the mean over up to
    ``fisher_samples`` of the task's training samples of the squared per-sample gradients of
    ``log p(y | x)`` (the empirical Fisher, with the true labels; computed exactly per sample
    with ``torch.func``). ``gamma = 1`` sums the tasks' Fishers.

    >>> import numpy as np
    >>> model = EWC(MLPClassifier(n_classes=2, hidden=(4,)), strength=10.0)
    >>> X, y = np.eye(2, dtype=np.float32), np.array([0, 1])
    >>> model.learn(X, y)
    >>> model.end_task(X, y)
    >>> [f.shape for f in model.fisher_]
    [(4, 2), (4,), (2, 4), (2,)]
    """

    def __init__(
        self,
        base: Learner,
        strength: float = 10.0,
        gamma: float = 1.0,
        fisher_samples: int = 500,
        seed: int = 0,
    ) -> None:
        self.strength = check_number(strength, "strength", 0.0, float("inf"))
        self.gamma = check_number(gamma, "gamma", 0.0, 1.0)
        self.fisher_samples = check_positive_int(fisher_samples, "fisher_samples")
        super().__init__(base, seed)

    def _reset(self) -> None:
        super()._reset()
        self.fisher_: list[np.ndarray] | None = None
        self.anchor_: list[np.ndarray] | None = None
        self._penalty_tensors: list | None = None  # torch views of fisher_ and anchor_

    def end_task(self, X: np.ndarray, y: np.ndarray) -> None:
        X, y = self.check_Xy(X, y)
        if self._mlp._net is None:
            return
        torch = _torch()
        from torch.func import functional_call, grad, vmap

        net = self._mlp._net
        if len(y) > self.fisher_samples:
            idx = self.rng_.choice(len(y), size=self.fisher_samples, replace=False)
            X, y = X[idx], y[idx]
        params = {k: v.detach() for k, v in net.named_parameters()}

        def nll(p, x, target):
            logits = functional_call(net, p, (x[None],))
            return torch.nn.functional.cross_entropy(
                self._masked(logits, target[None]), target[None]
            )

        grads = vmap(grad(nll), in_dims=(None, 0, 0))(params, self._inputs(X), self._labels(y))
        task_fisher = [(grads[k] ** 2).mean(0).numpy() for k in params]
        if self.fisher_ is None:
            self.fisher_ = task_fisher
        else:
            self.fisher_ = [
                self.gamma * f + g for f, g in zip(self.fisher_, task_fisher, strict=True)
            ]
        self.anchor_ = [v.numpy().copy() for v in params.values()]
        self._penalty_tensors = None

    def _loss(self, net, x, y, replay):
        loss = self._ce(net, x, y)
        if self.fisher_ is None:
            return loss
        torch = _torch()
        if self._penalty_tensors is None:
            self._penalty_tensors = [
                (torch.from_numpy(f), torch.from_numpy(a))
                for f, a in zip(self.fisher_, self.anchor_, strict=True)
            ]
        penalty = sum(
            (f * (p - a) ** 2).sum()
            for p, (f, a) in zip(net.parameters(), self._penalty_tensors, strict=True)
        )
        return loss + 0.5 * self.strength * penalty

    def _strategy_state(self) -> dict[str, Any]:
        if self.fisher_ is None:
            return {"fisher": None, "anchor": None}
        return {
            "fisher": [f.copy() for f in self.fisher_],
            "anchor": [a.copy() for a in self.anchor_],
        }

    def _load_strategy_state(self, state: dict[str, Any]) -> None:
        self.fisher_, self.anchor_ = state["fisher"], state["anchor"]
        self._penalty_tensors = None


@registry.register("lwf")
class LwF(ContinualStrategy):
    """Learning without Forgetting (Li & Hoiem 2017, eq. 2-4): when a new task begins, the
    current network is frozen as the teacher; each step minimises
    ``CE(new) + alpha * KD``, where ``KD`` is the cross-entropy between the teacher's and the
    student's temperature-``T`` softmax (``T = temperature``, 2 in the paper) over the classes
    learned before the task. Deviation: one shared head (class- and domain-incremental), so
    the "old task outputs" are the logits of the classes seen before the task, as in
    van de Ven et al.'s class-incremental LwF.

    >>> import numpy as np
    >>> model = LwF(MLPClassifier(n_classes=4, hidden=(4,)), alpha=1.0)
    >>> model.learn(np.eye(4, dtype=np.float32)[:2], np.array([0, 1]))
    >>> model.begin_task(1)
    >>> model.old_classes_
    [0, 1]
    """

    def __init__(
        self, base: Learner, alpha: float = 1.0, temperature: float = 2.0, seed: int = 0
    ) -> None:
        self.alpha = check_number(alpha, "alpha", 0.0, float("inf"))
        self.temperature = check_number(temperature, "temperature", 1e-6, float("inf"))
        super().__init__(base, seed)

    def _reset(self) -> None:
        super()._reset()
        self.seen_classes_: set[int] = set()
        self.old_classes_: list[int] = []
        self.teacher_: Any = None

    def begin_task(self, task: int, classes: Sequence[int] | None = None) -> None:
        super().begin_task(task, classes)
        if self._mlp._net is not None and self.seen_classes_:
            self.teacher_ = copy.deepcopy(self._mlp._net).eval()
            self.old_classes_ = sorted(self.seen_classes_)

    def _after_step(self, X: np.ndarray, y: np.ndarray) -> None:
        self.seen_classes_.update(int(c) for c in np.unique(y))

    def _loss(self, net, x, y, replay):
        torch = _torch()
        logits = net(x)
        loss = torch.nn.functional.cross_entropy(self._masked(logits, y), y)
        if self.teacher_ is None:
            return loss
        with torch.no_grad():
            target = (self.teacher_(x)[:, self.old_classes_] / self.temperature).softmax(1)
        log_p = (logits[:, self.old_classes_] / self.temperature).log_softmax(1)
        return loss + self.alpha * -(target * log_p).sum(1).mean()

    def _strategy_state(self) -> dict[str, Any]:
        teacher = None
        if self.teacher_ is not None:
            teacher = {k: v.detach().clone() for k, v in self.teacher_.state_dict().items()}
        return {
            "seen": sorted(self.seen_classes_),
            "old": list(self.old_classes_),
            "teacher": teacher,
        }

    def _load_strategy_state(self, state: dict[str, Any]) -> None:
        self.seen_classes_ = set(state["seen"])
        self.old_classes_ = list(state["old"])
        self.teacher_ = None
        if state["teacher"] is not None:
            self.teacher_ = copy.deepcopy(self._mlp._net)
            self.teacher_.load_state_dict(state["teacher"])
            self.teacher_.eval()


def _flat_grad(params: list[Any]) -> Any:
    """The gradients of ``params`` as one flat vector."""
    return _torch().cat([p.grad.reshape(-1) for p in params])


def _set_flat_grad(params: list[Any], g: Any) -> None:
    """Write the flat vector ``g`` back into the gradients of ``params``."""
    start = 0
    for p in params:
        p.grad.copy_(g[start : start + p.numel()].view_as(p))
        start += p.numel()


def _grad_vector(loss: Any, params: list[Any], retain_graph: bool = False) -> Any:
    grads = _torch().autograd.grad(loss, params, retain_graph=retain_graph)
    return _torch().cat([r.reshape(-1) for r in grads])


class _EpisodicMemory(ContinualStrategy):
    """The episodic memory of GEM and A-GEM: ``memory_per_task`` random training samples of
    each finished task, stored at its end; ``memory_task_`` numbers each sample's task in the
    order of the ``end_task`` calls."""

    def __init__(self, base: Learner, memory_per_task: int = 50, seed: int = 0) -> None:
        self.memory_per_task = check_positive_int(memory_per_task, "memory_per_task")
        super().__init__(base, seed)

    def _reset(self) -> None:
        super()._reset()
        self.memory_X_: np.ndarray | None = None
        self.memory_y_ = np.empty(0, dtype=np.int64)
        self.memory_task_ = np.empty(0, dtype=np.int64)

    @property
    def n_memory_tasks_(self) -> int:
        """Tasks with samples in the memory."""
        return 0 if len(self.memory_task_) == 0 else int(self.memory_task_[-1]) + 1

    def end_task(self, X: np.ndarray, y: np.ndarray) -> None:
        X, y = self.check_Xy(X, y)
        idx = self.rng_.choice(len(y), size=min(self.memory_per_task, len(y)), replace=False)
        old = np.empty((0, X.shape[1]), np.float32) if self.memory_X_ is None else self.memory_X_
        task = np.full(len(idx), self.n_memory_tasks_, dtype=np.int64)
        self.memory_X_ = np.concatenate([old, X[idx]])
        self.memory_y_ = np.concatenate([self.memory_y_, y[idx]])
        self.memory_task_ = np.concatenate([self.memory_task_, task])

    def _strategy_state(self) -> dict[str, Any]:
        X = None if self.memory_X_ is None else self.memory_X_.copy()
        return {"X": X, "y": self.memory_y_.copy(), "task": self.memory_task_.copy()}

    def _load_strategy_state(self, state: dict[str, Any]) -> None:
        self.memory_X_ = None if state["X"] is None else np.asarray(state["X"], np.float32)
        self.memory_y_ = np.asarray(state["y"], dtype=np.int64)
        task = state.get("task")  # states saved before GEM have no task ids
        self.memory_task_ = (
            np.zeros(len(self.memory_y_), np.int64) if task is None else np.asarray(task, np.int64)
        )


@registry.register("agem")
class AGEM(_EpisodicMemory):
    """Averaged GEM (Chaudhry et al. 2019, ICLR, eq. 10-11): an episodic memory holds
    ``memory_per_task`` random training samples of each finished task (stored at its end).
    Each step computes the new batch's gradient ``g`` and the gradient ``g_ref`` on
    ``sample_size`` random memory samples; if ``g . g_ref < 0`` the step uses
    ``g - (g . g_ref) / (g_ref . g_ref) * g_ref`` instead of ``g``.

    >>> import numpy as np
    >>> model = AGEM(MLPClassifier(n_classes=2, hidden=(4,)), memory_per_task=1)
    >>> model.end_task(np.eye(2, dtype=np.float32), np.array([0, 1]))
    >>> len(model.memory_y_)
    1
    """

    def __init__(
        self, base: Learner, memory_per_task: int = 50, sample_size: int = 64, seed: int = 0
    ) -> None:
        self.sample_size = check_positive_int(sample_size, "sample_size")
        super().__init__(base, memory_per_task, seed)

    def _adjust_gradient(self, net: Any) -> None:
        if self.memory_X_ is None or self._mlp._net is None:
            return
        torch = _torch()
        params = _params(net)
        g = _flat_grad(params)
        k = min(self.sample_size, len(self.memory_y_))
        idx = self.rng_.choice(len(self.memory_y_), size=k, replace=False)
        x_ref, y_ref = self._inputs(self.memory_X_[idx]), self._labels(self.memory_y_[idx])
        g_ref = _grad_vector(self._ce(net, x_ref, y_ref), params)
        dot = torch.dot(g, g_ref)
        if dot < 0:
            _set_flat_grad(params, g - dot / torch.dot(g_ref, g_ref) * g_ref)


def gem_project(g: np.ndarray, G: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """GEM's projected gradient (Lopez-Paz & Ranzato 2017, section 3, eq. 10-13).

    The primal (eq. 10-11) is ``min_z 1/2 ||g - z||^2`` s.t. ``G z >= 0``, one row of ``G``
    ``(t, p)`` per previous task's gradient; its dual (eq. 12-13) is
    ``min_{v >= 0} 1/2 v^T G G^T v + g^T G^T v`` and ``z = G^T v + g``. With the paper's
    margin (its code: ``v >= margin``), ``v = u + margin`` and, since the dual objective equals
    ``1/2 ||G^T v + g||^2 - 1/2 ||g||^2``, ``u`` is the non-negative least-squares solution of
    ``G^T u ~ -(g + margin G^T 1)`` -- solved exactly by ``scipy.optimize.nnls`` (Lawson-Hanson
    active set) on ``G^T`` itself, so no ``G G^T + eps I`` regularisation is needed and no QP
    package (the authors use ``quadprog``) becomes a dependency. At the optimum every
    ``G z = G G^T v + G g`` is the dual gradient, hence ``>= 0`` (KKT): ``z`` opposes no
    previous task.

    >>> gem_project(np.array([1.0, -1.0]), np.array([[0.0, 1.0]]))
    array([1., 0.])
    >>> gem_project(np.array([1.0, 1.0]), np.array([[0.0, 1.0]]))  # no conflict: unchanged
    array([1., 1.])
    """
    from scipy.optimize import nnls

    g = np.asarray(g, dtype=np.float64)
    G = np.asarray(G, dtype=np.float64)
    if (G @ g >= 0).all():
        return g.copy()
    target = -(g + margin * G.sum(axis=0))
    u, _ = nnls(G.T, target)
    return G.T @ (u + margin) + g


@registry.register("gem")
class GEM(_EpisodicMemory):
    """Gradient Episodic Memory (Lopez-Paz & Ranzato 2017, NeurIPS, section 3, eq. 6-13):
    the memory of A-GEM (``memory_per_task`` random samples of each finished task), but one
    constraint per previous task: each step computes the new batch's gradient ``g`` and, for
    every task ``k`` in the memory, the gradient ``g_k`` of the loss on all of ``k``'s memory
    samples; if some ``g . g_k < 0`` (eq. 7-8), the step uses the projection of ``g`` onto
    ``{z : z . g_k >= 0 for all k}`` (eq. 10-13, :func:`gem_project`, with the paper's code's
    ``margin``, its ``memory_strength``: 0.5 in its experiments).

    >>> import numpy as np
    >>> model = GEM(MLPClassifier(n_classes=4, hidden=(4,)), memory_per_task=2)
    >>> X = np.eye(4, dtype=np.float32)
    >>> model.end_task(X[:2], np.array([0, 1])); model.end_task(X[2:], np.array([2, 3]))
    >>> model.memory_task_.tolist()
    [0, 0, 1, 1]
    """

    def __init__(
        self, base: Learner, memory_per_task: int = 50, margin: float = 0.5, seed: int = 0
    ) -> None:
        self.margin = check_number(margin, "margin", 0.0, float("inf"))
        super().__init__(base, memory_per_task, seed)

    def _memory_gradients(self, net: Any, params: list[Any]) -> Any:
        """``(tasks, parameters)``: each memory task's loss gradient (one forward pass)."""
        torch = _torch()
        x, y = self._inputs(self.memory_X_), self._labels(self.memory_y_)
        logits = self._masked(net(x), y)
        tasks = torch.from_numpy(self.memory_task_)
        n = self.n_memory_tasks_
        rows = []
        for k in range(n):
            mine = tasks == k
            loss = torch.nn.functional.cross_entropy(logits[mine], y[mine])
            rows.append(_grad_vector(loss, params, retain_graph=k < n - 1))
        return torch.stack(rows)

    def _adjust_gradient(self, net: Any) -> None:
        if self.memory_X_ is None or self._mlp._net is None:
            return
        torch = _torch()
        params = _params(net)
        g = _flat_grad(params)
        G = self._memory_gradients(net, params)
        if bool((G @ g >= 0).all()):
            return
        z = gem_project(g.double().numpy(), G.double().numpy(), self.margin)
        _set_flat_grad(params, torch.from_numpy(z).to(g.dtype))
