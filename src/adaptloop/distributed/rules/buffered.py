"""Asynchronous, buffered aggregation: FedBuff (a fixed number of arrivals) and FedFix (a fixed
time window), with staleness-aware weights.

Both keep every alive client busy: a client whose update arrives is sent the current global
model at once (after the server step, if its arrival triggered one), so no one waits for the
slowest. Both are special cases of the general asynchronous scheme of Fraboni, Vidal, Kameni &
Lorenzi ("A General Theory for Federated Optimization with Asynchronous and Heterogeneous
Clients Updates", JMLR 2023, Sec. 3 and 5, and the authors' code), whose server step is

    theta <- theta + eta_g * sum_i d_i (theta_i - theta_sent_i)

with ``theta_i - theta_sent_i = Delta_i`` client ``i``'s delta from the (possibly older) model
it was sent and ``d_i`` its aggregation weight, zero for clients that did not deliver:

- :class:`FedFix` (Fraboni et al., Sec. 5): the server steps every ``window`` (``Delta t``) time
  units with the deltas that arrived in it, ``d_i = ceil(tau_i / Delta t) * p_i``, ``p_i``
  client ``i``'s data share and ``tau_i`` the time its update took (sent to arrival): a client
  slower than the window delivers once every ``ceil(tau_i / Delta t)`` windows, and its weight
  is scaled up by as much; ``staleness`` can add a staleness factor (default none).
- :class:`FedBuff` (Nguyen et al., "Federated Learning with Buffered Asynchronous Aggregation",
  AISTATS 2022, Algorithm 1): the server buffers arrivals and steps after ``buffer_size``
  (``c``) of them with ``d_i = s(tau_i) / c``, ``s(tau) = 1/sqrt(1 + tau)`` (its Sec. 5 choice),
  ``eta_g`` = ``server_lr``. Fraboni et al.'s FedBuff is ``d_i = 1 / c``: ``staleness="none"``;
  ``average="data"`` gives their ``p_i``-weighted variant without the division by the
  participation probability ``q_i`` (not estimated here).

The client-time scenario of Fraboni et al. (the fastest client ``P`` % faster than the slowest,
``tau_i = 1 - i (P/100)/(n-1)``) is ``Federation(faster_pct=P)``
(:func:`~adaptloop.distributed.federation.linear_speed_profile`).

``robust`` replaces the buffer's weighted sum by a Byzantine-robust block
(:class:`~adaptloop.distributed.aggregate.RobustBlock`) over the buffered deltas with the same
weights ``d_i``, scaled to their total, so staleness weighting is kept; ``robust_fraction`` is the
share of the buffer assumed Byzantine; ``robust_bucket`` > 1 first averages the buffer in random
buckets of that size (bucketing, see :class:`~adaptloop.distributed.aggregate.RobustBlock`).

Deviations: FedBuff's client sampling to a target concurrency is replaced by "every alive client
always works" (concurrency = number of clients); a client that delivers twice inside one buffer
contributes twice, as in the paper's buffer.

>>> import numpy as np
>>> from adaptloop.distributed.rules.base import ServerView, Update
>>> rule = FedBuff(buffer_size=2, local_steps=1)
>>> view = ServerView(0.0, np.zeros(1), 3, frozenset({0, 1}), frozenset({1}), np.ones(2) / 2,
...                   np.random.default_rng(0))
>>> plan = rule.on_update(Update(0, 0, np.array([2.0]), 3, 8, 1, 0.0, 1.0), view)
>>> plan.model, [a.client for a in plan.dispatch]
(None, [0])
>>> plan = rule.on_update(Update(1, 1, np.array([2.0]), 0, 8, 1, 0.0, 1.0), view)
>>> plan.model.tolist()
[1.5]
"""

from __future__ import annotations

import math
from typing import Literal

from adaptloop.distributed.aggregate import (
    Robust,
    RobustBlock,
    RobustFraction,
    Staleness,
    server_step,
    staleness_weight,
)
from adaptloop.distributed.rules.base import (
    AggregationRule,
    Assignment,
    Plan,
    ServerView,
    Update,
    robust_aggregate,
    robust_influence,
)
from adaptloop.distributed.rules.base import registry as rules
from adaptloop.validation import Count, PositiveReal

Average = Literal["buffer", "data"]


class _Buffered(AggregationRule):
    """Shared machinery: keep everyone busy, buffer weighted deltas, step on a trigger."""

    def __init__(
        self,
        local_steps: int,
        server_lr: float,
        staleness: Staleness,
        exponent: float,
        average: Average,
        robust: Robust,
        robust_fraction: float,
        robust_bucket: int,
    ) -> None:
        self.local_steps, self.server_lr = local_steps, server_lr
        self.staleness, self.exponent, self.average = staleness, exponent, average
        self.robust, self.robust_fraction = robust, robust_fraction
        self.robust_bucket = robust_bucket
        self._block = RobustBlock(robust, robust_fraction, robust_bucket)
        self._buffer: list[tuple[Update, float]] = []

    def _everyone(self, view: ServerView) -> list[Assignment]:
        return [Assignment(c, self.local_steps) for c in view.idle]

    def _add(self, update: Update, view: ServerView) -> None:
        weight = staleness_weight(view.staleness(update), self.staleness, self.exponent)
        self._buffer.append((update, weight * self._scale(update)))

    def _scale(self, update: Update) -> float:
        """A rule's own factor on an update's weight (1; FedFix: the windows it spans)."""
        return 1.0

    def _step(self, view: ServerView, plan: Plan) -> Plan:
        """``plan`` with the server step over the buffer (if any) and its influences."""
        if not self._buffer:
            return plan
        coefficients = [
            (1.0 / len(self._buffer) if self.average == "buffer" else view.weights[u.client])
            * weight
            for u, weight in self._buffer
        ]
        updates = [u for u, _ in self._buffer]
        deltas = [u.delta for u in updates]
        step, kept = robust_aggregate(self._block, deltas, coefficients, view, self.local_steps)
        self._buffer = []
        plan.model = server_step(view.model, step, self.server_lr)
        plan.influence = robust_influence(updates, kept, self.robust)
        return plan


@rules.register("fedbuff")
class FedBuff(_Buffered):
    """FedBuff: step after ``buffer_size`` arrivals, each delta weighted by its staleness."""

    def __init__(
        self,
        buffer_size: Count = 8,
        local_steps: Count = 5,
        server_lr: PositiveReal = 1.0,
        staleness: Staleness = "sqrt",
        exponent: PositiveReal = 0.5,
        average: Average = "buffer",
        robust: Robust = "mean",
        robust_fraction: RobustFraction = 0.25,
        robust_bucket: Count = 1,
    ) -> None:
        super().__init__(
            local_steps,
            server_lr,
            staleness,
            exponent,
            average,
            robust,
            robust_fraction,
            robust_bucket,
        )
        self.buffer_size = buffer_size

    def start(self, view: ServerView) -> Plan:
        return Plan(dispatch=self._everyone(view))

    def on_update(self, update: Update, view: ServerView) -> Plan:
        self._add(update, view)
        plan = Plan(dispatch=[Assignment(update.client, self.local_steps)])
        return self._step(view, plan) if len(self._buffer) >= self.buffer_size else plan


@rules.register("fedfix")
class FedFix(_Buffered):
    """FedFix: step every ``window`` time units with the deltas that arrived in the window."""

    def __init__(
        self,
        window: PositiveReal = 10.0,
        local_steps: Count = 5,
        server_lr: PositiveReal = 1.0,
        staleness: Staleness = "none",
        exponent: PositiveReal = 0.5,
        average: Average = "data",
        robust: Robust = "mean",
        robust_fraction: RobustFraction = 0.25,
        robust_bucket: Count = 1,
    ) -> None:
        super().__init__(
            local_steps,
            server_lr,
            staleness,
            exponent,
            average,
            robust,
            robust_fraction,
            robust_bucket,
        )
        self.window = window

    def start(self, view: ServerView) -> Plan:
        return Plan(dispatch=self._everyone(view), timers=[view.now + self.window])

    def on_update(self, update: Update, view: ServerView) -> Plan:
        self._add(update, view)
        return Plan(dispatch=[Assignment(update.client, self.local_steps)])

    def _scale(self, update: Update) -> float:
        """``ceil(tau_i / Delta t)``: the windows the update took (Fraboni et al., Sec. 5)."""
        return float(max(1, math.ceil((update.time - update.sent_at) / self.window - 1e-9)))

    def on_timer(self, view: ServerView) -> Plan:
        return self._step(view, Plan(timers=[view.now + self.window]))
