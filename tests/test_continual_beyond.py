"""Continual learning beyond replay: FSA, LiNeS / merging, CLASSP, recurring tasks."""

from __future__ import annotations

import numpy as np
import pytest

from adaptloop.learners import MLPClassifier, registry
from adaptloop.learners.continual import FirstSessionAdaptation, StreamingLDA


def mlp(**kw):
    params = {"n_classes": 4, "hidden": (16,), "lr": 0.1, "optimizer": "sgd", "seed": 0}
    return MLPClassifier(**{**params, **kw})


# -- FSA ----------------------------------------------------------------------------------------
def test_streaming_lda_is_exact_whatever_the_batching():
    rng = np.random.default_rng(0)
    Z, y = rng.normal(size=(60, 3)), rng.integers(0, 3, 60)
    once, parts = StreamingLDA(3, 3), StreamingLDA(3, 3)
    once.update(Z, y)
    for lo in range(0, 60, 7):
        parts.update(Z[lo : lo + 7], y[lo : lo + 7])
    np.testing.assert_allclose(once.scores(Z), parts.scores(Z))
    # the pooled within-class covariance, as batch LDA computes it
    means = np.stack([Z[y == c].mean(0) for c in range(3)])
    within = sum((Z[y == c] - means[c]).T @ (Z[y == c] - means[c]) for c in range(3)) / 60
    cov = 0.9 * within + 0.1 * np.eye(3)
    W, _ = once.head()
    np.testing.assert_allclose(W, np.linalg.solve(cov, means.T).T)


def test_fsa_freezes_the_body_after_the_first_session(two_tasks):
    model = FirstSessionAdaptation(mlp(epochs=5, batch_size=16))
    first, second = two_tasks.tasks
    model.begin_task(0)
    model.learn(first.X_train, first.y_train)
    assert not model.adapted
    model.end_task(first.X_train, first.y_train)
    body = {k: v.clone() for k, v in model.model_.network.state_dict().items()}
    model.learn(second.X_train, second.y_train)
    model.end_task(second.X_train, second.y_train)
    for k, v in model.model_.network.state_dict().items():
        assert (v == body[k]).all()
    X = np.concatenate([first.X_test, second.X_test])
    y = np.concatenate([first.y_test, second.y_test])
    assert (model.predict(X) == y).mean() > 0.85  # no replay, no forgetting of 0-1
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-5)


def test_fsa_state_round_trip_and_registry(two_tasks):
    model = registry.create("fsa", base=mlp(), shrinkage=0.2)
    first, second = two_tasks.tasks
    model.learn(first.X_train, first.y_train)
    model.end_task(first.X_train, first.y_train)
    model.learn(second.X_train, second.y_train)
    copy = model.clone()
    copy.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(copy.predict(second.X_test), model.predict(second.X_test))


def test_fsa_refuses_a_regressor():
    from adaptloop.learners.models.mlp import MLPRegressor

    with pytest.raises(ValueError, match="classifier"):
        FirstSessionAdaptation(MLPRegressor())


# -- LiNeS, task arithmetic, Model Breadcrumbs --------------------------------------------------
def test_lines_scales_updates_linearly_with_depth():
    import torch

    from adaptloop.learners.continual import lines

    names = ["0.weight", "0.bias", "2.weight", "4.weight"]
    pre = {k: torch.zeros(3) for k in names}
    ft = {k: torch.full((3,), 2.0) for k in names}
    out = lines(pre, ft, alpha=0.5, beta=0.5)
    assert [float(out[k][0]) for k in names] == [1.0, 1.0, 1.5, 2.0]
    assert float(pre["0.weight"][0]) == 0.0  # inputs unchanged
    with pytest.raises(ValueError, match="finetuned"):
        lines(pre, {"x": torch.zeros(3)}, 0.0, 1.0)


def test_breadcrumbs_drops_outliers_and_small_updates_then_sums():
    from adaptloop.learners.continual import breadcrumbs, mergers, task_arithmetic

    pre = {"w": np.zeros(10)}
    a = {"w": np.arange(10, dtype=float)}
    b = {"w": -np.arange(10, dtype=float)[::-1]}
    merged = breadcrumbs(pre, [a, b], scale=1.0, drop_top=0.1, drop_bottom=0.3)
    kept_a = np.where((np.arange(10) >= 3) & (np.arange(10) <= 8), np.arange(10.0), 0.0)
    np.testing.assert_allclose(merged["w"], kept_a - kept_a[::-1])
    plain = task_arithmetic(pre, [a, b], scale=0.5)
    np.testing.assert_allclose(plain["w"], 0.5 * (a["w"] + b["w"]))
    assert mergers.names() == ["breadcrumbs", "task_arithmetic"]
    with pytest.raises(ValueError, match="drop_top"):
        breadcrumbs(pre, [a], drop_top=0.5, drop_bottom=0.5)


def test_lines_plugin_keeps_the_first_layer_and_round_trips(two_tasks):
    from adaptloop.learners.continual import Continual

    model = registry.create("continual", base=mlp(), plugins=[{"kind": "lines", "alpha": 0.0}])
    first, second = two_tasks.tasks
    model.begin_task(0)
    model.learn(first.X_train, first.y_train)
    model.end_task(first.X_train, first.y_train)
    model.begin_task(1)
    net = model.trainable.network
    before = {k: v.detach().clone() for k, v in net.named_parameters()}
    model.learn(second.X_train, second.y_train)
    saved = model.state_dict()
    copy = model.clone()
    copy.load_state_dict(saved)
    model.end_task(second.X_train, second.y_train)
    after = dict(net.named_parameters())
    assert all((after[k] == before[k]).all() for k in ("0.weight", "0.bias"))
    assert not (after["2.weight"] == before["2.weight"]).all()
    assert isinstance(copy, Continual)
    copy.end_task(second.X_train, second.y_train)  # the restored anchor edits the same way
    for k, v in copy.trainable.network.named_parameters():
        assert (v == after[k]).all()


# -- CLASSP -------------------------------------------------------------------------------------
def _linear_host(seed: int):
    import types

    import torch

    torch.manual_seed(seed)
    net = torch.nn.Linear(3, 2)
    return types.SimpleNamespace(trainable=types.SimpleNamespace(network=net)), net


def test_classp_with_p2_and_no_threshold_is_adagrad():
    import copy

    import torch

    from adaptloop.learners.continual import CLASSP

    host, net = _linear_host(0)
    twin = copy.deepcopy(net)
    adagrad = torch.optim.Adagrad(twin.parameters(), lr=0.05, eps=0.0)
    plugin = CLASSP(power=2.0, threshold=0.0, eps=1e-12)
    X, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    for _ in range(4):
        for model in (net, twin):
            model.zero_grad()
            torch.nn.functional.cross_entropy(model(X), y).backward()
        plugin.adjust_gradient(host, list(net.parameters()))
        with torch.no_grad():
            for p in net.parameters():
                p -= 0.05 * p.grad
        adagrad.step()
    for a, b in zip(net.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_classp_threshold_freezes_weights_with_small_gradients():
    import torch

    from adaptloop.learners.continual import CLASSP

    host, net = _linear_host(1)
    net.weight.grad = torch.tensor([[1e-4, 1.0, -2.0], [0.0, 1e-3, 3.0]])
    net.bias.grad = torch.tensor([0.5, 1e-5])
    CLASSP(threshold=1e-4).adjust_gradient(host, list(net.parameters()))
    assert (net.weight.grad == 0).tolist() == [[True, False, False], [True, True, False]]
    assert net.bias.grad[1] == 0 and net.bias.grad[0] > 0
    plugin = registry.create("continual", base=mlp(), plugins=["classp"]).plugins_[0]
    assert plugin.state_dict() == {"sums": {}}


# -- hypernetwork and MIP -----------------------------------------------------------------------
def _two_permuted_tasks():
    X = np.random.default_rng(0).random((40, 6)).astype(np.float32)
    y = (X[:, 0] > 0.5).astype(np.int64)
    return X, y, X[:, ::-1].copy(), y


def test_hypernetwork_regulariser_keeps_past_tasks_weights():
    from adaptloop.learners.continual import HyperNetwork

    X0, y0, X1, y1 = _two_permuted_tasks()
    drift = {}
    for beta in (0.0, 1.0):
        model = HyperNetwork(hidden=(8,), chunk_size=32, epochs=20, beta=beta, lr=0.01)
        model.begin_task(0)
        model.learn(X0, y0)
        before = model.predict_proba_task(X0, 0)
        model.begin_task(1)
        model.learn(X1, 1 - y1)
        drift[beta] = float(abs(model.predict_proba_task(X0, 0) - before).mean())
    assert drift[1.0] < 0.5 * drift[0.0]


def test_hypernetwork_look_ahead_changes_only_the_regularised_steps_and_keeps_past_tasks():
    X0, y0, X1, y1 = _two_permuted_tasks()

    def run(look_ahead: bool, beta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        model = registry.create(
            "hypernet",
            hidden=(8,),
            chunk_size=32,
            epochs=20,
            lr=0.01,
            beta=beta,
            look_ahead=look_ahead,
        )
        model.begin_task(0)
        model.learn(X0, y0)
        after_first = model.predict_proba_task(X0, 0)
        model.begin_task(1)
        model.learn(X1, 1 - y1)
        return after_first, model.predict_proba_task(X0, 0), model.predict_proba_task(X1, 1)

    plain, ahead = run(False, 1.0), run(True, 1.0)
    np.testing.assert_array_equal(plain[0], ahead[0])  # task 0: nothing to regularise yet
    assert not np.allclose(plain[1], ahead[1])  # task 1: the regulariser is looked ahead
    free = run(True, 0.0)
    assert float(abs(ahead[1] - ahead[0]).mean()) < 0.5 * float(abs(free[1] - free[0]).mean())
    assert (ahead[2].argmax(1) == 1 - y1).mean() >= 0.85  # and the new task is learned


def test_hypernetwork_mip_output_ignores_embedding_magnitude_and_round_trips():
    import torch

    X0, y0, _, _ = _two_permuted_tasks()
    for mip in (True, False):
        model = registry.create("hypernet", hidden=(8,), chunk_size=32, mip=mip)
        model.begin_task(0)
        model.learn(X0, y0)
        copy = model.clone()
        copy.load_state_dict(model.state_dict())
        np.testing.assert_array_equal(copy.predict_proba(X0), model.predict_proba(X0))
        before = model.predict_proba(X0)
        with torch.no_grad():
            model._embeddings[0].mul_(10.0)
        changed = not np.allclose(model.predict_proba(X0), before, atol=1e-6)
        assert changed is not mip
    with pytest.raises(ValueError, match="task"):
        model.begin_task(-1)


# -- Losse --------------------------------------------------------------------------------------
def test_losse_fits_all_past_data_whatever_the_order():
    from adaptloop.learners.models.losse import Losse

    rng = np.random.default_rng(0)
    X = rng.random((300, 2)).astype(np.float32)
    y = np.sin(4 * X[:, 0]) + X[:, 1]
    shifted, shuffled = (
        Losse(n_projections=8, n_bins=8),
        registry.create("losse", n_projections=8, n_bins=8),
    )
    for part in np.array_split(np.argsort(X[:, 0]), 5):  # covariate shift: x0 sweeps up
        shifted.learn(X[part], y[part])
    shuffled.learn(X, y)
    np.testing.assert_allclose(shifted.predict(X), shuffled.predict(X), rtol=1e-4, atol=1e-4)
    phi = shifted.encode(X[:3])
    assert phi.shape == (3, 64) and ((phi > 0).sum(1) <= 16).all()
    np.testing.assert_allclose(phi.reshape(3, 8, 8).sum(2), 1.0)
    copy = shifted.clone()
    copy.load_state_dict(shifted.state_dict())
    np.testing.assert_array_equal(copy.predict(X), shifted.predict(X))
    with pytest.raises(ValueError, match="features"):
        Losse(n_projections=4, n_bins=8).load_state_dict(shifted.state_dict())


# -- recurring tasks ----------------------------------------------------------------------------
def test_recurring_split_digits_repeats_or_draws_tasks():
    from adaptloop.streams.tasks import registry as sequences

    cycle = sequences.create("recurring_split_digits", n_tasks=12)
    assert [t.classes for t in cycle.tasks[:6]] == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (0, 1)]
    np.testing.assert_array_equal(cycle.tasks[5].X_train, cycle.tasks[0].X_train)
    drawn = sequences.create("recurring_split_digits", n_tasks=30, sampling="random", seed=3)
    assert len({t.classes for t in drawn.tasks}) < 30  # pairs come back
    assert all(set(np.unique(t.y_train)) == set(t.classes) for t in drawn.tasks)
    for bad, match in (
        ({"n_tasks": 0}, "n_tasks"),
        ({"classes_per_task": 3}, "classes_per_task"),
        ({"sampling": "zipf"}, "sampling"),
    ):
        with pytest.raises(ValueError, match=match):
            sequences.create("recurring_split_digits", **bad)


# -- federated reconnaissance -------------------------------------------------------------------
def test_federated_reconnaissance_merges_prototypes_exactly(two_tasks):
    from adaptloop.learners.continual import federated_reconnaissance

    first, second = two_tasks.tasks
    server = FirstSessionAdaptation(mlp(epochs=3, batch_size=16), shrinkage=1.0)
    server.learn(first.X_train, first.y_train)
    server.end_task(first.X_train, first.y_train)
    clients, sequential = [], server.clone()
    sequential.load_state_dict(server.state_dict())
    for c in second.classes:
        client = server.clone()
        client.load_state_dict(server.state_dict())
        keep = second.y_train == c
        client.learn(second.X_train[keep], second.y_train[keep])
        sequential.learn(second.X_train[keep], second.y_train[keep])
        clients.append(client)
    merged = federated_reconnaissance(server, clients)
    X = np.concatenate([first.X_test, second.X_test])
    np.testing.assert_allclose(merged.predict_proba(X), sequential.predict_proba(X), atol=1e-6)
    assert server.predict(X).max() <= 1  # the server itself is unchanged
    stranger = FirstSessionAdaptation(mlp(seed=1), shrinkage=1.0)
    stranger.learn(first.X_train, first.y_train)
    stranger.end_task(first.X_train, first.y_train)
    with pytest.raises(ValueError, match=r"clients\[1\]"):
        federated_reconnaissance(server, [clients[0], stranger])


# -- dynamic sparse training --------------------------------------------------------------------
@pytest.mark.parametrize("regrow", ["random", "gradient"])
def test_dst_keeps_earlier_tasks_and_regrows_among_free_connections(two_tasks, regrow):
    from adaptloop.learners.continual import DynamicSparseNetwork

    model = registry.create(
        "dst", n_classes=4, hidden=(32,), density=0.3, update_every=5, regrow=regrow, epochs=3
    )
    first, second = two_tasks.tasks
    model.begin_task(0, first.classes)
    model.learn(first.X_train, first.y_train)
    before = model.predict_proba_task(first.X_test, 0)
    n_first = [int((o == 0).sum()) for o in model.state_dict()["learned"]["owner"]]
    model.begin_task(1, second.classes)
    model.learn(second.X_train, second.y_train)
    owner = model.state_dict()["learned"]["owner"]
    assert [int((o == 0).sum()) for o in owner] == n_first  # frozen, never pruned
    np.testing.assert_array_equal(model.predict_proba_task(first.X_test, 0), before)
    assert all(((o == 1) & (o == 0)).sum() == 0 and (o == 1).sum() > 0 for o in owner)
    acc = model.predict_proba_task(second.X_test, 1)[:, [2, 3]].argmax(1) + 2 == second.y_test
    assert acc.mean() > 0.8
    copy = model.clone()
    copy.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(
        copy.predict_proba(second.X_test), model.predict_proba(second.X_test)
    )
    assert isinstance(copy, DynamicSparseNetwork)
    with pytest.raises(ValueError, match="regrow"):
        DynamicSparseNetwork(regrow="magnitude")


def test_dst_prune_fraction_decays_by_a_cosine_within_each_task(two_tasks):
    from adaptloop.learners.continual import DynamicSparseNetwork

    first, second = two_tasks.tasks
    model = DynamicSparseNetwork(
        n_classes=4, hidden=(16,), prune_fraction=0.4, prune_decay=10, update_every=2
    )
    model.begin_task(0, first.classes)
    assert model.current_prune_fraction() == pytest.approx(0.4)
    model.learn(first.X_train[:160], first.y_train[:160])  # 10 steps of 16
    assert model.current_prune_fraction() == pytest.approx(0.005)
    model.begin_task(1, second.classes)  # the cosine restarts with every task
    assert model.current_prune_fraction() == pytest.approx(0.4)
    assert DynamicSparseNetwork(prune_fraction=0.4).current_prune_fraction() == 0.4


def test_dst_dense_init_keeps_the_dense_networks_weights_under_the_mask(two_tasks):
    from adaptloop.learners.continual import DynamicSparseNetwork

    first = two_tasks.tasks[0]
    weights = {}
    for init in ("dense", "sparse"):
        model = DynamicSparseNetwork(n_classes=4, hidden=(16,), init=init, lr=1e-9, seed=0)
        model.begin_task(0, first.classes)
        model.learn(first.X_train[:16], first.y_train[:16])
        weights[init] = model.state_dict()["learned"]["weights"][0]
    assert np.abs(weights["dense"]).max() <= 1 / np.sqrt(64) + 1e-6
    assert np.abs(weights["sparse"]).max() > 1 / np.sqrt(64)  # drawn for the sparse fan-in
    with pytest.raises(ValueError, match="init"):
        DynamicSparseNetwork(init="kaiming")


# -- registered scenarios -----------------------------------------------------------------------
def test_covariate_shift_stream_arrives_band_by_band():
    from adaptloop.streams import registry as streams

    stream = streams.create("covariate_shift", n=500, n_bands=5, seed=3)
    ((X, y),) = stream.iter_batches(500)
    bounds = [0, *(d.position for d in stream.info.drifts), 500]
    assert len(bounds) == 6 and stream.info.task == "regression"
    for k, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        assert ((X[lo:hi, 0] >= k / 5) & (X[lo:hi, 0] <= (k + 1) / 5)).all()
    np.testing.assert_allclose(y, np.sin(2 * np.pi * X[:, 0]) * np.cos(2 * np.pi * X[:, 1]), 1e-5)
    iid = streams.create("covariate_shift", n=500, n_bands=1, seed=3)
    assert iid.info.drifts == () and next(iid.iter_batches(500))[0].shape == (500, 2)


def test_federated_split_digits_gives_the_server_and_each_client_their_classes():
    from adaptloop.streams.tasks import registry as sequences

    seq = sequences.create("federated_split_digits", base_classes=4, clients=2, seed=1)
    assert [t.classes for t in seq.tasks] == [(0, 1, 2, 3), (4, 5, 6), (7, 8, 9)]
    assert seq.task_names[0].startswith("server:") and seq.scenario == "class"
    with pytest.raises(ValueError, match="clients"):
        sequences.create("federated_split_digits", base_classes=8, clients=3)


def test_the_example_compares_replay_and_replay_free_learners_in_one_run():
    """examples/continual_beyond_replay.toml, cut to its task-incremental Split-Digits, one
    epoch, one seed and four of its learners (the hypernetwork is the slow one; the
    evaluation's tests run it): each gets min-ACC and WC-ACC in one suite."""
    from pathlib import Path

    from adaptloop.config.run import run_experiment
    from adaptloop.config.schema import load_experiment

    path = Path(__file__).resolve().parents[1] / "examples" / "continual_beyond_replay.toml"
    experiment = load_experiment(path)
    tasks = [t.model_copy(update={"epochs": 1}) for t in experiment.tasks if t.scenario == "task"]
    evaluation = experiment.evaluation.model_copy(update={"seeds": [0], "eval_every": 50})
    names = ("er", "lines", "fsa", "dst")
    learners = {k: experiment.learners[k] for k in names}
    update = {"tasks": tasks[:1], "evaluation": evaluation, "learners": learners}
    summary = run_experiment(experiment.model_copy(update=update)).summary("split_digits_task")
    assert list(summary) == list(names)
    assert all(0 <= s["min_acc"] <= 1 and 0 <= s["wc_acc"] <= 1 for s in summary.values())
    assert summary["dst"]["avg_acc"] > 0.6  # told each test set's task: its own sub-network
    kept = {name: s["stored_samples"] for name, s in summary.items()}
    assert kept == {"er": 200, "lines": 0, "fsa": 0, "dst": 0}  # the cost replay pays
