"""The service: the served model, feedback intake, the adaptation worker, versions, recovery.

A :class:`Service` holds two learners: the *served* one (never mutated once published: requests
predict with it while the worker runs) and the *candidate*, which learns every labelled
feedback record. It is what the HTTP app (:mod:`adaptloop.serve.app`) calls, and what a
Python program can call the same way: :meth:`Service.predict_records` (predict and log),
:meth:`Service.add_feedback`, :meth:`Service.snapshot`, :meth:`Service.rollback`,
:meth:`Service.export_checkpoint`, :meth:`Service.status`. Refusals are the types of
:mod:`adaptloop.serve.errors`, each naming its field; nothing changes when one is raised.

Feedback is processed in fixed micro-batches of ``micro_batch`` records in arrival order
(``seq``), so the result is a pure function of the stored feedback and the manual actions
(snapshot, rollback, each recorded as a checkpoint); for each micro-batch:

1. the prediction that was served for each record (or, for records sent with their label,
   the served model's prediction now) is scored: prequential metrics over feedback;
2. the served model and the candidate predict the batch, which neither has learned: the
   update gate (:mod:`adaptloop.serve.gate`) collects accuracy and negative flips;
3. the candidate learns the batch;
4. when the gate has a full window it decides; on promotion a copy of the candidate becomes
   the served model (a new version; the only lock held by the worker that predictions also
   take is the one around swapping that reference) and a checkpoint is written.

On start, the newest checkpoint whose checksum verifies is loaded (corrupted ones are reported
and skipped) and the feedback recorded after it is replayed, so after a crash the service
serves what it would have served without the crash.

>>> import tempfile, os
>>> from adaptloop.serve.schemas import FeedbackItem
>>> service = Service.open(os.path.join(tempfile.mkdtemp(), "s.db"), learner="adwin_reset")
>>> service.start(background=False)
>>> served, logged = service.predict_records([{"x0": 1.0, "x1": 2.0, "x2": 3.0}])
>>> served.version, served.pred.shape, served.proba.shape, logged.result()
(1, (1,), (1, 2), 1)
>>> service.add_feedback([FeedbackItem(prediction_id=served.ids[0], label="1")]).result()
[1]
>>> service.stop()
"""

from __future__ import annotations

import copy
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from adaptloop.config import (
    Experiment,
    build_learner,
    build_stream,
    load_experiment,
    parse_experiment,
)
from adaptloop.evaluation.metrics import MetricTracker, default_metrics
from adaptloop.learners.base import DriftReporting, Learner, is_classifier
from adaptloop.parameters import ParameterError, check_parameters
from adaptloop.serve.checkpoint import (
    CheckpointFile,
    export_checkpoint,
    newest_usable,
    read_checkpoint,
    require_usable,
)
from adaptloop.serve.errors import (
    CheckpointFileError,
    CheckpointMismatch,
    DuplicateFeedback,
    ExclusiveOptions,
    ExperimentMismatch,
    InputError,
    LearnerMismatch,
    UnknownLearner,
)
from adaptloop.serve.gate import UpdateGate
from adaptloop.serve.schemas import FeedbackItem, label_code, records_to_array
from adaptloop.serve.store import Checkpoint, NewFeedback, Store
from adaptloop.validation import Count, Fraction, NonNegativeReal, PositiveReal

log = logging.getLogger("adaptloop.serve")


@dataclass(frozen=True)
class ServiceConfig:
    """Tuning of the adaptation loop, declared once (types of :mod:`adaptloop.validation`); a
    refused value is an :class:`InputError` naming it.

    >>> ServiceConfig(micro_batch=8).gate_window
    64
    >>> ServiceConfig(micro_batch=0)
    Traceback (most recent call last):
    ...
    adaptloop.serve.errors.InputError: micro_batch: must be >= 1, got 0
    """

    micro_batch: Count = 16
    """Feedback records per adaptation step."""
    gate_window: Count = 64
    """Samples the update gate sees per decision."""
    max_nfr: Fraction = 0.05
    """Highest negative flip rate allowed for a promotion."""
    gate_tolerance: NonNegativeReal = 0.5
    """Regression only: absolute error that counts as correct."""
    checkpoint_every: Count = 50
    """Micro-batches between periodic checkpoints (promotions, snapshots and rollbacks always
    write one)."""
    poll_seconds: PositiveReal = 0.05
    """Idle wait of the worker."""

    def __post_init__(self) -> None:
        given = {field.name: getattr(self, field.name) for field in fields(self)}
        try:
            check_parameters(ServiceConfig, given)
        except ParameterError as error:
            raise InputError(error.path, error.reason) from None


@dataclass(frozen=True)
class ModelSpec:
    """What the database serves: the experiment, the learner's name and the stream's schema.

    >>> spec = ModelSpec.from_experiment(load_experiment(None), None)
    >>> spec.learner, spec.feature_names, spec.classes
    ('static', ('x0', 'x1', 'x2'), ('0', '1'))
    >>> ModelSpec.from_experiment(load_experiment(None), "nope")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    adaptloop.serve.errors.UnknownLearner: learner: no learner 'nope' in the experiment; ...
    """

    experiment: Experiment
    learner: str
    feature_names: tuple[str, ...]
    task: str
    classes: tuple[str, ...] | None

    @classmethod
    def from_experiment(cls, experiment: Experiment, learner: str | None) -> ModelSpec:
        name = learner or next(iter(experiment.learners))
        if name not in experiment.learners:
            known = ", ".join(experiment.learners)
            raise UnknownLearner(
                "learner", f"no learner {name!r} in the experiment; known: {known}"
            )
        info = build_stream(experiment).info
        return cls(experiment, name, info.feature_names, info.task, info.classes)

    @property
    def metrics(self) -> list[str]:
        """The prequential metrics over feedback: the experiment's, or the task's default."""
        return self.experiment.evaluation.metrics or default_metrics(self.task)

    def build(self, state: dict | None = None) -> Learner:
        """A fresh learner (seeded: the same every time), loaded with ``state`` when given."""
        learner = build_learner(self.experiment, self.learner, build_stream(self.experiment).info)
        if state is not None:
            learner.load_state_dict(state)
        return learner

    def meta(self) -> dict[str, Any]:
        """What a database (and a checkpoint file's header) records about what it serves."""
        return {
            "experiment_source": self.experiment.source,
            "experiment_name": self.experiment.name,
            "learner": self.learner,
            "feature_names": list(self.feature_names),
            "task": self.task,
            "classes": None if self.classes is None else list(self.classes),
        }


def _spec_of(ckpt: CheckpointFile) -> ModelSpec:
    """The spec a checkpoint file describes; its schema must be what its experiment builds."""
    header = ckpt.header
    experiment = parse_experiment(header["experiment_source"], f"{ckpt.path} (embedded experiment)")
    spec = ModelSpec.from_experiment(experiment, header["learner"])
    built = spec.meta()
    if any(header[key] != built[key] for key in ("feature_names", "task", "classes")):
        raise CheckpointFileError(
            f"{ckpt.path}: its schema differs from what its experiment builds"
        )
    return spec


def _check_reopen(db: str | Path, meta: dict[str, Any], ckpt: CheckpointFile) -> None:
    """A checkpoint file on an existing database: allowed only when the database was created
    from the same file (a restart)."""
    origin = meta.get("from_checkpoint") or {}
    if origin.get("sha256") == ckpt.header["sha256"]:
        return
    if meta["experiment_source"] != ckpt.header["experiment_source"]:
        raise ExperimentMismatch(
            "checkpoint",
            f"{db} was created from experiment {meta['experiment_name']!r}, another experiment "
            f"than the checkpoint's ({ckpt.header['experiment_name']!r})",
        )
    made = f"checkpoint file {origin.get('file')!r}" if origin else "the experiment"
    raise CheckpointMismatch(
        "checkpoint",
        f"{db} already serves learner {meta['learner']!r}, created from {made} "
        "and not from this checkpoint",
    )


def _stored_spec(
    db: str | Path, meta: dict[str, Any], experiment: str | Path | None, learner: str | None
) -> ModelSpec:
    """What an existing database serves; a given ``experiment`` or ``learner`` must agree."""
    stored = parse_experiment(meta["experiment_source"], f"{db} (stored experiment)")
    if experiment is not None and load_experiment(experiment).source != stored.source:
        raise ExperimentMismatch(
            "experiment",
            f"{db} was created with experiment {meta['experiment_name']!r} and another file",
        )
    if learner is not None and learner != meta["learner"]:
        raise LearnerMismatch(
            "learner", f"{db} serves learner {meta['learner']!r}, not {learner!r}"
        )
    return ModelSpec.from_experiment(stored, meta["learner"])


def _nan_to_none(values: dict[str, float]) -> dict[str, float | None]:
    return {k: (None if v != v else v) for k, v in values.items()}


@dataclass(frozen=True)
class Predictions:
    """Served predictions: by model ``version``, one id per record (for its feedback), the
    predictions (class codes, or values for regression) and the class probabilities."""

    version: int
    ids: list[str]
    pred: np.ndarray
    proba: np.ndarray | None


class Service:
    """The served model, the worker and the store (see the module docstring)."""

    def __init__(self, store: Store, spec: ModelSpec, config: ServiceConfig | None = None) -> None:
        self.store = store
        self.spec = spec
        self.config = config or ServiceConfig()
        self.classifier = spec.task != "regression"
        self._swap_lock = threading.Lock()  # only around swapping the served model
        self._state_lock = threading.Lock()  # worker steps, snapshot, rollback
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._current: tuple[int, Learner] | None = None
        self.decisions: tuple[dict[str, Any], ...] = ()  # the last 20, replaced whole
        self.skipped_checkpoints: list[str] = []
        self.replayed = 0
        self.worker_error: str | None = None
        self.report: dict[str, float | None] = {}
        self.on_version: Callable[[int], None] | None = None

    # -- opening -------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        db: str | Path,
        experiment: str | Path | None = None,
        learner: str | None = None,
        config: ServiceConfig | None = None,
        checkpoint: str | Path | CheckpointFile | None = None,
    ) -> Service:
        """Open (or create) the database ``db``; a new database serves ``learner`` (default:
        the first) of ``experiment`` (default: the built-in one), or the model of the
        checkpoint file ``checkpoint`` (as version 1, with its experiment and learner), an
        existing one what it was created with (an ``experiment`` or ``learner`` that differs
        is refused, and so is a ``checkpoint`` unless the database was created from it: then
        it is simply reopened). Checkpoint files are pickles: open only files you trust.

        Refusals name the parameter as ``error.field``: :class:`ExclusiveOptions` (both
        ``experiment`` and ``checkpoint``), :class:`CheckpointFileError`,
        :class:`UnknownLearner`, :class:`ExperimentMismatch`, :class:`LearnerMismatch` or
        :class:`CheckpointMismatch` (the database serves something else), ``StoreError``
        (``db`` unreadable); an experiment file that cannot run raises its own
        ``ExperimentError``. A refusal changes nothing in an existing database."""
        if checkpoint is not None and experiment is not None:
            raise ExclusiveOptions(
                "checkpoint", "experiment", "a checkpoint file carries its experiment"
            )
        ckpt = checkpoint
        if checkpoint is not None and not isinstance(checkpoint, CheckpointFile):
            ckpt = read_checkpoint(checkpoint)
        if ckpt is not None and learner is not None and learner != ckpt.header["learner"]:
            raise InputError(
                "learner",
                f"the checkpoint serves learner {ckpt.header['learner']!r}, not {learner!r}",
            )
        store = Store(db).start()
        try:
            meta = store.get_meta()
            if meta and ckpt is not None:
                _check_reopen(db, meta, ckpt)
            if meta:
                return cls(store, _stored_spec(db, meta, experiment, learner), config)
            if ckpt is not None:
                service = cls(store, _spec_of(ckpt), config)
                service._seed(ckpt)
                return service
            spec = ModelSpec.from_experiment(load_experiment(experiment), learner)
            store.set_meta(spec.meta())
            return cls(store, spec, config)
        except BaseException:
            store.close()
            raise

    def _seed(self, ckpt: CheckpointFile) -> None:
        """A new database: serve the checkpoint's model as version 1; the candidate starts
        from it. The initial checkpoint and ``meta`` are written in one transaction."""
        with self._state_lock:
            state = ckpt.state()
            try:
                model = self.spec.build(state)
            except Exception as error:
                raise CheckpointFileError(
                    f"{ckpt.path}: cannot load the state into learner "
                    f"{self.spec.learner!r}: {type(error).__name__}: {error}"
                ) from None
            self._fresh(model)
            origin = ckpt.provenance()
            self.store.add_checkpoint(
                1,
                "initial",
                0,
                self._state(),
                {"from_checkpoint": origin},
                meta_values={**self.spec.meta(), "from_checkpoint": origin},
            )

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, background: bool = True) -> None:
        """Recover (newest verified checkpoint + replay), then start the worker thread."""
        self._recover()
        if background:
            self._thread = threading.Thread(target=self._run, name="adaptloop-worker", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the worker, checkpoint what was learned since the last checkpoint, close."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._state_lock:
            if self._learned_seq > self._checkpoint_seq:
                self._checkpoint("shutdown")
        self.store.close()

    def notify(self) -> None:
        """Wake the worker: new feedback is stored."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                with self._state_lock:
                    stepped = self.step()
            except Exception as error:  # keep serving; report the failure in /v1/model
                log.exception("adaptation step failed")
                self.worker_error = f"{type(error).__name__}: {error}"
                stepped = False
            if not stepped:
                self._wake.wait(self.config.poll_seconds)
                self._wake.clear()

    # -- model state -----------------------------------------------------------------------------
    @property
    def current(self) -> tuple[int, Learner]:
        """``(version, served learner)``; the learner must not be mutated."""
        with self._swap_lock:
            return self._current

    @property
    def version(self) -> int:
        return self.current[0]

    def _publish(self, version: int, model: Learner) -> None:
        with self._swap_lock:
            self._current = (version, model)
        if self.on_version is not None:
            self.on_version(version)

    def _fresh(self, model: Learner | None = None) -> None:
        model = self.spec.build() if model is None else model
        self.candidate = copy.deepcopy(model)
        n_classes = None if self.spec.classes is None else len(self.spec.classes)
        window = self.spec.experiment.evaluation.window
        self.tracker = MetricTracker(self.spec.metrics, self.spec.task, n_classes, window)
        tolerance = None if self.classifier else self.config.gate_tolerance
        self.gate = UpdateGate(self.config.gate_window, self.config.max_nfr, tolerance=tolerance)
        self._learned_seq = 0
        self._checkpoint_seq = -1
        self.samples_learned = 0
        self.batches = 0
        self._publish(1, model)

    def _state(self) -> dict[str, Any]:
        version, served = self.current
        return {
            "version": version,
            "served": served.state_dict(),
            "candidate": self.candidate.state_dict(),
            "tracker": self.tracker,
            "gate": self.gate,
            "learned_seq": self._learned_seq,
            "samples_learned": self.samples_learned,
            "batches": self.batches,
        }

    def _restore(self, checkpoint: Checkpoint, state: dict[str, Any]) -> Checkpoint:
        served, candidate = self.spec.build(state["served"]), self.spec.build(state["candidate"])
        self.candidate = candidate
        self.tracker, self.gate = state["tracker"], state["gate"]
        self._learned_seq = self._checkpoint_seq = int(state["learned_seq"])
        self.samples_learned, self.batches = int(state["samples_learned"]), int(state["batches"])
        self._publish(int(state["version"]), served)
        return checkpoint

    def _checkpoint(self, kind: str, **meta: Any) -> dict[str, Any]:
        self.last_checkpoint = self.store.add_checkpoint(
            self.version, kind, self._learned_seq, self._state(), meta
        )
        self._checkpoint_seq = self._learned_seq
        return self.last_checkpoint

    def _recover(self) -> None:
        with self._state_lock:
            skipped: list[str] = []
            restored = newest_usable(self.store.checkpoints(), self._restore, skipped)
            for message in skipped:
                log.warning("skipping %s", message)
            self.skipped_checkpoints.extend(skipped)
            if restored is None:
                self._fresh()
                self.restored_from = None
                self._checkpoint("initial")
            else:
                self.last_checkpoint = restored.info
                self.restored_from = restored.id
            self.report = _nan_to_none(self.tracker.report())
            before = self.samples_learned
            while self.step():
                pass
            self.replayed = self.samples_learned - before
            # the store holds each decision once (replayed ones are not recorded twice)
            self.decisions = tuple(self.store.decisions(20))
            if self.replayed:
                log.info("replayed %d feedback records", self.replayed)

    # -- predictions and feedback ----------------------------------------------------------------
    def predict(self, X: np.ndarray) -> tuple[int, np.ndarray, np.ndarray | None]:
        """``(version, predictions, probabilities or None)`` from the served model (not
        logged: see :meth:`predict_records`)."""
        version, model = self.current
        if self.classifier and is_classifier(model):
            proba = np.asarray(model.predict_proba(X))
            return version, proba.argmax(axis=1), proba
        return version, np.asarray(model.predict(X)), None

    def predict_records(self, records: Sequence[Mapping[str, float]]) -> tuple[Predictions, Future]:
        """Predict ``records`` (feature name -> value) and log the predictions: the
        predictions, and the future of the log write (answer once it resolves: a prediction
        must be stored before its id is handed out). ``InputError`` naming ``records[i]``
        when a record's feature names differ."""
        X = records_to_array(records, self.spec.feature_names)
        version, pred, proba = self.predict(X)
        ids = [uuid.uuid4().hex for _ in range(len(X))]
        logged = self.store.log_predictions(ids, version, X, pred, proba)
        return Predictions(version, ids, pred, proba), logged

    def add_feedback(self, items: Sequence[FeedbackItem]) -> Future:
        """Store the labels of ``items`` (all or none), for the worker to learn: the future
        resolves to their ``seq`` numbers once fsynced (acknowledge only then). Refusals name
        ``feedback[i]...``: an unknown label or record (``InputError``), a prediction id
        given twice or already labelled (``DuplicateFeedback``) or never served
        (``UnknownPrediction``)."""
        new: list[NewFeedback] = []
        seen: set[str] = set()
        for i, item in enumerate(items):
            field = f"feedback[{i}]"
            label = label_code(item.label, self.spec.classes, f"{field}.label")
            if item.prediction_id is None:
                X = records_to_array([item.record], self.spec.feature_names, f"{field}.record")
                new.append(NewFeedback(None, X[0].tobytes(), label))
                continue
            if item.prediction_id in seen:
                raise DuplicateFeedback(
                    f"{field}.prediction_id", "the same prediction id appears twice"
                )
            seen.add(item.prediction_id)
            new.append(NewFeedback(item.prediction_id, None, label))
        stored = self.store.add_feedback(new)
        stored.add_done_callback(lambda _: self.notify())
        return stored

    # -- adaptation ------------------------------------------------------------------------------
    def step(self) -> bool:
        """Process the next full micro-batch of feedback, if there is one (caller holds the
        state lock, or owns the service alone)."""
        size = self.config.micro_batch
        rows = self.store.feedback_after(self._learned_seq, size)
        if len(rows) < size:
            return False
        d = len(self.spec.feature_names)
        X = np.frombuffer(b"".join(r["features"] for r in rows), dtype=np.float32)
        X = X.reshape(size, d)
        labels = np.array([r["label"] for r in rows])
        y = labels.astype(np.int64) if self.classifier else labels.astype(np.float32)
        _, served = self.current
        # 1. prequential metrics over feedback: what was served
        missing = [i for i, r in enumerate(rows) if r["prediction"] is None]
        _, now_pred, now_proba = self.predict(X[missing]) if missing else (0, None, None)
        pred = np.array([0 if r["prediction"] is None else r["prediction"] for r in rows])
        pred = pred.astype(np.int64) if self.classifier else pred.astype(np.float32)
        proba = None
        if self.classifier and self.tracker.needs_proba:
            proba = np.empty((size, len(self.spec.classes)), dtype=np.float64)
            for i, r in enumerate(rows):
                if r["proba"] is not None:
                    proba[i] = np.frombuffer(r["proba"], dtype=np.float32)
        if missing:
            pred[missing] = now_pred
            if proba is not None:
                proba[missing] = now_proba
        self.tracker.update(y, pred, proba)
        # 2. the gate: served vs candidate on samples neither has learned
        self.gate.add(y, np.asarray(served.predict(X)), np.asarray(self.candidate.predict(X)))
        # 3. the candidate learns
        self.candidate.learn(X, y)
        self._learned_seq = int(rows[-1]["seq"])
        self.samples_learned += size
        self.batches += 1
        self.report = _nan_to_none(self.tracker.report())
        # 4. decide
        if self.gate.ready():
            self._decide()
        elif self.batches % self.config.checkpoint_every == 0:
            self._checkpoint("periodic")
        return True

    def _decide(self) -> None:
        decision = self.gate.decide()
        before = self.version
        after = before + 1 if decision.promote else before
        record = {
            **decision.as_dict(),
            "at_seq": self._learned_seq,
            "version_before": before,
            "version_after": after,
            "time": time.time(),
        }
        if decision.promote:
            self._publish(after, copy.deepcopy(self.candidate))
            self._checkpoint("promotion")
        self.store.add_decision(self._learned_seq, record)
        self.decisions = (*self.decisions, record)[-20:]

    # -- manual actions --------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Checkpoint the whole state now; returns the checkpoint's row."""
        with self._state_lock:
            return self._checkpoint("snapshot")

    def rollback(self, version: int) -> dict[str, Any]:
        """Serve (as a new version) the model of an earlier ``version``; the candidate starts
        over from it and the gate's evidence is reset. ``UnknownVersion`` if no checkpoint of
        that version verifies."""
        with self._state_lock:
            model = require_usable(
                self.store.checkpoints(version),
                lambda checkpoint, state: self.spec.build(state["served"]),
                version,
            )
            self.candidate = copy.deepcopy(model)
            self.gate.reset()
            self._publish(self.version + 1, model)
            return self._checkpoint("rollback", rolled_back_to=version)

    def export_checkpoint(self, version: int | None = None) -> CheckpointFile:
        """A checkpoint file of the served model (or of ``version``): the newest verified
        stored checkpoint of that version (``UnknownVersion`` when there is none)."""
        if version is None:
            with self._state_lock:  # a new version is published and stored under this lock
                version = self.version
        return export_checkpoint(self.store, version)

    # -- reporting -------------------------------------------------------------------------------
    def alarms(self) -> list[int]:
        """Drift alarms of the learning line (positions in learned feedback samples)."""
        if not isinstance(self.candidate, DriftReporting):
            return []
        return [int(a) for a in self.candidate.alarms]

    def status(self) -> dict[str, Any]:
        """What ``GET /v1/model`` returns."""
        received = self.store.count("feedback")
        return {
            "version": self.version,
            "experiment": self.spec.experiment.name,
            "learner": self.spec.learner,
            "task": self.spec.task,
            "feature_names": list(self.spec.feature_names),
            "classes": None if self.spec.classes is None else list(self.spec.classes),
            "feedback": {
                "received": received,
                "learned": self.samples_learned,
                "pending": received - self.samples_learned,
                "micro_batch": self.config.micro_batch,
            },
            "metrics": dict(self.report),
            "metrics_window": self.tracker.window,
            "drift_alarms": self.alarms(),
            "gate": {
                "window": self.config.gate_window,
                "max_nfr": self.config.max_nfr,
                "evidence": self.gate.n,
            },
            "decisions": list(self.decisions),
            "last_checkpoint": self.last_checkpoint,
            "skipped_checkpoints": list(self.skipped_checkpoints),
            "restored_from_checkpoint": self.restored_from,
            "replayed_on_start": self.replayed,
            "worker_error": self.worker_error,
        }
