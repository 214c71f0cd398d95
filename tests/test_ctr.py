"""CTRClassifier: learns field interactions, hidden representation, codes checks, state, seeds."""

from __future__ import annotations

import numpy as np
import pytest

from adaptloop.learners import states_equal
from adaptloop.learners.models.ctr import CTRClassifier
from adaptloop.streams.clicks import clicks

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine, two threads contend and run 50x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def interaction_data(n: int = 1500, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.integers(0, 12, n), rng.integers(0, 4, n), rng.normal(size=n)])
    y = ((X[:, 0] % 3 == 0) ^ (X[:, 1] == 2)).astype(np.int64)
    return X.astype(np.float32), y


def small(**params) -> CTRClassifier:
    defaults = dict(categorical=(0, 1), embedding_dim=4, hidden=(16,), lr=0.02, epochs=4)
    return CTRClassifier(**{**defaults, "batch_size": 64, **params})


def test_learns_an_interaction_of_two_fields_and_exposes_its_hidden_layer():
    X, y = interaction_data()
    model = small()
    for start in range(0, len(X), 250):
        model.learn(X[start : start + 250], y[start : start + 250])
    assert (model.predict(X) == y).mean() > 0.95
    hidden = model.hidden_representation(X[:5])
    assert hidden.shape == (5, 2 * 4 + 1 + 16) and hidden.dtype == np.float32


def test_click_stream_auc_above_chance():
    from adaptloop.evaluation.metrics import roc_auc

    stream = clicks(n=16_000, n_users=100, n_items=60, seed=1)
    info = stream.info  # categorical fields by name, as the stream names them
    model = CTRClassifier(
        categorical=info.categorical,
        feature_names=info.feature_names,
        embedding_dim=4,
        hidden=(16,),
        lr=0.02,
        epochs=2,
        batch_size=64,
    )
    batches = list(stream.iter_batches(1000))
    for X, y in batches[:12]:
        model.learn(X, y)
    X = np.vstack([b[0] for b in batches[12:]])
    y = np.concatenate([b[1] for b in batches[12:]])
    assert roc_auc(y, model.predict_proba(X)[:, 1]) > 0.62  # chance: 0.5


def test_codes_are_checked_and_refused_batches_change_nothing():
    X, y = interaction_data(200)
    model = small()
    model.learn(X, y)
    before = model.state_dict()
    for bad in (X.copy(), X.copy()):
        bad[3, 0] = -1.0
        with pytest.raises(ValueError, match="column 0 is categorical"):
            model.learn(bad, y)
    bad = X.copy()
    bad[0, 1] = 0.5
    with pytest.raises(ValueError, match="column 1"):
        model.predict(bad)
    assert states_equal(model.state_dict(), before)
    for params, match in [
        ({"categorical": (0, 0)}, r"^CTRClassifier\.categorical: lists a column twice"),
        ({"categorical": "0"}, r"^CTRClassifier\.categorical: "),
        ({"vocab_size": 0}, r"^CTRClassifier\.vocab_size: must be >= 1, got 0"),
        ({"n_cross": -1}, r"^CTRClassifier\.n_cross: "),
        ({"hidden": (0,)}, r"^CTRClassifier\.hidden\[0\]: "),
    ]:
        with pytest.raises(ValueError, match=match):
            small(**params)
    with pytest.raises(ValueError, match="does not exist"):
        small(categorical=(5,)).learn(X, y)


def test_large_codes_wrap_around_the_vocabulary():
    X, y = interaction_data(300)
    model = small(vocab_size=16)
    X[:, 0] += 1_000_000  # hashing trick: no error, codes modulo vocab_size
    model.learn(X, y)
    assert np.isfinite(model.predict_proba(X)).all()


def test_same_seed_same_model_and_state_round_trip():
    X, y = interaction_data(400)
    a, b = small(seed=3), small(seed=3)
    a.learn(X, y)
    b.learn(X, y)
    assert states_equal(a.state_dict(), b.state_dict())
    c = small(seed=4)
    c.learn(X, y)
    assert not states_equal(a.state_dict(), c.state_dict())
    restored = a.clone()
    restored.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(restored.predict_proba(X), a.predict_proba(X))
    restored.learn(X, y)
    a.learn(X, y)
    assert states_equal(restored.state_dict(), a.state_dict())
    with pytest.raises(ValueError, match="does not fit"):
        small(embedding_dim=8).load_state_dict(a.state_dict())


def test_categorical_columns_by_name_and_numeric_columns_never_hashed():
    X, y = interaction_data(200)
    names = ("user", "item")
    by_name = small(categorical=("item",), feature_names=names)
    by_index = small(categorical=(1,))
    by_name.learn(X, y)
    by_index.learn(X, y)
    assert states_equal(by_name.state_dict(), by_index.state_dict())
    plain = small(categorical=None)  # not told: every column numeric, no embedding
    plain.learn(X, y)
    embedded = by_index.hidden_representation(X[:1]).shape[1]
    assert plain.hidden_representation(X[:1]).shape[1] == embedded - 4 + 1  # item: 4 dims -> 1
    with pytest.raises(ValueError, match=r"^CTRClassifier\.categorical: unknown column 'age'"):
        small(categorical=("age",), feature_names=names)
    with pytest.raises(ValueError, match="feature_names is not given"):
        small(categorical=("item",))
