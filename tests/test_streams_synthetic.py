"""Synthetic drifting streams: reproducibility, drift composition, generators, registry."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from adaptloop.streams import (
    CHUNK,
    Drift,
    DriftStream,
    RBFConcept,
    SEAConcept,
    hyperplane,
    parse_drifts,
    rbf,
    rebatch,
    registry,
    sea,
    sigmoid,
    switch_probability,
)

FACTORIES = {
    "sea": lambda **kw: sea(**kw),
    "hyperplane": lambda **kw: hyperplane(**kw),
    "rbf": lambda **kw: rbf(n_classes=3, **kw),
}


def collect(stream, batch_size=1_000):
    Xs, ys = zip(*stream.iter_batches(batch_size), strict=True)
    return np.concatenate(Xs), np.concatenate(ys)


def concepts_of(stream, batch_size=10_000):
    return np.concatenate(list(stream.iter_concepts(batch_size)))


def sea_rule(X, threshold):
    x = X.astype(np.float64)
    return (x[:, 0] + x[:, 1] > threshold).astype(np.int64)


# -- reproducibility, shapes -----------------------------------------------------------------


@pytest.mark.parametrize("name", FACTORIES)
def test_same_seed_same_data_and_different_seed_differs(name):
    make = FACTORIES[name]
    drifts = [{"at": 3_000, "width": 500}]
    X1, y1 = collect(make(n=6_000, drifts=drifts, seed=3))
    X2, y2 = collect(make(n=6_000, drifts=drifts, seed=3))
    X3, y3 = collect(make(n=6_000, drifts=drifts, seed=4))
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(X1, X3)


@pytest.mark.parametrize("name", FACTORIES)
def test_iterating_twice_gives_the_same_data(name):
    stream = FACTORIES[name](n=5_000, drifts=[{"at": 2_000, "width": 1}])
    first, second = collect(stream), collect(stream)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


@pytest.mark.parametrize("name", FACTORIES)
def test_batch_size_does_not_change_the_data(name):
    n = CHUNK + 1_500  # crosses an internal chunk boundary
    stream = FACTORIES[name](n=n, drifts=[{"at": 4_000, "width": 2_000}])
    X_ref, y_ref = collect(stream, 256)
    for batch_size in (1, 7, 256, n + 10):
        X, y = collect(stream, batch_size)
        np.testing.assert_array_equal(X, X_ref)
        np.testing.assert_array_equal(y, y_ref)
    sizes = [len(y) for _, y in stream.iter_batches(7)]
    assert set(sizes[:-1]) == {7} and sizes[-1] == n % 7 and sum(sizes) == n


@pytest.mark.parametrize("name", FACTORIES)
def test_dtypes_shapes_and_info(name):
    stream = FACTORIES[name](n=1_000, drifts=[Drift(500, width=50)])
    info = stream.info
    X, y = collect(stream, 300)
    assert X.dtype == np.float32 and y.dtype == np.int64
    assert X.shape == (1_000, info.n_features) and y.shape == (1_000,)
    assert info.name == name and info.n_samples == 1_000
    assert info.drifts == (Drift(500, width=50),)
    assert len(info.feature_names) == info.n_features
    assert set(np.unique(y)) <= set(range(info.n_classes))
    assert info.task == ("multiclass" if name == "rbf" else "binary")
    assert np.isfinite(X).all()


def test_a_shorter_stream_is_a_prefix_of_a_longer_one():
    X_short, y_short = collect(sea(n=1_000, seed=5))
    X_long, y_long = collect(sea(n=30_000, seed=5))
    np.testing.assert_array_equal(X_short, X_long[:1_000])
    np.testing.assert_array_equal(y_short, y_long[:1_000])


def test_generators_produce_100k_samples_per_stream():
    for name, make in FACTORIES.items():
        stream = make(n=100_000, drifts=[{"at": 50_000, "width": 1}])
        assert sum(len(y) for _, y in stream.iter_batches(4_096)) == 100_000, name


# -- SEA ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("concept, threshold", [(0, 8.0), (1, 9.0), (2, 7.0), (3, 9.5)])
def test_sea_labels_follow_the_threshold_rule_without_noise(concept, threshold):
    X, y = collect(sea(n=5_000, concepts=[concept], noise=0.0))
    np.testing.assert_array_equal(y, sea_rule(X, threshold))
    assert X.min() >= 0.0 and X.max() <= 10.0


def test_sea_noise_flips_about_that_fraction_of_labels():
    X, y = collect(sea(n=20_000, concepts=[0], noise=0.1, seed=2))
    flipped = np.mean(y != sea_rule(X, 8.0))
    assert 0.09 < flipped < 0.11


def test_sea_default_concepts_cycle():
    stream = sea(n=1_000, drifts=[Drift(200), Drift(400), Drift(600), Drift(800)], noise=0.0)
    thresholds = [c.threshold for c in stream.concepts]
    assert thresholds == [8.0, 9.0, 7.0, 9.5, 8.0]
    assert stream.concepts[0] is stream.concepts[4]


# -- drift composition ---------------------------------------------------------------------------


def test_sudden_drift_switches_exactly_at_the_position():
    p = 3_000
    stream = sea(n=6_000, drifts=[{"at": p, "width": 1}], concepts=[0, 2], noise=0.0)
    X, y = collect(stream, 256)
    np.testing.assert_array_equal(y[:p], sea_rule(X[:p], 8.0))
    np.testing.assert_array_equal(y[p:], sea_rule(X[p:], 7.0))
    s = X.astype(np.float64)[:, 0] + X[:, 1]
    ambiguous = (s > 7.0) & (s <= 8.0)  # the two concepts disagree here
    assert ambiguous[:p].sum() > 50 and ambiguous[p:].sum() > 50
    ids = concepts_of(stream)
    assert (ids[:p] == 0).all() and (ids[p:] == 1).all()


def test_sudden_drift_at_50000_raises_no_warnings():
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        stream = sea(n=100_000, drifts=[{"at": 50_000, "width": 1}], concepts=[0, 1])
        ids = concepts_of(stream)
        for width in (2, 5, 50, 279):
            collect(sea(n=60_000, drifts=[{"at": 50_000, "width": width}]), 8_192)
    assert ids[49_999] == 0 and ids[50_000] == 1
    assert (np.diff(ids) >= 0).all()


def test_stable_sigmoid_has_no_overflow_for_any_argument():
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        p = sigmoid(np.array([-1e308, -1e4, -50.0, 0.0, 50.0, 1e4, 1e308]))
        step = switch_probability(np.arange(49_990, 50_010), Drift(50_000, 1))
        gradual = switch_probability(np.arange(0, 100_000), Drift(50_000, 3))
    assert p[0] == 0.0 and p[3] == 0.5 and p[-1] == 1.0
    assert (np.diff(p) >= 0).all()
    np.testing.assert_array_equal(step, (np.arange(49_990, 50_010) >= 50_000).astype(float))
    assert gradual[0] == 0.0 and gradual[-1] == 1.0 and gradual[50_000] == 0.5


def test_gradual_drift_rises_monotonically_through_the_window():
    p, w = 20_000, 10_000
    stream = sea(n=40_000, drifts=[{"at": p, "width": w}], concepts=[0, 2], noise=0.0, seed=1)
    ids = concepts_of(stream)
    bins = np.arange(p - w, p + w + 1, 2_000)
    fractions = [ids[a:b].mean() for a, b in zip(bins[:-1], bins[1:], strict=True)]
    assert (np.diff(fractions) > 0).all(), fractions
    assert ids[: p - w].mean() < 0.03 and ids[p + w :].mean() > 0.97
    assert abs(ids[p - 500 : p + 500].mean() - 0.5) < 0.06
    # The data agree: among samples where concepts 0 and 2 disagree, the share labelled by
    # concept 2 (label 1) follows the same rise.
    X, y = collect(stream)
    s = X.astype(np.float64)[:, 0] + X[:, 1]
    ambiguous = (s > 7.0) & (s <= 8.0)
    assert (y[ambiguous] == (ids[ambiguous] == 1)).all()
    assert y[: p - w][ambiguous[: p - w]].mean() < 0.05
    assert abs(y[p - 1_000 : p + 1_000][ambiguous[p - 1_000 : p + 1_000]].mean() - 0.5) < 0.15
    assert y[p + w :][ambiguous[p + w :]].mean() > 0.95


def test_recurring_concepts_come_back():
    stream = sea(
        n=9_000,
        drifts=[{"at": 3_000, "width": 1}, {"at": 6_000, "width": 1}],
        concepts=[0, 2, 0],
        noise=0.0,
    )
    X, y = collect(stream)
    np.testing.assert_array_equal(y[:3_000], sea_rule(X[:3_000], 8.0))
    np.testing.assert_array_equal(y[3_000:6_000], sea_rule(X[3_000:6_000], 7.0))
    np.testing.assert_array_equal(y[6_000:], sea_rule(X[6_000:], 8.0))
    assert stream.concepts[0] is stream.concepts[2]
    ids = concepts_of(stream)
    assert (ids[:3_000] == 0).all() and (ids[3_000:6_000] == 1).all() and (ids[6_000:] == 2).all()


def test_nested_gradual_drifts_follow_moa_nesting():
    drifts = [Drift(2_000, 1_000), Drift(6_000, 1_000)]
    stream = sea(n=8_000, drifts=drifts, concepts=[0, 1, 2])
    ids = concepts_of(stream)
    assert set(np.unique(ids)) == {0, 1, 2}
    # p_k(t) = sigmoid(4 (t - position_k) / width_k): a sample takes concept 2 only after
    # both drifts switched, so the middle is concept 1 and the ends are pure.
    assert ids[:1_000].mean() < 0.01 and ids[-1_000:].mean() > 1.99
    assert abs(ids[3_500:4_500].mean() - 1.0) < 0.01


def test_drift_stream_accepts_its_own_concepts():
    a, b = SEAConcept(1, noise=0.0), SEAConcept(3, noise=0.0)
    stream = DriftStream([a, b], [Drift(100)], n=300, seed=2)
    X, y = collect(stream, 64)
    np.testing.assert_array_equal(y[:100], sea_rule(X[:100], 9.0))
    np.testing.assert_array_equal(y[100:], sea_rule(X[100:], 9.5))


def test_drift_stream_refuses_mismatched_concepts():
    with pytest.raises(ValueError, match="concepts"):
        DriftStream([SEAConcept(0)], [Drift(10)], n=100)
    with pytest.raises(ValueError, match=r"concepts\[1\]"):
        DriftStream([SEAConcept(0), RBFConcept(n_features=2)], [Drift(10)], n=100)


# -- hyperplane and RBF ----------------------------------------------------------------------


def _linear_accuracy(X, y, train, test):
    A = np.c_[X[train], np.ones(len(train))]
    w = np.linalg.lstsq(A, 2.0 * y[train] - 1.0, rcond=None)[0]
    return float(((np.c_[X[test], np.ones(len(test))] @ w > 0) == y[test]).mean())


def test_hyperplane_boundary_moves():
    train, early, late = np.arange(2_000), np.arange(2_000, 4_000), np.arange(58_000, 60_000)
    X, y = collect(hyperplane(n=60_000, noise=0.0, seed=0), 10_000)
    before, after = _linear_accuracy(X, y, train, early), _linear_accuracy(X, y, train, late)
    assert before > 0.9 and after < before - 0.1
    X, y = collect(hyperplane(n=60_000, noise=0.0, mag_change=0.0, seed=0), 10_000)
    still = _linear_accuracy(X, y, train, early), _linear_accuracy(X, y, train, late)
    assert abs(still[0] - still[1]) < 0.03
    assert X.min() >= 0.0 and X.max() <= 1.0


def test_hyperplane_drifts_switch_between_weight_vectors():
    stream = hyperplane(n=2_000, drifts=[{"at": 1_000, "width": 1}], mag_change=0.0)
    first, second = stream.concepts
    assert not np.allclose(first.initial_weights, second.initial_weights)
    assert stream.info.drifts == (Drift(1_000, 1),)
    assert hyperplane(n=2_000).info.drifts == ()


def _nn_accuracy(X, y, train, test):
    d = ((X[test][:, None, :] - X[train][None, :, :]) ** 2).sum(-1)
    return float((y[train][d.argmin(1)] == y[test]).mean())


def test_rbf_centroids_move():
    stream = rbf(n=60_000, n_centroids=20, n_drift_centroids=10, change_speed=0.0001, seed=0)
    (concept,) = stream.concepts
    start, later = concept.centres_at(0), concept.centres_at(30_000)
    assert not np.allclose(start[:10], later[:10])
    np.testing.assert_array_equal(start[10:], later[10:])
    assert later.min() >= 0.0 and later.max() <= 1.0
    X, y = collect(rbf(n=60_000, change_speed=0.0001, seed=0), 10_000)
    train = np.arange(2_000)
    before = _nn_accuracy(X, y, train, np.arange(2_000, 3_000))
    after = _nn_accuracy(X, y, train, np.arange(59_000, 60_000))
    assert after < before - 0.1


def test_rbf_without_speed_is_stationary():
    X, y = collect(rbf(n=60_000, change_speed=0.0, seed=0), 10_000)
    train = np.arange(2_000)
    before = _nn_accuracy(X, y, train, np.arange(2_000, 3_000))
    after = _nn_accuracy(X, y, train, np.arange(59_000, 60_000))
    assert abs(before - after) < 0.05


# -- parameter validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n": 1_000, "drifts": [{"at": 5_000}]}, r"drifts\[0\].*beyond.*n=1000"),
        ({"drifts": [{"at": 500}, {"at": 300}]}, r"drifts.*increasing"),
        ({"drifts": [{"at": 500}, {"at": 500}]}, r"drifts.*increasing"),
        ({"drifts": [{"at": 5, "width": 0}]}, r"drifts\[0\].*width"),
        ({"drifts": [{"at": -5}]}, r"drifts\[0\]\.at must be an integer >= 0"),
        ({"drifts": [{"at": 5, "speed": 2}]}, r"drifts\[0\].*unknown key"),
        ({"drifts": [{"width": 5}]}, r"drifts\[0\].*'at'"),
        ({"drifts": [{"at": 5.5}]}, r"drifts\[0\].*integer"),
        ({"drifts": [500]}, r"drifts\[0\]"),
        ({"drifts": {"at": 5}}, r"drifts must be a list"),
        ({"concepts": [0, 5], "drifts": [{"at": 10}]}, r"concepts\[1\].*0\.\.3"),
        ({"concepts": [0, 1, 2], "drifts": [{"at": 10}]}, r"concepts.*one more"),
        ({"concepts": [0]}, None),
        ({"noise": 1.5}, r"sea\.noise: must be <= 1"),
        ({"n": 0}, r"sea\.n: must be >= 1, got 0"),
        ({"seed": -1}, r"sea\.seed: must be >= 0"),
    ],
)
def test_sea_refuses_bad_parameters_by_name(params, match):
    if match is None:
        sea(**params)
        return
    with pytest.raises(ValueError, match=match):
        sea(**params)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: hyperplane(n_drift_features=11), "n_drift_features"),
        (lambda: hyperplane(mag_change=-0.1), r"hyperplane\.mag_change: must be >= 0"),
        (lambda: hyperplane(sigma=2.0), "sigma"),
        (lambda: hyperplane(concepts=[-1]), r"concepts\[0\]"),
        (lambda: rbf(n_drift_centroids=51), "n_drift_centroids"),
        (lambda: rbf(n_classes=1), r"rbf\.n_classes: must be >= 2, got 1"),
        (lambda: rbf(change_speed=float("nan")), "change_speed"),
        (lambda: rbf(n=100, drifts=[{"at": 100}]), r"drifts\[0\]"),
    ],
)
def test_other_generators_refuse_bad_parameters_by_name(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_parse_drifts_accepts_toml_dicts_and_drift_objects():
    parsed = parse_drifts([{"at": 10}, {"position": 20, "width": 4}, Drift(30, 2)], n=100)
    assert parsed == (Drift(10, 1), Drift(20, 4), Drift(30, 2))


# -- registry and rebatch ------------------------------------------------------------------------


def test_registry_builds_generators_from_experiment_parameters():
    for name in ("sea", "hyperplane", "rbf"):
        assert name in registry
        assert registry.describe(name)
        parameters = {p.name: p for p in registry.parameters(name)}
        assert {"n", "drifts", "concepts", "seed"} <= set(parameters)
        assert all(p.annotation for p in parameters.values())
    stream = registry.create("sea", n=2_000, drifts=[{"at": 1_000, "width": 1}], seed=7)
    assert stream.info.drifts == (Drift(1_000, 1),)
    with pytest.raises(ValueError, match="no parameter 'speed'"):
        registry.create("sea", speed=3)


def test_rebatch_joins_and_cuts_chunks():
    chunks = [(np.arange(0, 3), -np.arange(0, 3)), (np.arange(3, 3), -np.arange(3, 3))]
    chunks += [(np.arange(3, 10), -np.arange(3, 10))]
    out = list(rebatch(chunks, 4))
    assert [a.tolist() for a, _ in out] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [b.tolist() for _, b in out][0] == [0, -1, -2, -3]
    with pytest.raises(ValueError, match="batch_size"):
        list(rebatch(chunks, 0))
