"""Optimisers of the torch learners: Muon's split of the parameters, Drop-Muon's frozen
blocks (weights and momentum unchanged, backpropagation stopped at the start block), and the
strategies that train through the MLP's public step."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from adaptloop.learners import MLPClassifier, registry  # noqa: E402
from adaptloop.learners.optim.optimizers import SGD, Adam, DropMuon, Muon, make_optimizer  # noqa: E402
from adaptloop.learners.optim.training import Trainer  # noqa: E402


def three_layers() -> tuple[torch.nn.Sequential, list[torch.nn.Linear]]:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(4, 8),
        torch.nn.ReLU(),
        torch.nn.Linear(8, 8),
        torch.nn.ReLU(),
        torch.nn.Linear(8, 3),
    )
    return net, [net[0], net[2], net[4]]


def snapshot(trainer: Trainer, block: torch.nn.Module) -> tuple[list, list]:
    """(weights, momentum buffers) of a block's parameters, copied."""
    weights = [p.detach().clone() for p in block.parameters()]
    buffers = []
    for p in block.parameters():
        for optimizer in trainer.optimizers:
            state = optimizer.state.get(p, {})
            buffers += [v.clone() for v in state.values() if torch.is_tensor(v)]
    return weights, buffers


def test_drop_muon_freezes_the_blocks_before_the_start_and_stops_backprop_there():
    net, blocks = three_layers()
    trainer = Trainer(net, blocks, DropMuon(), None, lr=0.05, weight_decay=0.01, seed=3)
    x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    needs_grad: list[bool] = []
    for block in blocks:  # does autograd build a graph through this block's output?
        block.register_forward_hook(lambda m, i, out: needs_grad.append(out.requires_grad))
    starts = set()
    for _ in range(40):
        before = [snapshot(trainer, b) for b in blocks]
        needs_grad.clear()
        trainer.step(lambda: torch.nn.functional.cross_entropy(net(x), y))
        s = trainer.last_start_
        starts.add(s)
        assert needs_grad == [i >= s for i in range(3)]  # no graph before block s
        for i, block in enumerate(blocks):
            weights, buffers = snapshot(trainer, block)
            same = all(torch.equal(a, b) for a, b in zip(weights, before[i][0], strict=True))
            if i < s:  # frozen: weights, momentum and gradients untouched
                assert same
                assert len(buffers) == len(before[i][1])
                assert all(torch.equal(a, b) for a, b in zip(buffers, before[i][1], strict=True))
                assert all(p.grad is None for p in block.parameters())
            else:
                assert not same
            assert all(p.requires_grad for p in block.parameters())  # restored after the step
    assert starts == {0, 1, 2}  # uniform start blocks


def test_drop_muon_probs_pick_the_start_block():
    rng = np.random.default_rng(0)
    spec = DropMuon(probs=[0.0, 0.0, 1.0])
    assert {spec.start_block(rng, 3) for _ in range(20)} == {2}
    counts = np.bincount([DropMuon().start_block(rng, 4) for _ in range(4000)], minlength=4)
    assert (np.abs(counts / 4000 - 0.25) < 0.03).all()
    with pytest.raises(ValueError, match="probs has 2 entries but the network has 3 blocks"):
        DropMuon(probs=[0.5, 0.5]).start_block(rng, 3)
    with pytest.raises(ValueError, match="probs must sum to 1"):
        DropMuon(probs=[0.5, 0.2])
    with pytest.raises(ValueError, match=r"^DropMuon\.probs\[1\]: must be >= 0"):
        DropMuon(probs=[1.5, -0.5])


def test_muon_orthogonalises_matrices_and_steps_vectors_with_momentum():
    net, blocks = three_layers()
    muon, sgd = Muon().build(blocks, lr=0.02, weight_decay=0.0)
    assert isinstance(muon, torch.optim.Muon) and isinstance(sgd, torch.optim.SGD)
    assert [p.ndim for p in muon.param_groups[0]["params"]] == [2, 2, 2]
    assert [p.ndim for p in sgd.param_groups[0]["params"]] == [1, 1, 1]
    assert sgd.param_groups[0]["momentum"] == 0.95 and sgd.param_groups[0]["nesterov"]
    # one Muon step on a matrix moves it along an orthogonalised direction: the update's
    # singular values are (nearly) equal, unlike the gradient's
    w = torch.nn.Linear(6, 4, bias=False)
    opt = Muon(nesterov=False, momentum=0.5).build([w], lr=0.1, weight_decay=0.0)[0]
    before = w.weight.detach().clone()
    (w(torch.randn(16, 6)) ** 2).sum().backward()
    grad_sv = torch.linalg.svdvals(w.weight.grad)
    opt.step()
    update_sv = torch.linalg.svdvals(w.weight.detach() - before)
    assert (update_sv.max() / update_sv.min()) < 2.0 < (grad_sv.max() / grad_sv.min())
    # euclidean Drop-Muon: plain momentum for every parameter
    (only,) = DropMuon(euclidean=True).build(blocks, lr=0.02, weight_decay=0.0)
    assert isinstance(only, torch.optim.SGD) and len(only.param_groups[0]["params"]) == 6


def test_embeddings_are_not_orthogonalised():
    X = np.random.default_rng(0).integers(0, 5, size=(32, 2)).astype(np.float32)
    model = registry.create("ctr", epochs=1, batch_size=16, optimizer="muon")
    model.learn(X, (X[:, 0] > 2).astype(np.int64))
    muon = model.trainer_.optimizers[0]
    assert isinstance(muon, torch.optim.Muon)
    embedding_ids = {id(e.weight) for e in model.network.embeddings}
    assert not embedding_ids & {id(p) for p in muon.param_groups[0]["params"]}


def test_adam_and_sgd_build_what_the_learners_always_used():
    net, blocks = three_layers()
    (adam,) = Adam().build(blocks, 0.01, 0.1)
    assert isinstance(adam, torch.optim.Adam) and adam.param_groups[0]["weight_decay"] == 0.1
    assert [id(p) for p in adam.param_groups[0]["params"]] == [id(p) for p in net.parameters()]
    (sgd,) = SGD(momentum=0.9).build(blocks, 0.01, 0.0)
    assert sgd.param_groups[0]["momentum"] == 0.9


@pytest.mark.parametrize("kind", ["er", "ewc", "agem", "gem", "lwf", "joint"])
def test_continual_strategies_train_under_drop_muon(kind):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(96, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64) + 2 * (X[:, 1] > 0)
    base = MLPClassifier(
        n_classes=4, hidden=(8, 8), lr=0.05, batch_size=16, optimizer={"name": "drop_muon"}
    )
    params = {"memory_per_task": 8} if kind in ("agem", "gem") else {}
    model = registry.create(kind, base=base, **params)
    model.begin_task(0)
    model.learn(X[:48], y[:48])
    model.end_task(X[:48], y[:48])
    model.begin_task(1)
    model.learn(X[48:], y[48:])
    trainer = model.model_.trainer_
    assert len(trainer.grad_norms_) == 3 and np.isfinite(trainer.grad_norms_).all()
    assert model.predict_proba(X).shape == (96, 4)


def test_drop_muon_state_round_trip_keeps_the_start_blocks():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(64, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    make = lambda: MLPClassifier(hidden=(8, 8), lr=0.05, batch_size=8, optimizer="drop_muon")  # noqa: E731
    a = make()
    a.learn(X[:32], y[:32])
    b = make()
    b.load_state_dict(a.state_dict())
    a.learn(X[32:], y[32:])
    b.learn(X[32:], y[32:])
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert a.trainer_.last_start_ == b.trainer_.last_start_


def test_optimizer_names_and_errors():
    assert make_optimizer("muon") == Muon()
    assert make_optimizer({"name": "drop_muon", "probs": [0.5, 0.5]}) == DropMuon(probs=[0.5, 0.5])
    with pytest.raises(ValueError, match="unknown optimizer 'lion'; known: adam, sgd, muon"):
        make_optimizer("lion")
    with pytest.raises(ValueError, match="optimizer 'adam' takes no parameter 'momentum'"):
        make_optimizer({"name": "adam", "momentum": 0.9})
    with pytest.raises(ValueError, match=r"^optimizer\.momentum: must be < 1"):
        make_optimizer({"name": "muon", "momentum": 1.0})
    with pytest.raises(ValueError, match=r"^Muon\.adjust_lr: must be 'original' or"):
        Muon(adjust_lr="moonshot")
    with pytest.raises(ValueError, match="unknown optimizer"):
        MLPClassifier(optimizer="adamw")
    model = MLPClassifier(hidden=(4,), optimizer={"name": "drop_muon", "probs": [1.0]})
    with pytest.raises(ValueError, match="probs has 1 entries but the network has 2 blocks"):
        model.learn(np.zeros((4, 2), np.float32), np.array([0, 1, 0, 1]))


def test_a_refused_network_leaves_the_learner_unbuilt():
    model = MLPClassifier(hidden=(4,), optimizer={"name": "drop_muon", "probs": [0.5, 0.5]})
    bad = MLPClassifier(hidden=(4, 4), optimizer={"name": "drop_muon", "probs": [0.5, 0.5]})
    X, y = np.zeros((4, 2), np.float32), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="probs has 2 entries but the network has 3 blocks"):
        bad.learn(X, y)
    assert bad.trainer_ is None and bad.network is None
    model.learn(X, y)  # two blocks: fine


def test_float32_muon_takes_pytorchs_step():
    """The float32 Newton-Schulz step is PyTorch's bfloat16 one up to bfloat16 rounding."""
    updates = []
    for precision in ("float32", "bfloat16"):
        torch.manual_seed(0)
        layer = torch.nn.Linear(12, 5)
        (opt, _) = Muon(precision=precision).build([layer], lr=0.1, weight_decay=0.01)
        before = layer.weight.detach().clone()
        for _ in range(2):  # momentum buffers in play on the second step
            opt.zero_grad()
            (
                layer(torch.randn(8, 12, generator=torch.Generator().manual_seed(1))) ** 2
            ).sum().backward()
            opt.step()
        updates.append(layer.weight.detach() - before)
    assert type(opt) is torch.optim.Muon
    torch.testing.assert_close(updates[0], updates[1], atol=2e-3, rtol=0.05)
