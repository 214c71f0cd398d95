"""The naive forecasts: persistence, seasonal naive and EWMA, through their public calls."""

from __future__ import annotations

import numpy as np
import pytest

from adaptloop.evaluation.prequential import prequential
from adaptloop.learners import EWMA, Persistence, SeasonalNaive, registry
from adaptloop.streams import ArrayStream


def series_rows(series, seq_len):
    X = np.lib.stride_tricks.sliding_window_view(series[:-1], seq_len).astype(np.float32)
    return X, series[seq_len:].astype(np.float32)


def test_registered():
    for name in ("persistence", "seasonal_naive", "ewma"):
        assert name in registry


@pytest.mark.parametrize("batch_size", [1, 5, 24])
def test_seasonal_naive_repeats_the_period_under_test_then_train(batch_size):
    """On a series with period 24 plus a level shift every period, the forecast is the value
    24 steps back once the learner has seen one period (persistence before)."""
    t = np.arange(200)
    series = (np.sin(2 * np.pi * t / 24) + t // 24).astype(np.float32)
    X, y = series_rows(series, 4)
    model = SeasonalNaive(seq_len=4, periods=(24,))
    predictions = []
    for start in range(0, len(X), batch_size):
        predictions.append(model.predict(X[start : start + batch_size]))
        model.learn(X[start : start + batch_size], y[start : start + batch_size])
    out = np.concatenate(predictions)
    rows = np.arange(len(X))
    # row i has its period-old value when it was learned before the batch holding row i
    held = (rows - (rows // batch_size) * batch_size) < 24
    held &= rows >= 24
    np.testing.assert_array_equal(out[held], y[rows[held] - 24])
    np.testing.assert_array_equal(out[:24], X[:24, -1])  # nothing held yet: persistence


def test_seasonal_naive_falls_back_through_its_periods():
    model = SeasonalNaive(seq_len=1, periods=(10, 3))
    values = np.arange(1, 6, dtype=np.float32)  # y_0 .. y_4
    model.learn(values[:, None], values)
    X = np.full((4, 1), -1.0, dtype=np.float32)  # samples 5, 6, 7, 8
    # 10 back is never held; 3 back: y_2, y_3, y_4, then sample 8 needs y_5 (not learned)
    np.testing.assert_array_equal(model.predict(X), [3.0, 4.0, 5.0, -1.0])
    state = model.state_dict()
    twin = model.clone()
    twin.load_state_dict(state)
    np.testing.assert_array_equal(twin.predict(X), model.predict(X))
    assert len(state["learned"]["history"]) == 5


def test_seasonal_naive_keeps_only_its_longest_period():
    model = SeasonalNaive(seq_len=1, periods=(2, 4))
    values = np.arange(10, dtype=np.float32)
    model.learn(values[:, None], values)
    assert model.state_dict()["learned"]["history"].tolist() == [6.0, 7.0, 8.0, 9.0]


def test_ewma_is_the_weighted_mean_of_its_window():
    X = np.random.default_rng(0).random((5, 8)).astype(np.float32)
    alpha = 0.4
    weights = alpha * (1 - alpha) ** np.arange(7, -1, -1)  # x_{t-1} (last column) weighs most
    expected = X @ weights / weights.sum()
    np.testing.assert_allclose(EWMA(seq_len=8, alpha=alpha).predict(X), expected, rtol=1e-6)
    np.testing.assert_array_equal(
        EWMA(seq_len=8, alpha=1.0).predict(X), Persistence(seq_len=8).predict(X)
    )


def test_in_prequential_seasonal_beats_persistence_on_a_periodic_series():
    t = np.arange(600)
    rng = np.random.default_rng(1)
    series = (np.sin(2 * np.pi * t / 48) + 0.01 * rng.normal(size=t.size)).astype(np.float32)
    X, y = series_rows(series, 4)
    result = prequential(
        ArrayStream(X, y),
        {
            "persistence": Persistence(seq_len=4),
            "seasonal": SeasonalNaive(seq_len=4, periods=(48,)),
            "ewma": EWMA(seq_len=4),
        },
        batch_size=1,
        metrics=["rmse"],
    )
    rmse = {name: summary["rmse"] for name, summary in result.summary.items()}
    assert rmse["seasonal"] < rmse["persistence"] < rmse["ewma"]


def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match="SeasonalNaive.periods"):
        SeasonalNaive(periods=())
    with pytest.raises(ValueError, match=r"SeasonalNaive.periods\[0\]"):
        SeasonalNaive(periods=(0,))
    with pytest.raises(ValueError, match="EWMA.alpha"):
        EWMA(alpha=0.0)
    with pytest.raises(ValueError, match="at least seq_len=3"):
        EWMA(seq_len=3).predict(np.zeros((1, 2), dtype=np.float32))
