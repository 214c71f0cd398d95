"""DFedSAM and DFedSAM-MGS: decentralised FL with sharpness-aware local steps and multiple
gossip steps (Shi et al., "Improving the Model Consistency of Decentralized Federated
Learning", ICML 2023, Algorithm 1).

There is no server. Every round ``t`` each node ``i`` starts from its own model ``x_i^t`` and
takes ``K = local_steps`` sharpness-aware steps on its data (Eq. 4-5 of the paper, SAM of Foret
et al. 2021):

    y^{k+1} = y^k - eta * grad F_i(y^k + rho * g / ||g||),   g = grad F_i(y^k),   y^0 = x_i^t

(:meth:`~adaptloop.distributed.client.Client.run` with ``sam_rho = rho``; ``eta`` is the
learner's own rate), giving ``z_i = y^K``; then the nodes run ``Q = gossip_steps`` steps of
gossip with the mixing matrix ``W`` of the ``topology`` (Metropolis–Hastings weights,
:mod:`~adaptloop.distributed.topology`), over the nodes that took part in the round:

    z_i^{q+1} = sum_l w_il z_l^q,   q = 0 .. Q - 1,   x_i^{t+1} = z_i^Q.

``Q = 1`` is DFedSAM, ``Q > 1`` DFedSAM-MGS; ``rho = 0`` is DFedAvg (Sun et al., "Decentralized
Federated Averaging", TPAMI 2022: local SGD, one gossip step). Each gossip step every node sends
its model to each neighbour (``2 |E|`` messages). A time-varying topology is drawn again every
round. With ``variance_correction`` every node's merge is rescaled layer by layer to the
``W``-weighted variance of the models it merged (Tian et al. 2024, see
:func:`~adaptloop.distributed.aggregate.variance_corrected`).

The server evaluates the average of the nodes' models over time (the merge the run would make
if it stopped then, and the final one, as :class:`~adaptloop.distributed.rules.gossip.Gossip`);
the records' ``accuracy_local`` is the mean accuracy of the nodes' own models (the paper's
test accuracy of the local models). Deviations: a round waits for every alive node (stragglers
included, as the paper's synchronous rounds); under a participation model
(:mod:`~adaptloop.distributed.participation`) only the nodes present in a round train and gossip
(the graph is drawn over them: an absent node is offline), the others keep their models; a
failed node leaves the graph likewise and a rejoining one starts the next round from the nodes'
average; gossip steps take
no simulated time beyond the tasks' latency (their cost is counted in messages and bytes).

>>> import numpy as np
>>> from adaptloop.distributed.rules.base import ServerView, Update
>>> rule = DFedSAM(local_steps=1, rho=0.1, gossip_steps=2, topology="ring")
>>> view = ServerView(0.0, np.zeros(1), 0, frozenset({0, 1, 2}), frozenset(), np.ones(3) / 3,
...                   np.random.default_rng(0))
>>> plan = rule.start(view)
>>> [(a.client, a.sam_rho) for a in plan.dispatch]
[(0, 0.1), (1, 0.1), (2, 0.1)]
>>> for c, d in [(0, 3.0), (1, 0.0)]:
...     rule.on_update(Update(c, c, np.array([d]), 0, 8, 1, 0.0, 1.0), view).model is None
True
True
>>> plan = rule.on_update(Update(2, 2, np.array([0.0]), 0, 8, 1, 0.0, 1.0), view)
>>> plan.model.tolist(), plan.messages, len(plan.dispatch)  # 2 steps over a 3-node ring
([1.0], 12, 3)
"""

from __future__ import annotations

import numpy as np

from adaptloop.distributed.rules.base import AggregationRule, Assignment, Plan, ServerView, Update
from adaptloop.distributed.rules.base import registry as rules
from adaptloop.distributed.rules.fedavg import WAIT
from adaptloop.distributed.topology import EdgeProbability, Network, Topology, TopologyKind
from adaptloop.validation import Count, Flag, NonNegativeReal


@rules.register("dfedsam")
class DFedSAM(AggregationRule):
    """Synchronous decentralised rounds: SAM local steps, then ``gossip_steps`` mixing steps
    over the topology (see the module docstring; ``rho = 0``: DFedAvg)."""

    decentralised = True

    def __init__(
        self,
        local_steps: Count = 5,
        rho: NonNegativeReal = 0.05,
        gossip_steps: Count = 1,
        topology: TopologyKind = "ring",
        degree: Count = 4,
        edge_probability: EdgeProbability = 0.2,
        time_varying: Flag = False,
        variance_correction: Flag = False,
    ) -> None:
        self.local_steps = local_steps
        self.rho = rho
        self.gossip_steps = gossip_steps
        self.topology, self.degree = topology, degree
        self.edge_probability, self.time_varying = edge_probability, time_varying
        self.variance_correction = variance_correction
        self._graph = Topology(topology, degree, edge_probability, time_varying)
        self._network: Network | None = None
        self._models: dict[int, np.ndarray] = {}
        self._trained: dict[int, np.ndarray] = {}
        self._pending: set[int] = set()
        self._round = 0  # the participation model's round index
        self._waiting = False

    def node_models(self) -> dict[int, np.ndarray]:
        return dict(self._models)

    def _merge(self) -> np.ndarray:
        return np.mean([self._models[i] for i in sorted(self._models)], axis=0)

    def _new_round(self, view: ServerView) -> Plan:
        present = view.participating(self._round)  # the participation model's, or every idle
        self._round += 1
        chosen = [c for c in present if c in self._models]
        self._pending = set(chosen)
        self._trained = {}
        plan = Plan(
            dispatch=[
                Assignment(c, self.local_steps, self._models[c], sam_rho=self.rho) for c in chosen
            ]
        )
        if not chosen and view.idle and not self._waiting:  # nobody present: try again later
            self._waiting = True
            plan.timers.append(view.now + WAIT)
        return plan

    def _close_round(self, view: ServerView) -> Plan:
        plan = Plan()
        if self._trained and self._network is not None:
            self._network.refresh(sorted(self._trained))
            layers = view.layers if self.variance_correction else None
            mixed, messages = self._network.mix(self._trained, self.gossip_steps, layers)
            self._models.update(mixed)
            plan = Plan(model=self._merge(), messages=messages)
        following = self._new_round(view)
        plan.dispatch, plan.timers = following.dispatch, following.timers
        return plan

    def start(self, view: ServerView) -> Plan:
        self._models = {c: view.model.copy() for c in sorted(view.alive)}
        self._network = Network(self._graph, view.rng)
        return self._new_round(view)

    def on_timer(self, view: ServerView) -> Plan:
        self._waiting = False
        return self._new_round(view) if not self._pending else Plan()

    def on_update(self, update: Update, view: ServerView) -> Plan:
        i = update.client
        if i not in self._pending:
            return Plan()
        self._pending.discard(i)
        self._trained[i] = self._models[i] + update.delta
        return self._close_round(view) if not self._pending else Plan()

    def on_failure(self, client: int, view: ServerView) -> Plan:
        self._models.pop(client, None)
        self._trained.pop(client, None)
        if client not in self._pending:
            return Plan()
        self._pending.discard(client)
        return Plan() if self._pending or not self._models else self._close_round(view)

    def on_rejoin(self, client: int, view: ServerView) -> Plan:
        self._models[client] = self._merge() if self._models else view.model.copy()
        if self._pending:
            return Plan(messages=1)
        plan = self._new_round(view)
        plan.messages = 1
        return plan

    def finish(self, view: ServerView) -> Plan:
        return Plan(model=self._merge()) if self._models else Plan()
