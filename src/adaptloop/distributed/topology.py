"""Who talks to whom without a server: communication graphs and their mixing matrices.

A decentralised rule (:mod:`~adaptloop.distributed.rules`: gossip, DFedSAM, DADAO) lets a node
exchange models with its *neighbours* only. :class:`Topology` names the graph an experiment
chooses — ``complete``, ``ring``, ``torus`` (a 2-D grid with wrap-around, ``rows x cols`` as
square as ``n`` allows), ``regular`` (random ``degree``-regular), ``erdos_renyi`` (each edge with
probability ``edge_probability``) — and whether it is drawn again every round
(``time_varying``). Random graphs are redrawn until connected (a disconnected graph never
reaches consensus). :func:`metropolis_hastings` gives the mixing matrix of a graph,

    W_ij = 1 / (1 + max(d_i, d_j))   for every edge (i, j),   W_ii = 1 - sum_{j != i} W_ij,

(Xiao & Boyd, "Fast linear iterations for distributed averaging", 2004; Boyd et al.,
"Randomized gossip algorithms", 2006): symmetric, doubly stochastic, with positive diagonal, so
``x <- W x`` keeps the average and converges to it on a connected graph at the rate of the
second largest eigenvalue modulus (:func:`spectral_gap` is one minus it).

>>> import numpy as np
>>> adj = Topology("ring").adjacency(6, np.random.default_rng(0))
>>> adj.sum(axis=1).tolist()
[2, 2, 2, 2, 2, 2]
>>> W = metropolis_hastings(adj)
>>> bool(np.allclose(W.sum(axis=0), 1) and np.allclose(W, W.T)), round(float(W[0, 1]), 4)
(True, 0.3333)
>>> round(spectral_gap(W), 3), is_connected(adj)
(0.333, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
from annotated_types import Gt, Le

from adaptloop.distributed.aggregate import variance_corrected
from adaptloop.parameters import declared
from adaptloop.validation import Count, Flag, Real

TopologyKind = Literal["complete", "ring", "torus", "regular", "erdos_renyi"]
"""The graphs a decentralised rule can gossip over (see :class:`Topology`)."""

EdgeProbability = Annotated[Real, Gt(0), Le(1)]
"""An Erdős–Rényi graph's edge probability: in (0, 1]."""

MAX_DRAWS = 100
"""Random graphs drawn at most before a disconnected setting is refused."""


def is_connected(adj: np.ndarray) -> bool:
    """Whether the undirected graph of adjacency matrix ``adj`` is connected (one node is).

    >>> is_connected(np.array([[0, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=bool))
    False
    """
    n = len(adj)
    if n <= 1:
        return True
    seen = np.zeros(n, dtype=bool)
    frontier = [0]
    seen[0] = True
    while frontier:
        nxt = np.flatnonzero(adj[frontier].any(axis=0) & ~seen)
        seen[nxt] = True
        frontier = nxt.tolist()
    return bool(seen.all())


def metropolis_hastings(adj: np.ndarray) -> np.ndarray:
    """The Metropolis–Hastings mixing matrix of the graph ``adj`` (see the module docstring).

    >>> metropolis_hastings(np.array([[0, 1], [1, 0]], dtype=bool)).tolist()
    [[0.5, 0.5], [0.5, 0.5]]
    """
    adj = np.asarray(adj, dtype=bool)
    degree = adj.sum(axis=1)
    W = np.where(adj, 1.0 / (1.0 + np.maximum.outer(degree, degree)), 0.0)
    np.fill_diagonal(W, 0.0)
    np.fill_diagonal(W, 1.0 - W.sum(axis=1))
    return W


def spectral_gap(W: np.ndarray) -> float:
    """``1 - lambda``, ``lambda`` the second largest eigenvalue modulus of the symmetric ``W``
    (the consensus rate of ``x <- W x``; 1 for exact averaging, 0 for a disconnected graph).

    >>> round(spectral_gap(np.full((4, 4), 0.25)), 6)
    1.0
    """
    if len(W) <= 1:
        return 1.0
    moduli = np.sort(np.abs(np.linalg.eigvalsh(W)))
    return float(max(0.0, 1.0 - moduli[-2]))


def torus_shape(n: int) -> tuple[int, int]:
    """``(rows, cols)`` of the squarest grid with ``n`` nodes.

    >>> torus_shape(32), torus_shape(7)
    ((4, 8), (1, 7))
    """
    rows = int(math.isqrt(n))
    while n % rows:
        rows -= 1
    return rows, n // rows


@declared
@dataclass(frozen=True)
class Topology:
    """A communication graph over a rule's nodes (see the module docstring).

    ``degree`` is the random regular graph's degree (capped at ``n - 1``; ``n * degree`` must
    be even); ``edge_probability`` the Erdős–Rényi graph's; ``time_varying`` draws a new graph
    every round (for the fixed graphs ring, torus and complete, a new random placement of the
    nodes on them).

    >>> Topology("regular", degree=3).adjacency(8, np.random.default_rng(1)).sum(axis=1).tolist()
    [3, 3, 3, 3, 3, 3, 3, 3]
    >>> Topology("star")
    Traceback (most recent call last):
    ...
    adaptloop.parameters.ParameterError: Topology.kind: must be 'complete', 'ring', 'torus', \
'regular' or 'erdos_renyi', got 'star'
    """

    kind: TopologyKind = "ring"
    degree: Count = 4
    edge_probability: EdgeProbability = 0.2
    time_varying: Flag = False

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        adj = np.zeros((n, n), dtype=bool)
        if self.kind == "complete":
            adj[:] = True
        elif self.kind == "ring":
            i = np.arange(n)
            adj[i, (i + 1) % n] = adj[(i + 1) % n, i] = True
        elif self.kind == "torus":
            rows, cols = torus_shape(n)
            for i in range(n):
                r, c = divmod(i, cols)
                for j in (r * cols + (c + 1) % cols, ((r + 1) % rows) * cols + c):
                    adj[i, j] = adj[j, i] = True
        elif self.kind == "regular":
            import networkx as nx

            k = min(self.degree, n - 1)
            if (n * k) % 2:
                raise ValueError(
                    f"topology: a {k}-regular graph on {n} nodes does not exist (n * degree must "
                    "be even); change degree"
                )
            graph = nx.random_regular_graph(k, n, seed=int(rng.integers(2**31)))
            for i, j in graph.edges:
                adj[i, j] = adj[j, i] = True
        else:
            adj = np.triu(rng.random((n, n)) < self.edge_probability, 1)
            adj = adj | adj.T
        np.fill_diagonal(adj, False)
        return adj

    def adjacency(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """A connected graph on ``n`` nodes as a boolean adjacency matrix (no self-loops);
        random graphs and the placement of a time-varying fixed graph are drawn with ``rng``."""
        for _ in range(MAX_DRAWS):
            adj = self._draw(n, rng)
            if self.time_varying and self.kind in ("ring", "torus"):
                order = rng.permutation(n)
                adj = adj[np.ix_(order, order)]
            if is_connected(adj):
                return adj
        raise ValueError(
            f"topology: {MAX_DRAWS} draws of a {self.kind} graph on {n} nodes were all "
            "disconnected; raise edge_probability or degree"
        )


class Network:
    """A topology over a set of nodes at run time: the current graph and mixing matrix.

    ``nodes`` are client indices; :meth:`refresh` draws the graph again where the topology is
    time-varying (or when the nodes changed: a failed node leaves the graph, which is drawn
    again over the others, connected). :meth:`mix` applies ``W`` ``steps`` times to the nodes'
    models and returns the messages sent (every node sends its model to each neighbour per
    step).

    >>> net = Network(Topology("ring"), np.random.default_rng(0))
    >>> net.refresh([0, 1, 2, 3])
    >>> models = {i: np.array([float(i)]) for i in range(4)}
    >>> mixed, messages = net.mix(models, steps=1)
    >>> [round(float(m[0]), 4) for m in mixed.values()], messages
    ([1.3333, 1.0, 2.0, 1.6667], 8)
    """

    def __init__(self, topology: Topology, rng: np.random.Generator) -> None:
        self.topology = topology
        self.rng = rng
        self.nodes: list[int] = []
        self.adj = np.zeros((0, 0), dtype=bool)
        self.W = np.zeros((0, 0))

    def refresh(self, nodes: list[int]) -> None:
        """The graph over ``nodes`` (sorted): kept if fixed and the nodes are the same."""
        nodes = sorted(nodes)
        if nodes == self.nodes and not self.topology.time_varying:
            return
        self.nodes = nodes
        self.adj = self.topology.adjacency(len(nodes), self.rng)
        self.W = metropolis_hastings(self.adj)

    def neighbours(self, node: int) -> list[int]:
        """The current neighbours of ``node`` (client indices)."""
        row = self.adj[self.nodes.index(node)]
        return [self.nodes[j] for j in np.flatnonzero(row)]

    @property
    def edges(self) -> list[tuple[int, int]]:
        """The undirected edges ``(i, j)``, ``i < j``, as client indices."""
        rows, cols = np.nonzero(np.triu(self.adj, 1))
        return [(self.nodes[a], self.nodes[b]) for a, b in zip(rows, cols, strict=True)]

    def mix(
        self,
        models: dict[int, np.ndarray],
        steps: int = 1,
        layers: tuple[tuple[int, int], ...] | None = None,
    ) -> tuple[dict[int, np.ndarray], int]:
        """``x <- W x`` ``steps`` times over the network's nodes (each in ``models``); returns
        the mixed models and the number of model-sized messages sent. With ``layers`` (spans,
        ``()``: the whole vector), every node's merge is variance-corrected
        (:func:`~adaptloop.distributed.aggregate.variance_corrected`, weights ``W_i.``)."""
        X = np.stack([models[i] for i in self.nodes])
        for _ in range(steps):
            mixed = self.W @ X
            if layers is not None:
                rows = list(X)
                mixed = np.stack(
                    [variance_corrected(mixed[k], rows, self.W[k], layers) for k in range(len(X))]
                )
            X = mixed
        messages = steps * int(self.adj.sum())
        return {i: X[k] for k, i in enumerate(self.nodes)}, messages
