"""``Continual``: one learner that runs continual-learning plugins over a torch learner.

It trains any :class:`~adaptloop.learners.base.TorchTrainable` (the MLPs, the CTR model, the
CfC / LTC / LSTM regressors) through that learner's public step: ``begin_learn`` per ``learn``
call, then per mini-batch (the base's ``epochs``, ``batch_size`` and sample order; its
optimiser and schedule; under Drop-Muon the gradients plugins see and adjust are those of the
blocks the step updates) one ``train_step`` on the base's ``loss`` of its ``forward`` output,
changed by the plugins (:mod:`adaptloop.learners.continual.plugin`): replay, EWC, LwF, A-GEM,
GEM, joint. Plugins combine: ``plugins = [{kind = "replay"}, {kind = "lwf"}]`` replays and
distils in one learner. Without plugins it is plain fine-tuning.

Task boundaries (``boundaries``):

- ``"known"`` (default): the caller says where tasks begin and end.
  :func:`~adaptloop.evaluation.continual.continual_evaluation` calls ``begin_task(task,
  classes)`` before a task's first iteration and ``end_task(X, y)`` with its training data
  after its last. :func:`~adaptloop.evaluation.prequential.prequential` on a stream with known
  drifts calls ``begin_task(k)`` at the ``k``-th drift's position (its centre for a gradual
  drift); on a stream nobody holds the finished task's data, so a ``begin_task`` while the
  current task is open (samples learned since it began, no ``end_task`` yet) first ends it
  with ``end_task`` on the last ``window`` samples learned in it.
- a drift detector (a name of :data:`~adaptloop.learners.detectors.detectors` or a
  ``{kind = name, ...}`` table): the learner finds the boundaries itself. Every batch is first
  predicted and each sample's error (0/1 for classifiers, absolute for regressors) fed to the
  detector, as :class:`~adaptloop.learners.wrappers.drift_reset.DriftReset` does; at an alarm on a
  sample, the samples up to it are learned, the task ends (``end_task`` on its last ``window``
  samples), the next begins, the detector starts afresh and the rest of the batch goes on.
  ``alarms`` lists those positions. Calls from the caller are ignored.
- ``"none"``: one task for ever; calls from the caller are ignored (replay still works:
  its reservoir needs no boundary; the other plugins then fine-tune).

``classes`` in ``begin_task`` (task-incremental sequences) restricts each training sample's
logits to its task's labels. Randomness: the learner's ``rng`` (seeded by ``seed``), shared by
its plugins; the base keeps its own (weights, sample order).

>>> import numpy as np
>>> from adaptloop.learners.models.mlp import MLPClassifier
>>> model = Continual(MLPClassifier(n_classes=4, hidden=(16,), lr=0.1, optimizer="sgd"),
...                   plugins=[{"kind": "replay", "memory": 20}, "lwf"])
>>> X = np.eye(4, dtype=np.float32)
>>> model.learn(X[:2], np.array([0, 1]))
>>> model.begin_task(1)
>>> model.learn(X[2:], np.array([2, 3]))
>>> model.plugins_[0].buffer_size_, model.plugins_[1].old_classes_, model.task_
(4, [0, 1], 1)
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Sequence
from typing import Any

import numpy as np

from adaptloop.learners.base import Learner, TorchTrainable, registry
from adaptloop.learners.continual.plugin import Batch, Plugin, PluginSpec, make_plugin
from adaptloop.learners.detectors import is_binary_detector, make_detector
from adaptloop.learners.sample_window import SampleWindow
from adaptloop.learners.wrappers.base import Wrapper
from adaptloop.validation import Count, Seed

__all__ = ["Continual"]

_KEYS = {"model", "task", "open", "label_mask", "rng", "plugins", "recent", "detector"}


@registry.register("continual")
class Continual(Wrapper):
    """Continual-learning plugins over a torch learner (see the module doc).

    ``base``: a :class:`~adaptloop.learners.base.TorchTrainable` learner (``{kind = "mlp",
    ...}`` in TOML); ``plugins``: a list of plugins, plugin names or ``{kind = name, ...}``
    tables, applied in list order; ``boundaries``: ``"known"``, ``"none"`` or a detector;
    ``window``: how many of the current task's most recent samples are kept for ``end_task``
    on a stream; ``seed``: the plugins' generator (and a seeded detector's). In federation
    only the base's parameters are shared: the plugins' memories, Fishers and teachers, the
    task and the generator stay with each client.
    """

    _local_state = ("task", "open", "label_mask", "rng", "plugins", "recent", "detector")

    def __init__(
        self,
        base: Learner,
        plugins: Sequence[PluginSpec] = (),
        boundaries: str | dict[str, Any] = "known",
        window: Count = 1000,
        seed: Seed = 0,
    ) -> None:
        super().__init__(base)
        if not isinstance(self.base, TorchTrainable):
            raise ValueError(
                f"base of {type(self).__name__} must be a torch learner (TorchTrainable: mlp, "
                f"mlp_regressor, ctr, cfc, ltc, lstm), got {type(self.base).__name__}"
            )
        if isinstance(plugins, (str, dict)) or not isinstance(plugins, Sequence):
            raise ValueError(f"plugins must be a list of plugins, got {plugins!r}")
        self.plugins = [make_plugin(p, f"plugins[{i}]") for i, p in enumerate(plugins)]
        for plugin in self.plugins:
            plugin.check(self.task)
        self.boundaries = copy.deepcopy(boundaries)
        self._detector = None
        if boundaries not in ("known", "none"):
            try:
                self._detector = make_detector(boundaries, seed=seed)  # type: ignore[arg-type]
            except ValueError as error:
                raise ValueError(
                    f"boundaries must be 'known', 'none' or a detector: {error}"
                ) from None
            if is_binary_detector(self._detector) and self.task == "regression":
                raise ValueError(
                    f"boundaries: detector {type(self._detector).__name__} takes 0/1 errors and "
                    "needs a classifier base; use adwin, page_hinkley or kswin for regression"
                )
        self.window = window
        self.seed = seed
        self._alarms: list[int] = []
        self._reset()

    def _reset(self) -> None:
        self.plugins_: list[Plugin] = [p.clone() for p in self.plugins]
        self.task_ = 0
        self._open = False  # samples learned in the current task, which has not ended
        self.label_mask_: np.ndarray | None = None  # (C, C): allowed logits per label
        self.rng = np.random.default_rng(self.seed)
        self.recent_ = SampleWindow(self.window)
        self.detector_ = None if self._detector is None else self._detector.clone()
        self.n_seen_ = 0

    # -- what plugins use (adaptloop.learners.continual.plugin.Host) ------------------------------
    @property
    def trainable(self) -> TorchTrainable:
        """The served, trained learner."""
        return self.model_  # type: ignore[return-value]

    def loss(self, output: Any, target: Any) -> Any:
        """The base's loss, class logits restricted to each sample's task (task-incremental)."""
        if self.label_mask_ is not None:
            import torch

            allowed = torch.from_numpy(self.label_mask_)[target]
            output = output.masked_fill(~allowed, float("-inf"))
        return self.trainable.loss(output, target)

    def forward(self, inputs: Any, weights: dict[str, Any] | None = None) -> Any:
        """The base's ``forward(inputs)``; with ``weights`` (a ``state_dict`` of its network:
        LwF's teacher, EWC's per-sample gradients), as if its network held them."""
        model = self.trainable
        if weights is None:
            return model.forward(inputs)
        import torch

        class Call(torch.nn.Module):  # functional_call swaps the network's weights in it
            def __init__(self) -> None:
                super().__init__()
                self.network = model.network

            def forward(self, inputs: Any) -> Any:
                return model.forward(inputs)

        named = {f"network.{k}": v for k, v in weights.items()}
        return torch.func.functional_call(Call(), named, (inputs,))

    # -- task boundaries ---------------------------------------------------------------------------
    @property
    def stored_samples(self) -> int:
        """Past training samples its plugins keep (replay buffers, episodic memories)."""
        return sum(plugin.stored_samples() for plugin in self.plugins_)

    @property
    def alarms(self) -> list[int]:
        """Stream positions where the detector ended a task (``boundaries`` a detector)."""
        return list(self._alarms)

    def begin_task(self, task: int, classes: Sequence[int] | None = None) -> None:
        """Task ``task`` begins; ``classes`` (task-incremental) restricts its samples' logits.
        With ``boundaries = "known"``; ignored otherwise."""
        if self.boundaries == "known":
            self._begin_task(task, classes)

    def end_task(self, X: np.ndarray, y: np.ndarray) -> None:
        """The current task's training data, after its last iteration (checked first). With
        ``boundaries = "known"``; ignored otherwise."""
        X, y = self.check_Xy(X, y)
        if self.boundaries == "known":
            self._end_task(X, y)

    def _begin_task(self, task: int, classes: Sequence[int] | None) -> None:
        if classes is not None:
            n = self.n_classes or 0
            if not classes or any(not 0 <= int(c) < n for c in classes):
                raise ValueError(f"classes must be label codes in [0, {n}), got {classes!r}")
        if self._open and len(self.recent_):
            self._end_task(*self.recent_.get())
        if classes is not None:
            if self.label_mask_ is None:
                self.label_mask_ = np.ones((n, n), dtype=bool)
            codes = [int(c) for c in classes]
            self.label_mask_[codes] = False
            self.label_mask_[np.ix_(codes, codes)] = True
        self.task_ = int(task)
        self.recent_ = SampleWindow(self.window)
        for plugin in self.plugins_:
            plugin.begin_task(self, self.task_)

    def _end_task(self, X: np.ndarray, y: np.ndarray) -> None:
        for plugin in self.plugins_:
            plugin.end_task(self, X, y)
        self._open = False

    # -- learning ----------------------------------------------------------------------------------
    def _learn(self, X: np.ndarray, y: np.ndarray) -> None:
        start, n = 0, len(X)
        while self.detector_ is not None and start < n and self.trainable.network is not None:
            alarm = self._first_alarm(X[start:], y[start:])
            if alarm is None:
                break
            self._train(X[start : alarm + 1], y[start : alarm + 1])
            self._alarms.append(self.n_seen_ + alarm)
            self.detector_ = self._detector.clone()
            self._begin_task(self.task_ + 1, None)
            start = alarm + 1
        if start < n:
            self._train(X[start:], y[start:])
        self.n_seen_ += n

    def _first_alarm(self, X: np.ndarray, y: np.ndarray) -> int | None:
        """The index in the batch of the first sample whose error raises an alarm."""
        pred = np.asarray(self.model_.predict(X)).reshape(len(y))
        if self.task == "regression":
            errors = np.abs(pred.astype(np.float64) - y).tolist()
        else:
            errors = (pred != y).astype(float).tolist()
        for i, error in enumerate(errors):
            self.detector_.update(error)
            if self.detector_.drift_detected:
                return i
        return None

    def _train(self, X: np.ndarray, y: np.ndarray) -> None:
        if self.boundaries != "none":
            self.recent_.extend(X, y)
        self._open = True
        model = self.trainable
        model.begin_learn(X)
        n = len(X)
        size = n if model.batch_size is None else min(model.batch_size, n)
        net = model.network
        net.train()
        for _ in range(model.epochs):
            order = model.rng.permutation(n) if size < n else np.arange(n)
            for start in range(0, n, size):
                index = order[start : start + size]
                self._step(X[index], y[index])
        net.eval()

    def _step(self, X: np.ndarray, y: np.ndarray) -> None:
        """One optimiser step on the new samples ``X``, ``y`` and those plugins join."""
        Xt, yt = X, y
        extra = [e for e in (p.extra_batch(self, len(X)) for p in self.plugins_) if e is not None]
        if extra:
            Xt = np.concatenate([X, *(e[0] for e in extra)])
            yt = np.concatenate([y, *(e[1] for e in extra)])
        model = self.trainable
        inputs, targets = model.inputs(Xt), model.targets(yt)

        def loss_fn() -> Any:
            output = model.forward(inputs)
            batch = Batch(Xt, yt, len(X), inputs, targets, output)
            loss = self.loss(output, targets)
            for plugin in self.plugins_:
                loss = plugin.loss(self, batch, loss)
            return loss

        def adjust() -> None:
            params = [p for p in model.network.parameters() if p.requires_grad]
            for plugin in self.plugins_:
                plugin.adjust_gradient(self, params)

        model.train_step(loss_fn, adjust=adjust)
        for plugin in self.plugins_:
            plugin.after_step(self, X, y)

    # -- state -------------------------------------------------------------------------------------
    def _get_state(self) -> dict[str, Any]:
        return {
            "model": self.model_.state_dict(),
            "task": self.task_,
            "open": self._open,
            "label_mask": None if self.label_mask_ is None else self.label_mask_.copy(),
            "rng": copy.deepcopy(self.rng.bit_generator.state),
            "plugins": [p.state_dict() for p in self.plugins_],
            "recent": self.recent_.state(),
            "detector": None
            if self.detector_ is None
            else {
                "detector": pickle.dumps(self.detector_),
                "alarms": list(self._alarms),
                "n_seen": self.n_seen_,
            },
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        name = type(self).__name__
        if not isinstance(state, dict) or set(state) != _KEYS:
            raise ValueError(f"{name} state must be a dict with keys {sorted(_KEYS)}")
        if len(state["plugins"]) != len(self.plugins):
            raise ValueError(
                f"{name} state holds {len(state['plugins'])} plugin state(s), this learner "
                f"runs {len(self.plugins)} plugin(s)"
            )
        if (state["detector"] is None) != (self._detector is None):
            raise ValueError(f"{name} state and this learner differ in boundaries")
        model = self._new_model(state)
        recent = SampleWindow.from_state(self.window, state["recent"])
        plugins = [p.clone() for p in self.plugins]
        for plugin, plugin_state in zip(plugins, state["plugins"], strict=True):
            plugin.load_state_dict(copy.deepcopy(plugin_state))
        self.model_, self.plugins_, self.recent_ = model, plugins, recent
        self.task_, self._open = int(state["task"]), bool(state["open"])
        mask = state["label_mask"]
        self.label_mask_ = None if mask is None else np.asarray(mask, dtype=bool).copy()
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = copy.deepcopy(state["rng"])
        if state["detector"] is not None:
            detector = state["detector"]
            self.detector_ = pickle.loads(detector["detector"])
            self._alarms = [int(a) for a in detector["alarms"]]
            self.n_seen_ = int(detector["n_seen"])
