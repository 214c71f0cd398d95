"""Link-load prediction on a real backbone amid link failures (registered as ``"linkload"``).

The setting of Ayoub, Andreoletti et al. (2024), "Liquid Neural Network-based Adaptive Learning
vs. Incremental Learning for Link Load Prediction amid Concept Drift due to Network Failures":
an operator forecasts the load of a backbone link; a link fails, traffic is re-routed and the
loads shift abruptly.

Simulation (:mod:`adaptloop.streams.network`; vectorised: a few simulated days build in a few
milliseconds):

- **Topology**: from the ``topohub`` package (offline), ``"sndlib/nobel-eu"`` (Euro28 / Nobel-EU:
  28 nodes, 41 links; default), ``"sndlib/abilene"`` (12 nodes, 15 links) or ``"sndlib/geant"``
  (22 nodes, 36 links). Links are undirected; a link's load is the traffic crossing it in
  either direction.
- **Demands, synthetic** (default, ``traffic=None``): the SNDlib demand matrix that topohub
  ships with each topology (``graph -> demands``; 378 demands for Nobel-EU), not a gravity
  model. Each demand ``k`` with volume ``D_k`` follows ``D_k * (1 + a_d sin(2 pi tod - pi/2 +
  phi_k)) * (1 + a_w sin(2 pi dow / 7 + psi_k)) * (1 + noise * eps)``, clipped at 0: a daily
  profile peaking near noon, a weekly one, a seeded per-demand phase shift ``phi_k`` (uniform
  within ``+- phase_spread`` hours; ``psi_k`` likewise in days) and seeded Gaussian noise
  ``eps``, at one sample every ``step_minutes`` (default 5, so 288 steps a day) for ``days``
  (default 4). Step 0 is a Monday, 00:00.
- **Demands, measured** (``traffic="path/to/file.csv.gz"``): the traffic matrices of the file
  replayed row by row (layout in :mod:`adaptloop.streams.traffic`: ``time`` + ``o<i>_d<j>``;
  e.g. ``../shared/data/abilene_tm.csv.gz`` on ``"sndlib/abilene"``, two weeks at 5 minutes).
  The file's node ``i`` is the topology's node ``i`` (a different node count is refused); its
  step is the stream's (``step_minutes``, if given, must match); ``days`` (default: the whole
  file) takes the first days; the time features come from its ``time`` column. The first
  ``history`` rows are the history, so sample ``t`` is row ``t + history``. The profile
  parameters (``daily_amplitude``, ``weekly``, ``weekly_amplitude``, ``phase_spread``,
  ``noise``) are not used; ``seed`` then only draws random failures.
- **Routing**: every demand follows its shortest path by link length (networkx, the
  ``dist`` attribute topohub gives; no ECMP). Per topology state (between failures and repairs)
  the paths become a path-incidence matrix ``P`` (demands x links) and the loads of every step
  of that state are ``demands @ P``.
- **Failures**: ``failures=[{at=step, link=[u, v]}]`` (node names or ids), optionally with
  ``repair_at``; or ``{at=step, severity="drastic"}`` (fail the most loaded link) /
  ``severity="moderate"`` (a lightly loaded one: the link at the 25th load percentile), chosen
  among the links whose loss keeps the network connected, by their mean load in the topology
  state just before the failure (synthetic: the SNDlib matrix routed; measured: the mean
  demand of the steps before the failure routed). ``random_failures=k`` adds ``k`` failures
  of random non-bridge links at random steps in the middle half of the stream (seeded). On a
  failure every demand is re-routed on the surviving graph; a demand that becomes unroutable
  (a bridge failed) is dropped while the link is down, counted in :attr:`LinkLoadStream.events`
  (pairs) and ``simulation.dropped`` (volume per step), and reported with a
  ``RuntimeWarning``.
- **Every link at once**: ``stream.simulation`` holds the load of every link at every step and
  which links are up (:class:`~adaptloop.streams.network.LinkLoads`;
  ``simulation.snapshot(t)`` is the backbone at sample ``t``), the view graph learners take.

Learning task, for one monitored link (``link``; default: the link onto which the first
failure moves the most traffic, by the mean demand before it, or the most loaded link without
failures): sample ``t``
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

On measured traffic (two weeks of the Abilene backbone, when the file is there):

>>> from pathlib import Path
>>> path = "../shared/data/abilene_tm.csv.gz"
>>> fail = [{"at": 2500, "severity": "drastic"}]
>>> here = Path(path).exists()
>>> stream = linkload(topology="sndlib/abilene", traffic=path, failures=fail) if here else None
>>> stream is None or (stream.info.n_samples, stream.step_minutes) == (4020, 5)
True
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, get_args

import numpy as np
from annotated_types import Ge, Le

from adaptloop.streams.base import ArrayStream, Drift, registry
from adaptloop.streams.network import Backbone, LinkLoads, parse_failures, simulate
from adaptloop.streams.traffic import profile_demands, read_traffic_matrices
from adaptloop.validation import Count, Fraction, NonNegativeInt, PositiveReal, Seed

__all__ = ["TOPOLOGIES", "LinkLoadStream", "linkload"]

Topology = Literal["sndlib/nobel-eu", "sndlib/abilene", "sndlib/geant"]
TOPOLOGIES: tuple[str, ...] = get_args(Topology)
"""The topohub topologies offered (each ships its SNDlib demand matrix)."""

_RANDOM = 2  # seed-sequence tag of the random failures


@registry.register("linkload")
class LinkLoadStream(ArrayStream):
    """Link-load forecasting on a topohub backbone with failures (see the module doc).

    Registered as ``"linkload"`` (:data:`linkload` is this class).

    Attributes after construction: ``backbone`` (the
    :class:`~adaptloop.streams.network.Backbone`: ``node_names``, ``links``, ``link_names``,
    ``graph``, also offered here as attributes); ``demand_pairs`` (``(K, 2)``); ``demands``
    (``(history + n, K)`` volumes per step, steps ``-history .. n - 1``); ``simulation`` (the
    :class:`~adaptloop.streams.network.LinkLoads` of every link at every step, failed links
    marked: ``simulation.snapshot(t)`` is the whole backbone at sample ``t``, the every-link
    view); ``loads`` (``simulation.loads``, ``(history + n, E)``); ``failed_at`` (per step, the
    frozenset of failed link indices); ``events`` (one dict per failure / repair: ``at``,
    ``kind``, ``link``, ``link_name``, ``unroutable``); ``times`` (``datetime64[m]`` per step
    with a traffic file, else ``None``); ``time_of_day`` (``(history + n,)`` float64, the
    fraction of the day at every step: from the file's ``time`` column with a traffic file);
    ``first_failure`` (the step of the first failure, ``n`` without one); ``monitored`` (index
    of the link the task predicts) and ``scale`` (its pre-failure mean load, the normaliser).

    >>> stream = linkload(days=2, failures=[{"at": 300, "link": ["Amsterdam", "Hamburg"]}])
    >>> stream.events[0]["link_name"], stream.events[0]["unroutable"]
    ('Amsterdam-Hamburg', 0)
    >>> snap = stream.simulation.snapshot(300)  # every link at sample 300
    >>> [stream.link_names[e] for e in snap.failed], snap.loads.shape
    (['Amsterdam-Hamburg'], (41,))
    """

    def __init__(
        self,
        topology: Topology = "sndlib/nobel-eu",
        traffic: str | None = None,
        days: PositiveReal | None = None,
        step_minutes: Annotated[int, Ge(1), Le(1440)] | None = None,
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
        backbone = Backbone.from_topohub(topology)
        self.backbone, self.topology, self.traffic = backbone, topology, traffic
        self.node_names, self.links = backbone.node_names, backbone.links
        self.link_names, self.graph = backbone.link_names, backbone.graph
        self.history, self.seed = history, seed

        # -- traffic ---------------------------------------------------------------------------
        planning: np.ndarray | None
        if traffic is None:
            step_minutes = 5 if step_minutes is None else step_minutes
            n = self._n_steps(4.0 if days is None else days, step_minutes)
            steps = np.arange(-history, n)
            self.demand_pairs, planning = backbone.sndlib_demands()
            self.demands = profile_demands(
                planning,
                steps,
                step_minutes,
                daily_amplitude,
                weekly,
                weekly_amplitude,
                phase_spread,
                noise,
                seed,
            )
            minutes = steps * step_minutes
            tod, dow = (minutes % 1440) / 1440.0, (minutes // 1440) % 7
            self.times = None
        else:
            n, step_minutes, tod, dow = self._read_traffic(traffic, days, step_minutes, history)
            planning = None  # severities rank links by the mean demand before the failure
        self.n, self.step_minutes = n, step_minutes
        self.time_of_day = np.asarray(tod, dtype=np.float64)

        # -- failures and routing --------------------------------------------------------------
        rng = np.random.default_rng([seed, _RANDOM])
        schedule = parse_failures(failures, backbone, n, random_failures, rng)
        self.simulation: LinkLoads = simulate(
            backbone, self.demand_pairs, self.demands, schedule, -history, planning, rng
        )
        self.events = list(self.simulation.events)
        self.loads = self.simulation.loads
        self.failed_at = [frozenset(np.flatnonzero(~up).tolist()) for up in self.simulation.up]

        # -- the learning task -----------------------------------------------------------------
        failure_steps = [ev["at"] for ev in self.events if ev["kind"] == "failure"]
        self.first_failure = first = failure_steps[0] if failure_steps else n
        if planning is None:
            planning = self.demands[: first + history].mean(axis=0)
        self.monitored = self._monitored_link(link, failure_steps, planning)
        series = self.loads[:, self.monitored]
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
        source = topology if traffic is None else f"{topology}+{os.path.basename(traffic)}"
        super().__init__(
            np.hstack([windows, extra]),
            normalised[history:].copy(),
            task="regression",
            feature_names=names,
            drifts=tuple(Drift(ev["at"], 1) for ev in self.events if 0 < ev["at"] < n),
            name=f"linkload[{source}:{self.link_names[self.monitored]}]",
        )

    # -- construction helpers ------------------------------------------------------------------
    @staticmethod
    def _n_steps(days: float, step_minutes: int) -> int:
        n = int(days * 1440 // step_minutes)
        if n < 2:
            raise ValueError(f"days={days} gives {n} steps of {step_minutes} min; need >= 2")
        return n

    def _read_traffic(
        self, traffic: str, days: float | None, step_minutes: int | None, history: int
    ) -> tuple[int, int, np.ndarray, np.ndarray]:
        """Read the traffic file into ``demands`` / ``times``; the number of samples, the step,
        and the time of day and day of week per step. Its node ``i`` is the topology's node
        ``i``."""
        tm = read_traffic_matrices(traffic)
        nodes = len(self.node_names)
        if tm.n_nodes != nodes:
            raise ValueError(
                f"traffic: {traffic!r} has {tm.n_nodes} nodes (columns o0_d0 .. "
                f"o{tm.n_nodes - 1}_d{tm.n_nodes - 1}) but topology {self.topology} has {nodes}"
                f" ({', '.join(self.node_names)}); its node i must be the topology's node i"
            )
        if step_minutes is not None and step_minutes != tm.step_minutes:
            raise ValueError(
                f"step_minutes={step_minutes} but traffic: {traffic!r} has {tm.step_minutes}-"
                "minute steps; leave step_minutes unset to take the file's"
            )
        available = len(tm.times) - history
        n = available if days is None else self._n_steps(days, tm.step_minutes)
        if n > available or n < 2:
            raise ValueError(
                f"traffic: {traffic!r} has {len(tm.times)} snapshots: {available} samples after "
                f"history={history}; days={days} asks for {n}"
            )
        rows = slice(0, history + n)
        self.demand_pairs, self.demands, self.times = tm.pairs, tm.demands[rows], tm.times[rows]
        return n, tm.step_minutes, tm.time_of_day()[rows], tm.day_of_week()[rows]

    def _monitored_link(self, link: object, failure_steps: list[int], planning: np.ndarray) -> int:
        if link is not None:
            return self.backbone.link_index(link, "link")
        before = self.backbone.route(self.demand_pairs, frozenset())[0]
        if not failure_steps:
            return int(np.argmax(planning @ before))
        row = failure_steps[0] + self.history
        before = self.backbone.route(self.demand_pairs, self.failed_at[row - 1])[0]
        after = self.backbone.route(self.demand_pairs, self.failed_at[row])[0]
        return int(np.argmax(planning @ (after - before)))

    # -- the stream ----------------------------------------------------------------------------
    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """All samples at once: ``X`` float32 ``(n, history + 2)`` (``+ 4`` with day_of_week)
        and ``y`` float32 ``(n,)``."""
        return self._X, self._y


linkload = LinkLoadStream
"""The link-load stream under its registered name: ``linkload(days=..., failures=...)``."""
