"""ErrorMemory (ReLoop2): read/write equations, both indexes, resets, state, prequential, TOML."""

from __future__ import annotations

import numpy as np
import pytest

from adaptloop.config import build_learner, parse_experiment
from adaptloop.evaluation import prequential
from adaptloop.learners import (
    ErrorMemory,
    LinearRegression,
    LogisticRegression,
    MLPClassifier,
    Static,
    states_equal,
)
from adaptloop.learners.models.majority import MajorityClass
from adaptloop.learners.wrappers.memory_index import ExactIndex, SketchIndex
from adaptloop.streams import ArrayStream, Drift


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One torch thread: on a shared 2-core machine, two threads contend and run much slower."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def clusters(n: int, seed: int = 0, flip: bool = False):
    """Four tight clusters of 2-D points; the label is the cluster's (flipped on request)."""
    rng = np.random.default_rng(seed)
    centres = np.array([[4, 0], [0, 4], [-4, 0], [0, -4]], dtype=np.float32)
    which = rng.integers(0, 4, n)
    X = (centres[which] + rng.normal(scale=0.05, size=(n, 2))).astype(np.float32)
    y = (which % 2).astype(np.int64)
    return X, (1 - y if flip else y)


def feed(model, X, y, batch=100):
    for start in range(0, len(X), batch):
        model.learn(X[start : start + batch], y[start : start + batch])


def test_before_any_write_the_output_is_the_base_output():
    X, y = clusters(200)
    base = LogisticRegression()
    base.learn(X, y)
    model = ErrorMemory(Static(base.clone(), n_train=200))
    model.model_.learn(X, y)  # the served model, trained; the memory still empty
    assert np.array_equal(model.predict_proba(X), model.model_.predict_proba(X))


def test_read_follows_the_papers_equations():
    """Exact backend, gamma < 1 so both error terms count: compare with the formulas by hand."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(6, 3)).astype(np.float32)
    y = np.array([1, 0, 1, 1, 0, 0])
    model = ErrorMemory(
        MajorityClass(), backend="exact", k=3, capacity=10, tau=0.5, gamma=0.3, lam=0.7
    )
    model.learn(X, y)  # base before learning: uniform, so every stored yb_i is 0.5
    q = rng.normal(size=(4, 3)).astype(np.float32)
    seen = X.astype(np.float64)  # keys: the features, standardised by the keys written
    mean, std = seen.mean(axis=0), seen.std(axis=0)
    keys, query = (X - mean) / std, (q - mean) / std
    sims = (query @ keys.T) / np.outer(np.linalg.norm(query, axis=1), np.linalg.norm(keys, axis=1))
    top = np.argsort(-sims, axis=1)[:, :3]
    s = np.take_along_axis(sims, top, 1)
    a = np.exp(s / 0.5) / np.exp(s / 0.5).sum(axis=1, keepdims=True)
    y_bar = (a * y[top]).sum(axis=1)
    yb_bar = 0.5
    y_base = model.model_.predict_proba(q)[:, 1]  # 0.5 after learning three 1s and three 0s
    err = 0.3 * (y_bar - y_base) + 0.7 * (y_bar - yb_bar)
    np.testing.assert_allclose(model.predict_proba(q)[:, 1], y_base + 0.7 * err, atol=1e-5)


def test_sketch_agrees_with_exact_top_k_on_clustered_keys():
    X, y = clusters(2000, seed=2)
    sketch = ErrorMemory(MajorityClass(), backend="sketch", k=4, n_bits=8, lam=1.0)
    exact = ErrorMemory(MajorityClass(), backend="exact", k=4, capacity=2000, lam=1.0)
    feed(sketch, X, y)
    feed(exact, X, y)
    Xq, yq = clusters(300, seed=3)
    p_sketch, p_exact = sketch.predict_proba(Xq)[:, 1], exact.predict_proba(Xq)[:, 1]
    assert np.abs(p_sketch - p_exact).max() < 0.05
    assert (sketch.predict(Xq) == yq).mean() > 0.99  # the base alone predicts one class


def test_memory_recovers_a_frozen_base_after_a_sudden_flip():
    X1, y1 = clusters(3000, seed=4)
    X2, y2 = clusters(3000, seed=5, flip=True)
    stream = ArrayStream(np.vstack([X1, X2]), np.r_[y1, y2], drifts=[Drift(3000)])
    frozen = Static(LogisticRegression(lr=0.1), n_train=1000)
    learners = {
        # the base as the memories see it (batches of 100; alone, Static around a logistic
        # regression would run exact test-then-train and train another model)
        "frozen": ErrorMemory(frozen.clone(), lam=0.0),
        "memory": ErrorMemory(frozen.clone(), n_bits=8, lam=0.9, reset_every=3000),
        "exact": ErrorMemory(frozen.clone(), backend="exact", capacity=200, lam=0.9),
    }
    result = prequential(stream, learners, batch_size=100, after=1000, window=1000)
    after = {d["learner"]: d["after"] for d in result.drifts}
    assert after["frozen"] < 0.6  # the base keeps half of the clusters wrong
    assert after["memory"] > after["frozen"] + 0.3
    assert after["exact"] > after["frozen"] + 0.3


def test_keys_come_from_the_hidden_representation_through_wrappers():
    X, y = clusters(300)
    mlp = MLPClassifier(hidden=(5,), seed=0)
    frozen = Static(mlp, n_train=200)
    assert not hasattr(Static(LogisticRegression()), "hidden_representation")
    feed(frozen, X, y)
    np.testing.assert_array_equal(
        frozen.hidden_representation(X[:4]), frozen.model_.hidden_representation(X[:4])
    )
    with pytest.raises(ValueError, match="features"):
        frozen.hidden_representation(np.ones((2, 3), dtype=np.float32))
    model = ErrorMemory(Static(mlp.clone(), n_train=200), backend="exact")
    feed(model, X, y)
    assert model.memory_.dim == 5  # the hidden width, not the 2 input features
    plain = ErrorMemory(LogisticRegression())
    feed(plain, X, y)
    assert plain.memory_.dim == 2


def test_reset_every_clears_the_memory_and_none_keeps_it():
    X, y = clusters(1000)
    kept = ErrorMemory(LogisticRegression(), backend="exact", capacity=5000)
    reset = ErrorMemory(LogisticRegression(), backend="exact", capacity=5000, reset_every=300)
    feed(kept, X, y)
    feed(reset, X, y)
    assert len(kept.memory_) == 1000
    assert reset.n_resets_ == 3 and len(reset.memory_) == 100  # cleared after 300, 600, 900


def test_multiclass_probabilities_and_regression_values_are_corrected():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(600, 2)).astype(np.float32)
    y3 = np.digitize(X[:, 0], [-0.5, 0.5]).astype(np.int64)
    model = ErrorMemory(MajorityClass(n_classes=3), n_bits=6)
    feed(model, X, y3)
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (model.predict(X) == y3).mean() > 0.6  # the base alone: the majority class only
    yr = (3.0 * X[:, 0]).astype(np.float32)
    frozen = Static(LinearRegression(), n_train=1)
    reg = ErrorMemory(frozen, backend="exact", capacity=600, lam=1.0, tau=0.05)
    feed(reg, X, yr)
    pred = reg.predict(X)
    assert pred.dtype == np.float32
    base_mae = np.abs(reg.model_.predict(X) - yr).mean()
    assert np.abs(pred - yr).mean() < 0.5 * base_mae


@pytest.mark.parametrize("backend", ["sketch", "exact"])
def test_state_round_trip_keeps_the_memory(backend):
    X, y = clusters(500)
    model = ErrorMemory(LogisticRegression(), backend=backend, n_bits=6, capacity=300)
    feed(model, X, y)
    state = model.state_dict()
    assert state["learned"]["memory"] is not None
    copy = model.clone()
    copy.load_state_dict(state)
    assert states_equal(copy.state_dict(), state)
    np.testing.assert_array_equal(copy.predict_proba(X), model.predict_proba(X))
    feed(copy, X[:100], y[:100])
    feed(model, X[:100], y[:100])
    assert states_equal(copy.state_dict(), model.state_dict())


def test_bad_state_and_parameters_are_refused():
    model = ErrorMemory(LogisticRegression())
    feed(model, *clusters(200))
    state = model.state_dict()
    state["learned"]["memory"]["table"] = np.zeros((3, 3), dtype=np.float32)
    before = model.state_dict()
    with pytest.raises(ValueError, match="sketch state"):
        model.load_state_dict(state)
    assert states_equal(model.state_dict(), before)
    for name, value in [
        ("backend", "faiss"),
        ("k", 0),
        ("n_bits", 30),
        ("tau", 0.0),
        ("gamma", 1.5),
        ("lam", -1.0),
        ("reset_every", 0),
        ("prior_count", -1.0),
        ("frozen_keys", "yes"),
    ]:
        with pytest.raises(ValueError, match=rf"^ErrorMemory\.{name}: "):
            ErrorMemory(LogisticRegression(), **{name: value})


def test_indexes_write_and_read_batches_of_any_size():
    rng = np.random.default_rng(7)
    keys = rng.normal(size=(5, 3)).astype(np.float32)
    values = rng.random((5, 2)).astype(np.float32)
    sketch = SketchIndex(3, 2, k=2, n_bits=3)
    sketch.write(keys, values)
    sketch.write(keys[:1], values[:1])
    assert len(sketch) == 6
    exact = ExactIndex(3, 2, k=8, capacity=4)
    _, _, present = exact.read(keys)
    assert not present.any()
    exact.write(keys[:3], values[:3])
    exact.write(keys[3:], values[3:])
    _, cand_values, present = exact.read(keys[:2])
    assert present.sum(axis=1).tolist() == [4, 4]  # fewer stored entries than k
    state = exact.state()  # FIFO: the 5th key overwrote the 1st, the next slot is 1
    np.testing.assert_array_equal(state["keys"], keys[[4, 1, 2, 3]])
    assert state["position"] == 1


def test_experiment_files_build_an_error_memory():
    text = """
seed = 3
[stream]
kind = "sea"
n = 2000
[learners.reloop2]
kind = "error_memory"
base = { kind = "static", base = { kind = "mlp", hidden = [8] }, n_train = 500 }
backend = "exact"
capacity = 500
reset_every = 1000
"""
    experiment = parse_experiment(text)
    from adaptloop.config import build_stream

    stream = build_stream(experiment)
    model = build_learner(experiment, "reloop2", stream.info)
    assert isinstance(model, ErrorMemory)
    assert model.seed == 3 and model.reset_every == 1000
    result = prequential(stream, {"reloop2": model}, batch_size=250)
    assert result.summary["reloop2"]["n_samples"] == 2000
    assert model.memory_.dim == 8


def test_sketch_read_weighs_buckets_by_count_and_shrinks_lam_by_samples_behind_it():
    """Attention n_i exp(s_i / tau); lam_q = lam * n_q / (n_q + prior_count), n_q = sum a_i n_i."""
    rng = np.random.default_rng(8)
    X = rng.normal(size=(300, 3)).astype(np.float32)
    y = (rng.random(300) < 0.3).astype(np.int64)
    model = ErrorMemory(MajorityClass(), k=4, n_bits=3, tau=0.5, gamma=0.4, lam=0.8)
    feed(model, X, y)
    q = rng.normal(size=(50, 3)).astype(np.float32)
    np.testing.assert_array_equal(model.key_representation(q), q)  # no hidden layer
    seen = X.astype(np.float64)  # standardised by the running statistics of the keys written
    query = ((q - seen.mean(axis=0)) / seen.std(axis=0)).astype(np.float32)
    cand_keys, cand_values, counts = model.memory_.read(query)
    assert counts.max() > 5 * max(counts[counts > 0].min(), 1)  # buckets of unequal counts
    sims = np.einsum("nd,nkd->nk", query, cand_keys) / (
        np.linalg.norm(query, axis=1)[:, None] * np.linalg.norm(cand_keys, axis=2)
    )
    w = np.where(counts > 0, counts * np.exp(sims / 0.5), 0.0)
    a = w / w.sum(axis=1, keepdims=True)
    y_bar, yb_bar = (a * cand_values[..., 0]).sum(1), (a * cand_values[..., 1]).sum(1)
    y_base = model.model_.predict_proba(q)[:, 1]
    n_q = (a * counts).sum(axis=1)
    lam = 0.8 * n_q / (n_q + 50.0)
    err = 0.4 * (y_bar - y_base) + 0.6 * (y_bar - yb_bar)
    np.testing.assert_allclose(model.predict_proba(q)[:, 1], y_base + lam * err, atol=1e-5)


def test_a_few_samples_barely_move_the_output_until_the_memory_fills():
    X, y = clusters(4000, seed=9, flip=True)
    frozen = Static(LogisticRegression(lr=0.1), n_train=1)
    shrunk = ErrorMemory(frozen, n_bits=6, lam=1.0, prior_count=50)
    plain = ErrorMemory(frozen, n_bits=6, lam=1.0, prior_count=0)
    for model in (shrunk, plain):
        model.learn(X[:1], y[:1])  # the base learns one sample and freezes
        model.learn(X[1:9], y[1:9])  # eight samples in memory
    base = shrunk.model_.predict_proba(X[9:200])[:, 1]
    moved_shrunk = np.abs(shrunk.predict_proba(X[9:200])[:, 1] - base).mean()
    moved_plain = np.abs(plain.predict_proba(X[9:200])[:, 1] - base).mean()
    assert moved_shrunk < 0.25 * moved_plain
    for model in (shrunk, plain):
        feed(model, X[9:], y[9:])  # thousands of samples: the shrinkage fades
    acc = [(m.predict(X[:500]) == y[:500]).mean() for m in (shrunk, plain)]
    assert acc[0] > 0.99 and acc[1] > 0.99


def test_keys_stay_fixed_between_resets_while_the_base_learns():
    X, y = clusters(1200, seed=10)
    model = ErrorMemory(MLPClassifier(hidden=(6,), lr=0.05, seed=0), reset_every=500)
    live = ErrorMemory(
        MLPClassifier(hidden=(6,), lr=0.05, seed=0), reset_every=500, frozen_keys=False
    )
    probe = X[:20]
    feed(model, X[:100], y[:100])
    feed(live, X[:100], y[:100])
    keys_after_first = model.key_representation(probe)
    np.testing.assert_array_equal(keys_after_first, model.key_model_.hidden_representation(probe))
    feed(model, X[100:400], y[100:400])  # the base learns; no reset yet
    feed(live, X[100:400], y[100:400])
    np.testing.assert_array_equal(model.key_representation(probe), keys_after_first)
    assert not np.allclose(model.model_.hidden_representation(probe), keys_after_first)
    np.testing.assert_array_equal(
        live.key_representation(probe), live.model_.hidden_representation(probe)
    )
    feed(model, X[400:600], y[400:600])  # reset at 500: keys from the base as it is then
    assert model.n_resets_ == 1
    np.testing.assert_array_equal(
        model.key_representation(probe), model.key_model_.hidden_representation(probe)
    )
    assert not np.allclose(model.key_representation(probe), keys_after_first)
    copy = model.clone()  # the key copy survives a state round trip
    copy.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(copy.key_representation(probe), model.key_representation(probe))
    frozen = ErrorMemory(Static(MLPClassifier(hidden=(6,)), n_train=300))  # no resets: live keys
    feed(frozen, X[:400], y[:400])
    assert frozen.key_model_ is None


@pytest.mark.parametrize("n_ids", [4, 64, 5000, 10**6])  # long runs, short runs, none
def test_sketch_write_sums_rows_sharing_a_bucket(n_ids):
    rng = np.random.default_rng(11)
    index = SketchIndex(dim=3, n_values=2, k=2, n_bits=20)
    keys = rng.normal(size=(300, 3)).astype(np.float32)
    values = rng.random((300, 2)).astype(np.float32)
    offsets = np.arange(2) * 2**20  # table t's buckets start at t * 2**n_bits
    ids = rng.integers(0, n_ids, (300, 2)) + offsets  # force chosen collisions
    index.addresses = lambda _: ids  # type: ignore[method-assign]
    index.write(keys, values)
    expected = np.zeros_like(index.table)
    rows = np.hstack([keys, values, np.ones((300, 1), np.float32)])
    for t in range(2):
        np.add.at(expected, ids[:, t], rows)
    np.testing.assert_allclose(index.table, expected, rtol=1e-5, atol=1e-5)


def test_base_learns_false_writes_the_memory_and_leaves_the_base():
    X = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    base = MajorityClass()
    base.learn(X, np.array([0, 0]))
    model = ErrorMemory(base, backend="exact", k=2, capacity=10, base_learns=False)
    before = model.model_.predict_proba(X).tolist()
    model.learn(X, np.array([1, 1]))
    assert model.model_.predict_proba(X).tolist() == before  # the base has not moved
    assert len(model.memory_) == 2 and (model.predict_proba(X)[:, 1] > 0.5).all()
