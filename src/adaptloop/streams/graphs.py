"""Temporal graph streams: timestamped edge events, snapshots, and the measures of how a graph
drifts over time (TGX-style), plus the link-load backbone as a stream of graph snapshots.

Three layers, each usable alone:

- **Edge events** (:class:`EdgeEvents`, :func:`read_edge_list`): a timestamped edge list
  ``(src, dst, time)`` read from a CSV file (gzip inferred; TGB's ``ts`` / ``user_id`` /
  ``item_id`` headers and SNAP-style ``src,dst,time`` are recognised), node ids mapped to
  ``0..n_nodes - 1`` in order of first appearance. :meth:`EdgeEvents.discretise` maps every
  event to a snapshot (``"hourly"``, ``"daily"``, ``"weekly"`` or a number of seconds, counted
  from the first event, as TGX's ``discretize``); :meth:`EdgeEvents.subsample` keeps the events
  among a random fraction of the nodes (TGX's node subsampling).
- **Measures over time** (:func:`graph_measures`): per snapshot, events, distinct edges, active
  nodes, average degree, new and repeated edges, TGX's novelty (share of a snapshot's edges
  never seen before) and reuse (share seen before); :func:`edge_presence` gives the edge x
  snapshot matrix behind a Temporal Edge Traffic (TET) plot, the new / repeated counts the
  Temporal Edge Appearance (TEA) plot (:mod:`adaptloop.report.figures.graphs` draws both).
- **Streams** (rows of a learner's batches, registered):

  - ``"edge_events"`` (:class:`EdgeEventStream`): temporal link prediction on events. Row
    layout ``[time, src, dst]``; every event is a group of ``1 + negatives`` rows, the true
    edge first (label 1), then ``negatives`` corrupted destinations for the same source and
    time (label 0), drawn as TGB does: ``historical`` of them among the destinations the
    source reached before (``hist_rnd``), the rest uniformly at random (never the true one).
    With ``unit`` set, events become snapshots: each distinct edge of a snapshot is one group
    and ``time`` is the snapshot index; :attr:`GraphStream.bounds` are the snapshots' row
    ranges.
  - ``"linkload_graph"`` (:class:`LinkLoadGraphStream`): the link-load simulator
    (:mod:`adaptloop.streams.linkload`, built through its public attributes) as one snapshot
    per step, one row per link: ``[load_t-L .. load_t-1, tod_sin, tod_cos, up, src, dst]``,
    target ``load_t``. Loads are normalised per link by its mean before the first failure;
    ``up`` (and the graph a learner builds from the rows with ``up == 1``) says whether the
    link carried traffic at step ``t - 1``: the topology the operator knows when forecasting
    step ``t``. A failed link stays a row (load 0, ``up`` 0 from the step after its failure),
    so every snapshot has the same ``n_links`` rows and ``batch_size = n_links`` makes
    ``prequential`` score one snapshot per batch. ``info.drifts`` are at ``failure step x
    n_links``.

Graph learners (:mod:`adaptloop.learners.models.graph`) read the endpoints from the last two
columns of a row, as node ids.

>>> import numpy as np
>>> events = EdgeEvents.from_arrays([1, 2, 1, 3], [2, 3, 2, 1], [0, 10, 90_000, 90_050])
>>> events.n_nodes, events.discretise("daily").tolist()
(3, [0, 0, 1, 1])
>>> m = graph_measures(events, "daily")
>>> m["n_edges"].tolist(), m["new_edges"].tolist(), m["repeated_edges"].tolist()
([2, 2], [2, 1], [0, 1])
>>> stream = EdgeEventStream(events=events, negatives=2, seed=0)
>>> X, y = stream.arrays()
>>> X.shape, y.tolist()[:3], stream.group_size
((12, 3), [1, 0, 0], 3)
"""

from __future__ import annotations

import gzip
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from adaptloop.streams.base import ArrayStream, Drift, registry
from adaptloop.validation import Count, Fraction, NonNegativeInt, Seed

__all__ = [
    "UNITS",
    "EdgeEventStream",
    "EdgeEvents",
    "GraphStream",
    "LinkLoadGraphStream",
    "edge_presence",
    "graph_measures",
    "read_edge_list",
    "unit_seconds",
]

UNITS: dict[str, int] = {"hourly": 3600, "daily": 86_400, "weekly": 604_800}
"""Named discretisation units, in seconds (TGX's ``h``, ``d``, ``W``)."""

UNIT_NAMES = {"hourly": "hour", "daily": "day", "weekly": "week"}

Unit = Literal["hourly", "daily", "weekly"]
_SRC = ("src", "source", "u", "user_id", "from", "sender")
_DST = ("dst", "target", "v", "item_id", "to", "receiver", "destination")
_TIME = ("time", "ts", "timestamp", "t")


def unit_seconds(unit: str | float) -> float:
    """A discretisation unit in seconds: a name of :data:`UNITS` or a positive number.

    >>> unit_seconds("weekly"), unit_seconds(60)
    (604800, 60)
    >>> unit_seconds("monthly")
    Traceback (most recent call last):
    ...
    ValueError: unit must be one of ['hourly', 'daily', 'weekly'] or seconds > 0, got 'monthly'
    """
    if isinstance(unit, str) and unit in UNITS:
        return UNITS[unit]
    if not isinstance(unit, (str, bool)) and isinstance(unit, (int, float)) and unit > 0:
        return unit
    raise ValueError(f"unit must be one of {list(UNITS)} or seconds > 0, got {unit!r}")


@dataclass(frozen=True)
class EdgeEvents:
    """Timestamped edges in time order: ``src``, ``dst`` (int64 node indices), ``time``
    (float64, non-decreasing), ``node_ids`` (the original id of each index)."""

    src: np.ndarray
    dst: np.ndarray
    time: np.ndarray
    node_ids: np.ndarray
    name: str = "edges"

    @classmethod
    def from_arrays(
        cls, src: Sequence[Any], dst: Sequence[Any], time: Sequence[float], name: str = "edges"
    ) -> EdgeEvents:
        """Events from three equal-length sequences (any hashable node ids), sorted stably by
        time; node indices follow the order of first appearance."""
        src, dst = np.asarray(src), np.asarray(dst)
        time = np.asarray(time, dtype=np.float64)
        if not (src.ndim == dst.ndim == time.ndim == 1) or not len(src) == len(dst) == len(time):
            raise ValueError("src, dst and time must be 1-d and of equal length")
        if len(src) == 0:
            raise ValueError("an edge list needs at least one event")
        if not np.isfinite(time).all():
            raise ValueError("time has NaN or infinite values")
        order = np.argsort(time, kind="stable")
        src, dst, time = src[order], dst[order], time[order]
        codes, ids = pd.factorize(np.ravel(np.column_stack([src, dst])))
        codes = codes.reshape(-1, 2).astype(np.int64)
        return cls(codes[:, 0], codes[:, 1], time, np.asarray(ids), name)

    @property
    def n_nodes(self) -> int:
        return len(self.node_ids)

    def __len__(self) -> int:
        return len(self.src)

    def discretise(self, unit: str | float) -> np.ndarray:
        """The snapshot index of every event: whole ``unit`` s since the first event."""
        return ((self.time - self.time[0]) // unit_seconds(unit)).astype(np.int64)

    def subsample(self, fraction: float, seed: int = 0) -> EdgeEvents:
        """The events whose two endpoints are both among a random ``fraction`` of the nodes
        (TGX's node subsampling), re-indexed.

        >>> e = EdgeEvents.from_arrays(range(10), range(1, 11), range(10))
        >>> len(e.subsample(0.5, seed=1)) < len(e)
        True
        """
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
        rng = np.random.default_rng(seed)
        keep = rng.random(self.n_nodes) < fraction
        mask = keep[self.src] & keep[self.dst]
        if not mask.any():
            raise ValueError(f"subsampling {fraction} of the nodes left no event; raise it")
        return EdgeEvents.from_arrays(
            self.node_ids[self.src[mask]], self.node_ids[self.dst[mask]], self.time[mask], self.name
        )

    def head(self, n: int) -> EdgeEvents:
        """The first ``n`` events, re-indexed."""
        return EdgeEvents.from_arrays(
            self.node_ids[self.src[:n]], self.node_ids[self.dst[:n]], self.time[:n], self.name
        )


def _pick(columns: Sequence[str], given: str | None, names: tuple[str, ...], what: str) -> str:
    if given is not None:
        if given not in columns:
            raise ValueError(f"{what} column {given!r} not in the file's columns {list(columns)}")
        return given
    lower = {c.strip().lower(): c for c in columns}
    for name in names:
        if name in lower:
            return lower[name]
    raise ValueError(f"no {what} column among {list(columns)}; name it ({what}=...)")


def read_edge_list(
    path: str | Path,
    src: str | None = None,
    dst: str | None = None,
    time: str | None = None,
    sep: str | None = None,
) -> EdgeEvents:
    """Read a timestamped edge list (CSV with a header, gzip by the ``.gz`` suffix; ``sep``
    inferred: comma, tab or whitespace). Columns by name, else the first of the usual names
    (``src``/``source``/``user_id``..., ``dst``/``target``/``item_id``..., ``time``/``ts``/
    ``timestamp``); other columns are ignored (TGB's edge features).

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "edges.csv"
    >>> _ = path.write_text("ts,user_id,item_id,state_label\\n5,a,b,0\\n1,b,c,0\\n")
    >>> events = read_edge_list(path)
    >>> events.time.tolist(), events.node_ids.tolist()
    ([1.0, 5.0], ['b', 'c', 'a'])
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"edge list {str(path)!r} does not exist")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        first = handle.readline()
    if sep is None:
        sep = "," if "," in first else ("\t" if "\t" in first else r"\s+")
    frame = pd.read_csv(path, sep=sep, engine="python" if sep == r"\s+" else "c")
    columns = list(frame.columns)
    s, d, t = (
        _pick(columns, src, _SRC, "src"),
        _pick(columns, dst, _DST, "dst"),
        _pick(columns, time, _TIME, "time"),
    )
    times = pd.to_numeric(frame[t], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(times))
    if bad.size:
        raise ValueError(f"{path.name}: column {t!r} row {bad[0]} is not a number")
    return EdgeEvents.from_arrays(frame[s].to_numpy(), frame[d].to_numpy(), times, path.name)


# -- measures over time (TGX) ------------------------------------------------------------------
def _edge_keys(events: EdgeEvents) -> np.ndarray:
    return events.src * events.n_nodes + events.dst


def graph_measures(events: EdgeEvents, unit: str | float = "daily") -> dict[str, np.ndarray]:
    """Per snapshot (index ``0..T-1``): ``n_events``, ``n_edges`` (distinct), ``n_nodes``
    (active), ``average_degree`` (``2 n_edges / n_nodes``), ``new_edges`` (never seen in an
    earlier snapshot), ``repeated_edges`` (seen before), ``novelty`` (new / edges; TGX's
    novelty index averages it) and ``reuse`` (repeated / edges). Empty snapshots have zeros
    (novelty and reuse NaN)."""
    snap = events.discretise(unit)
    n_snap = int(snap[-1]) + 1
    keys = _edge_keys(events)
    n_events = np.bincount(snap, minlength=n_snap)
    pairs = np.unique(np.column_stack([snap, keys]), axis=0)  # distinct (snapshot, edge)
    n_edges = np.bincount(pairs[:, 0], minlength=n_snap)
    first = pd.Series(snap).groupby(keys).min()  # first snapshot of every edge
    new = np.bincount(first.to_numpy(), minlength=n_snap)
    nodes = np.unique(
        np.concatenate([np.column_stack([snap, events.src]), np.column_stack([snap, events.dst])]),
        axis=0,
    )
    n_nodes = np.bincount(nodes[:, 0], minlength=n_snap)
    with np.errstate(invalid="ignore", divide="ignore"):
        degree = np.where(n_nodes > 0, 2 * n_edges / np.maximum(n_nodes, 1), 0.0)
        novelty = new / n_edges
    return {
        "snapshot": np.arange(n_snap),
        "n_events": n_events,
        "n_edges": n_edges,
        "n_nodes": n_nodes,
        "average_degree": degree,
        "new_edges": new,
        "repeated_edges": n_edges - new,
        "novelty": novelty,
        "reuse": 1.0 - novelty,
    }


def edge_presence(
    events: EdgeEvents, unit: str | float = "daily", max_edges: int = 2_000
) -> np.ndarray:
    """The Temporal Edge Traffic matrix: ``(edges, snapshots)`` booleans, edges in order of
    first appearance (row ``i`` is the ``i``-th distinct edge), the first ``max_edges``.

    >>> e = EdgeEvents.from_arrays([0, 1, 0], [1, 2, 1], [0, 100_000, 200_000])
    >>> edge_presence(e, "daily").astype(int).tolist()
    [[1, 0, 1], [0, 1, 0]]
    """
    snap = events.discretise(unit)
    _, first_index, inverse = np.unique(_edge_keys(events), return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first_index))  # unique edge -> order of first appearance
    row = rank[inverse.ravel()]
    keep = row < max_edges
    out = np.zeros((min(max_edges, len(first_index)), int(snap[-1]) + 1), dtype=bool)
    out[row[keep], snap[keep]] = True
    return out


# -- streams -----------------------------------------------------------------------------------
class GraphStream(ArrayStream):
    """An :class:`~adaptloop.streams.base.ArrayStream` of graph rows that knows its snapshots:
    ``bounds`` (``(T + 1,)`` row offsets: snapshot ``i`` is rows ``bounds[i]:bounds[i+1]``),
    ``group_size`` (link prediction: rows per query, the positive first; 0 for regression)
    and ``events`` (failures and repairs, by snapshot, for drift segments; empty if none)."""

    bounds: np.ndarray
    group_size: int
    events: list[dict]

    @abstractmethod
    def timeline(self) -> tuple[EdgeEvents, float, str]:
        """The graph over time for its measures (:func:`graph_measures`, :func:`edge_presence`):
        the edges as timestamped events, the measures' unit in seconds and its name (what one
        step of the measures is, for a figure's axis)."""

    def snapshots(self) -> Any:
        """Yield ``(index, X, y)`` per snapshot."""
        X, y = self.arrays()
        for i, (lo, hi) in enumerate(zip(self.bounds[:-1], self.bounds[1:], strict=True)):
            if hi > lo:
                yield i, X[lo:hi], y[lo:hi]

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """All rows at once."""
        return self._X, self._y


def _negatives(
    src: np.ndarray,
    dst: np.ndarray,
    unit_of: np.ndarray,
    n_nodes: int,
    k: int,
    historical: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """``(len(src), k)`` destinations: ``historical`` from the source's destinations in earlier
    units (``unit_of``: the unit of each query, non-decreasing), the rest uniform; never the
    true destination (TGB's ``hist_rnd``)."""
    out = rng.integers(0, n_nodes - 1, size=(len(src), k))
    out += out >= dst[:, None]  # uniform over the nodes other than the true destination
    seen: dict[int, list[int]] = {}  # source -> distinct earlier destinations
    where: dict[int, dict[int, int]] = {}  # source -> destination -> its place in seen
    pending: list[tuple[int, int]] = []
    current = None
    for i, (s, d, u) in enumerate(zip(src.tolist(), dst.tolist(), unit_of.tolist(), strict=True)):
        if u != current:  # a new unit: what happened before it becomes history
            for ps, pd_ in pending:
                places = where.setdefault(ps, {})
                if pd_ not in places:
                    places[pd_] = len(places)
                    seen.setdefault(ps, []).append(pd_)
            pending, current = [], u
        pending.append((s, d))
        options = seen.get(s, [])
        skip = where.get(s, {}).get(d)  # the true destination is never a negative
        n_options = len(options) - (skip is not None)
        if historical and n_options > 0:
            for j, pick in enumerate(rng.integers(0, n_options, size=historical).tolist()):
                out[i, j] = options[pick + (skip is not None and pick >= skip)]
    return out


@registry.register("edge_events")
class EdgeEventStream(GraphStream):
    """Temporal link prediction on a timestamped edge list (see the module doc).

    ``path`` (or ``events`` from Python), column names ``src`` / ``dst`` / ``time`` (inferred
    when ``None``); ``unit``: ``None`` for one group per event, else snapshots of that unit with
    one group per distinct edge; ``negatives`` per positive, ``historical`` of them from the
    source's history (TGB's split is half and half: ``historical = negatives // 2`` when
    ``None``); ``max_events``: the first events only; ``subsample``: keep this fraction of the
    nodes; ``batch_events``: without ``unit``, queries per snapshot of ``bounds``.

    Attributes: ``edges`` (the :class:`EdgeEvents` read), ``bounds``, ``group_size``.
    """

    def __init__(
        self,
        path: str | None = None,
        src: str | None = None,
        dst: str | None = None,
        time: str | None = None,
        unit: Unit | None = None,
        negatives: Count = 10,
        historical: NonNegativeInt | None = None,
        max_events: Count | None = None,
        subsample: Fraction = 1.0,
        batch_events: Count = 200,
        seed: Seed = 0,
        events: EdgeEvents | None = None,
    ) -> None:
        if (path is None) == (events is None):
            raise ValueError("edge_events needs exactly one of path or events")
        edges = read_edge_list(path, src, dst, time) if events is None else events
        if subsample < 1:
            edges = edges.subsample(subsample, seed)
        if max_events is not None and max_events < len(edges):
            edges = edges.head(max_events)
        if edges.n_nodes < 2:
            raise ValueError("link prediction needs at least 2 nodes")
        historical = negatives // 2 if historical is None else historical
        if historical > negatives:
            raise ValueError(f"historical={historical} must be <= negatives={negatives}")
        self.edges, self.unit, self.negatives, self.historical = edges, unit, negatives, historical
        self.seed = seed
        if unit is None:
            q_src, q_dst, q_time = edges.src, edges.dst, edges.time
            q_unit = np.searchsorted(np.unique(edges.time), edges.time)  # same time: same unit
            batch = np.arange(len(q_src)) // batch_events
        else:
            snap = edges.discretise(unit)
            table = np.unique(np.column_stack([snap, edges.src, edges.dst]), axis=0)
            q_unit, q_src, q_dst = table[:, 0], table[:, 1], table[:, 2]
            q_time, batch = q_unit.astype(np.float64), q_unit
        rng = np.random.default_rng(seed)
        neg = _negatives(q_src, q_dst, q_unit, edges.n_nodes, negatives, historical, rng)
        g = 1 + negatives
        n = len(q_src)
        X = np.empty((n, g, 3), dtype=np.float32)
        X[:, :, 0] = q_time[:, None] - edges.time[0] if unit is None else q_time[:, None]
        X[:, :, 1] = q_src[:, None]
        X[:, 0, 2] = q_dst
        X[:, 1:, 2] = neg
        y = np.zeros((n, g), dtype=np.int64)
        y[:, 0] = 1
        self.group_size = g
        n_batches = int(batch[-1]) + 1
        self.bounds = np.concatenate([[0], np.cumsum(np.bincount(batch, minlength=n_batches))]) * g
        self.events = []
        where = "" if unit is None else f":{unit}"
        super().__init__(
            X.reshape(n * g, 3),
            y.reshape(n * g),
            task="binary",
            feature_names=["time", "src", "dst"],
            name=f"edge_events[{edges.name}{where}]",
        )

    def timeline(self) -> tuple[EdgeEvents, float, str]:
        """The events read, by the stream's ``unit`` (daily for a stream of events).

        >>> events = EdgeEvents.from_arrays([0, 1], [1, 2], [0, 90_000])
        >>> EdgeEventStream(events=events, negatives=1).timeline()[1:]
        (86400, 'day')
        """
        unit = self.unit or "daily"
        return self.edges, unit_seconds(unit), UNIT_NAMES[unit]


@registry.register("linkload_graph")
class LinkLoadGraphStream(GraphStream):
    """The link-load backbone as graph snapshots, one row per link per step (module doc).

    ``linkload``: the parameters of the ``linkload`` stream (a table: ``days``, ``failures``,
    ``topology``, ``history``, ``seed``...), built through its registry, so its own checks
    name a bad value; ``seed``: the simulator's seed where ``linkload`` sets none (an
    experiment file's top-level ``seed``). Attributes: ``source`` (the
    :class:`~adaptloop.streams.linkload.LinkLoadStream`), ``n_links``, ``scales`` (per-link
    normaliser), ``up`` (``(n, E)`` the ``up`` column), ``loads`` (``(n, E)`` normalised
    targets), ``events`` (the failures and repairs, ``at`` in steps).

    >>> stream = LinkLoadGraphStream(linkload={"days": 1, "failures": [{"at": 200,
    ...     "severity": "drastic"}]})
    >>> stream.n_links, stream.info.n_samples, stream.info.drifts
    (41, 11808, (Drift(position=8200, width=1),))
    >>> X, y = stream.arrays()
    >>> failed = stream.events[0]["link"]
    >>> float(X[201 * 41 + failed, -3]), float(y[201 * 41 + failed])  # up flag, load
    (0.0, 0.0)
    """

    def __init__(self, linkload: Mapping[str, Any] | None = None, seed: Seed = 0) -> None:
        source = registry.create("linkload", **{"seed": seed, **dict(linkload or {})})
        self.source = source
        L, n = source.history, source.n
        loads = np.asarray(source.loads, dtype=np.float64)  # (L + n, E)
        E = loads.shape[1]
        scales = loads[: source.first_failure + L].mean(axis=0)
        fallback = scales[scales > 0].mean() if (scales > 0).any() else 1.0
        scales = np.where(scales > 0, scales, fallback)
        norm = (loads / scales).astype(np.float32)
        up_steps = np.ones((L + n, E), dtype=np.float32)
        for i, failed in enumerate(source.failed_at):
            up_steps[i, list(failed)] = 0.0
        windows = np.lib.stride_tricks.sliding_window_view(norm[:-1], L, axis=0)  # (n, E, L)
        tod = source.time_of_day[L:]
        X = np.empty((n, E, L + 5), dtype=np.float32)
        X[:, :, :L] = windows
        X[:, :, L] = np.sin(2 * np.pi * tod)[:, None]
        X[:, :, L + 1] = np.cos(2 * np.pi * tod)[:, None]
        X[:, :, L + 2] = up_steps[L - 1 : L - 1 + n]  # up during step t - 1
        X[:, :, L + 3] = source.links[:, 0]
        X[:, :, L + 4] = source.links[:, 1]
        self.n_links, self.scales = E, scales
        self.up = X[:, :, L + 2].copy()
        self.loads = norm[L:].copy()
        self.events = [dict(ev) for ev in source.events]
        self.group_size = 0
        self.bounds = np.arange(n + 1) * E
        names = [f"load_t-{lag}" for lag in range(L, 0, -1)]
        super().__init__(
            X.reshape(n * E, L + 5),
            self.loads.reshape(n * E),
            task="regression",
            feature_names=[*names, "tod_sin", "tod_cos", "up", "src", "dst"],
            drifts=tuple(Drift(ev["at"] * E, 1) for ev in source.events if 0 < ev["at"] < n),
            name=f"linkload_graph[{source.topology}]",
        )

    @property
    def n_snapshots(self) -> int:
        return len(self.bounds) - 1

    def timeline(self) -> tuple[EdgeEvents, float, str]:
        """The links up at every step, one event per link and step (a failed link is absent
        until its repair), by steps of ``step_minutes``."""
        source, L = self.source, self.source.history
        step_seconds = 60.0 * source.step_minutes
        steps, links = np.nonzero(source.simulation.up[L : L + self.n_snapshots])
        return (
            EdgeEvents.from_arrays(
                source.links[links, 0], source.links[links, 1], steps * step_seconds, "links"
            ),
            step_seconds,
            f"{source.step_minutes}-minute step",
        )
