"""FedAvg-M and SCAFFOLD-M: local steps mixed with the last round's global direction.

Cheng, Huang, Wu & Yuan, "Momentum Benefits Non-IID Federated Learning Simply and Provably"
(ICLR 2024), Algorithm 1 (FedAvg-M) and Algorithm 2 (SCAFFOLD-M). Every local step of a
client uses the momentum direction ``g_r`` of the last round, shared by all clients:

    FedAvg-M:    g = beta grad F_i(x; xi) + (1 - beta) g_r
    SCAFFOLD-M:  g = beta (grad F_i(x; xi) - c_i + c) + (1 - beta) g_r
    x <- x - eta g   (K local steps)

then ``g_{r+1} = (1 / (eta S K)) sum_{i in S_r} (x_r - x_r^{i,K})`` and ``x_{r+1} = x_r - gamma
g_{r+1}``; SCAFFOLD-M's control variates become ``c_i <- (1/K) sum_k grad F_i(x^{i,k})`` for the
clients of the round and ``c <- c + (1/N) sum_{i in S_r} (c_i^new - c_i)``. ``beta = 1`` gives
FedAvg and SCAFFOLD; the momentum lets FedAvg converge without bounded heterogeneity and
SCAFFOLD converge faster under partial participation (the paper's Theorems 1 and 3).

Here a client's learner takes its own step ``s(x) = -eta grad F_i(x; xi)`` (plain SGD with its
rate ``eta``) and the rule asks it (:meth:`~adaptloop.distributed.client.Client.run`) to take

    x <- x + beta s(x) + correction,   correction = beta (C_i - C) + (1 - beta) D_r

with everything in model units: ``D_r = -eta g_r`` is the average delta per local step of the
last round, ``C_i = eta c_i`` (so SCAFFOLD-M's new ``C_i = (correction - Delta_i / K) / beta``
follows from the delta ``Delta_i`` it returns). The server step is FedAvg's, ``x + server_lr
sum_k (n_k / n) Delta_k`` (the paper's ``gamma`` is ``server_lr * eta * K``).

Deviations: ``g_0 = 0`` (the first round is FedAvg's with local rate ``beta eta``); the server
keeps every client's ``C_i`` (the paper's clients keep their own; the numbers are the same); the
averages weigh clients by their data share (equal shards: the paper's ``1 / S``). With a
learner that is not plain SGD (Adam, standardised inputs whose statistics move), ``s(x)`` is
that learner's step and the correspondence with the paper's update is approximate.

>>> import numpy as np
>>> from adaptloop.distributed.rules.base import ServerView, Update
>>> rule = FedAvgM(clients_per_round=1, local_steps=2, beta=0.5)
>>> view = ServerView(0.0, np.zeros(1), 0, frozenset({0}), frozenset(), np.ones(1),
...                   np.random.default_rng(0))
>>> rule.round_closed([0], [Update(0, 0, np.array([4.0]), 0, 8, 2, 0.0, 1.0)], view)
>>> a = rule.assignment(0, view)
>>> a.scale, a.correction.tolist()  # half the learner's step, plus half of 4 / 2 per step
(0.5, [1.0])
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from annotated_types import Gt, Le

from adaptloop.distributed.aggregate import Robust, RobustFraction, weighted_sum
from adaptloop.distributed.rules.base import Assignment, ServerView, Update
from adaptloop.distributed.rules.base import registry as rules
from adaptloop.distributed.rules.fedavg import FedAvg
from adaptloop.validation import Count, PositiveReal, Real

Beta = Annotated[Real, Gt(0), Le(1)]
"""The weight of the fresh gradient in a momentum step: a number in (0, 1]."""


@rules.register("fedavg_m")
class FedAvgM(FedAvg):
    """FedAvg-M: every local step mixed with the last round's average step (see the module)."""

    def __init__(
        self,
        clients_per_round: Count = 8,
        local_steps: Count = 5,
        server_lr: PositiveReal = 1.0,
        beta: Beta = 0.5,
        robust: Robust = "mean",
        robust_fraction: RobustFraction = 0.25,
    ) -> None:
        super().__init__(clients_per_round, local_steps, server_lr, robust, robust_fraction)
        self.beta = beta
        self._momentum: np.ndarray | None = None  # D_r

    def correction(self, client: int) -> np.ndarray | None:
        """What ``client`` adds after every local step this round (None: nothing yet)."""
        if self._momentum is None:
            return None
        return (1.0 - self.beta) * self._momentum

    def assignment(self, client: int, view: ServerView) -> Assignment:
        return Assignment(
            client, self.local_steps, scale=self.beta, correction=self.correction(client)
        )

    def round_closed(self, chosen: list[int], updates: list[Update], view: ServerView) -> None:
        if updates:
            per_step = [u.delta / u.steps for u in updates]
            self._momentum = weighted_sum(per_step, self.coefficients(updates, view))


@rules.register("scaffold_m")
class ScaffoldM(FedAvgM):
    """SCAFFOLD-M: FedAvg-M plus SCAFFOLD's control variates (see the module)."""

    def __init__(
        self,
        clients_per_round: Count = 8,
        local_steps: Count = 5,
        server_lr: PositiveReal = 1.0,
        beta: Beta = 0.5,
        robust: Robust = "mean",
        robust_fraction: RobustFraction = 0.25,
    ) -> None:
        super().__init__(clients_per_round, local_steps, server_lr, beta, robust, robust_fraction)
        self._controls: dict[int, np.ndarray] = {}  # C_i
        self._control: np.ndarray | None = None  # C, the mean over all clients
        self._sent: dict[int, np.ndarray] = {}

    def correction(self, client: int) -> np.ndarray | None:
        momentum = super().correction(client)
        own, mean = self._controls.get(client), self._control
        drift = None
        if mean is not None:
            drift = self.beta * ((own if own is not None else 0.0) - mean)
        if drift is None:
            return momentum
        return drift if momentum is None else drift + momentum

    def assignment(self, client: int, view: ServerView) -> Assignment:
        task = super().assignment(client, view)
        self._sent[client] = task.correction if task.correction is not None else 0.0
        return task

    def round_closed(self, chosen: list[int], updates: list[Update], view: ServerView) -> None:
        super().round_closed(chosen, updates, view)
        n = len(view.weights)
        for u in updates:
            new = (self._sent.pop(u.client, 0.0) - u.delta / u.steps) / self.beta
            old = self._controls.get(u.client)
            change = new if old is None else new - old
            self._control = change / n if self._control is None else self._control + change / n
            self._controls[u.client] = new
