"""What an aggregation rule sees and decides, independent of the engine that runs it.

The server hands a rule each event — the start, an arriving :class:`Update`, a timer it asked
for, a failed or a rejoining client, the end — together with a read-only :class:`ServerView`
(clock, global model vector and version, which clients are alive and busy). The rule answers
with a :class:`Plan`: an optional new global model (a server step), the clients to send work to
(:class:`Assignment`: how many local steps, from the new global model unless the rule gives
another one) and the times it wants to be woken up at. The engine provides the clock and the
transport; the rule never sees either. The arithmetic of aggregation (weighted means,
staleness weights, server steps) is in :mod:`~adaptloop.distributed.aggregate`.

>>> view = ServerView(0.0, np.zeros(1), 2, frozenset({0, 1}), frozenset({1}), np.ones(2) / 2,
...                   np.random.default_rng(0))
>>> view.idle, view.staleness(Update(0, 0, np.zeros(1), 0, 8, 1, 0.0, 1.0))
([0], 2)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from adaptloop.distributed.aggregate import RobustBlock
from adaptloop.distributed.participation import ParticipationSchedule
from adaptloop.registry import Registry

if TYPE_CHECKING:
    from adaptloop.distributed.client import Client

registry = Registry("aggregation rule")
"""Aggregation rules by name; each rule module registers with ``@registry.register``."""


@dataclass(frozen=True)
class Update:
    """A client's result: ``delta`` = trained vector - the vector of version ``base_version``.

    ``update_id`` is the id of the task it answers (unique per run: the server counts each id
    at most once); ``time`` is when it arrived, ``sent_at`` when its task was sent; ``report``
    what its task's :class:`ClientHook` reported (None: no hook, or nothing to report).
    """

    update_id: int
    client: int
    delta: np.ndarray
    base_version: int
    n_samples: int
    steps: int
    sent_at: float
    time: float
    report: Any = None


class ClientHook(Protocol):
    """Work a decentralised rule asks the client to do on its own data before its local steps
    (e.g. Bristle's integration of its peers' models): ``hook(client, model, time)`` returns the
    model the client trains from (its delta is still taken against ``model``), or ``(model,
    report)``: a picklable ``report`` of what it decided travels back with the update
    (:attr:`Update.report`). It travels with the task, so it must be picklable (Ray)."""

    def __call__(
        self, client: Client, model: np.ndarray, time: float
    ) -> np.ndarray | tuple[np.ndarray, Any]: ...


@dataclass(frozen=True)
class Assignment:
    """Send ``client`` a task of ``steps`` local steps from ``model`` (None: the global model).

    How the client takes each local step (see :meth:`~adaptloop.distributed.client.Client.run`):
    ``scale`` multiplies the learner's own step, ``correction`` is added after every step (a
    drift correction or a momentum term, in model units), ``batch_size`` replaces the client's
    (None: its own), ``sam_rho > 0`` makes every step a sharpness-aware one of that radius;
    ``hook``: what the client does first (see :class:`ClientHook`)."""

    client: int
    steps: int
    model: np.ndarray | None = None
    scale: float = 1.0
    correction: np.ndarray | None = None
    batch_size: int | None = None
    sam_rho: float = 0.0
    hook: ClientHook | None = None


@dataclass
class Plan:
    """A rule's answer: new global ``model`` (None: unchanged), tasks to send, timers to set,
    the ``influence`` its robust block gave each update of the step, ``(client, influence)``
    (1: used as is, 0: rejected; see :class:`~adaptloop.distributed.aggregate.RobustBlock`),
    and the model-sized ``messages`` its nodes sent each other (a decentralised rule's gossip;
    the server counts the messages to and from itself)."""

    model: np.ndarray | None = None
    dispatch: list[Assignment] = field(default_factory=list)
    timers: list[float] = field(default_factory=list)
    influence: list[tuple[int, float]] = field(default_factory=list)
    messages: int = 0


@dataclass(frozen=True)
class ServerView:
    """What a rule may read: the clock, the global model and version, the clients' status.

    ``weights[i]`` is client ``i``'s share of the training data (``p_i``, summing to one);
    ``rng`` is the run's seeded generator (client sampling, gossip peers); ``schedule`` the
    participation model's schedule (None: every client in every round, see
    :mod:`~adaptloop.distributed.participation`); ``layers`` the ``(start, stop)`` spans of the
    model vector's parameter arrays (one per layer weight or bias; the vector's other entries
    are scalar counters and pooled statistics; empty: unknown); ``root`` the server's own
    trainer on its small root dataset (FLTrust's reference update, see :meth:`root_update`;
    None: the federation has no root data).
    """

    now: float
    model: np.ndarray
    version: int
    alive: frozenset[int]
    busy: frozenset[int]
    weights: np.ndarray
    rng: np.random.Generator
    schedule: ParticipationSchedule | None = None
    layers: tuple[tuple[int, int], ...] = ()
    root: Callable[[np.ndarray, int, float], np.ndarray] | None = None

    @property
    def idle(self) -> list[int]:
        """Alive clients without a task, in index order."""
        return sorted(self.alive - self.busy)

    def participating(self, round: int) -> list[int]:
        """The idle clients the participation model makes available in round ``round``."""
        if self.schedule is None:
            return self.idle
        present = self.schedule.present(round)
        return [c for c in self.idle if c in present]

    @property
    def probabilities(self) -> np.ndarray | None:
        """Every client's participation probability, if the server knows them (else None)."""
        if self.schedule is None:
            return np.ones(len(self.weights))
        return self.schedule.probabilities if self.schedule.known else None

    def staleness(self, update: Update) -> int:
        """Server steps taken since the update's task was sent."""
        return self.version - update.base_version

    def root_update(self, steps: int) -> np.ndarray:
        """The server's own delta: ``steps`` local steps from the global model on its root
        dataset, as a client's task takes them (``ValueError`` without root data)."""
        if self.root is None:
            raise ValueError(
                "robust = 'fltrust' needs the server's root data: set the federation's "
                "root_samples (rows of the stream no client holds)"
            )
        return self.root(self.model, steps, self.now)

    @property
    def parameter_entries(self) -> np.ndarray | None:
        """The model vector's entries inside :attr:`layers` (None: unknown, all)."""
        if not self.layers:
            return None
        return np.concatenate([np.arange(a, b) for a, b in self.layers])


class AggregationRule(ABC):
    """How the server turns arriving deltas into global models and what it asks of clients.

    Subclasses implement :meth:`start` and :meth:`on_update`; the other events default to
    doing nothing, except a rejoining client, which gets a task of ``local_steps`` at once.
    A ``decentralised`` rule has no server: its tasks are a node's own training (no message)
    and it reports the messages its nodes send each other in :attr:`Plan.messages`; its
    :meth:`node_models` are the models the nodes hold.
    """

    local_steps: int = 1
    decentralised: bool = False

    @abstractmethod
    def start(self, view: ServerView) -> Plan:
        """The first tasks (and timers)."""

    @abstractmethod
    def on_update(self, update: Update, view: ServerView) -> Plan:
        """An update arrived (each update id at most once, only from clients alive)."""

    def on_timer(self, view: ServerView) -> Plan:
        """A time the rule asked for has come."""
        return Plan()

    def on_failure(self, client: int, view: ServerView) -> Plan:
        """``client`` failed; its pending task will never be counted."""
        return Plan()

    def on_rejoin(self, client: int, view: ServerView) -> Plan:
        """``client`` is back (restarted); by default it starts from the current global model."""
        return Plan(dispatch=[Assignment(client, self.local_steps)])

    def finish(self, view: ServerView) -> Plan:
        """The run ends; a rule may still set the final model (e.g. a last merge)."""
        return Plan()

    def node_models(self) -> dict[int, np.ndarray] | None:
        """Each node's own model, by client (None: every client uses the global model)."""
        return None

    def params(self) -> dict[str, object]:
        """The constructor arguments (for the results summary)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}


def robust_aggregate(
    block: RobustBlock,
    deltas: Sequence[np.ndarray],
    coefficients: Sequence[float],
    view: ServerView,
    steps: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``block`` over ``deltas`` (see :class:`~adaptloop.distributed.aggregate.RobustBlock`),
    FLTrust's reference being the server's ``steps``-step update on its root data."""
    return block(deltas, coefficients, lambda: view.root_update(steps), view.parameter_entries)


def robust_influence(
    updates: list[Update], influence: np.ndarray, robust: str
) -> list[tuple[int, float]]:
    """``(client, influence)`` of each update a robust block weighed (none for ``"mean"``).

    >>> robust_influence([Update(0, 3, np.zeros(1), 0, 8, 1, 0.0, 1.0)], np.array([0.0]), "krum")
    [(3, 0.0)]
    """
    if robust == "mean":
        return []
    return [(u.client, float(k)) for u, k in zip(updates, influence, strict=True)]
