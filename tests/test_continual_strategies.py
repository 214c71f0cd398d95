import numpy as np
import pytest
import torch

from adaptloop.evaluation.continual import continual_evaluation
from adaptloop.learners import AGEM, ER, EWC, Finetune, Joint, LogisticRegression, LwF
from adaptloop.learners.continual import GEM, gem_project
from adaptloop.learners.models.mlp import MLPClassifier
from adaptloop.streams.tasks import load_digits_arrays, split

torch.set_num_threads(1)


def base(n_classes=4, seed=0):
    return MLPClassifier(
        n_classes=n_classes, hidden=(32,), lr=0.1, optimizer="sgd", standardize=False, seed=seed
    )


@pytest.fixture(scope="module")
def two_tasks():
    """Digits 0-1 then 2-3 (class-incremental), labels 0..3."""
    X_train, y_train, X_test, y_test = load_digits_arrays()
    keep, keep_test = y_train < 4, y_test < 4
    return split(
        X_train[keep], y_train[keep], X_test[keep_test], y_test[keep_test], [[0, 1], [2, 3]]
    )


def run(sequence, learners, **kwargs):
    kwargs = {"batch_size": 16, "epochs": 3, **kwargs}
    return continual_evaluation(sequence, learners, **kwargs).summary


def test_every_strategy_learns_both_tasks_and_er_beats_finetune_on_the_old_one(two_tasks):
    learners = {
        "finetune": Finetune(base()),
        "joint": Joint(base()),
        "er": ER(base(), memory=100),
        "ewc": EWC(base(), strength=10.0),
        "lwf": LwF(base()),
        "agem": AGEM(base(), memory_per_task=50),
        "gem": GEM(base(), memory_per_task=50),
    }
    summary = run(two_tasks, learners)
    for name, s in summary.items():
        assert s["final_task_acc"][1] > 0.75, name  # the new task is learned
        assert s["avg_acc_task_ends"][0] > 0.9, name  # and so was the first one
    old = {name: s["final_task_acc"][0] for name, s in summary.items()}
    assert old["finetune"] < 0.2  # class-incremental fine-tuning forgets task 0
    assert old["er"] > old["finetune"] + 0.5
    assert old["joint"] > old["finetune"] + 0.5
    assert old["gem"] > old["finetune"] + 0.5
    assert summary["er"]["min_acc"] > summary["finetune"]["min_acc"]


def test_er_reservoir_is_uniform_over_the_stream_and_seeded():
    X = np.arange(2000, dtype=np.float32)[:, None]
    y = (np.arange(2000) % 2).astype(np.int64)
    buffers = []
    for seed in (0, 0, 1):
        model = ER(base(n_classes=2), memory=200, seed=seed)
        for lo in range(0, 2000, 100):
            model.learn(X[lo : lo + 100], y[lo : lo + 100])
        buffers.append(model.buffer_X_[:, 0].copy())
    assert model.buffer_size_ == 200 and model.n_offered_ == 2000
    np.testing.assert_array_equal(buffers[0], buffers[1])
    assert not np.array_equal(buffers[0], buffers[2])
    assert len(np.unique(buffers[0])) == 200  # each sample stored at most once
    # every sample is kept with probability 200 / 2000: about half come from the first half
    assert 0.35 < float(np.mean(buffers[0] < 1000)) < 0.65


def test_ewc_pulls_parameters_towards_the_previous_task(two_tasks):
    first, second = two_tasks.tasks
    distances = {}
    for strength in (0.0, 30.0):
        model = EWC(base(), strength=strength)
        model.learn(first.X_train, first.y_train)
        model.end_task(first.X_train, first.y_train)
        anchor = [a.copy() for a in model.anchor_]
        assert all((f >= 0).all() for f in model.fisher_) and any(
            f.max() > 0 for f in model.fisher_
        )
        for _ in range(5):
            model.learn(second.X_train, second.y_train)
        params = [p.detach().numpy() for p in model.model_._net.parameters()]
        # the Fisher-weighted distance: what the penalty measures
        distances[strength] = sum(
            float((f * (p - a) ** 2).sum())
            for p, a, f in zip(params, anchor, model.fisher_, strict=True)
        )
    assert distances[30.0] < 0.5 * distances[0.0]


def test_online_ewc_decays_the_old_fisher():
    X, y = np.eye(4, dtype=np.float32), np.array([0, 1, 2, 3])
    model = EWC(base(), gamma=0.5)
    model.learn(X, y)
    model.end_task(X, y)
    first = [f.copy() for f in model.fisher_]
    model.end_task(X, y)  # same parameters, same data: F <- 0.5 F + F
    for f, f1 in zip(model.fisher_, first, strict=True):
        np.testing.assert_allclose(f, 1.5 * f1, rtol=1e-5)


def test_lwf_keeps_old_class_outputs_closer_to_the_teacher(two_tasks):
    first, second = two_tasks.tasks
    drift = {}
    for alpha in (0.0, 5.0):
        model = LwF(base(), alpha=alpha)
        for _ in range(3):
            model.learn(first.X_train, first.y_train)
        model.begin_task(1)
        assert model.old_classes_ == [0, 1]
        teacher = model.teacher_(torch.from_numpy(first.X_test)).detach()[:, :2].softmax(1)
        for _ in range(3):
            model.learn(second.X_train, second.y_train)
        student = model.model_._net(torch.from_numpy(first.X_test)).detach()[:, :2].softmax(1)
        drift[alpha] = float((teacher - student).abs().mean())
    assert drift[5.0] < drift[0.0]


def test_agem_projected_gradient_does_not_oppose_the_memory_gradient(two_tasks):
    first, second = two_tasks.tasks
    model = AGEM(base(), memory_per_task=40, sample_size=40)
    model.learn(first.X_train, first.y_train)
    model.end_task(first.X_train, first.y_train)
    assert len(model.memory_y_) == 40 and set(model.memory_y_.tolist()) <= {0, 1}
    net = model.model_._net
    params = list(net.parameters())
    x_ref, y_ref = model._inputs(model.memory_X_), model._labels(model.memory_y_)
    net.zero_grad()
    model._ce(net, model._inputs(second.X_train), model._labels(second.y_train)).backward()
    g = torch.cat([p.grad.reshape(-1) for p in params]).clone()
    g_ref = torch.cat(
        [r.reshape(-1) for r in torch.autograd.grad(model._ce(net, x_ref, y_ref), params)]
    )
    model._adjust_gradient(net)
    projected = torch.cat([p.grad.reshape(-1) for p in params])
    assert float(g @ g_ref) < 0  # the new task's gradient hurts the memory ...
    assert float(projected @ g_ref) == pytest.approx(0.0, abs=1e-5)  # ... not after projection


def test_task_incremental_masks_training_logits_to_the_task():
    model = Finetune(base())
    model.begin_task(0, classes=(0, 1))
    model.begin_task(1, classes=(2, 3))
    logits = torch.zeros(2, 4)
    masked = model._masked(logits, torch.tensor([0, 3]))
    assert torch.isinf(masked[0, 2:]).all() and torch.isfinite(masked[0, :2]).all()
    assert torch.isinf(masked[1, :2]).all() and torch.isfinite(masked[1, 2:]).all()
    with pytest.raises(ValueError, match="classes"):
        model.begin_task(2, classes=(7,))


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="MLPClassifier"):
        ER(LogisticRegression(n_classes=2))
    for make, pattern in [
        (lambda: ER(base(), memory=0), "memory"),
        (lambda: ER(base(), new_weight=1.5), "new_weight"),
        (lambda: EWC(base(), gamma=-1), "gamma"),
        (lambda: LwF(base(), temperature=0), "temperature"),
        (lambda: AGEM(base(), sample_size=0), "sample_size"),
        (lambda: GEM(base(), margin=-0.1), "margin"),
        (lambda: GEM(base(), memory_per_task=0), "memory_per_task"),
        (lambda: Finetune(base(), seed=1.5), "seed"),
    ]:
        with pytest.raises(ValueError, match=pattern):
            make()
    model = Joint(base())
    with pytest.raises(ValueError, match="2-dimensional"):
        model.end_task(np.ones((3,), dtype=np.float32), np.array([0, 1, 0]))
    assert model.tasks_data_ == []


def test_gem_projection_solves_the_dual_qp():
    rng = np.random.default_rng(0)
    G = rng.normal(size=(3, 20))
    g = -G.sum(0) + 0.1 * rng.normal(size=20)  # opposes every task
    for margin in (0.0, 0.5):
        z = gem_project(g, G, margin)
        assert (G @ z >= -1e-9).all()  # no previous task's loss increases (eq. 7-8)
        v = np.linalg.lstsq(G.T, z - g, rcond=None)[0]  # z = G^T v + g, v >= margin (eq. 13)
        np.testing.assert_allclose(G.T @ v + g, z, atol=1e-9)
        assert (v >= margin - 1e-9).all()
    # margin 0: the Euclidean projection onto the cone, checked against a brute-force search
    z = gem_project(g, G, 0.0)
    for _ in range(2000):
        other = z + 0.05 * rng.normal(size=20)
        if (G @ other >= 0).all():
            assert np.linalg.norm(other - g) >= np.linalg.norm(z - g) - 1e-12
    # one constraint: the projection is A-GEM's formula
    g1 = G[0] * -1.0 + rng.normal(size=20) * 0.01
    expected = g1 - (g1 @ G[0]) / (G[0] @ G[0]) * G[0]
    np.testing.assert_allclose(gem_project(g1, G[:1]), expected, atol=1e-9)


def test_gem_step_satisfies_one_constraint_per_previous_task():
    X_train, y_train, _, _ = load_digits_arrays()
    model = GEM(base(n_classes=10), memory_per_task=30, margin=0.0)
    for classes in ([0, 1], [2, 3], [4, 5]):
        keep = np.isin(y_train, classes)
        model.learn(X_train[keep], y_train[keep])
        model.end_task(X_train[keep], y_train[keep])
    assert model.memory_task_.tolist() == [0] * 30 + [1] * 30 + [2] * 30
    keep = np.isin(y_train, [6, 7])
    net = model.model_._net
    params = list(net.parameters())
    net.zero_grad()
    model._ce(net, model._inputs(X_train[keep]), model._labels(y_train[keep])).backward()
    g = torch.cat([p.grad.reshape(-1) for p in params]).clone()
    G = model._memory_gradients(net, params)
    assert (G @ g < 0).any()  # the new task's gradient hurts some old task ...
    model._adjust_gradient(net)
    projected = torch.cat([p.grad.reshape(-1) for p in params])
    assert (G @ projected >= -1e-5).all()  # ... none after projection
    assert not torch.allclose(projected, g)
    state = model.state_dict()
    clone = GEM(base(n_classes=10), memory_per_task=30, margin=0.0)
    clone.load_state_dict(state)
    np.testing.assert_array_equal(clone.memory_task_, model.memory_task_)
