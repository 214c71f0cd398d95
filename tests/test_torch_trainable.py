"""Every torch learner is a ``TorchTrainable``: a loop written with its public members only
trains it (what continual-learning plugins rely on)."""

from __future__ import annotations

import numpy as np
import pytest

from adaptloop.learners import registry
from adaptloop.learners.base import TorchTrainable

pytest.importorskip("torch")

rng = np.random.default_rng(0)
X = rng.normal(size=(256, 4)).astype(np.float32)
CODES = np.column_stack([rng.integers(0, 8, 256), rng.integers(0, 3, 256)]).astype(np.float32)
LABELS = (X[:, 0] > 0).astype(np.int64)
VALUES = (X[:, 0] + X[:, 3]).astype(np.float32)

CASES = {
    "mlp": (dict(hidden=(16,)), X, LABELS),
    "mlp_regressor": (dict(hidden=(16,)), X, VALUES),
    "ctr": (
        dict(hidden=(8,), categorical=tuple(range(CODES.shape[1]))),
        CODES,
        (CODES[:, 0] % 2 == 0).astype(np.int64),
    ),
    "cfc": (dict(units=4, seq_len=2), X, VALUES),
    "ltc": (dict(units=4, seq_len=2), X, VALUES),
    "lstm": (dict(units=4, seq_len=2), X, VALUES),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_torch_learner_is_torch_trainable_and_trains_through_public_members(name):
    params, features, y = CASES[name]
    model = registry.create(name, lr=0.02, batch_size=32, **params)
    assert isinstance(model, TorchTrainable)
    assert model.network is None

    model.begin_learn(features)  # builds the network, updates the scaler
    inputs, target = model.inputs(features), model.targets(y)
    net = model.network
    net.train()
    losses = []
    for _ in range(15):
        order = model.rng.permutation(len(y))
        for start in range(0, len(y), model.batch_size):
            i = order[start : start + model.batch_size]
            xb = tuple(t[i] for t in inputs) if isinstance(inputs, tuple) else inputs[i]
            yb = target[i]
            losses.append(model.train_step(lambda xb=xb, yb=yb: model.loss(model.forward(xb), yb)))
    net.eval()

    first, last = np.mean(losses[:8]), np.mean(losses[-8:])
    assert last < 0.8 * first, (first, last)
    assert model.predict(features).shape == (len(y),)


def test_adjust_changes_the_gradients_before_the_step():
    model = registry.create("mlp_regressor", hidden=(4,), lr=0.1)
    model.begin_learn(X)
    before = [p.detach().clone() for p in model.network.parameters()]

    def zero_gradients():
        for p in model.network.parameters():
            p.grad.zero_()

    model.train_step(
        lambda: model.loss(model.forward(model.inputs(X)), model.targets(VALUES)),
        adjust=zero_gradients,
    )
    after = list(model.network.parameters())
    assert all(
        np.array_equal(b.numpy(), a.detach().numpy()) for b, a in zip(before, after, strict=True)
    )
