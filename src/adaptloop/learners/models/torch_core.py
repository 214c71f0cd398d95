"""What the torch learners share: PyTorch on demand, the training parameters declared once,
the trainer, the online feature scaler, the state and the :class:`TorchTrainable` members.

PyTorch is an optional extra (``pip install adaptloop[torch]``): :func:`import_torch` imports
it when a network is built, so ``import adaptloop.learners`` works without it.

The training parameters (``lr``, ``epochs``, ``batch_size``, ``weight_decay``, ``optimizer``,
``standardize``, ``seed``, ``schedule``) are declared once, in :func:`training_parameters`; a
learner's ``__init__`` takes them as ``**training`` and the :func:`trains` decorator puts them
into its signature (keyword-only, with the learner's own defaults where it has some), so the
declaration check, ``clone``, ``repr`` and ``adaptloop list`` see them as the learner's own.

>>> import numpy as np
>>> from adaptloop.learners.models.mlp import MLPRegressor
>>> model = MLPRegressor(hidden=(4,), epochs=1)
>>> X, y = np.ones((8, 2), dtype=np.float32), np.ones(8, dtype=np.float32)
>>> model.begin_learn(X)  # the TorchTrainable step, as continual plugins drive it
>>> train_epochs(model, model.inputs(X), model.targets(y), epochs=3, batch_size=4)
>>> model.trainer_.step_
6
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from adaptloop.learners.base import (
    Refitting,
    StateRoles,
    TorchTrainable,
    shared_arguments,
    shares,
)
from adaptloop.learners.optim.optimizers import OptimizerLike, make_optimizer
from adaptloop.learners.optim.schedules import ScheduleLike, make_schedule
from adaptloop.learners.optim.training import Trainer
from adaptloop.parameters import ParameterError
from adaptloop.validation import Count, NonNegativeReal, PositiveReal, Seed

__all__ = [
    "CrossEntropyLoss",
    "Hidden",
    "Optimizer",
    "Schedule",
    "SquaredErrorLoss",
    "TorchLearner",
    "import_torch",
    "train_epochs",
    "training_parameters",
    "trains",
]

Hidden = tuple[Count, ...]
"""Widths of hidden layers, each >= 1 (``()``: none)."""
Optimizer = OptimizerLike
"""A torch learner's ``optimizer``: ``"adam"``, ``"sgd"``, ``"muon"``, ``"drop_muon"``, a table
with a ``name`` and its parameters, or an
:class:`~adaptloop.learners.optim.optimizers.OptimizerSpec`."""
Schedule = ScheduleLike
"""A torch learner's ``schedule``: ``None`` (constant ``lr``), a name, a table or an object."""


def import_torch() -> Any:
    """The ``torch`` module, or ``ImportError`` naming the extra to install."""
    try:
        import torch
    except ImportError as error:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "the torch learners need PyTorch: pip install 'adaptloop[torch]'"
        ) from error
    return torch


def training_parameters(
    *,
    lr: PositiveReal = 0.01,
    epochs: Count = 1,
    batch_size: Count | None = None,
    weight_decay: NonNegativeReal = 0.0,
    optimizer: Optimizer = "adam",
    standardize: bool = True,
    seed: Seed = 0,
    schedule: Schedule = None,
) -> dict[str, Any]:
    """The declaration of the torch learners' training parameters, with their defaults.

    ``lr``: the learning rate; ``epochs``: passes over each ``learn`` batch; ``batch_size``:
    mini-batch size within a ``learn`` call (``None``: the whole batch); ``weight_decay``;
    ``optimizer`` (:mod:`adaptloop.learners.optim.optimizers`); ``standardize``: online
    standardisation of the (numeric) features; ``seed``: weights and mini-batch order;
    ``schedule``: the learning rate over each fit (:mod:`adaptloop.learners.optim.schedules`).

    >>> training_parameters(lr=0.1)["lr"], training_parameters()["batch_size"]
    (0.1, None)
    """
    return {name: value for name, value in locals().items()}


def trains(**defaults: Any) -> Callable[[type], type]:
    """Class decorator: the class's ``__init__(self, ..., **training)`` declares the training
    parameters of :func:`training_parameters` (keyword-only), ``defaults`` overriding theirs
    (see :func:`~adaptloop.learners.base.shares`)."""
    return shares(training_parameters, **defaults)


class TorchLearner(ABC):
    """The core of a torch learner: training parameters, network and :class:`Trainer`, the
    online feature scaler, the shuffling generator, the state and the public members of
    :class:`~adaptloop.learners.base.TorchTrainable` (strategies that train the network
    themselves call :meth:`begin_learn`, then :meth:`train_step` per mini-batch on
    :meth:`loss` of :meth:`forward`); :meth:`plan_fit` announces a re-fit's budget.

    A learner calls :meth:`_init_training` in its constructor and implements
    :meth:`_network` (the module and its Drop-Muon blocks for ``d`` features), :meth:`inputs`,
    :meth:`targets`, :meth:`loss` and :meth:`_n_features` (of a saved state); it overrides
    :meth:`_scaled` when the scaler sees only some columns. Its ``learn`` is
    :func:`train_epochs` over the batch.
    """

    lr: float
    epochs: int
    batch_size: int | None
    weight_decay: float
    optimizer: Any
    standardize: bool
    seed: int
    schedule: Any
    n_features_in_: int | None
    _local_state: ClassVar[tuple[str, ...]] = ("optimizer", "rng")
    _STATE: ClassVar[frozenset[str]] = frozenset({"model", "optimizer", "scaler", "rng"})

    def _init_training(self, training: dict[str, Any]) -> None:
        """Store the training parameters (given, else the signature's defaults)."""
        for name, value in shared_arguments(self, training_parameters, training).items():
            setattr(self, name, value)
        for name, make in (("optimizer", make_optimizer), ("schedule", make_schedule)):
            try:
                make(getattr(self, name))
            except ParameterError as error:  # a parameter of the table: optimizer.momentum
                raise ParameterError(f"{type(self).__name__}.{error.path}", error.reason) from None
            except ValueError as error:
                raise ParameterError(f"{type(self).__name__}.{name}", str(error)) from None
        self._reset()

    def _reset(self) -> None:
        self._net: Any = None  # built on the first learn (the number of features is fixed then)
        self._trainer: Trainer | None = None
        self._plan: tuple[int, np.ndarray | None] | None = None  # a budget before the build
        self._count = 0
        self._mean: np.ndarray | None = None
        self._m2: np.ndarray | None = None
        self._rng = np.random.default_rng(self.seed)  # mini-batch order only

    # -- to implement ------------------------------------------------------------------------
    @abstractmethod
    def _network(self, d: int) -> tuple[Any, list[Any]]:
        """A fresh network for ``d`` features (weights from ``seed``) and its blocks in
        forward order, each holding its parameters (Drop-Muon's blocks)."""

    @abstractmethod
    def inputs(self, X: np.ndarray) -> Any:
        """Checked features as what the network takes (standardised, typed tensors)."""

    @abstractmethod
    def targets(self, y: np.ndarray) -> Any:
        """Labels or values as the tensor :meth:`loss` takes."""

    @abstractmethod
    def loss(self, output: Any, target: Any) -> Any:
        """The training loss of a forward pass against its targets."""

    @abstractmethod
    def _n_features(self, model: dict[str, Any], scaler: dict[str, Any]) -> int:
        """The number of features of a saved network; ``ValueError`` if it cannot be this
        learner's."""

    def _scaled(self, X: np.ndarray) -> np.ndarray:
        """The columns the scaler standardises (all by default)."""
        return X

    # -- construction ------------------------------------------------------------------------
    def _build(self, d: int) -> None:
        net, blocks = self._network(d)
        trainer = Trainer(  # raises if the optimiser refuses the network: stay unbuilt
            net,
            blocks,
            make_optimizer(self.optimizer),
            make_schedule(self.schedule),
            float(self.lr),
            float(self.weight_decay),
            int(self.seed),
        )
        self._net, self._trainer = net, trainer
        width = self._scaled(np.zeros((1, d), dtype=np.float32)).shape[1]
        self._count, self._mean, self._m2 = 0, np.zeros(width), np.zeros(width)

    # -- features ----------------------------------------------------------------------------
    def _update_scaler(self, X: np.ndarray) -> None:
        values = self._scaled(X)
        n = values.shape[0]
        total = self._count + n
        batch_mean = values.mean(axis=0, dtype=np.float64)
        centred = values - batch_mean
        delta = batch_mean - self._mean
        self._mean = self._mean + delta * (n / total)
        self._m2 = self._m2 + np.einsum("ij,ij->j", centred, centred)
        self._m2 = self._m2 + delta * delta * (self._count * n / total)
        self._count = total

    def _standardised(self, values: np.ndarray) -> np.ndarray:
        """``values`` (the scaled columns) standardised, as float32."""
        if not self.standardize:
            return np.array(values, dtype=np.float32)
        std = np.sqrt(self._m2 / max(self._count, 1))
        inv = np.divide(1.0, std, out=np.zeros_like(std), where=std > 0)
        return ((values - self._mean) * inv).astype(np.float32)

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

    # -- state -------------------------------------------------------------------------------
    def state_roles(self) -> StateRoles:
        """Federation: the optimiser (with the trainer's schedule, traces and generator) and
        the mini-batch generator stay on each client; the scaler's statistics are pooled."""
        return StateRoles(self._local_state, ("scaler",)).within("learned")

    def _get_state(self) -> dict[str, Any]:
        rng = copy.deepcopy(self._rng.bit_generator.state)
        if self._net is None:
            return {"model": None, "optimizer": None, "scaler": None, "rng": rng}
        return {
            "model": {k: v.detach().clone() for k, v in self._net.state_dict().items()},
            "optimizer": self._trainer.state(),
            "scaler": {"count": self._count, "mean": self._mean.copy(), "m2": self._m2.copy()},
            "rng": rng,
        }

    def _set_state(self, state: Any) -> None:
        name = type(self).__name__
        if not isinstance(state, dict) or set(state) != self._STATE:
            raise ValueError(f"state of {name} must be a dict with keys {sorted(self._STATE)}")
        rng = np.random.default_rng()
        rng.bit_generator.state = state["rng"]
        if state["model"] is None:
            self._reset()
            self._rng = rng
            return
        d = self._n_features(state["model"], state["scaler"])
        previous = (self._net, self._trainer, self._count, self._mean, self._m2)
        try:
            self._build(d)
            self._net.load_state_dict(state["model"])
            self._trainer.load(state["optimizer"])
        except (RuntimeError, KeyError, ValueError, TypeError) as error:
            self._net, self._trainer, self._count, self._mean, self._m2 = previous
            raise ValueError(
                f"state of {name} does not fit this network ({error}); was it saved by a "
                "learner with other parameters?"
            ) from error
        scaler = state["scaler"]
        self._count = int(scaler["count"])
        self._mean = np.asarray(scaler["mean"], dtype=np.float64)
        self._m2 = np.asarray(scaler["m2"], dtype=np.float64)
        self._rng = rng
        self._net.eval()


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
    left in eval mode."""
    torch = import_torch()
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


class CrossEntropyLoss:
    """Classification: class codes as int64 targets, cross-entropy of the logits."""

    def targets(self, y: np.ndarray) -> Any:
        """Class codes as an int64 tensor."""
        return import_torch().from_numpy(np.array(y, dtype=np.int64))

    def loss(self, output: Any, target: Any) -> Any:
        """Cross-entropy of the logits."""
        return import_torch().nn.functional.cross_entropy(output, target)


class SquaredErrorLoss:
    """Regression: float32 targets, mean squared error of the single output."""

    def targets(self, y: np.ndarray) -> Any:
        """Values as a float32 tensor."""
        return import_torch().from_numpy(np.array(y, dtype=np.float32))

    def loss(self, output: Any, target: Any) -> Any:
        """Mean squared error of the single output."""
        return import_torch().nn.functional.mse_loss(output[:, 0], target)
