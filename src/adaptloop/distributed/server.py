"""The server: the global model, its version, the clients' status and exactly-once counting.

Every task sent gets a unique id. An arriving update is accepted only if its id is still
outstanding: a second delivery of the same update (a retry) or a late one (from a client
already marked failed) is dropped and counted, never applied. A failed client gets no tasks
until it rejoins, and then starts from the current global model (or the model its rule gives).

With ``statistics`` (the :class:`~adaptloop.distributed.sharing.StatisticsBlocks` of the
vectors), the running standardisation statistics in the vectors are not the rule's business: the
server merges the samples behind every accepted update into one pooled total, gives the rule the
delta without them, and writes the pooled total into every new global model and every model a
rule sends a client on its own (gossip: a central step, where a fully decentralised run would
gossip the statistics too).

>>> import numpy as np
>>> from adaptloop.distributed.rules import FedBuff
>>> server = Server(FedBuff(buffer_size=1, local_steps=2), np.zeros(1), np.ones(2) / 2)
>>> tasks = server.start(0.0)
>>> [(t.task_id, t.client, t.steps) for t in tasks]
[(0, 0, 2), (1, 1, 2)]
>>> [t.client for t in server.receive(0, np.array([1.0]), 4, 1.0)]
[0]
>>> server.receive(0, np.array([1.0]), 4, 1.5)
[]
>>> server.model.tolist(), server.version, server.counts["accepted"], server.counts["duplicate"]
([1.0], 1, 1, 1)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from adaptloop.distributed.aggregate import DOWN_WEIGHTED
from adaptloop.distributed.participation import ParticipationSchedule
from adaptloop.distributed.rules.base import (
    AggregationRule,
    ClientHook,
    Plan,
    ServerView,
    Update,
)
from adaptloop.distributed.sharing import StatisticsBlocks


@dataclass(frozen=True)
class Task:
    """Work sent to a client: ``steps`` local steps from ``model`` (global version ``version``),
    taken as its rule's :class:`~adaptloop.distributed.rules.base.Assignment` says
    (:attr:`options`)."""

    task_id: int
    client: int
    steps: int
    model: np.ndarray
    version: int
    sent_at: float
    scale: float = 1.0
    correction: np.ndarray | None = None
    batch_size: int | None = None
    sam_rho: float = 0.0
    hook: ClientHook | None = None

    @property
    def options(self) -> dict:
        """How to take the local steps: the keyword arguments of ``Client.run``."""
        return {
            "scale": self.scale,
            "correction": self.correction,
            "batch_size": self.batch_size,
            "sam_rho": self.sam_rho,
            "hook": self.hook,
        }


class Server:
    """Runs one aggregation rule: applies its plans, tracks tasks, clients and counts.

    ``weights`` are the clients' data shares (``p_i``); ``seed`` seeds the rule's generator;
    ``statistics`` are the vectors' statistics blocks (merged here, see the module docstring);
    ``schedule`` the participation model's (None: full participation);
    ``pooled`` holds, in those blocks, the statistics of every sample accepted so far.
    ``counts`` holds ``accepted`` updates, ``duplicate`` and ``late`` (dropped) deliveries,
    ``failures``, ``rejoins``, ``samples`` (behind accepted updates) and ``down_weighted``
    (updates a rule's robust block gave an influence below one half; per client in
    ``down_weighted_by_client``, every influence in ``influence`` as ``(time, client, value)``);
    ``accepted_by_client`` the accepted updates per client, ``last_update_at`` the time of each
    client's last accepted update, ``events`` the failures and rejoins as ``(time, kind,
    client)``; ``messages`` the model-sized messages sent (a task's model to its client and
    every delivery of an update back, for a server rule; the nodes' own exchanges for a
    decentralised one), :attr:`bytes_sent` their bytes. ``layers`` are the parameter tensors'
    spans in the vector (:attr:`ServerView.layers`); ``root`` the server's own trainer on its
    root data (:attr:`ServerView.root`, see :meth:`Federation.root_trainer
    <adaptloop.distributed.federation.Federation.root_trainer>`).
    """

    def __init__(
        self,
        rule: AggregationRule,
        model: np.ndarray,
        weights: np.ndarray,
        seed: int = 0,
        statistics: StatisticsBlocks | None = None,
        schedule: ParticipationSchedule | None = None,
        layers: tuple[tuple[int, int], ...] = (),
        root: Callable[[np.ndarray, int, float], np.ndarray] | None = None,
    ) -> None:
        self.rule = rule
        self.root = root
        self.schedule = schedule
        self.layers = tuple(layers)
        self.model = np.asarray(model, dtype=np.float64).copy()
        self.statistics = statistics or StatisticsBlocks([])
        self.pooled = self.model.copy()  # its statistics blocks: every sample accepted so far
        self.version = 0
        self.weights = np.asarray(weights, dtype=np.float64)
        self.alive: set[int] = set(range(len(self.weights)))
        self.counts: Counter[str] = Counter()
        self.accepted_by_client: Counter[int] = Counter()
        self.last_update_at: dict[int, float] = {}
        self.events: list[tuple[float, str, int]] = []
        self.influence: list[tuple[float, int, float]] = []
        self.down_weighted_by_client: Counter[int] = Counter()
        self._rng = np.random.default_rng([seed, 10])
        self._outstanding: dict[int, Task] = {}
        self._accepted: set[int] = set()
        self._next_id = 0
        self._timers: list[float] = []

    # -- state ----------------------------------------------------------------------------------
    def view(self, now: float) -> ServerView:
        busy = frozenset(t.client for t in self._outstanding.values())
        return ServerView(
            now,
            self.model,
            self.version,
            frozenset(self.alive),
            busy,
            self.weights,
            self._rng,
            self.schedule,
            self.layers,
            self.root,
        )

    @property
    def bytes_sent(self) -> int:
        """Bytes of every model-sized message sent so far (float64 vectors)."""
        return self.counts["messages"] * self.model.nbytes

    def outstanding(self, client: int | None = None) -> list[Task]:
        """Tasks sent and not yet answered (of ``client``, or all)."""
        return [t for t in self._outstanding.values() if client is None or t.client == client]

    def task(self, task_id: int) -> Task | None:
        """The outstanding task ``task_id`` (None: answered, dropped or never sent)."""
        return self._outstanding.get(task_id)

    def take_timers(self) -> list[float]:
        """Times the rule asked to be woken at since the last call."""
        timers, self._timers = self._timers, []
        return timers

    def _apply(self, plan: Plan, now: float) -> list[Task]:
        self.counts["messages"] += int(plan.messages)
        for client, influence in plan.influence:
            self.influence.append((float(now), client, float(influence)))
            if influence < DOWN_WEIGHTED:
                self.counts["down_weighted"] += 1
                self.down_weighted_by_client[client] += 1
        if plan.model is not None:
            if plan.model.shape != self.model.shape or not np.all(np.isfinite(plan.model)):
                raise ValueError(
                    f"{type(self.rule).__name__} produced a global model that is not a finite "
                    f"vector of shape {self.model.shape}"
                )
            self.model = self.statistics.publish(plan.model, self.pooled)
            self.version += 1
        tasks = []
        busy = {t.client for t in self._outstanding.values()}
        for assignment in plan.dispatch:
            if assignment.client not in self.alive:
                continue
            if assignment.client in busy:
                raise RuntimeError(
                    f"{type(self.rule).__name__} sent a task to client {assignment.client}, "
                    "which still has one"
                )
            model = assignment.model
            model = self.model if model is None else self.statistics.publish(model, self.pooled)
            task = Task(
                self._next_id,
                assignment.client,
                assignment.steps,
                model,
                self.version,
                now,
                assignment.scale,
                assignment.correction,
                assignment.batch_size,
                assignment.sam_rho,
                assignment.hook,
            )
            if not self.rule.decentralised:
                self.counts["messages"] += 1  # the model, to the client
            self._next_id += 1
            self._outstanding[task.task_id] = task
            busy.add(task.client)
            tasks.append(task)
        self._timers.extend(plan.timers)
        return tasks

    # -- events ---------------------------------------------------------------------------------
    def start(self, now: float) -> list[Task]:
        """The rule's first tasks."""
        return self._apply(self.rule.start(self.view(now)), now)

    def receive(
        self, task_id: int, delta: np.ndarray, n_samples: int, now: float, report: Any = None
    ) -> list[Task]:
        """An update for task ``task_id`` arrived (with its hook's ``report``, see
        :attr:`Update.report`); returns the tasks to send next."""
        if not self.rule.decentralised:
            self.counts["messages"] += 1  # the update, to the server (counted or dropped)
        task = self._outstanding.pop(task_id, None)
        if task is None:
            self.counts["duplicate" if task_id in self._accepted else "late"] += 1
            return []
        self._accepted.add(task_id)
        self.counts["accepted"] += 1
        self.counts["samples"] += int(n_samples)
        self.accepted_by_client[task.client] += 1
        self.last_update_at[task.client] = now
        delta = np.asarray(delta, dtype=np.float64)
        if self.statistics:
            self.pooled = self.statistics.absorb(self.pooled, task.model, delta)
            delta = self.statistics.strip(delta)
        update = Update(
            task_id,
            task.client,
            delta,
            task.version,
            int(n_samples),
            task.steps,
            task.sent_at,
            now,
            report,
        )
        return self._apply(self.rule.on_update(update, self.view(now)), now)

    def fail(self, client: int, now: float) -> list[Task]:
        """Mark ``client`` failed (its open tasks will never count); returns tasks to send."""
        if client not in self.alive:
            return []
        self.alive.discard(client)
        for task in self.outstanding(client):
            del self._outstanding[task.task_id]
        self.counts["failures"] += 1
        self.events.append((now, "failed", client))
        return self._apply(self.rule.on_failure(client, self.view(now)), now)

    def rejoin(self, client: int, now: float) -> list[Task]:
        """``client`` is back; returns the tasks to send (by default: to it, the global model)."""
        if client in self.alive:
            return []
        self.alive.add(client)
        self.counts["rejoins"] += 1
        self.events.append((now, "rejoined", client))
        return self._apply(self.rule.on_rejoin(client, self.view(now)), now)

    def timer(self, now: float) -> list[Task]:
        """A time the rule asked for has come."""
        return self._apply(self.rule.on_timer(self.view(now)), now)

    def finish(self, now: float) -> None:
        """The run ends: the rule may set the final model; no more tasks are sent."""
        plan = self.rule.finish(self.view(now))
        self._apply(Plan(model=plan.model), now)
