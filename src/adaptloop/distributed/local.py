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
from typing import Any

import numpy as np

from adaptloop.distributed.engine import Engine, OnTime, RuleRun
from adaptloop.distributed.federation import Federation, RunTrace, one_torch_thread
from adaptloop.distributed.rules.base import AggregationRule
from adaptloop.distributed.server import Task


class LocalEngine(Engine):
    """Runs a rule over a :class:`Federation` on a simulated clock (deterministic, in-process).

    Torch, if loaded, runs on one thread meanwhile (see
    :func:`~adaptloop.distributed.federation.one_torch_thread`)."""

    name = "local"

    def execute(
        self, federation: Federation, rule: AggregationRule, on_time: OnTime | None, name: str
    ) -> RunTrace:
        with one_torch_thread():
            return _Simulation(federation, rule, on_time, name).run()


class _Simulation(RuleRun):
    def __init__(
        self, fed: Federation, rule: AggregationRule, on_time: OnTime | None, name: str
    ) -> None:
        super().__init__(fed, rule, on_time, name, LocalEngine.name)
        self.clients = [fed.make_client(i) for i in range(fed.n_clients)]
        self.generation = [0] * fed.n_clients
        self.queue: list[tuple[float, int, str, Any]] = []
        self.seq = itertools.count()
        self.fault: dict[int, str] = {}

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
            delta, n = self.clients[c].run(self.outgoing(task), task.steps, now, **task.options)
        except Exception:  # a failing learner is a failed client, as with a remote one
            self.push(now + fed.latency, "error", task)
            return
        finally:
            self.trace.learn_seconds += time.perf_counter() - started
        arrival = now + fed.task_duration(c, task.steps, self.rng)
        if fault == "late":
            arrival = max(arrival, now + fed.timeout) + fed.latency
            del self.fault[c]
        report = self.clients[c].report
        self.push(arrival, "arrive", (task, delta, n, report))
        if fault == "duplicate":
            self.push(arrival + fed.latency, "arrive", (task, delta, n, report))
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
                self.evaluate(now)
                if now >= fed.duration:
                    break
            elif kind == "arrive":
                task, delta, n, report = payload
                if task.client in self.fault and self.fault[task.client] in ("hang", "die"):
                    continue  # lost with the process
                self.send(self.receive(task.task_id, delta, n, now, report), now)
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
        return self.close()
