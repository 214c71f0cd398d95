import numpy as np
import pytest
import torch

from adaptloop.evaluation.continual import continual_evaluation
from adaptloop.learners import LogisticRegression, registry
from adaptloop.learners.continual import (
    AGEM,
    EWC,
    GEM,
    Continual,
    LwF,
    Replay,
    gem_dual,
    gem_project,
)
from adaptloop.learners.models.mlp import MLPClassifier
from adaptloop.streams.tasks import load_digits_arrays

torch.set_num_threads(1)

STRATEGIES = {  # the one-plugin shorthands, as experiment files name them
    "finetune": {},
    "joint": {},
    "er": {"memory": 100},
    "ewc": {"strength": 10.0},
    "lwf": {},
    "agem": {"memory_per_task": 50},
    "gem": {"memory_per_task": 50},
}


def base(n_classes=4, seed=0):
    return MLPClassifier(
        n_classes=n_classes, hidden=(32,), lr=0.1, optimizer="sgd", standardize=False, seed=seed
    )


def run(sequence, learners, **kwargs):
    kwargs = {"batch_size": 16, "epochs": 3, **kwargs}
    return continual_evaluation(sequence, learners, **kwargs).summary


def gradient(model, X, y, params):
    """The flat gradient of the learner's loss on ``X``, ``y``, left in ``params``' grads."""
    for p in params:
        p.grad = None
    net = model.trainable
    model.loss(model.forward(net.inputs(X)), net.targets(y)).backward()
    return torch.cat([p.grad.reshape(-1) for p in params]).clone()


def test_every_strategy_learns_both_tasks_and_er_beats_finetune_on_the_old_one(two_tasks):
    learners = {name: registry.create(name, base=base(), **p) for name, p in STRATEGIES.items()}
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


def test_the_summary_says_how_many_past_samples_each_learner_keeps(two_tasks):
    learners = {name: registry.create(name, base=base(), **p) for name, p in STRATEGIES.items()}
    learners["plain"] = base()  # says nothing: no capability
    kept = {name: s["stored_samples"] for name, s in run(two_tasks, learners, epochs=1).items()}
    sizes = [len(task.y_train) for task in two_tasks]
    assert kept == {
        "finetune": 0,
        "joint": sum(sizes),  # every finished task's data
        "er": 100,  # the reservoir, full
        "ewc": 0,
        "lwf": 0,
        "agem": 2 * 50,  # memory_per_task of each finished task
        "gem": 2 * 50,
        "plain": None,
    }


def test_a_shorthand_is_the_continual_learner_with_one_plugin(two_tasks):
    first = two_tasks.tasks[0]
    a = registry.create("er", base=base(), memory=50, seed=3)
    b = Continual(base(), plugins=[{"kind": "replay", "memory": 50}], seed=3)
    assert a.plugins == b.plugins == [Replay(memory=50)]
    for model in (a, b):
        model.learn(first.X_train[:64], first.y_train[:64])
    np.testing.assert_array_equal(a.predict_proba(first.X_test), b.predict_proba(first.X_test))


def test_er_reservoir_is_uniform_over_the_stream_and_seeded():
    X = np.arange(2000, dtype=np.float32)[:, None]
    y = (np.arange(2000) % 2).astype(np.int64)
    buffers = []
    for seed in (0, 0, 1):
        model = Continual(base(n_classes=2), plugins=[Replay(memory=200)], seed=seed)
        for lo in range(0, 2000, 100):
            model.learn(X[lo : lo + 100], y[lo : lo + 100])
        replay = model.plugins_[0]
        buffers.append(replay.buffer_X_[:, 0].copy())
    assert replay.buffer_size_ == 200 and replay.n_offered_ == 2000
    np.testing.assert_array_equal(buffers[0], buffers[1])
    assert not np.array_equal(buffers[0], buffers[2])
    assert len(np.unique(buffers[0])) == 200  # each sample stored at most once
    # every sample is kept with probability 200 / 2000: about half come from the first half
    assert 0.35 < float(np.mean(buffers[0] < 1000)) < 0.65


def test_ewc_pulls_parameters_towards_the_previous_task(two_tasks):
    first, second = two_tasks.tasks
    distances = {}
    for strength in (0.0, 30.0):
        model = Continual(base(), plugins=[EWC(strength=strength)])
        model.learn(first.X_train, first.y_train)
        model.end_task(first.X_train, first.y_train)
        ewc = model.plugins_[0]
        anchor = [a.copy() for a in ewc.anchor_]
        assert all((f >= 0).all() for f in ewc.fisher_) and any(f.max() > 0 for f in ewc.fisher_)
        for _ in range(5):
            model.learn(second.X_train, second.y_train)
        params = [p.detach().numpy() for p in model.trainable.network.parameters()]
        # the Fisher-weighted distance: what the penalty measures
        distances[strength] = sum(
            float((f * (p - a) ** 2).sum())
            for p, a, f in zip(params, anchor, ewc.fisher_, strict=True)
        )
    assert distances[30.0] < 0.5 * distances[0.0]


def test_online_ewc_decays_the_old_fisher():
    X, y = np.eye(4, dtype=np.float32), np.array([0, 1, 2, 3])
    model = Continual(base(), plugins=[EWC(gamma=0.5)])
    model.learn(X, y)
    model.end_task(X, y)
    first = [f.copy() for f in model.plugins_[0].fisher_]
    model.end_task(X, y)  # same parameters, same data: F <- 0.5 F + F
    for f, f1 in zip(model.plugins_[0].fisher_, first, strict=True):
        np.testing.assert_allclose(f, 1.5 * f1, rtol=1e-5)


def test_lwf_keeps_old_class_outputs_closer_to_the_teacher(two_tasks):
    first, second = two_tasks.tasks
    drift = {}
    for alpha in (0.0, 5.0):
        model = Continual(base(), plugins=[LwF(alpha=alpha)])
        for _ in range(3):
            model.learn(first.X_train, first.y_train)
        model.begin_task(1)
        lwf = model.plugins_[0]
        assert lwf.old_classes_ == [0, 1]
        inputs = model.trainable.inputs(first.X_test)
        with torch.no_grad():
            teacher = model.forward(inputs, lwf.teacher_)[:, :2].softmax(1)
        for _ in range(3):
            model.learn(second.X_train, second.y_train)
        with torch.no_grad():
            student = model.forward(inputs)[:, :2].softmax(1)
        drift[alpha] = float((teacher - student).abs().mean())
    assert drift[5.0] < drift[0.0]


def test_agem_projected_gradient_does_not_oppose_the_memory_gradient(two_tasks):
    first, second = two_tasks.tasks
    agem = AGEM(memory_per_task=40, sample_size=40)
    model = Continual(base(), plugins=[agem])
    model.learn(first.X_train, first.y_train)
    model.end_task(first.X_train, first.y_train)
    agem = model.plugins_[0]
    assert len(agem.memory_y_) == 40 and set(agem.memory_y_.tolist()) <= {0, 1}
    params = list(model.trainable.network.parameters())
    g_ref = gradient(model, agem.memory_X_, agem.memory_y_, params)
    g = gradient(model, second.X_train, second.y_train, params)
    agem.adjust_gradient(model, params)
    projected = torch.cat([p.grad.reshape(-1) for p in params])
    assert float(g @ g_ref) < 0  # the new task's gradient hurts the memory ...
    assert float(projected @ g_ref) == pytest.approx(0.0, abs=1e-5)  # ... not after projection


def test_task_incremental_restricts_training_logits_to_the_task():
    model = registry.create("finetune", base=base())
    logits, target = torch.zeros(2, 4), torch.tensor([0, 3])
    assert float(model.loss(logits, target)) == pytest.approx(np.log(4))
    model.begin_task(0, classes=(0, 1))
    model.begin_task(1, classes=(2, 3))
    assert float(model.loss(logits, target)) == pytest.approx(np.log(2))  # 2 logits each
    with pytest.raises(ValueError, match="classes"):
        model.begin_task(2, classes=(7,))


def test_bad_parameters_are_refused_naming_them():
    with pytest.raises(ValueError, match="TorchTrainable"):
        registry.create("er", base=LogisticRegression(n_classes=2))
    for kind, params, pattern in [
        ("er", {"memory": 0}, "memory"),
        ("er", {"new_weight": 1.5}, "new_weight"),
        ("ewc", {"gamma": -1}, "gamma"),
        ("lwf", {"temperature": 0}, "temperature"),
        ("agem", {"sample_size": 0}, "sample_size"),
        ("gem", {"margin": -0.1}, "margin"),
        ("gem", {"memory_per_task": 0}, "memory_per_task"),
        ("finetune", {"seed": 1.5}, "seed"),
        ("continual", {"plugins": [{"kind": "ewc", "gamma": 2.0}]}, r"plugins\[0\]\.gamma"),
        ("continual", {"plugins": [{"kind": "nope"}]}, "unknown plugin 'nope'"),
        ("continual", {"boundaries": "nope"}, "boundaries must be 'known', 'none' or a detector"),
    ]:
        with pytest.raises(ValueError, match=pattern):
            registry.create(kind, base=base(), **params)
    model = registry.create("joint", base=base())
    with pytest.raises(ValueError, match="2-dimensional"):
        model.end_task(np.ones((3,), dtype=np.float32), np.array([0, 1, 0]))
    assert model.plugins_[0].tasks_data_ == []


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


def test_gem_dual_in_t_dimensions_matches_the_full_nnls_and_survives_a_singular_gram():
    from scipy.optimize import nnls

    rng = np.random.default_rng(1)
    G = rng.normal(size=(4, 300))
    g = -G.sum(0) + 0.2 * rng.normal(size=300)
    for margin in (0.0, 0.5):
        u, _ = nnls(G.T, -(g + margin * G.sum(0)))  # the (parameters x t) problem
        np.testing.assert_allclose(gem_dual(G @ G.T, G @ g, margin), u + margin, atol=1e-8)
    # the same task gradient twice, and a zero one: the Gram matrix is singular
    twice = np.vstack([G[0], G[0], np.zeros(300)])
    g1 = -G[0] + 0.01 * rng.normal(size=300)
    expected = g1 - (g1 @ G[0]) / (G[0] @ G[0]) * G[0]
    np.testing.assert_allclose(gem_project(g1, twice), expected, atol=1e-9)
    np.testing.assert_array_equal(gem_dual(np.zeros((2, 2)), np.zeros(2), 0.5), [0.5, 0.5])


def test_gem_step_satisfies_one_constraint_per_previous_task():
    X_train, y_train, _, _ = load_digits_arrays()
    model = Continual(base(n_classes=10), plugins=[GEM(memory_per_task=30, margin=0.0)])
    for classes in ([0, 1], [2, 3], [4, 5]):
        keep = np.isin(y_train, classes)
        model.learn(X_train[keep], y_train[keep])
        model.end_task(X_train[keep], y_train[keep])
    gem = model.plugins_[0]
    assert gem.memory_task_.tolist() == [0] * 30 + [1] * 30 + [2] * 30
    keep = np.isin(y_train, [6, 7])
    params = list(model.trainable.network.parameters())
    g = gradient(model, X_train[keep], y_train[keep], params)
    G = gem.memory_gradients(model, params)
    assert (G @ g < 0).any()  # the new task's gradient hurts some old task ...
    gem.adjust_gradient(model, params)
    projected = torch.cat([p.grad.reshape(-1) for p in params])
    assert (G @ projected >= -1e-5).all()  # ... none after projection
    assert not torch.allclose(projected, g)
    clone = model.clone()
    clone.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(clone.plugins_[0].memory_task_, gem.memory_task_)
