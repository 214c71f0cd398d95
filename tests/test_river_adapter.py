"""Tests specific to the River adapters, both ways (the shared suite covers the protocol)."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from river import base, evaluate, linear_model, metrics, naive_bayes, preprocessing, tree
from river.datasets import synth

from adaptloop.learners import (
    LinearRegression,
    LogisticRegression,
    RiverClassifier,
    RiverLearner,
    RiverRegressor,
    ToRiver,
    is_classifier,
    registry,
    states_equal,
)


def data(n: int, n_classes: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)).astype(np.float32)
    if n_classes == 2:
        return X, (X[:, 0] > 0).astype(np.int64)
    return X, np.digitize(X[:, 0], [-0.45, 0.45]).astype(np.int64)


class Spy(linear_model.LogisticRegression):
    """Counts the calls River gets from the adapter."""

    calls: dict[str, int] = {}

    def learn_one(self, x, y, w=1.0):
        Spy.calls["learn_one"] = Spy.calls.get("learn_one", 0) + 1
        super().learn_one(x, y, w)

    def learn_many(self, X, y, w=1):
        Spy.calls["learn_many"] = Spy.calls.get("learn_many", 0) + 1
        super().learn_many(X, y, w)


@pytest.fixture
def spy():
    Spy.calls = {}
    return Spy


# -- building --------------------------------------------------------------------------------------
def test_model_by_dotted_name_with_params_and_seed():
    learner = RiverLearner(
        "tree.HoeffdingAdaptiveTreeClassifier", n_classes=3, params={"grace_period": 30}, seed=4
    )
    assert isinstance(learner, RiverClassifier)
    assert learner.model_.grace_period == 30 and learner.model_.seed == 4
    same = RiverLearner("river.tree.HoeffdingAdaptiveTreeClassifier", params={"seed": 9}, seed=4)
    assert same.model_.seed == 9  # params win over the experiment seed
    unseeded = RiverLearner("naive_bayes.GaussianNB", seed=4)  # takes no seed: none passed
    assert isinstance(unseeded.model_, naive_bayes.GaussianNB)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"model": "tree.NoSuchTree"}, "not a River estimator"),
        ({"model": "nosuchmodule.Model"}, "not a River estimator"),
        ({"model": "tree.HoeffdingTreeClassifier", "params": {"bogus": 1}}, "bogus"),
        ({"model": "tree.HoeffdingTreeClassifier", "params": [1]}, "params"),
        ({"model": "preprocessing.StandardScaler"}, "classifier or regressor"),
        ({"model": 42}, "River estimator"),
        ({"model": linear_model.LinearRegression(), "n_classes": 2}, "n_classes"),
        ({"model": linear_model.LogisticRegression(), "n_classes": 3}, "binary only"),
        (
            {"model": tree.HoeffdingTreeClassifier(), "n_classes": 1},
            r"^RiverClassifier\.n_classes: ",
        ),
        ({"model": tree.HoeffdingTreeClassifier(), "use_many": True}, "learn_many"),
        (
            {"model": tree.HoeffdingTreeClassifier(), "use_many": "yes"},
            r"^RiverClassifier\.use_many: ",
        ),
        ({"model": tree.HoeffdingTreeClassifier(), "feature_names": ["a", "a"]}, "feature_names"),
        ({"model": tree.HoeffdingTreeClassifier(), "seed": 1.5}, r"^RiverClassifier\.seed: "),
    ],
)
def test_bad_construction_is_refused(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        RiverLearner(**kwargs)


def test_classifier_or_regressor_is_read_from_river_base():
    clf = RiverLearner(preprocessing.StandardScaler() | linear_model.LogisticRegression())
    reg = RiverLearner(preprocessing.StandardScaler() | linear_model.LinearRegression())
    assert isinstance(clf, RiverClassifier) and is_classifier(clf) and clf.task == "binary"
    assert isinstance(reg, RiverRegressor) and not is_classifier(reg) and reg.task == "regression"
    assert isinstance(clf, RiverLearner) and isinstance(reg, RiverLearner)
    with pytest.raises(ValueError, match="RiverLearner"):
        RiverClassifier(linear_model.LinearRegression())


def test_registry_builds_from_toml_like_parameters():
    learner = registry.create(
        "river", model="tree.HoeffdingTreeClassifier", params={"grace_period": 10}, n_classes=4
    )
    assert learner.n_classes == 4 and learner.model_.grace_period == 10
    hat = registry.create("hoeffding_adaptive_tree", n_classes=3, seed=2, grace_period=40)
    assert isinstance(hat.model_, tree.HoeffdingAdaptiveTreeClassifier)
    assert (hat.model_.seed, hat.model_.grace_period, hat.n_classes) == (2, 40, 3)
    assert {"n_classes", "seed"} <= set(registry.parameter_names("hoeffding_adaptive_tree"))


def test_the_given_instance_is_never_updated_and_clone_uses_river_clone():
    model = tree.HoeffdingTreeClassifier(grace_period=20)
    before = pickle.dumps(model)
    learner = RiverLearner(model, n_classes=3)
    X, y = data(300, 3)
    learner.learn(X, y)
    assert pickle.dumps(model) == before
    clone = learner.clone()
    assert clone.model_ is not learner.model_ and clone.model is not learner.model
    assert clone.model_.grace_period == 20 and clone.model_.n_nodes in (None, 0, 1)
    assert learner.model_.n_nodes > 1  # (the learner's own tree did grow)
    np.testing.assert_array_equal(clone.predict_proba(X[:3]), np.full((3, 3), 1 / 3))


def test_adapter_objects_pickle_and_deepcopy():
    learner = RiverLearner(preprocessing.StandardScaler() | linear_model.LogisticRegression())
    X, y = data(100)
    learner.learn(X, y)
    for twin in (pickle.loads(pickle.dumps(learner)), copy.deepcopy(learner)):
        assert type(twin) is RiverClassifier
        np.testing.assert_array_equal(twin.predict_proba(X), learner.predict_proba(X))


# -- batches ---------------------------------------------------------------------------------------
def test_learn_many_is_used_when_the_model_has_it(spy):
    learner = RiverLearner(preprocessing.StandardScaler() | spy())
    X, y = data(64)
    learner.learn(X, y)
    assert spy.calls == {"learn_many": 1}
    learner.learn(X[:1], y[:1])  # a batch of one takes learn_one
    assert spy.calls == {"learn_many": 1, "learn_one": 1}


def test_use_many_false_loops_learn_one(spy):
    learner = RiverLearner(spy(), use_many=False)
    X, y = data(64)
    learner.learn(X, y)
    assert spy.calls == {"learn_one": 64}


def test_pipeline_with_a_step_lacking_learn_many_loops():
    pipeline = preprocessing.StandardScaler() | tree.HoeffdingTreeClassifier()
    assert hasattr(pipeline, "learn_many")  # pipelines always have it ...
    learner = RiverLearner(pipeline)
    X, y = data(64)
    learner.learn(X, y)  # ... but their steps decide: learn_many would fail here
    river = preprocessing.StandardScaler() | tree.HoeffdingTreeClassifier()
    for xi, yi in zip(X, y, strict=True):
        river.learn_one({f"x{i}": float(v) for i, v in enumerate(xi)}, int(yi))
    expected = [river.predict_proba_one({f"x{i}": float(v) for i, v in enumerate(xi)}) for xi in X]
    np.testing.assert_allclose(learner.predict_proba(X), [[p[0], p[1]] for p in expected])


def test_learn_one_loop_equals_river_sample_by_sample():
    X, y = data(500, seed=3)
    learner = RiverLearner(
        preprocessing.StandardScaler() | linear_model.LogisticRegression(), use_many=False
    )
    river = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    for start in range(0, 500, 50):
        learner.learn(X[start : start + 50], y[start : start + 50])
    for xi, yi in zip(X, y, strict=True):
        river.learn_one({f"x{i}": float(v) for i, v in enumerate(xi)}, int(yi))
    expected = [
        river.predict_proba_one({f"x{i}": float(v) for i, v in enumerate(xi)})[1] for xi in X
    ]
    np.testing.assert_allclose(learner.predict_proba(X)[:, 1], expected, rtol=1e-12)


def test_many_and_one_paths_predict_alike():
    X, y = data(200)
    learner = RiverLearner(preprocessing.StandardScaler() | linear_model.LogisticRegression())
    learner.learn(X, y)
    batch = learner.predict_proba(X[:20])  # predict_proba_many
    rows = np.vstack([learner.predict_proba(X[i : i + 1]) for i in range(20)])  # *_one
    np.testing.assert_allclose(batch, rows, rtol=1e-10)
    reg = RiverLearner(preprocessing.StandardScaler() | linear_model.LinearRegression())
    reg.learn(X, X[:, 0] * 2)
    one = np.concatenate([reg.predict(X[i : i + 1]) for i in range(20)])
    np.testing.assert_allclose(reg.predict(X[:20]), one, rtol=1e-6)


# -- probabilities ---------------------------------------------------------------------------------
def test_missing_classes_get_zero_and_rows_sum_to_one():
    learner = RiverLearner(naive_bayes.GaussianNB(), n_classes=4)
    X, y = data(200, 3)  # classes 0, 1, 2: class 3 is never seen
    np.testing.assert_array_equal(learner.predict_proba(X[:2]), np.full((2, 4), 0.25))
    learner.learn(X, y)
    proba = learner.predict_proba(X)
    assert (proba[:, 3] == 0).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (learner.predict(X) == y).mean() > 0.8


def test_boolean_labels_of_binary_river_models_map_to_codes():
    learner = RiverLearner(linear_model.LogisticRegression())  # reports {False: p, True: q}
    X, y = data(300)
    learner.learn(X, y)
    assert (learner.predict(X) == y).mean() > 0.9


def test_feature_names_reach_the_model():
    learner = RiverLearner(
        preprocessing.StandardScaler() | linear_model.LogisticRegression(),
        feature_names=["price", "demand", "hour"],
    )
    X, y = data(50)
    learner.learn(X, y)
    assert set(learner.model_["LogisticRegression"].weights) == {"price", "demand", "hour"}
    with pytest.raises(ValueError, match="feature_names"):
        RiverLearner(linear_model.LogisticRegression(), feature_names=["a", "b"]).learn(X, y)


def test_state_round_trip_and_refusal_of_another_model():
    X, y = data(200)
    a = RiverLearner(tree.HoeffdingTreeClassifier(grace_period=20))
    a.learn(X, y)
    state = a.state_dict()
    assert isinstance(state["learned"]["model"], bytes)
    b = RiverLearner(tree.HoeffdingTreeClassifier(grace_period=20))
    b.load_state_dict(state)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    other = RiverLearner(naive_bayes.GaussianNB())
    with pytest.raises(ValueError, match="HoeffdingTreeClassifier"):
        other.load_state_dict(state)
    with pytest.raises(ValueError, match="no River model"):
        other.load_state_dict({"n_features_in_": 3, "learned": {"model": b"junk"}})
    assert states_equal(other.state_dict()["n_features_in_"], None)


# -- ToRiver ---------------------------------------------------------------------------------------
def test_to_river_is_a_river_classifier_or_regressor():
    clf, reg = ToRiver(LogisticRegression()), ToRiver(LinearRegression())
    assert isinstance(clf, base.Classifier) and not isinstance(clf, base.Regressor)
    assert isinstance(reg, base.Regressor) and not isinstance(reg, base.Classifier)
    assert isinstance(clf, ToRiver) and isinstance(reg, ToRiver)
    # River's multiclass flag follows n_classes: a binary-only River model refuses 3 classes
    assert RiverLearner(ToRiver(LogisticRegression(n_classes=3)), n_classes=3).n_classes == 3
    with pytest.raises(ValueError, match="binary only"):
        RiverLearner(clf, n_classes=3)
    with pytest.raises(ValueError, match="learner"):
        ToRiver(object())


def test_to_river_in_progressive_validation_classification():
    stream = list(synth.SEA(variant=0, seed=1).take(3000))
    model = ToRiver(LogisticRegression())
    accuracy = evaluate.progressive_val_score(stream, model, metrics.Accuracy())
    assert accuracy.get() > 0.85
    reference = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    river_accuracy = evaluate.progressive_val_score(stream, reference, metrics.Accuracy())
    assert accuracy.get() == pytest.approx(river_accuracy.get(), abs=0.005)


def test_to_river_in_progressive_validation_regression():
    stream = list(synth.Friedman(seed=2).take(2000))
    ours = evaluate.progressive_val_score(stream, ToRiver(LinearRegression()), metrics.MAE())
    mean = evaluate.progressive_val_score(stream, DummyMean(), metrics.MAE())
    assert ours.get() < 0.8 * mean.get()


class DummyMean(base.Regressor):
    def __init__(self):
        self.total, self.count = 0.0, 0

    def learn_one(self, x, y):
        self.total += y
        self.count += 1

    def predict_one(self, x):
        return self.total / self.count if self.count else 0.0


def test_to_river_key_order_probabilities_and_labels():
    model = ToRiver(LogisticRegression(n_classes=3, lr=0.1))
    assert model.predict_proba_one({"b": 1.0, "a": 0.0}) == pytest.approx(
        {0: 1 / 3, 1: 1 / 3, 2: 1 / 3}
    )
    rng = np.random.default_rng(0)
    for _ in range(600):
        a, b = rng.normal(), rng.normal()
        label = int(np.digitize(a, [-0.45, 0.45]))
        model.learn_one({"b": b, "a": a, "extra": "ignored"}, label)
    proba = model.predict_proba_one({"a": 2.0, "b": 0.0, "extra": "x"})
    # the key order is the first sample's, {"b", "a"}: b is column 0 of what the learner sees
    ordered = model.learner.predict_proba(np.array([[0.0, 2.0]], dtype=np.float32))[0]
    assert [proba[c] for c in range(3)] == pytest.approx(ordered.tolist())
    swapped = model.learner.predict_proba(np.array([[2.0, 0.0]], dtype=np.float32))[0]
    assert not np.allclose(ordered, swapped)
    assert set(proba) == {0, 1, 2} and sum(proba.values()) == pytest.approx(1.0)
    assert model.predict_one({"a": 2.0, "b": 0.0, "extra": "x"}) == 2
    assert isinstance(model.predict_one({"a": -2.0, "b": 0.0, "extra": "x"}), int)


def test_to_river_refuses_bad_samples_and_labels():
    model = ToRiver(LogisticRegression(), feature_names=["a", "b"])
    model.learn_one({"a": 1.0, "b": 0.0, "c": 5.0}, True)  # bool labels are codes; c ignored
    with pytest.raises(ValueError, match="'b'"):
        model.learn_one({"a": 1.0}, 1)
    with pytest.raises(ValueError, match="unknown label"):
        model.learn_one({"a": 1.0, "b": 1.0}, 2)
    with pytest.raises(ValueError, match="numeric|dtype|NaN"):
        model.learn_one({"a": None, "b": 1.0}, 1)
    with pytest.raises(ValueError, match="dict"):
        model.predict_one([1.0, 2.0])


def test_to_river_clone_is_unfitted():
    model = ToRiver(LogisticRegression(lr=0.1), feature_names=["a"])
    for i in range(50):
        model.learn_one({"a": float(i % 2)}, i % 2)
    clone = model.clone()
    assert type(clone) is type(model) and clone.feature_names == ["a"]
    assert clone.learner is not model.learner
    assert clone.predict_proba_one({"a": 1.0}) == {0: 0.5, 1: 0.5}
    assert model.predict_proba_one({"a": 1.0})[1] > 0.5
    twin = pickle.loads(pickle.dumps(model))
    assert twin.predict_proba_one({"a": 1.0}) == model.predict_proba_one({"a": 1.0})


def test_round_trip_river_to_adaptloop_to_river():
    inner = RiverLearner(tree.HoeffdingTreeClassifier(grace_period=50))
    stream = list(synth.SEA(variant=1, seed=3).take(1500))
    accuracy = evaluate.progressive_val_score(stream, ToRiver(inner), metrics.Accuracy())
    direct = evaluate.progressive_val_score(
        stream, tree.HoeffdingTreeClassifier(grace_period=50), metrics.Accuracy()
    )
    # River skips its first prediction (an empty dict), we predict uniform: same learning
    assert accuracy.get() == pytest.approx(direct.get(), abs=1 / 1000)
