"""FedHyper: the global and the local learning rates set by hypergradient descent.

Wang, Wang & Li, "FedHyper: A Universal and Robust Learning Rate Scheduler for Federated
Learning with Hypergradient Descent" (ICLR 2024), Sec. 4, and the authors' code
(``ATP-1010/FedHyper``, ``federated_main.py``). The hypergradient of the loss with respect to
the global rate is minus the inner product of two consecutive global updates, so the rate grows
while the rounds agree and shrinks when they turn back. With ``Delta_t`` the round's average
client delta (FedAvg's ``sum_k (n_k / n) Delta_k``), after every round ``t >= 1``

    a_t = clip(a_{t-1} + hyper_lr * <Delta_t, Delta_{t-1}>, low, high),  a_0 = 0

and (``adapt``):

* ``"global"`` (FedHyper-G): ``x_{t+1} = x_t + server_lr (1 + a_t) Delta_t``;
* ``"local"`` (FedHyper-SL, the server-side local scheduler): the next rounds' local rate is
  the learner's times ``clip(1 + a_t, local_min, local_max)`` (the client multiplies the
  learner's step, :meth:`~adaptloop.distributed.client.Client.run`: exact for plain SGD), the
  global step is FedAvg's;
* ``"both"``: both at once.

The authors' defaults are kept: ``hyper_lr = 1``, ``a`` in ``[-0.8, 4]`` (global rate between
0.2 and 5 times the initial one), local rate between 0.1 and 10 times the initial one (their
``[0.001, 0.1]`` around 0.01).

Deviations: the client-side local scheduler (FedHyper-CL, a per-step hypergradient inside the
client's optimiser) and the momentum variant (FedHyper-GM) are not implemented: a client here
runs its learner's own steps. The inner products depend on the model's scale, so ``hyper_lr`` is
a setting to choose per model, as the paper's hypergradient rate is.

>>> import numpy as np
>>> from adaptloop.distributed.rules.base import ServerView
>>> rule = FedHyper(clients_per_round=2)
>>> view = ServerView(0.0, np.zeros(2), 0, frozenset({0, 1}), frozenset(), np.ones(2) / 2,
...                   np.random.default_rng(0))
>>> rule.server_model(view, np.array([1.0, 0.0])).tolist()  # first round: rate 1
[1.0, 0.0]
>>> rule.server_model(view, np.array([0.5, 0.0])).tolist()  # agreeing rounds: a = 0.5
[0.75, 0.0]
>>> rule.rate
1.5
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from adaptloop.distributed.aggregate import Robust, RobustFraction, server_step
from adaptloop.distributed.rules.base import Assignment, ServerView
from adaptloop.distributed.rules.base import registry as rules
from adaptloop.distributed.rules.fedavg import FedAvg
from adaptloop.validation import Count, PositiveReal, Real

Adapt = Literal["global", "local", "both"]


@rules.register("fedhyper")
class FedHyper(FedAvg):
    """FedAvg whose global and / or local rate follow a hypergradient (see the module)."""

    def __init__(
        self,
        clients_per_round: Count = 8,
        local_steps: Count = 5,
        server_lr: PositiveReal = 1.0,
        adapt: Adapt = "global",
        hyper_lr: PositiveReal = 1.0,
        low: Real = -0.8,
        high: Real = 4.0,
        local_min: PositiveReal = 0.1,
        local_max: PositiveReal = 10.0,
        robust: Robust = "mean",
        robust_fraction: RobustFraction = 0.25,
    ) -> None:
        super().__init__(clients_per_round, local_steps, server_lr, robust, robust_fraction)
        if not -1 < low <= 0 <= high:
            raise ValueError(
                f"FedHyper.low, FedHyper.high: need -1 < low <= 0 <= high, got {low!r}, {high!r}"
            )
        if not local_min <= 1 <= local_max:
            raise ValueError(
                "FedHyper.local_min, FedHyper.local_max: need local_min <= 1 <= local_max, "
                f"got {local_min!r}, {local_max!r}"
            )
        self.adapt = adapt
        self.hyper_lr = hyper_lr
        self.low, self.high = low, high
        self.local_min, self.local_max = local_min, local_max
        self._a = 0.0
        self._last: np.ndarray | None = None

    @property
    def rate(self) -> float:
        """The current multiplier ``1 + a_t`` of the initial rates."""
        return 1.0 + self._a

    def server_model(self, view: ServerView, direction: np.ndarray) -> np.ndarray:
        if self._last is not None:
            a = self._a + self.hyper_lr * float(direction @ self._last)
            self._a = min(self.high, max(self.low, a))
        self._last = direction
        lr = self.server_lr * (self.rate if self.adapt != "local" else 1.0)
        return server_step(view.model, direction, lr)

    def assignment(self, client: int, view: ServerView) -> Assignment:
        if self.adapt == "global":
            return Assignment(client, self.local_steps)
        scale = min(self.local_max, max(self.local_min, self.rate))
        return Assignment(client, self.local_steps, scale=scale)
