"""FedCompass: the server gives each client a number of local steps from its measured speed so
that updates arrive in groups.

Li et al., "FedCompass: Efficient Cross-Silo Federated Learning on Heterogeneous Client Devices
Using a Computing Power-Aware Scheduler" (ICLR 2024), Sec. 3 and Algorithms 1-2, as implemented in
the authors' APPFL (``src/appfl/scheduler/compass_scheduler.py``, ``CompassScheduler``, and
``src/appfl/algorithm/aggregator/fedcompass_aggregator.py``, ``FedCompassAggregator``), with
APPFL's defaults:

- a client's time per local step is measured on every arrival and averaged,
  ``speed <- (1 - m) speed + m * elapsed / steps`` (``m`` = ``speed_momentum`` = 0.9,
  ``CompassScheduler._record_info``);
- an *arrival group* has an expected arrival time ``T_a`` and a latest one ``T_max``; a
  returning client joins the group where ``Q = floor((T_a - now) / speed)`` is largest within
  ``[Q_min, Q_max]`` (``_join_group``), else starts a new group (``_create_group``) with
  ``Q_max`` steps, or fewer to arrive just after a running group's latest time (never fewer than
  ``Q_min``), ``T_a = now + Q * speed`` and ``T_max = now + latest_factor * Q * speed``;
  ``Q_max`` = ``max_steps`` = 100, ``Q_min`` = ``q_ratio * Q_max`` = 20, ``latest_factor`` = 1.5;
- when every member of a group has arrived, or at ``T_max``, the server aggregates the group's
  models together with those that arrived after their group's ``T_max`` (the *general
  buffer*), then gives the members new groups, fastest first (``_group_aggregation``); a late
  client goes to the general buffer and is given a new group at once; a client's first arrival
  (before it has a group) is applied at once, alone (``_single_update(buffer=False)``).

Every aggregation is APPFL's: each local model ``theta_i`` gets the weight
``alpha_i = alpha * s(tau_i) / N`` (``alpha`` = 0.9, ``N`` the number of clients,
``s(tau) = (tau + 1)^-exponent`` with ``exponent`` = 0.5, ``tau_i`` the server steps since the
client's model was sent) and the global model becomes
``theta <- (1 - sum_i alpha_i) theta + sum_i alpha_i theta_i``, i.e.
``theta <- theta + sum_i alpha_i (theta_sent_i + Delta_i - theta)``: the rule remembers the model
each client was sent. Deviations: none in the arithmetic; APPFL measures wall-clock time, we the
engine's clock. ``staleness`` can pick another function of :mod:`~adaptloop.distributed.aggregate`.
``robust`` mixes a group by a Byzantine-robust block instead
(:class:`~adaptloop.distributed.aggregate.RobustBlock`: ``theta <- theta + block(theta_i - theta,
alpha_i)``, the weights ``alpha_i`` and their total kept).

>>> import numpy as np
>>> from adaptloop.distributed.rules.base import ServerView, Update
>>> rule = FedCompass(max_steps=10)
>>> view = ServerView(0.0, np.zeros(1), 0, frozenset({0, 1}), frozenset(), np.ones(2) / 2,
...                   np.random.default_rng(0))
>>> [(a.client, a.steps) for a in rule.start(view).dispatch]
[(0, 10), (1, 10)]
>>> view = ServerView(10.0, np.zeros(1), 0, view.alive, frozenset({1}), view.weights, view.rng)
>>> plan = rule.on_update(Update(0, 0, np.array([1.0]), 0, 10, 10, 0.0, 10.0), view)
>>> [(a.client, a.steps) for a in plan.dispatch], plan.timers, plan.model.tolist()
([(0, 10)], [25.0], [0.45])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated

import numpy as np
from annotated_types import Ge, Gt, Le

from adaptloop.distributed.aggregate import (
    Robust,
    RobustBlock,
    RobustFraction,
    Staleness,
    compass_mix,
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

Share = Annotated[float, Gt(0), Le(1)]
"""A ratio, momentum or weight in (0, 1]."""


@dataclass
class _Group:
    expected: float
    latest: float
    members: set[int] = field(default_factory=set)
    arrived: list[Update] = field(default_factory=list)


@rules.register("fedcompass")
class FedCompass(AggregationRule):
    """Computing-power-aware scheduling: local steps per client so that arrivals come in groups."""

    def __init__(
        self,
        max_steps: Count = 100,
        q_ratio: Share = 0.2,
        latest_factor: Annotated[float, Ge(1)] = 1.5,
        speed_momentum: Share = 0.9,
        alpha: Share = 0.9,
        staleness: Staleness = "poly",
        exponent: PositiveReal = 0.5,
        robust: Robust = "mean",
        robust_fraction: RobustFraction = 0.25,
    ) -> None:
        self.robust, self.robust_fraction = robust, robust_fraction
        self._block = RobustBlock(robust, robust_fraction)
        self.max_steps, self.q_ratio, self.latest_factor = max_steps, q_ratio, latest_factor
        self.speed_momentum, self.alpha = speed_momentum, alpha
        self.staleness, self.exponent = staleness, exponent
        self.local_steps = self.max_steps
        self._min_steps = max(1, math.floor(self.q_ratio * self.max_steps))
        self._speed: dict[int, float] = {}
        self._group_of: dict[int, int] = {}
        self._groups: dict[int, _Group] = {}
        self._buffer: list[Update] = []
        self._speed_seen: set[int] = set()
        self._sent: dict[int, np.ndarray] = {}  # the model each busy client started from
        self._next_group = 0

    # -- scheduling ---------------------------------------------------------------------------
    def _measure(self, update: Update) -> None:
        speed = (update.time - update.sent_at) / update.steps
        old = self._speed.get(update.client)
        m = self.speed_momentum
        self._speed[update.client] = speed if old is None else (1 - m) * old + m * speed

    def _assign(self, client: int, now: float) -> tuple[Assignment, list[float]]:
        """Join the group with the most feasible steps (the later group on a tie, as APPFL's
        ``_join_group``), else open a new one (``_create_group``)."""
        speed = self._speed[client]
        best, best_steps = None, -1
        for gid, group in self._groups.items():
            steps = math.floor((group.expected - now) / speed) if speed > 0 else self.max_steps
            if self._min_steps <= steps <= self.max_steps and steps >= best_steps:
                best, best_steps = gid, steps
        if best is not None:
            self._groups[best].members.add(client)
            self._group_of[client] = best
            return Assignment(client, best_steps), []
        steps = -1
        for group in self._groups.values():  # arrive just after a running group closes
            if now < group.latest:
                clients = group.members | {u.client for u in group.arrived}
                fastest = min(self._speed[c] for c in clients)
                arrival = group.latest + fastest * self.max_steps
                q = math.floor((arrival - now) / speed) if speed > 0 else self.max_steps
                if q <= self.max_steps:
                    steps = max(steps, q)
        steps = self.max_steps if steps < 0 else max(steps, self._min_steps)
        gid = self._next_group
        self._next_group += 1
        self._groups[gid] = _Group(
            expected=now + steps * speed,
            latest=now + steps * speed * self.latest_factor,
            members={client},
        )
        self._group_of[client] = gid
        return Assignment(client, steps), [self._groups[gid].latest]

    # -- aggregation --------------------------------------------------------------------------
    def _mix(self, updates: list[Update], view: ServerView, plan: Plan) -> np.ndarray:
        """APPFL's ``FedCompassAggregator.aggregate``: weights ``alpha * s(tau_i) / N``; with a
        robust block, ``model + block(models - model, weights)`` (its influences go to
        ``plan``)."""
        n = len(view.weights)
        weights = [
            self.alpha * staleness_weight(view.staleness(u), self.staleness, self.exponent) / n
            for u in updates
        ]
        models = [self._sent.pop(u.client, view.model) + u.delta for u in updates]
        if self.robust == "mean":
            return compass_mix(view.model, models, weights)
        deltas = [m - view.model for m in models]
        step, kept = robust_aggregate(self._block, deltas, weights, view, self.local_steps)
        plan.influence.extend(robust_influence(updates, kept, self.robust))
        return view.model + step

    def _send(self, plan: Plan, client: int, steps: int, model: np.ndarray) -> None:
        self._sent[client] = model
        plan.dispatch.append(Assignment(client, steps))

    def _aggregate(self, gid: int, view: ServerView) -> Plan:
        group = self._groups.pop(gid)
        updates = self._buffer + group.arrived
        self._buffer = []
        plan = Plan()
        plan.model = self._mix(updates, view, plan)
        for client in group.members:  # still on their way: they will arrive late
            self._group_of.pop(client, None)
        arrived = sorted({u.client for u in group.arrived}, key=lambda c: self._speed[c])
        for client in arrived:
            if client in view.alive:
                assignment, timers = self._assign(client, view.now)
                self._send(plan, client, assignment.steps, plan.model)
                plan.timers.extend(timers)
        return plan

    # -- events -------------------------------------------------------------------------------
    def start(self, view: ServerView) -> Plan:
        plan = Plan()
        for client in view.idle:
            self._send(plan, client, self.max_steps, view.model)
        return plan

    def on_update(self, update: Update, view: ServerView) -> Plan:
        self._measure(update)
        gid = self._group_of.pop(update.client, None)
        group = self._groups.get(gid) if gid is not None else None
        if group is None or view.now > group.latest:
            plan = Plan()
            if group is None and update.client not in self._speed_seen:
                plan.model = self._mix([update], view, plan)  # a first arrival: applied alone
            else:
                self._buffer.append(update)
            if group is not None:
                group.members.discard(update.client)
            self._speed_seen.add(update.client)
            assignment, timers = self._assign(update.client, view.now)
            self._send(
                plan,
                update.client,
                assignment.steps,
                view.model if plan.model is None else plan.model,
            )
            plan.timers.extend(timers)
            return plan
        self._speed_seen.add(update.client)
        group.members.discard(update.client)
        group.arrived.append(update)
        return self._aggregate(gid, view) if not group.members else Plan()

    def on_timer(self, view: ServerView) -> Plan:
        plan = Plan()
        for gid in [g for g, group in self._groups.items() if group.latest <= view.now]:
            if not self._groups[gid].arrived:
                self._groups.pop(gid)
                continue
            step = self._aggregate(gid, view)
            view = ServerView(
                view.now,
                step.model,
                view.version + 1,
                view.alive,
                view.busy,
                view.weights,
                view.rng,
            )
            plan.model = step.model
            plan.influence.extend(step.influence)
            plan.dispatch.extend(step.dispatch)
            plan.timers.extend(step.timers)
        return plan

    def on_failure(self, client: int, view: ServerView) -> Plan:
        gid = self._group_of.pop(client, None)
        if gid is None or gid not in self._groups:
            return Plan()
        group = self._groups[gid]
        group.members.discard(client)
        if not group.members:
            if group.arrived:
                return self._aggregate(gid, view)
            self._groups.pop(gid)
        return Plan()

    def on_rejoin(self, client: int, view: ServerView) -> Plan:
        self._speed_seen.discard(client)
        self._speed.pop(client, None)
        plan = Plan()
        self._send(plan, client, self.max_steps, view.model)
        return plan
