"""What every engine shares: the :class:`Engine` call and one rule's run (:class:`RuleRun`).

An engine provides a clock and a transport (:class:`~adaptloop.distributed.local.LocalEngine`:
simulated, in-process; :class:`~adaptloop.distributed.ray_engine.RayEngine`: wall clock, Ray
actors). The rest of a run is the same on both and lives here: the server of the rule over the
federation's initial model, the seeded generator of task durations, the evaluation records and
the trace's closing counts.

>>> from adaptloop.distributed.local import LocalEngine
>>> issubclass(LocalEngine, Engine), LocalEngine.name
(True, 'local')
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np

from adaptloop.distributed.federation import Evaluator, Federation, RunTrace
from adaptloop.distributed.rules.base import AggregationRule
from adaptloop.distributed.server import Server

OnTime = Callable[[float], None]
"""Progress callback: called with the (simulated) time after each evaluation."""


class Engine(ABC):
    """Runs one rule over a federation until its duration, on the engine's clock."""

    name: str
    """How results name the engine (``"local"``, ``"ray"``)."""

    def run(
        self,
        federation: Federation,
        rule: AggregationRule,
        on_time: OnTime | None = None,
        name: str | None = None,
    ) -> RunTrace:
        """Run ``rule`` over ``federation``; ``on_time(t)`` after each evaluation; ``name``
        names the rule in the trace (default: its class name)."""
        return self.execute(federation, rule, on_time, name or type(rule).__name__)

    @abstractmethod
    def execute(
        self, federation: Federation, rule: AggregationRule, on_time: OnTime | None, name: str
    ) -> RunTrace:
        """The engine's own run (see :meth:`run`)."""


class RuleRun:
    """One rule's run over a federation, whatever the engine: the server, the seeded generator
    of task durations (:attr:`rng`), the evaluations (:meth:`evaluate`) and the trace."""

    def __init__(
        self,
        federation: Federation,
        rule: AggregationRule,
        on_time: OnTime | None,
        name: str,
        engine: str,
    ) -> None:
        fed = federation
        self.fed, self.on_time = fed, on_time
        self.server = Server(
            rule, fed.initial_model(), fed.client_weights(), fed.seed, fed.split.statistics
        )
        self.rng = np.random.default_rng([fed.seed, 12])
        self.evaluator = Evaluator(fed)
        self.trace = RunTrace(rule=name, engine=engine)
        self.started = time.perf_counter()

    def evaluate(self, now: float) -> None:
        """Record the global model's scores at ``now`` (time, scores, version, counts so far,
        wall-clock seconds) and report the progress."""
        server = self.server
        row = {
            "time": float(now),
            **self.evaluator.evaluate(server.model, now),
            "version": server.version,
            "updates": server.counts["accepted"],
            "samples": server.counts["samples"],
            "failed": len(server.weights) - len(server.alive),
            "wall_seconds": time.perf_counter() - self.started,
        }
        self.trace.rows.append(row)
        if self.on_time is not None:
            self.on_time(min(now, self.fed.duration))

    def close(self) -> RunTrace:
        """The trace with the server's final counts, events and timings."""
        server, trace = self.server, self.trace
        trace.counts = dict(server.counts)
        trace.accepted_by_client = dict(server.accepted_by_client)
        trace.last_update_at = dict(server.last_update_at)
        trace.events = list(server.events)
        trace.failed_clients = sorted(set(range(self.fed.n_clients)) - server.alive)
        trace.wall_seconds = time.perf_counter() - self.started
        trace.eval_seconds = self.evaluator.seconds
        return trace
