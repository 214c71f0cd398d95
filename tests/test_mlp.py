"""Tests specific to the PyTorch MLPs (the shared suite covers the protocol)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from adaptloop.learners import MLPClassifier, MLPRegressor, registry, states_equal


def blobs(n: int, n_classes: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2)).astype(np.float32)
    if n_classes == 2:
        return X, (X[:, 0] * X[:, 1] > 0).astype(np.int64)  # XOR quadrants
    return X, np.digitize(np.arctan2(X[:, 1], X[:, 0]), [-1.0, 1.0]).astype(np.int64)


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )


def test_importing_learners_does_not_import_torch():
    result = run_python(
        """
        import sys
        import adaptloop.learners
        assert "torch" not in sys.modules, "torch imported by adaptloop.learners"
        """
    )
    assert result.returncode == 0, result.stderr


def test_learners_work_without_torch_and_mlp_says_what_is_missing():
    result = run_python(
        """
        import sys
        from importlib.abc import MetaPathFinder

        class NoTorch(MetaPathFinder):  # as if PyTorch were not installed
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "torch":
                    raise ImportError("No module named 'torch'")

        sys.meta_path.insert(0, NoTorch())
        import numpy as np
        from adaptloop.learners import LogisticRegression, MLPClassifier, registry
        assert "mlp" in registry
        LogisticRegression().learn(np.ones((2, 1), dtype=np.float32), np.array([0, 1]))
        model = MLPClassifier()  # building the object needs no torch
        try:
            model.learn(np.ones((2, 1), dtype=np.float32), np.array([0, 1]))
        except ImportError as error:
            assert "adaptloop[torch]" in str(error), error
        else:
            raise AssertionError("learn without torch did not raise ImportError")
        """
    )
    assert result.returncode == 0, result.stderr


torch = pytest.importorskip("torch")


def test_global_random_states_are_untouched():
    X, y = blobs(256)
    torch_state = torch.random.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    model = MLPClassifier(hidden=(8, 8), epochs=2, batch_size=32, seed=3)
    model.learn(X, y)
    model.predict_proba(X)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state)


def test_seed_decides_the_initial_weights():
    X, y = blobs(64)
    a, b, c = MLPClassifier(seed=1), MLPClassifier(seed=1), MLPClassifier(seed=2)
    for model in (a, b, c):
        model.learn(X, y)
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))
    assert not np.array_equal(a.predict_proba(X), c.predict_proba(X))


@pytest.mark.parametrize("n_classes", [2, 3])
def test_classifier_learns_a_nonlinear_problem(n_classes):
    X, y = blobs(1200, n_classes)
    model = MLPClassifier(n_classes=n_classes, hidden=(32, 32), lr=0.01, epochs=5, batch_size=64)
    for start in range(0, 1000, 200):
        model.learn(X[start : start + 200], y[start : start + 200])
    assert (model.predict(X[1000:]) == y[1000:]).mean() > 0.85


def test_regressor_learns():
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, size=(600, 2)).astype(np.float32)
    y = (np.sin(X[:, 0]) + X[:, 1] ** 2).astype(np.float32)
    model = MLPRegressor(hidden=(32,), lr=0.01, epochs=20, batch_size=32)
    model.learn(X[:500], y[:500])
    pred = model.predict(X[500:])
    assert pred.dtype == np.float32
    assert np.mean((pred - y[500:]) ** 2) < 0.1 * np.var(y)


def test_more_epochs_fit_the_batch_better():
    X, y = blobs(256)
    losses = []
    for epochs in (1, 10):
        model = MLPClassifier(hidden=(16,), lr=0.01, epochs=epochs, batch_size=32)
        model.learn(X, y)
        p = model.predict_proba(X)[np.arange(len(y)), y]
        losses.append(-np.log(p).mean())
    assert losses[1] < losses[0]


def test_hidden_representation():
    X, y = blobs(100)
    model = MLPClassifier(hidden=(12, 5))
    np.testing.assert_array_equal(model.hidden_representation(X[:3]), np.zeros((3, 5)))
    model.learn(X, y)
    h = model.hidden_representation(X[:7])
    assert h.shape == (7, 5) and h.dtype == np.float32
    assert (h >= 0).all()  # after the ReLU
    np.testing.assert_array_equal(h, model.hidden_representation(X[:7]))
    with pytest.raises(ValueError, match="features"):
        model.hidden_representation(X[:, :1])
    flat = MLPClassifier(hidden=())  # no hidden layer: the standardised input
    flat.learn(X, y)
    assert flat.hidden_representation(X[:4]).shape == (4, 2)


def test_state_holds_model_and_optimizer_as_deep_copies():
    X, y = blobs(128)
    model = MLPClassifier(hidden=(8,), batch_size=32, epochs=2)
    model.learn(X, y)
    state = model.state_dict()["learned"]
    assert set(state) == {"model", "optimizer", "scaler", "rng"}
    assert all(isinstance(v, torch.Tensor) for v in state["model"].values())
    assert state["optimizer"]["state"]  # Adam moments
    saved = {k: v.clone() for k, v in state["model"].items()}
    model.learn(X, y)
    assert states_equal(state["model"], saved)
    assert not states_equal(model.state_dict()["learned"]["model"], saved)


def test_mini_batch_order_is_restored_with_the_state():
    X, y = blobs(200)
    a = MLPClassifier(hidden=(8,), batch_size=16, epochs=2, seed=5)
    a.learn(X[:100], y[:100])
    b = MLPClassifier(hidden=(8,), batch_size=16, epochs=2, seed=5)
    b.load_state_dict(a.state_dict())
    a.learn(X[100:], y[100:])
    b.learn(X[100:], y[100:])
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"hidden": 64}, "hidden"),
        ({"hidden": (64, 0)}, "hidden"),
        ({"hidden": ("a",)}, "hidden"),
        ({"lr": 0}, "lr"),
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"weight_decay": -1}, "weight_decay"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"standardize": 1}, "standardize"),
        ({"seed": "x"}, "seed"),
    ],
)
def test_bad_parameters_are_refused_by_name(params, name):
    with pytest.raises(ValueError, match=rf"^MLPClassifier\.{name}(\[\d+\])?: "):
        MLPClassifier(**params)
    with pytest.raises(ValueError, match=rf"^MLPRegressor\.{name}(\[\d+\])?: "):
        MLPRegressor(**params)


def test_registry_and_list_hidden_from_a_toml_file():
    model = registry.create("mlp", n_classes=4, hidden=[8, 4], seed=1)
    assert isinstance(model, MLPClassifier) and model.hidden == (8, 4)
    assert isinstance(registry.create("mlp_regressor"), MLPRegressor)
    assert repr(model.clone()) == repr(model)


def test_state_of_another_architecture_is_refused():
    X, y = blobs(64)
    model = MLPClassifier(hidden=(8,))
    model.learn(X, y)
    with pytest.raises(ValueError, match="hidden|fit"):
        MLPClassifier(hidden=(16,)).load_state_dict(model.state_dict())
    with pytest.raises(ValueError, match="output"):
        MLPClassifier(n_classes=3, hidden=(8,)).load_state_dict(model.state_dict())
