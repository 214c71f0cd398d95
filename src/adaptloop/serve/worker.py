"""The served model, its background adaptation worker, checkpoints and crash recovery.

A :class:`Service` holds two learners: the *served* one (never mutated once published: requests
predict with it while the worker runs) and the *candidate*, which learns every labelled
feedback record. Feedback is processed in fixed micro-batches of ``micro_batch`` records in
arrival order (``seq``), so the result is a pure function of the stored feedback and the
manual actions (snapshot, rollback, each recorded as a checkpoint); for each micro-batch:

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
>>> import numpy as np
>>> service = Service.open(os.path.join(tempfile.mkdtemp(), "s.db"), learner="adwin_reset")
>>> service.start(background=False)
>>> version, pred, proba = service.predict(np.zeros((2, 3), dtype=np.float32))
>>> version, pred.shape, proba.shape
(1, (2,), (2, 2))
>>> service.stop()
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from adaptloop.evaluation.metrics import MetricTracker, default_metrics
from adaptloop.experiment import (
    Experiment,
    ExperimentError,
    build_learner,
    build_stream,
    load_experiment,
    parse_experiment,
)
from adaptloop.learners.base import Learner, is_classifier
from adaptloop.serve.checkpoint import (
    CheckpointFile,
    CheckpointFileError,
    encode_checkpoint,
    read_checkpoint,
)
from adaptloop.serve.gate import UpdateGate
from adaptloop.serve.store import Store

log = logging.getLogger("adaptloop.serve")


class ServiceError(RuntimeError):
    """The service cannot start or cannot do what was asked (the message says why)."""


@dataclass(frozen=True)
class ServiceConfig:
    """Tuning of the adaptation loop.

    ``micro_batch``: feedback records per adaptation step; ``gate_window``: samples the gate
    sees per decision; ``max_nfr``: highest negative flip rate allowed for a promotion;
    ``gate_tolerance``: regression only, absolute error that counts as correct;
    ``checkpoint_every``: micro-batches between periodic checkpoints (promotions, snapshots
    and rollbacks always write one); ``poll_seconds``: idle wait of the worker.

    >>> ServiceConfig(micro_batch=8).gate_window
    64
    """

    micro_batch: int = 16
    gate_window: int = 64
    max_nfr: float = 0.05
    gate_tolerance: float = 0.5
    checkpoint_every: int = 50
    poll_seconds: float = 0.05

    def __post_init__(self) -> None:
        for name in ("micro_batch", "gate_window", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class ModelSpec:
    """What the database serves: the experiment, the learner's name and the stream's schema.

    >>> spec = ModelSpec.from_experiment(load_experiment(None), None)
    >>> spec.learner, spec.feature_names, spec.classes
    ('static', ('x0', 'x1', 'x2'), ('0', '1'))
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
            raise ServiceError(f"--learner: no learner {name!r} in the experiment; known: {known}")
        info = build_stream(experiment).info
        return cls(experiment, name, info.feature_names, info.task, info.classes)

    def build(self) -> Learner:
        """A fresh learner (seeded: the same every time)."""
        info = build_stream(self.experiment).info
        return build_learner(self.experiment, self.learner, info)

    def meta(self) -> dict[str, Any]:
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
    experiment = parse_experiment(ckpt.experiment_source, f"{ckpt.path} (embedded experiment)")
    spec = ModelSpec.from_experiment(experiment, ckpt.learner)
    header = ckpt.header
    if (
        list(spec.feature_names) != list(header["feature_names"])
        or spec.task != header["task"]
        or (None if spec.classes is None else list(spec.classes)) != header["classes"]
    ):
        raise ServiceError(
            f"--checkpoint: {ckpt.path}: its schema differs from what its experiment builds"
        )
    return spec


def _check_reopen(db: str | Path, meta: dict[str, Any], ckpt: CheckpointFile) -> None:
    """``--checkpoint`` on an existing database: allowed only when it was created from the
    same file (a restart); anything else is refused naming what the database serves."""
    origin = meta.get("from_checkpoint") or {}
    if origin.get("sha256") == ckpt.sha256:
        return
    if meta["experiment_source"] != ckpt.experiment_source:
        raise ServiceError(
            f"--checkpoint: {db} was created from experiment {meta['experiment_name']!r}, "
            f"another experiment than the checkpoint's ({ckpt.header['experiment_name']!r}); "
            "use a new --db"
        )
    made = f"checkpoint file {origin.get('file')!r}" if origin else "the experiment"
    raise ServiceError(
        f"--checkpoint: {db} already serves learner {meta['learner']!r}, created from {made} "
        "and not from this checkpoint; start without --checkpoint or use a new --db"
    )


def _nan_to_none(values: dict[str, float]) -> dict[str, float | None]:
    return {k: (None if v != v else v) for k, v in values.items()}


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
        it is simply reopened). Checkpoint files are pickles: open only files you trust."""
        if checkpoint is not None and experiment is not None:
            raise ServiceError(
                "--checkpoint: give --experiment or --checkpoint, not both (a checkpoint "
                "file carries its experiment)"
            )
        ckpt = None
        if checkpoint is not None:
            try:
                ckpt = (
                    checkpoint
                    if isinstance(checkpoint, CheckpointFile)
                    else read_checkpoint(checkpoint)
                )
            except CheckpointFileError as error:
                raise ServiceError(f"--checkpoint: {error}") from None
            if learner is not None and learner != ckpt.learner:
                raise ServiceError(
                    f"--learner: the checkpoint serves learner {ckpt.learner!r}, not {learner!r}"
                )
        store = Store(db).start()
        try:
            meta = store.get_meta()
            if meta and ckpt is not None:
                _check_reopen(db, meta, ckpt)
            if meta:
                stored = parse_experiment(meta["experiment_source"], f"{db} (stored experiment)")
                if experiment is not None:
                    given = load_experiment(experiment)
                    if given.source != stored.source:
                        raise ServiceError(
                            f"--experiment: {db} was created with experiment "
                            f"{meta['experiment_name']!r} and another file; start without "
                            "--experiment or use a new --db"
                        )
                if learner is not None and learner != meta["learner"]:
                    raise ServiceError(
                        f"--learner: {db} serves learner {meta['learner']!r}, not {learner!r}"
                    )
                spec = ModelSpec.from_experiment(stored, meta["learner"])
            elif ckpt is not None:
                service = cls(store, _spec_of(ckpt), config)
                service._seed(ckpt)
                return service
            else:
                spec = ModelSpec.from_experiment(load_experiment(experiment), learner)
                store.set_meta(spec.meta())
        except (ServiceError, ExperimentError) as error:
            store.close()
            raise ServiceError(str(error)) from None
        except BaseException:
            store.close()
            raise
        return cls(store, spec, config)

    def _seed(self, ckpt: CheckpointFile) -> None:
        """A new database: serve the checkpoint's model as version 1; the candidate starts
        from it. The initial checkpoint and ``meta`` are written in one transaction."""
        with self._state_lock:
            try:
                state = ckpt.state()
                model = self.spec.build()
                model.load_state_dict(state)
            except CheckpointFileError as error:
                raise ServiceError(f"--checkpoint: {error}") from None
            except Exception as error:
                raise ServiceError(
                    f"--checkpoint: {ckpt.path}: cannot load the state into learner "
                    f"{ckpt.learner!r}: {type(error).__name__}: {error}"
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

    def export_checkpoint(self, version: int | None = None) -> bytes:
        """A checkpoint file (bytes) of the served model, or of the newest verified stored
        checkpoint of ``version`` (``LookupError`` when there is none)."""
        meta = self.spec.meta()
        if version is None:
            current, served = self.current
            return encode_checkpoint(meta, current, served.state_dict())
        errors = []
        for stored in self.store.checkpoints(version):
            try:
                served = stored.verified_state()["served"]
            except (ValueError, KeyError, TypeError) as error:
                errors.append(str(error))
                continue
            return encode_checkpoint(
                meta, version, served, source_checkpoint=stored.id, kind=stored.kind
            )
        detail = f" ({'; '.join(errors)})" if errors else ""
        raise LookupError(f"version: no verified checkpoint of version {version}{detail}")

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
        evaluation = self.spec.experiment.evaluation
        metrics = evaluation.metrics or default_metrics(self.spec.task)
        n_classes = None if self.spec.classes is None else len(self.spec.classes)
        self.tracker = MetricTracker(metrics, self.spec.task, n_classes, evaluation.window)
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

    def _restore(self, state: dict[str, Any]) -> None:
        served, candidate = self.spec.build(), self.spec.build()
        served.load_state_dict(state["served"])
        candidate.load_state_dict(state["candidate"])
        self.candidate = candidate
        self.tracker, self.gate = state["tracker"], state["gate"]
        self._learned_seq = self._checkpoint_seq = int(state["learned_seq"])
        self.samples_learned, self.batches = int(state["samples_learned"]), int(state["batches"])
        self._publish(int(state["version"]), served)

    def _checkpoint(self, kind: str, **meta: Any) -> dict[str, Any]:
        version = self.version
        checkpoint_id = self.store.add_checkpoint(
            version, kind, self._learned_seq, self._state(), meta
        )
        self._checkpoint_seq = self._learned_seq
        self.last_checkpoint = {
            "id": checkpoint_id,
            "version": version,
            "kind": kind,
            "learned_seq": self._learned_seq,
            **meta,
        }
        return self.last_checkpoint

    def _recover(self) -> None:
        with self._state_lock:
            restored = False
            for checkpoint in self.store.checkpoints():
                try:
                    self._restore(checkpoint.verified_state())
                except Exception as error:
                    message = str(error)
                    if not message.startswith("checkpoint "):
                        message = f"checkpoint {checkpoint.id} (version {checkpoint.version}): "
                        message += f"cannot restore: {error}"
                    log.warning("skipping %s", message)
                    self.skipped_checkpoints.append(message)
                    continue
                self.last_checkpoint = {
                    "id": checkpoint.id,
                    "version": checkpoint.version,
                    "kind": checkpoint.kind,
                    "learned_seq": checkpoint.learned_seq,
                    **checkpoint.meta,
                }
                self.restored_from = checkpoint.id
                restored = True
                break
            if not restored:
                self._fresh()
                self.restored_from = None
                self._checkpoint("initial")
            self.report = _nan_to_none(self.tracker.report())
            before = self.samples_learned
            while self.step():
                pass
            self.replayed = self.samples_learned - before
            # the store holds each decision once (replayed ones are not recorded twice)
            self.decisions = tuple(self.store.decisions(20))
            if self.replayed:
                log.info("replayed %d feedback records", self.replayed)

    # -- predictions -----------------------------------------------------------------------------
    def predict(self, X: np.ndarray) -> tuple[int, np.ndarray, np.ndarray | None]:
        """``(version, predictions, probabilities or None)`` from the served model."""
        version, model = self.current
        if self.classifier and is_classifier(model):
            proba = np.asarray(model.predict_proba(X))
            return version, proba.argmax(axis=1), proba
        return version, np.asarray(model.predict(X)), None

    # -- adaptation ------------------------------------------------------------------------------
    def step(self) -> bool:
        """Process the next full micro-batch of feedback, if there is one (caller holds the
        state lock, or owns the service alone)."""
        size = self.config.micro_batch
        rows = self.store.feedback_after(self._learned_seq, size)
        if len(rows) < size:
            return False
        d = len(self.spec.feature_names)
        X = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(size, d)
        labels = np.array([r[2] for r in rows])
        y = labels.astype(np.int64) if self.classifier else labels.astype(np.float32)
        _, served = self.current
        # 1. prequential metrics over feedback: what was served
        missing = [i for i, r in enumerate(rows) if r[3] is None]
        _, now_pred, now_proba = self.predict(X[missing]) if missing else (0, None, None)
        pred = np.array([0 if r[3] is None else r[3] for r in rows])
        pred = pred.astype(np.int64) if self.classifier else pred.astype(np.float32)
        proba = None
        if self.classifier and self.tracker.needs_proba:
            k = len(self.spec.classes)
            proba = np.empty((size, k), dtype=np.float64)
            for i, r in enumerate(rows):
                if r[4] is not None:
                    proba[i] = np.frombuffer(r[4], dtype=np.float32)
        if missing:
            pred[missing] = now_pred
            if proba is not None:
                proba[missing] = now_proba
        self.tracker.update(y, pred, proba)
        # 2. the gate: served vs candidate on samples neither has learned
        self.gate.add(y, np.asarray(served.predict(X)), np.asarray(self.candidate.predict(X)))
        # 3. the candidate learns
        self.candidate.learn(X, y)
        self._learned_seq = int(rows[-1][0])
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
        over from it and the gate's evidence is reset. ``LookupError`` if no checkpoint of
        that version verifies."""
        with self._state_lock:
            errors = []
            for checkpoint in self.store.checkpoints(version):
                try:
                    state = checkpoint.verified_state()
                    model = self.spec.build()
                    model.load_state_dict(state["served"])
                except Exception as error:
                    errors.append(str(error))
                    continue
                self.candidate = copy.deepcopy(model)
                self.gate.reset()
                new_version = self.version + 1
                self._publish(new_version, model)
                return self._checkpoint("rollback", rolled_back_to=version)
            detail = f" ({'; '.join(errors)})" if errors else ""
            raise LookupError(f"version: no verified checkpoint of version {version}{detail}")

    # -- reporting -------------------------------------------------------------------------------
    def alarms(self) -> list[int]:
        """Drift alarms of the learning line (positions in learned feedback samples)."""
        return [int(a) for a in getattr(self.candidate, "alarms", None) or []]

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
