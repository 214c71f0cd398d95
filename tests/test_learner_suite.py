"""The shared learner suite: the same checks for every registered learner and wrapper.

Each learner comes from ``tests/learner_cases.py`` (one ``Case`` per registry name; see the
docstring there for how to add one) and is checked for every task its case lists.
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from learner_cases import CASES, CLASSES, HAS_TORCH, N_FEATURES, N_LEARN, easy_data

from adaptloop.learners import Learner, is_classifier, registry, states_equal

PAIRS = [(name, task) for name, case in sorted(CASES.items()) for task in case.tasks]
BATCH = 48


@pytest.fixture(params=PAIRS, ids=[f"{name}-{task}" for name, task in PAIRS])
def spec(request):
    name, task = request.param
    case = CASES[name]
    if case.needs_torch and not HAS_TORCH:
        pytest.skip("needs PyTorch")
    return name, task, case


def make(spec):
    _, task, case = spec
    return case.make(task)


def feed(learner, X, y, batch=BATCH):
    for start in range(0, len(X), batch):
        learner.learn(X[start : start + batch], y[start : start + batch])


def predictions(learner, X):
    """Everything the learner says about X (predict, and predict_proba for classifiers)."""
    out = [learner.predict(X)]
    if is_classifier(learner):
        out.append(learner.predict_proba(X))
    return out


def same_predictions(a, b) -> bool:
    return all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))


def score(learner, task, X, y) -> float:
    """Accuracy for classifiers, R^2 for regressors."""
    pred = learner.predict(X)
    if task == "regression":
        return 1.0 - float(np.mean((pred - y) ** 2) / np.var(y))
    return float(np.mean(pred == y))


# -- coverage ----------------------------------------------------------------------------------
def test_every_registered_learner_has_a_case():
    missing = sorted(set(registry.names()) - set(CASES))
    assert not missing, (
        f"registered learners without a case in tests/learner_cases.py: {missing} "
        "(add one: see the docstring of learner_cases.py)"
    )


def test_cases_name_registered_learners():
    assert set(CASES) <= set(registry.names())


# -- protocol and outputs -----------------------------------------------------------------------
def test_protocol_and_task(spec):
    _, task, _ = spec
    learner = make(spec)
    assert isinstance(learner, Learner)
    assert is_classifier(learner) == (task != "regression")
    if task != "regression":
        assert learner.n_classes == CLASSES[task]


def test_outputs_shapes_and_types(spec):
    _, task, _ = spec
    learner = make(spec)
    X, y = easy_data(task, 200)
    for fitted in (False, True):
        if fitted:
            feed(learner, X, y)
        pred = learner.predict(X[:7])
        assert pred.shape == (7,)
        if task == "regression":
            assert pred.dtype == np.float32
            assert np.isfinite(pred).all()
            continue
        k = CLASSES[task]
        assert pred.dtype == np.int64
        assert ((pred >= 0) & (pred < k)).all()
        proba = learner.predict_proba(X[:7])
        assert proba.shape == (7, k)
        assert np.issubdtype(proba.dtype, np.floating)
        assert (proba >= 0).all()
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)


def test_batch_of_one(spec):
    _, task, _ = spec
    learner = make(spec)
    X, y = easy_data(task, 60)
    assert learner.predict(X[:1]).shape == (1,)
    feed(learner, X, y, batch=1)
    assert learner.predict(X[:1]).shape == (1,)
    if task != "regression":
        assert learner.predict_proba(X[:1]).shape == (1, CLASSES[task])


LEARNING_PAIRS = [(name, task) for name, task in PAIRS if CASES[name].learns]


@pytest.mark.parametrize(
    "spec",
    [(name, task, CASES[name]) for name, task in LEARNING_PAIRS],
    ids=[f"{name}-{task}" for name, task in LEARNING_PAIRS],
)
def test_learning_improves_the_score(spec):
    """Every case that can learn the easy problem does (cases with ``learns=False``, such as the
    persistence forecast, are left out by design)."""
    _, task, case = spec
    if case.needs_torch and not HAS_TORCH:
        pytest.skip("needs PyTorch")
    X, y = easy_data(task, N_LEARN + 300)
    X_test, y_test = X[N_LEARN:], y[N_LEARN:]
    learner = make(spec)
    before = score(learner, task, X_test, y_test)
    feed(learner, X[:N_LEARN], y[:N_LEARN])
    after = score(learner, task, X_test, y_test)
    assert after >= case.min_score, f"score {after:.3f} after learning (before: {before:.3f})"
    assert after > before + 0.1


# -- determinism, state, clone ------------------------------------------------------------------
def test_same_seed_same_predictions(spec):
    _, task, case = spec
    X, y = easy_data(task, 240)
    a, b = make(spec), make(spec)
    feed(a, X, y)
    feed(b, X, y)
    assert same_predictions(predictions(a, X), predictions(b, X))
    if case.exact_states:
        assert states_equal(a.state_dict(), b.state_dict())


def test_state_dict_round_trip(spec):
    _, task, _ = spec
    X, y = easy_data(task, 288)
    a = make(spec)
    feed(a, X[:144], y[:144])
    state = a.state_dict()
    saved = copy.deepcopy(state)
    pickle.loads(pickle.dumps(state))  # plain, picklable values

    b = make(spec)
    b.load_state_dict(pickle.loads(pickle.dumps(state)))
    assert same_predictions(predictions(a, X), predictions(b, X))

    # the restored learner goes on exactly as the original would
    feed(a, X[144:], y[144:])
    feed(b, X[144:], y[144:])
    assert same_predictions(predictions(a, X), predictions(b, X))
    # the state handed out earlier is a snapshot, not a view of the live learner
    assert states_equal(state, saved)


def test_load_state_dict_into_a_fitted_learner_restores_it(spec):
    _, task, _ = spec
    X, y = easy_data(task, 240)
    a = make(spec)
    feed(a, X[:96], y[:96])
    state = a.state_dict()
    expected = predictions(a, X)
    feed(a, X[96:], y[96:])
    a.load_state_dict(state)
    assert same_predictions(predictions(a, X), expected)


def test_clone_is_unfitted_with_the_same_parameters(spec):
    _, task, _ = spec
    X, y = easy_data(task, 240)
    learner = make(spec)
    fresh = make(spec)
    feed(learner, X, y)
    before = predictions(learner, X)
    clone = learner.clone()
    assert type(clone) is type(learner)
    assert repr(clone) == repr(learner)
    assert same_predictions(predictions(clone, X), predictions(fresh, X))
    if spec[2].exact_states:
        assert states_equal(clone.state_dict(), fresh.state_dict())
    assert same_predictions(predictions(learner, X), before)  # cloning leaves it alone
    # and the clone learns like a fresh learner
    feed(clone, X, y)
    feed(fresh, X, y)
    assert same_predictions(predictions(clone, X), predictions(fresh, X))


def test_predicting_changes_nothing(spec):
    _, task, case = spec
    X, y = easy_data(task, 144)
    learner = make(spec)

    def check(state):
        if case.exact_states:
            assert states_equal(learner.state_dict(), state)
        else:  # what was learned did not change: the saved state predicts the same
            restored = make(spec)
            restored.load_state_dict(state)
            assert same_predictions(predictions(restored, X), predictions(learner, X))

    state = learner.state_dict()
    predictions(learner, X)
    check(state)
    feed(learner, X, y)
    state = learner.state_dict()
    predictions(learner, X)
    predictions(learner, X[:1])
    check(state)


# -- bad input ----------------------------------------------------------------------------------
def bad_batches(task):
    """(description, X, y, pattern of the expected message) for batches a learner must refuse."""
    X, y = easy_data(task, 8, seed=1)
    nan, inf = X.copy(), X.copy()
    nan[2, 1] = np.nan
    inf[5, 0] = np.inf
    cases = [
        ("too few features", X[:, :2], y, "features"),
        ("too many features", np.hstack([X, X[:, :1]]), y, "features"),
        ("NaN", nan, y, "NaN"),
        ("inf", inf, y, "inf"),
        ("string X", X.astype(str), y, "dtype"),
        ("object X", X.astype(object), y, "dtype"),
        ("1-d X", X[:, 0], y, "dimension"),
        ("empty batch", X[:0], y[:0], "empty"),
        ("list X", X.tolist(), y, "numpy array"),
        ("y length", X, y[:-1], "labels for"),
        ("2-d y", X, y[:, None], "dimension"),
        ("string y", X, y.astype(str), "dtype|numeric"),
    ]
    if task == "regression":
        y_nan = y.copy()
        y_nan[0] = np.nan
        cases.append(("NaN y", X, y_nan, "NaN"))
    else:
        k = CLASSES[task]
        unseen, negative = y.copy(), y.copy()
        unseen[3] = k
        negative[0] = -1
        cases += [
            ("unseen label", X, unseen, "unknown label"),
            ("negative label", X, negative, "unknown label"),
            ("non-integer label", X, y + 0.5, "integer"),
        ]
    return cases


def test_bad_batches_are_refused_and_change_nothing(spec):
    _, task, _ = spec
    X, y = easy_data(task, 144)
    learner = make(spec)
    feed(learner, X, y)
    state = learner.state_dict()
    expected = predictions(learner, X)
    for what, X_bad, y_bad, pattern in bad_batches(task):
        with pytest.raises(ValueError, match=pattern):
            learner.learn(X_bad, y_bad)
        assert states_equal(learner.state_dict(), state), f"state changed by refused {what}"
    assert same_predictions(predictions(learner, X), expected)


def test_bad_batches_before_any_learning_change_nothing(spec):
    _, task, _ = spec
    learner = make(spec)
    state = learner.state_dict()
    for what, X_bad, y_bad, pattern in bad_batches(task):
        if what in ("too few features", "too many features"):
            continue  # any feature count is fine before the first batch
        with pytest.raises(ValueError, match=pattern):
            learner.learn(X_bad, y_bad)
        assert states_equal(learner.state_dict(), state), f"state changed by refused {what}"
    X, y = easy_data(task, 48)
    learner.learn(X, y)  # and it still learns afterwards


def test_bad_features_are_refused_when_predicting(spec):
    _, task, _ = spec
    X, y = easy_data(task, 96)
    learner = make(spec)
    feed(learner, X, y)
    state = learner.state_dict()
    methods = [learner.predict] + ([learner.predict_proba] if task != "regression" else [])
    for what, X_bad, _, pattern in bad_batches(task)[:9]:
        for method in methods:
            with pytest.raises(ValueError, match=pattern):
                method(X_bad)
        assert states_equal(learner.state_dict(), state), f"state changed by {what}"


def test_feature_count_is_fixed_by_the_first_batch(spec):
    _, task, _ = spec
    X, y = easy_data(task, 48)
    learner = make(spec)
    learner.learn(X, y)
    with pytest.raises(ValueError, match=f"expected {N_FEATURES}"):
        learner.predict(X[:, :2])
