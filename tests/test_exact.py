"""Exact test-then-train inside a batch, compiled detectors, and label delay.

Per-sample path at any batch size == loops of batches of one, bit for bit; equal to River's
numbers for River's model (``StandardScaler() | LogisticRegression()``), with and without
label delay (``progressive_val_score(moment=..., delay=...)``); compiled ADWIN, DDM and
Page-Hinkley raise River's alarms on the same inputs."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from river import drift, evaluate, linear_model, metrics, preprocessing

from adaptloop.config.run import run_experiment
from adaptloop.config.schema import ExperimentError, parse_experiment
from adaptloop.evaluation import prequential
from adaptloop.evaluation.delay import LabelSchedule
from adaptloop.learners.base import Sequential
from adaptloop.learners.detectors import compile_detector, first_alarm, make_detector
from adaptloop.learners.models.linear import LinearRegression, LogisticRegression
from adaptloop.learners.models.majority import MajorityClass
from adaptloop.learners.wrappers.drift_reset import DriftReset
from adaptloop.learners.wrappers.static import Static
from adaptloop.learners.wrappers.window import WindowRetrain
from adaptloop.streams import ArrayStream, registry


@pytest.fixture(scope="module")
def sea():
    stream = registry.create(
        "sea", n=3000, drifts=[{"at": 1000, "width": 1}, {"at": 2000, "width": 1}], seed=1
    )
    batches = list(stream.iter_batches(4096))
    X = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    y[1000:2000] = 1 - y[1000:2000]  # a concept the detectors cannot miss
    return X, y, list(stream.info.feature_names)


def one_at_a_time(model, X, y, proba):
    out = []
    for i in range(len(X)):
        x = X[i : i + 1]
        out.append(model.predict_proba(x)[0] if proba else model.predict(x)[0])
        model.learn(x, y[i : i + 1])
    return np.array(out)


def in_batches(model, X, y, proba, batch=256):
    out = []
    for start in range(0, len(X), batch):
        Xb, yb = X[start : start + batch], y[start : start + batch]
        out.append(model.test_then_train(Xb, Xb, yb, np.arange(1, len(Xb) + 1), proba))
    return np.concatenate(out)


LEARNERS = {
    "logistic": lambda: LogisticRegression(),
    "softmax_l2": lambda: LogisticRegression(n_classes=3, lr=0.5, l2=0.01),
    "drift_reset_adwin": lambda: DriftReset(LogisticRegression(), "adwin", window=300),
    "drift_reset_ddm": lambda: DriftReset(LogisticRegression(), "ddm", window=300),
    "drift_reset_ph": lambda: DriftReset(
        LogisticRegression(), {"kind": "page_hinkley", "threshold": 5.0}, window=300
    ),
    "window": lambda: WindowRetrain(LogisticRegression(), window=500, every=700),
    "window_strict": lambda: WindowRetrain(
        LogisticRegression(), window=500, every=700, warmup=False
    ),
    "static": lambda: Static(LogisticRegression(), n_train=1500),
    "static_early": lambda: Static(LogisticRegression(), n_train=100),
    "window_of_reset": lambda: WindowRetrain(
        DriftReset(LogisticRegression(), "adwin", window=200), window=500, every=1500
    ),
}


@pytest.mark.parametrize("proba", [False, True], ids=["predict", "proba"])
@pytest.mark.parametrize("name", list(LEARNERS))
def test_per_sample_path_equals_batches_of_one(sea, name, proba):
    X, y, _ = sea
    if name == "softmax_l2":
        y = (X[:, 0] > 5).astype(np.int64) + (X[:, 1] > 5).astype(np.int64)
    a, b = LEARNERS[name](), LEARNERS[name]()
    assert isinstance(b, Sequential)
    expected = one_at_a_time(a, X, y, proba)
    got = in_batches(b, X, y, proba)
    np.testing.assert_array_equal(got, expected)
    assert getattr(a, "alarms", []) == getattr(b, "alarms", [])
    np.testing.assert_array_equal(a.predict_proba(X[:50]), b.predict_proba(X[:50]))


def test_linear_regression_per_sample_path_equals_batches_of_one():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(1500, 3)).astype(np.float32)
    y = (X @ np.array([2.0, -1.0, 0.5]) + 0.1 * rng.normal(size=1500)).astype(np.float32)
    y[750:] *= -1  # a drift: absolute errors for the detector
    for make in (
        LinearRegression,
        lambda: DriftReset(LinearRegression(), "page_hinkley", window=200),
    ):
        a, b = make(), make()
        np.testing.assert_array_equal(in_batches(b, X, y, False), one_at_a_time(a, X, y, False))


def test_learners_that_learn_per_batch_are_not_sequential():
    assert not isinstance(LogisticRegression(optimizer="adam"), Sequential)
    assert not isinstance(DriftReset(LogisticRegression(), "kswin"), Sequential)
    assert not isinstance(DriftReset(MajorityClass(), "adwin"), Sequential)
    assert not isinstance(WindowRetrain(MajorityClass()), Sequential)


def test_bad_schedule_is_refused_and_changes_nothing():
    model = LogisticRegression()
    X = np.zeros((3, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="learn_at must be non-decreasing"):
        model.test_then_train(X, X, np.array([0, 1, 0]), np.array([3, 1, 2]))
    with pytest.raises(ValueError, match="unknown label"):
        model.test_then_train(X, X, np.array([0, 5, 0]), np.array([1, 2, 3]))
    assert model.state_dict()["learned"]["theta"] is None


def fitted(make, X, y):
    model = make()
    model.test_then_train(X, X, y, np.arange(1, len(X) + 1))
    return model


BAD_BATCHES = {  # (what is wrong, message): a fitted model's compiled loop checks the values
    "nan_feature": ("X", np.nan, "NaN or infinite"),
    "inf_learned_feature": ("X_learn", np.inf, "NaN or infinite"),
    "unknown_label": ("y", 2, "unknown label"),
    "negative_label": ("y", -1, "unknown label"),
    "late_learn_at": ("learn_at", 9, "learn_at must be non-decreasing"),
    "decreasing_learn_at": ("learn_at", 0, "learn_at must be non-decreasing"),
}


@pytest.mark.parametrize("bad", list(BAD_BATCHES))
@pytest.mark.parametrize(
    "make",
    [LogisticRegression, lambda: DriftReset(LogisticRegression(), "adwin", window=50)],
    ids=["logistic", "drift_reset"],
)
def test_in_shape_batch_with_a_bad_value_is_refused_and_changes_nothing(sea, make, bad):
    X, y, _ = sea
    model = fitted(make, X[:300], y[:300])
    before = pickle.dumps(model.state_dict())
    Xb, Xl, yl, at = X[300:308].copy(), X[308:316].copy(), y[308:316].copy(), np.arange(1, 9)
    where, value, message = BAD_BATCHES[bad]
    {"X": Xb, "X_learn": Xl, "y": yl, "learn_at": at}[where][3] = value
    with pytest.raises(ValueError, match=message):
        model.test_then_train(Xb, Xl, yl, at)
    assert pickle.dumps(model.state_dict()) == before


def test_regression_target_that_is_not_finite_is_refused():
    X = np.ones((4, 2), dtype=np.float32)
    model = fitted(LinearRegression, X, np.ones(4, dtype=np.float32))
    y = np.array([1.0, np.nan, 1.0, 1.0], dtype=np.float32)
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.test_then_train(X, X, y, np.arange(1, 5))


@pytest.mark.parametrize(
    "make",
    [LogisticRegression, lambda: DriftReset(LogisticRegression(), "adwin", window=300)],
    ids=["logistic", "drift_reset"],
)
def test_arrays_to_convert_give_the_numbers_of_arrays_in_shape(sea, make):
    """float64 features, int32 labels and a strided schedule take check_sequence's
    conversions; the same values in shape go straight to the compiled loop."""
    X, y, _ = sea
    a, b = make(), make()
    got, expected = [], []
    for start in range(0, len(X), 250):
        Xb, yb = X[start : start + 250], y[start : start + 250]
        at = np.arange(1, len(Xb) + 1)
        expected.append(a.test_then_train(Xb, Xb, yb, at))
        strided = np.repeat(at, 2)[::2]
        got.append(b.test_then_train(Xb.astype(np.float64), Xb, yb.astype(np.int32), strided))
    np.testing.assert_array_equal(np.concatenate(got), np.concatenate(expected))
    assert pickle.dumps(a.state_dict()) == pickle.dumps(b.state_dict())


def river_accuracy(X, y, names, **delay):
    data = [
        (dict(zip(names, map(float, row), strict=True)), int(t))
        for row, t in zip(X, y, strict=True)
    ]
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    metric = metrics.Accuracy()
    evaluate.progressive_val_score(data, model, metric, **delay)
    return metric.get()


def ours(X, y, names, batch_size, learner=None, **delay):
    stream = ArrayStream(X, y, feature_names=names)
    learners = {"lr": learner or LogisticRegression()}
    result = prequential(stream, learners, batch_size=batch_size, metrics=["accuracy"], **delay)
    return result.summary["lr"]


@pytest.mark.parametrize("batch_size", [1, 256, 5000])
def test_prequential_equals_river_per_sample_at_any_batch_size(sea, batch_size):
    X, y, names = sea
    summary = ours(X, y, names, batch_size)
    assert summary["accuracy"] == river_accuracy(X, y, names)
    assert summary["semantics"] == "exact" and summary["label_delay"] == 0.0


@pytest.fixture(scope="module")
def late(sea):
    X, y, names = sea
    rng = np.random.default_rng(0)
    lag = rng.integers(0, 800, size=len(X)).astype(np.float32)
    time = np.cumsum(rng.exponential(1.0, size=len(X))).astype(np.float32)
    return np.column_stack([X, lag, time]).astype(np.float32), y, [*names, "lag", "time"]


@pytest.mark.parametrize(
    ("ours_delay", "river_delay"),
    [
        ({"delay": 500}, {"delay": 500}),
        ({"delay": "lag"}, {"delay": "lag"}),
        ({"delay": 300.0, "timestamp": "time"}, {"delay": 300.0, "moment": "time"}),
        ({"delay": "lag", "timestamp": "time"}, {"delay": "lag", "moment": "time"}),
    ],
    ids=["samples", "column", "time_span", "column_in_time"],
)
@pytest.mark.parametrize("batch_size", [97, 1024])
def test_label_delay_equals_river_progressive_val_score(late, ours_delay, river_delay, batch_size):
    X, y, names = late
    summary = ours(X, y, names, batch_size, **ours_delay)
    assert summary["accuracy"] == river_accuracy(X, y, names, **river_delay)
    assert summary["label_delay"] > 100


def test_delay_is_independent_of_batch_size_and_batch_learners_say_so(sea):
    X, y, names = sea
    exact = [ours(X, y, names, b, delay=1000)["accuracy"] for b in (1, 64, 2048)]
    assert exact[0] == exact[1] == exact[2]
    batch = ours(X, y, names, 250, learner=LogisticRegression(optimizer="adam"))
    assert batch["semantics"] == "batch" and batch["label_delay"] == 124.5  # (250 - 1) / 2
    summary = ours(X, y, names, 256, delay=1000)
    assert summary["label_delay"] == 999.0  # River's delay 1000: seen 1000 samples later


def test_label_schedule_releases_in_river_order():
    info = ArrayStream(np.zeros((1, 1)), np.zeros(1), feature_names=["lag"]).info
    schedule = LabelSchedule(delay="lag", info=info)
    lags = np.array([[3.0], [0.0], [1.0], [0.0]], dtype=np.float32)
    learned = schedule.arrive(lags, np.arange(4))
    # revealed at times 3, 1, 3, 3: label 1 before sample 2 is predicted, labels 0 and 2
    # before sample 3, label 3 after it (never before its own prediction)
    assert learned.y.tolist() == [1, 0, 2, 3]
    assert learned.learn_at.tolist() == [2, 3, 3, 4]
    assert schedule.flush() is None


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("delay = -1", "stream.delay: must be >= 0"),
        ('delay = "nope"', "stream.delay: no feature named 'nope'"),
        ("delay = 2.5", "stream.delay: without a timestamp it counts samples"),
        ('timestamp = "x9"', "stream.timestamp: no feature named 'x9'"),
    ],
)
def test_experiment_file_refuses_bad_delay_by_key_path(setting, message):
    text = f'[stream]\nkind = "sea"\nn = 500\n{setting}\n[learners.lr]\nkind = "logistic"\n'
    with pytest.raises(ExperimentError, match=message):
        run_experiment(parse_experiment(text))


def test_experiment_file_sets_delay_and_reports_semantics():
    text = (
        '[stream]\nkind = "sea"\nn = 3000\nbatch_size = 512\ndelay = 200\n'
        '[learners.lr]\nkind = "logistic"\n[learners.mlp_like]\nkind = "logistic"\n'
        'optimizer = "adam"\n'
    )
    result = run_experiment(parse_experiment(text))
    summary = result.summary_json()
    assert summary["label_delay"] == {"delay": 200, "timestamp": None}
    assert summary["learners"]["lr"]["semantics"] == "exact"
    assert summary["learners"]["mlp_like"]["semantics"] == "batch"
    assert "label_delay" in result.records.column_names
    assert "semantics" in [c.name for c in result.tables()[0].columns]


# -- compiled detectors against river.drift --------------------------------------------------------
def error_sequences():
    for seed in range(4):
        rng = np.random.default_rng(seed)
        rates = np.repeat(rng.uniform(0.05, 0.6, size=6), 1500)
        yield (rng.random(rates.size) < rates).astype(float)


RIVER_DETECTORS = {
    "adwin": drift.ADWIN,
    "adwin_fast_clock": lambda: drift.ADWIN(delta=0.1, clock=4, max_buckets=3, grace_period=20),
    "ddm": drift.binary.DDM,
    "page_hinkley": drift.PageHinkley,
    "page_hinkley_up": lambda: drift.PageHinkley(threshold=10.0, mode="up"),
}


@pytest.mark.parametrize("name", list(RIVER_DETECTORS))
def test_compiled_detectors_raise_rivers_alarms(name):
    for errors in error_sequences():
        river_detector = RIVER_DETECTORS[name]()
        compiled = compile_detector(RIVER_DETECTORS[name]())
        river_alarms, our_alarms = [], []
        for i, e in enumerate(errors):
            river_detector.update(bool(e) if name == "ddm" else e)
            compiled.update(e)
            if river_detector.drift_detected:
                river_alarms.append(i)
            if compiled.drift_detected:
                our_alarms.append(i)
        assert our_alarms == river_alarms
        if name.startswith("adwin"):
            assert compiled.width == river_detector.width


def test_first_alarm_is_the_same_compiled_or_not():
    errors = [0.0] * 300 + [1.0] * 100
    assert first_alarm(make_detector("adwin"), errors) == first_alarm(
        compile_detector(make_detector("adwin")), errors
    )


def test_river_models_run_rivers_own_loop_at_any_batch_size(sea):
    from river import tree

    from adaptloop.learners.models.river_adapter import RiverLearner

    X, y, names = sea
    a = RiverLearner(tree.HoeffdingAdaptiveTreeClassifier(seed=1))
    b = RiverLearner(tree.HoeffdingAdaptiveTreeClassifier(seed=1))
    assert isinstance(b, Sequential)
    assert not isinstance(
        RiverLearner(linear_model.LogisticRegression(), use_many=True), Sequential
    )
    np.testing.assert_array_equal(
        in_batches(b, X[:1500], y[:1500], True), one_at_a_time(a, X[:1500], y[:1500], True)
    )


def test_river_numbers_with_a_feature_that_wakes_up_late():
    """Elec2's Victoria columns are constant for months, then move: their first standardised
    values are huge, and River takes the full SGD step on them (no cap)."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(3000, 3)).astype(np.float32)
    X[:2000, 2] = 0.25
    X[2000:, 2] += rng.normal(scale=1e-3, size=1000).astype(np.float32)
    y = (X[:, 0] + 100 * (X[:, 2] - 0.25) > 0).astype(np.int64)
    names = ["a", "b", "c"]
    assert ours(X, y, names, 256)["accuracy"] == river_accuracy(X, y, names)
