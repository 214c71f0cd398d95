"""The wrapper learners: WindowRetrain, DriftReset, Static (and their plumbing)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from river import drift

from adaptloop.learners import (
    DriftReset,
    Static,
    WindowRetrain,
    is_classifier,
    registry,
    states_equal,
)
from adaptloop.learners.base import BaseClassifier, BaseLearner, Learner
from adaptloop.learners.models.majority import MajorityClass
from adaptloop.learners.sample_window import SampleWindow

# -- tiny deterministic learners ---------------------------------------------------------------


class Recorder(BaseClassifier):
    """Records the ids (feature 0) of the samples it learns and its learn-call sizes.

    Predicts the majority label learned so far (class 0 when unfitted), or always 0 when
    ``always_zero``.
    """

    def __init__(self, always_zero: bool = False) -> None:
        super().__init__(task="binary")
        self.always_zero = always_zero
        self.ids: list[int] = []
        self.calls: list[int] = []
        self.counts = np.zeros(2, dtype=np.int64)

    def _learn(self, X, y):
        self.ids.extend(X[:, 0].astype(np.int64).tolist())
        self.calls.append(len(X))
        self.counts += np.bincount(y, minlength=2)

    def _predict_proba(self, X):
        if self.always_zero:
            p = np.array([1.0, 0.0])
        else:
            total = self.counts.sum()
            p = self.counts / total if total else np.array([0.5, 0.5])
            p = np.array([1.0, 0.0]) if p[0] >= p[1] else np.array([0.0, 1.0])
        return np.tile(p, (len(X), 1))

    def _get_state(self):
        return {"ids": list(self.ids), "calls": list(self.calls), "counts": self.counts.copy()}

    def _set_state(self, state):
        self.ids, self.calls = list(state["ids"]), list(state["calls"])
        self.counts = np.asarray(state["counts"]).copy()


class SignTable(BaseClassifier):
    """Counts (sign of x0, label) pairs; predicts the majority label of the sample's sign."""

    def __init__(self) -> None:
        super().__init__(task="binary")
        self.table = np.zeros((2, 2), dtype=np.int64)

    def _learn(self, X, y):
        np.add.at(self.table, ((X[:, 0] > 0).astype(np.int64), y), 1)

    def _predict_proba(self, X):
        rows = self.table[(X[:, 0] > 0).astype(np.int64)] + 1.0
        return rows / rows.sum(axis=1, keepdims=True)

    def _get_state(self):
        return {"table": self.table.copy()}

    def _set_state(self, state):
        self.table = np.asarray(state["table"]).copy()


class MeanRegressor(BaseLearner):
    """Predicts the running mean of the targets."""

    def __init__(self) -> None:
        super().__init__(task="regression")
        self.total, self.count = 0.0, 0

    def _learn(self, X, y):
        self.total += float(y.sum())
        self.count += len(y)

    def _predict(self, X):
        return np.full(len(X), self.total / max(self.count, 1), dtype=np.float32)

    def _get_state(self):
        return {"total": self.total, "count": self.count}

    def _set_state(self, state):
        self.total, self.count = state["total"], state["count"]


def id_batch(start: int, n: int, labels: np.ndarray | None = None):
    """Samples ``start .. start+n-1`` with their id as feature 0."""
    X = np.zeros((n, 2), dtype=np.float32)
    X[:, 0] = np.arange(start, start + n)
    y = np.zeros(n, dtype=np.int64) if labels is None else labels
    return X, y


def sign_stream(n: int, flip_at: int | None, noise: float, seed: int):
    """label = x0 > 0, flipped from ``flip_at`` on, with ``noise`` label noise."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    if flip_at is not None:
        y[flip_at:] = 1 - y[flip_at:]
    flip = rng.random(n) < noise
    y[flip] = 1 - y[flip]
    return X, y


def prequential_hits(model, X, y, batch: int) -> np.ndarray:
    hits = np.empty(len(y), dtype=bool)
    for s in range(0, len(y), batch):
        hits[s : s + batch] = model.predict(X[s : s + batch]) == y[s : s + batch]
        model.learn(X[s : s + batch], y[s : s + batch])
    return hits


BAD_BATCHES = [
    (np.zeros((3, 3), dtype=np.float32), np.zeros(3, dtype=np.int64), "features"),
    (np.array([[np.nan, 0.0]] * 3, dtype=np.float32), np.zeros(3, dtype=np.int64), "NaN"),
    (np.array([["a", "b"]] * 3), np.zeros(3, dtype=np.int64), "dtype"),
    (np.zeros((3, 2), dtype=np.float32), np.array([0, 2, 1]), "unknown label"),
    (np.zeros((3, 2), dtype=np.float32), np.zeros(4, dtype=np.int64), "labels for 3"),
    ([[0.0, 0.0]], np.zeros(1, dtype=np.int64), "numpy array"),
]


def assert_refuses_bad_batches(model) -> None:
    before = model.state_dict()
    for X, y, match in BAD_BATCHES:
        with pytest.raises(ValueError, match=match):
            model.learn(X, y)
        assert states_equal(model.state_dict(), before), match


# -- WindowRetrain -----------------------------------------------------------------------------


def test_window_retrain_refits_exactly_at_multiples_across_batches():
    model = WindowRetrain(Recorder(), window=7, every=10, warmup=False)
    sizes = [3, 7, 5, 5, 1, 24, 2, 3, 10]
    seen, refits, last_model = 0, 0, model.model_
    for size in sizes:
        model.learn(*id_batch(seen, size))
        crossed = (seen + size) // 10 > seen // 10
        seen += size
        refits += int(crossed)  # one re-fit per batch, however many multiples it crosses
        assert model.n_refits_ == refits and model.n_seen_ == seen
        assert (model.model_ is not last_model) == crossed
        if crossed:
            # a fresh clone that saw exactly the last `window` samples, in order, once
            assert model.model_.ids == list(range(seen - 7, seen))
        last_model = model.model_
    assert refits == 5  # at 10, 20, 45 (crossing 30 and 40: once), 50, 60


def test_window_retrain_epochs_and_mini_batches():
    model = WindowRetrain(Recorder(), window=10, every=10, epochs=2, fit_batch_size=4)
    model.learn(*id_batch(0, 25))
    assert model.n_refits_ == 1
    assert model.model_.ids == list(range(15, 25)) * 2
    assert model.model_.calls == [4, 4, 2, 4, 4, 2]
    whole = WindowRetrain(Recorder(), window=10, every=10, fit_batch_size=None)
    whole.learn(*id_batch(0, 10))
    assert whole.model_.calls == [10]


def test_window_retrain_uses_all_samples_while_window_is_not_full():
    model = WindowRetrain(Recorder(), window=100, every=5, warmup=False)
    for start in range(0, 12, 4):
        model.learn(*id_batch(start, 4))
    assert model.n_refits_ == 2
    assert model.model_.ids == list(range(12))


def test_window_retrain_serves_the_old_model_between_refits():
    model = WindowRetrain(Recorder(), window=5, every=10, warmup=False)
    X, y = id_batch(0, 10, np.ones(10, dtype=np.int64))
    model.learn(X, y)
    served, state = model.model_, model.model_.state_dict()
    probe = np.zeros((3, 2), dtype=np.float32)
    pred = model.predict(probe)
    assert pred.tolist() == [1, 1, 1]
    for start in range(10, 19, 3):  # samples 10..18 with label 0: no multiple of 10 crossed
        model.learn(*id_batch(start, 3))
        assert model.model_ is served
        assert states_equal(served.state_dict(), state)  # no incremental update in between
        assert model.predict(probe).tolist() == pred.tolist()
    model.learn(*id_batch(19, 1))  # sample 20: re-fit on samples 15..19, all label 0
    assert model.model_ is not served and model.predict(probe).tolist() == [0, 0, 0]


def test_window_retrain_warmup_learns_incrementally_until_first_refit():
    warm = WindowRetrain(Recorder(), window=4, every=10)
    cold = WindowRetrain(Recorder(), window=4, every=10, warmup=False)
    for model in (warm, cold):
        model.learn(*id_batch(0, 6, np.ones(6, dtype=np.int64)))
    assert warm.model_.ids == list(range(6)) and warm.predict(id_batch(0, 1)[0]).tolist() == [1]
    assert cold.model_.ids == [] and cold.predict(id_batch(0, 1)[0]).tolist() == [0]
    warm.learn(*id_batch(6, 6))
    assert warm.model_.ids == list(range(8, 12))  # after the first re-fit: the window only
    warm.learn(*id_batch(12, 3))
    assert warm.model_.ids == list(range(8, 12))


def test_window_retrain_batch_larger_than_window():
    model = WindowRetrain(Recorder(), window=8, every=3)
    model.learn(*id_batch(0, 50))
    assert model.n_refits_ == 1 and model.model_.ids == list(range(42, 50))
    assert len(model.buffer_) == 8


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"window": 0}, "window"),
        ({"every": -1}, "every"),
        ({"epochs": 1.5}, "epochs"),
        ({"fit_batch_size": 0}, "fit_batch_size"),
        ({"warmup": "yes"}, "warmup"),
    ],
)
def test_window_retrain_parameters_are_checked(params, match):
    with pytest.raises(ValueError, match=rf"^WindowRetrain\.{match}: "):
        WindowRetrain(Recorder(), **params)


# -- DriftReset --------------------------------------------------------------------------------


def test_drift_reset_alarms_after_a_sudden_change_and_recovers():
    X, y = sign_stream(6000, flip_at=3000, noise=0.05, seed=1)
    model = DriftReset(SignTable(), detector="adwin", window=200)
    hits = prequential_hits(model, X, y, batch=50)
    assert len(model.alarms) >= 1
    assert 3000 < model.alarms[0] <= 4000
    assert all(a > 3000 for a in model.alarms)  # no false alarm on the first concept
    assert hits[3500:].mean() > 0.9  # recovered
    plain = SignTable()
    assert prequential_hits(plain, X, y, batch=50)[3500:].mean() < 0.5  # would not have


def test_drift_reset_stationary_stream_no_alarm():
    X, y = sign_stream(6000, flip_at=None, noise=0.1, seed=2)
    model = DriftReset(SignTable(), detector="adwin")
    hits = prequential_hits(model, X, y, batch=64)
    assert model.alarms == []
    assert hits[500:].mean() > 0.85


def test_drift_reset_retrains_on_the_window_up_to_the_alarm():
    n, change = 1000, 400
    labels = (np.arange(n) >= change).astype(np.int64)
    model = DriftReset(Recorder(always_zero=True), detector="adwin", window=50)
    for start in range(0, n, 100):
        model.learn(*id_batch(start, 100, labels[start : start + 100]))
    assert len(model.alarms) == 1  # errors are all 1 after the change: one alarm, then flat
    p = model.alarms[0]
    assert change < p < change + 200
    # the new model: window ending at the alarming sample, then the rest of the stream
    assert model.model_.ids == list(range(p - 49, p + 1)) + list(range(p + 1, n))
    assert model.model_.calls[0] <= 256 and model.n_seen_ == n


def test_drift_reset_first_batch_only_learns():
    model = DriftReset(Recorder(always_zero=True), detector="adwin")
    model.learn(*id_batch(0, 200, np.ones(200, dtype=np.int64)))
    assert model.alarms == [] and model.detector_.n_detections == 0
    assert model.model_.ids == list(range(200))


@pytest.mark.parametrize(
    "detector",
    [
        "page_hinkley",
        {"kind": "page_hinkley", "threshold": 20.0},
        drift.PageHinkley(threshold=20.0),
        "ddm",
        {"kind": "hddm_a"},
        drift.binary.EDDM(),
    ],
    ids=["name", "dict", "instance", "ddm", "hddm_a", "eddm"],
)
def test_drift_reset_detector_as_name_dict_or_instance(detector):
    X, y = sign_stream(4000, flip_at=2000, noise=0.05, seed=3)
    model = DriftReset(SignTable(), detector=detector, window=200)
    prequential_hits(model, X, y, batch=100)
    # DDM and EDDM also raise early false alarms while the model is still learning
    assert any(2000 < a <= 3000 for a in model.alarms), model.alarms


def test_drift_reset_instance_is_cloned_not_shared():
    shared = drift.ADWIN(delta=0.01)
    a = DriftReset(Recorder(), detector=shared)
    b = a.clone()
    assert a.detector_ is not shared and b.detector_ is not a.detector_
    assert a.detector_.delta == 0.01 and b.detector_.delta == 0.01
    X, y = sign_stream(300, None, 0.0, 0)
    a.learn(X, y)
    a.learn(X, y)
    assert shared.width == 0 and b.detector_.width == 0


def test_drift_reset_detector_params_and_seed():
    model = DriftReset(Recorder(), detector="kswin", detector_params={"alpha": 0.01}, seed=3)
    assert (model.detector_.alpha, model.detector_.seed) == (0.01, 3)


def test_drift_reset_unknown_detector_lists_known_names():
    with pytest.raises(ValueError, match="unknown detector 'bogus'; known: adwin, ddm"):
        DriftReset(Recorder(), detector="bogus")
    with pytest.raises(ValueError, match="detector_params"):
        DriftReset(Recorder(), detector_params=[1])


def test_drift_reset_regression_uses_absolute_errors():
    model = DriftReset(MeanRegressor(), detector="page_hinkley", window=100)
    X = np.zeros((50, 1), dtype=np.float32)
    for level in [0.0] * 10 + [10.0] * 4:
        model.learn(X, np.full(50, level, dtype=np.float32))
    assert model.alarms and 500 <= model.alarms[0] < 700
    assert model.predict(X[:1])[0] > 5.0
    assert not is_classifier(model)
    with pytest.raises(AttributeError, match="not a classifier"):
        model.predict_proba(X)


def test_drift_reset_binary_detector_needs_a_classifier():
    with pytest.raises(ValueError, match="classifier"):
        DriftReset(MeanRegressor(), detector="ddm")


def test_drift_reset_state_round_trip_continues_identically():
    X, y = sign_stream(5000, flip_at=2500, noise=0.05, seed=4)
    model = DriftReset(SignTable(), detector="adwin", window=300)
    prequential_hits(model, X[:2600], y[:2600], batch=64)
    state = pickle.loads(pickle.dumps(model.state_dict()))
    copy = model.clone()
    copy.load_state_dict(state)
    assert states_equal(copy.state_dict(), model.state_dict())
    assert np.array_equal(copy.predict(X[2600:2700]), model.predict(X[2600:2700]))
    hits_a = prequential_hits(model, X[2600:], y[2600:], batch=64)
    hits_b = prequential_hits(copy, X[2600:], y[2600:], batch=64)
    assert np.array_equal(hits_a, hits_b)
    assert model.alarms == copy.alarms and len(model.alarms) >= 1
    assert states_equal(copy.state_dict(), model.state_dict())


def test_drift_reset_refuses_a_state_with_another_detector():
    state = DriftReset(Recorder(), detector="adwin").state_dict()
    other = DriftReset(Recorder(), detector="ddm")
    before = other.state_dict()
    with pytest.raises(ValueError, match="ADWIN"):
        other.load_state_dict(state)
    assert states_equal(other.state_dict(), before)


# -- Static ------------------------------------------------------------------------------------


def test_static_learns_the_first_n_train_samples_then_freezes():
    model = Static(Recorder(), n_train=10)
    model.learn(*id_batch(0, 4))
    model.learn(*id_batch(4, 4))
    assert not model.frozen
    model.learn(*id_batch(8, 5))  # crosses n_train: cut after sample 9
    assert model.frozen and model.model_.ids == list(range(10))
    frozen = model.state_dict()
    model.learn(*id_batch(13, 20, np.ones(20, dtype=np.int64)))
    assert states_equal(model.state_dict(), frozen)
    assert model.predict(id_batch(0, 2)[0]).tolist() == [0, 0]
    assert_refuses_bad_batches(model)  # still validates when frozen


def test_static_parameters_are_checked():
    with pytest.raises(ValueError, match=r"^Static\.n_train: must be >= 1, got 0"):
        Static(Recorder(), n_train=0)


# -- shared behaviour --------------------------------------------------------------------------

WRAPPERS = {
    "window_retrain": lambda: WindowRetrain(Recorder(), window=30, every=20),
    "drift_reset": lambda: DriftReset(SignTable(), detector="adwin", window=30),
    "static": lambda: Static(Recorder(), n_train=25),
    "nested": lambda: WindowRetrain(DriftReset(SignTable(), window=40), window=50, every=35),
}


def feed(model, n: int, seed: int = 0, batch: int = 7) -> None:
    X, y = sign_stream(n, None, 0.1, seed)
    X[:, 1] = np.arange(n)
    for s in range(0, n, batch):
        model.learn(X[s : s + batch], y[s : s + batch])


@pytest.mark.parametrize("name", sorted(WRAPPERS))
def test_wrappers_are_learners_with_registry_names(name):
    model = WRAPPERS[name]()
    assert isinstance(model, Learner) and is_classifier(model)
    assert model.task == "binary" and model.n_classes == 2
    assert model.alarms == []
    kind = "window_retrain" if name == "nested" else name
    assert kind in registry
    built = registry.create(kind, base={"kind": "window_retrain", "base": model.base})
    assert isinstance(built.base, WindowRetrain)


@pytest.mark.parametrize("name", sorted(WRAPPERS))
def test_state_round_trip_mid_window(name):
    model = WRAPPERS[name]()
    feed(model, 73)  # mid-window, mid-period
    state = pickle.loads(pickle.dumps(model.state_dict()))
    restored = WRAPPERS[name]()
    restored.load_state_dict(state)
    X, y = sign_stream(40, None, 0.1, 9)
    assert np.array_equal(restored.predict(X), model.predict(X))
    assert np.array_equal(restored.predict_proba(X), model.predict_proba(X))
    for m in (model, restored):
        m.learn(X, y)
    assert states_equal(restored.state_dict(), model.state_dict())
    assert np.array_equal(restored.predict(X), model.predict(X))


@pytest.mark.parametrize("name", sorted(WRAPPERS))
def test_clone_is_unfitted_with_same_parameters(name):
    model = WRAPPERS[name]()
    fresh_state = model.state_dict()
    feed(model, 60)
    twin = model.clone()
    assert type(twin) is type(model) and repr(twin) == repr(model)
    assert twin.base is not model.base and twin.model_ is not model.model_
    assert states_equal(twin.state_dict(), fresh_state)
    assert twin.n_features_in_ is None and twin.alarms == []


@pytest.mark.parametrize("name", sorted(WRAPPERS))
def test_bad_input_leaves_state_unchanged(name):
    model = WRAPPERS[name]()
    feed(model, 50)
    assert_refuses_bad_batches(model)
    with pytest.raises(ValueError, match="features"):
        model.predict(np.zeros((2, 5), dtype=np.float32))


def test_bad_input_before_any_learning_sets_nothing():
    model = WindowRetrain(Recorder(), window=5, every=5)
    before = model.state_dict()
    with pytest.raises(ValueError):
        model.learn(np.zeros((2, 2)), np.array([0, 3]))
    assert states_equal(model.state_dict(), before) and model.n_features_in_ is None


def test_predict_proba_delegates_and_is_absent_for_regressors():
    model = WindowRetrain(MajorityClass(n_classes=3), window=5, every=5)
    model.learn(np.zeros((5, 1), dtype=np.float32), np.array([2, 2, 1, 0, 2]))
    assert model.predict_proba(np.zeros((1, 1), dtype=np.float32)).tolist() == [[0.2, 0.2, 0.6]]
    regressor = Static(MeanRegressor(), n_train=5)
    assert model.task == "multiclass" and regressor.task == "regression"
    assert not is_classifier(regressor) and not hasattr(regressor, "predict_proba")
    regressor.learn(np.zeros((2, 1), dtype=np.float32), np.array([1.0, 3.0]))
    assert regressor.predict(np.zeros((1, 1), dtype=np.float32)).tolist() == [2.0]


def test_alarms_propagate_through_nested_wrappers():
    X, y = sign_stream(5000, flip_at=2000, noise=0.05, seed=5)
    inner = DriftReset(SignTable(), detector="adwin", window=200)
    static = Static(inner, n_train=10_000)
    prequential_hits(static, X, y, batch=50)
    assert static.alarms and static.alarms == static.model_.alarms
    assert 2000 < static.alarms[0] <= 3000
    nested = WindowRetrain(DriftReset(SignTable()), window=100, every=1000)
    prequential_hits(nested, X, y, batch=50)
    assert isinstance(nested.alarms, list)


def test_base_given_by_name_or_dict():
    model = WindowRetrain({"kind": "static", "base": Recorder(), "n_train": 3})
    assert isinstance(model.base, Static) and model.base.n_train == 3
    with pytest.raises(ValueError, match="unknown learner"):
        Static("no_such_learner")


def test_ring_buffer_wraps_in_order():
    buf = SampleWindow(5)
    for start, n in [(0, 3), (3, 4), (7, 1), (8, 2)]:
        X, y = id_batch(start, n, np.arange(start, start + n))
        buf.extend(X, y)
    X, y = buf.get()
    assert X[:, 0].tolist() == [5, 6, 7, 8, 9] and y.tolist() == [5, 6, 7, 8, 9]
    restored = SampleWindow.from_state(5, buf.state())
    restored.extend(*id_batch(10, 1, np.array([10])))
    assert restored.get()[1].tolist() == [6, 7, 8, 9, 10]
    with pytest.raises(ValueError, match="window"):
        SampleWindow.from_state(3, buf.state())


def test_ring_buffer_matches_a_reference_on_random_batches():
    rng = np.random.default_rng(0)
    for capacity in (1, 3, 16):
        buf, start = SampleWindow(capacity), 0
        for n in rng.integers(1, 2 * capacity + 3, size=30).tolist():
            buf.extend(*id_batch(start, n, np.arange(start, start + n)))
            start += n
            expected = list(range(max(0, start - capacity), start))
            X, y = buf.get()
            assert X[:, 0].tolist() == expected and y.tolist() == expected
