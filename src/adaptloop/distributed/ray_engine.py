"""The Ray engine: every client is a Ray actor; the clock is the wall clock.

``RayEngine()`` starts Ray on this machine (``ray.init()`` with the dashboard off);
``RayEngine(address="ray://head:10001")`` (or ``"auto"``) joins an existing cluster, so the same
experiment scales past one machine. Clients run in their own actor processes; the driver runs
the server and the evaluation. Simulated time maps to wall-clock time through ``time_unit_s``
(seconds per unit): a task of ``q`` local steps on a client with ``t`` units per step sleeps
until ``q * t * time_unit_s`` seconds (with the seeded jitter and the latency) have passed since
it started, so the straggler profile of the in-process engine is real here.

Faults are real: a task that raises, an actor that dies (``ray.kill``, a crashed node) or a task
that outlives ``timeout`` units mark the client failed; its actor is killed, and a new actor is
started ``restart_after`` units later, rejoining with the current global model. An update is
counted at most once (the server accepts each task id once).

Ray is optional (the ``[distributed]`` extra); it is imported when a ``RayEngine`` is made.
"""

from __future__ import annotations

import copy
import heapq
import math
import sys
import time
from typing import Any

import numpy as np

from adaptloop.distributed.client import Client
from adaptloop.distributed.engine import Engine, OnTime, RuleRun
from adaptloop.distributed.federation import Federation, RunTrace
from adaptloop.distributed.rules.base import AggregationRule
from adaptloop.distributed.server import Task
from adaptloop.parameters import declared
from adaptloop.validation import Count, NonNegativeInt, NonNegativeReal, PositiveReal

_ACTOR_CLASS: Any = None


def import_ray() -> Any:
    """The ``ray`` module, or an ImportError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ImportError(
            "the Ray engine needs Ray: pip install 'adaptloop[distributed]' (ray==2.58.0)"
        ) from None
    return ray


class _ClientActor:
    """A client in its own process: runs a task, then sleeps out its simulated duration.

    A spare actor starts without a client and gets one with :meth:`reset` (a restart without
    waiting for a new process to start and import the package). Torch, once a client's learner
    has loaded it, runs on one thread (many small clients share the cores). A client is warmed
    up with one throwaway local step on a copy of it, so that a library's lazy start (torch's
    first step in a process takes seconds) is not counted against the first task's timeout."""

    def __init__(self, client: Client | None = None) -> None:
        self.reset(client)

    def reset(self, client: Client | None) -> None:
        self.client = client
        if client is not None:
            copy.deepcopy(client).run(client.split.flatten(client.split.template), 1, 0.0)
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.set_num_threads(1)

    def run(
        self, task_id: int, model: np.ndarray, steps: int, at: float, seconds: float, options: dict
    ) -> tuple[int, np.ndarray, int, float, Any]:
        started = time.perf_counter()
        delta, n = self.client.run(model, steps, at, **options)
        compute = time.perf_counter() - started
        time.sleep(max(0.0, seconds - compute))
        return task_id, delta, n, compute, self.client.report


def _actor_class(ray: Any) -> Any:
    global _ACTOR_CLASS
    if _ACTOR_CLASS is None:
        _ACTOR_CLASS = ray.remote(max_restarts=0, max_task_retries=0)(_ClientActor)
    return _ACTOR_CLASS


@declared
class RayEngine(Engine):
    """Runs a rule with clients as Ray actors (``address``: a cluster to join, None: local).

    ``num_cpus`` is the CPU share each client actor reserves (small: clients mostly sleep);
    ``local_cpus`` the CPUs of a Ray started here; ``spares`` idle actors are kept started, so
    a failed client restarts in a process that is already up. Actors are kept between runs (over
    the same federation, or given the clients of another one with as many clients);
    :meth:`close` ends them (and a Ray this engine started).
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        time_unit_s: PositiveReal = 0.02,
        num_cpus: NonNegativeReal = 0.01,
        local_cpus: Count | None = None,
        spares: NonNegativeInt = 1,
    ) -> None:
        self.ray = import_ray()
        self.address = address or None
        self.time_unit_s = time_unit_s
        self.num_cpus = num_cpus
        self.local_cpus = local_cpus
        self.spares = spares
        self.actors: list[Any] = []
        self._spare_actors: list[Any] = []
        self._federation: Federation | None = None
        self._generation: list[int] = []
        self._started_ray = False

    # -- actors -------------------------------------------------------------------------------
    def _connect(self) -> None:
        ray = self.ray
        if not ray.is_initialized():
            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.address is None and self.local_cpus is not None:
                options["num_cpus"] = self.local_cpus
            ray.init(address=self.address, **options)
            self._started_ray = self.address is None

    def _new_actor(self, client: Client | None) -> Any:
        cls = _actor_class(self.ray).options(num_cpus=self.num_cpus)
        return cls.remote(client)

    def _prepare(self, federation: Federation) -> None:
        self._connect()
        if self._federation is federation and len(self.actors) == federation.n_clients:
            return
        self._generation = [0] * federation.n_clients
        if len(self.actors) == federation.n_clients:  # same size: the processes are reused
            self._federation = federation
            clients = [federation.make_client(i) for i in range(federation.n_clients)]
            self.ray.get([a.reset.remote(c) for a, c in zip(self.actors, clients, strict=True)])
            return
        self._kill_all()
        self._federation = federation
        self.actors = [
            self._new_actor(federation.make_client(i)) for i in range(federation.n_clients)
        ]
        self._spare_actors = [self._new_actor(None) for _ in range(self.spares)]
        self.ray.get([a.__ray_ready__.remote() for a in self.actors + self._spare_actors])

    def _replace(self, federation: Federation, index: int) -> Any:
        """Kill client ``index``'s actor, give the client a new one (a spare when there is one);
        returns a reference that is ready when the new actor is."""
        self.ray.kill(self.actors[index], no_restart=True)
        self._generation[index] += 1
        client = federation.make_client(index, self._generation[index])
        if self._spare_actors:
            actor = self._spare_actors.pop(0)
            ready = actor.reset.remote(client)
            self._spare_actors.append(self._new_actor(None))  # starts in the background
        else:
            actor = self._new_actor(client)
            ready = actor.__ray_ready__.remote()
        self.actors[index] = actor
        return ready

    def _kill_all(self) -> None:
        for actor in self.actors + self._spare_actors:
            self.ray.kill(actor, no_restart=True)
        self.actors, self._spare_actors = [], []

    def close(self) -> None:
        """End the client actors, and Ray itself if this engine started it."""
        if self.ray.is_initialized():
            self._kill_all()
            if self._started_ray:
                self.ray.shutdown()
        self._federation = None

    # -- a run --------------------------------------------------------------------------------
    def execute(
        self, federation: Federation, rule: AggregationRule, on_time: OnTime | None, name: str
    ) -> RunTrace:
        """Run until ``federation.duration`` units of wall-clock time have passed."""
        self._prepare(federation)
        return _RayRun(self, federation, rule, on_time, name).run()


class _RayRun(RuleRun):
    def __init__(
        self,
        engine: RayEngine,
        fed: Federation,
        rule: AggregationRule,
        on_time: OnTime | None,
        name: str,
    ) -> None:
        super().__init__(fed, rule, on_time, name, RayEngine.name)
        self.engine = engine
        self.ray = engine.ray
        self.inflight: dict[Any, Task] = {}
        self.deadlines: list[tuple[float, int]] = []  # (time, task id)
        self.timers: list[float] = []
        self.restarts: list[tuple[float, int]] = []
        self.starting: dict[Any, int] = {}  # readiness of restarted actors -> client

    def clock(self) -> float:
        return (time.perf_counter() - self.started) / self.engine.time_unit_s

    def send(self, tasks: list[Task], now: float) -> None:
        for at in self.server.take_timers():
            heapq.heappush(self.timers, at)
        unit = self.engine.time_unit_s
        for task in tasks:
            seconds = self.fed.task_duration(task.client, task.steps, self.rng) * unit
            actor = self.engine.actors[task.client]
            ref = actor.run.remote(
                task.task_id, self.outgoing(task), task.steps, now, seconds, task.options
            )
            self.inflight[ref] = task
            if math.isfinite(self.fed.timeout):
                heapq.heappush(self.deadlines, (now + self.fed.timeout, task.task_id))

    def fail(self, client: int, now: float) -> None:
        if client not in self.server.alive:
            return
        for ref in [r for r, t in self.inflight.items() if t.client == client]:
            del self.inflight[ref]
        self.engine.ray.kill(self.engine.actors[client], no_restart=True)
        self.send(self.server.fail(client, now), now)
        if self.fed.restart_after is not None:
            heapq.heappush(self.restarts, (now + self.fed.restart_after, client))

    def _collect(self, ref: Any, now: float) -> None:
        client = self.starting.pop(ref, None)
        if client is not None:  # a restarted actor is up: the client rejoins
            self.send(self.server.rejoin(client, now), now)
            return
        task = self.inflight.pop(ref, None)
        if task is None:
            return
        try:
            task_id, delta, n, compute, report = self.ray.get(ref)
        except Exception:  # the task raised or the actor died: the client failed
            self.fail(task.client, now)
            return
        self.trace.learn_seconds += compute
        self.send(self.receive(task_id, delta, n, now, report), now)

    def _due(self, now: float, evals: list[float]) -> None:
        while self.timers and self.timers[0] <= now:
            heapq.heappop(self.timers)
            self.send(self.server.timer(now), now)
        while self.deadlines and self.deadlines[0][0] <= now:
            _, task_id = heapq.heappop(self.deadlines)
            late = [t for t in self.inflight.values() if t.task_id == task_id]
            if late and late[0] in self.server.outstanding(late[0].client):
                self.fail(late[0].client, now)
        while self.restarts and self.restarts[0][0] <= now:
            _, client = heapq.heappop(self.restarts)
            self.starting[self.engine._replace(self.fed, client)] = client
        while evals and evals[0] <= now and evals[0] < self.fed.duration:
            evals.pop(0)
            self.evaluate(now)

    def run(self) -> RunTrace:
        fed, server = self.fed, self.server
        evals = fed.eval_times()
        self.started = time.perf_counter()
        self.send(server.start(0.0), 0.0)
        while True:
            now = self.clock()
            self._due(now, evals)
            if now >= fed.duration:
                break
            wake = min(
                [
                    fed.duration,
                    *evals[:1],
                    *self.timers[:1],
                    *(d for d, _ in self.deadlines[:1]),
                    *(r for r, _ in self.restarts[:1]),
                ]
            )
            wait_s = max(0.0, (wake - now) * self.engine.time_unit_s)
            waiting = [*self.inflight, *self.starting]
            if not waiting:
                time.sleep(wait_s)
                continue
            ready, _ = self.ray.wait(waiting, num_returns=1, timeout=wait_s)
            for ref in ready:
                self._collect(ref, self.clock())
        server.finish(fed.duration)
        self.evaluate(fed.duration)
        self._drain()
        return self.close()

    def _drain(self) -> None:
        """Let the tasks still in flight finish (the actors are reused); replace the hung."""
        if not self.inflight:
            return
        limit = self.fed.timeout if math.isfinite(self.fed.timeout) else self.fed.duration
        refs = list(self.inflight)
        _, stuck = self.ray.wait(
            refs, num_returns=len(refs), timeout=limit * self.engine.time_unit_s
        )
        for ref in stuck:
            self.engine._replace(self.fed, self.inflight[ref].client)
