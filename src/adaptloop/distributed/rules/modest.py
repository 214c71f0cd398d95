"""MoDeST: decentralised sampling — every round a random sample of nodes trains and aggregates,
without a server (de Vos et al., "MoDeST: Bridging the Gap between Federated and Decentralized
Learning with Decentralized Sampling", 2023; published as "Decentralized Learning Made Practical
with Client Sampling", Sec. III).

Round ``k`` has a sample ``S_k`` of ``s = sample_size`` nodes, drawn from the nodes available
(alive, not busy, and present under the participation model if there is one,
:mod:`~adaptloop.distributed.participation`) with the run's seeded generator: in the paper
every node computes the same sample from the round number and its view of the active nodes (a
hash), so no one coordinates;
a shared seed plays that part here. Every node of ``S_k`` trains ``local_steps`` steps from the
round's model and sends its trained model to the ``a = aggregators`` aggregators of the round,
the first ``a`` nodes of the next sample ``S_{k+1}``. Once a ``success_fraction`` of the sample's
models arrived, the aggregators average them (FedAvg's sample-weighted mean,

    x_{k+1} = x_k + sum_{i in R_k} (n_i / n) (x_i - x_k),

``R_k`` the models received) and send ``x_{k+1}`` to every node of ``S_{k+1}``, which starts
round ``k + 1``. Messages per round: ``|R_k| a`` (trainers to aggregators) plus ``a s``
(aggregators to the next sample), less the ones a node would send itself; a model arriving after
its round closed is still sent (counted) but not used.

The model evaluated over time is the latest aggregate ``x_k`` — MoDeST keeps one model per
round, "mostly consistent", which a node outside the sample fetches when it needs it (not
counted). Deviations: the aggregators are drawn when the round closes, from the nodes available
then (the paper fixes them with the next sample at the round's start); the aggregators' hop
takes no simulated time beyond the tasks' latency; the paper's activity tracking (joining and
leaving nodes) is the engines' failure and rejoin events: a failed node is never sampled, a
rejoining one can be.

>>> import numpy as np
>>> from adaptloop.distributed.rules.base import ServerView, Update
>>> rule = MoDeST(sample_size=2, aggregators=1, local_steps=1)
>>> view = ServerView(0.0, np.zeros(1), 0, frozenset({0, 1, 2, 3}), frozenset(),
...                   np.ones(4) / 4, np.random.default_rng(0))
>>> sample = [a.client for a in rule.start(view).dispatch]
>>> len(sample)
2
>>> busy = frozenset(sample[1:])
>>> view = ServerView(1.0, np.zeros(1), 0, view.alive, busy, view.weights, view.rng)
>>> rule.on_update(Update(0, sample[0], np.array([2.0]), 0, 8, 1, 0.0, 1.0), view).model is None
True
>>> view = ServerView(2.0, np.zeros(1), 0, view.alive, frozenset(), view.weights, view.rng)
>>> plan = rule.on_update(Update(1, sample[1], np.array([4.0]), 0, 8, 1, 0.0, 2.0), view)
>>> plan.model.tolist(), len(plan.dispatch), 2 <= plan.messages <= 4
([3.0], 2, True)
"""

from __future__ import annotations

import math
from typing import Annotated

from annotated_types import Gt, Le

from adaptloop.distributed.aggregate import server_step, weighted_mean
from adaptloop.distributed.rules.base import AggregationRule, Assignment, Plan, ServerView, Update
from adaptloop.distributed.rules.base import registry as rules
from adaptloop.distributed.rules.fedavg import WAIT
from adaptloop.validation import Count, Real

SuccessFraction = Annotated[Real, Gt(0), Le(1)]
"""The share of a round's sample whose models the aggregators wait for: in (0, 1]."""


@rules.register("modest")
class MoDeST(AggregationRule):
    """A random sample of nodes trains each round; aggregators from the next sample average
    their models and pass the aggregate on (see the module docstring)."""

    decentralised = True

    def __init__(
        self,
        sample_size: Count = 8,
        aggregators: Count = 1,
        local_steps: Count = 5,
        success_fraction: SuccessFraction = 1.0,
    ) -> None:
        self.sample_size = sample_size
        self.aggregators = aggregators
        self.local_steps = local_steps
        self.success_fraction = success_fraction
        self._sample: set[int] = set()
        self._received: list[Update] = []
        self._needed = 0
        self._aggregators: list[int] = []  # the last round's: late models still go to them
        self._round = 0  # the participation model's round index
        self._waiting = False

    def _draw(self, view: ServerView) -> list[int]:
        # the present (participation model) and idle nodes: a closed round's stragglers are busy
        available = view.participating(self._round)
        self._round += 1
        m = min(self.sample_size, len(available))
        return view.rng.choice(available, size=m, replace=False).tolist() if m else []

    def _start_round(self, sample: list[int], view: ServerView) -> Plan:
        self._sample = set(sample)
        self._received = []
        self._needed = math.ceil(self.success_fraction * len(sample))
        plan = Plan(dispatch=[Assignment(c, self.local_steps) for c in sample])  # aggregators 1st
        if not sample and view.idle and not self._waiting:  # nobody present: try again later
            self._waiting = True
            plan.timers.append(view.now + WAIT)
        return plan

    def _sent_to_aggregators(self, client: int) -> int:
        return sum(1 for g in self._aggregators if g != client)

    def start(self, view: ServerView) -> Plan:
        return self._start_round(self._draw(view), view)

    def on_timer(self, view: ServerView) -> Plan:
        self._waiting = False
        return Plan() if self._sample else self._start_round(self._draw(view), view)

    def _close(self, view: ServerView) -> Plan:
        nxt = self._draw(view)
        self._aggregators = nxt[: self.aggregators] or [self._received[0].client]
        messages = sum(self._sent_to_aggregators(u.client) for u in self._received)
        messages += sum(1 for g in self._aggregators for c in nxt if c != g)
        direction = weighted_mean(
            [u.delta for u in self._received], [u.n_samples for u in self._received]
        )
        plan = self._start_round(nxt, view)
        plan.model, plan.messages = server_step(view.model, direction), messages
        return plan

    def on_update(self, update: Update, view: ServerView) -> Plan:
        if update.client not in self._sample or update.base_version != view.version:
            # a model of a closed round: sent to that round's aggregators, not used
            return Plan(messages=self._sent_to_aggregators(update.client))
        self._received.append(update)
        if len(self._received) >= self._needed:
            return self._close(view)
        return Plan()

    def on_failure(self, client: int, view: ServerView) -> Plan:
        if client not in self._sample:
            return Plan()
        self._sample.discard(client)
        self._needed = min(self._needed, len(self._sample))
        if self._received and len(self._received) >= self._needed:
            return self._close(view)
        if not self._sample:
            return self._start_round(self._draw(view), view)
        return Plan()

    def on_rejoin(self, client: int, view: ServerView) -> Plan:
        # a rejoining node is sampled in a later round, unless no round is running
        return Plan() if self._sample else self._start_round(self._draw(view), view)
