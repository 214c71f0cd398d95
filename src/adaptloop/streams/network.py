"""The link-load simulator: demands routed on a topohub backbone, links that fail and come back.

This is the part of the ``linkload`` stream that knows nothing about learning; graph streams
build on it. Pieces:

- :class:`Backbone`: a topohub topology (``"sndlib/nobel-eu"``, ``"sndlib/abilene"``,
  ``"sndlib/geant"``): node names, undirected links with their lengths (``dist``), the SNDlib
  demand matrix topohub ships, and shortest-path routing by link length (networkx, no ECMP) on
  the links that are up (:meth:`Backbone.route`, cached per set of failed links).
- :func:`parse_failures`: the failure schedule from tables ``{at, link | severity, repair_at}``
  and ``random_failures`` (see :class:`~adaptloop.streams.linkload.LinkLoadStream`).
- :func:`simulate`: demands ``(T, K)`` over origin-destination pairs -> :class:`LinkLoads`: the
  load on every link at every step (traffic crossing it in either direction), which links are
  up, the demand volume that could not be routed, and one event per failure or repair.
  Between two events the routes are fixed, so the loads of all those steps are one product
  ``demands @ P`` with the path-incidence matrix ``P`` (pairs x links).

A failure ``severity="drastic"`` fails the most loaded link, ``"moderate"`` the link nearest
the 25th load percentile, both among the links that are up and whose loss keeps the network
connected, ranked by their load under the *planning* demand (``planning``: one volume per pair;
default: the mean demand over the steps before the failure). A failure that disconnects the
network (a bridge, or a scheduled link on an already cut graph) drops the demands that have no
path while it lasts: they are counted in the event (``unroutable``: pairs) and per step
(:attr:`LinkLoads.dropped`: volume), with a ``RuntimeWarning``.

>>> import numpy as np
>>> net = Backbone.from_topohub("sndlib/abilene")
>>> len(net.node_names), len(net.links), net.node_names[:2]
(12, 15, ('ATLAM5', 'ATLAng'))
>>> pairs, volumes = net.sndlib_demands()
>>> schedule = parse_failures([{"at": 5, "link": ["ATLAng", "HSTNng"]}], net, n=10)
>>> sim = simulate(net, pairs, np.tile(volumes, (10, 1)), schedule)
>>> sim.loads.shape, bool(sim.up[4].all()), int(sim.up[5].sum()), sim.events[0]["link_name"]
((10, 15), True, 14, 'ATLAng-HSTNng')
>>> snap = sim.snapshot(7)  # step 7: loads per link, the failed link marked
>>> snap.failed, float(snap.loads[list(snap.failed)][0]), snap.dropped
((1,), 0.0, 0.0)
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from adaptloop.validation import check_integer

__all__ = [
    "SEVERITIES",
    "Backbone",
    "Failure",
    "LinkLoads",
    "Snapshot",
    "parse_failures",
    "simulate",
]

SEVERITIES = ("drastic", "moderate")


@dataclass(frozen=True)
class Failure:
    """One scheduled change: at step ``at``, ``kind`` ``"fail"`` or ``"repair"``.

    ``target`` is a link index, a severity (``"drastic"``, ``"moderate"``) or ``"random"``
    for a failure, and ``None`` for a repair, which brings back the link of failure number
    ``number`` (the index of its table, random failures numbered after the tables).
    """

    at: int
    kind: str
    target: int | str | None
    number: int


class Backbone:
    """A topohub topology with shortest-path routing on the links that are up.

    Attributes: ``name``; ``node_names``; ``links`` (``(E, 2)`` node ids, topohub's order);
    ``link_names`` (``"u-v"`` by node name); ``lengths`` (``(E,)``); ``graph`` (networkx, on
    node ids, edges carrying ``dist`` and ``index``).
    """

    def __init__(self, name: str, data: Mapping[str, Any]) -> None:
        import networkx as nx

        self.name = name
        self._data = data
        self.node_names = tuple(str(node.get("name", node["id"])) for node in data["nodes"])
        self._ids = {node["id"]: i for i, node in enumerate(data["nodes"])}
        self.links = np.array(
            [[self._ids[e["source"]], self._ids[e["target"]]] for e in data["edges"]]
        )
        self.lengths = np.array([float(e.get("dist", 1.0)) for e in data["edges"]])
        self.link_names = tuple(f"{self.node_names[u]}-{self.node_names[v]}" for u, v in self.links)
        self.graph = nx.Graph()
        self.graph.add_nodes_from(range(len(self.node_names)))
        for e, ((u, v), length) in enumerate(zip(self.links, self.lengths, strict=True)):
            self.graph.add_edge(int(u), int(v), dist=float(length), index=e)
        self._routes: dict[tuple[frozenset[int], bytes], tuple[np.ndarray, np.ndarray]] = {}

    @classmethod
    def from_topohub(cls, name: str) -> Backbone:
        """The topology ``name`` from the ``topohub`` package (offline)."""
        try:
            import topohub
        except ImportError as error:  # pragma: no cover - topohub is a dependency
            raise ImportError("the linkload stream needs topohub: pip install topohub") from error
        return cls(name, topohub.get(name))

    def sndlib_demands(self) -> tuple[np.ndarray, np.ndarray]:
        """The SNDlib demand matrix topohub ships: ``pairs`` ``(K, 2)`` node ids (positive,
        off-diagonal entries only) and their ``volumes`` ``(K,)``."""
        matrix = self._data["graph"]["demands"]
        ids = self._ids
        entries = [(ids[s], ids[t], float(v)) for s, row in matrix.items() for t, v in row.items()]
        entries = [(s, t, v) for s, t, v in entries if s != t and v > 0]
        pairs = np.array([(s, t) for s, t, _ in entries], dtype=np.int64)
        return pairs, np.array([v for _, _, v in entries])

    def node(self, value: object, where: str) -> int:
        """A node id from a name or an id; ``ValueError`` naming ``where`` otherwise."""
        if isinstance(value, str) and value in self.node_names:
            return self.node_names.index(value)
        if (
            not isinstance(value, bool)
            and isinstance(value, (int, np.integer))
            and 0 <= value < len(self.node_names)
        ):
            return int(value)
        raise ValueError(
            f"{where}: unknown node {value!r}; nodes of {self.name}: "
            f"{', '.join(self.node_names)} (or ids 0..{len(self.node_names) - 1})"
        )

    def link_index(self, value: object, where: str = "link") -> int:
        """The index of the link between a pair of nodes ``[u, v]`` (names or ids)."""
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise ValueError(f"{where} must be a pair of nodes [u, v], got {value!r}")
        u, v = (self.node(x, where) for x in value)
        if not self.graph.has_edge(u, v):
            raise ValueError(
                f"{where}: no link between {self.node_names[u]} and {self.node_names[v]}"
            )
        return int(self.graph.edges[u, v]["index"])

    def surviving(self, failed: frozenset[int]) -> Any:
        """The networkx graph without the ``failed`` links."""
        graph = self.graph.copy()
        graph.remove_edges_from([tuple(self.links[e]) for e in failed])
        return graph

    def route(self, pairs: np.ndarray, failed: frozenset[int]) -> tuple[np.ndarray, np.ndarray]:
        """Path-incidence matrix ``(K, E)`` of the shortest paths of ``pairs`` on the surviving
        graph, and the mask of the pairs that have a path."""
        key = (failed, np.ascontiguousarray(pairs).tobytes())
        if key not in self._routes:
            import networkx as nx

            graph = self.surviving(failed)
            paths = dict(nx.all_pairs_dijkstra_path(graph, weight="dist"))
            incidence = np.zeros((len(pairs), len(self.links)))
            routed = np.zeros(len(pairs), dtype=bool)
            for k, (s, t) in enumerate(pairs):
                path = paths[int(s)].get(int(t))
                if path is None:
                    continue
                routed[k] = True
                hops = [
                    graph.edges[a, b]["index"] for a, b in zip(path[:-1], path[1:], strict=True)
                ]
                incidence[k, hops] = 1.0
            self._routes[key] = (incidence, routed)
        return self._routes[key]


@dataclass(frozen=True)
class Snapshot:
    """The backbone at one step: ``loads`` ``(E,)`` per link (0 on a failed link), ``up``
    ``(E,)`` bool, ``failed`` (indices of the links down), ``dropped`` (demand volume with no
    path)."""

    step: int
    loads: np.ndarray
    up: np.ndarray
    dropped: float

    @property
    def failed(self) -> tuple[int, ...]:
        return tuple(int(e) for e in np.flatnonzero(~self.up))


@dataclass(frozen=True)
class LinkLoads:
    """A simulation: row ``r`` is step ``start + r``.

    ``loads`` ``(T, E)``: traffic on every link (either direction), in the demands' unit;
    ``up`` ``(T, E)`` bool: which links are up; ``dropped`` ``(T,)``: demand volume that had no
    path; ``events``: one dict per failure / repair (``at``, ``kind``, ``link``, ``link_name``,
    ``number``, ``unroutable``: pairs without a path after it).
    """

    loads: np.ndarray
    up: np.ndarray
    dropped: np.ndarray
    events: tuple[dict, ...]
    start: int = 0

    def snapshot(self, step: int) -> Snapshot:
        """The backbone at ``step`` (``start <= step < start + T``)."""
        row = check_integer(step, "step", self.start, self.start + len(self.loads) - 1)
        row -= self.start
        return Snapshot(step, self.loads[row], self.up[row], float(self.dropped[row]))

    def failed(self, step: int) -> frozenset[int]:
        """The indices of the links down at ``step``."""
        return frozenset(self.snapshot(step).failed)


def parse_failures(
    failures: object,
    backbone: Backbone,
    n: int,
    random_failures: int = 0,
    rng: np.random.Generator | None = None,
) -> list[Failure]:
    """The schedule of a stream of ``n`` steps, in step order (repairs before failures at a
    step). Tables: ``{at, link: [u, v]}`` or ``{at, severity}``, optionally ``repair_at``;
    ``random_failures`` more at steps drawn by ``rng`` in the middle half (``n // 4 ..
    3n // 4``); :func:`simulate` draws their links from the same generator.
    ``ValueError`` naming ``failures[i].key`` for a bad table."""
    if isinstance(failures, (str, bytes, Mapping)) or not isinstance(failures, Sequence):
        raise ValueError(f"failures must be a list of tables, got {failures!r}")
    schedule: list[Failure] = []
    for i, spec in enumerate(failures):
        where = f"failures[{i}]"
        if not isinstance(spec, Mapping):
            raise ValueError(f"{where} must be a table with 'at', got {spec!r}")
        unknown = sorted(set(spec) - {"at", "link", "severity", "repair_at"})
        if unknown:
            raise ValueError(
                f"{where} has unknown key(s) {unknown}; keys: at, link, severity, repair_at"
            )
        at = check_integer(spec.get("at"), f"{where}.at", 1, n - 1)
        if ("link" in spec) == ("severity" in spec):
            raise ValueError(f"{where} needs exactly one of 'link' or 'severity'")
        if "link" in spec:
            target: int | str = backbone.link_index(spec["link"], f"{where}.link")
        else:
            target = spec["severity"]
            if target not in SEVERITIES:
                raise ValueError(
                    f"{where}.severity must be 'drastic' or 'moderate', got {target!r}"
                )
        schedule.append(Failure(at, "fail", target, i))
        if "repair_at" in spec:
            repair = check_integer(spec["repair_at"], f"{where}.repair_at", at + 1, n - 1)
            schedule.append(Failure(repair, "repair", None, i))
    if random_failures and rng is None:
        raise ValueError("random_failures needs a random generator (rng)")
    lo, hi = max(1, n // 4), max(2, 3 * n // 4)
    for j in range(random_failures):
        at = int(rng.integers(lo, hi))  # type: ignore[union-attr]
        schedule.append(Failure(at, "fail", "random", len(failures) + j))
    return sorted(schedule, key=lambda f: (f.at, f.kind == "fail", f.number))


def simulate(
    backbone: Backbone,
    pairs: np.ndarray,
    demands: np.ndarray,
    schedule: Sequence[Failure] = (),
    start: int = 0,
    planning: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
) -> LinkLoads:
    """Route ``demands`` ``(T, K)`` (row ``r`` is step ``start + r``; column ``k`` the pair
    ``pairs[k]``) on ``backbone`` through the ``schedule`` (see the module doc).

    ``planning`` (``(K,)``) ranks the links for severity failures; ``rng`` draws the links of
    random failures (pass the generator that drew their steps in :func:`parse_failures`)."""
    n_rows, n_links = len(demands), len(backbone.links)
    if rng is None and any(f.target == "random" for f in schedule):
        raise ValueError("random failures need the random generator that drew them (rng)")
    loads = np.empty((n_rows, n_links))
    up = np.ones((n_rows, n_links), dtype=bool)
    dropped = np.zeros(n_rows)
    events: list[dict] = []
    failed: frozenset[int] = frozenset()
    end = start + n_rows
    changes = sorted({start, end, *(f.at for f in schedule)})
    for lo, hi in zip(changes[:-1], changes[1:], strict=True):
        for change in (f for f in schedule if f.at == lo):
            failed = _apply(backbone, pairs, demands, start, change, failed, events, planning, rng)
        rows = slice(lo - start, hi - start)
        incidence, routed = backbone.route(pairs, failed)
        loads[rows] = demands[rows] @ incidence
        up[rows, list(failed)] = False
        dropped[rows] = demands[rows][:, ~routed].sum(axis=1)
    return LinkLoads(loads, up, dropped, tuple(events), start)


def _apply(
    backbone: Backbone,
    pairs: np.ndarray,
    demands: np.ndarray,
    start: int,
    change: Failure,
    failed: frozenset[int],
    events: list[dict],
    planning: np.ndarray | None,
    rng: np.random.Generator | None,
) -> frozenset[int]:  # one change of the schedule, recorded in ``events``
    if change.kind == "repair":
        link = next(ev["link"] for ev in events if ev["number"] == change.number)
        failed = failed - {link}
    else:
        if isinstance(change.target, int):
            link = change.target
        else:
            reference = planning
            if reference is None:
                reference = demands[: max(1, change.at - start)].mean(axis=0)
            link = _choose(backbone, pairs, reference, change.target, failed, rng)
        if link in failed:
            raise ValueError(
                f"failures[{change.number}]: link {backbone.link_names[link]} is already down "
                f"at {change.at}"
            )
        failed = failed | {link}
    routed = backbone.route(pairs, failed)[1]
    events.append(
        {
            "at": change.at,
            "kind": "failure" if change.kind == "fail" else "repair",
            "link": link,
            "link_name": backbone.link_names[link],
            "number": change.number,
            "unroutable": int((~routed).sum()),
        }
    )
    if change.kind == "fail" and not routed.all():
        warnings.warn(
            f"linkload: failing {backbone.link_names[link]} at step {change.at} disconnects the "
            f"network; {int((~routed).sum())} demand(s) are dropped while it is down",
            RuntimeWarning,
            stacklevel=4,
        )
    return failed


def _choose(
    backbone: Backbone,
    pairs: np.ndarray,
    reference: np.ndarray,
    severity: str,
    failed: frozenset[int],
    rng: np.random.Generator | None,
) -> int:
    """A link to fail by severity, among the up links whose loss keeps the graph connected."""
    import networkx as nx

    graph = backbone.surviving(failed)
    bridges = {frozenset(edge) for edge in nx.bridges(graph)}
    candidates = sorted(
        int(graph.edges[u, v]["index"]) for u, v in graph.edges if frozenset((u, v)) not in bridges
    )
    if not candidates:
        raise ValueError("no link can fail without disconnecting the network")
    if severity == "random":
        return int(rng.choice(candidates))  # type: ignore[union-attr]
    load = (reference @ backbone.route(pairs, failed)[0])[candidates]
    if severity == "drastic":
        return candidates[int(np.argmax(load))]
    target = np.percentile(load, 25)
    return candidates[int(np.argmin(np.abs(load - target)))]
