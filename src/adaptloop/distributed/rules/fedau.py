"""FedAU: FedAvg whose aggregation weights are estimated online from each client's participation.

Wang & Ji, "A Lightweight Method for Tackling Unknown Participation Statistics in Federated
Averaging" (ICLR 2024), Algorithm 1, and the authors' code (``IBM/fedau``, ``main.py``,
weighting ``adaptive``). With clients present in a round with unknown probabilities ``p_n``,
averaging the deltas of the clients present (FedAvg) optimises an objective weighted by ``p_n``
instead of the real one; weighting client ``n``'s delta by ``omega_n = 1 / p_n`` removes the
bias. FedAU estimates ``1 / p_n`` as the mean length of the intervals between client ``n``'s
participations, with three numbers per client (Algorithm 1, lines 9-18): the rounds since its
last participation ``S_n``, the number of intervals ``M_n`` and their running mean ``omega_n``.
After every round, for every client:

    participated:  interval = S_n + 1, S_n <- 0, then omega_n <- (M_n omega_n + interval) /
                   (M_n + 1), M_n <- M_n + 1 (the weight used in *this* round is the one before)
    absent:        S_n <- S_n + 1; if S_n = K (the ``cutoff``): the interval K is counted as
                   above and S_n <- 0

and the server step is (line 7, Eq. 2)

    x_{t+1} = x_t + server_lr * sum_{n in S_t} q_n omega_n Delta_n

with ``q_n`` the data share of client ``n`` (``1 / N`` in the paper, whose clients weigh alike;
it is that for equal shards). A client without any interval yet has ``omega_n = 1`` (as the
authors' code). ``weighting = "known"`` uses the true ``1 / p_n`` instead (the paper's oracle
baseline, needs ``[participation] known = true``). ``cutoff`` None is no cutoff (the authors'
default, ``K = 100000``). ``clients_per_round`` defaults to every client available (the paper's
clients all take part when present).

Deviations: a round is one FedAvg round over the clients the participation model makes
available (and the server samples, if ``clients_per_round`` is smaller); "participated" means
the client's update arrived before the round closed (a client that failed did not participate).

>>> import numpy as np
>>> from adaptloop.distributed.rules.base import ServerView, Update
>>> rule = FedAU(clients_per_round=2, local_steps=1)
>>> view = ServerView(0.0, np.zeros(1), 0, frozenset({0, 1}), frozenset(), np.ones(2) / 2,
...                   np.random.default_rng(0))
>>> def arrived(*clients):
...     return [Update(i, c, np.zeros(1), 0, 8, 1, 0.0, 1.0) for i, c in enumerate(clients)]
>>> for present in [(0, 1), (0,), (0,), (0, 1)]:  # client 1 is away for two rounds
...     rule.round_closed(list(present), arrived(*present), view)
>>> rule.weights(2).tolist()
[1.0, 2.0]
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from adaptloop.distributed.aggregate import Robust, RobustFraction
from adaptloop.distributed.rules.base import ServerView, Update
from adaptloop.distributed.rules.base import registry as rules
from adaptloop.distributed.rules.fedavg import FedAvg
from adaptloop.validation import Count, PositiveReal


@rules.register("fedau")
class FedAU(FedAvg):
    """FedAvg weighting each delta by its client's estimated ``1 / p_n`` (see the module)."""

    def __init__(
        self,
        clients_per_round: Count = 1_000_000,
        local_steps: Count = 5,
        server_lr: PositiveReal = 1.0,
        cutoff: Count | None = None,
        weighting: Literal["adaptive", "known"] = "adaptive",
        robust: Robust = "mean",
        robust_fraction: RobustFraction = 0.25,
    ) -> None:
        super().__init__(clients_per_round, local_steps, server_lr, robust, robust_fraction)
        self.cutoff = cutoff
        self.weighting = weighting
        self._since: dict[int, int] = {}  # S_n
        self._intervals: dict[int, int] = {}  # M_n
        self._omega: dict[int, float] = {}  # omega_n

    def weights(self, n_clients: int) -> np.ndarray:
        """The current estimates ``omega_n`` of ``1 / p_n`` (1 before a client's first interval)."""
        return np.array([self._omega.get(n, 1.0) for n in range(n_clients)])

    def coefficients(self, updates: list[Update], view: ServerView) -> list[float]:
        if self.weighting == "known":
            p = view.probabilities
            if p is None:
                raise ValueError(
                    "fedau weighting = 'known' needs the participation probabilities: set "
                    "[participation] known = true"
                )
            omega = 1.0 / np.maximum(p, 1e-12)
        else:
            omega = self.weights(len(view.weights))
        return [float(view.weights[u.client] * omega[u.client]) for u in updates]

    def round_closed(self, chosen: list[int], updates: list[Update], view: ServerView) -> None:
        present = {u.client for u in updates}
        cutoff = self.cutoff
        for n in range(len(view.weights)):
            since = self._since.get(n, 0)
            if n in present:
                self._count(n, since + 1)
                self._since[n] = 0
            elif cutoff is not None and since + 1 >= cutoff:
                self._count(n, cutoff)
                self._since[n] = 0
            else:
                self._since[n] = since + 1

    def _count(self, n: int, interval: int) -> None:
        m = self._intervals.get(n, 0)
        self._omega[n] = (m * self._omega.get(n, 0.0) + interval) / (m + 1)
        self._intervals[n] = m + 1
