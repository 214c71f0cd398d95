"""Bristle: decentralised learning in Byzantine, non-i.i.d. environments, on the event API.

Following "Bristle: Decentralized Federated Learning in Byzantine, Non-i.i.d. Environments"
(Verbraeken, de Vos & Pouwelse, arXiv:2110.11006, 2021). Its three parts, as its abstract
describes them, are what this module builds:

1. **Transfer learning** — the non-output layers of the network are fixed in advance (learned on
   public data) and frozen; only the output layer is trained and exchanged: the learner of
   :mod:`adaptloop.learners.models.frozen_body` (:func:`pretrain_body` fits a one-hidden-layer
   tanh network on a public split and keeps its hidden layer; :class:`FrozenBodyClassifier`'s
   state holds the output layer only, so the body is never sent, averaged or attacked; in an
   experiment file the learner ``frozen_body``, pretrained on rows no client holds).
2. **Distance-based prioritiser** — a peer ranks the output layers it received by their distance
   to its own and keeps the ``exploit`` nearest plus ``explore`` others drawn at random (the
   explore-exploit trade-off), so far-off (e.g. sign-flipped) models rarely reach step 3.
3. **Performance-based integrator** — each *class* of each kept model is integrated separately,
   weighted by how well the model does on that class on a small sample of the receiver's own
   data: class ``c``'s column becomes
   ``(tol * own_c + sum_j w_jc * theta_jc) / (tol + sum_j w_jc)`` with
   ``w_jc = max(0, s_jc - s_own,c + tol)``, ``s`` the per-class F1 score and ``tol`` the
   ``tolerance``: a model worse than the receiver's own by more than ``tol`` on a class gets no
   say on that class; as good or better, a growing one. A model whose macro F1 (mean over the
   classes) is worse than the receiver's by more than ``tol`` gets no say on any class (ours:
   without it a sign-flipped model that happens to predict one class well leaks that class's
   huge column into honest peers).

Where it runs: peers are the clients; the rule (:class:`Bristle`) keeps every peer's latest
published output layer (its model after its local steps, as its attack and link made it), and
each task carries a :class:`BristleStep` (a
:class:`~adaptloop.distributed.rules.base.ClientHook`) with the models of ``fanout`` peers drawn
at random: the client prioritises and integrates them *on its own data* (the server never sees
any data), then takes its local steps from the result. Both engines run it (the hook travels
with the task).

Deviations (the paper's sections and equations could not be consulted here: only its abstract
and its thesis abstract, TU Delft repository, were reachable, so every formula above is ours,
built from that description):

* the integrator's weighting formula and the per-class score (F1 rather than the per-class
  accuracy the abstract names, so that a model predicting one class everywhere does not score
  perfectly on it) are ours; the paper's "familiarity" bookkeeping of peers over time is not
  reproduced (each task ranks afresh);
* the receiver scores on (at most ``eval_samples`` of) its own training data, which is
  non-i.i.d. here, where the paper assumes a small i.i.d. test set per peer
  (:class:`Bristle`'s ``validation`` gives it one); a class with fewer than
  ``min_class_samples`` samples there is integrated by the models' macro F1 (the mean of the
  per-class scores);
* a peer's explored models are drawn with odds ``exp(-distance / median distance)`` (ours);
* a received model whose norm is more than ``max_scale`` times the receiver's own (a receiver
  still all zeros sets no limit) gets no say
  (ours: the integrator mixes output columns linearly, so even a small weight on a huge model
  makes the result huge; a sign-flipping peer that keeps integrating and flipping grows its
  model about five-fold per task, and without this guard one honest peer that once weighs
  such a model passes it on: under strongly jittered task times every honest peer's model
  blew up within 600 time units, accuracy 0.93 -> 0.39);
  a published model that is not finite is dropped by every peer (the publisher's last finite
  one stays in circulation), and an integration that lowers the receiver's macro F1 by more
  than ``tolerance`` is undone;
* the peers' models a task carries do not pass through the attack's noisy link (``snr_db``):
  only the receiver's own model and its published update do;
* peers are drawn uniformly (``fanout`` per task) rather than over the paper's network layer;
* the "global model" the server evaluates over time is the coordinate-wise median of all peers'
  output layers (Byzantine ones included) — an evaluation convention of ours, since Bristle has
  no global model; :attr:`Bristle.models` gives every peer's own model.

>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(400, 3)); y = (X[:, 0] > 0).astype(np.int64)
>>> rule = Bristle(fanout=4, eval_samples=50, validation_samples=100,
...                public=lambda n: (X[:n], y[:n]))  # 100 public rows, 50 per peer
>>> rule.params()["validation_samples"]  # the arrays stay out of the results' summary
100
>>> step = BristleStep(peers=(np.zeros(2), np.full(2, 9.0), np.ones(2)), exploit=2, explore=0)
>>> step.prioritise(np.zeros(2))  # the two nearest output layers
[0, 2]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from adaptloop.distributed.client import Client
from adaptloop.distributed.rules.base import AggregationRule, Assignment, Plan, ServerView, Update
from adaptloop.distributed.rules.base import registry as rules
from adaptloop.learners.models.frozen_body import PublicRows
from adaptloop.validation import Count, NonNegativeInt, PositiveReal


def per_class_f1(y: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """F1 score of every class (0 for a class neither present nor predicted).

    >>> per_class_f1(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 2).round(3).tolist()
    [0.667, 0.8]
    """
    out = np.zeros(n_classes)
    for c in range(n_classes):
        tp = float(np.sum((predicted == c) & (y == c)))
        fp_fn = float(np.sum(predicted == c) + np.sum(y == c))
        out[c] = 2.0 * tp / fp_fn if fp_fn > 0 else 0.0
    return out


@dataclass(frozen=True)
class BristleStep:
    """Bristle's prioritiser and integrator, run by the receiving client on its own data (a
    :class:`~adaptloop.distributed.rules.base.ClientHook`): ``peers`` are the output layers
    (shared vectors) it received; ``validation`` its small i.i.d. sample (None: its own
    training data); the others are :class:`Bristle`'s parameters; ``seed`` draws the explored
    peers; ``sources`` the clients the peers' models come from (default: their indices). The
    output layer is the state's ``learned.theta`` with one column per class
    (:class:`FrozenBodyClassifier`, or a softmax
    :class:`~adaptloop.learners.LogisticRegression`: no frozen body then); a single column (the
    binary logistic) is integrated by the models' macro F1.

    Called, it returns ``(model to train from, report)``: the report gives every peer's say as
    ``(source, influence)``, the share of the output columns its model was mixed into (0: not
    kept by the prioritiser, no say on any class, or the integration undone), which the rule
    hands the server as the peer's influence (see :class:`Bristle`)."""

    peers: tuple[np.ndarray, ...]
    validation: tuple[np.ndarray, np.ndarray] | None = None
    exploit: int = 2
    explore: int = 1
    tolerance: float = 0.05
    eval_samples: int = 200
    min_class_samples: int = 5
    seed: int = 0
    sources: tuple[int, ...] = ()
    max_scale: float = 10.0

    def prioritise(self, model: np.ndarray) -> list[int]:
        """The indices of the peers kept: the ``exploit`` nearest to ``model``, then
        ``explore`` of the others at random; none whose norm is over ``max_scale`` times
        ``model``'s (no limit while ``model`` is all zeros: nothing learned yet)."""
        distance = [float(np.linalg.norm(p - model)) for p in self.peers]
        limit = self.max_scale * float(np.linalg.norm(model)) or np.inf
        sane = [j for j, p in enumerate(self.peers) if float(np.linalg.norm(p)) <= limit]
        order = sorted(sane, key=lambda j: distance[j])
        kept, rest = order[: self.exploit], order[self.exploit :]
        if rest and self.explore:
            scale = float(np.median(distance)) or 1.0
            odds = np.exp(-np.array([distance[j] for j in rest]) / scale)
            if odds.sum() > 0:
                rng = np.random.default_rng([self.seed, 22])
                size = min(self.explore, int(np.count_nonzero(odds)))
                picked = rng.choice(len(rest), size=size, replace=False, p=odds / odds.sum())
                kept += [rest[i] for i in sorted(picked.tolist())]
        return kept

    def __call__(
        self, client: Client, model: np.ndarray, time: float
    ) -> tuple[np.ndarray, tuple[tuple[int, float], ...]]:
        if not self.peers:
            return model, ()
        sources = self.sources or tuple(range(len(self.peers)))
        order = self.prioritise(model)
        kept = [self.peers[j] for j in order]
        X, y = client.own_data(time) if self.validation is None else self.validation
        X, y = X[: self.eval_samples], y[: self.eval_samples]
        split = client.split
        k = int(client.learner.n_classes)
        candidates = [model, *kept]
        predicted = [client.predict(v, X) for v in candidates]
        scores = np.array([per_class_f1(y, p, k) for p in predicted])
        overall = scores.mean(axis=1)  # macro F1: a one-class model does not score well
        trusted = overall >= overall[0] - self.tolerance  # no say on any class if worse overall
        counts = np.bincount(y, minlength=k)
        thetas = [split.compose(split.template, v)["learned"]["theta"] for v in candidates]
        mixed = thetas[0].copy()
        per_class = mixed.shape[1] == k  # one output column per class (else: binary logistic)
        say = np.zeros(len(candidates))  # output columns each candidate was mixed into
        for c in range(mixed.shape[1]):
            s = scores[:, c] if per_class and counts[c] >= self.min_class_samples else overall
            w = np.maximum(0.0, s - s[0] + self.tolerance) * trusted
            w[0] = self.tolerance
            say += w > 0
            mixed[:, c] = sum(wj * t[:, c] for wj, t in zip(w, thetas, strict=True)) / w.sum()
        state = split.compose(split.template, model)
        state["learned"]["theta"] = mixed
        integrated = split.flatten(state)
        influence = dict.fromkeys(range(len(self.peers)), 0.0)
        if per_class_f1(y, client.predict(integrated, X), k).mean() < overall[0] - self.tolerance:
            integrated = model  # the integration made it worse on the receiver's data: undone
        else:
            influence.update({j: say[i + 1] / mixed.shape[1] for i, j in enumerate(order)})
        return integrated, tuple((sources[j], float(v)) for j, v in influence.items())


@rules.register("bristle")
class Bristle(AggregationRule):
    """Decentralised Bristle (see the module docstring): every peer trains its output layer,
    publishes it, and before each task integrates the output layers of ``fanout`` random peers,
    prioritised (``exploit`` nearest, ``explore`` random) and weighted per class on its own
    data (``tolerance``, ``eval_samples``, ``min_class_samples``; a model over ``max_scale``
    times the receiver's norm gets no say). ``validation``: a public
    i.i.d. sample ``(X, y)`` from which every peer holds its own ``eval_samples`` rows to score
    on, as the paper assumes each peer holds a small i.i.d. test set (None: each peer scores on
    its own training data); ``validation_samples`` (> 0) draws it from ``public`` instead (a
    function giving ``n`` public rows, as :func:`~adaptloop.learners.models.frozen_body.frozen_body`
    takes: a federated experiment file fills it with rows of its stream no client holds, none of
    them the learner's).

    Which peers were given a say travels back with each update (the report of
    :class:`BristleStep`) and becomes the influence of the *peers* whose models the receiver
    weighed (:attr:`Plan.influence`), so a peer whose model its receivers keep rejecting
    (influence below one half: not kept, or mixed into fewer than half of the output columns)
    shows in the server's down-weighted counts and the trace like an update a robust block
    rejected."""

    def __init__(
        self,
        local_steps: Count = 5,
        fanout: Count = 6,
        exploit: NonNegativeInt = 2,
        explore: NonNegativeInt = 1,
        tolerance: PositiveReal = 0.05,
        eval_samples: Count = 200,
        min_class_samples: Count = 5,
        max_scale: PositiveReal = 10.0,
        validation: tuple[np.ndarray, np.ndarray] | None = None,
        validation_samples: NonNegativeInt = 0,
        public: PublicRows | None = None,
    ) -> None:
        if validation_samples:
            if validation is not None:
                raise ValueError("give validation or validation_samples, not both")
            if not callable(public):
                raise ValueError(
                    f"validation_samples: no function giving public rows to draw them from (got "
                    f"public={public!r}); a federated experiment draws them from its stream, or "
                    "pass validation=(X, y)"
                )
            validation = public(validation_samples)
        self.local_steps = local_steps
        self.fanout = fanout
        self.exploit, self.explore = exploit, explore
        self.tolerance = tolerance
        self.eval_samples, self.min_class_samples = eval_samples, min_class_samples
        self.max_scale = max_scale
        self.validation_samples = validation_samples
        self._validation = validation  # arrays: not among the summary's parameters
        self._models: dict[int, np.ndarray] = {}

    @property
    def validation(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The public i.i.d. sample ``(X, y)`` the peers score on (None: their own data)."""
        return self._validation

    @property
    def models(self) -> dict[int, np.ndarray]:
        """Every peer's latest published output layer (shared vector), by client."""
        return dict(self._models)

    def _merge(self) -> np.ndarray:
        return np.median(np.stack(list(self._models.values())), axis=0)

    def _task(self, client: int, view: ServerView) -> Assignment:
        others = sorted(set(self._models) - {client})
        size = min(self.fanout, len(others))
        peers = view.rng.choice(others, size=size, replace=False).tolist() if size else []
        step = BristleStep(
            tuple(self._models[j] for j in peers),
            self._sample(client),
            self.exploit,
            self.explore,
            self.tolerance,
            self.eval_samples,
            self.min_class_samples,
            int(view.rng.integers(2**31)),
            tuple(peers),
            self.max_scale,
        )
        return Assignment(client, self.local_steps, self._models[client], hook=step)

    def _sample(self, client: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The peer's own ``eval_samples`` rows of the validation sample (None: none)."""
        if self._validation is None:
            return None
        X, y = self._validation
        rng = np.random.default_rng([client, 23])
        rows = rng.choice(len(y), size=min(self.eval_samples, len(y)), replace=False)
        return X[rows], y[rows]

    def start(self, view: ServerView) -> Plan:
        self._models = {c: view.model.copy() for c in sorted(view.alive)}
        return Plan(dispatch=[Assignment(c, self.local_steps, self._models[c]) for c in view.idle])

    def on_update(self, update: Update, view: ServerView) -> Plan:
        published = self._models[update.client] + update.delta
        if np.all(np.isfinite(published)):  # peers drop a model that is not finite
            self._models[update.client] = published
        plan = self._send(self._task(update.client, view), model=self._merge())
        plan.influence = list(update.report or ())  # the say the receiver gave its peers
        return plan

    def on_rejoin(self, client: int, view: ServerView) -> Plan:
        self._models[client] = view.model.copy()
        return self._send(self._task(client, view))

    @staticmethod
    def _send(task: Assignment, model: np.ndarray | None = None) -> Plan:
        """The plan sending ``task``; the peers' output layers it carries are peer-to-peer
        messages (the server counts the task itself)."""
        return Plan(model=model, dispatch=[task], messages=len(task.hook.peers))

    def finish(self, view: ServerView) -> Plan:
        return Plan(model=self._merge()) if self._models else Plan()
