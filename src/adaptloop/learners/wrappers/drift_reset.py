"""``DriftReset``: watch the model's errors with a River drift detector; on an alarm, start over.

>>> import numpy as np
>>> from adaptloop.learners.wrappers.drift_reset import DriftReset
>>> from adaptloop.learners.models.majority import MajorityClass
>>> model = DriftReset(MajorityClass(), detector="adwin", window=100)
>>> X = np.zeros((100, 1), dtype=np.float32)
>>> for y in [np.zeros(100, dtype=np.int64)] * 5 + [np.ones(100, dtype=np.int64)] * 3:
...     model.learn(X, y)
>>> len(model.alarms) >= 1 and 500 <= model.alarms[0] < 600
True
>>> model.predict(X[:1])
array([1])
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np

from adaptloop.learners.base import Learner, MonitoredSequential, registry, sequence_is_checked
from adaptloop.learners.detectors import (
    CompiledDetector,
    DetectorSpec,
    compile_detector,
    detector_class,
    first_alarm,
    is_binary_detector,
    make_detector,
)
from adaptloop.learners.sample_window import SampleWindow
from adaptloop.learners.wrappers.base import Wrapper
from adaptloop.validation import Count, Seed

__all__ = ["DriftReset"]


@registry.register("drift_reset")
class DriftReset(Wrapper):
    """Feed each sample's error to a drift detector; on an alarm, replace the model.

    For every batch, the served model first predicts it (test-then-train): the per-sample
    errors (0/1 mistakes for classifiers, absolute errors for regression) go one by one, in
    order, to the detector (``detector.update(e)`` then ``detector.drift_detected``). On an
    alarm at the sample of stream position ``p`` (the number of samples learned before it, so
    the alarming sample's absolute index), ``p`` is appended to ``alarms``, the served model
    is replaced by a fresh clone of ``base`` trained (one pass, in order, mini-batches of
    ``fit_batch_size``) on the last ``window`` samples up to and including that sample, and
    the detector is reset. The rest of the batch is then predicted by the new model (its
    errors feed the fresh detector) and learned by it. Without an alarm, the served model
    learns the batch incrementally. The very first batch is only learned (there is no model
    to judge yet).

    ``detector`` is a name of :data:`adaptloop.learners.detectors.detectors` (``"adwin"``,
    ``"page_hinkley"``, ``"kswin"``, ``"ddm"``, ``"eddm"``, ``"hddm_a"``, ``"hddm_w"``,
    ``"fhddm"``), a dict ``{"kind": name, **params}`` or a River detector instance (cloned,
    so its state is never shared); ``detector_params`` adds constructor arguments and ``seed``
    goes to detectors that take one. Binary detectors (DDM, EDDM, HDDM, FHDDM) need a
    classifier base. ADWIN, DDM and Page-Hinkley run compiled
    (:class:`~adaptloop.learners.detectors.CompiledDetector`: River's alarms, bit for bit).

    Exact test-then-train (:class:`~adaptloop.learners.base.Sequential`): around a model that
    runs a compiled loop with a detector in it (the linear learners) and with a compiled
    detector, ``test_then_train`` gives the numbers of batches of one at any batch size; the
    loop leaves compiled code only to re-fit at an alarm.

    >>> import numpy as np
    >>> from river.drift import ADWIN
    >>> from adaptloop.learners.models.majority import MajorityClass
    >>> DriftReset(MajorityClass(), detector=ADWIN(delta=0.01)).detector_.delta
    0.01
    >>> DriftReset(MajorityClass(), detector={"kind": "ddm", "warm_start": 50}).detector_
    CompiledDDM (
      warm_start=50
      warning_threshold=2.
      drift_threshold=3.
    )
    """

    _local_state = ("n_seen", "alarms", "detector")  # the detector is pickled: per client

    alarms: list[int] = []  # noqa: RUF012 - per-instance list set in __init__; shadows Wrapper.alarms

    def __init__(
        self,
        base: Learner,
        detector: DetectorSpec = "adwin",
        window: Count = 2000,
        detector_params: dict[str, Any] | None = None,
        fit_batch_size: Count | None = 256,
        seed: Seed | None = None,
    ) -> None:
        self.detector = detector
        self.window = window
        if detector_params is not None and not isinstance(detector_params, dict):
            raise ValueError(
                f"detector_params must be a dict, got {type(detector_params).__name__}"
            )
        self.detector_params = detector_params
        self.fit_batch_size = fit_batch_size
        self.seed = seed
        super().__init__(base)
        self._prototype = compile_detector(
            make_detector(detector, seed=seed, params=detector_params)
        )
        if is_binary_detector(self._prototype) and self.task == "regression":
            raise ValueError(
                f"detector {type(self._prototype).__name__} takes 0/1 errors and needs a "
                "classifier base; use adwin, page_hinkley or kswin for regression"
            )
        self.detector_ = self._prototype.clone()
        self.buffer_ = SampleWindow(self.window)
        self.n_seen_ = 0
        self.alarms = []  # this wrapper's own alarms (stream positions)

    def check_Xy(self, X: object, y: object) -> tuple[np.ndarray, np.ndarray]:
        X, y = super().check_Xy(X, y)
        if is_binary_detector(self._prototype) and not self._is_classifier():
            raise ValueError(
                f"detector {type(self._prototype).__name__} takes 0/1 errors and needs a "
                "classifier base"
            )
        return X, y

    def _errors(self, X: np.ndarray, y: np.ndarray) -> list[Any]:
        pred = np.asarray(self.model_.predict(X))
        if self._is_classifier():
            wrong = pred.reshape(len(y)) != y
            return (
                wrong.tolist()
                if is_binary_detector(self.detector_)
                else wrong.astype(float).tolist()
            )
        return np.abs(pred.reshape(len(y)).astype(np.float64) - y).tolist()

    def _learn(self, X: np.ndarray, y: np.ndarray) -> None:
        n, start = len(X), 0
        if self.n_seen_ > 0:
            while start < n:
                alarm = first_alarm(self.detector_, self._errors(X[start:], y[start:]))
                if alarm is None:
                    break
                i = start + alarm
                self._reset_at(self.n_seen_ + i, X[start : i + 1], y[start : i + 1])
                start = i + 1
        if start < n:
            self.buffer_.extend(X[start:], y[start:])
            self.model_.learn(X[start:], y[start:])
        self.n_seen_ += n

    def _reset_at(self, position: int, X: np.ndarray, y: np.ndarray) -> None:
        """The alarm at stream ``position``, after the samples ``(X, y)`` not yet in the
        window (the alarming one last): re-fit a fresh model on the window, fresh detector."""
        self.alarms.append(position)
        self.buffer_.extend(X, y)
        Xw, yw = self.buffer_.get()
        self.model_ = self._fit_fresh(Xw, yw, 1, self.fit_batch_size)
        self.detector_ = self._prototype.clone()

    def _sequential(self) -> bool:
        """Per sample when the model and the detector run in one compiled loop: a
        :class:`~adaptloop.learners.base.MonitoredSequential` model (the linear learners) and
        a compiled detector (ADWIN, DDM, Page-Hinkley)."""
        return isinstance(self.model_, MonitoredSequential) and isinstance(
            self.detector_, CompiledDetector
        )

    def _checked_test_then_train(
        self,
        X: np.ndarray,
        X_learn: np.ndarray,
        y_learn: np.ndarray,
        learn_at: np.ndarray,
        proba: bool = False,
    ) -> np.ndarray:
        """``test_then_train``: arrays already in shape for this wrapper (O(1):
        :func:`~adaptloop.learners.base.sequence_is_checked`, the wrapper's feature count
        known) go straight to the served model's compiled loop, whose first call checks every
        value before anything changes (a refused one raises there, naming it); others are
        checked here first."""
        if self.n_features_in_ is not None and sequence_is_checked(
            self, X, X_learn, y_learn, learn_at
        ):
            return self._test_then_train(X, X_learn, y_learn, learn_at, proba)
        return super()._checked_test_then_train(X, X_learn, y_learn, learn_at, proba)

    def _test_then_train(
        self, X: np.ndarray, X_learn: np.ndarray, y_learn: np.ndarray, at: np.ndarray, proba: bool
    ) -> np.ndarray:
        """As ``learn`` on batches of one: each learned sample is first predicted by the
        served model, its error goes to the detector, and an alarm re-fits before the next
        prediction; the compiled loop stops only at alarms."""
        out, p0, j0, m = [], 0, 0, len(X_learn)
        while True:
            model: Any = self.model_
            predicted, made, consumed, alarm = model.monitored_test_then_train(
                X[p0:] if p0 else X,
                X_learn[j0:] if j0 else X_learn,
                y_learn[j0:] if j0 else y_learn,
                at[j0:] - p0 if j0 or p0 else at,
                self.detector_,
                1 if self.n_seen_ == 0 else 0,  # the very first sample is only learned
                proba,
            )
            out.append(predicted)
            stop = j0 + consumed
            if not alarm:
                self.buffer_.extend(X_learn[j0:], y_learn[j0:])
                self.n_seen_ += m - j0
                return out[0] if len(out) == 1 else np.concatenate(out)
            self._reset_at(self.n_seen_ + consumed - 1, X_learn[j0:stop], y_learn[j0:stop])
            self.n_seen_ += consumed
            j0, p0 = stop, p0 + made

    def _get_state(self) -> dict[str, Any]:
        return {
            "model": self.model_.state_dict(),
            "buffer": self.buffer_.state(),
            "n_seen": self.n_seen_,
            "alarms": list(self.alarms),
            # compiled detectors as arrays; a River detector that does not compile as pickle
            # bytes (the service loads those only for River's own detector classes)
            "detector": (
                self.detector_.state_dict()
                if isinstance(self.detector_, CompiledDetector)
                else pickle.dumps(self.detector_)
            ),
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        keys = {"buffer", "n_seen", "alarms", "detector"}
        if not isinstance(state, dict) or not keys <= set(state):
            raise ValueError("DriftReset state needs keys model, buffer, n_seen, alarms, detector")
        buffer = SampleWindow.from_state(self.window, state["buffer"])
        saved = state["detector"]
        detector = (
            CompiledDetector.from_state_dict(saved)
            if isinstance(saved, dict)
            else pickle.loads(saved)
        )
        if detector_class(detector) is not detector_class(self._prototype):
            raise ValueError(
                f"state holds a {detector_class(detector).__name__} detector, "
                f"this DriftReset uses {detector_class(self._prototype).__name__}"
            )
        model = self._new_model(state)
        self.model_, self.buffer_, self.detector_ = model, buffer, detector
        self.n_seen_ = int(state["n_seen"])
        self.alarms = [int(a) for a in state["alarms"]]
