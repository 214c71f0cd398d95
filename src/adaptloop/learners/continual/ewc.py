"""Online elastic weight consolidation (``ewc``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from adaptloop.learners.continual.plugin import Batch, Host, Plugin, plugins
from adaptloop.validation import Count, Fraction, NonNegativeReal

__all__ = ["EWC"]


@plugins.register("ewc")
class EWC(Plugin):
    """Online EWC (Schwarz et al. 2018, "Progress & Compress", section 2.3; Kirkpatrick et al.
    2017, eq. 3): the loss is ``L + strength / 2 * sum_i F_i (theta_i - theta*_i)^2``.

    At the end of each task, ``theta*`` becomes the current parameters and the diagonal Fisher
    is updated as ``F <- gamma * F + F_task``, where ``F_task`` is the mean over up to
    ``fisher_samples`` of the task's training samples of the squared per-sample gradients of
    ``log p(y | x)`` (the empirical Fisher, with the true labels; computed exactly per sample
    with ``torch.func``). ``gamma = 1`` sums the tasks' Fishers. For a regressor, ``log p`` is
    the learner's own loss per sample (squared error: the Gaussian log-likelihood up to scale).

    The Fisher is per sample on purpose: the diagonal Fisher is the expectation of the squared
    gradient of one sample's log-likelihood (Kirkpatrick et al. 2017; Schwarz et al. 2018).
    Avalanche's ``EWCPlugin`` squares the gradient of each mini-batch's *mean* loss instead,
    which shrinks the estimate by about the batch size and lets a strength tuned for it
    regularise less: on Rotated- and Permuted-Digits (SGD with momentum, replay 500) ours ended
    at 69.3 and 65.6 % against Avalanche's 56.0 and 44.0 %.

    >>> import numpy as np
    >>> from adaptloop.learners.continual import Continual
    >>> from adaptloop.learners.models.mlp import MLPClassifier
    >>> model = Continual(MLPClassifier(hidden=(4,)), plugins=[EWC(strength=10.0)])
    >>> X, y = np.eye(2, dtype=np.float32), np.array([0, 1])
    >>> model.learn(X, y)
    >>> model.end_task(X, y)
    >>> [f.shape for f in model.plugins_[0].fisher_]
    [(4, 2), (4,), (2, 4), (2,)]
    """

    def __init__(
        self, strength: NonNegativeReal = 10.0, gamma: Fraction = 1.0, fisher_samples: Count = 500
    ) -> None:
        self.strength = strength
        self.gamma = gamma
        self.fisher_samples = fisher_samples
        self.fisher_: list[np.ndarray] | None = None
        self.anchor_: list[np.ndarray] | None = None
        self._penalty: list[tuple[Any, Any]] | None = None  # torch views of fisher_, anchor_

    def end_task(self, host: Host, X: np.ndarray, y: np.ndarray) -> None:
        model = host.trainable
        net = model.network
        if net is None:
            return
        from torch.func import grad, vmap

        if len(y) > self.fisher_samples:
            idx = host.rng.choice(len(y), size=self.fisher_samples, replace=False)
            X, y = X[idx], y[idx]
        params = {k: v.detach() for k, v in net.named_parameters()}

        def nll(p: dict[str, Any], x: Any, target: Any) -> Any:
            one = tuple(part[None] for part in x) if isinstance(x, tuple) else x[None]
            return host.loss(host.forward(one, p), target[None])

        grads = vmap(grad(nll), in_dims=(None, 0, 0))(params, model.inputs(X), model.targets(y))
        task_fisher = [(grads[k] ** 2).mean(0).numpy() for k in params]
        if self.fisher_ is None:
            self.fisher_ = task_fisher
        else:
            self.fisher_ = [
                self.gamma * f + g for f, g in zip(self.fisher_, task_fisher, strict=True)
            ]
        self.anchor_ = [v.numpy().copy() for v in params.values()]
        self._penalty = None

    def loss(self, host: Host, batch: Batch, loss: Any) -> Any:
        if self.fisher_ is None or self.anchor_ is None:
            return loss
        import torch

        if self._penalty is None:
            self._penalty = [
                (torch.from_numpy(f), torch.from_numpy(a))
                for f, a in zip(self.fisher_, self.anchor_, strict=True)
            ]
        penalty = sum(
            (f * (p - a) ** 2).sum()
            for p, (f, a) in zip(host.trainable.network.parameters(), self._penalty, strict=True)
        )
        return loss + 0.5 * self.strength * penalty

    def state_dict(self) -> dict[str, Any]:
        if self.fisher_ is None or self.anchor_ is None:
            return {"fisher": None, "anchor": None}
        return {
            "fisher": [f.copy() for f in self.fisher_],
            "anchor": [a.copy() for a in self.anchor_],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.fisher_, self.anchor_ = state["fisher"], state["anchor"]
        self._penalty = None
