"""Tests specific to the numpy linear learners (the shared suite covers the protocol)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adaptloop.learners import LinearRegression, LogisticRegression, registry, states_equal


def sea(n: int, seed: int = 0, drift_at: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """SEA concepts: y = x0 + x1 > threshold (8, then 9.5 after the drift), 10% label noise."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 10, size=(n, 3)).astype(np.float32)
    threshold = np.full(n, 8.0)
    if drift_at is not None:
        threshold[drift_at:] = 9.5
    y = (X[:, 0] + X[:, 1] > threshold).astype(np.int64)
    flip = rng.random(n) < 0.1
    y[flip] = 1 - y[flip]
    return X, y


def prequential_accuracy(model, X, y, batch) -> float:
    correct = 0
    for start in range(0, len(X), batch):
        Xb, yb = X[start : start + batch], y[start : start + batch]
        correct += int((model.predict(Xb) == yb).sum())
        model.learn(Xb, yb)
    return correct / len(X)


def reference_fit(X, y, batches, kind, k, lr, l2, max_steps=16):
    """The module's documented update, written out: per batch, merge the running mean and
    variance, then take ``s`` steps of size ``lr * n / s`` on the mean gradient, ``s`` the
    fewest within ``1 / (c * mean |x|^2 + l2)`` (at most ``max_steps``; a batch of one takes
    River's one step of ``lr``, uncapped), decaying the weights (not the intercept) by
    ``1 - step * l2`` after each gradient is taken."""
    d = X.shape[1]
    c = {"binary": 0.25, "multiclass": 0.5, "regression": 1.0}[kind]
    theta, seen, steps = np.zeros((d + 1, k)), np.empty((0, d)), 0
    start = 0
    for n in batches:
        Xb, yb = X[start : start + n].astype(np.float64), y[start : start + n]
        start += n
        seen = np.vstack([seen, Xb])
        mean, std = seen.mean(axis=0), seen.std(axis=0)
        inv_std = np.divide(1.0, std, out=np.zeros(d), where=std > 0)
        Xa = np.hstack([(Xb - mean) * inv_std, np.ones((n, 1))])
        cap = 1.0 / (c * np.mean(np.sum(Xa * Xa, axis=1)) + l2)
        s = math.ceil(lr * n / cap)
        s, step = (1, lr * n) if s <= 1 else (max_steps, cap) if s > max_steps else (s, lr * n / s)
        if n == 1:
            s, step = 1, lr
        for _ in range(s):
            Z = Xa @ theta
            if kind == "binary":
                G = 1.0 / (1.0 + np.exp(-Z)) - yb[:, None]
            elif kind == "regression":
                G = Z - yb[:, None]
            else:
                G = np.exp(Z - Z.max(axis=1, keepdims=True))
                G /= G.sum(axis=1, keepdims=True)
                G[np.arange(n), yb] -= 1.0
            gradient = Xa.T @ G / n
            theta[:d] *= 1.0 - step * l2
            theta -= step * gradient
        steps += s
    return theta, seen.mean(axis=0), seen.var(axis=0) * len(seen), steps


# -- agreement with River ------------------------------------------------------------------------
def test_defaults_reproduce_river_scaler_logistic_pipeline_sample_by_sample():
    from river import linear_model, preprocessing

    X, y = sea(1500, seed=3)
    ours = LogisticRegression()
    river = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    for xi, yi in zip(X, y, strict=True):
        x = {f"x{i}": float(v) for i, v in enumerate(xi)}
        p_river = river.predict_proba_one(x).get(True, 0.5)
        p_ours = ours.predict_proba(xi[None, :])[0, 1]
        assert p_ours == pytest.approx(p_river, abs=1e-9)
        river.learn_one(x, bool(yi))
        ours.learn(xi[None, :], yi[None])


@pytest.mark.parametrize("batch", [1, 16, 256])
def test_accuracy_close_to_river_per_sample_at_any_batch_size(batch):
    """River learns sample by sample, predicting each batch before learning it (as we do)."""
    from river import linear_model, preprocessing

    X, y = sea(20_000, seed=5, drift_at=10_000)
    river = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    rows = [{f"x{i}": float(v) for i, v in enumerate(xi)} for xi in X]
    correct = 0
    for start in range(0, len(X), batch):
        chunk = list(zip(rows[start : start + batch], y[start : start + batch], strict=True))
        for x, yi in chunk:
            p = river.predict_proba_one(x)
            correct += int((p.get(True, 0.0) > p.get(False, 0.0)) == bool(yi))
        for x, yi in chunk:
            river.learn_one(x, bool(yi))
    river_accuracy = correct / len(X)
    ours = prequential_accuracy(LogisticRegression(), X, y, batch)
    assert ours > river_accuracy - 0.01


# -- Python (batch of one) and numpy paths ------------------------------------------------------
ONES = [1] * 300
MIXED = [1, 1, 5, 1, 64, 1, 1, 128, 1, 97]  # 300 samples, both paths, switching back and forth


@pytest.mark.parametrize("batches", [ONES, MIXED], ids=["batch_of_one", "mixed_batches"])
@pytest.mark.parametrize("l2", [0.0, 0.01])
@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_python_and_numpy_paths_follow_the_documented_update(kind, l2, batches):
    """Batches of one run compiled, larger ones on numpy: both are the one update."""
    rng = np.random.default_rng(1)
    X = (rng.normal(size=(300, 4)) * [1, 10, 0.1, 3] + [0, 50, 1, -2]).astype(np.float32)
    if kind == "regression":
        y = (X @ [1.0, -0.2, 5.0, 0.5] + 3).astype(np.float32)
        model, k = LinearRegression(lr=0.05, l2=l2), 1
    else:
        k = 1 if kind == "binary" else 3
        y = rng.integers(0, 2 if kind == "binary" else 3, size=300)
        model = LogisticRegression(n_classes=2 if kind == "binary" else 3, lr=0.05, l2=l2)
    start = 0
    for n in batches:
        model.learn(X[start : start + n], y[start : start + n])
        start += n
    theta, mean, m2, steps = reference_fit(X, y, batches, kind, k, 0.05, l2)
    state = model.state_dict()["learned"]
    np.testing.assert_allclose(state["theta"], theta, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(state["mean"], mean, rtol=1e-12)
    np.testing.assert_allclose(state["m2"], m2, rtol=1e-9)
    assert state["count"] == 300 and state["steps"] == steps
    predict = model.predict if kind == "regression" else model.predict_proba
    for i in range(5):  # one-row predictions (Python) agree with batch predictions (numpy)
        np.testing.assert_allclose(predict(X[i : i + 1])[0], predict(X)[i], rtol=1e-6)


def test_switching_between_batch_sizes_keeps_learning_consistent():
    X, y = sea(600, seed=2)
    sizes = [1, 1, 5, 1, 64, 1, 1, 128]
    a, b = LogisticRegression(), LogisticRegression()
    start = 0
    for size in sizes * 3:
        a.learn(X[start : start + size], y[start : start + size])
        b.learn(X[start : start + size], y[start : start + size])
        if size == 1:  # a round trip through state_dict in the middle of Python mode
            b.load_state_dict(b.state_dict())
        start += size
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-12)


# -- online standardisation ------------------------------------------------------------------------
def test_running_statistics_equal_those_of_all_data_seen():
    rng = np.random.default_rng(4)
    X = (rng.normal(size=(1000, 3)) * [1, 100, 0.01] + [1e6, -5, 3]).astype(np.float32)
    y = rng.integers(0, 2, size=1000)
    model = LogisticRegression()
    start = 0
    for size in [1, 7, 1, 300, 1, 1, 90, 599]:
        model.learn(X[start : start + size], y[start : start + size])
        start += size
    state = model.state_dict()["learned"]
    seen = X[:start].astype(np.float64)
    assert state["count"] == start
    np.testing.assert_allclose(state["mean"], seen.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(state["m2"] / start, seen.var(axis=0), rtol=1e-7)


def test_constant_feature_is_standardised_to_zero():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=200), np.full(200, 7.0)]).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    model = LogisticRegression(lr=0.1)
    for start in range(0, 200, 20):
        model.learn(X[start : start + 20], y[start : start + 20])
    state = model.state_dict()["learned"]
    assert state["inv_std"][1] == 0.0
    assert state["theta"][1, 0] == 0.0
    assert (model.predict(X) == y).mean() > 0.95


def test_without_standardisation():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 2)).astype(np.float32)
    y = (X[:, 0] - X[:, 1] > 0).astype(np.int64)
    model = LogisticRegression(standardize=False, lr=0.1)
    for start in range(0, 400, 50):
        model.learn(X[start : start + 50], y[start : start + 50])
    assert model.state_dict()["learned"]["count"] == 0
    assert (model.predict(X) == y).mean() > 0.95


# -- step plan, optimisers, penalty ------------------------------------------------------------
def test_a_batch_takes_capped_steps_and_batch_one_takes_one():
    X, y = sea(256, seed=1)
    model = LogisticRegression()
    model.learn(X[:1], y[:1])
    assert model.state_dict()["learned"]["steps"] == 1
    model.learn(X, y)  # lr * 256 = 2.56 in steps of at most 1 / (0.25 * mean |x|^2) ~ 1
    steps = model.state_dict()["learned"]["steps"] - 1
    assert 2 <= steps <= 16
    capped = LogisticRegression(max_steps=2)
    capped.learn(X, y)
    assert capped.state_dict()["learned"]["steps"] == 2


def test_huge_learning_rate_stays_finite():
    X, y = sea(2000, seed=1)
    model = LogisticRegression(lr=1000.0)
    for start in range(0, 2000, 100):
        model.learn(X[start : start + 100], y[start : start + 100])
    assert np.isfinite(model.state_dict()["learned"]["theta"]).all()
    assert np.isfinite(model.predict_proba(X)).all()


@pytest.mark.parametrize("n_classes", [2, 3])
def test_adam_learns(n_classes):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 2)).astype(np.float32)
    y = np.digitize(X[:, 0], [-0.4, 0.4]) if n_classes == 3 else (X[:, 0] > 0).astype(np.int64)
    model = LogisticRegression(n_classes=n_classes, optimizer="adam", lr=0.05)
    for start in range(0, 2000, 50):
        model.learn(X[start : start + 50], y[start : start + 50])
    model.learn(X[:1], y[:1])  # a batch of one takes the numpy path under Adam
    assert (model.predict(X) == y).mean() > 0.85
    assert model.state_dict()["learned"]["adam_m"].shape == (3, 1 if n_classes == 2 else 3)


def test_l2_shrinks_the_weights():
    X, y = sea(3000, seed=2)
    plain, ridge = LogisticRegression(), LogisticRegression(l2=0.05)
    for start in range(0, 3000, 100):
        plain.learn(X[start : start + 100], y[start : start + 100])
        ridge.learn(X[start : start + 100], y[start : start + 100])
    w_plain = plain.state_dict()["learned"]["theta"][:-1]
    w_ridge = ridge.state_dict()["learned"]["theta"][:-1]
    assert np.linalg.norm(w_ridge) < 0.8 * np.linalg.norm(w_plain)


def test_linear_regression_learns_at_batch_one_and_in_batches():
    rng = np.random.default_rng(3)
    X = (rng.normal(size=(3000, 3)) * [1, 10, 100]).astype(np.float32)
    y = (X @ [2.0, -0.3, 0.01] + 5).astype(np.float32)
    for batch in (1, 128):
        model = LinearRegression()
        for start in range(0, 3000, batch):
            model.learn(X[start : start + batch], y[start : start + batch])
        assert np.abs(model.predict(X) - y).mean() < 0.1


# -- before learning, parameters, registry ----------------------------------------------------
def test_predictions_before_learning_and_no_state_change():
    X = np.ones((4, 5), dtype=np.float32)
    clf, reg = LogisticRegression(n_classes=4), LinearRegression()
    state = clf.state_dict()
    np.testing.assert_array_equal(clf.predict_proba(X), np.full((4, 4), 0.25))
    np.testing.assert_array_equal(clf.predict(X), np.zeros(4, dtype=np.int64))
    np.testing.assert_array_equal(reg.predict(X), np.zeros(4, dtype=np.float32))
    assert states_equal(clf.state_dict(), state)
    assert clf.n_features_in_ is None


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"lr": 0}, "lr"),
        ({"lr": -1.0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"lr": "fast"}, "lr"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"l2": -0.1}, "l2"),
        ({"l2": True}, "l2"),
        ({"standardize": "yes"}, "standardize"),
        ({"seed": 1.5}, "seed"),
        ({"max_steps": 0}, "max_steps"),
        ({"n_classes": 1}, "n_classes"),
        ({"n_classes": 2.5}, "n_classes"),
    ],
)
def test_bad_parameters_are_refused_by_name(params, name):
    with pytest.raises(ValueError, match=rf"^LogisticRegression\.{name}: "):
        LogisticRegression(**params)
    if name != "n_classes":
        with pytest.raises(ValueError, match=rf"^LinearRegression\.{name}: "):
            LinearRegression(**params)


def test_registry_names_and_parameters():
    assert registry.get("logistic") is LogisticRegression
    assert registry.get("softmax") is LogisticRegression
    assert registry.get("linear") is LinearRegression
    model = registry.create("softmax", n_classes=5, lr=0.1)
    assert model.n_classes == 5 and model.task == "multiclass"
    assert {"n_classes", "seed", "lr", "optimizer", "l2", "standardize"} <= set(
        registry.parameter_names("logistic")
    )
    assert model.get_params()["n_classes"] == 5
    assert repr(model.clone()) == repr(model)


def test_state_from_other_parameters_is_refused():
    X, y = sea(100)
    binary = LogisticRegression()
    binary.learn(X, y)
    with pytest.raises(ValueError, match="theta"):
        LogisticRegression(n_classes=3).load_state_dict(binary.state_dict())
    with pytest.raises(ValueError, match="optimizer"):
        LogisticRegression(optimizer="adam").load_state_dict(binary.state_dict())
    with pytest.raises(ValueError, match="state"):
        LogisticRegression().load_state_dict({"n_features_in_": 3, "learned": {"theta": 1}})
