"""Online encoders and pipelines (adaptloop.features), checked against River's numbers."""

from __future__ import annotations

import numpy as np
import pytest
from river import linear_model, preprocessing

from adaptloop.config.run import run_experiment
from adaptloop.config.schema import ExperimentError, parse_experiment
from adaptloop.features import FeatureHasher, OneHotEncoder, StandardScaler, pipeline
from adaptloop.learners.base import states_equal
from adaptloop.learners.models.sparse_linear import SparseLogisticRegression

NAMES = ["user", "item"]


def log(n=3_000, seed=0):
    rng = np.random.default_rng(seed)
    user = 1 + np.minimum(np.arange(n) // 3, rng.integers(0, 1 + np.arange(n) // 3))
    item = 1 + rng.integers(0, 40, n)
    y = ((user % 3 == 0) ^ (item % 4 == 0)).astype(np.int64)
    return np.column_stack([user, item]).astype(np.float32), y


def exact(model, X, y):
    """Test-then-train sample by sample inside one call."""
    return model.test_then_train(X, X, y, np.arange(1, len(y) + 1), proba=True)


def river_probabilities(X, y, encoder):
    model = encoder | linear_model.LogisticRegression()
    out = []
    for row, label in zip(X, y, strict=True):
        x = {n: str(int(v)) for n, v in zip(NAMES, row, strict=True)}
        out.append(model.predict_proba_one(x).get(True, 0.0))
        model.learn_one(x, bool(label))
    return np.array(out)


@pytest.mark.parametrize("batch", [1, 7, 256])
def test_one_hot_logistic_equals_river_sample_by_sample(batch):
    X, y = log()
    ours = pipeline(OneHotEncoder(), SparseLogisticRegression(), feature_names=NAMES)
    proba = np.concatenate(
        [exact(ours, X[i : i + batch], y[i : i + batch])[:, 1] for i in range(0, len(X), batch)]
    )
    np.testing.assert_allclose(
        proba, river_probabilities(X, y, preprocessing.OneHotEncoder(drop_zeros=True)), atol=1e-12
    )


def test_label_delay_equals_river_fed_late():
    X, y = log(1_000)
    delay = 25
    learn_at = np.minimum(np.arange(len(y)) + 1 + delay, len(y))  # label j after prediction j+d
    ours = OneHotEncoder() | SparseLogisticRegression()
    ours.bind_features(NAMES)
    proba = np.concatenate(
        [
            ours.test_then_train(
                X[lo : lo + 100],
                X[lo : lo + 100],
                y[lo : lo + 100],
                np.clip(learn_at[lo : lo + 100] - lo, 0, 100),
                proba=True,
            )[:, 1]
            for lo in range(0, 1_000, 100)
        ]
    )
    model = preprocessing.OneHotEncoder(drop_zeros=True) | linear_model.LogisticRegression()
    rows = [{n: str(int(v)) for n, v in zip(NAMES, row, strict=True)} for row in X]
    expected, learned = [], 0
    for i, x in enumerate(rows):
        while learned < len(y) and min(learned + 1 + delay, (learned // 100 + 1) * 100) <= i:
            model.learn_one(rows[learned], bool(y[learned]))
            learned += 1
        expected.append(model.predict_proba_one(x).get(True, 0.0))
    np.testing.assert_allclose(proba, expected, atol=1e-12)


def test_hashing_logistic_equals_river():
    X, y = log(1_500)
    ours = FeatureHasher(n_features=64, seed=3) | SparseLogisticRegression()
    ours.bind_features(NAMES)
    proba = exact(ours, X, y)[:, 1]
    river = river_probabilities(X, y, preprocessing.FeatureHasher(n_features=64, seed=3))
    np.testing.assert_allclose(proba, river, atol=1e-12)


def test_scaler_matches_river_and_state_round_trips():
    rng = np.random.default_rng(1)
    X = rng.normal(3, 2, size=(50, 2)).astype(np.float32)
    ours, river = StandardScaler(columns=(0, 1)), preprocessing.StandardScaler()
    for row in X:
        ours.learn(row[None])
        river.learn_one({"a": float(row[0]), "b": float(row[1])})
    expected = river.transform_one({"a": float(X[0, 0]), "b": float(X[0, 1])})
    np.testing.assert_allclose(ours.transform(X[:1])[0], [expected["a"], expected["b"]], rtol=1e-5)
    copy = ours.clone()
    copy.bind(None, ())
    copy.index_ = ours.index_
    copy.load_state_dict(ours.state_dict())
    np.testing.assert_array_equal(copy.transform(X), ours.transform(X))


def test_pipeline_state_clone_and_growth():
    X, y = log(600)
    model = OneHotEncoder() | SparseLogisticRegression()
    model.bind_features(NAMES)
    model.learn(X[:300], y[:300])
    width = model.steps[0].width
    model.learn(X[300:], y[300:])
    assert model.steps[0].width > width  # new users got new columns
    other = model.clone()
    other.load_state_dict(model.state_dict())
    assert states_equal(other.state_dict(), model.state_dict())
    np.testing.assert_array_equal(other.predict_proba(X), model.predict_proba(X))


def test_dense_learner_needs_a_fixed_width():
    from adaptloop.learners.models.linear import LogisticRegression

    with pytest.raises(ValueError, match="max_categories"):
        pipeline(OneHotEncoder(), LogisticRegression(), feature_names=NAMES, categorical=NAMES)
    model = pipeline(OneHotEncoder(max_categories=50), LogisticRegression(), feature_names=NAMES)
    X, y = log(400)
    model.learn(X, y)
    assert model.predict(X).shape == (400,)


def test_steps_in_an_experiment_file_with_drifts_and_slots(tmp_path):
    X, y = log(2_000)
    lines = ["user,item,price,click"] + [
        f"u{int(u)},i{int(i)},{k / 100:.2f},{c}"
        for k, ((u, i), c) in enumerate(zip(X, y, strict=True))
    ]
    path = tmp_path / "log.csv"
    path.write_text("\n".join(lines) + "\n")
    text = f"""
[stream]
kind = "csv"
path = "{path}"
target = "click"
categorical = ["user", "item"]
block_size = 4_096
drifts = [{{ at = 1_000, width = 1 }}]
batch_size = 100
[learners.onehot]
kind = "sparse_logistic"
steps = [{{ kind = "one_hot" }}, {{ kind = "standard_scaler" }}]
[learners.hashed]
kind = "logistic"
steps = [{{ kind = "hashing", columns = ["user", "item"], n_features = 256 }}]
[evaluation]
metrics = ["accuracy"]
slots = 4
window = 200
after = 200
"""
    result = run_experiment(parse_experiment(text, "t.toml"))
    summary = result.summary_json()
    assert summary["stream"]["categories"]["user"]["new"] > 0
    assert [d["position"] for d in result.drifts][:1] == [1_000]
    assert len(summary["learners"]["onehot"]["slots"]) == 4
    assert "slot" in result.records.column_names
    assert any("per slot" in t.title for t in result.tables())
    with pytest.raises(ExperimentError, match=r"learners.x.steps\[0\].kind: unknown encoder"):
        parse_experiment(
            text.replace('kind = "one_hot"', 'kind = "onehot"').replace("onehot]", "x]"), "t.toml"
        )


def test_adaptloop_list_shows_the_encoders_and_the_pipeline():
    from typer.testing import CliRunner

    from adaptloop.cli import app

    result = CliRunner().invoke(app, ["list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name in (
        "encoders",
        "one_hot",
        "hashing",
        "standard_scaler",
        "pipeline",
        "sparse_logistic",
    ):
        assert name in result.output


def test_test_then_train_takes_empty_parts_as_label_delay_gives_them():
    X, y = log(200)
    a = OneHotEncoder() | SparseLogisticRegression()
    a.bind_features(NAMES)
    b = a.clone()
    b.bind_features(NAMES)
    none = np.zeros(0, dtype=np.int64)
    first = a.test_then_train(X[:100], X[:0], y[:0], none, proba=True)  # no label yet
    a.test_then_train(X[:0], X[:100], y[:100], np.zeros(100, dtype=np.int64))  # labels only
    b.learn(X[:100], y[:100])
    np.testing.assert_array_equal(first[:, 1], 0.5)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
