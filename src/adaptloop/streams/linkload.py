"""Link-load prediction on a real backbone amid link failures (registered as ``"linkload"``).

The setting of Ayoub, Andreoletti et al. (2024), "Liquid Neural Network-based Adaptive Learning
vs. Incremental Learning for Link Load Prediction amid Concept Drift due to Network Failures":
an operator forecasts the load of a backbone link; a link fails, traffic is re-routed and the
loads shift abruptly.

Simulation (vectorised: a few simulated days build in a few milliseconds):

- **Topology**: from the ``topohub`` package (offline), ``"sndlib/nobel-eu"`` (Euro28 / Nobel-EU:
  28 nodes, 41 links; default), ``"sndlib/abilene"`` (12 nodes, 15 links) or ``"sndlib/geant"``
  (22 nodes, 36 links). Links are undirected; a link's load is the traffic crossing it in
  either direction.
- **Demands**: the SNDlib demand matrix that topohub ships with each topology (``graph ->
  demands``; 378 demands for Nobel-EU), not a gravity model. Each demand ``k`` with volume
  ``D_k`` follows ``D_k * (1 + a_d sin(2 pi tod - pi/2 + phi_k)) * (1 + a_w sin(2 pi dow / 7
  + psi_k)) * (1 + noise * eps)``, clipped at 0: a daily profile peaking near noon, a weekly
  one, a seeded per-demand phase shift ``phi_k`` (uniform within ``+- phase_spread`` hours;
  ``psi_k`` likewise in days) and seeded Gaussian noise ``eps``, at one sample every
  ``step_minutes`` (default 5, so 288 steps a day). Step 0 is a Monday, 00:00.
- **Routing**: every demand follows its shortest path by link length (networkx, the
  ``dist`` attribute topohub gives; no ECMP). Per topology state (between failures and repairs)
  the paths become a path-incidence matrix ``P`` (demands x links) and the loads of every step
  of that state are ``demands @ P``.
- **Failures**: ``failures=[{at=step, link=[u, v]}]`` (node names or ids), optionally with
  ``repair_at``; or ``{at=step, severity="drastic"}`` (fail the most loaded link) /
  ``severity="moderate"`` (a lightly loaded one: the link at the 25th load percentile), chosen
  among the links whose loss keeps the network connected, by their mean load (the demand
  matrix routed) in the topology state just before the failure. ``random_failures=k`` adds
  ``k`` failures of random non-bridge links at random steps in the middle half of the stream
  (seeded). On a failure every demand is re-routed on the surviving graph; a demand that
  becomes unroutable (a bridge failed) is dropped while the link is down, counted in
  :attr:`LinkLoadStream.events` and reported with a ``RuntimeWarning``.

Learning task, for one monitored link (``link``; default: the link onto which the first
failure moves the most traffic, or the most loaded link without failures): sample ``t``
(``t = 0 .. n - 1``) has features ``load_t-L, ..., load_t-1`` (the link's last ``L = history``
loads, oldest first) then ``tod_sin, tod_cos`` (time of day of step ``t``) and, when
``day_of_week``, ``dow_sin, dow_cos``; the target is ``load_t`` (float32). The day-of-week
features are off by default: with less than a few weeks of data each new day is a value no
model has trained on (on 3 days, they raised a window-retrained MLP's RMSE before a failure
from 0.05 to 0.48). ``L``
steps of history are simulated before step 0. Loads are **normalised by the monitored link's
mean load before the first failure** (over the whole stream without failures), so 1.0 is its
usual level and a jump to 2.0 means twice the pre-failure traffic. ``info.drifts`` holds one
sudden ``Drift(at, 1)`` per failure and per repair: sample ``at`` is the first one predicted
on the new topology.

>>> stream = linkload(days=3, failures=[{"at": 432, "severity": "drastic"}], seed=1)
>>> stream.info.n_samples, stream.info.drifts, stream.info.feature_names[-3:]
(864, (Drift(position=432, width=1),), ('load_t-1', 'tod_sin', 'tod_cos'))
>>> X, y = stream.arrays()
>>> X.shape, y.dtype
((864, 14), dtype('float32'))
>>> bool(y[432:].mean() > 1.5 * y[:432].mean())  # the failure re-routes traffic onto the link
True
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, get_args

import numpy as np
from annotated_types import Ge, Le

from adaptloop.streams.base import ArrayStream, Drift, registry
from adaptloop.validation import Count, Fraction, NonNegativeInt, PositiveReal, Seed, check_integer

__all__ = ["TOPOLOGIES", "LinkLoadStream", "linkload"]

Topology = Literal["sndlib/nobel-eu", "sndlib/abilene", "sndlib/geant"]
TOPOLOGIES: tuple[str, ...] = get_args(Topology)
"""The topohub topologies offered (each ships its SNDlib demand matrix)."""

SEVERITIES = ("drastic", "moderate")
_PHASES, _NOISE, _RANDOM = 0, 1, 2  # seed-sequence tags


def _load_topology(topology: str) -> dict:
    try:
        import topohub
    except ImportError as error:  # pragma: no cover - topohub is a dependency
        raise ImportError("the linkload stream needs topohub: pip install topohub") from error
    return topohub.get(topology)


@registry.register("linkload")
class LinkLoadStream(ArrayStream):
    """Link-load forecasting on a topohub backbone with failures (see the module doc).

    Registered as ``"linkload"`` (:data:`linkload` is this class).

    Attributes after construction: ``node_names``; ``link_names`` (``"u-v"`` by node name,
    topohub's link order); ``links`` (``(E, 2)`` node ids); ``graph`` (the intact topology, a
    networkx graph on node ids whose edges carry ``dist``, their length, and ``index``);
    ``demand_pairs`` (``(K, 2)``); ``demands`` (``(history + n, K)`` volumes per step, steps
    ``-history .. n - 1``); ``loads`` (``(history + n, E)`` raw link loads); ``failed_at`` (per
    step, the frozenset of failed link indices); ``events`` (one dict per failure / repair:
    ``at``, ``kind``, ``link``, ``unroutable``); ``monitored`` (index of the link the task
    predicts) and ``scale`` (its pre-failure mean load, the normaliser).

    >>> stream = linkload(days=2, failures=[{"at": 300, "link": ["Amsterdam", "Hamburg"]}])
    >>> stream.events[0]["link_name"], stream.events[0]["unroutable"]
    ('Amsterdam-Hamburg', 0)
    """

    def __init__(
        self,
        topology: Topology = "sndlib/nobel-eu",
        days: PositiveReal = 4.0,
        step_minutes: Annotated[int, Ge(1), Le(1440)] = 5,
        history: Count = 12,
        failures: Sequence[Mapping[str, Any]] = (),
        random_failures: NonNegativeInt = 0,
        link: Sequence[str | int] | None = None,
        daily_amplitude: Fraction = 0.5,
        weekly: bool = True,
        weekly_amplitude: Fraction = 0.1,
        day_of_week: bool = False,
        phase_spread: Annotated[float, Ge(0), Le(12)] = 2.0,
        noise: Fraction = 0.05,
        seed: Seed = 0,
    ) -> None:
        import networkx as nx

        data = _load_topology(topology)
        self.topology = topology
        n = int(days * 1440 // step_minutes)
        if n < 2:
            raise ValueError(f"days={days} gives {n} steps of {step_minutes} min; need >= 2")
        self.n, self.history, self.step_minutes, self.seed = n, history, step_minutes, seed

        # -- topology and demands --------------------------------------------------------------
        self.node_names = tuple(str(node.get("name", node["id"])) for node in data["nodes"])
        ids = {node["id"]: i for i, node in enumerate(data["nodes"])}
        self.links = np.array([[ids[e["source"]], ids[e["target"]]] for e in data["edges"]])
        lengths = np.array([float(e.get("dist", 1.0)) for e in data["edges"]])
        self.link_names = tuple(f"{self.node_names[u]}-{self.node_names[v]}" for u, v in self.links)
        matrix = data["graph"]["demands"]
        pairs = [(ids[s], ids[t], float(v)) for s, row in matrix.items() for t, v in row.items()]
        pairs = [(s, t, v) for s, t, v in pairs if s != t and v > 0]
        self.demand_pairs = np.array([(s, t) for s, t, _ in pairs], dtype=np.int64)
        volumes = np.array([v for _, _, v in pairs])
        self.graph = nx.Graph()
        self.graph.add_nodes_from(range(len(self.node_names)))
        for e, ((u, v), length) in enumerate(zip(self.links, lengths, strict=True)):
            self.graph.add_edge(int(u), int(v), dist=length, index=e)

        # -- traffic ---------------------------------------------------------------------------
        steps = np.arange(-history, n)
        minutes = steps * step_minutes
        tod = (minutes % 1440) / 1440.0
        dow = (minutes // 1440) % 7
        self._tod, self._dow = tod, dow
        k = len(volumes)
        rng = np.random.default_rng([seed, _PHASES])
        phi = rng.uniform(-phase_spread, phase_spread, k) * (2 * np.pi / 24)
        psi = rng.uniform(-phase_spread, phase_spread, k) * (2 * np.pi / 7 / 24)
        profile = 1 + daily_amplitude * np.sin(2 * np.pi * tod[:, None] - np.pi / 2 + phi)
        if weekly:
            week = (minutes / 1440.0) / 7.0
            profile = profile * (1 + weekly_amplitude * np.sin(2 * np.pi * week[:, None] + psi))
        eps = np.random.default_rng([seed, _NOISE]).standard_normal((len(steps), k))
        self.demands = np.clip(volumes * profile * (1 + noise * eps), 0.0, None)
        self._volumes = volumes

        # -- failures and routing --------------------------------------------------------------
        schedule = self._parse_failures(failures, random_failures)
        self.events: list[dict] = []
        self.failed_at: list[frozenset[int]] = []
        self._routes: dict[frozenset[int], tuple[np.ndarray, np.ndarray]] = {}
        loads = np.empty((len(steps), len(self.links)))
        failed: frozenset[int] = frozenset()
        changes = sorted({0, n, *(at for at, _ in schedule)})
        cursor = 0
        for start, end in zip(changes[:-1], changes[1:], strict=True):
            for at, action in schedule:
                if at != start:
                    continue
                failed = self._apply(at, action, failed)
            rows = slice(0 if start == 0 else start + history, end + history)
            incidence, _ = self._route(failed)
            loads[rows] = self.demands[rows] @ incidence
            self.failed_at += [failed] * (rows.stop - rows.start)
            cursor = rows.stop
        assert cursor == len(steps)
        self.loads = loads

        # -- the learning task -----------------------------------------------------------------
        failure_steps = [ev["at"] for ev in self.events if ev["kind"] == "failure"]
        self.monitored = self._monitored_link(link, failure_steps)
        first = failure_steps[0] if failure_steps else n
        series = loads[:, self.monitored]
        scale = float(series[: first + history].mean())
        if scale <= 0:
            raise ValueError(
                f"link {self.link_names[self.monitored]} carries no traffic before the first "
                "failure; choose another link"
            )
        self.scale = scale
        normalised = (series / scale).astype(np.float32)
        windows = np.lib.stride_tricks.sliding_window_view(normalised[:-1], history)
        time_features = [np.sin(2 * np.pi * tod), np.cos(2 * np.pi * tod)]
        names = [f"load_t-{lag}" for lag in range(history, 0, -1)] + ["tod_sin", "tod_cos"]
        if day_of_week:
            time_features += [np.sin(2 * np.pi * dow / 7), np.cos(2 * np.pi * dow / 7)]
            names += ["dow_sin", "dow_cos"]
        extra = np.stack(time_features, axis=1)[history:].astype(np.float32)
        super().__init__(
            np.hstack([windows, extra]),
            normalised[history:].copy(),
            task="regression",
            feature_names=names,
            drifts=tuple(Drift(ev["at"], 1) for ev in self.events if 0 < ev["at"] < n),
            name=f"linkload[{topology}:{self.link_names[self.monitored]}]",
        )

    # -- construction helpers ------------------------------------------------------------------
    def _node(self, value: object, where: str) -> int:
        if isinstance(value, str) and value in self.node_names:
            return self.node_names.index(value)
        if (
            not isinstance(value, bool)
            and isinstance(value, (int, np.integer))
            and 0 <= value < len(self.node_names)
        ):
            return int(value)
        raise ValueError(
            f"{where}: unknown node {value!r}; nodes of {self.topology}: "
            f"{', '.join(self.node_names)} (or ids 0..{len(self.node_names) - 1})"
        )

    def _link_index(self, value: object, where: str) -> int:
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise ValueError(f"{where} must be a pair of nodes [u, v], got {value!r}")
        u, v = (self._node(x, where) for x in value)
        if not self.graph.has_edge(u, v):
            raise ValueError(
                f"{where}: no link between {self.node_names[u]} and {self.node_names[v]}"
            )
        return int(self.graph.edges[u, v]["index"])

    def _parse_failures(self, failures: object, random_failures: int) -> list[tuple[int, Any]]:
        """``(step, action)`` pairs: action ``("fail", link index or severity)`` / ``("repair",
        link index or failure number)``, in step order (repairs before failures at a step)."""
        if isinstance(failures, (str, bytes, Mapping)) or not isinstance(failures, Sequence):
            raise ValueError(f"failures must be a list of tables, got {failures!r}")
        schedule: list[tuple[int, Any]] = []
        for i, spec in enumerate(failures):
            where = f"failures[{i}]"
            if not isinstance(spec, Mapping):
                raise ValueError(f"{where} must be a table with 'at', got {spec!r}")
            unknown = sorted(set(spec) - {"at", "link", "severity", "repair_at"})
            if unknown:
                raise ValueError(
                    f"{where} has unknown key(s) {unknown}; keys: at, link, severity, repair_at"
                )
            at = check_integer(spec.get("at"), f"{where}.at", 1, self.n - 1)
            if ("link" in spec) == ("severity" in spec):
                raise ValueError(f"{where} needs exactly one of 'link' or 'severity'")
            if "link" in spec:
                target: Any = self._link_index(spec["link"], f"{where}.link")
            else:
                target = spec["severity"]
                if target not in SEVERITIES:
                    raise ValueError(
                        f"{where}.severity must be 'drastic' or 'moderate', got {target!r}"
                    )
            schedule.append((at, ("fail", target, i)))
            if "repair_at" in spec:
                repair = check_integer(spec["repair_at"], f"{where}.repair_at", at + 1, self.n - 1)
                schedule.append((repair, ("repair", None, i)))
        rng = np.random.default_rng([self.seed, _RANDOM])
        lo, hi = max(1, self.n // 4), max(2, 3 * self.n // 4)
        for j in range(random_failures):
            at = int(rng.integers(lo, hi))
            schedule.append((at, ("fail", "random", len(failures) + j)))
        self._random_rng = rng
        return sorted(schedule, key=lambda item: (item[0], item[1][0] == "fail", item[1][2]))

    def _apply(self, at: int, action: tuple, failed: frozenset[int]) -> frozenset[int]:
        kind, target, number = action
        if kind == "repair":
            link = next(ev["link"] for ev in self.events if ev.get("number") == number)
            failed = failed - {link}
        else:
            link = target if isinstance(target, int) else self._choose(target, failed)
            if link in failed:
                raise ValueError(
                    f"failures[{number}]: link {self.link_names[link]} is already down at {at}"
                )
            failed = failed | {link}
        _, routed = self._route(failed)
        self.events.append(
            {
                "at": at,
                "kind": "failure" if kind == "fail" else "repair",
                "link": link,
                "link_name": self.link_names[link],
                "number": number,
                "unroutable": int((~routed).sum()),
            }
        )
        if kind == "fail" and not routed.all():
            warnings.warn(
                f"linkload: failing {self.link_names[link]} at step {at} disconnects the "
                f"network; {int((~routed).sum())} demand(s) are dropped while it is down",
                RuntimeWarning,
                stacklevel=3,
            )
        return failed

    def _choose(self, severity: str, failed: frozenset[int]) -> int:
        """A link to fail by severity, among the up links whose loss keeps the graph connected."""
        import networkx as nx

        graph = self._surviving(failed)
        bridges = {frozenset(edge) for edge in nx.bridges(graph)}
        candidates = [
            int(graph.edges[u, v]["index"])
            for u, v in graph.edges
            if frozenset((u, v)) not in bridges
        ]
        if not candidates:
            raise ValueError("no link can fail without disconnecting the network")
        candidates.sort()
        if severity == "random":
            return int(self._random_rng.choice(candidates))
        mean_loads = self._volumes @ self._route(failed)[0]
        load = mean_loads[candidates]
        if severity == "drastic":
            return candidates[int(np.argmax(load))]
        target = np.percentile(load, 25)
        return candidates[int(np.argmin(np.abs(load - target)))]

    def _surviving(self, failed: frozenset[int]) -> Any:
        graph = self.graph.copy()
        graph.remove_edges_from([tuple(self.links[e]) for e in failed])
        return graph

    def _route(self, failed: frozenset[int]) -> tuple[np.ndarray, np.ndarray]:
        """Path-incidence matrix ``(K, E)`` on the surviving graph and the routable mask."""
        if failed not in self._routes:
            import networkx as nx

            graph = self._surviving(failed)
            paths = dict(nx.all_pairs_dijkstra_path(graph, weight="dist"))
            incidence = np.zeros((len(self.demand_pairs), len(self.links)))
            routed = np.zeros(len(self.demand_pairs), dtype=bool)
            for k, (s, t) in enumerate(self.demand_pairs):
                path = paths[int(s)].get(int(t))
                if path is None:
                    continue
                routed[k] = True
                hops = [
                    graph.edges[a, b]["index"] for a, b in zip(path[:-1], path[1:], strict=True)
                ]
                incidence[k, hops] = 1.0
            self._routes[failed] = (incidence, routed)
        return self._routes[failed]

    def _monitored_link(self, link: object, failure_steps: list[int]) -> int:
        if link is not None:
            return self._link_index(link, "link")
        before, after = self._route(frozenset()), None
        if failure_steps:
            state = self.failed_at[failure_steps[0] + self.history]
            before = self._route(self.failed_at[failure_steps[0] + self.history - 1])
            after = self._route(state)
        if after is None:
            return int(np.argmax(self._volumes @ before[0]))
        return int(np.argmax(self._volumes @ (after[0] - before[0])))

    # -- the stream ----------------------------------------------------------------------------
    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """All samples at once: ``X`` float32 ``(n, history + 2)`` (``+ 4`` with day_of_week)
        and ``y`` float32 ``(n,)``."""
        return self._X, self._y


linkload = LinkLoadStream
"""The link-load stream under its registered name: ``linkload(days=..., failures=...)``."""
