"""FedAvg: synchronous rounds over a sample of clients (McMahan et al. 2017).

Follows Algorithm 1 (*FederatedAveraging*) of "Communication-Efficient Learning of Deep Networks
from Decentralized Data": each round the server samples ``clients_per_round`` of the available
clients (``m = max(C * K, 1)``), sends them the global model, each runs ``local_steps``
minibatch steps (``E`` epochs of ``B`` in the paper; here a number of steps, since the streams
have no epochs) and the server waits for all of them, then sets

    w_{t+1} = w_t + server_lr * sum_k (n_k / n) * (w^k_{t+1} - w_t)

(``n_k`` the samples client ``k`` used this round, ``n`` their sum). With ``server_lr = 1`` this
is the paper's ``w_{t+1} = sum_k (n_k / n) w^k_{t+1}``. ``robust`` replaces the weighted mean by
a Byzantine-robust block (:class:`~adaptloop.distributed.aggregate.RobustBlock`, with the same
weights ``n_k / n``; ``robust_fraction`` the share of inputs assumed Byzantine). Deviation: a
sampled client that fails (timeout, crash) is dropped from the round, which closes with the
others, instead of stalling.

Under a participation model (:mod:`~adaptloop.distributed.participation`) the server samples
among the clients available in the round (round ``t`` is the ``t``-th sampling); a round in
which none is available is skipped, and the next one starts ``WAIT`` (one time unit) later. The
subclasses for partial participation (FedAU, FedHyper, FedAvg-M, anchor sampling) change the
weights of the average (:meth:`FedAvg.coefficients`), the server step
(:meth:`FedAvg.server_model`), what a client is asked to do (:meth:`FedAvg.assignment`) and
what is remembered when a round closes (:meth:`FedAvg.round_closed`).

>>> import numpy as np
>>> from adaptloop.distributed.rules.base import ServerView, Update
>>> rule = FedAvg(clients_per_round=2, local_steps=1)
>>> view = ServerView(0.0, np.zeros(1), 0, frozenset({0, 1, 2}), frozenset(), np.ones(3) / 3,
...                   np.random.default_rng(0))
>>> sorted(a.client for a in rule.start(view).dispatch)
[1, 2]
>>> view = ServerView(1.0, np.zeros(1), 0, view.alive, frozenset({1}), view.weights, view.rng)
>>> rule.on_update(Update(0, 2, np.array([1.0]), 0, 10, 1, 0.0, 1.0), view).model is None
True
>>> view = ServerView(2.0, np.zeros(1), 0, view.alive, frozenset(), view.weights, view.rng)
>>> plan = rule.on_update(Update(1, 1, np.array([4.0]), 0, 30, 1, 0.0, 2.0), view)
>>> plan.model.tolist(), len(plan.dispatch)
([3.25], 2)
"""

from __future__ import annotations

import numpy as np

from adaptloop.distributed.aggregate import (
    Robust,
    RobustBlock,
    RobustFraction,
    server_step,
    shares,
)
from adaptloop.distributed.rules.base import (
    AggregationRule,
    Assignment,
    Plan,
    ServerView,
    Update,
    robust_aggregate,
    robust_influence,
)
from adaptloop.distributed.rules.base import registry as rules
from adaptloop.validation import Count, PositiveReal

WAIT = 1.0
"""Time units between a round without any available client and the next round."""


@rules.register("fedavg")
class FedAvg(AggregationRule):
    """Synchronous FedAvg: sample clients, wait for all of them, average their deltas."""

    def __init__(
        self,
        clients_per_round: Count = 8,
        local_steps: Count = 5,
        server_lr: PositiveReal = 1.0,
        robust: Robust = "mean",
        robust_fraction: RobustFraction = 0.25,
    ) -> None:
        self.clients_per_round = clients_per_round
        self.local_steps = local_steps
        self.server_lr = server_lr
        self.robust, self.robust_fraction = robust, robust_fraction
        self._block = RobustBlock(robust, robust_fraction)
        self._pending: set[int] = set()
        self._received: list[Update] = []
        self._chosen: list[int] = []
        self._round = 0  # the rounds sampled so far (the participation model's round index)
        self._waiting = False

    # -- what subclasses change ---------------------------------------------------------------
    def contributions(self, updates: list[Update]) -> list[Update]:
        """The round's updates that move the global model (all of them by default)."""
        return updates

    def coefficients(self, updates: list[Update], view: ServerView) -> list[float]:
        """The weights ``c_k`` of the round's sum ``sum_k c_k delta_k``: ``n_k / n``."""
        return shares([u.n_samples for u in updates])

    def server_model(self, view: ServerView, direction: np.ndarray) -> np.ndarray:
        """The new global model from the round's direction: ``w + server_lr * direction``."""
        return server_step(view.model, direction, self.server_lr)

    def assignment(self, client: int, view: ServerView) -> Assignment:
        """The task ``client`` is sent this round: ``local_steps`` from the global model."""
        return Assignment(client, self.local_steps)

    def round_closed(self, chosen: list[int], updates: list[Update], view: ServerView) -> None:
        """A round closed: ``chosen`` were sampled, ``updates`` arrived (nothing by default)."""

    # -- rounds -------------------------------------------------------------------------------
    def _new_round(self, view: ServerView, model: np.ndarray | None = None) -> Plan:
        available = view.participating(self._round)
        self._round += 1
        m = min(self.clients_per_round, len(available))
        chosen = sorted(view.rng.choice(available, size=m, replace=False).tolist()) if m else []
        self._pending = set(chosen)
        self._chosen = chosen
        self._received = []
        plan = Plan(model=model, dispatch=[self.assignment(c, view) for c in chosen])
        if not chosen and view.idle and not self._waiting:  # nobody available this round
            self._waiting = True
            self.round_closed([], [], view)
            plan.timers.append(view.now + WAIT)
        return plan

    def _close_round(self, view: ServerView) -> Plan:
        model, influence = None, []
        updates = self.contributions(self._received)
        if updates:
            deltas = [u.delta for u in updates]
            coefficients = self.coefficients(updates, view)
            step, kept = robust_aggregate(self._block, deltas, coefficients, view, self.local_steps)
            model = self.server_model(view, step)
            influence = robust_influence(updates, kept, self.robust)
        self.round_closed(self._chosen, self._received, view)
        plan = self._new_round(view, model)
        plan.influence = influence
        return plan

    def on_timer(self, view: ServerView) -> Plan:
        self._waiting = False
        return self._new_round(view) if not self._pending else Plan()

    def start(self, view: ServerView) -> Plan:
        return self._new_round(view)

    def on_update(self, update: Update, view: ServerView) -> Plan:
        self._received.append(update)
        self._pending.discard(update.client)
        return self._close_round(view) if not self._pending else Plan()

    def on_failure(self, client: int, view: ServerView) -> Plan:
        if client not in self._pending:
            return Plan()
        self._pending.discard(client)
        return self._close_round(view) if not self._pending else Plan()

    def on_rejoin(self, client: int, view: ServerView) -> Plan:
        # a rejoining client waits for the next round's sampling, unless no round is running
        return self._new_round(view) if not self._pending else Plan()
