"""DADAO: decoupled accelerated decentralised asynchronous optimisation (Nabli & Oyallon,
"DADAO: Decoupled Accelerated Decentralized Asynchronous Optimization", ICML 2023, Sec. 3,
Algorithm 1; constants as in the authors' code).

There is no server and no round. Computation and communication are decoupled: every node takes
gradient steps on its own clock, and every edge of the ``topology`` communicates at the instants
of a Poisson process; between events each node's six variables ``(x, x~, y, y~, z, z~)`` follow
the linear ODE of the paper (Eq. 6):

    dx = eta (x~ - x),  dx~ = eta (x - x~),  dy = alpha (y~ - y),
    dy~ = -theta (nu x~ + y + z),  dz = alpha (z~ - z),  dz~ = alpha~ (z - z~),

integrated exactly (a matrix exponential) up to the next event of the node. At a gradient event
of node ``i``, with ``g = grad f_i(x_i) - nu x_i - y~_i``:

    x_i -= gamma g,   x~_i -= gamma~ g,   y~_i += (delta + delta~) g;

at a communication event on edge ``(i, j)``, with ``m = (y_i + z_i) - (y_j + z_j)``:

    z_i -= beta m,  z~_i -= beta~ m,  z_j += beta m,  z~_j += beta~ m   (two messages),

where ``nu = mu / 2``, ``alpha = sqrt(nu / L) / 4``, ``alpha~ = eta = sqrt(nu / L) / 8``,
``theta = sqrt(L / nu) / 2``, ``gamma = 1 / (4 L)``, ``gamma~ = 1 / (4 sqrt(L nu))``,
``delta = sqrt(nu / L) / 4``, ``delta~ = 1``, ``beta = 1 / 2``,
``beta~ = 2 (chi_1 / lambda) sqrt(L / nu)``, ``chi_1`` the inverse of the smallest positive
eigenvalue of the graph's Laplacian weighted by the edges' probabilities (``1 / |E|`` each) and
``lambda`` the communication rate (``chi_1 / lambda``: the rate-weighted Laplacian's). The
communication rate of the whole graph is ``comm_rate`` events per time unit (default: the
paper's ``sqrt(2 chi_1 chi_2)``, ``chi_2`` the graph's largest edge resistance; well below it
the method diverges, as the paper's minimal rate says), each on an edge drawn uniformly:
independent Poisson clocks of equal rates on the edges. ``mu`` (``strong_convexity``) and
``L`` (``smoothness``) are the problem's constants as the paper assumes them known.

Deviations: the learner is a black box, so node ``i``'s gradient is read off one local step of
its client, ``grad f_i(x) = -Delta / lr`` (``lr``: the clients' step per unit of gradient, exact
for plain SGD: a mini-batch learner's rate, a per-sample learner's rate times the batch size);
a node's gradient clock is its client's speed (it computes back to back, each step taking its
simulated duration, not a Poisson clock), and the gradient is taken at ``x_i`` when its task was
sent and applied when it arrives; a time-varying topology is drawn again every ``|E|``
communications; only the model's parameter arrays follow the dynamics (its scalar counters and
pooled statistics are kept as they started: :attr:`ServerView.layers`). The server evaluates
the average of the nodes' ``x`` (the records' ``accuracy_local``: the nodes' own ``x``).

>>> import numpy as np
>>> from adaptloop.distributed.rules.base import ServerView, Update
>>> rule = DADAO(topology="ring", lr=0.1, comm_rate=5.0)
>>> view = ServerView(0.0, np.zeros(2), 0, frozenset({0, 1, 2}), frozenset(), np.ones(3) / 3,
...                   np.random.default_rng(0))
>>> plan = rule.start(view)
>>> [a.steps for a in plan.dispatch], len(plan.timers)
([1, 1, 1], 1)
>>> first = plan.timers[0]
>>> plan = rule.on_update(Update(0, 0, np.array([0.1, 0.0]), 0, 8, 1, 0.0, 1.0), view)
>>> bool(plan.model[0] > 0), plan.dispatch[0].client
(True, 0)
>>> view = ServerView(first, plan.model, 1, view.alive, frozenset({0, 1, 2}),
...                   view.weights, view.rng)
>>> rule.on_timer(view).messages
2
"""

from __future__ import annotations

import math

import numpy as np
from scipy.linalg import expm

from adaptloop.distributed.rules.base import AggregationRule, Assignment, Plan, ServerView, Update
from adaptloop.distributed.rules.base import registry as rules
from adaptloop.distributed.topology import EdgeProbability, Network, Topology, TopologyKind
from adaptloop.validation import Count, Flag, PositiveReal

X, XT, Y, YT, Z, ZT = range(6)


def graph_constants(adj: np.ndarray) -> tuple[float, float]:
    """``(chi_1, chi_2)`` of a connected graph under uniform edge sampling: the inverse of the
    smallest positive eigenvalue of ``Laplacian / |E|`` and the largest edge resistance
    ``(e_i - e_j)^T L^+ (e_i - e_j) / 2`` under it.

    >>> chi_1, chi_2 = graph_constants(np.array([[0, 1], [1, 0]], dtype=bool))
    >>> round(chi_1, 6), round(chi_2, 6)
    (0.5, 0.5)
    """
    adj = np.asarray(adj, dtype=np.float64)
    edges = np.argwhere(np.triu(adj, 1) > 0)
    laplacian = (np.diag(adj.sum(axis=1)) - adj) / len(edges)
    eigenvalues = np.linalg.eigvalsh(laplacian)
    chi_1 = 1.0 / float(eigenvalues[1])
    pinv = np.linalg.pinv(laplacian)
    chi_2 = max(0.5 * (pinv[i, i] + pinv[j, j] - 2 * pinv[i, j]) for i, j in edges)
    return chi_1, float(chi_2)


@rules.register("dadao")
class DADAO(AggregationRule):
    """Asynchronous accelerated gossip with decoupled gradient and communication clocks (see
    the module docstring)."""

    decentralised = True

    def __init__(
        self,
        topology: TopologyKind = "ring",
        degree: Count = 4,
        edge_probability: EdgeProbability = 0.2,
        time_varying: Flag = False,
        lr: PositiveReal = 0.1,
        strong_convexity: PositiveReal = 1.0,
        smoothness: PositiveReal | None = None,
        comm_rate: PositiveReal | None = None,
    ) -> None:
        self.local_steps = 1
        self.topology, self.degree = topology, degree
        self.edge_probability, self.time_varying = edge_probability, time_varying
        self.lr = lr
        self.strong_convexity = strong_convexity
        self.smoothness = smoothness
        self.comm_rate = comm_rate
        self._graph = Topology(topology, degree, edge_probability, time_varying)
        L = smoothness if smoothness is not None else 1.0 / lr
        nu = strong_convexity / 2.0
        root = math.sqrt(nu / L)
        self._L, self._nu = L, nu
        alpha, alpha_t, eta, theta = root / 4, root / 8, root / 8, 1 / (2 * root)
        ode = np.zeros((6, 6))
        ode[X, X], ode[X, XT] = -eta, eta
        ode[XT, X], ode[XT, XT] = eta, -eta
        ode[Y, Y], ode[Y, YT] = -alpha, alpha
        ode[YT, XT], ode[YT, Y], ode[YT, Z] = -theta * nu, -theta, -theta
        ode[Z, Z], ode[Z, ZT] = -alpha, alpha
        ode[ZT, Z], ode[ZT, ZT] = alpha_t, -alpha_t
        self._ode = ode
        self._gamma, self._gamma_t = 1 / (4 * L), 1 / (4 * math.sqrt(L * nu))
        self._delta = root / 4 + 1.0  # delta + delta~
        self._beta, self._beta_t = 0.5, 0.0
        self._rate = 1.0
        self._state: dict[int, np.ndarray] = {}  # node -> (6, d): x, x~, y, y~, z, z~
        self._base = np.zeros(0)  # the vector the parameters sit in
        self._index = np.zeros(0, dtype=np.int64)  # where they sit
        self._last: dict[int, float] = {}
        self._network: Network | None = None
        self._events = 0

    def _vector(self, x: np.ndarray) -> np.ndarray:
        out = self._base.copy()
        out[self._index] = x
        return out

    def node_models(self) -> dict[int, np.ndarray]:
        return {i: self._vector(s[X]) for i, s in self._state.items()}

    def _merge(self) -> np.ndarray:
        return self._vector(np.mean([self._state[i][X] for i in sorted(self._state)], axis=0))

    def _flow(self, i: int, now: float) -> None:
        """Node ``i``'s variables along the ODE from its last event to ``now``."""
        dt = now - self._last[i]
        if dt > 0:
            self._state[i] = expm(self._ode * dt) @ self._state[i]
        self._last[i] = max(now, self._last[i])

    def _set_graph(self) -> None:
        assert self._network is not None
        chi_1, chi_2 = graph_constants(self._network.adj)
        self._rate = self.comm_rate or math.sqrt(2 * chi_1 * chi_2)
        # chi_1 of the rate-weighted Laplacian: that of the edge probabilities over the rate
        self._beta_t = 2 * (chi_1 / self._rate) * math.sqrt(self._L / self._nu)

    def _next_timer(self, view: ServerView) -> list[float]:
        return [view.now + float(view.rng.exponential(1.0 / self._rate))]

    def start(self, view: ServerView) -> Plan:
        self._base = view.model.copy()
        spans = view.layers or ((0, len(view.model)),)
        self._index = np.concatenate([np.arange(a, b) for a, b in spans])
        for c in sorted(view.alive):
            state = np.zeros((6, len(self._index)))
            state[X] = view.model[self._index]
            self._state[c], self._last[c] = state, view.now
        self._network = Network(self._graph, view.rng)
        self._network.refresh(list(range(len(view.weights))))
        self._set_graph()
        dispatch = [Assignment(c, 1, self._vector(self._state[c][X])) for c in view.idle]
        return Plan(dispatch=dispatch, timers=self._next_timer(view))

    def on_update(self, update: Update, view: ServerView) -> Plan:
        i = update.client
        self._flow(i, view.now)
        s = self._state[i]
        g = -update.delta[self._index] / self.lr - self._nu * s[X] - s[YT]
        s[X] -= self._gamma * g
        s[XT] -= self._gamma_t * g
        s[YT] += self._delta * g
        return Plan(model=self._merge(), dispatch=[Assignment(i, 1, self._vector(s[X]))])

    def on_timer(self, view: ServerView) -> Plan:
        assert self._network is not None
        self._events += 1
        edges = self._network.edges
        if self.time_varying and self._events % len(edges) == 0:
            self._network.refresh(self._network.nodes)
            self._set_graph()
            edges = self._network.edges
        i, j = edges[int(view.rng.integers(len(edges)))]
        plan = Plan(timers=self._next_timer(view))
        if i not in view.alive or j not in view.alive:
            return plan
        self._flow(i, view.now)
        self._flow(j, view.now)
        si, sj = self._state[i], self._state[j]
        m = (si[Y] + si[Z]) - (sj[Y] + sj[Z])
        si[Z] -= self._beta * m
        si[ZT] -= self._beta_t * m
        sj[Z] += self._beta * m
        sj[ZT] += self._beta_t * m
        plan.messages = 2
        return plan

    def on_rejoin(self, client: int, view: ServerView) -> Plan:
        state = np.zeros_like(self._state[client])
        state[X] = np.mean([s[X] for s in self._state.values()], axis=0)
        self._state[client], self._last[client] = state, view.now
        return Plan(dispatch=[Assignment(client, 1, self._vector(state[X]))], messages=1)

    def finish(self, view: ServerView) -> Plan:
        return Plan(model=self._merge()) if self._state else Plan()
