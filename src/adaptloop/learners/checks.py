"""Checks every learner must pass, shipped with the library (as River's ``check_estimator``).

:func:`check_learner` runs them all on a learner of yours: give it a factory that returns a
fresh, identically configured learner on every call (fixed seeds) and the task it learns --
``"binary"`` (labels 0 and 1), ``"multiclass"`` (0, 1, 2) or ``"regression"``. The checks feed
it a small easy problem (:func:`easy_data`: 3 float32 features on different scales, the target
a function of the first) and check the protocol and the outputs, that learning improves the
score, determinism, ``state_dict`` round trips, ``clone``, that predicting changes nothing, and
that bad batches are refused with a ``ValueError`` naming the problem and leave the state as it
was. A failed check raises ``AssertionError`` saying what went wrong.

>>> import numpy as np
>>> from adaptloop.learners import LogisticRegression
>>> check_learner(lambda: LogisticRegression(lr=0.05), task="binary")

Each check is a function of a :class:`LearnerSpec` too (:data:`CHECKS`), to run one at a time
(a test per check, as ``tests/test_learner_suite.py`` does for the built-in learners):

>>> spec = LearnerSpec(lambda: LogisticRegression(n_classes=3, lr=0.05), task="multiclass")
>>> check_clone(spec)
"""

from __future__ import annotations

import copy
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from adaptloop.learners.base import HasTask, Learner, is_classifier, states_equal
from adaptloop.validation import Task

__all__ = [
    "CHECKS",
    "CLASSES",
    "LearnerSpec",
    "bad_batches",
    "check_bad_batches",
    "check_bad_batches_first",
    "check_bad_features_when_predicting",
    "check_clone",
    "check_determinism",
    "check_feature_count_fixed",
    "check_learner",
    "check_learning_improves",
    "check_load_restores",
    "check_outputs",
    "check_predicting_changes_nothing",
    "check_protocol",
    "check_state_round_trip",
    "check_batch_of_one",
    "easy_data",
]

N_FEATURES = 3
CLASSES = {"binary": 2, "multiclass": 3}
"""The number of classes of :func:`easy_data` by task."""
BATCH = 48  # the batch size the checks feed
N_LEARN = 480  # samples a learner gets in the "learning improves the score" check


@dataclass(frozen=True)
class LearnerSpec:
    """A learner to check: ``make()`` returns a fresh one (equal on equal calls), ``task`` what
    it learns. ``learns``: whether it must learn :func:`easy_data` from 480 samples, to at
    least ``min_score`` (accuracy for classifiers, R^2 for regressors); ``exact_states``:
    whether ``state_dict`` values compare equal whenever nothing was learned differently (a
    learner holding unseeded, unused generators is not exact; refused batches must still leave
    its state equal)."""

    make: Callable[[], Learner]
    task: Task
    learns: bool = True
    min_score: float = 0.8
    exact_states: bool = True


def easy_data(task: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An easy problem: the target depends on the first feature only (trees and linear models
    both learn it from a few hundred samples); 3 float32 features on different scales.

    >>> X, y = easy_data("multiclass", 5)
    >>> X.shape, X.dtype, y.dtype
    ((5, 3), dtype('float32'), dtype('int64'))
    """
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_FEATURES)) * np.array([1.0, 5.0, 0.2]) + np.array([0.0, 3.0, -1.0])
    X = X.astype(np.float32)
    if task == "binary":
        y = (X[:, 0] > 0).astype(np.int64)
    elif task == "multiclass":
        y = np.digitize(X[:, 0], [-0.45, 0.45]).astype(np.int64)
    else:
        y = (2.0 * X[:, 0] + 0.5 * X[:, 2] + 1.0).astype(np.float32)
    return X, y


# -- helpers ------------------------------------------------------------------------------------
def _expect(condition: object, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _refuses(call: Callable[[], Any], pattern: str, what: str) -> None:
    """``call()`` raises ``ValueError`` whose message matches ``pattern``."""
    try:
        call()
    except ValueError as error:
        _expect(re.search(pattern, str(error)), f"{what}: message {str(error)!r} lacks {pattern!r}")
        return
    raise AssertionError(f"{what}: accepted, expected a ValueError")


def _feed(learner: Learner, X: np.ndarray, y: np.ndarray, batch: int = BATCH) -> None:
    for start in range(0, len(X), batch):
        learner.learn(X[start : start + batch], y[start : start + batch])


def _predictions(learner: Learner, X: np.ndarray) -> list[np.ndarray]:
    """Everything the learner says about X (predict, and predict_proba for classifiers)."""
    out = [learner.predict(X)]
    if is_classifier(learner):
        out.append(learner.predict_proba(X))  # type: ignore[attr-defined]
    return out


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))


def _score(learner: Learner, task: str, X: np.ndarray, y: np.ndarray) -> float:
    pred = learner.predict(X)
    if task == "regression":
        return 1.0 - float(np.mean((pred - y) ** 2) / np.var(y))
    return float(np.mean(pred == y))


# -- protocol and outputs -------------------------------------------------------------------------
def check_protocol(spec: LearnerSpec) -> None:
    """A ``Learner``; a ``Classifier`` exactly for classification, with its ``n_classes``."""
    learner = spec.make()
    _expect(isinstance(learner, Learner), f"{learner!r} is not a Learner")
    classifier = spec.task != "regression"
    _expect(is_classifier(learner) == classifier, f"is_classifier is not {classifier}")
    if classifier and isinstance(learner, HasTask):
        n = learner.n_classes
        _expect(n == CLASSES[spec.task], f"n_classes is {n}, expected {CLASSES[spec.task]}")


def check_outputs(spec: LearnerSpec) -> None:
    """Predictions of shape ``(n,)``: float32 values, or int64 codes with probabilities of
    shape ``(n, n_classes)`` summing to one -- before and after learning."""
    learner = spec.make()
    X, y = easy_data(spec.task, 200)
    for fitted in (False, True):
        if fitted:
            _feed(learner, X, y)
        pred = learner.predict(X[:7])
        _expect(pred.shape == (7,), f"predict gave shape {pred.shape} for 7 rows")
        if spec.task == "regression":
            _expect(pred.dtype == np.float32, f"predict gave {pred.dtype}, expected float32")
            _expect(np.isfinite(pred).all(), "predict gave NaN or inf")
            continue
        k = CLASSES[spec.task]
        _expect(pred.dtype == np.int64, f"predict gave {pred.dtype}, expected int64")
        _expect(((pred >= 0) & (pred < k)).all(), f"predict gave codes outside 0..{k - 1}")
        proba = learner.predict_proba(X[:7])  # type: ignore[attr-defined]
        _expect(proba.shape == (7, k), f"predict_proba gave shape {proba.shape}")
        _expect(np.issubdtype(proba.dtype, np.floating), "predict_proba is not floating")
        _expect((proba >= 0).all(), "predict_proba gave negative probabilities")
        _expect(np.allclose(proba.sum(axis=1), 1.0, rtol=1e-6), "probabilities do not sum to 1")


def check_batch_of_one(spec: LearnerSpec) -> None:
    """Learning and predicting one sample at a time works."""
    learner = spec.make()
    X, y = easy_data(spec.task, 60)
    _expect(learner.predict(X[:1]).shape == (1,), "predict on one row is not of shape (1,)")
    _feed(learner, X, y, batch=1)
    _expect(learner.predict(X[:1]).shape == (1,), "predict on one row is not of shape (1,)")
    if spec.task != "regression":
        proba = learner.predict_proba(X[:1])  # type: ignore[attr-defined]
        _expect(proba.shape == (1, CLASSES[spec.task]), "predict_proba on one row")


def check_learning_improves(spec: LearnerSpec) -> None:
    """After 480 samples the score on fresh data is at least ``min_score`` and 0.1 better
    than before (skipped for a learner that learns nothing by design, ``learns=False``)."""
    if not spec.learns:
        return
    X, y = easy_data(spec.task, N_LEARN + 300)
    X_test, y_test = X[N_LEARN:], y[N_LEARN:]
    learner = spec.make()
    before = _score(learner, spec.task, X_test, y_test)
    _feed(learner, X[:N_LEARN], y[:N_LEARN])
    after = _score(learner, spec.task, X_test, y_test)
    message = f"score {after:.3f} after learning (before: {before:.3f})"
    _expect(after >= spec.min_score and after > before + 0.1, message)


# -- determinism, state, clone --------------------------------------------------------------------
def check_determinism(spec: LearnerSpec) -> None:
    """Two learners built and fed alike predict alike (and have equal states, if exact)."""
    X, y = easy_data(spec.task, 240)
    a, b = spec.make(), spec.make()
    _feed(a, X, y)
    _feed(b, X, y)
    _expect(_same(_predictions(a, X), _predictions(b, X)), "equal learners predict differently")
    if spec.exact_states:
        _expect(states_equal(a.state_dict(), b.state_dict()), "equal learners, unequal states")


def check_state_round_trip(spec: LearnerSpec) -> None:
    """A pickled ``state_dict`` loaded into a fresh learner predicts and goes on learning as
    the original; the state handed out is a snapshot, not a view of the live learner."""
    X, y = easy_data(spec.task, 288)
    a = spec.make()
    _feed(a, X[:144], y[:144])
    state = a.state_dict()
    saved = copy.deepcopy(state)
    b = spec.make()
    b.load_state_dict(pickle.loads(pickle.dumps(state)))
    _expect(_same(_predictions(a, X), _predictions(b, X)), "restored learner predicts otherwise")
    _feed(a, X[144:], y[144:])
    _feed(b, X[144:], y[144:])
    _expect(_same(_predictions(a, X), _predictions(b, X)), "restored learner learns otherwise")
    _expect(states_equal(state, saved), "the state handed out changed as the learner learned")


def check_load_restores(spec: LearnerSpec) -> None:
    """Loading an earlier state into a fitted learner takes it back there."""
    X, y = easy_data(spec.task, 240)
    a = spec.make()
    _feed(a, X[:96], y[:96])
    state = a.state_dict()
    expected = _predictions(a, X)
    _feed(a, X[96:], y[96:])
    a.load_state_dict(state)
    _expect(_same(_predictions(a, X), expected), "load_state_dict did not restore the learner")


def check_clone(spec: LearnerSpec) -> None:
    """``clone()`` is an unfitted learner of the same type and parameters that learns like a
    fresh one, and leaves the original alone."""
    X, y = easy_data(spec.task, 240)
    learner, fresh = spec.make(), spec.make()
    _feed(learner, X, y)
    before = _predictions(learner, X)
    clone = learner.clone()
    _expect(type(clone) is type(learner), f"clone is a {type(clone).__name__}")
    _expect(repr(clone) == repr(learner), f"clone {clone!r} differs from {learner!r}")
    _expect(_same(_predictions(clone, X), _predictions(fresh, X)), "clone is not unfitted")
    if spec.exact_states:
        _expect(states_equal(clone.state_dict(), fresh.state_dict()), "clone state not fresh")
    _expect(_same(_predictions(learner, X), before), "cloning changed the learner")
    _feed(clone, X, y)
    _feed(fresh, X, y)
    _expect(_same(_predictions(clone, X), _predictions(fresh, X)), "clone learns otherwise")


def check_predicting_changes_nothing(spec: LearnerSpec) -> None:
    """``predict`` (and ``predict_proba``) leave what was learned as it was."""
    X, y = easy_data(spec.task, 144)
    learner = spec.make()

    def unchanged(state: dict[str, Any]) -> None:
        if spec.exact_states:
            _expect(states_equal(learner.state_dict(), state), "predicting changed the state")
        else:  # what was learned did not change: the saved state predicts the same
            restored = spec.make()
            restored.load_state_dict(state)
            same = _same(_predictions(restored, X), _predictions(learner, X))
            _expect(same, "predicting changed what was learned")

    state = learner.state_dict()
    _predictions(learner, X)
    unchanged(state)
    _feed(learner, X, y)
    state = learner.state_dict()
    _predictions(learner, X)
    _predictions(learner, X[:1])
    unchanged(state)


# -- bad input ------------------------------------------------------------------------------------
def bad_batches(task: str) -> list[tuple[str, Any, Any, str]]:
    """``(what, X, y, pattern)``: batches a learner must refuse, with a pattern its message
    matches. The first nine are bad features (refused by ``predict`` too)."""
    X, y = easy_data(task, 8, seed=1)
    nan, inf = X.copy(), X.copy()
    nan[2, 1] = np.nan
    inf[5, 0] = np.inf
    cases: list[tuple[str, Any, Any, str]] = [
        ("too few features", X[:, :2], y, "features"),
        ("too many features", np.hstack([X, X[:, :1]]), y, "features"),
        ("NaN", nan, y, "NaN"),
        ("inf", inf, y, "inf"),
        ("string X", X.astype(str), y, "dtype"),
        ("object X", X.astype(object), y, "dtype"),
        ("1-d X", X[:, 0], y, "dimension"),
        ("empty batch", X[:0], y[:0], "empty"),
        ("list X", X.tolist(), y, "numpy array"),
        ("y length", X, y[:-1], "labels for"),
        ("2-d y", X, y[:, None], "dimension"),
        ("string y", X, y.astype(str), "dtype|numeric"),
    ]
    if task == "regression":
        y_nan = y.copy()
        y_nan[0] = np.nan
        cases.append(("NaN y", X, y_nan, "NaN"))
    else:
        unseen, negative = y.copy(), y.copy()
        unseen[3] = CLASSES[task]
        negative[0] = -1
        cases += [
            ("unseen label", X, unseen, "unknown label"),
            ("negative label", X, negative, "unknown label"),
            ("non-integer label", X, y + 0.5, "integer"),
        ]
    return cases


def check_bad_batches(spec: LearnerSpec) -> None:
    """A fitted learner refuses bad batches with a ``ValueError`` and stays as it was."""
    X, y = easy_data(spec.task, 144)
    learner = spec.make()
    _feed(learner, X, y)
    state = learner.state_dict()
    expected = _predictions(learner, X)
    for what, X_bad, y_bad, pattern in bad_batches(spec.task):
        _refuses(lambda X_bad=X_bad, y_bad=y_bad: learner.learn(X_bad, y_bad), pattern, what)
        _expect(states_equal(learner.state_dict(), state), f"state changed by refused {what}")
    _expect(_same(_predictions(learner, X), expected), "refused batches changed predictions")


def check_bad_batches_first(spec: LearnerSpec) -> None:
    """An unfitted learner refuses bad batches, stays unfitted, and learns afterwards."""
    learner = spec.make()
    state = learner.state_dict()
    for what, X_bad, y_bad, pattern in bad_batches(spec.task):
        if what in ("too few features", "too many features"):
            continue  # any feature count is fine before the first batch
        _refuses(lambda X_bad=X_bad, y_bad=y_bad: learner.learn(X_bad, y_bad), pattern, what)
        _expect(states_equal(learner.state_dict(), state), f"state changed by refused {what}")
    learner.learn(*easy_data(spec.task, 48))


def check_bad_features_when_predicting(spec: LearnerSpec) -> None:
    """``predict`` (and ``predict_proba``) refuse bad features and change nothing."""
    X, y = easy_data(spec.task, 96)
    learner = spec.make()
    _feed(learner, X, y)
    state = learner.state_dict()
    methods = [learner.predict]
    if spec.task != "regression":
        methods.append(learner.predict_proba)  # type: ignore[attr-defined]
    for what, X_bad, _, pattern in bad_batches(spec.task)[:9]:
        for method in methods:
            _refuses(lambda method=method, X_bad=X_bad: method(X_bad), pattern, what)
        _expect(states_equal(learner.state_dict(), state), f"state changed by {what}")


def check_feature_count_fixed(spec: LearnerSpec) -> None:
    """The first batch fixes the number of features."""
    X, y = easy_data(spec.task, 48)
    learner = spec.make()
    learner.learn(X, y)
    _refuses(lambda: learner.predict(X[:, :2]), f"expected {N_FEATURES}", "fewer features")


CHECKS: tuple[Callable[[LearnerSpec], None], ...] = (
    check_protocol,
    check_outputs,
    check_batch_of_one,
    check_learning_improves,
    check_determinism,
    check_state_round_trip,
    check_load_restores,
    check_clone,
    check_predicting_changes_nothing,
    check_bad_batches,
    check_bad_batches_first,
    check_bad_features_when_predicting,
    check_feature_count_fixed,
)
"""Every check, in the order :func:`check_learner` runs them."""


def check_learner(
    make: Callable[[], Learner],
    task: Task,
    *,
    learns: bool = True,
    min_score: float = 0.8,
    exact_states: bool = True,
) -> None:
    """Run every check of :data:`CHECKS` on the learners ``make()`` returns (see the module
    doc and :class:`LearnerSpec` for the arguments); ``AssertionError`` at the first failure."""
    spec = LearnerSpec(make, task, learns, min_score, exact_states)
    for check in CHECKS:
        check(spec)
