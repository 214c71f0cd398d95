"""Decentralised gossip with one final global merge.

Following "A Single Merging Suffices: Recovering Server-based Learning Performance in
Decentralized Learning" (Zhu et al., 2025): clients train on their own and average models with
peers only (no server model during training); one global merge — the average of all client
models — at the end recovers most of the accuracy of server-based training.

Here each client keeps its own model ``x_i``. When client ``i`` finishes its local steps its
delta is added to its model (``x_i <- x_i + Delta_i``, the model may have been mixed by a peer
meanwhile, as in asynchronous gossip), then it averages with ``peers`` peers drawn uniformly
from its alive neighbours in the ``topology`` (:mod:`~adaptloop.distributed.topology`;
``complete``: every alive client) (``x_i, x_j <- (x_i + x_j) / 2``, two messages) and continues
from ``x_i``. A time-varying topology is drawn again every ``n`` updates (one update per node
on average). The "global model" the server evaluates over time is the merge the run *would*
make if it stopped then, the uniform average of all client models; the nodes' own models are
:meth:`Gossip.node_models` (the records' ``accuracy_local``). The merge is never sent to
clients (except to a restarted client, which rejoins from it: one message). At the end the
merge is final.

``variance_correction`` rescales every pairwise average layer by layer to the mean variance of
the two models (:func:`~adaptloop.distributed.aggregate.variance_corrected`, Tian et al. 2024,
"Vanishing Variance Problem in Fully Decentralized Neural-Network Systems");
``independent_init`` starts every node from its own initialisation, as in that paper's gossip
learning (each layer of the initial model randomly permuted per node: the same distribution of
weights, uncorrelated across nodes; a zero-initialised model stays zero).
Deviation: the paper's topologies and mixing matrices are replaced by random pairwise gossip
over the topology's edges (one peer exchange per update, as in gossip learning).

>>> import numpy as np
>>> from adaptloop.distributed.rules.base import ServerView, Update
>>> rule = Gossip(local_steps=1)
>>> view = ServerView(0.0, np.zeros(1), 0, frozenset({0, 1}), frozenset(), np.ones(2) / 2,
...                   np.random.default_rng(0))
>>> [a.client for a in rule.start(view).dispatch]
[0, 1]
>>> view = ServerView(1.0, np.zeros(1), 0, view.alive, frozenset({1}), view.weights, view.rng)
>>> plan = rule.on_update(Update(0, 0, np.array([2.0]), 0, 8, 1, 0.0, 1.0), view)
>>> plan.model.tolist(), plan.dispatch[0].model.tolist(), plan.messages
([1.0], [1.0], 2)
"""

from __future__ import annotations

import numpy as np

from adaptloop.distributed.aggregate import variance_corrected
from adaptloop.distributed.rules.base import AggregationRule, Assignment, Plan, ServerView, Update
from adaptloop.distributed.rules.base import registry as rules
from adaptloop.distributed.topology import EdgeProbability, Network, Topology, TopologyKind
from adaptloop.validation import Count, Flag


def permuted_layers(
    model: np.ndarray, layers: tuple[tuple[int, int], ...], rng: np.random.Generator
) -> np.ndarray:
    """``model`` with the entries of every layer span randomly permuted (an independent draw
    of the same initialisation; ``layers`` empty: the whole vector is one layer).

    >>> permuted_layers(np.arange(4.0), ((0, 2), (2, 4)), np.random.default_rng(5)).tolist()
    [1.0, 0.0, 3.0, 2.0]
    """
    out = model.copy()
    for start, stop in layers or ((0, len(model)),):
        out[start:stop] = rng.permutation(out[start:stop])
    return out


@rules.register("gossip")
class Gossip(AggregationRule):
    """Pairwise gossip between neighbours; the global model is one merge (the average) at the
    end (see the module docstring)."""

    decentralised = True

    def __init__(
        self,
        local_steps: Count = 5,
        peers: Count = 1,
        topology: TopologyKind = "complete",
        degree: Count = 4,
        edge_probability: EdgeProbability = 0.2,
        time_varying: Flag = False,
        variance_correction: Flag = False,
        independent_init: Flag = False,
    ) -> None:
        self.local_steps = local_steps
        self.peers = peers
        self.topology, self.degree = topology, degree
        self.edge_probability, self.time_varying = edge_probability, time_varying
        self.variance_correction = variance_correction
        self.independent_init = independent_init
        self._graph = Topology(topology, degree, edge_probability, time_varying)
        self._network: Network | None = None
        self._updates = 0
        self._models: dict[int, np.ndarray] = {}

    def _merge(self) -> np.ndarray:
        return np.mean(list(self._models.values()), axis=0)

    def node_models(self) -> dict[int, np.ndarray]:
        return dict(self._models)

    def start(self, view: ServerView) -> Plan:
        nodes = sorted(view.alive)
        if self.independent_init:
            self._models = {c: permuted_layers(view.model, view.layers, view.rng) for c in nodes}
        else:
            self._models = {c: view.model.copy() for c in nodes}
        if self.topology != "complete":
            self._network = Network(self._graph, view.rng)
            self._network.refresh(list(range(len(view.weights))))
        return Plan(
            model=self._merge() if self.independent_init else None,
            dispatch=[Assignment(c, self.local_steps, self._models[c]) for c in view.idle],
        )

    def _peers_of(self, i: int, view: ServerView) -> list[int]:
        if self._network is None:
            return sorted(view.alive - {i})
        self._updates += 1
        if self.time_varying and self._updates % len(self._network.nodes) == 0:
            self._network.refresh(self._network.nodes)
        return [j for j in self._network.neighbours(i) if j in view.alive]

    def on_update(self, update: Update, view: ServerView) -> Plan:
        i = update.client
        self._models[i] = self._models[i] + update.delta
        others = self._peers_of(i, view)
        messages = 0
        if others:
            size = min(self.peers, len(others))
            for j in view.rng.choice(others, size=size, replace=False).tolist():
                pair = [self._models[i], self._models[j]]
                mixed = 0.5 * (pair[0] + pair[1])
                if self.variance_correction:
                    mixed = variance_corrected(mixed, pair, [0.5, 0.5], view.layers)
                self._models[i], self._models[j] = mixed, mixed.copy()
                messages += 2
        return Plan(
            model=self._merge(),
            dispatch=[Assignment(i, self.local_steps, self._models[i])],
            messages=messages,
        )

    def on_rejoin(self, client: int, view: ServerView) -> Plan:
        self._models[client] = view.model.copy()
        return Plan(
            dispatch=[Assignment(client, self.local_steps, self._models[client])], messages=1
        )

    def finish(self, view: ServerView) -> Plan:
        return Plan(model=self._merge()) if self._models else Plan()
