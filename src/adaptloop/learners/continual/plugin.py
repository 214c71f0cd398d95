"""The plugin base of the continual-learning strategies, and their registry.

A plugin changes what one continual-learning method changes in a training step -- which
samples join the batch, the loss, or the gradient -- and keeps what it needs across tasks (a
buffer, a Fisher, a teacher). :class:`~adaptloop.learners.continual.learner.Continual` runs a
list of plugins over any :class:`~adaptloop.learners.base.TorchTrainable` learner, so they
combine (replay + LwF in one learner, as Avalanche's plugin list allows), without a class
hierarchy: a plugin overrides the hooks it needs, all others do nothing.

Hooks, in the order the learner calls them (``host``: the learner, see :class:`Host`):

- ``check(task)``: when the learner is built; refuse a task the method cannot train.
- ``begin_task(host, task)``: a task begins (after the learner set the task's label mask).
- for every mini-batch of new samples, within one optimiser step:
  ``extra_batch(host, n)`` -> ``(X, y)`` or ``None``: samples trained together with the ``n``
  new ones, as one batch under one loss (the union); ``loss(host, batch, loss)`` -> the step's
  loss, from the loss so far (the learner's own loss on the batch, then each plugin's result in
  list order); ``adjust_gradient(host, params)``: change the gradients of ``params`` (the
  parameters this step updates) in place before the optimiser step; then, after the step,
  ``after_step(host, X, y)`` with the new samples.
- ``end_task(host, X, y)``: the finished task's training data (on a stream: its most recent
  samples, see the learner).
- ``state_dict()`` / ``load_state_dict(state)``: what the plugin learned, as plain values.

Randomness comes from ``host.rng`` (the learner's seeded generator), shared by its plugins.

>>> plugins.names()
['agem', 'classp', 'ewc', 'gem', 'joint', 'lines', 'lwf', 'replay']
>>> make_plugin({"kind": "replay", "memory": 20})
Replay(memory=20, replay_batch=None, new_weight=0.5, policy='reservoir', draw='independent')
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from adaptloop.learners.base import TorchTrainable
from adaptloop.learners.optim.specs import Spec
from adaptloop.parameters import check_parameters
from adaptloop.registry import Registry

__all__ = ["Batch", "Host", "Plugin", "PluginSpec", "make_plugin", "plugins"]

plugins = Registry("plugin")
"""Continual-learning plugins by name; their modules register with ``@plugins.register``."""


class Host(Protocol):
    """What a plugin may use of the learner running it."""

    @property
    def trainable(self) -> TorchTrainable:
        """The trained learner (its ``network`` is ``None`` before the first ``learn``)."""

    rng: np.random.Generator

    def loss(self, output: Any, target: Any) -> Any:
        """The learner's training loss (class logits restricted to each sample's task)."""

    def forward(self, inputs: Any, weights: dict[str, Any] | None = None) -> Any:
        """The network's output on ``inputs``; with ``weights`` (a ``state_dict`` of the
        network), the output the network gives with those weights instead."""


@dataclass
class Batch:
    """One training step's samples: ``X``, ``y`` (the ``n_new`` new samples first, then those
    joined by ``extra_batch``), as the tensors ``inputs``, ``targets`` the network and loss
    take, and the network's ``output`` on them (with gradients)."""

    X: np.ndarray
    y: np.ndarray
    n_new: int
    inputs: Any
    targets: Any
    output: Any


class Plugin(Spec):
    """The hooks, all doing nothing. Parameters are declared in ``__init__`` and stored under
    the same names (a :class:`~adaptloop.learners.optim.specs.Spec`: checked, compared and
    printed from them), so ``clone()`` gives an unfitted plugin with the same parameters."""

    def check(self, task: str | None) -> None:
        """Refuse (``ValueError``) a learner of ``task`` this method cannot train."""

    def begin_task(self, host: Host, task: int) -> None:
        """Task ``task`` begins."""

    def end_task(self, host: Host, X: np.ndarray, y: np.ndarray) -> None:
        """The current task ended; ``X``, ``y``: its (checked) training data."""

    def extra_batch(self, host: Host, n: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Samples to train with the ``n`` new ones, in the same batch; ``None``: none."""
        return None

    def loss(self, host: Host, batch: Batch, loss: Any) -> Any:
        """The step's loss, given the loss so far."""
        return loss

    def adjust_gradient(self, host: Host, params: Sequence[Any]) -> None:
        """Change the gradients of ``params`` in place before the optimiser step."""

    def after_step(self, host: Host, X: np.ndarray, y: np.ndarray) -> None:
        """Called with the new samples of every mini-batch after its step."""

    def stored_samples(self) -> int:
        """How many past training samples the plugin keeps (rehearsal plugins: their
        buffer); 0 for the others."""
        return 0

    def state_dict(self) -> dict[str, Any]:
        """What the plugin learned, as plain Python, numpy and torch values."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def clone(self) -> Plugin:
        """A new plugin with the same parameters and nothing learned."""
        return type(self)(**copy.deepcopy(self._params()))


PluginSpec = Plugin | str | dict[str, Any]
"""A plugin, its registered name, or a ``{"kind": name, ...parameters}`` table."""


def make_plugin(spec: PluginSpec, where: str = "plugins") -> Plugin:
    """A fresh plugin from ``spec`` (a plugin is cloned: two learners never share state).

    >>> make_plugin("lwf")
    LwF(alpha=1.0, temperature=2.0)
    >>> make_plugin({"kind": "ewc", "gamma": 2.0}, "plugins[0]")
    Traceback (most recent call last):
    ...
    adaptloop.parameters.ParameterError: plugins[0].gamma: must be <= 1, got 2.0
    >>> make_plugin(3)
    Traceback (most recent call last):
    ...
    ValueError: plugins: expected a plugin, a plugin name or a {kind = name, ...} table, got 3
    """
    if isinstance(spec, Plugin):
        return spec.clone()
    if isinstance(spec, str):
        spec = {"kind": spec}
    if isinstance(spec, dict) and isinstance(spec.get("kind"), str):
        if spec["kind"] not in plugins:
            known = ", ".join(plugins.names())
            raise ValueError(f"{where}.kind: unknown plugin {spec['kind']!r}; known: {known}")
        factory = plugins.get(spec["kind"])
        params = {k: v for k, v in spec.items() if k != "kind"}
        return factory(**check_parameters(factory, params, where))
    raise ValueError(
        f"{where}: expected a plugin, a plugin name or a {{kind = name, ...}} table, got {spec!r}"
    )


def classification_only(plugin: Plugin, task: str | None) -> None:
    """Refuse a regression learner for ``plugin``, naming it."""
    if task == "regression":
        raise ValueError(
            f"plugin {type(plugin).__name__} needs a classifier (it uses class probabilities); "
            "the base is a regressor"
        )
