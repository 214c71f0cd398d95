"""Optimisers for the torch learners: ``adam``, ``sgd``, ``muon`` and ``drop_muon``.

An optimiser spec builds the torch optimiser(s) for a network given as *blocks*: the
parameters of its layers in forward order (an MLP's linear layers; a recurrent regressor's
recurrent layer, then its head). Adam and SGD are ``torch.optim.Adam`` / ``torch.optim.SGD``
over all parameters, as the learners always used. Muon is PyTorch's maintained
``torch.optim.Muon`` (Jordan et al. 2024; Newton-Schulz orthogonalised Nesterov momentum) for
the 2-d weight matrices, with momentum SGD for the other parameters (biases, vectors) and for
embedding tables -- the Euclidean norm of Drop-Muon's layer-wise view. ``drop_muon`` adds
Drop-Muon's random choice of the layers to update, made by the learner's training step (see
:class:`DropMuon` and :class:`~adaptloop.learners.optim.training.Trainer`).

The torch learners take one as ``optimizer=``: a name, a table
``{name = "drop_muon", probs = [0.2, 0.3, 0.5]}`` in an experiment file, or an object.

>>> make_optimizer("drop_muon")
DropMuon(probs=None, euclidean=False, momentum=0.95, nesterov=True, ns_steps=5, adjust_lr='match_rms_adamw', precision='float32')
"""  # noqa: E501

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from annotated_types import Ge, Lt

from adaptloop.learners.base import shares
from adaptloop.learners.optim.specs import Spec, make_spec
from adaptloop.validation import Count, NonNegativeReal

__all__ = [
    "OPTIMIZERS",
    "SGD",
    "Adam",
    "DropMuon",
    "Muon",
    "OptimizerLike",
    "OptimizerSpec",
    "make_optimizer",
    "muon_lr_ratio",
]

AdjustLR = Literal["original", "match_rms_adamw"]
Precision = Literal["float32", "bfloat16"]
_MUON: list[Any] = []  # the float32 Muon class, made on first use (torch is imported lazily)


def muon_lr_ratio(adjust_lr: str | None, shape: tuple[int, ...]) -> float:
    """The factor Muon scales ``lr`` by for a weight of ``shape`` ``(A, B, ...)``:
    ``sqrt(max(1, A / B))`` (``"original"``, Keller Jordan's), ``0.2 * sqrt(max(A, B))``
    (``"match_rms_adamw"``, Liu et al. 2025, matching AdamW's update RMS), else 1 -- the rule
    of ``torch.optim.Muon``, written here because torch keeps it private.

    >>> muon_lr_ratio("original", (4, 1)), muon_lr_ratio("match_rms_adamw", (4, 100))
    (2.0, 2.0)
    """
    a, b = shape[:2]
    if adjust_lr is None or adjust_lr == "original":
        return math.sqrt(max(1, a / b))
    if adjust_lr == "match_rms_adamw":
        return 0.2 * math.sqrt(max(a, b))
    return 1.0


def _float32_muon() -> Any:
    """``torch.optim.Muon`` whose Newton-Schulz iteration runs in float32, not bfloat16.

    PyTorch casts to bfloat16, fast on GPUs; on CPUs without bfloat16 matrix units it is ~25x
    slower than float32 (a 256x256 product: 44.7 vs 1.7 ms here). The step is PyTorch's
    (``torch.optim._muon._single_tensor_muon``, torch 2.13) through public API only: its
    momentum buffers (``state[p]["momentum_buffer"]``), its quintic iteration with its
    coefficients and its learning-rate ratio (:func:`muon_lr_ratio`); only the dtype differs."""
    if _MUON:
        return _MUON[0]
    import torch

    def newton_schulz(update: Any, coefficients: tuple, steps: int, eps: float) -> Any:
        a, b, c = coefficients
        tall = update.size(0) > update.size(1)
        x = update.T if tall else update
        x = x / x.norm().clamp(min=eps)
        for _ in range(steps):
            gram = x @ x.T
            x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
        return x.T if tall else x

    class Float32Muon(torch.optim.Muon):
        @torch.no_grad()
        def step(self, closure: Any = None) -> Any:
            loss = None
            if closure is not None:
                with torch.enable_grad():
                    loss = closure()
            for group in self.param_groups:
                lr, momentum = float(group["lr"]), group["momentum"]
                for param in group["params"]:
                    grad = param.grad
                    if grad is None:
                        continue
                    state = self.state[param]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = torch.zeros_like(grad)
                    buffer = state["momentum_buffer"]
                    buffer.lerp_(grad, 1 - momentum)
                    update = grad.lerp(buffer, momentum) if group["nesterov"] else buffer
                    update = newton_schulz(
                        update, group["ns_coefficients"], group["ns_steps"], group["eps"]
                    )
                    param.mul_(1 - lr * group["weight_decay"])
                    ratio = muon_lr_ratio(group["adjust_lr_fn"], tuple(param.shape))
                    param.add_(update, alpha=-lr * ratio)
            return loss

    _MUON.append(Float32Muon)
    return Float32Muon


Momentum = Annotated[float, Ge(0), Lt(1)]
"""A momentum coefficient, in [0, 1)."""


class OptimizerSpec(Spec, ABC):
    """How to build the torch optimiser(s) of a network given as blocks of parameters.

    ``start_block`` is where a step's updates start (0: every block, which every optimiser but
    ``DropMuon`` does).
    """

    name: ClassVar[str]

    @abstractmethod
    def build(self, blocks: Sequence[Any], lr: float, weight_decay: float) -> list:
        """The torch optimisers over every parameter of ``blocks`` (torch modules, in forward
        order), each parameter in exactly one."""

    def start_block(self, rng: np.random.Generator, n_blocks: int) -> int:
        """The first block a step updates (the blocks before it are frozen)."""
        return 0

    def check_blocks(self, n_blocks: int) -> None:
        """Refuse a network of ``n_blocks`` blocks this optimiser cannot train (any is fine
        unless an optimiser says otherwise)."""
        return None


def _all(blocks: Sequence[Any]) -> list[Any]:
    return [p for block in blocks for p in block.parameters()]


class Adam(OptimizerSpec):
    """``torch.optim.Adam`` over every parameter (``weight_decay``: L2, Adam's own).

    >>> import torch
    >>> [type(o).__name__ for o in Adam().build([torch.nn.Linear(2, 1)], 0.01, 0.0)]
    ['Adam']
    """

    name = "adam"

    def build(self, blocks: Sequence[Any], lr: float, weight_decay: float) -> list:
        import torch

        return [torch.optim.Adam(_all(blocks), lr=lr, weight_decay=weight_decay)]


class SGD(OptimizerSpec):
    """``torch.optim.SGD`` over every parameter, with heavy-ball ``momentum`` (0: plain SGD).

    >>> SGD(momentum=0.9)
    SGD(momentum=0.9)
    """

    name = "sgd"

    def __init__(self, momentum: Momentum = 0.0) -> None:
        self.momentum = momentum

    def build(self, blocks: Sequence[Any], lr: float, weight_decay: float) -> list:
        import torch

        return [
            torch.optim.SGD(_all(blocks), lr=lr, momentum=self.momentum, weight_decay=weight_decay)
        ]


class Muon(OptimizerSpec):
    """Muon: ``torch.optim.Muon`` (PyTorch's implementation of Jordan et al.'s MomentUm
    Orthogonalized by Newton-Schulz) for every 2-d weight matrix, except embedding tables;
    ``torch.optim.SGD`` with the same Nesterov ``momentum`` for every other parameter.

    ``adjust_lr``: PyTorch's ``adjust_lr_fn``; the default ``"match_rms_adamw"`` (Moonshot's
    ``0.2 sqrt(max(A, B))`` scaling) gives orthogonalised updates the RMS of an AdamW step, so
    Muon reuses a rate tuned for Adam; ``"original"`` is Keller Jordan's
    ``sqrt(max(1, A/B))``. ``weight_decay`` is Muon's decoupled decay (L2 for the SGD part).

    >>> import torch
    >>> [type(o).__name__ for o in Muon().build([torch.nn.Linear(2, 3)], 0.01, 0.0)]
    ['Float32Muon', 'SGD']
    """

    name = "muon"

    def __init__(
        self,
        momentum: Momentum = 0.95,
        nesterov: bool = True,
        ns_steps: Count = 5,
        adjust_lr: AdjustLR = "match_rms_adamw",
        precision: Precision = "float32",
    ) -> None:
        if nesterov and momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.momentum = momentum
        self.nesterov = nesterov
        self.ns_steps = ns_steps
        self.adjust_lr = adjust_lr
        self.precision = precision

    def _split(self, blocks: Sequence[Any]) -> tuple[list[Any], list[Any]]:
        """(weight matrices to orthogonalise, the other parameters), in block order."""
        import torch

        matrices, others = [], []
        for block in blocks:
            for module in block.modules():
                embedding = isinstance(module, torch.nn.Embedding)
                for p in module.parameters(recurse=False):
                    (others if embedding or p.ndim != 2 else matrices).append(p)
        return matrices, others

    def build(self, blocks: Sequence[Any], lr: float, weight_decay: float) -> list:
        import torch

        matrices, others = self._split(blocks)
        optimizers = []
        if matrices:
            muon = _float32_muon() if self.precision == "float32" else torch.optim.Muon
            optimizers.append(
                muon(
                    matrices,
                    lr=lr,
                    weight_decay=weight_decay,
                    momentum=self.momentum,
                    nesterov=self.nesterov,
                    ns_steps=self.ns_steps,
                    adjust_lr_fn=self.adjust_lr,
                )
            )
        if others:
            optimizers.append(
                torch.optim.SGD(
                    others,
                    lr=lr,
                    momentum=self.momentum,
                    nesterov=self.nesterov,
                    weight_decay=weight_decay,
                )
            )
        return optimizers


@shares(Muon.__init__)
class DropMuon(Muon):
    """Drop-Muon (Gruntkowska, Maziane, Qu & Richtárik 2025, "Drop-Muon: Update Less, Converge
    Faster", Algorithm 1 with randomized progressive training): each step draws a start block
    ``s`` and updates only blocks ``s .. last``; the blocks before ``s`` keep their weights and
    their momentum (their parameters get no gradient, so the optimisers skip them), and
    backpropagation stops at ``s`` (their parameters do not require gradients during the step,
    so autograd builds no graph through them). Updated blocks take Muon's step (orthogonalised
    momentum for matrices, momentum for vectors: :class:`Muon`), or plain Nesterov momentum
    for every parameter with ``euclidean=True`` (the paper's Euclidean-norm case).

    ``probs``: the probability of each start block (``None``: uniform, the paper's "uniform
    index sampling"); its length must be the network's number of blocks. Deviations: one step
    size for every layer (the paper allows per-layer ``gamma_i``); a block is a layer with
    its bias.

    >>> import numpy as np
    >>> spec = DropMuon(probs=[0.0, 1.0])
    >>> spec.start_block(np.random.default_rng(0), 2)
    1
    """

    name = "drop_muon"

    def __init__(
        self,
        probs: tuple[NonNegativeReal, ...] | None = None,
        euclidean: bool = False,
        **muon: Any,
    ) -> None:
        super().__init__(**muon)
        if probs is not None:
            values = np.asarray(probs, dtype=np.float64)
            if len(values) == 0:
                raise ValueError(f"probs must be a list of probabilities >= 0, got {probs!r}")
            if not np.isclose(values.sum(), 1.0):
                raise ValueError(f"probs must sum to 1, got {probs!r} (sum {values.sum():g})")
            probs = tuple(float(v) for v in values)
        self.probs = probs
        self.euclidean = euclidean

    def _split(self, blocks: Sequence[Any]) -> tuple[list[Any], list[Any]]:
        matrices, others = super()._split(blocks)
        return ([], matrices + others) if self.euclidean else (matrices, others)

    def start_block(self, rng: np.random.Generator, n_blocks: int) -> int:
        if self.probs is None:
            return int(rng.integers(n_blocks))
        self.check_blocks(n_blocks)
        return int(rng.choice(n_blocks, p=np.asarray(self.probs) / sum(self.probs)))

    def check_blocks(self, n_blocks: int) -> None:
        if self.probs is not None and len(self.probs) != n_blocks:
            raise ValueError(
                f"drop_muon probs has {len(self.probs)} entries but the network has "
                f"{n_blocks} blocks (layers)"
            )


OPTIMIZERS: dict[str, type[OptimizerSpec]] = {cls.name: cls for cls in (Adam, SGD, Muon, DropMuon)}
"""The optimisers by name (as an experiment file names them)."""

OptimizerLike = Literal["adam", "sgd", "muon", "drop_muon"] | dict[str, Any] | OptimizerSpec
"""What a torch learner's ``optimizer=`` takes: a name, a table with ``name``, or an object."""


def make_optimizer(spec: OptimizerLike) -> OptimizerSpec:
    """The optimiser spec ``spec`` names.

    >>> make_optimizer({"name": "sgd", "momentum": 0.5})
    SGD(momentum=0.5)
    >>> make_optimizer("lion")
    Traceback (most recent call last):
    ...
    ValueError: unknown optimizer 'lion'; known: adam, sgd, muon, drop_muon
    """
    return make_spec(spec, "optimizer", OPTIMIZERS, '{name = "drop_muon"}')
