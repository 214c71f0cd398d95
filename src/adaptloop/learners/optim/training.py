"""``Trainer``: the optimiser step shared by the torch learners, with its schedule and budget.

A trainer holds a network's optimiser(s) (:mod:`adaptloop.learners.optim.optimizers`), its
learning-rate schedule (:mod:`adaptloop.learners.optim.schedules`) and the gradient-norm trace it
records, and takes one step at a time: ``step(loss_fn)`` freezes the blocks before Drop-Muon's
start block (if any), computes the loss, backpropagates, lets the caller adjust the gradients
(A-GEM, GEM), records the gradient norm, steps the optimisers and the schedule.

Steps are grouped in *fits* whose length ``T`` the schedule spans (see the schedules module):
a budget announced by :meth:`Trainer.plan` (a re-fit of a known number of steps), else one fit
per ``learn`` call (:meth:`Trainer.begin_call`), else -- with a schedule ``horizon`` -- cycles
of ``horizon`` steps. When a fit starts, the gradient norms recorded over the previous one
become ``previous_grad_norms_`` (what a ``Refined`` schedule without a trace of its own reads).

>>> import torch
>>> from adaptloop.learners.optim.optimizers import make_optimizer
>>> from adaptloop.learners.optim.schedules import make_schedule
>>> net = torch.nn.Linear(2, 1)
>>> trainer = Trainer(net, [net], make_optimizer("sgd"), make_schedule("linear"), 0.1, 0.0)
>>> trainer.plan(4)
>>> x, y = torch.ones(8, 2), torch.zeros(8, 1)
>>> lrs = []
>>> for _ in range(4):
...     lrs.append(trainer.lr_); _ = trainer.step(lambda: ((net(x) - y) ** 2).mean())
>>> [round(lr, 3) for lr in lrs], trainer.step_, trainer.budget_, len(trainer.grad_norms_)
([0.1, 0.075, 0.05, 0.025], 4, 4, 4)
>>> trainer.factors_.tolist()
[1.0, 0.75, 0.5, 0.25]
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from adaptloop.learners.optim.optimizers import OptimizerSpec
from adaptloop.learners.optim.schedules import Schedule, _Table

__all__ = ["Trainer"]

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
        self.schedule = None if schedule is None else schedule.for_optimizer(optimizer)
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
        """The norms of the gradients of the current fit's steps (the updated blocks'): L2, or L1
        where a refined schedule reads L1 norms (its Adam rule, see ``Refined.norm``)."""
        return np.array(self._norms, dtype=np.float64)

    @property
    def previous_grad_norms_(self) -> np.ndarray | None:
        """The gradient norms recorded over the previous fit (``None`` before one ended)."""
        return None if self._previous is None else self._previous.copy()

    @property
    def factors_(self) -> np.ndarray | None:
        """The schedule's factor of each step of the current fit (step ``t`` takes the rate
        ``lr * factors_[t]``); ``None`` without a schedule or before the first fit."""
        return None if self._factors is None else self._factors.copy()

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
        order = 2 if self.schedule is None else self.schedule.trace_ord
        return float(torch.nn.utils.get_total_norm(grads, norm_type=order)) if grads else 0.0

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
