"""What an aggregation rule sees and decides, independent of the engine that runs it.

The server hands a rule each event — the start, an arriving :class:`Update`, a timer it asked
for, a failed or a rejoining client, the end — together with a read-only :class:`ServerView`
(clock, global model vector and version, which clients are alive and busy). The rule answers
with a :class:`Plan`: an optional new global model (a server step), the clients to send work to
(:class:`Assignment`: how many local steps, from the new global model unless the rule gives
another one) and the times it wants to be woken up at. The engine provides the clock and the
transport; the rule never sees either.

>>> staleness_weight(3, "sqrt"), staleness_weight(3, "poly", 1.0), staleness_weight(3, "none")
(0.5, 0.25, 1.0)
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from adaptloop.registry import Registry

registry = Registry("aggregation rule")
"""Aggregation rules by name; each rule module registers with ``@registry.register``."""

Staleness = Literal["none", "sqrt", "poly"]


@dataclass(frozen=True)
class Update:
    """A client's result: ``delta`` = trained vector - the vector of version ``base_version``.

    ``update_id`` is the id of the task it answers (unique per run: the server counts each id
    at most once); ``time`` is when it arrived, ``sent_at`` when its task was sent.
    """

    update_id: int
    client: int
    delta: np.ndarray
    base_version: int
    n_samples: int
    steps: int
    sent_at: float
    time: float


@dataclass(frozen=True)
class Assignment:
    """Send ``client`` a task of ``steps`` local steps from ``model`` (None: the global model)."""

    client: int
    steps: int
    model: np.ndarray | None = None


@dataclass
class Plan:
    """A rule's answer: new global ``model`` (None: unchanged), tasks to send, timers to set."""

    model: np.ndarray | None = None
    dispatch: list[Assignment] = field(default_factory=list)
    timers: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class ServerView:
    """What a rule may read: the clock, the global model and version, the clients' status.

    ``weights[i]`` is client ``i``'s share of the training data (``p_i``, summing to one);
    ``rng`` is the run's seeded generator (client sampling, gossip peers).
    """

    now: float
    model: np.ndarray
    version: int
    alive: frozenset[int]
    busy: frozenset[int]
    weights: np.ndarray
    rng: np.random.Generator

    @property
    def idle(self) -> list[int]:
        """Alive clients without a task, in index order."""
        return sorted(self.alive - self.busy)

    def staleness(self, update: Update) -> int:
        """Server steps taken since the update's task was sent."""
        return self.version - update.base_version


def staleness_weight(staleness: int, kind: Staleness = "sqrt", exponent: float = 0.5) -> float:
    """Down-weighting of an update computed ``staleness`` server steps ago.

    ``"sqrt"``: ``1 / sqrt(1 + staleness)`` (FedBuff, Nguyen et al. 2022, Sec. 5);
    ``"poly"``: ``(1 + staleness) ** -exponent`` (FedAsync's polynomial function, Xie et al.
    2019); ``"none"``: 1.
    """
    if kind == "none":
        return 1.0
    if kind == "sqrt":
        return 1.0 / math.sqrt(1.0 + staleness)
    if kind == "poly":
        return float((1.0 + staleness) ** -exponent)
    raise ValueError(f"staleness must be 'none', 'sqrt' or 'poly', got {kind!r}")


def check_int(value: object, name: str, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``, or a ValueError naming ``name``.

    >>> check_int(3, "local_steps")
    3
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_positive(value: object, name: str, upper: float | None = None) -> float:
    """``value`` as a finite float > 0 (and <= ``upper``), or a ValueError naming ``name``.

    >>> check_positive(0.5, "server_lr")
    0.5
    """
    bad = isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating))
    if bad or not math.isfinite(value) or value <= 0 or (upper is not None and value > upper):
        bound = f" and <= {upper}" if upper is not None else ""
        raise ValueError(f"{name} must be a number > 0{bound}, got {value!r}")
    return float(value)


class AggregationRule(ABC):
    """How the server turns arriving deltas into global models and what it asks of clients.

    Subclasses implement :meth:`start` and :meth:`on_update`; the other events default to
    doing nothing, except a rejoining client, which gets a task of ``local_steps`` at once.
    """

    local_steps: int = 1

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

    def params(self) -> dict[str, object]:
        """The constructor arguments (for the results summary)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}
