"""The liquid learners (CfC, LTC), the LSTM and persistence on sequences of link loads."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("ncps")

import torch  # noqa: E402

from adaptloop.learners import (  # noqa: E402
    CfCRegressor,
    LSTMRegressor,
    LTCRegressor,
    Persistence,
    WindowRetrain,
    states_equal,
)


def sine_task(n=700, seq_len=8, period=40, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n + seq_len)
    series = (np.sin(2 * np.pi * t / period) + 0.05 * rng.normal(size=t.size)).astype(np.float32)
    X = np.lib.stride_tricks.sliding_window_view(series[:-1], seq_len).copy()
    return X, series[seq_len:].copy()


def rmse(model, X, y):
    return float(np.sqrt(np.mean((model.predict(X) - y) ** 2)))


@pytest.mark.parametrize(
    "make",
    [
        lambda: CfCRegressor(units=8, seq_len=8, lr=0.01, epochs=2, batch_size=25, seed=1),
        lambda: LTCRegressor(units=6, seq_len=8, lr=0.03, epochs=2, batch_size=25, seed=1),
        lambda: LSTMRegressor(units=8, seq_len=8, lr=0.01, epochs=2, batch_size=25, seed=1),
    ],
    ids=["cfc", "ltc", "lstm"],
)
def test_learns_a_sine_far_better_than_chance(make):
    X, y = sine_task()
    model = make()
    before = rmse(model, X[600:], y[600:])  # 0.0 predicted: about the sine's std, 0.71
    for start in range(0, 600, 50):
        model.learn(X[start : start + 50], y[start : start + 50])
    after = rmse(model, X[600:], y[600:])
    assert before > 0.6
    assert after < 0.3 * before


def test_frozen_stops_updating_after_warmup_but_counts():
    X, y = sine_task(n=300)
    model = CfCRegressor(units=6, seq_len=8, lr=0.01, mode="frozen", warmup=150, seed=2)
    online = CfCRegressor(units=6, seq_len=8, lr=0.01, mode="online", seed=2)
    model.learn(X[:100], y[:100])
    early = model.state_dict()
    assert len(early["learned"]["warm"]["y"]) == 100  # warm-up samples kept for the final fit
    model.learn(X[100:200], y[100:200])  # crosses warmup: learns samples 100..149 only
    assert not states_equal(early["learned"]["model"], model.state_dict()["learned"]["model"])
    assert model.frozen and model.n_seen_ == 200
    frozen_state = model.state_dict()
    assert frozen_state["learned"]["warm"] is None  # fitted and dropped
    predictions = model.predict(X[200:])
    model.learn(X[200:], y[200:])
    after = model.state_dict()
    assert states_equal(frozen_state["learned"]["model"], after["learned"]["model"])
    assert states_equal(frozen_state["learned"]["scaler"], after["learned"]["scaler"])
    assert after["learned"]["n_seen"] == 300
    assert np.array_equal(model.predict(X[200:]), predictions)
    # the same learner in online mode keeps changing
    for start in (0, 100, 200):
        online.learn(X[start : start + 100], y[start : start + 100])
    assert not states_equal(after["learned"]["model"], online.state_dict()["learned"]["model"])


def test_frozen_equals_online_during_warmup_then_fits_the_warmup_samples():
    X, y = sine_task(n=200)
    a = CfCRegressor(units=4, seq_len=8, lr=0.01, mode="frozen", warmup=100, seed=3)
    b = CfCRegressor(units=4, seq_len=8, lr=0.01, mode="online", seed=3)
    for model in (a, b):
        model.learn(X[:50], y[:50])
    assert np.array_equal(a.predict(X), b.predict(X))
    a.learn(X[50:100], y[50:100])  # completes the warm-up: 10 more passes over its 100 samples
    b.learn(X[50:100], y[50:100])
    assert rmse(a, X[100:], y[100:]) < 0.7 * rmse(b, X[100:], y[100:])
    no_fit = CfCRegressor(units=4, seq_len=8, mode="frozen", warmup=100, warmup_epochs=0, seed=3)
    no_fit.learn(X[:100], y[:100])
    assert no_fit.state_dict()["learned"]["warm"] is None  # nothing kept without the fit


def test_ratio_normalisation_carries_a_frozen_model_across_a_level_shift():
    """Trained on loads around 1, asked about the same pattern at 4x the level."""
    X, y = sine_task(n=400, period=40)
    X, y = 1.5 + 0.5 * X, 1.5 + 0.5 * y  # positive loads
    spec = dict(units=8, seq_len=8, lr=0.01, mode="frozen", warmup=400, batch_size=32, seed=0)
    plain, ratio = CfCRegressor(**spec), CfCRegressor(normalize="ratio", **spec)
    for model in (plain, ratio):
        model.learn(X, y)
    assert rmse(ratio, X, y) < 0.1  # both fit the training level
    shifted_X, shifted_y = 4 * X, 4 * y
    assert rmse(ratio, shifted_X, shifted_y) < 0.25 * rmse(plain, shifted_X, shifted_y)
    difference = CfCRegressor(normalize="difference", **spec)
    difference.learn(X, y)
    assert rmse(difference, X + 3, y + 3) < 0.25 * rmse(plain, X + 3, y + 3)


def test_ratio_refuses_non_positive_reference_and_keeps_state():
    model = CfCRegressor(units=4, seq_len=3, normalize="ratio")
    X = np.ones((4, 5), dtype=np.float32)
    model.learn(X, np.ones(4, dtype=np.float32))
    state = model.state_dict()
    bad = X.copy()
    bad[2, 2] = 0.0
    with pytest.raises(ValueError, match="row 2"):
        model.learn(bad, np.ones(4, dtype=np.float32))
    with pytest.raises(ValueError, match="normalize='ratio'"):
        model.predict(bad)
    assert states_equal(state, model.state_dict())


def test_seeded_without_touching_the_global_generator():
    X, y = sine_task(n=50)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = CfCRegressor(units=4, seq_len=8, seed=5)
    a.learn(X, y)
    assert torch.equal(torch.rand(3), expected)
    b = CfCRegressor(units=4, seq_len=8, seed=5)
    b.learn(X, y)
    c = CfCRegressor(units=4, seq_len=8, seed=6)
    c.learn(X, y)
    assert np.array_equal(a.predict(X), b.predict(X))
    assert not np.array_equal(a.predict(X), c.predict(X))


def test_sequence_layout_uses_the_extra_features():
    """Extra columns after seq_len (time features) are inputs at every step."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3)).astype(np.float32)  # seq_len=1: one value + 2 extras
    y = (X[:, 2] * 2).astype(np.float32)  # depends on an extra feature only
    model = CfCRegressor(units=8, seq_len=1, lr=0.02, epochs=20, batch_size=50)
    model.learn(X, y)
    assert rmse(model, X, y) < 0.5 * float(y.std())


@pytest.mark.parametrize("cls", [CfCRegressor, LTCRegressor, LSTMRegressor, Persistence])
def test_width_below_seq_len_is_refused(cls):
    model = cls(seq_len=5)
    with pytest.raises(ValueError, match="seq_len=5"):
        model.predict(np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="seq_len=5"):
        model.learn(np.zeros((2, 4), dtype=np.float32), np.zeros(2, dtype=np.float32))
    assert model.n_features_in_ is None


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"units": 0}, "units"),
        ({"seq_len": 0}, "seq_len"),
        ({"mode": "liquid"}, "mode"),
        ({"warmup": -1}, "warmup"),
        ({"warmup_epochs": -1}, "warmup_epochs"),
        ({"normalize": "minmax"}, "normalize"),
        ({"lr": 0}, "lr"),
        ({"epochs": 0}, "epochs"),
    ],
)
def test_bad_params(params, name):
    with pytest.raises(ValueError, match=rf"^CfCRegressor\.{name}: "):
        CfCRegressor(**params)


def test_persistence_predicts_the_last_value_and_window_retrain_lstm():
    X, y = sine_task(n=300)
    floor = Persistence(seq_len=8)
    floor.learn(X, y)
    assert np.array_equal(floor.predict(X), X[:, 7])
    assert floor.state_dict()["learned"] == {}
    model = WindowRetrain(LSTMRegressor(units=6, seq_len=8, lr=0.02), window=100, every=50)
    for start in range(0, 300, 25):
        model.learn(X[start : start + 25], y[start : start + 25])
    assert model.n_refits_ == 6
