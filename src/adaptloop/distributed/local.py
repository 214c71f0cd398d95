"""The in-process engine: a simulated clock, an event queue and seeded client speeds.

Every task runs in-process at once; its *arrival* is scheduled at the send time plus the
simulated duration (local steps times the client's time per step, a seeded log-normal jitter,
plus the latency). Events (arrivals, timeouts, the rule's timers, evaluations, injected faults,
restarts) are processed in time order, ties in the order they were scheduled, so a run is
deterministic given the seed.

>>> from adaptloop.learners import LogisticRegression
>>> from adaptloop.distributed.data import make_federated_data
>>> from adaptloop.distributed.federation import Federation
>>> from adaptloop.distributed.rules import FedBuff
>>> data = make_federated_data("sea", clients=4, samples_per_client=200, concepts=[0],
...                            drift_at=[], seed=0, noise=0.0)
>>> fed = Federation(data, LogisticRegression(lr=0.05), duration=40.0, eval_every=10.0)
>>> trace = LocalEngine().run(fed, FedBuff(buffer_size=2, local_steps=2))
>>> [row["time"] for row in trace.rows]
[0.0, 10.0, 20.0, 30.0, 40.0]
>>> trace.rows[-1]["accuracy"] > trace.rows[0]["accuracy"]
True
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from adaptloop.distributed.federation import Evaluator, Federation, RunTrace, one_torch_thread
from adaptloop.distributed.rules.base import AggregationRule
from adaptloop.distributed.server import Server, Task


def eval_row(server: Server, scores: dict[str, float], now: float, started: float) -> dict:
    """One evaluation record: time, scores, model version, counts so far, wall-clock seconds."""
    return {
        "time": float(now),
        **scores,
        "version": server.version,
        "updates": server.counts["accepted"],
        "samples": server.counts["samples"],
        "failed": len(server.weights) - len(server.alive),
        "wall_seconds": time.perf_counter() - started,
    }


class LocalEngine:
    """Runs a rule over a :class:`Federation` on a simulated clock (deterministic, in-process)."""

    name = "local"

    def run(
        self,
        federation: Federation,
        rule: AggregationRule,
        on_time: Callable[[float], None] | None = None,
        name: str | None = None,
    ) -> RunTrace:
        """Run until ``federation.duration``; ``on_time(t)`` after each evaluation (torch, if
        loaded, runs on one thread meanwhile: see
        :func:`~adaptloop.distributed.federation.one_torch_thread`)."""
        with one_torch_thread():
            return _Simulation(federation, rule, on_time, name or type(rule).__name__).run()


class _Simulation:
    def __init__(self, fed: Federation, rule: AggregationRule, on_time, name: str) -> None:
        self.fed = fed
        self.on_time = on_time
        self.server = Server(
            rule, fed.initial_model(), fed.client_weights(), fed.seed, fed.split.statistics
        )
        self.clients = [fed.make_client(i) for i in range(fed.n_clients)]
        self.generation = [0] * fed.n_clients
        self.rng = np.random.default_rng([fed.seed, 12])
        self.queue: list[tuple[float, int, str, Any]] = []
        self.seq = itertools.count()
        self.fault: dict[int, str] = {}
        self.trace = RunTrace(rule=name, engine="local")

    def push(self, at: float, kind: str, payload: Any = None) -> None:
        heapq.heappush(self.queue, (at, next(self.seq), kind, payload))

    def send(self, tasks: list[Task], now: float) -> None:
        for at in self.server.take_timers():
            self.push(max(at, now), "timer")
        for task in tasks:
            self._send(task, now)

    def _send(self, task: Task, now: float) -> None:
        fed, c = self.fed, task.client
        fault = self.fault.get(c)
        if fault == "raise":
            self.push(now + fed.latency, "error", task)
            return
        if fault in ("hang", "die"):
            self._watch(task, now)
            return
        started = time.perf_counter()
        try:
            delta, n = self.clients[c].run(task.model, task.steps, now)
        except Exception:  # a failing learner is a failed client, as with a remote one
            self.push(now + fed.latency, "error", task)
            return
        finally:
            self.trace.learn_seconds += time.perf_counter() - started
        arrival = now + fed.task_duration(c, task.steps, self.rng)
        if fault == "late":
            arrival = max(arrival, now + fed.timeout) + fed.latency
            del self.fault[c]
        self.push(arrival, "arrive", (task, delta, n))
        if fault == "duplicate":
            self.push(arrival + fed.latency, "arrive", (task, delta, n))
            del self.fault[c]
        self._watch(task, now)

    def _watch(self, task: Task, now: float) -> None:
        if np.isfinite(self.fed.timeout):
            self.push(now + self.fed.timeout, "timeout", task)

    def fail(self, client: int, now: float) -> None:
        if client not in self.server.alive:
            return
        self.send(self.server.fail(client, now), now)
        if self.fed.restart_after is not None:
            self.push(now + self.fed.restart_after, "restart", client)

    def run(self) -> RunTrace:
        fed, server = self.fed, self.server
        started = time.perf_counter()
        evaluator = Evaluator(fed)
        for at in fed.eval_times():
            self.push(at, "eval")
        for fault in fed.faults:
            self.push(fault.at, "fault", fault)
        self.send(server.start(0.0), 0.0)
        while self.queue:
            now, _, kind, payload = heapq.heappop(self.queue)
            if now > fed.duration:
                break
            if kind == "eval":
                if now >= fed.duration:
                    server.finish(now)
                row = eval_row(server, evaluator.evaluate(server.model, now), now, started)
                self.trace.rows.append(row)
                if self.on_time is not None:
                    self.on_time(now)
                if now >= fed.duration:
                    break
            elif kind == "arrive":
                task, delta, n = payload
                if task.client in self.fault and self.fault[task.client] in ("hang", "die"):
                    continue  # lost with the process
                self.send(server.receive(task.task_id, delta, n, now), now)
            elif kind in ("timeout", "error"):
                if (
                    kind == "error"
                    or server.outstanding(payload.client)
                    and any(
                        t.task_id == payload.task_id for t in server.outstanding(payload.client)
                    )
                ):
                    self.fail(payload.client, now)
            elif kind == "timer":
                self.send(server.timer(now), now)
            elif kind == "fault":
                self.fault[payload.client] = payload.kind
                if payload.kind == "die":
                    self.fail(payload.client, now)
            elif kind == "restart":
                self.fault.pop(payload, None)
                self.generation[payload] += 1
                self.clients[payload] = fed.make_client(payload, self.generation[payload])
                self.send(server.rejoin(payload, now), now)
        self.trace.counts = dict(server.counts)
        self.trace.accepted_by_client = dict(server.accepted_by_client)
        self.trace.last_update_at = dict(server.last_update_at)
        self.trace.events = list(server.events)
        self.trace.failed_clients = sorted(set(range(fed.n_clients)) - server.alive)
        self.trace.wall_seconds = time.perf_counter() - started
        self.trace.eval_seconds = evaluator.seconds
        return self.trace
