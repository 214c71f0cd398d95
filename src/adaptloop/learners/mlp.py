"""Multi-layer perceptrons in PyTorch: ``MLPClassifier`` and ``MLPRegressor``.

PyTorch is an optional extra (``pip install adaptloop[torch]``): it is imported only when an
MLP is built, so ``import adaptloop.learners`` works without it.

Each ``learn`` call runs ``epochs`` passes over the batch, in mini-batches of ``batch_size``
(the whole batch when ``None``), with Adam (or SGD, Muon, Drop-Muon:
:mod:`adaptloop.learners.optimizers`) and optional weight decay, at a rate that follows
``schedule`` (:mod:`adaptloop.learners.schedules`; ``None``: constant ``lr``). Features are
standardised online (running mean and variance, as in the linear learners) when
``standardize`` is true. The network is built on the first ``learn`` (the number of features is
fixed then), its weights drawn from a generator seeded with ``seed``: the global torch and
numpy random states are never touched.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(512, 2)).astype(np.float32)
>>> y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)  # XOR-like: not linearly separable
>>> model = MLPClassifier(hidden=(32,), lr=0.01, epochs=20, batch_size=64)
>>> model.learn(X, y)
>>> float((model.predict(X) == y).mean()) > 0.9
True
>>> model.hidden_representation(X[:3]).shape
(3, 32)
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from adaptloop.learners.base import BaseClassifier, BaseLearner, registry
from adaptloop.learners.optimizers import OptimizerLike, make_optimizer
from adaptloop.learners.schedules import ScheduleLike, make_schedule
from adaptloop.learners.training import TrainedLearner, Trainer

Optimizer = OptimizerLike
"""A torch learner's ``optimizer``: ``"adam"``, ``"sgd"``, ``"muon"``, ``"drop_muon"``, a table
with a ``name`` and its parameters, or an :class:`~adaptloop.learners.optimizers.OptimizerSpec`."""
Schedule = ScheduleLike
"""A torch learner's ``schedule``: ``None`` (constant ``lr``), a name, a table or an object."""


def _torch() -> Any:
    try:
        import torch
    except ImportError as error:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "the MLP learners need PyTorch: pip install 'adaptloop[torch]'"
        ) from error
    return torch


def _check_params(
    hidden: object,
    lr: object,
    epochs: object,
    batch_size: object,
    weight_decay: object,
    optimizer: object,
    standardize: object,
    seed: object,
    schedule: object = None,
) -> tuple[int, ...]:
    def is_int(value: object) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

    if not isinstance(hidden, (tuple, list)) or not all(is_int(h) and h >= 1 for h in hidden):
        raise ValueError(
            f"hidden must be a tuple of positive layer widths, e.g. (64,), got {hidden!r}"
        )
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.integer, np.floating)):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if not math.isfinite(float(lr)) or float(lr) <= 0:
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    if not is_int(epochs) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
    if batch_size is not None and (not is_int(batch_size) or batch_size < 1):
        raise ValueError(f"batch_size must be None or an integer >= 1, got {batch_size!r}")
    if isinstance(weight_decay, bool) or not isinstance(
        weight_decay, (int, float, np.integer, np.floating)
    ):
        raise ValueError(f"weight_decay must be a number >= 0, got {weight_decay!r}")
    if not math.isfinite(float(weight_decay)) or float(weight_decay) < 0:
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
    make_optimizer(optimizer)  # type: ignore[arg-type]  # raises naming the problem
    make_schedule(schedule)  # type: ignore[arg-type]
    if not isinstance(standardize, (bool, np.bool_)):
        raise ValueError(f"standardize must be True or False, got {standardize!r}")
    if not is_int(seed):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    return tuple(int(h) for h in hidden)


class _MLPCore(TrainedLearner, ABC):
    """Network, trainer (optimiser, schedule), feature scaler and shuffling generator shared
    by the torch learners built on it (both MLPs, the recurrent regressors).

    A :class:`~adaptloop.learners.base.TorchTrainable`: strategies that train the network
    themselves (the continual-learning wrappers) call :meth:`begin_learn` at the start of a
    ``learn`` call, then :meth:`train_step` per mini-batch on :meth:`loss` of :meth:`forward`.
    :meth:`plan_fit` announces a re-fit's budget.
    """

    hidden: tuple[int, ...]
    lr: float
    epochs: int
    batch_size: int | None
    weight_decay: float
    optimizer: Any
    schedule: Any
    standardize: bool
    seed: int

    def _init_core(self, n_outputs: int) -> None:
        self._n_outputs = n_outputs
        self._net: Any = None  # torch.nn.Sequential, built on the first learn
        self._trainer: Trainer | None = None
        self._plan = None  # a budget announced before the network was built
        self._count = 0
        self._mean: np.ndarray | None = None
        self._m2: np.ndarray | None = None
        self._rng = np.random.default_rng(self.seed)  # mini-batch order only

    # -- construction ------------------------------------------------------------------------
    def _build(self, d: int) -> None:
        torch = _torch()
        generator = torch.Generator().manual_seed(int(self.seed))
        layers: list[Any] = []
        width = d
        # skip_init: nn.Linear's own init would draw from (and advance) the global generator
        for h in self.hidden:
            layers += [torch.nn.utils.skip_init(torch.nn.Linear, width, h), torch.nn.ReLU()]
            width = h
        layers.append(torch.nn.utils.skip_init(torch.nn.Linear, width, self._n_outputs))
        net = torch.nn.Sequential(*layers)
        with torch.no_grad():  # PyTorch's default init, drawn from our generator
            for layer in net:
                if isinstance(layer, torch.nn.Linear):
                    bound = 1.0 / math.sqrt(layer.in_features)
                    layer.weight.uniform_(-bound, bound, generator=generator)
                    layer.bias.uniform_(-bound, bound, generator=generator)
        self._net = net
        try:
            self._make_trainer()
        except ValueError:  # the optimiser refuses this network: stay unbuilt
            self._net = None
            raise
        self._count = 0
        self._mean, self._m2 = np.zeros(d), np.zeros(d)

    def _blocks(self) -> list[Any]:
        """The network's layers in forward order, each holding its parameters (Drop-Muon's
        blocks): here the linear layers."""
        torch = _torch()
        return [layer for layer in self._net if isinstance(layer, torch.nn.Linear)]

    def _make_trainer(self) -> None:
        self._trainer = Trainer(
            self._net,
            self._blocks(),
            make_optimizer(self.optimizer),
            make_schedule(self.schedule),
            float(self.lr),
            float(self.weight_decay),
            int(self.seed),
        )

    # -- features ----------------------------------------------------------------------------
    def _update_scaler(self, X: np.ndarray) -> None:
        n = X.shape[0]
        total = self._count + n
        batch_mean = X.mean(axis=0, dtype=np.float64)
        centred = X - batch_mean
        delta = batch_mean - self._mean
        self._mean = self._mean + delta * (n / total)
        self._m2 = self._m2 + np.einsum("ij,ij->j", centred, centred)
        self._m2 = self._m2 + delta * delta * (self._count * n / total)
        self._count = total

    def inputs(self, X: np.ndarray) -> Any:
        """Checked features as the float32 tensor the network takes (standardised)."""
        torch = _torch()
        if self.standardize:
            std = np.sqrt(self._m2 / max(self._count, 1))
            inv = np.divide(1.0, std, out=np.zeros_like(std), where=std > 0)
            X = ((X - self._mean) * inv).astype(np.float32)
        return torch.from_numpy(np.array(X, dtype=np.float32))  # a writable copy

    def _forward(self, X: np.ndarray, upto_hidden: bool = False) -> Any:
        torch = _torch()
        with torch.no_grad():
            h = self.inputs(X)
            layers = list(self._net)[:-1] if upto_hidden else self._net
            for layer in layers:
                h = layer(h)
        return h

    # -- learning ------------------------------------------------------------------------------
    @abstractmethod
    def loss(self, output: Any, target: Any) -> Any:
        """The training loss of a forward pass against its targets."""

    @abstractmethod
    def targets(self, y: np.ndarray) -> Any:
        """Labels or values as the tensor :meth:`loss` takes."""

    # -- state ----------------------------------------------------------------------------------
    def _get_state(self) -> dict[str, Any]:
        if self._net is None:
            return {"model": None, "optimizer": None, "scaler": None, "rng": self._rng_state()}
        return {
            "model": {k: v.detach().clone() for k, v in self._net.state_dict().items()},
            "optimizer": self._trainer.state(),
            "scaler": {"count": self._count, "mean": self._mean.copy(), "m2": self._m2.copy()},
            "rng": self._rng_state(),
        }

    def _rng_state(self) -> dict[str, Any]:
        return copy.deepcopy(self._rng.bit_generator.state)

    def _set_state(self, state: Any) -> None:
        name = type(self).__name__
        keys = {"model", "optimizer", "scaler", "rng"}
        if not isinstance(state, dict) or set(state) != keys:
            raise ValueError(f"state of {name} must be a dict with keys {sorted(keys)}")
        rng = np.random.default_rng()
        rng.bit_generator.state = state["rng"]
        if state["model"] is None:
            self._init_core(self._n_outputs)
            self._rng = rng
            return
        model = state["model"]
        first = model.get("0.weight")
        last = model.get(f"{2 * len(self.hidden)}.weight")
        if first is None or last is None or last.shape[0] != self._n_outputs:
            raise ValueError(
                f"state of {name} does not fit hidden={self.hidden} with {self._n_outputs} "
                "output(s); was it saved by a learner with other parameters?"
            )
        self._build(int(first.shape[1]))
        try:
            self._net.load_state_dict(model)
            self._trainer.load(state["optimizer"])
        except (RuntimeError, KeyError, ValueError) as error:
            raise ValueError(f"state of {name} does not fit this network: {error}") from error
        scaler = state["scaler"]
        self._count = int(scaler["count"])
        self._mean = np.asarray(scaler["mean"], dtype=np.float64)
        self._m2 = np.asarray(scaler["m2"], dtype=np.float64)
        self._rng = rng
        self._net.eval()

    # -- representation -------------------------------------------------------------------------
    def hidden_representation(self, X: np.ndarray) -> np.ndarray:
        """Activations of the last hidden layer, float32 ``(n, hidden[-1])``.

        With no hidden layer (``hidden=()``) the (standardised) input. Zeros before the first
        ``learn``. Input is checked like ``predict``'s.
        """
        X = self.check_X(X)  # type: ignore[attr-defined]
        width = self.hidden[-1] if self.hidden else X.shape[1]
        if self._net is None:
            return np.zeros((X.shape[0], width), dtype=np.float32)
        return self._forward(X, upto_hidden=True).numpy().astype(np.float32, copy=False)


@registry.register("mlp")
class MLPClassifier(_MLPCore, BaseClassifier):
    """An MLP classifier (ReLU hidden layers, softmax output, cross-entropy) in PyTorch.

    Parameters: ``n_classes``; ``hidden`` (widths of the hidden layers); ``lr``; ``epochs``
    (passes over each batch); ``batch_size`` (mini-batch size within a ``learn`` call, ``None``
    for the whole batch); ``weight_decay``; ``optimizer`` (``"adam"``, ``"sgd"``, ``"muon"``,
    ``"drop_muon"``, or a table / :class:`~adaptloop.learners.optimizers.OptimizerSpec` with
    parameters); ``standardize`` (online standardisation of the features); ``seed``;
    ``schedule`` (the learning-rate schedule over each fit: ``None`` for a constant ``lr``,
    ``"constant"``, ``"cosine"``, ``"linear"``, ``"refined"``, ``"uba"`` or a table such as
    ``{"name": "uba", "phi": 1.0}``; :mod:`adaptloop.learners.schedules` says what a fit is on
    a stream and in a re-fit). Uniform probabilities before the first ``learn``.

    >>> import numpy as np
    >>> model = MLPClassifier(n_classes=3, hidden=(8,), lr=0.05, epochs=30)
    >>> X = np.array([[0, 0], [4, 0], [0, 4]], dtype=np.float32)
    >>> model.predict_proba(X[:1])
    array([[0.33333333, 0.33333333, 0.33333333]])
    >>> model.learn(X, np.array([0, 1, 2]))
    >>> model.predict(X)
    array([0, 1, 2])
    >>> model = MLPClassifier(n_classes=3, hidden=(8,), lr=0.05, epochs=30,
    ...                       optimizer="drop_muon", schedule="linear")
    >>> model.learn(X, np.array([0, 1, 2]))
    >>> model.predict(X), model.trainer_.budget_  # one fit: the call's 30 steps
    (array([0, 1, 2]), 30)
    """

    def __init__(
        self,
        n_classes: int = 2,
        hidden: tuple[int, ...] = (64,),
        lr: float = 0.01,
        epochs: int = 1,
        batch_size: int | None = None,
        weight_decay: float = 0.0,
        optimizer: Optimizer = "adam",
        standardize: bool = True,
        seed: int = 0,
        schedule: Schedule = None,
    ) -> None:
        hidden = _check_params(
            hidden, lr, epochs, batch_size, weight_decay, optimizer, standardize, seed, schedule
        )
        super().__init__(task="binary" if n_classes == 2 else "multiclass", n_classes=n_classes)
        self.hidden = hidden
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.optimizer = copy.deepcopy(optimizer)
        self.schedule = copy.deepcopy(schedule)
        self.standardize = standardize
        self.seed = seed
        self._init_core(self._n_classes)

    def targets(self, y: np.ndarray) -> Any:
        """Class codes as an int64 tensor."""
        return _torch().from_numpy(np.array(y, dtype=np.int64))

    def loss(self, output: Any, target: Any) -> Any:
        """Cross-entropy of the logits."""
        return _torch().nn.functional.cross_entropy(output, target)

    def _predict_proba(self, X: np.ndarray) -> np.ndarray:
        if self._net is None:
            return np.full((X.shape[0], self._n_classes), 1.0 / self._n_classes)
        return self._forward(X).double().softmax(dim=1).numpy()


@registry.register("mlp_regressor")
class MLPRegressor(_MLPCore, BaseLearner):
    """An MLP regressor (ReLU hidden layers, one linear output, squared loss) in PyTorch.

    Same parameters as :class:`MLPClassifier` without ``n_classes``; predicts float32, 0.0
    before the first ``learn``.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-2, 2, size=(256, 1)).astype(np.float32)
    >>> y = (X[:, 0] ** 2).astype(np.float32)
    >>> model = MLPRegressor(hidden=(32,), lr=0.01, epochs=200)
    >>> model.learn(X, y)
    >>> bool(np.abs(model.predict(X) - y).mean() < 0.2)
    True
    """

    def __init__(
        self,
        hidden: tuple[int, ...] = (64,),
        lr: float = 0.01,
        epochs: int = 1,
        batch_size: int | None = None,
        weight_decay: float = 0.0,
        optimizer: Optimizer = "adam",
        standardize: bool = True,
        seed: int = 0,
        schedule: Schedule = None,
    ) -> None:
        hidden = _check_params(
            hidden, lr, epochs, batch_size, weight_decay, optimizer, standardize, seed, schedule
        )
        super().__init__(task="regression")
        self.hidden = hidden
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.optimizer = copy.deepcopy(optimizer)
        self.schedule = copy.deepcopy(schedule)
        self.standardize = standardize
        self.seed = seed
        self._init_core(1)

    def targets(self, y: np.ndarray) -> Any:
        """Values as a float32 tensor."""
        return _torch().from_numpy(np.array(y, dtype=np.float32))

    def loss(self, output: Any, target: Any) -> Any:
        """Mean squared error of the single output."""
        return _torch().nn.functional.mse_loss(output[:, 0], target)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        if self._net is None:
            return np.zeros(X.shape[0], dtype=np.float32)
        return self._forward(X)[:, 0].numpy().astype(np.float32, copy=False)
