import numpy as np
import pytest

from adaptloop.evaluation.metrics import BinnedAUC, MetricTracker, ValueWindow, roc_auc
from adaptloop.results import METRICS, Metric, check_metrics, default_metrics, get_metric


def brute_force_auc(y, score):
    pos, neg = score[y == 1], score[y == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


def test_roc_auc_matches_pairwise_definition_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    score = np.round(rng.random(300) + 0.3 * y, 1)  # many ties
    assert roc_auc(y, score) == pytest.approx(brute_force_auc(y, score))


def test_roc_auc_is_nan_with_one_class():
    assert np.isnan(roc_auc(np.ones(5, dtype=np.int64), np.linspace(0, 1, 5)))


def test_binned_auc_is_close_to_exact():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 5000)
    score = np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0, 1)
    binned = BinnedAUC()
    for chunk in range(0, 5000, 700):
        binned.update(y[chunk : chunk + 700], score[chunk : chunk + 700])
    assert binned.value() == pytest.approx(brute_force_auc(y, score), abs=1e-3)


@pytest.mark.parametrize("chunks", [[1] * 12, [5, 7], [12], [3, 20]])
def test_value_window_keeps_last_values_in_order(chunks):
    ring = ValueWindow(5)
    written = []
    start = 0
    for size in chunks:
        values = np.arange(start, start + size, dtype=np.float64)
        ring.extend(values)
        written.extend(values)
        start += size
    assert ring.values().tolist() == written[-5:]
    assert ring.total() == sum(written[-5:])
    assert len(ring) == min(5, len(written))


def test_tracker_cumulative_window_and_batch_values():
    tracker = MetricTracker(["accuracy", "log_loss", "roc_auc"], "binary", 2, window=4)
    y1 = np.array([1, 1, 0, 0])
    p1 = np.array([[0.2, 0.8], [0.6, 0.4], [0.7, 0.3], [0.9, 0.1]])
    tracker.update(y1, p1.argmax(1), p1)
    first = tracker.report()
    assert first["accuracy"] == 0.75 and first["accuracy_batch"] == 0.75
    expected_loss = -np.mean(np.log([0.8, 0.4, 0.7, 0.9]))
    assert first["log_loss"] == pytest.approx(expected_loss)
    assert first["roc_auc"] == pytest.approx(brute_force_auc(y1, p1[:, 1]), abs=1e-3)
    y2 = np.array([1, 1])
    p2 = np.array([[0.1, 0.9], [0.3, 0.7]])
    tracker.update(y2, p2.argmax(1), p2)
    second = tracker.report()
    assert second["accuracy"] == pytest.approx(5 / 6)
    assert second["accuracy_window"] == 1.0  # last 4 samples: y1[2:] and y2, all right
    assert second["accuracy_batch"] == 1.0
    window_labels = np.array([0, 0, 1, 1])
    window_scores = np.array([0.3, 0.1, 0.9, 0.7])
    assert second["roc_auc_window"] == pytest.approx(brute_force_auc(window_labels, window_scores))


def test_regression_metrics():
    tracker = MetricTracker(["mae", "rmse"], "regression", None, window=10)
    y = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    tracker.update(y, np.array([1.0, 0.0, 6.0], dtype=np.float32))
    report = tracker.report()
    assert report["mae"] == pytest.approx(5 / 3)
    assert report["rmse"] == pytest.approx(np.sqrt(13 / 3))


def test_metric_names_are_checked_against_the_task():
    assert default_metrics("multiclass") == ["accuracy", "log_loss"]
    assert default_metrics("regression") == ["mae", "rmse", "mape"]
    with pytest.raises(ValueError, match="roc_auc"):
        check_metrics(["roc_auc"], "multiclass")
    with pytest.raises(ValueError, match="nonsense"):
        check_metrics(["nonsense"], "binary")
    with pytest.raises(ValueError, match="window"):
        MetricTracker(["accuracy"], "binary", 2, window=0)


def test_mape_is_in_percent():
    tracker = MetricTracker(["mape"], "regression", None, window=10)
    tracker.update(np.array([2.0, 4.0], dtype=np.float32), np.array([1.0, 5.0], dtype=np.float32))
    assert tracker.report()["mape"] == pytest.approx(37.5)


def test_every_metric_applies_to_a_task_and_says_its_direction():
    for name, metric in METRICS.items():
        assert metric.name == name and metric.tasks
        assert metric.direction in ("higher is better", "lower is better")
        assert name in metric.axis_label
    assert {
        m for task in ("binary", "multiclass", "regression") for m in default_metrics(task)
    } == (set(METRICS))


def test_metrics_needing_probabilities_make_the_tracker_ask_for_them():
    assert [m for m, metric in METRICS.items() if metric.needs_proba] == ["log_loss", "roc_auc"]
    assert MetricTracker(["accuracy", "log_loss"], "binary", 2, window=5).needs_proba
    assert not MetricTracker(["accuracy"], "binary", 2, window=5).needs_proba


def test_a_registered_metric_is_tracked_windowed_and_checked(monkeypatch):
    """A new metric is one Metric object: the tracker, the checks and the tables read it."""
    squared = Metric(
        "max_error_sq",
        False,
        ("regression",),
        "target units²",
        per_sample=lambda y, pred, proba: (pred - y) ** 2,
    )
    monkeypatch.setitem(METRICS, squared.name, squared)
    assert "max_error_sq" in default_metrics("regression")
    tracker = MetricTracker(["mae", "max_error_sq"], "regression", None, window=2)
    tracker.update(np.array([0.0, 0.0, 0.0]), np.array([1.0, 2.0, 3.0]))
    report = tracker.report()
    assert report["max_error_sq"] == pytest.approx(14 / 3)
    assert report["max_error_sq_window"] == pytest.approx(6.5)
    assert get_metric("max_error_sq").better(1.0, 2.0)
    with pytest.raises(ValueError, match="unknown metric 'nope'"):
        get_metric("nope")
