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

Roles (:data:`ROLES`): a process with role ``all`` (the default) does all of the above; on a
shared database (PostgreSQL, or SQLite on one host) one ``trainer`` does it while holding the
trainer lease (:mod:`adaptloop.serve.lease`; more trainers wait as standbys and take over,
with the same recovery), and any number of ``predictor`` processes serve the newest published
version (they follow new checkpoints: :meth:`Service.follow`), log their predictions and store
feedback for the trainer; they never adapt (snapshot and rollback: :class:`WrongRole`).

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

import contextlib
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
    LegacyDatabase,
    NotStorable,
    StoreError,
    UnknownLearner,
    UnpredictableInput,
    WrongRole,
)
from adaptloop.serve.gate import UpdateGate
from adaptloop.serve.lease import TrainerLease
from adaptloop.serve.schemas import FeedbackItem, label_code, records_to_array
from adaptloop.serve.state import StateEncodingError
from adaptloop.serve.store import (
    Checkpoint,
    NewFeedback,
    SqlStore,
    is_database_url,
    open_store,
)
from adaptloop.validation import Count, Fraction, NonNegativeInt, NonNegativeReal, PositiveReal

log = logging.getLogger("adaptloop.serve")

ROLES = ("all", "trainer", "predictor")
"""What a process does with a store: ``all`` predicts, takes feedback and adapts (one process,
the default); ``trainer`` adapts and publishes versions (one per store: it holds the lease, a
second waits as a standby); ``predictor`` serves the newest published version and forwards
feedback (stateless: any number of them)."""


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
    keep_checkpoints: Count = 20
    """Checkpoints kept besides the newest of every version and every initial and snapshot
    one (see :meth:`Store.prune_checkpoints`)."""
    keep_predictions: Count = 1_000_000
    """Logged predictions kept (the newest); older ones are deleted."""
    keep_predictions_seconds: PositiveReal = 7 * 24 * 3600.0
    """Age after which a logged prediction is deleted (its feedback is then refused as an
    unknown id); predictions whose feedback is not learned yet are kept."""
    prune_seconds: PositiveReal = 10.0
    """Interval of the worker's retention pass over the predictions."""
    max_quarantined: NonNegativeInt = 100
    """Quarantined feedback records above which ``/readyz`` says not ready."""
    lease_seconds: PositiveReal = 5.0
    """Trainer lease: renewed every third of it; a standby takes over this long after the
    trainer stopped renewing it (on SQLite at once: the lock dies with the process)."""
    follow_seconds: PositiveReal = 0.5
    """Predictors: longest wait before looking for a new version (PostgreSQL also notifies
    them at once)."""

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

    def __init__(
        self,
        store: SqlStore,
        spec: ModelSpec,
        config: ServiceConfig | None = None,
        role: str = "all",
        lease: TrainerLease | None = None,
    ) -> None:
        if role not in ROLES:
            raise InputError("role", f"must be one of {', '.join(ROLES)}, got {role!r}")
        self.store = store
        self.spec = spec
        self.config = config or ServiceConfig()
        self.role = role
        self.lease = lease
        if lease is not None:
            lease.on_lost = self._lease_lost
        self._seen_checkpoint: int | None = None  # a predictor's newest checkpoint id seen
        self.restored_from: int | None = None
        self.last_checkpoint: dict[str, Any] = {}
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
        self.checkpoint_key: bytes | None = None
        self.quarantined: dict[int, dict[str, Any]] = {}  # first seq -> row
        self._pruned_at = 0.0

    # -- opening -------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        db: str | Path,
        experiment: str | Path | None = None,
        learner: str | None = None,
        config: ServiceConfig | None = None,
        checkpoint: str | Path | CheckpointFile | None = None,
        checkpoint_key: bytes | None = None,
        trust_pickle: bool = False,
        role: str = "all",
        wait: float | None = 30.0,
    ) -> Service:
        """Open (or create) the database ``db``; a new database serves ``learner`` (default:
        the first) of ``experiment`` (default: the built-in one), or the model of the
        checkpoint file ``checkpoint`` (as version 1, with its experiment and learner), an
        existing one what it was created with (an ``experiment`` or ``learner`` that differs
        is refused, and so is a ``checkpoint`` unless the database was created from it: then
        it is simply reopened). ``db`` is a SQLite file or a ``postgresql://`` URL.

        ``role`` (:data:`ROLES`): ``all`` and ``trainer`` take the trainer lease first: ``all``
        is refused when another process holds it, a ``trainer`` waits for it (a standby) up
        to ``wait`` seconds (None: for ever), then takes over (newest checkpoint + replay of
        the feedback after it). A ``predictor`` opens an existing database only (it waits up
        to ``wait`` seconds for the trainer to create it) and never writes checkpoints.

        Checkpoint files hold arrays + JSON (nothing in them runs); with ``checkpoint_key``
        only files signed with it are accepted, and exports are signed with it. A database
        whose checkpoints are legacy pickles, or a format 1 checkpoint file, is refused
        unless ``trust_pickle`` (then the trainer converts the rows once). A SQLite database
        is held by one server of role ``all`` at a time (``StoreError`` for a second).

        Refusals name the parameter as ``error.field``: :class:`ExclusiveOptions` (both
        ``experiment`` and ``checkpoint``), :class:`CheckpointFileError`,
        :class:`UnknownLearner`, :class:`ExperimentMismatch`, :class:`LearnerMismatch` or
        :class:`CheckpointMismatch` (the database serves something else), ``StoreError``
        (``db`` unreadable, or in use by another server), :class:`LegacyDatabase`,
        :class:`NotStorable` (a learner whose state is not arrays + JSON); an experiment file
        that cannot run raises its own ``ExperimentError``. A refusal changes nothing in an
        existing database and leaves no new one behind."""
        if checkpoint is not None and experiment is not None:
            raise ExclusiveOptions(
                "checkpoint", "experiment", "a checkpoint file carries its experiment"
            )
        config = config or ServiceConfig()
        ckpt = checkpoint
        if checkpoint is not None and not isinstance(checkpoint, CheckpointFile):
            ckpt = read_checkpoint(checkpoint, checkpoint_key, trust_pickle)
        if ckpt is not None and learner is not None and learner != ckpt.header["learner"]:
            raise InputError(
                "learner",
                f"the checkpoint serves learner {ckpt.header['learner']!r}, not {learner!r}",
            )
        if role not in ROLES:
            raise InputError("role", f"must be one of {', '.join(ROLES)}, got {role!r}")
        if role == "predictor" and ckpt is not None:
            raise InputError(
                "checkpoint",
                "a predictor serves what the trainer publishes: start the trainer "
                "from the checkpoint",
            )
        path = Path(db)
        # a new database is removed whole if opening fails; an existing one is never touched
        made = []
        if not is_database_url(db) and not path.exists():
            made = [f for f in _database_files(path) if not f.exists()]
        store = open_store(db, config.keep_checkpoints, exclusive=role == "all").start()
        lease: TrainerLease | None = None
        try:
            if role == "predictor":
                meta = _wait_for_model(store, db, wait)
            else:
                lease = TrainerLease(store, config.lease_seconds)
                existing = store.get_meta()
                if existing and role == "trainer":  # check, and load the code, before waiting:
                    _stored_spec(db, existing, experiment, learner).build()  # a quick takeover
                lease.take(wait if role == "trainer" else 0.0)
                lease.start()  # renewed from now on: recovery may take longer than the lease
                meta = store.get_meta()
            legacy = store.legacy_checkpoints()
            if legacy and (not trust_pickle or role == "predictor"):
                raise LegacyDatabase(f"{db} holds {legacy} pickled (legacy) checkpoint(s)")
            if legacy:
                converted = store.convert_legacy_checkpoints(_legacy_state)
                log.warning("converted %d legacy pickled checkpoints of %s", converted, db)
            if meta and ckpt is not None:
                _check_reopen(db, meta, ckpt)
            if meta:
                spec = _stored_spec(db, meta, experiment, learner)
                service = cls(store, spec, config, role, lease)
            elif ckpt is not None:
                service = cls(store, _spec_of(ckpt), config, role, lease)
                service._seed(ckpt)
            else:
                spec = ModelSpec.from_experiment(load_experiment(experiment), learner)
                service = cls(store, spec, config, role, lease)
                service._create()
            service.checkpoint_key = checkpoint_key
            return service
        except BaseException:
            if lease is not None:
                lease.stop()
            store.close()
            for made_file in made:  # a failed start leaves no half-made database
                made_file.unlink(missing_ok=True)
            raise

    def _create(self) -> None:
        """A new database: the experiment's fresh learner as version 1; the initial
        checkpoint and ``meta`` in one transaction."""
        with self._state_lock:
            self._fresh()
            self._probe(self.current[1], "the new learner")
            self._store_checkpoint(1, "initial", {}, self.spec.meta())

    def _store_checkpoint(
        self, version: int, kind: str, meta: dict[str, Any], meta_values: dict | None = None
    ) -> dict[str, Any]:
        try:
            return self.store.add_checkpoint(
                version, kind, self._learned_seq, self._state(), meta, meta_values
            )
        except StateEncodingError as error:
            raise NotStorable(
                f"learner {self.spec.learner!r} cannot be checkpointed, so it cannot be "
                f"served: its state {error}"
            ) from None

    def _seed(self, ckpt: CheckpointFile) -> None:
        """A new database: serve the checkpoint's model as version 1; the candidate starts
        from it. The initial checkpoint and ``meta`` are written in one transaction."""
        with self._state_lock:
            state = ckpt.state()
            try:
                model = self.spec.build(state)
                self._probe(model, "the loaded model")
            except Exception as error:
                raise CheckpointFileError(
                    f"{ckpt.path}: cannot load the state into learner "
                    f"{self.spec.learner!r}: {type(error).__name__}: {error}"
                ) from None
            self._fresh(model)
            origin = ckpt.provenance()
            meta_values = {**self.spec.meta(), "from_checkpoint": origin}
            self._store_checkpoint(1, "initial", {"from_checkpoint": origin}, meta_values)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, background: bool = True) -> None:
        """Recover (newest verified checkpoint + replay), then start the worker thread; a
        predictor loads the newest published version and follows new ones instead."""
        if self.role == "predictor":
            self.follow()
            target, name = self._follow_loop, "adaptloop-follower"
        else:
            self._recover()
            target, name = self._run, "adaptloop-worker"
        if background:
            self._thread = threading.Thread(target=target, name=name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the worker, checkpoint what was learned since the last checkpoint, end the
        lease (a standby takes over at once), close."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.role != "predictor" and self.lease_lost is None:
            with self._state_lock, contextlib.suppress(StoreError):
                if self._learned_seq > self._checkpoint_seq:
                    self._checkpoint("shutdown")
        if self.lease is not None:
            self.lease.stop()
        self.store.close()

    @property
    def lease_lost(self) -> str | None:
        """Why this trainer lost its lease (None while it holds it, or for a predictor)."""
        return None if self.lease is None else self.lease.lost

    def _lease_lost(self, reason: str) -> None:
        """Another trainer took the lease over: stop adapting (the fenced store refuses this
        one's checkpoints anyway); predictions go on with the served model."""
        self._stopping.set()
        self._wake.set()

    # -- following (predictors) ------------------------------------------------------------------
    def follow(self) -> bool:
        """Load the newest published version if it is not the served one (the newest stored
        checkpoint that verifies); True when a new version was loaded."""
        newest = self.store.newest_checkpoint()
        if newest is None or newest[0] == self._seen_checkpoint:
            return False
        self._seen_checkpoint = newest[0]
        if self._current is not None and newest[1] == self.version:
            return False  # a periodic checkpoint of the served version
        with self._state_lock:
            skipped: list[str] = []
            restored = newest_usable(self.store.checkpoints(), self._restore, skipped)
            for message in skipped:
                log.warning("skipping %s", message)
            if restored is None:
                raise StoreError(f"{self.store.where}: no stored checkpoint verifies")
            self.last_checkpoint, self.restored_from = restored.info, restored.id
            self.report = _nan_to_none(self.tracker.report())
            self.quarantined = {row["first_seq"]: row for row in self.store.quarantined()}
            self.decisions = tuple(self.store.decisions(20))
        log.info("serving version %d (checkpoint %d)", self.version, restored.id)
        return True

    def _follow_loop(self) -> None:
        while not self._stopping.is_set():
            self.store.wait_for_checkpoint(self.config.follow_seconds)
            if self._stopping.is_set():
                return
            try:
                self.follow()
                self.worker_error = None
            except Exception as error:  # keep serving the loaded version; report it
                log.warning("following the trainer failed: %s", error)
                self.worker_error = f"{type(error).__name__}: {error}"
                self._stopping.wait(self.config.follow_seconds)

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
            self._prune()  # also under sustained feedback, when the worker never idles
            if not stepped:
                self._wake.wait(self.config.poll_seconds)
                self._wake.clear()

    def _prune(self) -> None:
        """The retention pass over the logged predictions, every ``prune_seconds``."""
        now = time.time()
        if now - self._pruned_at < self.config.prune_seconds:
            return
        self._pruned_at = now
        try:
            self.store.prune_predictions(
                now - self.config.keep_predictions_seconds,
                self.config.keep_predictions,
                self._learned_seq,
            )
        except Exception as error:  # noqa: BLE001 - a full disk: serve on, report it
            log.warning("pruning predictions failed: %s", error)

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

    def _new_scores(self) -> None:
        """A fresh tracker (prequential metrics over feedback) and update gate."""
        n_classes = None if self.spec.classes is None else len(self.spec.classes)
        window = self.spec.experiment.evaluation.window
        self.tracker = MetricTracker(self.spec.metrics, self.spec.task, n_classes, window)
        tolerance = None if self.classifier else self.config.gate_tolerance
        self.gate = UpdateGate(self.config.gate_window, self.config.max_nfr, tolerance=tolerance)

    def _fresh(self, model: Learner | None = None) -> None:
        model = self.spec.build() if model is None else model
        self.candidate = copy.deepcopy(model)
        self._new_scores()
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
            "tracker": self.tracker.state_dict(),
            "gate": self.gate.state_dict(),
            "learned_seq": self._learned_seq,
            "samples_learned": self.samples_learned,
            "batches": self.batches,
        }

    def _probe(self, model: Learner, what: str) -> None:
        """``ValueError`` unless ``model`` predicts a probe row (zeros) as finite values."""
        probe = np.zeros((1, len(self.spec.feature_names)), dtype=np.float32)
        try:
            out = np.asarray(model.predict(probe), dtype=np.float64)
        except Exception as error:  # noqa: BLE001 - any failure: the state does not fit
            raise ValueError(
                f"{what} cannot predict a probe row: {type(error).__name__}: {error}"
            ) from None
        if out.shape != (1,) or not np.isfinite(out).all():
            raise ValueError(f"{what} predicts {out.tolist()!r} for a probe row")

    def _restore(self, checkpoint: Checkpoint, state: dict[str, Any]) -> Checkpoint:
        served, candidate = self.spec.build(state["served"]), self.spec.build(state["candidate"])
        self._probe(served, "its served model")
        self._probe(candidate, "its candidate")
        self._new_scores()
        self.candidate = candidate
        self.tracker.load_state_dict(state["tracker"])
        self.gate.load_state_dict(state["gate"])
        self._learned_seq = self._checkpoint_seq = int(state["learned_seq"])
        self.samples_learned, self.batches = int(state["samples_learned"]), int(state["batches"])
        self._publish(int(state["version"]), served)
        return checkpoint

    def _checkpoint(self, kind: str, **meta: Any) -> dict[str, Any]:
        self.last_checkpoint = self._store_checkpoint(self.version, kind, meta)
        self._checkpoint_seq = self._learned_seq
        return self.last_checkpoint

    def _recover(self) -> None:
        with self._state_lock:
            self.quarantined = {row["first_seq"]: row for row in self.store.quarantined()}
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
            out = proba
            pred = proba.argmax(axis=1)
        else:
            pred, proba = np.asarray(model.predict(X)), None
            out = pred
        if not np.isfinite(out).all():
            finite = np.isfinite(out).reshape(len(out), -1).all(axis=1)
            i = int(np.argmin(finite))
            raise UnpredictableInput(
                f"records[{i}]",
                "the model answers it with a non-finite value (its values are "
                "far outside what the model learned)",
            )
        return version, pred, proba

    def predict_records(self, records: Sequence[Mapping[str, float]]) -> tuple[Predictions, Future]:
        """Predict ``records`` (feature name -> value) and log the predictions: the
        predictions, and the future of the log write (answer once it resolves: a prediction
        must be stored before its id is handed out). ``InputError`` naming ``records[i]``
        when a record's feature names differ or a value is not finite in float32,
        ``UnpredictableInput`` when the model answers a record with a non-finite value."""
        return self.predict_array(records_to_array(records, self.spec.feature_names))

    def predict_array(self, X: np.ndarray) -> tuple[Predictions, Future]:
        """:meth:`predict_records` for a checked float32 ``(n, d)`` matrix in the order of
        the feature names (see :func:`~adaptloop.serve.schemas.check_float32`)."""
        version, pred, proba = self.predict(X)
        ids = [uuid.uuid4().hex for _ in range(len(X))]
        logged = self.store.log_predictions(ids, version, X, pred, proba)
        return Predictions(version, ids, pred, proba), logged

    def add_feedback(
        self, items: Sequence[FeedbackItem], idempotency_key: str | None = None
    ) -> Future:
        """Store the labels of ``items`` (all or none), for the worker to learn: the future
        resolves to their ``seq`` numbers once fsynced (acknowledge only then). Refusals name
        ``feedback[i]...``: an unknown label or record (``InputError``), a prediction id
        given twice or already labelled (``DuplicateFeedback``) or never served
        (``UnknownPrediction``), an idempotency key used for other feedback
        (``IdempotencyConflict``). An item with a ``key`` (or, given ``idempotency_key``, the
        request's key and the item's position: ``"<key>:<i>"``) that is already stored with
        the same content is not stored again: its stored ``seq`` is returned."""
        new: list[NewFeedback] = []
        seen: set[str] = set()
        for i, item in enumerate(items):
            field = f"feedback[{i}]"
            label = label_code(item.label, self.spec.classes, f"{field}.label")
            key = item.key
            if key is None and idempotency_key is not None:
                key = f"{idempotency_key}:{i}"
            if item.prediction_id is None:
                X = records_to_array([item.record], self.spec.feature_names, f"{field}.record")
                new.append(NewFeedback(None, X[0].tobytes(), label, key))
                continue
            if item.prediction_id in seen:
                raise DuplicateFeedback(
                    f"{field}.prediction_id", "the same prediction id appears twice"
                )
            seen.add(item.prediction_id)
            new.append(NewFeedback(item.prediction_id, None, label, key))
        stored = self.store.add_feedback(new)
        stored.add_done_callback(lambda _: self.notify())
        return stored

    # -- adaptation ------------------------------------------------------------------------------
    def step(self) -> bool:
        """Process the next full micro-batch of feedback, if there is one (caller holds the
        state lock, or owns the service alone). A micro-batch the learner fails on (an
        exception, or a candidate that then predicts non-finite values) is quarantined: set
        aside with its error, never retried; the candidate is put back as it was before it,
        and every later replay skips it."""
        size = self.config.micro_batch
        rows = self.store.feedback_after(self._learned_seq, size)
        if len(rows) < size:
            return False
        first, last = int(rows[0]["seq"]), int(rows[-1]["seq"])
        if first not in self.quarantined:
            backup = copy.deepcopy(self.candidate)
            try:
                self._learn_batch(rows)
            except Exception as error:  # noqa: BLE001 - set the batch aside, learn on
                self.candidate = backup
                message = f"{type(error).__name__}: {error}"
                log.warning("quarantined feedback %d..%d: %s", first, last, message)
                self.store.quarantine(first, last, message)
                self.quarantined[first] = {
                    "first_seq": first,
                    "last_seq": last,
                    "created": time.time(),
                    "error": message,
                }
        self._learned_seq = last
        self.batches += 1
        if self.gate.ready():
            self._decide()
        elif self.batches % self.config.checkpoint_every == 0:
            self._checkpoint("periodic")
        return True

    def _learn_batch(self, rows: list[dict[str, Any]]) -> None:
        """Score, gate and learn one micro-batch; raises (changing only the candidate, which
        the caller restores) when the learner fails on it."""
        size = len(rows)
        d = len(self.spec.feature_names)
        X = np.frombuffer(b"".join(r["features"] for r in rows), dtype=np.float32)
        X = X.reshape(size, d)
        if not np.isfinite(X).all():
            raise ValueError("non-finite feature values (stored before they were refused)")
        labels = np.array([r["label"] for r in rows])
        y = labels.astype(np.int64) if self.classifier else labels.astype(np.float32)
        if not np.isfinite(y).all():
            raise ValueError("non-finite labels (stored before they were refused)")
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
        # 2. the gate's evidence: served vs candidate on samples neither has learned
        old, new = np.asarray(served.predict(X)), np.asarray(self.candidate.predict(X))
        # 3. the candidate learns; a candidate that then answers non-finite values failed
        self.candidate.learn(X, y)
        after = np.asarray(self.candidate.predict(X), dtype=np.float64)
        if not np.isfinite(after).all():
            raise ValueError("after learning it, the candidate predicts non-finite values")
        self.tracker.update(y, pred, proba)
        self.gate.add(y, old, new)
        self.samples_learned += size
        self.report = _nan_to_none(self.tracker.report())

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
    def _adapting(self, action: str) -> None:
        """``WrongRole`` for a predictor: ``action`` is the trainer's."""
        if self.role == "predictor":
            raise WrongRole("role", f"a predictor does not {action}: ask the trainer")

    def snapshot(self) -> dict[str, Any]:
        """Checkpoint the whole state now; returns the checkpoint's row (``WrongRole`` on a
        predictor)."""
        self._adapting("snapshot")
        with self._state_lock:
            return self._checkpoint("snapshot")

    def rollback(self, version: int) -> dict[str, Any]:
        """Serve (as a new version) the model of an earlier ``version``; the candidate starts
        over from it and the gate's evidence is reset. ``UnknownVersion`` if no checkpoint of
        that version verifies (``WrongRole`` on a predictor)."""
        self._adapting("roll back")
        with self._state_lock:

            def load(checkpoint: Checkpoint, state: dict[str, Any]) -> Learner:
                model = self.spec.build(state["served"])
                self._probe(model, "its served model")
                return model

            model = require_usable(self.store.checkpoints(version), load, version)
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
        return export_checkpoint(self.store, version, key=self.checkpoint_key)

    # -- reporting -------------------------------------------------------------------------------
    def alarms(self) -> list[int]:
        """Drift alarms of the learning line (positions in learned feedback samples)."""
        if not isinstance(self.candidate, DriftReporting):
            return []
        return [int(a) for a in self.candidate.alarms]

    def quarantine_summary(self) -> dict[str, Any]:
        """Quarantined micro-batches: how many, how many records, the newest error."""
        rows = sorted(self.quarantined.values(), key=lambda row: row["first_seq"])
        return {
            "batches": len(rows),
            "records": sum(row["last_seq"] - row["first_seq"] + 1 for row in rows),
            "last": rows[-1] if rows else None,
        }

    def readiness(self) -> dict[str, str | None]:
        """What ``/readyz`` checks: the store takes a write, the worker runs (when started in
        the background), the served model predicts a probe row, and no more than
        ``max_quarantined`` feedback records are quarantined. Each check maps to None (ok)
        or what is wrong."""
        checks: dict[str, str | None] = {}
        try:
            self.store.check_writable()
            checks["store"] = None
        except Exception as error:  # noqa: BLE001 - reported, not raised
            checks["store"] = f"not writable: {getattr(error, 'detail', error)}"
        alive = self._thread is None or self._thread.is_alive()
        checks["worker"] = None if alive and not self._stopping.is_set() else "not running"
        if self.lease is not None:
            checks["lease"] = None if self.lease_lost is None else f"lost: {self.lease_lost}"
        try:
            self._probe(self.current[1], "the served model")
            checks["model"] = None
        except ValueError as error:
            checks["model"] = str(error)
        records = self.quarantine_summary()["records"]
        checks["quarantine"] = (
            None
            if records <= self.config.max_quarantined
            else f"{records} feedback records quarantined (> {self.config.max_quarantined})"
        )
        return checks

    def status(self) -> dict[str, Any]:
        """What ``GET /v1/model`` returns."""
        received = self.store.count("feedback")
        quarantine = self.quarantine_summary()
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
                "pending": received - self.samples_learned - quarantine["records"],
                "quarantined": quarantine["records"],
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
            "quarantine": quarantine,
            "role": self.role,
            "lease": self.store.lease(),
        }


def _wait_for_model(store: SqlStore, db: str | Path, wait: float | None) -> dict[str, Any]:
    """A predictor's database: its ``meta`` once the trainer stored a checkpoint, waiting up
    to ``wait`` seconds (None: for ever); ``StoreError`` when it serves nothing by then."""
    deadline = None if wait is None else time.monotonic() + wait
    while True:
        meta = store.get_meta()
        if meta and store.newest_checkpoint() is not None:
            return meta
        if deadline is not None and time.monotonic() >= deadline:
            raise StoreError(f"{db} serves nothing yet: start its trainer (or --role all) first")
        time.sleep(0.2)


def _database_files(db: Path) -> list[Path]:
    """The files a database is made of (the file, its log, its shared memory, its lock)."""
    return [db.with_name(db.name + suffix) for suffix in ("", "-wal", "-shm", ".lock")]


def _legacy_state(state: dict[str, Any]) -> dict[str, Any]:
    """A legacy (pickled) service state as plain values: its tracker and gate objects as
    their state dicts (a gate of an older version has no error sums: zero)."""
    gate = state["gate"]
    if not isinstance(gate, dict):
        gate = {
            "n": gate.n,
            "correct_old": gate.correct_old,
            "correct_new": gate.correct_new,
            "negative_flips": gate.negative_flips,
            "error_old": getattr(gate, "error_old", 0.0),
            "error_new": getattr(gate, "error_new", 0.0),
            "finite_new": getattr(gate, "finite_new", True),
        }
    tracker = state["tracker"]
    if not isinstance(tracker, dict):
        tracker = tracker.state_dict()
    return {**state, "gate": gate, "tracker": tracker}
