"""CLASSP (``classp``): adjustment suppression and sparsity promotion, as a gradient plugin.

Ludwig, "CLASSP: a Biologically-Inspired Approach to Continual Learning through Adjustment
Suppression and Sparsity Promotion", arXiv 2405.09637 (2024), its update rule (checked against
the paper's abstract and a summary of its method; section and equation numbers not checked):
every weight ``w_i`` moves by

    w_i <- w_i - alpha * g_i / (eps + sum_{k < t} |g_{i,k}|^p)^(1/p)   only if g_i^2 > threshold

-- a learning rate that decays with the weight's past gradients (AdaGrad when ``p = 2`` and
``threshold = 0``: "adjustment suppression") and an update only where the current loss depends
on the weight enough ("sparsity promotion"), leaving other weights free for later tasks.

As a plugin, ``adjust_gradient`` adds ``|g|^p`` to the per-weight sum ``S`` of all gradients
so far and replaces each gradient by ``mask * g / (eps + S)^(1/p)``. Deviation: ``S`` includes
the current gradient, as AdaGrad's does (which CLASSP generalises); the printed sum over
``k < t`` is empty at the first step, which would divide it by ``eps^(1/p)``. The base
learner's optimiser then takes the step, so with ``optimizer = "sgd"`` (no momentum) and
``lr = alpha`` this is CLASSP exactly. Deviation: with another optimiser the adjusted
gradient is fed to it (a preconditioner), which the paper does not study. No task boundary
is needed: it also runs with ``boundaries = "none"``.

>>> import numpy as np
>>> from adaptloop.learners.continual import Continual
>>> from adaptloop.learners.models.mlp import MLPClassifier
>>> model = Continual(MLPClassifier(hidden=(4,), lr=0.01, optimizer="sgd"), ["classp"])
>>> model.learn(np.eye(2, dtype=np.float32), np.array([0, 1]))
>>> sorted(model.plugins_[0].state_dict()["sums"])
['0.bias', '0.weight', '2.bias', '2.weight']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adaptloop.learners.continual.plugin import Host, Plugin, plugins
from adaptloop.validation import NonNegativeReal, PositiveReal

__all__ = ["CLASSP"]


@plugins.register("classp")
class CLASSP(Plugin):
    """CLASSP's per-weight decay and gradient threshold (see the module doc): ``power`` is
    ``p``, ``threshold`` the bound on the squared gradient, ``eps`` the constant ``epsilon``."""

    def __init__(
        self, power: PositiveReal = 2.0, threshold: NonNegativeReal = 1e-6, eps: PositiveReal = 1e-8
    ) -> None:
        self.power = power
        self.threshold = threshold
        self.eps = eps
        self.sums_: dict[str, Any] = {}

    def adjust_gradient(self, host: Host, params: Sequence[Any]) -> None:
        import torch

        names = {id(p): n for n, p in host.trainable.network.named_parameters()}
        with torch.no_grad():
            for param in params:
                if param.grad is None:
                    continue
                name = names[id(param)]
                g = param.grad
                total = self.sums_.get(name)
                if total is None:
                    total = self.sums_[name] = torch.zeros_like(g)
                total += g.abs() ** self.power
                g.mul_((self.eps + total) ** (-1.0 / self.power) * (g * g > self.threshold))

    def state_dict(self) -> dict[str, Any]:
        return {"sums": {k: v.numpy().copy() for k, v in self.sums_.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        import torch

        self.sums_ = {k: torch.tensor(v) for k, v in state["sums"].items()}
