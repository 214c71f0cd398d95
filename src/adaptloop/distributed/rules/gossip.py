"""Decentralised gossip with one final global merge.

Following "A Single Merging Suffices: Recovering Server-based Learning Performance in
Decentralized Learning" (Zhu et al., 2025): clients train on their own and average models with
peers only (no server model during training); one global merge — the average of all client
models — at the end recovers most of the accuracy of server-based training.

Here each client keeps its own model ``x_i``. When client ``i`` finishes its local steps its
delta is added to its model (``x_i <- x_i + Delta_i``, the model may have been mixed by a peer
meanwhile, as in asynchronous gossip), then it averages with ``peers`` peers drawn uniformly
from the alive clients (``x_i, x_j <- (x_i + x_j) / 2``) and continues from ``x_i``. The
"global model" the server evaluates over time is the merge the run *would* make if it stopped
then, the uniform average of all client models; it is never sent to clients (except to a
restarted client, which rejoins from it). At the end the merge is final.
Deviation: the paper's topologies and mixing matrices are replaced by random pairwise gossip.

>>> import numpy as np
>>> from adaptloop.distributed.rules.base import ServerView, Update
>>> rule = Gossip(local_steps=1)
>>> view = ServerView(0.0, np.zeros(1), 0, frozenset({0, 1}), frozenset(), np.ones(2) / 2,
...                   np.random.default_rng(0))
>>> [a.client for a in rule.start(view).dispatch]
[0, 1]
>>> view = ServerView(1.0, np.zeros(1), 0, view.alive, frozenset({1}), view.weights, view.rng)
>>> plan = rule.on_update(Update(0, 0, np.array([2.0]), 0, 8, 1, 0.0, 1.0), view)
>>> plan.model.tolist(), plan.dispatch[0].model.tolist()
([1.0], [1.0])
"""

from __future__ import annotations

import numpy as np

from adaptloop.distributed.rules.base import AggregationRule, Assignment, Plan, ServerView, Update
from adaptloop.distributed.rules.base import registry as rules
from adaptloop.validation import Count


@rules.register("gossip")
class Gossip(AggregationRule):
    """Pairwise gossip between clients; the global model is one merge (the average) at the end."""

    def __init__(self, local_steps: Count = 5, peers: Count = 1) -> None:
        self.local_steps = local_steps
        self.peers = peers
        self._models: dict[int, np.ndarray] = {}

    def _merge(self) -> np.ndarray:
        return np.mean(list(self._models.values()), axis=0)

    def start(self, view: ServerView) -> Plan:
        self._models = {c: view.model.copy() for c in sorted(view.alive)}
        return Plan(dispatch=[Assignment(c, self.local_steps, self._models[c]) for c in view.idle])

    def on_update(self, update: Update, view: ServerView) -> Plan:
        i = update.client
        self._models[i] = self._models[i] + update.delta
        others = sorted(view.alive - {i})
        if others:
            size = min(self.peers, len(others))
            for j in view.rng.choice(others, size=size, replace=False).tolist():
                mixed = 0.5 * (self._models[i] + self._models[j])
                self._models[i], self._models[j] = mixed, mixed.copy()
        return Plan(
            model=self._merge(),
            dispatch=[Assignment(i, self.local_steps, self._models[i])],
        )

    def on_rejoin(self, client: int, view: ServerView) -> Plan:
        self._models[client] = view.model.copy()
        return Plan(dispatch=[Assignment(client, self.local_steps, self._models[client])])

    def finish(self, view: ServerView) -> Plan:
        return Plan(model=self._merge()) if self._models else Plan()
