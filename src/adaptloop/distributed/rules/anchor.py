"""FedAMD (anchor sampling): anchors compute large-batch "bullseyes", miners take corrected steps.

Wu, Guo, Qu, He, Liu & Gao, "Anchor Sampling for Federated Learning with Partial Client
Participation" (ICML 2023), Algorithm 1 with the constant probability setting, and the
authors' code (``HarliWu/FedAMD``, ``main_fmnist.py``, ``algo/fedamd.py``). Each round the
clients taking part are split at random: with probability ``anchor_probability`` a client is an
*anchor* and computes the gradient of its data at the global model on a large batch
(``anchor_batch`` samples), its bullseye ``b_i``, which the server keeps (the latest of every
client); otherwise it is a *miner* and takes ``local_steps`` small-batch steps steered by the
average bullseye ``v = (1/N) sum_i b_i`` (here: over the clients that have been anchors so
far, as absent clients have none). Only the miners' deltas move the global model:

    x_{t+1} = x_t + server_lr * sum_{i in miners} (n_i / n) Delta_i

In the first round every client present is an anchor (the authors' code computes every
client's bullseye before training).

Units and deviation: everything is in model units, a bullseye is the displacement ``B_i =
-eta b_i`` of one learner step on the large batch (a client's task of one step of
``anchor_batch`` samples; exact for plain SGD), rescaled to a miner's step of ``batch_size``
samples: times ``batch_size / anchor_batch`` when the learner's step grows with its batch
(``per_sample``: the linear learners' per-sample rate), as is for a learner stepping on the
batch's mean gradient (``per_sample = false``: torch learners). Miners use ``batch_size``. The
paper's miners use a SARAH-type recursion
``d_k = d_{k-1} - grad f_i(x_{k-1}; xi_k) + grad f_i(x_k; xi_k)``, ``d_0 = v``, which needs two
gradients per step; a client here runs its learner's own steps, so a miner uses the SVRG /
SCAFFOLD form of the same correction instead, ``d_k = grad f_i(x_k; xi_k) - b_i + v`` (its own
bullseye standing in for its gradient at the round's start):

    x <- x + s(x) + (V - B_i)   (V: the mean of the latest bullseyes of the clients that have
                                 one; no correction before client i's first bullseye)

>>> import numpy as np
>>> from adaptloop.distributed.rules.base import ServerView, Update
>>> rule = FedAMD(clients_per_round=2, anchor_probability=0.5, anchor_batch=64, batch_size=32)
>>> view = ServerView(0.0, np.zeros(1), 0, frozenset({0, 1}), frozenset(), np.ones(2) / 2,
...                   np.random.default_rng(0))
>>> [(a.client, a.steps, a.batch_size) for a in rule.start(view).dispatch]  # first: anchors
[(0, 1, 64), (1, 1, 64)]
>>> rule.on_update(Update(0, 0, np.array([2.0]), 0, 64, 1, 0.0, 1.0), view).model is None
True
>>> plan = rule.on_update(Update(1, 1, np.array([4.0]), 0, 64, 1, 0.0, 1.0), view)
>>> plan.model is None, rule.bullseye.tolist()  # anchors do not move the model; per 32 samples
(True, [1.5])
"""

from __future__ import annotations

import numpy as np

from adaptloop.distributed.aggregate import Robust, RobustFraction
from adaptloop.distributed.rules.base import Assignment, ServerView, Update
from adaptloop.distributed.rules.base import registry as rules
from adaptloop.distributed.rules.fedavg import FedAvg
from adaptloop.validation import Count, Flag, Fraction, PositiveReal


@rules.register("fedamd")
class FedAMD(FedAvg):
    """Anchor sampling: anchors' large-batch bullseyes steer the miners (see the module)."""

    def __init__(
        self,
        clients_per_round: Count = 8,
        local_steps: Count = 5,
        server_lr: PositiveReal = 1.0,
        anchor_probability: Fraction = 0.2,
        anchor_batch: Count = 256,
        batch_size: Count = 32,
        per_sample: Flag = True,
        robust: Robust = "mean",
        robust_fraction: RobustFraction = 0.25,
    ) -> None:
        super().__init__(clients_per_round, local_steps, server_lr, robust, robust_fraction)
        self.anchor_probability = anchor_probability
        self.anchor_batch = anchor_batch
        self.batch_size = batch_size
        self.per_sample = per_sample
        self._bullseyes: dict[int, np.ndarray] = {}
        self._anchors: set[int] = set()

    @property
    def bullseye(self) -> np.ndarray | None:
        """``V``: the mean of the latest bullseye of every client that has one (none: None)."""
        if not self._bullseyes:
            return None
        return sum(self._bullseyes.values()) / len(self._bullseyes)

    def assignment(self, client: int, view: ServerView) -> Assignment:
        first = self._round == 1  # the round being sampled is the first one
        if first or view.rng.random() < self.anchor_probability:
            self._anchors.add(client)
            return Assignment(client, 1, batch_size=self.anchor_batch)
        self._anchors.discard(client)
        own, mean = self._bullseyes.get(client), self.bullseye
        correction = None if own is None or mean is None else mean - own
        return Assignment(
            client, self.local_steps, correction=correction, batch_size=self.batch_size
        )

    def contributions(self, updates: list[Update]) -> list[Update]:
        return [u for u in updates if u.client not in self._anchors]

    def round_closed(self, chosen: list[int], updates: list[Update], view: ServerView) -> None:
        ratio = self.batch_size / self.anchor_batch if self.per_sample else 1.0
        for u in updates:
            if u.client in self._anchors:
                self._bullseyes[u.client] = ratio * u.delta
