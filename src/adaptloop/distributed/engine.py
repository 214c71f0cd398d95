"""What every engine shares: the :class:`Engine` call and one rule's run (:class:`RuleRun`).

An engine provides a clock and a transport (:class:`~adaptloop.distributed.local.LocalEngine`:
simulated, in-process; :class:`~adaptloop.distributed.ray_engine.RayEngine`: wall clock, Ray
actors). The rest of a run is the same on both and lives here: the server of the rule over the
federation's initial model, the seeded generator of task durations, the attack on the messages
both ways (:meth:`RuleRun.outgoing`, :meth:`RuleRun.receive`), the evaluation records and the
trace's closing counts.

>>> from adaptloop.distributed.local import LocalEngine
>>> issubclass(LocalEngine, Engine), LocalEngine.name
(True, 'local')
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np

from adaptloop.distributed.federation import Evaluator, Federation, RunTrace
from adaptloop.distributed.rules.base import AggregationRule
from adaptloop.distributed.server import Server, Task

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
        if getattr(rule, "robust", None) == "fltrust" and not fed.root_samples:
            raise ValueError(
                f"{name}: robust = 'fltrust' needs the server's root data: set the federation's "
                "root_samples (rows of the stream no client holds)"
            )
        self.fed, self.on_time = fed, on_time
        self.server = Server(
            rule,
            fed.initial_model(),
            fed.client_weights(),
            fed.seed,
            fed.split.statistics,
            fed.participation_schedule(),
            tuple(fed.split.codec.spans),
            fed.root_trainer(),
        )
        self.rng = np.random.default_rng([fed.seed, 12])
        self.evaluator = Evaluator(fed)
        self.trace = RunTrace(rule=name, engine=engine)
        self.adversary = fed.adversary()
        self.trace.byzantine = sorted(self.adversary.byzantine)
        self.started = time.perf_counter()

    def outgoing(self, task: Task) -> np.ndarray:
        """The model ``task``'s client receives (through the noisy link, if any)."""
        return self.adversary.downlink(task.model)

    def receive(
        self, task_id: int, delta: np.ndarray, n_samples: int, now: float, report: Any = None
    ) -> list[Task]:
        """An update arrives at the server, as its client's attack and the link made it (with
        its task hook's ``report``)."""
        task = self.server.task(task_id)
        if task is not None:
            delta = self.adversary.uplink(task.client, delta, now)
        return self.server.receive(task_id, delta, n_samples, now, report)

    def evaluate(self, now: float) -> None:
        """Record the global model's scores at ``now`` (time, scores, version, counts so far,
        messages and bytes sent, wall-clock seconds) and report the progress;
        ``accuracy_local`` is the mean accuracy of the nodes' own models of a decentralised
        rule (:meth:`~adaptloop.distributed.rules.base.AggregationRule.node_models`), the global
        model's accuracy for a server rule."""
        server = self.server
        scores = self.evaluator.evaluate(server.model, now)
        nodes = server.rule.node_models()
        if nodes is None:
            local = scores["accuracy"]
        else:
            vectors = [server.statistics.publish(v, server.pooled) for v in nodes.values()]
            local = self.evaluator.evaluate_nodes(vectors, now)
        row = {
            "time": float(now),
            **scores,
            "accuracy_local": local,
            "version": server.version,
            "updates": server.counts["accepted"],
            "down_weighted": server.counts["down_weighted"],
            "samples": server.counts["samples"],
            "messages": server.counts["messages"],
            "bytes_sent": server.bytes_sent,
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
        trace.influence = list(server.influence)
        trace.down_weighted_by_client = dict(server.down_weighted_by_client)
        trace.failed_clients = sorted(set(range(self.fed.n_clients)) - server.alive)
        trace.wall_seconds = time.perf_counter() - self.started
        trace.eval_seconds = self.evaluator.seconds
        return trace
