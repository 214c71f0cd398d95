"""Multi-layer perceptrons in PyTorch: ``MLPClassifier`` and ``MLPRegressor``.

PyTorch is an optional extra (``pip install adaptloop[torch]``): it is imported only when an
MLP is built, so ``import adaptloop.learners`` works without it. The training parameters and
the training step are those of every torch learner (:mod:`adaptloop.learners.models.torch_core`).

Each ``learn`` call runs ``epochs`` passes over the batch, in mini-batches of ``batch_size``
(the whole batch when ``None``), with Adam (or SGD, Muon, Drop-Muon:
:mod:`adaptloop.learners.optim.optimizers`) and optional weight decay, at a rate that follows
``schedule`` (:mod:`adaptloop.learners.optim.schedules`; ``None``: constant ``lr``). Features are
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

import math
from typing import Annotated, Any

import numpy as np
from annotated_types import Ge

from adaptloop.learners.base import BaseClassifier, BaseLearner, registry
from adaptloop.learners.models.torch_core import (
    CrossEntropyLoss,
    Hidden,
    SquaredErrorLoss,
    TorchLearner,
    import_torch,
    trains,
)

__all__ = ["MLPClassifier", "MLPRegressor"]


class _MLP(TorchLearner):
    """The network (ReLU hidden layers, linear output layer) shared by both MLPs."""

    hidden: tuple[int, ...]
    _n_outputs: int

    def _network(self, d: int) -> tuple[Any, list[Any]]:
        torch = import_torch()
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
        # Drop-Muon's blocks: the linear layers
        return net, [layer for layer in net if isinstance(layer, torch.nn.Linear)]

    def inputs(self, X: np.ndarray) -> Any:
        """Checked features as the float32 tensor the network takes (standardised)."""
        return import_torch().from_numpy(self._standardised(X))

    def _n_features(self, model: dict[str, Any], scaler: dict[str, Any]) -> int:
        first = model.get("0.weight")
        last = model.get(f"{2 * len(self.hidden)}.weight")
        if first is None or last is None or last.shape[0] != self._n_outputs:
            raise ValueError(
                f"state of {type(self).__name__} does not fit hidden={self.hidden} with "
                f"{self._n_outputs} output(s); was it saved by a learner with other parameters?"
            )
        return int(first.shape[1])

    def _output(self, X: np.ndarray, upto_hidden: bool = False) -> Any:
        with import_torch().no_grad():
            h = self.inputs(X)
            for layer in list(self._net)[:-1] if upto_hidden else self._net:
                h = layer(h)
        return h

    def hidden_representation(self, X: np.ndarray) -> np.ndarray:
        """Activations of the last hidden layer, float32 ``(n, hidden[-1])``.

        With no hidden layer (``hidden=()``) the (standardised) input. Zeros before the first
        ``learn``. Input is checked like ``predict``'s.
        """
        X = self.check_X(X)  # type: ignore[attr-defined]
        width = self.hidden[-1] if self.hidden else X.shape[1]
        if self._net is None:
            return np.zeros((X.shape[0], width), dtype=np.float32)
        return self._output(X, upto_hidden=True).numpy().astype(np.float32, copy=False)


@registry.register("mlp")
@trains()
class MLPClassifier(CrossEntropyLoss, _MLP, BaseClassifier):
    """An MLP classifier (ReLU hidden layers, softmax output, cross-entropy) in PyTorch.

    Parameters: ``n_classes``; ``hidden`` (widths of the hidden layers); the training
    parameters of :func:`~adaptloop.learners.models.torch_core.training_parameters` (``lr``,
    ``epochs``, ``batch_size``, ``weight_decay``, ``optimizer``: ``"adam"``, ``"sgd"``,
    ``"muon"``, ``"drop_muon"`` or a table with parameters, ``standardize``, ``seed``,
    ``schedule``: ``None`` for a constant ``lr``, ``"constant"``, ``"cosine"``, ``"linear"``,
    ``"refined"``, ``"uba"`` or a table such as ``{"name": "uba", "phi": 1.0}``;
    :mod:`adaptloop.learners.optim.schedules` says what a fit is on a stream and in a re-fit).
    Uniform probabilities before the first ``learn``.

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
        self, n_classes: Annotated[int, Ge(2)] = 2, hidden: Hidden = (64,), **training: Any
    ) -> None:
        super().__init__(task="binary" if n_classes == 2 else "multiclass", n_classes=n_classes)
        self.hidden = tuple(hidden)
        self._n_outputs = self._n_classes
        self._init_training(training)

    def _predict_proba(self, X: np.ndarray) -> np.ndarray:
        if self._net is None:
            return np.full((X.shape[0], self._n_classes), 1.0 / self._n_classes)
        return self._output(X).double().softmax(dim=1).numpy()


@registry.register("mlp_regressor")
@trains()
class MLPRegressor(SquaredErrorLoss, _MLP, BaseLearner):
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

    def __init__(self, hidden: Hidden = (64,), **training: Any) -> None:
        super().__init__(task="regression")
        self.hidden = tuple(hidden)
        self._n_outputs = 1
        self._init_training(training)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        if self._net is None:
            return np.zeros(X.shape[0], dtype=np.float32)
        return self._output(X)[:, 0].numpy().astype(np.float32, copy=False)
