"""FedStale: fresh deltas mixed with the stale, remembered deltas of clients that did not deliver.

Rodio & Neglia, "FedStale: leveraging stale client updates in federated learning" (2024),
and the authors' code (``arodio/FedStale``: ``aggregator.py``, ``history_tracker.py``,
``client_sampler.py``). The server keeps the last delta ``h_i`` of every client. At each server
step, with ``S`` the clients that delivered a fresh delta ``Delta_i``, it moves along

    v = beta * sum_{all j} alpha_j h_j + sum_{i in S} (alpha_i / p_i) * (Delta_i - beta * h_i)

    theta <- theta + server_lr * v,  then h_i <- Delta_i for i in S

with ``alpha_j`` client ``j``'s data share and ``p_i`` its participation probability. ``beta``
= 0 gives (unbiased) FedAvg, which uses only fresh updates; ``beta`` = 1 gives FedVARP, which
uses stale and fresh updates alike; the paper's guideline is a ``beta`` in between, lower when
participation is more heterogeneous.

``p_i``: the authors' ``UnbiasedClientsSampler`` weighs a participant by ``alpha_i / p_i`` with
``p_i`` the client's participation frequency over the whole run (the row mean of the
participation matrix, known in advance), or with FedAU's interval estimate when it is unknown
(``activity_estimator.py``). A server cannot know the frequency of the rounds still to come, so
here ``p_i`` is its causal version: the fraction of server steps client ``i`` delivered in so
far, with one pseudo-step at the prior ``buffer_size / n_clients``.

Deviation: the paper runs synchronous rounds in which the available clients participate. Here
a "round" closes, FedBuff-style, after ``buffer_size`` arrivals from clients that all work
continuously, so participation is heterogeneous because clients are slow, which is the setting
FedStale targets. Several deltas of one client within a round are summed.

>>> import numpy as np
>>> from adaptloop.distributed.rules.base import ServerView, Update
>>> rule = FedStale(buffer_size=1, beta=0.5, local_steps=1)
>>> view = ServerView(0.0, np.zeros(1), 0, frozenset({0, 1}), frozenset({1}), np.ones(2) / 2,
...                   np.random.default_rng(0))
>>> rule.on_update(Update(0, 0, np.array([2.0]), 0, 8, 1, 0.0, 1.0), view).model.tolist()
[2.0]
>>> rule.on_update(Update(1, 0, np.array([2.0]), 0, 8, 1, 0.0, 2.0), view).model.tolist()
[1.1666666666666665]
"""

from __future__ import annotations

import numpy as np

from adaptloop.distributed.aggregate import server_step, stale_mix
from adaptloop.distributed.rules.base import AggregationRule, Assignment, Plan, ServerView, Update
from adaptloop.distributed.rules.base import registry as rules
from adaptloop.validation import Count, Fraction, PositiveReal


@rules.register("fedstale")
class FedStale(AggregationRule):
    """FedStale: a convex mix (``beta``) of fresh deltas and every client's last delta."""

    def __init__(
        self,
        buffer_size: Count = 8,
        beta: Fraction = 0.5,
        local_steps: Count = 5,
        server_lr: PositiveReal = 1.0,
    ) -> None:
        self.buffer_size = buffer_size
        self.beta = beta
        self.local_steps = local_steps
        self.server_lr = server_lr
        self._fresh: dict[int, np.ndarray] = {}
        self._arrivals = 0
        self._memory: dict[int, np.ndarray] = {}
        self._delivered: dict[int, int] = {}
        self._steps = 0

    def start(self, view: ServerView) -> Plan:
        return Plan(dispatch=[Assignment(c, self.local_steps) for c in view.idle])

    def _participation(self, client: int, n_clients: int) -> float:
        prior = min(1.0, self.buffer_size / n_clients)
        return (self._delivered.get(client, 0) + prior) / (self._steps + 1)

    def on_update(self, update: Update, view: ServerView) -> Plan:
        fresh = self._fresh.get(update.client)
        self._fresh[update.client] = update.delta if fresh is None else fresh + update.delta
        self._arrivals += 1
        plan = Plan(dispatch=[Assignment(update.client, self.local_steps)])
        if self._arrivals >= self.buffer_size:
            plan.model = self._step(view)
        return plan

    def _step(self, view: ServerView) -> np.ndarray:
        alpha = view.weights
        q = {i: self._participation(i, len(alpha)) for i in self._fresh}
        v = stale_mix(self._fresh, self._memory, alpha, q, self.beta)
        for i, delta in self._fresh.items():
            self._memory[i] = delta
            self._delivered[i] = self._delivered.get(i, 0) + 1
        self._steps += 1
        self._fresh, self._arrivals = {}, 0
        return server_step(view.model, v, self.server_lr)
