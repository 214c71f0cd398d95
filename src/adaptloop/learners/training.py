"""``Trainer``: the optimiser step shared by the torch learners, with its schedule and budget.

A trainer holds a network's optimiser(s) (:mod:`adaptloop.learners.optimizers`), its
learning-rate schedule (:mod:`adaptloop.learners.schedules`) and the gradient-norm trace it
records, and takes one step at a time: ``step(loss_fn)`` freezes the blocks before Drop-Muon's
start block (if any), computes the loss, backpropagates, lets the caller adjust the gradients
(A-GEM, GEM), records the gradient norm, steps the optimisers and the schedule.

Steps are grouped in *fits* whose length ``T`` the schedule spans (see the schedules module):
a budget announced by :meth:`Trainer.plan` (a re-fit of a known number of steps), else one fit
per ``learn`` call (:meth:`Trainer.begin_call`), else -- with a schedule ``horizon`` -- cycles
of ``horizon`` steps. When a fit starts, the gradient norms recorded over the previous one
become ``previous_grad_norms_`` (what a ``Refined`` schedule without a trace of its own reads).

>>> import torch
>>> from adaptloop.learners.optimizers import make_optimizer
>>> from adaptloop.learners.schedules import make_schedule
>>> net = torch.nn.Linear(2, 1)
>>> trainer = Trainer(net, [net], make_optimizer("sgd"), make_schedule("linear"), 0.1, 0.0)
>>> trainer.plan(4)
>>> x, y = torch.ones(8, 2), torch.zeros(8, 1)
>>> lrs = []
>>> for _ in range(4):
...     lrs.append(trainer.lr_); _ = trainer.step(lambda: ((net(x) - y) ** 2).mean())
>>> [round(lr, 3) for lr in lrs], trainer.step_, trainer.budget_, len(trainer.grad_norms_)
([0.1, 0.075, 0.05, 0.025], 4, 4, 4)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from adaptloop.learners.base import Refitting, StateRoles, TorchTrainable
from adaptloop.learners.optimizers import OptimizerSpec
from adaptloop.learners.schedules import Schedule, _Table

__all__ = ["TrainedLearner", "Trainer", "train_epochs"]

_KEYS = {"more_optimizers", "step", "budget", "planned", "norms", "previous", "factors", "rng"}


class Trainer:
    """Optimisers, schedule, budget and gradient-norm trace of one torch network.

    ``blocks``: the network's layers in forward order (torch modules holding every parameter),
    what Drop-Muon samples its start block from. ``seed`` seeds Drop-Muon's sampling only.
    """

    def __init__(
        self,
        net: Any,
        blocks: Sequence[Any],
        optimizer: OptimizerSpec,
        schedule: Schedule | None,
        lr: float,
        weight_decay: float,
        seed: int = 0,
    ) -> None:
        self.net = net
        self.blocks = list(blocks)
        self.optimizer = optimizer
        self.schedule = schedule
        optimizer.check_blocks(len(self.blocks))
        self.optimizers = optimizer.build(self.blocks, float(lr), float(weight_decay))
        self._params = [p for block in self.blocks for p in block.parameters()]
        unique = {id(p) for p in self._params}
        if len(unique) != len(self._params) or unique != {id(p) for p in net.parameters()}:
            raise ValueError("the blocks must hold every parameter of the network once")
        self._rng = np.random.default_rng([int(seed), 1])  # Drop-Muon's start blocks
        self.step_ = 0  # steps taken in the current fit
        self.budget_ = 0  # the current fit's length T (0: no fit yet)
        self._planned = 0  # steps of an announced budget not yet begun by a learn call
        self._norms: list[float] = []
        self._previous: np.ndarray | None = None
        self._factors: np.ndarray | None = None
        self._schedulers: list[Any] = []
        self.last_start_ = 0  # the start block of the last step (Drop-Muon)

    # -- fits ------------------------------------------------------------------------------------
    @property
    def grad_norms_(self) -> np.ndarray:
        """The L2 norms of the gradients of the current fit's steps (the updated blocks')."""
        return np.array(self._norms, dtype=np.float64)

    @property
    def previous_grad_norms_(self) -> np.ndarray | None:
        """The gradient norms recorded over the previous fit (``None`` before one ended)."""
        return None if self._previous is None else self._previous.copy()

    @property
    def lr_(self) -> float:
        """The learning rate the next step takes (of the first parameter group)."""
        return float(self.optimizers[0].param_groups[0]["lr"])

    def plan(self, n_steps: int, previous_trace: np.ndarray | None = None) -> None:
        """Start a fit of ``n_steps`` steps, taken by the next ``learn`` calls (a re-fit).

        ``previous_trace``: gradient norms of the model this fit replaces, read by a refined
        schedule when this trainer has recorded none of its own."""
        if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
            raise ValueError(f"n_steps must be an integer >= 1, got {n_steps!r}")
        if previous_trace is not None and len(previous_trace) and not self._norms:
            self._previous = np.asarray(previous_trace, dtype=np.float64).copy()
        self._planned = int(n_steps)
        self._start(int(n_steps))

    def begin_call(self, n_steps: int) -> None:
        """A ``learn`` call of ``n_steps`` steps starts: inside an announced budget it goes on
        with that fit; otherwise it is a fit of its own (or, with a schedule ``horizon``, goes on
        with the current cycle)."""
        horizon = None if self.schedule is None else self.schedule.horizon
        if self._planned > 0:
            self._planned = max(0, self._planned - n_steps)
        elif horizon is None:
            self._start(n_steps)
        elif self.budget_ == 0:
            self._start(horizon)

    def _start(self, n_steps: int) -> None:
        if self._norms:
            self._previous = np.array(self._norms, dtype=np.float64)
        self._norms = []
        self.step_, self.budget_ = 0, n_steps
        if self.schedule is not None:
            self._factors = self.schedule.factors(n_steps, self._previous)
            self._schedule_at(0)

    def _schedule_at(self, step: int) -> None:
        from torch.optim.lr_scheduler import LambdaLR

        table = _Table(self._factors)
        self._schedulers = [LambdaLR(o, table, last_epoch=step - 1) for o in self.optimizers]

    # -- the step --------------------------------------------------------------------------------
    def step(self, loss_fn: Callable[[], Any], adjust: Callable[[], None] | None = None) -> float:
        """One optimiser step on ``loss_fn()`` (a scalar tensor); returns the loss.

        ``adjust()`` may change the gradients in place before the step (A-GEM, GEM). Under
        Drop-Muon the blocks before the sampled start block do not require gradients while
        ``loss_fn`` and ``adjust`` run, so they get none and the optimisers leave them (and
        their momentum) as they are."""
        horizon = None if self.schedule is None else self.schedule.horizon
        if self.budget_ == 0:  # a step outside any learn call: a fit of its own
            self._start(horizon or 1)
        start = self.optimizer.start_block(self._rng, len(self.blocks))
        frozen = [p for block in self.blocks[:start] for p in block.parameters()]
        frozen = [p for p in frozen if p.requires_grad]
        for p in frozen:
            p.requires_grad_(False)
        try:
            for optimizer in self.optimizers:
                optimizer.zero_grad(set_to_none=True)
            loss = loss_fn()
            loss.backward()
            if adjust is not None:
                adjust()
            self._norms.append(self._grad_norm())
            for optimizer in self.optimizers:
                optimizer.step()
        finally:
            for p in frozen:
                p.requires_grad_(True)
        for scheduler in self._schedulers:
            scheduler.step()
        self.step_ += 1
        self.last_start_ = start
        if horizon is not None and self.step_ >= self.budget_ and self._planned == 0:
            self._start(horizon)  # the cycle is over: restart
        return float(loss.detach())

    def _grad_norm(self) -> float:
        import torch

        grads = [p.grad for p in self._params if p.grad is not None]
        return float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0

    # -- state -----------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """A snapshot: the first optimiser's ``state_dict`` (keys ``state``, ``param_groups``,
        as a torch optimiser's) and, under ``trainer``, the other optimisers' states, the
        position in the fit, the gradient-norm traces and Drop-Muon's generator."""
        first, *more = [copy.deepcopy(o.state_dict()) for o in self.optimizers]
        return {
            **first,
            "trainer": {
                "more_optimizers": more,
                "step": self.step_,
                "budget": self.budget_,
                "planned": self._planned,
                "norms": self.grad_norms_,
                "previous": self.previous_grad_norms_,
                "factors": None if self._factors is None else self._factors.copy(),
                "rng": copy.deepcopy(self._rng.bit_generator.state),
            },
        }

    def load(self, state: Any) -> None:
        """Restore a :meth:`state` (or a single torch optimiser's ``state_dict``, as learners
        saved before schedules existed)."""
        keys = {"state", "param_groups"}
        if not isinstance(state, dict) or set(state) - {"trainer"} != keys:
            raise ValueError(f"optimizer state must be a dict with keys {sorted(keys)}, trainer")
        trainer = state.get("trainer")
        if trainer is not None and (not isinstance(trainer, dict) or set(trainer) != _KEYS):
            raise ValueError(f"trainer state must be a dict with keys {sorted(_KEYS)}")
        saved = [{k: state[k] for k in keys}]
        saved += [] if trainer is None else list(trainer["more_optimizers"])
        if len(saved) != len(self.optimizers):
            raise ValueError(
                f"the state holds {len(saved)} optimiser(s), this learner's "
                f"{self.optimizer!r} has {len(self.optimizers)}"
            )
        for optimizer, one in zip(self.optimizers, saved, strict=True):
            optimizer.load_state_dict(copy.deepcopy(one))
        if trainer is None:  # a legacy optimiser state: no fit recorded
            return
        self.step_, self.budget_ = int(trainer["step"]), int(trainer["budget"])
        self._planned = int(trainer["planned"])
        self._norms = [float(g) for g in trainer["norms"]]
        previous = trainer["previous"]
        self._previous = None if previous is None else np.asarray(previous, np.float64).copy()
        self._rng = np.random.default_rng()
        self._rng.bit_generator.state = copy.deepcopy(trainer["rng"])
        factors = trainer["factors"]
        self._factors = None if factors is None else np.asarray(factors, np.float64).copy()
        self._schedulers = []
        if self.schedule is not None and self._factors is not None:
            self._schedule_at(self.step_)


class TrainedLearner:
    """Mixin for a learner whose torch network a :class:`Trainer` trains: the public members
    of :class:`~adaptloop.learners.base.TorchTrainable`, the steps of a ``learn`` call and the
    re-fit budget that wrappers announce.

    The learner sets ``epochs``, ``batch_size``, ``_net`` and ``_trainer`` (``None`` until
    built), ``_rng`` (the mini-batch order) and ``_plan`` (``None``), and implements
    ``inputs``, ``targets``, ``loss``, ``_build(d)`` (network and trainer for ``d`` features)
    and ``_update_scaler(X)``. Its ``learn`` is :func:`train_epochs` over the batch.
    """

    epochs: int
    batch_size: int | None
    standardize: bool
    _local_state: ClassVar[tuple[str, ...]] = ("optimizer", "rng")
    _net: Any
    _rng: np.random.Generator
    _trainer: Trainer | None
    _plan: tuple[int, np.ndarray | None] | None

    # -- TorchTrainable ----------------------------------------------------------------------
    @property
    def network(self) -> Any:
        """The ``torch.nn.Module``; ``None`` before the first ``learn``."""
        return self._net

    @property
    def rng(self) -> np.random.Generator:
        """The generator of the mini-batch order."""
        return self._rng

    def forward(self, inputs: Any) -> Any:
        """The network applied to :meth:`inputs`' output, with gradients."""
        return self._net(inputs)

    def begin_learn(self, X: np.ndarray) -> None:
        """Start a ``learn`` call on the checked batch ``X``: build the network on the first
        one, update the scaler, begin the call's steps in the trainer."""
        if self._net is None:
            self._build(X.shape[1])
            self.n_features_in_ = X.shape[1]
        self._apply_plan()
        if self.standardize:
            self._update_scaler(X)
        self._trainer.begin_call(self.steps_per_call(X.shape[0]))

    def train_step(
        self, loss_fn: Callable[[], Any], adjust: Callable[[], None] | None = None
    ) -> float:
        """One optimiser step on ``loss_fn()`` (see :meth:`Trainer.step`); returns the loss."""
        return self._trainer.step(loss_fn, adjust)

    def _learn(self, X: np.ndarray, y: np.ndarray) -> None:
        self.begin_learn(X)
        train_epochs(self, self.inputs(X), self.targets(y), self.epochs, self.batch_size)

    def state_roles(self) -> StateRoles:
        """Federation: the optimiser (with the trainer's schedule, traces and generator) and
        the mini-batch generator stay on each client; the scaler's statistics are pooled."""
        return StateRoles(self._local_state, ("scaler",)).within("learned")

    # -- budget ------------------------------------------------------------------------------
    @property
    def trainer_(self) -> Trainer | None:
        """The :class:`Trainer` (optimisers, schedule, recorded gradient norms); ``None``
        before the first ``learn``."""
        return self._trainer

    def steps_per_call(self, n_samples: int) -> int:
        """Optimiser steps one ``learn`` call on ``n_samples`` samples takes."""
        size = n_samples if self.batch_size is None else min(self.batch_size, n_samples)
        return self.epochs * math.ceil(n_samples / size)

    def plan_fit(self, sizes: Sequence[int], previous: object = None) -> None:
        """Announce a re-fit: the ``learn`` calls that follow, by batch size, form one budgeted
        fit, which the schedule spans (``WindowRetrain`` and the other re-fitting wrappers call
        this on each fresh clone). ``previous``: the model the re-fit replaces; a refined
        schedule reads its gradient-norm trace."""
        steps = sum(self.steps_per_call(int(n)) for n in sizes if n > 0)
        if steps == 0:
            return
        trainer = previous.trainer_ if isinstance(previous, Refitting) else None
        trace = None if trainer is None or not len(trainer.grad_norms_) else trainer.grad_norms_
        if self._trainer is None:
            self._plan = (steps, trace)
        else:
            self._trainer.plan(steps, trace)

    def _apply_plan(self) -> None:
        if self._plan is not None and self._trainer is not None:
            self._trainer.plan(*self._plan)
            self._plan = None


def _take(inputs: Any, index: Any) -> Any:
    if isinstance(inputs, tuple):
        return tuple(part[index] for part in inputs)
    return inputs[index]


def train_epochs(
    learner: TorchTrainable,
    inputs: Any,
    target: Any,
    epochs: int,
    batch_size: int | None,
    shuffle: bool = False,
) -> None:
    """``epochs`` passes of ``learner.train_step`` over ``inputs`` (a tensor or a tuple of
    tensors, as ``learner.inputs`` gives) and ``target``, in mini-batches of ``batch_size``
    (all when ``None``) in the order of ``learner.rng`` -- shuffled when the mini-batches are
    smaller than the data, or always with ``shuffle``. Uses only the public members of
    :class:`~adaptloop.learners.base.TorchTrainable`; the network trains in train mode and is
    left in eval mode.

    >>> import numpy as np
    >>> from adaptloop.learners.mlp import MLPRegressor
    >>> model = MLPRegressor(hidden=(4,), epochs=1)
    >>> X, y = np.ones((8, 2), dtype=np.float32), np.ones(8, dtype=np.float32)
    >>> model.begin_learn(X)
    >>> train_epochs(model, model.inputs(X), model.targets(y), epochs=3, batch_size=4)
    >>> model.trainer_.step_
    6
    """
    import torch

    n = len(target)
    size = n if batch_size is None else min(batch_size, n)
    net = learner.network
    net.train()
    for _ in range(epochs):
        order = learner.rng.permutation(n) if shuffle or size < n else None
        for start in range(0, n, size):
            if order is None:
                index: Any = slice(start, start + size)
            else:
                index = torch.from_numpy(order[start : start + size])
            xb, yb = _take(inputs, index), target[index]
            learner.train_step(lambda xb=xb, yb=yb: learner.loss(learner.forward(xb), yb))
    net.eval()
