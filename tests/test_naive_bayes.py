"""ForgettingNB (the worked example of CONTRIBUTING.md): forgetting follows a drift, learning is
exact per sample at any batch size, bad parameters are refused by name."""

import numpy as np
import pytest

from adaptloop.learners import registry
from adaptloop.learners.models.naive_bayes import ForgettingNB


def _concept(rng, n, flip):
    X = rng.normal(size=(n, 2)).astype(np.float32)
    y = ((X[:, 0] > 0) != flip).astype(np.int64)
    return X, y


def test_forgetting_follows_a_swap_of_the_labels_that_plain_naive_bayes_does_not():
    rng = np.random.default_rng(0)
    before, after = _concept(rng, 2000, False), _concept(rng, 400, True)
    test_X, test_y = _concept(rng, 500, True)
    accuracy = {}
    for half_life in (None, 50):
        model = ForgettingNB(half_life=half_life)
        model.learn(*before)
        model.learn(*after)
        accuracy[half_life] = float((model.predict(test_X) == test_y).mean())
    assert accuracy[50] > 0.9 > 0.5 > accuracy[None]


def test_batch_size_does_not_change_what_is_learned():
    X, y = _concept(np.random.default_rng(1), 300, False)
    whole, one_by_one = ForgettingNB(half_life=30), ForgettingNB(half_life=30)
    whole.learn(X, y)
    for i in range(len(X)):
        one_by_one.learn(X[i : i + 1], y[i : i + 1])
    np.testing.assert_allclose(whole.predict_proba(X), one_by_one.predict_proba(X), rtol=1e-9)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"half_life": 0}, r"ForgettingNB.half_life: must be >= 1, got 0"),
        ({"half_life": "10"}, r"ForgettingNB.half_life: .*integer"),
        ({"n_classes": 1}, r"ForgettingNB.n_classes: must be >= 2, got 1"),
    ],
)
def test_bad_parameters_are_refused_by_name(params, message):
    with pytest.raises(ValueError, match=message):
        ForgettingNB(**params)


def test_it_is_registered_without_an_edit_elsewhere():
    assert isinstance(registry.create("forgetting_nb", half_life=10), ForgettingNB)
