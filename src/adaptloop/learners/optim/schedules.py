"""Learning-rate schedules for the torch learners: ``constant``, ``cosine``, ``linear``,
``refined`` and ``uba``, as PyTorch ``LRScheduler`` objects usable with any torch optimizer.

A schedule gives the factor by which the tuned peak rate ``lr`` is multiplied at each of the
``T`` steps ``t = 0 .. T-1`` of a *fit* (a run of optimiser steps whose number is known when it
starts): :meth:`Schedule.factors` returns them all, :meth:`Schedule.scheduler` wraps them in a
``torch.optim.lr_scheduler.LambdaLR`` (closed form, so the rate at step ``t`` is exactly
``lr * factors[t]``). The torch learners take one as ``schedule=`` -- a name, a table
``{name = "uba", phi = 1.0}`` in an experiment file, or an object of this module.

What ``T`` is (see :class:`~adaptloop.learners.optim.training.Trainer`):

- a budgeted re-fit -- ``WindowRetrain`` (or ``Static``, ``DriftReset``) re-fitting a fresh
  clone on its window -- announces its learn calls, so ``T`` is their total number of steps
  (epochs x mini-batches) and the schedule spans the whole re-fit;
- on an open-ended stream (``learn`` batch after batch) each ``learn`` call is a fit of its own
  ``epochs`` x mini-batches steps: the schedule *restarts at every call*, a warm restart
  (Loshchilov & Hutter's SGDR) that keeps the learner as plastic at the thousandth batch as at
  the first, which a drifting stream needs; with one step per call every schedule is constant;
- with ``horizon=H`` the schedule runs over cycles of ``H`` steps counted across calls,
  restarting after each (SGDR with a fixed period), for streams of many small calls.

A schedule that decayed once to zero and stayed there would stop an online learner from
adapting after the first ``T`` steps; that is why no mode holds the final rate forever.

>>> import numpy as np
>>> np.round(make_schedule("linear").factors(4), 3)
array([1.  , 0.75, 0.5 , 0.25])
>>> np.round(make_schedule({"name": "cosine", "min_ratio": 0.1}).factors(2), 3)
array([1.  , 0.55])
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from annotated_types import Ge, Le

from adaptloop.learners.optim.specs import Spec, make_spec
from adaptloop.validation import Count, Fraction, check_number

__all__ = [
    "SCHEDULES",
    "Constant",
    "Cosine",
    "Linear",
    "Refined",
    "Schedule",
    "ScheduleLike",
    "UBA",
    "make_schedule",
    "median_smooth",
    "refined_factors",
]


def _steps(total_steps: object) -> np.ndarray:
    if isinstance(total_steps, bool) or not isinstance(total_steps, (int, np.integer)):
        raise ValueError(f"total_steps must be an integer >= 1, got {total_steps!r}")
    if total_steps < 1:
        raise ValueError(f"total_steps must be an integer >= 1, got {total_steps!r}")
    return np.arange(int(total_steps), dtype=np.float64)


class _Table:
    """``LambdaLR``'s ``lr_lambda``: the precomputed factor of step ``t`` (the last one after)."""

    def __init__(self, factors: np.ndarray) -> None:
        self.factors = np.asarray(factors, dtype=np.float64)

    def __call__(self, t: int) -> float:
        return float(self.factors[min(t, len(self.factors) - 1)])


class Schedule(Spec, ABC):
    """A learning-rate schedule: the factor of the peak rate at each step of a ``T``-step fit.

    ``horizon`` (``None``: one fit per re-fit or per ``learn`` call, see the module doc) makes
    the schedule cycle over ``horizon`` steps counted across ``learn`` calls instead.

    >>> Linear(horizon=100)
    Linear(min_ratio=0.0, horizon=100)
    """

    name: ClassVar[str]
    uses_trace: ClassVar[bool] = False  # built from a recorded gradient-norm trace

    def __init__(self, horizon: Count | None = None) -> None:
        self.horizon = horizon

    @abstractmethod
    def factors(self, total_steps: int, trace: np.ndarray | None = None) -> np.ndarray:
        """The factor of the peak rate at steps ``0 .. total_steps - 1``, float64.

        ``trace`` (gradient norms of a previous fit) is read by ``Refined`` only."""

    @property
    def trace_ord(self) -> int:
        """The order of the gradient norm a fit records for this schedule (2: Euclidean)."""
        return 2

    def for_optimizer(self, optimizer: object) -> Schedule:
        """This schedule as it runs with ``optimizer`` (``Refined`` resolves ``norm="auto"``).

        >>> Linear().for_optimizer(None)
        Linear(min_ratio=0.0, horizon=None)
        """
        return self

    def scheduler(
        self, optimizer: Any, total_steps: int, trace: np.ndarray | None = None, step: int = 0
    ) -> Any:
        """A ``torch.optim.lr_scheduler.LambdaLR`` over ``total_steps`` steps of ``optimizer``,
        at ``step`` (``> 0`` resumes a fit: the groups must hold ``initial_lr`` then).

        >>> import torch
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        >>> sched = UBA(phi=2.0).scheduler(opt, total_steps=4)
        >>> lrs = []
        >>> for _ in range(4):
        ...     lrs.append(round(opt.param_groups[0]["lr"], 4)); opt.step(); sched.step()
        >>> lrs  # phi = 2 is cosine annealing
        [0.1, 0.0854, 0.05, 0.0146]
        """
        from torch.optim.lr_scheduler import LambdaLR

        table = _Table(self.factors(total_steps, trace))
        return LambdaLR(optimizer, table, last_epoch=step - 1)


class Constant(Schedule):
    """The tuned rate at every step (the same as no schedule, but recorded as one).

    >>> Constant().factors(3)
    array([1., 1., 1.])
    """

    name = "constant"

    def factors(self, total_steps: int, trace: np.ndarray | None = None) -> np.ndarray:
        return np.ones_like(_steps(total_steps))


class _Decay(Schedule):
    """A schedule that decays from the peak to ``min_ratio`` x the peak over a fit."""

    def __init__(self, min_ratio: Fraction = 0.0, horizon: Count | None = None) -> None:
        super().__init__(horizon)
        self.min_ratio = min_ratio

    def factors(self, total_steps: int, trace: np.ndarray | None = None) -> np.ndarray:
        shape = self._shape(_steps(total_steps) / total_steps)
        return self.min_ratio + (1.0 - self.min_ratio) * shape

    @abstractmethod
    def _shape(self, x: np.ndarray) -> np.ndarray:
        """The decay from 1 at ``x = t / T = 0`` towards 0 at ``x = 1``."""


class Cosine(_Decay):
    """Cosine annealing (Loshchilov & Hutter 2017, SGDR, eq. 5, one period without restart):
    ``eta_t = eta_min + (eta - eta_min) (1 + cos(pi t / T)) / 2`` with
    ``eta_min = min_ratio * eta``; the same rates as ``torch.optim.lr_scheduler.CosineAnnealingLR``
    with ``T_max = T`` (checked in the tests).

    >>> np.round(Cosine().factors(4), 4)
    array([1.    , 0.8536, 0.5   , 0.1464])
    """

    name = "cosine"

    def _shape(self, x: np.ndarray) -> np.ndarray:
        return 0.5 * (1.0 + np.cos(np.pi * x))


class Linear(_Decay):
    """Linear decay, ``eta_t = eta (1 - t / T)`` (Defazio, Cutkosky, Mehta & Mishchenko,
    "When, Why and How Much? Adaptive Learning Rate Scheduling by Refinement", section 2-3: the
    worst-case optimal schedule for the last iterate), here with an optional floor
    ``min_ratio * eta``. Steps are 0-based, so the last of ``T`` steps has ``eta / T`` (the
    paper's 1-based ``t = T`` step, at rate 0, is left out: it would not move the weights);
    the same rates as ``torch.optim.lr_scheduler.LinearLR(start_factor=1, end_factor=0,
    total_iters=T)``.

    >>> Linear().factors(4)
    array([1.  , 0.75, 0.5 , 0.25])
    """

    name = "linear"

    def _shape(self, x: np.ndarray) -> np.ndarray:
        return 1.0 - x


class UBA(_Decay):
    """The Unified Budget-Aware schedule (Tang, Dong, Zeng, Zhou & Lin, "Stepsize anything: a
    unified learning rate schedule for budgeted-iteration training", NeurIPS 2025), one phase:

    ``eta_t = eta_min + (eta - eta_min) 2 (1 + cos(pi t/T)) / (2 phi + (2 - phi)(1 + cos(pi t/T)))``

    with ``eta_min = min_ratio * eta`` and ``phi`` in ``[0, 2]``.

    What was checked: the paper's text beyond its abstract (arXiv 2505.24452: one
    hyper-parameter ``phi`` tied to the condition number) could not be read here. The form above
    is the one our issue states, and a public implementation (a ``UBAScheduler`` written for a
    galaxy-classification training script) computes the same expression,
    ``(eta_max - eta_min) * 2(1 + cos) / (2 phi + (2 - phi)(1 + cos)) + eta_min``. It has the
    properties the paper states: ``eta_0 = eta``, ``eta_T = eta_min``, monotone decay for every
    ``phi`` in ``[0, 2]``, exactly cosine annealing at ``phi = 2`` and a constant rate until the
    end as ``phi -> 0`` (with ``x = (1 + cos(pi t/T)) / 2`` the shape is
    ``2x / (phi + (2 - phi) x)``). Not implemented: the paper's multi-phase form, whose
    equation we could not find in the paper's reachable text nor in any public code (the
    implementations found are single-phase); ``horizon`` gives restarts with equal budgets.

    >>> np.round(UBA(phi=1.0).factors(4), 4)
    array([1.    , 0.921 , 0.6667, 0.2555])
    """

    name = "uba"

    def __init__(
        self,
        phi: Annotated[float, Ge(0), Le(2)] = 1.0,
        min_ratio: Fraction = 0.0,
        horizon: Count | None = None,
    ) -> None:
        super().__init__(min_ratio, horizon)
        self.phi = phi

    def _shape(self, x: np.ndarray) -> np.ndarray:
        c = 1.0 + np.cos(np.pi * x)  # in (0, 2] for the steps t < T
        return 2.0 * c / (2.0 * self.phi + (2.0 - self.phi) * c)


Norm = Literal["auto", "l2", "l1"]
"""Which gradient norm a refined schedule reads: ``"l2"`` (the paper's SGD weights
``||g_t||_2^-2``), ``"l1"`` (its Adam weights ``||g_t||_1^-1``) or ``"auto"`` (L1 with Adam, L2
with every other optimiser)."""


def median_smooth(trace: Sequence[float], width: float = 0.1) -> np.ndarray:
    """The authors' median filter of a gradient-norm trace
    (``facebookresearch/adaptive_scheduling``, README "Refinement method" and ``visual.py``):
    an odd window of ``2 * (int(width * n) // 2) + 1`` of the ``n`` norms, the end of the
    trace padded with ``2 * window`` reflected values (so the last norms are not all pulled
    towards the final one), ``scipy.ndimage.median_filter`` with
    ``mode="nearest"``, the padding cut off again.

    >>> median_smooth([1.0, 1.0, 9.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], width=0.3).tolist()
    [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    """
    from scipy.ndimage import median_filter

    G = np.asarray(trace, dtype=np.float64)
    size = 2 * (int(width * len(G)) // 2) + 1
    if size == 1:
        return G.copy()
    pad = 2 * size
    padded = np.pad(G, (0, pad), mode="reflect") if len(G) > pad else np.pad(G, (0, pad), "edge")
    return median_filter(padded, size=size, mode="nearest")[:-pad]


def refined_factors(
    trace: Sequence[float], total_steps: int, width: float = 0.1, power: float = 2.0
) -> np.ndarray:
    """Refinement of a schedule from the gradient norms of a previous run (Defazio, Cutkosky,
    Mehta & Mishchenko, "When, Why and How Much? Adaptive Learning Rate Scheduling by
    Refinement", 2023, Sec. 3, Algorithm 1; the authors' ``find_closed_form_schedule`` in
    ``find_schedule.py`` of ``facebookresearch/adaptive_scheduling``):

    1. median-filter the norms ``G`` (:func:`median_smooth`, window ``width`` x their number);
    2. resample them to ``total_steps`` points (linear interpolation; the paper refines a run
       of the same length, a re-fit of a window may differ);
    3. ``w_t = G_t^-power`` (``power`` 2: SGD, ``||g_t||_2^-2``; 1: Adam on L1 norms,
       ``||g_t||_1^-1``) and ``eta_t = w_t * sum_{p=t+1}^{T} w_p``, so the last step has
       ``eta_T = 0``; rescaled so that the largest is 1 (the tuned peak rate).

    A constant trace gives linear decay to zero at the last step, ``eta_t = (T-1-t) / (T-1)``
    for the 0-based steps (the paper's linear schedule, rescaled to start at the peak: our
    :class:`Linear` stops one step earlier, at ``1/T``). Deviation: a fit of a single step,
    where the formula is ``0/0``, takes the peak rate.

    >>> refined_factors([1.0, 1.0, 1.0, 1.0, 1.0], 5)  # constant norms: linear decay to 0
    array([1.  , 0.75, 0.5 , 0.25, 0.  ])
    >>> np.round(refined_factors([4.0, 2.0, 1.0, 1.0], 4, width=0.0), 3)  # falling: a warm-up
    array([0.141, 0.5  , 1.   , 0.   ])
    """
    steps = _steps(total_steps)
    width = check_number(width, "width", 0.0, 1.0)
    G = np.asarray(trace, dtype=np.float64)
    if G.ndim != 1 or len(G) == 0 or not np.isfinite(G).all() or (G < 0).any():
        raise ValueError("trace must be a non-empty 1-d sequence of finite gradient norms >= 0")
    if len(steps) == 1:
        return np.ones(1)
    G = median_smooth(G, width)
    G = np.interp((steps + 0.5) / len(steps), (np.arange(len(G)) + 0.5) / len(G), G)
    w = 1.0 / np.maximum(G, 1e-12) ** power
    after = np.append(np.cumsum(w[::-1])[::-1][1:], 0.0)  # sum_{p > t} w_p
    eta = w * after
    return eta / eta.max()


class Refined(Schedule):
    """A schedule refined from a recorded gradient-norm trace (:func:`refined_factors`).

    ``trace``: the gradient norms of a previous run (every torch learner records its own:
    ``model.trainer_.grad_norms_``). ``None``: the learner's own trace of its previous fit is
    used (a ``WindowRetrain`` re-fit reads the one of the model it replaces); the first fit,
    with no trace yet, runs linear decay, the paper's starting point. ``width``: the median
    filter's window as a fraction of the trace (the paper's 0.1). ``norm``: the weights,
    ``||g_t||_2^-2`` (``"l2"``, the paper's SGD rule) or ``||g_t||_1^-1`` (``"l1"``, its Adam
    rule); ``"auto"`` picks L1 when the learner's optimiser is Adam, so that the trace a learner
    records is the one its refined schedule reads.

    >>> Refined(trace=[1.0, 1.0, 1.0]).factors(3)
    array([1. , 0.5, 0. ])
    >>> Refined().factors(2)  # no trace: linear decay
    array([1. , 0.5])
    """

    name = "refined"
    uses_trace = True

    def __init__(
        self,
        trace: Sequence[float] | None = None,
        width: Fraction = 0.1,
        norm: Norm = "auto",
        horizon: Count | None = None,
    ) -> None:
        super().__init__(horizon)
        self.width = width
        self.norm = norm
        if trace is not None:
            refined_factors(trace, 1, self.width)  # checks the trace
            trace = tuple(float(g) for g in trace)
        self.trace = trace

    @property
    def trace_ord(self) -> int:
        return 1 if self.norm == "l1" else 2

    def for_optimizer(self, optimizer: object) -> Schedule:
        if self.norm != "auto":
            return self
        from adaptloop.learners.optim.optimizers import Adam

        norm = "l1" if isinstance(optimizer, Adam) else "l2"
        return Refined(self.trace, self.width, norm, self.horizon)

    def factors(self, total_steps: int, trace: np.ndarray | None = None) -> np.ndarray:
        source = self.trace if self.trace is not None else trace
        if source is None or len(source) == 0:
            return Linear().factors(total_steps)
        return refined_factors(source, total_steps, self.width, power=float(self.trace_ord))


SCHEDULES: dict[str, type[Schedule]] = {
    cls.name: cls for cls in (Constant, Cosine, Linear, Refined, UBA)
}
"""The schedules by name (as an experiment file names them)."""

ScheduleLike = Schedule | str | dict[str, Any] | None
"""What a torch learner's ``schedule=`` takes: an object, a name, or a table with ``name``."""


def make_schedule(spec: ScheduleLike) -> Schedule | None:
    """The schedule ``spec`` names (``None``: none, the rate stays ``lr``).

    >>> make_schedule({"name": "uba", "phi": 0.5})
    UBA(phi=0.5, min_ratio=0.0, horizon=None)
    >>> make_schedule("step")
    Traceback (most recent call last):
    ...
    ValueError: unknown schedule 'step'; known: constant, cosine, linear, refined, uba
    >>> make_schedule({"name": "cosine", "phi": 1.0})
    Traceback (most recent call last):
    ...
    ValueError: schedule 'cosine' takes no parameter 'phi'; it takes: min_ratio, horizon
    """
    if spec is None:
        return None
    return make_spec(spec, "schedule", SCHEDULES, '{name = "uba", phi = 1.0}')
