"""The click stream simulator: encoding, base rate, determinism, sudden and gradual drift."""

from __future__ import annotations

import numpy as np
import pytest

from adaptloop.evaluation.metrics import roc_auc
from adaptloop.streams import registry
from adaptloop.streams.clicks import ClickStream, clicks


def collect(stream, batch_size=1000):
    batches = list(stream.iter_batches(batch_size))
    return np.vstack([X for X, _ in batches]), np.concatenate([y for _, y in batches])


def test_fields_are_integer_codes_in_range_and_categories_follow_items():
    stream = clicks(n=5000, n_users=100, n_items=50, n_categories=7, n_contexts=3, seed=1)
    X, y = collect(stream)
    assert X.dtype == np.float32 and y.dtype == np.int64 and X.shape == (5000, 4)
    assert np.array_equal(X, np.round(X))
    for column, size in enumerate((100, 50, 7, 3)):
        assert X[:, column].min() >= 0 and X[:, column].max() < size
    items = X[:, 1].astype(int)
    assert np.array_equal(X[:, 2].astype(int), stream.item_category[items])
    heavy = np.bincount(X[:, 0].astype(int), minlength=100)
    assert heavy.max() > 5 * np.median(heavy)  # Zipf-like popularity: a few heavy users


@pytest.mark.parametrize("rate", [0.02, 0.05])
def test_click_rate_is_the_base_rate(rate):
    _, y = collect(clicks(n=40_000, base_rate=rate, seed=2))
    assert abs(y.mean() - rate) < 0.25 * rate


def test_same_seed_same_data_for_any_batch_size():
    a = collect(clicks(n=9000, drifts=[{"at": 4000, "width": 1}], seed=3), 128)
    b = collect(clicks(n=9000, drifts=[{"at": 4000, "width": 1}], seed=3), 5000)
    c = collect(clicks(n=9000, drifts=[{"at": 4000, "width": 1}], seed=4), 5000)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_sudden_drift_changes_the_segment_only():
    stream = clicks(n=10_000, drifts=[{"at": 5000, "width": 1}], segment=0.3, seed=5)
    X, _ = collect(stream)
    before = stream.click_probability(X, np.full(len(X), 4999))
    after = stream.click_probability(X, np.full(len(X), 5000))
    users = X[:, 0].astype(int)
    changed = before != after
    segment = np.unique(users[changed])
    in_segment = np.isin(users, segment)
    assert np.array_equal(changed, in_segment)  # a user's impressions all change, or none do
    assert 0.2 < len(segment) / len(np.unique(users)) < 0.4
    assert np.abs(before[in_segment] - after[in_segment]).mean() > 0.01


def test_gradual_drift_rotates_preferences_over_its_width():
    stream = clicks(n=30_000, drifts=[{"at": 15_000, "width": 6000}], seed=6)
    X, y = collect(stream)
    old = stream.click_probability(X, np.zeros(len(X)))
    mid = stream.click_probability(X, np.full(len(X), 15_000))
    assert np.abs(old - mid).mean() > 0.005  # halfway: partly changed
    late = slice(20_000, 30_000)
    true_auc = roc_auc(y[late], stream.click_probability(X[late], np.arange(20_000, 30_000)))
    assert roc_auc(y[late], old[late]) < true_auc - 0.1  # the old preferences rank worse
    assert stream.info.drifts[0].width == 6000


def test_registered_and_bad_parameters_refused():
    stream = registry.create("clicks", n=100, seed=0)
    assert isinstance(stream, ClickStream) and stream.info.n_samples == 100
    for bad, match in [
        ({"dim": 3}, "dim must be even"),
        ({"base_rate": 0.0}, "base_rate"),
        ({"segment": 2.0}, "segment"),
        ({"n_users": 0}, r"ClickStream\.n_users: must be >= 1, got 0"),
        ({"drifts": [{"at": 500}]}, "beyond"),
        ({"rotation": -1.0}, "rotation"),
    ]:
        with pytest.raises(ValueError, match=match):
            clicks(n=100, **bad)
    with pytest.raises(ValueError, match="shape"):
        stream.click_probability(np.zeros((2, 3)), np.zeros(2))
