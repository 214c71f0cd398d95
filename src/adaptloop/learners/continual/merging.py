"""Post-training edits of weights: LiNeS layer scaling, task arithmetic and Model Breadcrumbs.

All functions take and return parameter dicts (``{name: tensor or array}`` in the network's
layer order, e.g. ``dict(network.named_parameters())`` or a ``state_dict``) and never change
their inputs. A *task vector* is ``finetuned - pretrained`` (Ilharco et al. 2023).

- :func:`lines`: LiNeS (Wang, Dimitriadis, Favero, Ortiz-Jimenez, Fleuret and Frossard,
  "LiNeS: Post-training Layer Scaling Prevents Forgetting and Enhances Model Merging", ICLR
  2025): the update of layer ``l`` of ``L`` is scaled by
  ``lambda_l = alpha + beta * (l - 1) / (L - 1)`` (formula checked against a summary of the
  paper), so shallow layers stay near the pre-trained weights. The paper edits one
  fine-tuned model (single task) and applies the same scaling to a merged multi-task vector
  (``layer_scaling = (alpha, beta)`` in the mergers).
- :func:`task_arithmetic`: ``theta_0 + scale * sum_t tau_t`` (Ilharco et al., "Editing
  Models with Task Arithmetic", ICLR 2023).
- :func:`breadcrumbs`: Model Breadcrumbs (Davari and Belilovsky, "Model Breadcrumbs: Scaling
  Multi-Task Model Merging with Sparse Masks", ECCV 2024): each task vector is masked per
  layer, dropping the ``drop_top`` fraction of largest magnitudes (outliers) and the
  ``drop_bottom`` fraction of smallest (negligible updates), then summed as in task
  arithmetic.

Section and equation numbers were not checked against the PDFs (the search tool reached
abstracts and summaries only), so none are given; Breadcrumbs' default percentages are the
ones recalled from the paper, also unchecked.

A "layer" is a parameter's module: names ``"0.weight"`` and ``"0.bias"`` share layer ``"0"``
(the name without its last dotted part); layers are numbered in the dict's order. Deviation:
only parameters are edited (buffers such as batch-norm statistics are not in the dicts).

:class:`LiNeS` (plugin ``lines``) applies LiNeS in a continual sequence: at each task's end
the weights become ``theta_begin + LiNeS(theta - theta_begin)``, the task's start acting as
the pre-trained model (the first task, trained from random initialisation, is not edited).

>>> import numpy as np
>>> pre = {"0.weight": np.zeros(2), "1.weight": np.zeros(2), "2.weight": np.zeros(2)}
>>> ft = {k: np.ones(2) for k in pre}
>>> {k: v.tolist() for k, v in lines(pre, ft, alpha=0.0, beta=1.0).items()}
{'0.weight': [0.0, 0.0], '1.weight': [0.5, 0.5], '2.weight': [1.0, 1.0]}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from adaptloop.learners.continual.plugin import Host, Plugin, plugins
from adaptloop.registry import Registry
from adaptloop.validation import NonNegativeReal

__all__ = [
    "LiNeS",
    "breadcrumbs",
    "breadcrumbs_mask",
    "layer_scales",
    "lines",
    "mergers",
    "task_arithmetic",
]

Params = Mapping[str, Any]

mergers = Registry("merger")
"""Multi-task merging methods by name: ``task_arithmetic``, ``breadcrumbs``."""


def layer_scales(names: Sequence[str], alpha: float, beta: float) -> dict[str, float]:
    """LiNeS' ``lambda_l = alpha + beta * (l - 1) / (L - 1)`` for every parameter name.

    >>> layer_scales(["0.weight", "0.bias", "2.weight"], 0.2, 0.8)
    {'0.weight': 0.2, '0.bias': 0.2, '2.weight': 1.0}
    """
    layers = list(dict.fromkeys(name.rsplit(".", 1)[0] for name in names))
    depth = {layer: i for i, layer in enumerate(layers)}
    last = max(len(layers) - 1, 1)
    return {n: alpha + beta * depth[n.rsplit(".", 1)[0]] / last for n in names}


def _check_same(pretrained: Params, other: Params, what: str) -> None:
    if list(pretrained) != list(other):
        raise ValueError(f"{what} must hold the pretrained parameters' names in the same order")


def lines(pretrained: Params, finetuned: Params, alpha: float, beta: float) -> dict[str, Any]:
    """LiNeS: ``pretrained + lambda_l * (finetuned - pretrained)`` per layer (module doc)."""
    _check_same(pretrained, finetuned, "finetuned")
    scale = layer_scales(list(pretrained), alpha, beta)
    return {k: pretrained[k] + scale[k] * (finetuned[k] - pretrained[k]) for k in pretrained}


def _merged(
    pretrained: Params,
    vectors: list[dict[str, Any]],
    scale: float,
    lines_ab: tuple[float, float] | None,
) -> dict[str, Any]:
    total = {k: sum(v[k] for v in vectors) for k in pretrained}
    factor = (
        dict.fromkeys(pretrained, scale)
        if lines_ab is None
        else layer_scales(list(pretrained), *lines_ab)
    )
    return {k: pretrained[k] + factor[k] * total[k] for k in pretrained}


def _vectors(pretrained: Params, finetuned: Sequence[Params]) -> list[dict[str, Any]]:
    if not finetuned:
        raise ValueError("finetuned must list at least one model")
    for i, model in enumerate(finetuned):
        _check_same(pretrained, model, f"finetuned[{i}]")
    return [{k: m[k] - pretrained[k] for k in pretrained} for m in finetuned]


@mergers.register("task_arithmetic")
def task_arithmetic(
    pretrained: Params,
    finetuned: Sequence[Params],
    scale: float = 0.3,
    layer_scaling: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Task arithmetic: ``pretrained + scale * sum_t (finetuned_t - pretrained)``; with
    ``layer_scaling = (alpha, beta)`` the sum is scaled per layer by LiNeS instead of ``scale``.

    >>> import numpy as np
    >>> pre = {"w": np.zeros(2)}
    >>> task_arithmetic(pre, [{"w": np.array([1.0, 0.0])}, {"w": np.array([0.0, 2.0])}], 0.5)
    {'w': array([0.5, 1. ])}
    """
    return _merged(pretrained, _vectors(pretrained, finetuned), scale, layer_scaling)


def breadcrumbs_mask(vector: Any, drop_top: float, drop_bottom: float) -> Any:
    """Breadcrumbs' mask of one layer's task vector: ``True`` for the magnitudes kept, those
    above the ``drop_bottom`` quantile and not above the ``1 - drop_top`` one (ties kept).

    >>> breadcrumbs_mask(np.array([0.0, 1.0, 2.0, 3.0, 100.0]), 0.2, 0.2).tolist()
    [False, True, True, True, False]
    """
    if drop_top + drop_bottom >= 1:
        raise ValueError(f"drop_top + drop_bottom must be < 1, got {drop_top} + {drop_bottom}")
    magnitude = abs(vector)
    flat = np.asarray(magnitude, dtype=np.float64).ravel()
    order = np.sort(flat)
    n = len(order)
    n_low, n_high = int(np.floor(drop_bottom * n)), int(np.floor(drop_top * n))
    low = order[n_low - 1] if n_low > 0 else -np.inf
    high = order[n - n_high - 1] if n_high > 0 else np.inf
    return (magnitude > low) & (magnitude <= high)


@mergers.register("breadcrumbs")
def breadcrumbs(
    pretrained: Params,
    finetuned: Sequence[Params],
    scale: float = 0.3,
    drop_top: float = 0.01,
    drop_bottom: float = 0.85,
    layer_scaling: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Model Breadcrumbs: task arithmetic over the masked task vectors (module doc);
    ``drop_top`` and ``drop_bottom`` default to 1 % outliers and 85 % smallest (the paper's
    choice as recalled, unchecked).

    >>> import numpy as np
    >>> pre = {"w": np.zeros(5)}
    >>> ft = [{"w": np.array([0.0, 1.0, 2.0, 3.0, 100.0])}]
    >>> breadcrumbs(pre, ft, scale=1.0, drop_top=0.2, drop_bottom=0.2)["w"].tolist()
    [0.0, 1.0, 2.0, 3.0, 0.0]
    """
    vectors = _vectors(pretrained, finetuned)
    masked = [{k: v[k] * breadcrumbs_mask(v[k], drop_top, drop_bottom) for k in v} for v in vectors]
    return _merged(pretrained, masked, scale, layer_scaling)


@plugins.register("lines")
class LiNeS(Plugin):
    """LiNeS after every task (module doc): at ``end_task`` the update since the task began is
    scaled by ``alpha + beta * (l - 1) / (L - 1)`` in layer ``l`` of ``L``.

    >>> import numpy as np
    >>> from adaptloop.learners.continual import Continual
    >>> from adaptloop.learners.models.mlp import MLPClassifier
    >>> model = Continual(MLPClassifier(hidden=(4,), lr=0.5), plugins=[LiNeS(alpha=0.0)])
    >>> X, y = np.eye(2, dtype=np.float32), np.array([0, 1])
    >>> model.learn(X, y); model.end_task(X, y); model.begin_task(1)
    >>> before = [p.detach().clone() for p in model.trainable.network.parameters()]
    >>> model.learn(X, 1 - y); model.end_task(X, 1 - y)
    >>> after = list(model.trainable.network.parameters())
    >>> bool((after[0] == before[0]).all()), bool((after[2] == before[2]).all())
    (True, False)
    """

    def __init__(self, alpha: NonNegativeReal = 0.0, beta: NonNegativeReal = 1.0) -> None:
        self.alpha = alpha
        self.beta = beta
        self.anchor_: dict[str, Any] | None = None

    def begin_task(self, host: Host, task: int) -> None:
        net = host.trainable.network
        self.anchor_ = (
            None if net is None else {k: v.detach().clone() for k, v in net.named_parameters()}
        )

    def end_task(self, host: Host, X: np.ndarray, y: np.ndarray) -> None:
        net = host.trainable.network
        if net is None or self.anchor_ is None:
            return
        import torch

        current = {k: v.detach() for k, v in net.named_parameters()}
        edited = lines(self.anchor_, current, self.alpha, self.beta)
        with torch.no_grad():
            for name, param in net.named_parameters():
                param.copy_(edited[name])
        self.anchor_ = None

    def state_dict(self) -> dict[str, Any]:
        if self.anchor_ is None:
            return {"anchor": None}
        return {"anchor": {k: v.numpy().copy() for k, v in self.anchor_.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        import torch

        anchor = state["anchor"]
        self.anchor_ = None if anchor is None else {k: torch.tensor(v) for k, v in anchor.items()}
