"""A client: a learner and its shard; one task is a few local steps from a model it is sent.

A task starts from the model vector the server sent: its shared part and the pooled statistics
replace the client's, its local part (optimiser state, generator, counters: see
:mod:`~adaptloop.distributed.sharing`) stays the client's own across tasks. It takes
``steps`` local steps of ``batch_size`` samples from the client's training data of the concept
it is in at the task's start time (cycling through its shard, reshuffled each pass), and returns
the *delta*: the trained state's vector minus the vector it started from. A new client's local
part is the split's template's. With ``sam_rho > 0`` every local step is sharpness-aware
(SAM, Foret et al., ICLR 2021, Eq. 2-3, as DFedSAM's local steps, Shi et al., ICML 2023,
Alg. 1): from ``w``, a first step on the batch gives the descent direction ``d`` (``-lr g`` for
plain SGD), the batch's step is taken again from the perturbed ``w - rho d / ||d||`` (the
ascent ``w + rho g / ||g||``) and that step is applied to ``w``. The learner is a black box, so
the gradient is read off its own step: exact for plain SGD, the optimiser's preconditioned
direction otherwise; only the parameter arrays are perturbed; the optimiser state and the
statistics advance once per step. With
``flip_classes = K`` the client is a label-flipping attacker
(:mod:`~adaptloop.distributed.attacks`): it trains on class ``K - 1 - c`` for ``c``.

>>> import numpy as np
>>> from adaptloop.learners import LogisticRegression
>>> from adaptloop.distributed.data import make_federated_data
>>> from adaptloop.distributed.sharing import StateSplit
>>> data = make_federated_data("sea", clients=2, samples_per_client=100, concepts=[0],
...                            drift_at=[], seed=0)
>>> split = StateSplit.for_learner(LogisticRegression(), n_features=3, n_classes=2)
>>> client = Client(0, LogisticRegression(), data.shards[0], split, batch_size=16, seed=0)
>>> delta, n = client.run(split.flatten(split.template), steps=3, time=0.0)
>>> n, delta.shape == (split.size,), bool(np.abs(delta).sum() > 0)
(48, True, True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from adaptloop.distributed.data import ClientShard
from adaptloop.distributed.sharing import StateSplit
from adaptloop.learners.base import Learner
from adaptloop.parameters import declared
from adaptloop.validation import Count, Seed, check_integer, check_number

if TYPE_CHECKING:
    from adaptloop.distributed.rules.base import ClientHook


@declared
class Client:
    """Client ``index``: its own clone of ``learner`` (starting from ``split``'s template), its
    ``shard`` and a seeded data order; ``flip_classes``: the number of classes whose labels it
    flips (None: honest labels)."""

    def __init__(
        self,
        index: int,
        learner: Learner,
        shard: ClientShard,
        split: StateSplit,
        batch_size: Count = 32,
        seed: Seed = 0,
        flip_classes: Count | None = None,
    ) -> None:
        self.index = index
        self.learner = learner.clone()
        self._state = split.template  # the learner's state as of its last task
        self.shard = shard
        self.split = split
        self.batch_size = batch_size
        self._rng = np.random.default_rng([seed, 9, index])
        spans = split.codec.spans
        self._parameters = np.concatenate([np.arange(a, b) for a, b in spans]) if spans else []
        self._order: dict[int, np.ndarray] = {}
        self._cursor: dict[int, int] = {}
        self.flip_classes = flip_classes
        self.report: Any = None  # what the last task's hook reported

    def _batch(self, concept: int, size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        X, y = self.shard.train[concept]
        out: list[np.ndarray] = []
        need = self.batch_size if size is None else size
        while need > 0:
            order, at = self._order.get(concept), self._cursor.get(concept, 0)
            if order is None or at >= len(order):
                order, at = self._rng.permutation(len(y)), 0
                self._order[concept] = order
            part = order[at : at + need]
            self._cursor[concept] = at + len(part)
            out.append(part)
            need -= len(part)
        index = np.concatenate(out)
        if self.flip_classes is not None:
            return X[index], (self.flip_classes - 1 - y[index]).astype(y.dtype)
        return X[index], y[index]

    def run(
        self,
        model: np.ndarray,
        steps: int,
        time: float,
        scale: float = 1.0,
        correction: np.ndarray | None = None,
        batch_size: int | None = None,
        sam_rho: float = 0.0,
        hook: ClientHook | None = None,
    ) -> tuple[np.ndarray, int]:
        """``steps`` local steps from ``model`` on the data of ``time``: (delta, samples).

        Each step is the learner's own (``learn`` on a batch of ``batch_size``, default the
        client's; a sharpness-aware one of radius ``sam_rho`` if positive, see the module
        docstring), its change of the shared parameters multiplied by ``scale``, then
        ``correction`` added (both leave the pooled statistics alone): ``x <- x + scale (learn(x)
        - x) + correction``, the local update of rules that steer local steps (momentum, drift
        correction, a server-set local rate). For a learner stepping by plain SGD with rate
        ``lr``, ``scale`` makes it ``scale * lr``. A ``hook`` (see
        :class:`~adaptloop.distributed.rules.base.ClientHook`) first turns ``model`` into the
        model the steps start from; the delta is still taken against ``model``; what the hook
        reported is kept in :attr:`report` (None: no hook, or no report), for the engine to send
        back with the update.
        """
        steps = check_integer(steps, "steps", low=1)
        size = self.batch_size if batch_size is None else check_integer(batch_size, "batch_size", 1)
        sam_rho = check_number(sam_rho, "sam_rho", low=0.0)
        steered = scale != 1.0 or correction is not None
        start, self.report = model, None
        if hook is not None:
            start = hook(self, model, time)
            if isinstance(start, tuple):
                start, self.report = start
        self.learner.load_state_dict(self.split.compose(self._state, start))
        concept = self.shard.concept_at(time)
        for _ in range(steps):
            before = self.split.flatten(self.learner.state_dict()) if steered else None
            if sam_rho > 0:
                self._sam_step(*self._batch(concept, size), sam_rho)
            else:
                self.learner.learn(*self._batch(concept, size))
            if before is not None:
                state = self.learner.state_dict()
                after = self.split.flatten(state)
                step = self.split.statistics.strip(after - before)
                after = after + (scale - 1.0) * step
                if correction is not None:
                    after = after + self.split.statistics.strip(correction)
                self.learner.load_state_dict(self.split.compose(state, after))
        self._state = self.learner.state_dict()
        return self.split.flatten(self._state) - model, steps * size

    def _sam_step(self, X: np.ndarray, y: np.ndarray, rho: float) -> None:
        split = self.split
        start = self.learner.state_dict()
        w = split.flatten(start)
        self.learner.learn(X, y)
        ascent = np.zeros_like(w)  # along the parameters only (not counters nor statistics)
        ascent[self._parameters] = (w - split.flatten(self.learner.state_dict()))[self._parameters]
        norm = float(np.linalg.norm(ascent))
        if norm == 0.0:  # a zero gradient: the plain step (already taken) is the SAM step
            return
        perturbed = w + rho * ascent / norm
        self.learner.load_state_dict(split.compose(start, perturbed))
        self.learner.learn(X, y)
        after = self.learner.state_dict()
        # the perturbed point's step, applied at w (the statistics: the batch learned once)
        self.learner.load_state_dict(split.compose(after, w + split.flatten(after) - perturbed))

    def predict(self, model: np.ndarray, X: np.ndarray) -> np.ndarray:
        """The client's learner's predictions for ``X`` with the shared vector ``model`` (its
        local part its own): what a hook scores candidate models with."""
        self.learner.load_state_dict(self.split.compose(self._state, model))
        return self.learner.predict(X)

    def own_data(self, time: float) -> tuple[np.ndarray, np.ndarray]:
        """The client's training data of the concept it is in at ``time`` (labels as it trains
        on them: flipped for a label-flipping attacker)."""
        X, y = self.shard.train[self.shard.concept_at(time)]
        if self.flip_classes is not None:
            return X, (self.flip_classes - 1 - y).astype(y.dtype)
        return X, y
