"""Continual learning beyond replay, on the 8x8 digits, seeds 0-2 (means over seeds).

An MLP 64-100-100-10 (SGD lr 0.1, batches of 16, 4 epochs per task) unless said otherwise, on
the seeded stratified 70/30 split of :func:`~adaptloop.streams.tasks.load_digits_arrays`.
Curves and min-ACC / WC-ACC come from :func:`~adaptloop.evaluation.continual.continual_evaluation`
(evaluated every 10 iterations) where the method needs no task identity at test time.

- ``hypernet_minus_ewc_pts``: Permuted-Digits (5 tasks), target MLP 64-100-10: the LSTM
  hypernetwork (Adam 1e-3, batches of 32, told each test set's task) minus EWC (one shared
  head), final average accuracy, points.
- ``mip_steps_to_target_ratio``: mini-batches (of 32) until the hypernetwork reaches 90 %
  training accuracy on all digits (checked every 10), MIP over plain.
- ``fsa_minus_er_pts``: Split-Digits class-incremental: First Session Adaptation (no replay)
  minus ER (reservoir of 200), final average accuracy, points.
- ``lines_forgetting_over_finetune``: Split-Digits task-incremental, fine-tuning with and
  without the ``lines`` plugin (alpha 0, beta 1); forgetting = mean over tasks 1-4 of
  (accuracy after its own end_task - final accuracy); the target accuracy is printed too.
- ``breadcrumbs_minus_task_arithmetic_pts``: a model pre-trained on all digits rotated by 90
  degrees, fine-tuned apart on each Split-Digits pair, the 5 task vectors merged; each
  method's scale is chosen from a grid on 20 % of the training data held out (never on the
  test data); average task-incremental test accuracy, points.
- ``classp_minus_finetune_pts``: Permuted-Digits (5 tasks, domain-incremental): CLASSP
  (alpha 0.01, PyTorch's AdaGrad default; also shown at 0.1) minus fine-tuning; Split-Digits
  class-incremental and EWC are printed beside.
- ``dst_minus_finetune_pts``: Split-Digits task-incremental: dynamic sparse training
  (density 0.2, random regrowth; gradient regrowth printed too), told each test set's task,
  minus fine-tuning (the same run as the LiNeS comparison's), final average accuracy, points.
- ``losse_rmse_over_mlp_after_shift``: ``y = sin(2 pi x0) cos(2 pi x1)`` on the unit square
  (not digits), inputs arriving in 5 bands of ``x0``: Losse-FTL (one pass) over an MLP
  64-64 (Adam defaults of ``mlp_regressor``, lr 0.01, 20 epochs per band), RMSE on the whole
  square; the MLP trained on all data shuffled is printed as the no-shift reference.
- ``recurrence_gain_pts``: fine-tuning on ``recurring_split_digits`` (the 5 pairs repeated 4
  times, 1 epoch each) minus the 5 pairs once (4 epochs each): the same SGD steps.
- ``fedrecon_minus_local_pts``: FSA body adapted on digits 0-4 (prototype head), three
  clients learn 5-6, 7-8 and 9 apart; merged model minus the clients' own, accuracy on all
  10 classes, points.

The LAST line is one JSON object.

    OMP_NUM_THREADS=1 python benchmarks/continual_beyond_replay.py
"""

from __future__ import annotations

import json

import numpy as np
import torch

from adaptloop.evaluation.continual import continual_evaluation
from adaptloop.learners import MLPClassifier, MLPRegressor
from adaptloop.learners.continual import (
    CLASSP,
    EWC,
    Continual,
    DynamicSparseNetwork,
    FirstSessionAdaptation,
    HyperNetwork,
    LiNeS,
    Replay,
    federated_reconnaissance,
    mergers,
)
from adaptloop.learners.models.losse import Losse
from adaptloop.streams.tasks import load_digits_arrays, registry, rotated, split

SEEDS = (0, 1, 2)
BATCH, EPOCHS = 16, 4
GRID = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0)


def mlp(seed: int, **kw) -> MLPClassifier:
    params = {"hidden": (100, 100), "lr": 0.1, "optimizer": "sgd", "standardize": False}
    return MLPClassifier(n_classes=10, seed=seed, **{**params, **kw})


def accuracy(model, X: np.ndarray, y: np.ndarray, classes=None) -> float:
    """Accuracy; with ``classes`` the arg-max over those labels only (task-incremental)."""
    if classes is None:
        return float((model.predict(X) == y).mean())
    proba = model.predict_proba(X)[:, list(classes)]
    return float((np.asarray(classes)[proba.argmax(1)] == y).mean())


def fsa_vs_er(seed: int) -> dict[str, float]:
    learners = {
        "fsa": FirstSessionAdaptation(mlp(seed)),
        "er": Continual(mlp(seed), [Replay(memory=200)], seed=seed),
        "finetune": Continual(mlp(seed), [], seed=seed),
    }
    result = continual_evaluation(
        registry.create("split_digits", seed=seed),
        learners,
        batch_size=BATCH,
        epochs=EPOCHS,
        eval_every=10,
        seed=seed,
    )
    return {name: s for name, s in result.summary.items()}


def train_sequence(model, sequence, seed: int) -> list[list[float]]:
    """Train on the tasks in order (hooks as the continual evaluation calls them); after each
    task's ``end_task``, the accuracy on every task's test set (task-incremental if so)."""
    rng = np.random.default_rng(seed)
    rows = []
    for t, task in enumerate(sequence):
        model.begin_task(t, task.classes if sequence.scenario == "task" else None)
        for _ in range(EPOCHS):
            order = rng.permutation(len(task.y_train))
            for lo in range(0, len(order), BATCH):
                idx = order[lo : lo + BATCH]
                model.learn(task.X_train[idx], task.y_train[idx])
        model.end_task(task.X_train, task.y_train)
        classes = (lambda k: sequence.tasks[k].classes) if sequence.scenario == "task" else None
        rows.append(
            [
                accuracy(model, s.X_test, s.y_test, None if classes is None else classes(k))
                for k, s in enumerate(sequence)
            ]
        )
    return rows


def forgetting(rows: list[list[float]]) -> float:
    final = rows[-1]
    return float(np.mean([rows[k][k] - final[k] for k in range(len(rows) - 1)]))


def lines_vs_finetune(seed: int) -> dict[str, dict[str, float]]:
    sequence = registry.create("split_digits", scenario="task", seed=seed)
    out = {}
    for name, plugins in (("finetune", []), ("lines", [LiNeS(alpha=0.0, beta=1.0)])):
        rows = train_sequence(Continual(mlp(seed), plugins, seed=seed), sequence, seed)
        out[name] = {"forgetting": forgetting(rows), "avg_acc": float(np.mean(rows[-1]))}
    return out


def dst_vs_finetune(seed: int) -> dict[str, float]:
    """Split-Digits task-incremental: dynamic sparse training (density 0.2, random and
    gradient regrowth), told each test set's task; final average task-incremental accuracy."""
    sequence = registry.create("split_digits", scenario="task", seed=seed)
    out = {}
    for regrow in ("random", "gradient"):
        model = DynamicSparseNetwork(
            n_classes=10, hidden=(100, 100), regrow=regrow, epochs=EPOCHS, seed=seed
        )
        for t, task in enumerate(sequence):
            model.begin_task(t, task.classes)
            model.learn(task.X_train, task.y_train)
        accs = []
        for t, task in enumerate(sequence):
            proba = model.predict_proba_task(task.X_test, t)[:, list(task.classes)]
            accs.append(float((np.asarray(task.classes)[proba.argmax(1)] == task.y_test).mean()))
        out[f"dst_{regrow}"] = mean(accs)
    return out


def merging(seed: int) -> dict[str, float]:
    X_train, y_train, X_test, y_test = load_digits_arrays(seed=seed)
    rng = np.random.default_rng(seed)
    held = rng.random(len(y_train)) < 0.2
    pre_data = rotated(X_train, y_train, X_test, y_test, angles=(90.0,)).tasks[0]
    pretrained = mlp(seed, epochs=EPOCHS, batch_size=BATCH)
    pretrained.learn(pre_data.X_train, pre_data.y_train)
    theta0 = {k: v.detach().clone() for k, v in pretrained.network.named_parameters()}
    tasks = split(
        X_train[~held], y_train[~held], X_test, y_test, [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    )
    finetuned = []
    for task in tasks:
        model = copy_of(pretrained)
        model.learn(task.X_train, task.y_train)  # epochs and batches as pre-training
        finetuned.append({k: v.detach().clone() for k, v in model.network.named_parameters()})
    groups = [t.classes for t in tasks]

    def score(weights, X, y) -> float:
        model = copy_of(pretrained)
        with torch.no_grad():
            for k, p in model.network.named_parameters():
                p.copy_(weights[k])
        return float(
            np.mean([accuracy(model, X[np.isin(y, g)], y[np.isin(y, g)], g) for g in groups])
        )

    out = {}
    for name in ("task_arithmetic", "breadcrumbs"):
        merge = mergers.get(name)
        best = max(
            GRID,
            key=lambda s: score(merge(theta0, finetuned, scale=s), X_train[held], y_train[held]),
        )
        out[name] = score(merge(theta0, finetuned, scale=best), X_test, y_test)
        out[f"{name}_scale"] = best
    out["pretrained"] = score(theta0, X_test, y_test)
    return out


def copy_of(model: MLPClassifier) -> MLPClassifier:
    """An independent copy of a trained model (weights and optimiser state)."""
    twin = model.clone()
    twin.load_state_dict(model.state_dict())
    return twin


def hypernet_vs_ewc(seed: int) -> dict[str, float]:
    """Permuted-Digits (5 tasks), target MLP 64-100-10: the hypernetwork told each test set's
    task (task-incremental), EWC with one shared head; final average accuracy."""
    sequence = registry.create("permuted_digits", n_tasks=5, seed=seed)
    hyper = HyperNetwork(n_classes=10, hidden=(100,), epochs=EPOCHS, batch_size=32, seed=seed)
    ewc = Continual(mlp(seed, hidden=(100,), epochs=EPOCHS, batch_size=BATCH), [EWC()], seed=seed)
    for t, task in enumerate(sequence):
        for model in (hyper, ewc):
            model.begin_task(t)
            model.learn(task.X_train, task.y_train)
            model.end_task(task.X_train, task.y_train)
    return {
        "hypernet": mean(
            [
                accuracy_of(hyper.predict_proba_task(s.X_test, t), s.y_test)
                for t, s in enumerate(sequence)
            ]
        ),
        "ewc": mean([accuracy(ewc, s.X_test, s.y_test) for s in sequence]),
    }


def accuracy_of(proba: np.ndarray, y: np.ndarray) -> float:
    return float((proba.argmax(1) == y).mean())


def mip_steps(seed: int, target: float = 0.9, limit: int = 3000) -> dict[str, float]:
    """Steps (mini-batches of 32) until the hypernetwork's training accuracy on the digits
    reaches ``target`` (checked every 10 steps), plain vs MIP; ``limit`` when never."""
    X, y, _, _ = load_digits_arrays(seed=seed)
    out = {}
    for name, mip in (("plain", False), ("mip", True)):
        model = HyperNetwork(n_classes=10, hidden=(100,), mip=mip, batch_size=32, seed=seed)
        model.begin_task(0)
        rng = np.random.default_rng(seed)
        steps = limit
        for step in range(1, limit + 1):
            idx = rng.choice(len(y), 32, replace=False)
            model.learn(X[idx], y[idx])
            if step % 10 == 0 and accuracy_of(model.predict_proba(X), y) >= target:
                steps = step
                break
        out[name] = steps
    return out


def classp_vs_finetune(seed: int) -> dict[str, dict]:
    """Permuted-Digits (5 tasks, domain-incremental) and Split-Digits (class-incremental):
    CLASSP at alpha 0.01 (PyTorch's AdaGrad default) and at the fine-tuning lr 0.1, EWC and
    fine-tuning (SGD lr 0.1); min-ACC / WC-ACC / final average accuracy."""
    out = {}
    for name, sequence in (
        ("permuted", registry.create("permuted_digits", n_tasks=5, seed=seed)),
        ("split_class", registry.create("split_digits", seed=seed)),
    ):
        learners = {
            "finetune": Continual(mlp(seed), [], seed=seed),
            "classp": Continual(mlp(seed, lr=0.01), [CLASSP()], seed=seed),
            "classp_lr0.1": Continual(mlp(seed), [CLASSP()], seed=seed),
            "ewc": Continual(mlp(seed), [EWC()], seed=seed),
        }
        result = continual_evaluation(
            sequence, learners, batch_size=BATCH, epochs=EPOCHS, eval_every=10, seed=seed
        )
        out[name] = result.summary
    return out


def recurrence(seed: int) -> dict[str, dict]:
    """Fine-tuning on the 5 Split-Digits pairs repeated 4 times, 1 epoch per task
    (``recurring_split_digits``), vs the 5 pairs once with 4 epochs each: the same SGD steps."""
    runs = {
        "recurring": (registry.create("recurring_split_digits", n_tasks=20, seed=seed), 1),
        "once": (registry.create("split_digits", seed=seed), EPOCHS),
    }
    out = {}
    for name, (sequence, epochs) in runs.items():
        result = continual_evaluation(
            sequence,
            {"finetune": Continual(mlp(seed), [], seed=seed)},
            batch_size=BATCH,
            epochs=epochs,
            eval_every=10,
            seed=seed,
        )
        out[name] = result.summary["finetune"]
    return out


def covariate_shift(seed: int, n: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """``y = sin(2 pi x0) cos(2 pi x1)``, ``x`` uniform on the unit square (float32)."""
    X = np.random.default_rng(seed).random((n, 2)).astype(np.float32)
    return X, (np.sin(2 * np.pi * X[:, 0]) * np.cos(2 * np.pi * X[:, 1])).astype(np.float32)


def losse_vs_mlp(seed: int) -> dict[str, float]:
    """Covariate shift: the training inputs arrive in 5 bands of ``x0`` (left to right); Losse
    learns each band once, the MLP 20 epochs per band; RMSE on the whole square afterwards
    (and the MLP trained on all the data shuffled, the no-shift reference)."""
    X, y = covariate_shift(seed)
    X_test, y_test = covariate_shift(1000 + seed)
    band = np.minimum((X[:, 0] * 5).astype(int), 4)
    net = {"hidden": (64, 64), "lr": 0.01, "epochs": 20, "batch_size": BATCH, "seed": seed}
    losse, shifted, iid = Losse(seed=seed), MLPRegressor(**net), MLPRegressor(**net)
    for k in range(5):
        losse.learn(X[band == k], y[band == k])
        shifted.learn(X[band == k], y[band == k])
    iid.learn(X, y)

    def rmse(model) -> float:
        return float(np.sqrt(np.mean((model.predict(X_test) - y_test) ** 2)))

    return {"losse": rmse(losse), "mlp_shift": rmse(shifted), "mlp_iid": rmse(iid)}


def mean(values) -> float:
    return float(np.mean(values))


def fedrecon(seed: int) -> dict[str, float]:
    """The server adapts the body on digits 0-4 (FSA first session, prototype head:
    shrinkage 1); three clients copy it and learn 5-6, 7-8 and 9 apart; accuracy on the whole
    test set of the merged model and (mean) of the clients' own models."""
    X_train, y_train, X_test, y_test = load_digits_arrays(seed=seed)
    server = FirstSessionAdaptation(mlp(seed, epochs=EPOCHS, batch_size=BATCH), shrinkage=1.0)
    base = y_train < 5
    server.learn(X_train[base], y_train[base])
    server.end_task(X_train[base], y_train[base])
    clients = []
    for classes in ([5, 6], [7, 8], [9]):
        client = server.clone()
        client.load_state_dict(server.state_dict())
        own = np.isin(y_train, classes)
        client.learn(X_train[own], y_train[own])
        clients.append(client)
    merged = federated_reconnaissance(server, clients)
    return {
        "merged": accuracy(merged, X_test, y_test),
        "local": mean([accuracy(c, X_test, y_test) for c in clients]),
    }


def record(table: dict, row: str, metrics: dict) -> None:
    """Append one seed's scalar metrics to ``table[row]``."""
    for key, value in metrics.items():
        if isinstance(value, (int, float)):
            table.setdefault(row, {}).setdefault(key, []).append(float(value))


def main() -> None:
    torch.set_num_threads(1)
    table: dict[str, dict[str, list[float]]] = {}
    for seed in SEEDS:
        for name, s in fsa_vs_er(seed).items():
            record(table, f"split_class/{name}", s)
        for name, s in lines_vs_finetune(seed).items():
            record(table, f"split_task_lines/{name}", s)
        record(table, "split_task_dst/avg_acc", dst_vs_finetune(seed))
        record(table, "merging", merging(seed))
        for sequence, summary in classp_vs_finetune(seed).items():
            for name, s in summary.items():
                record(table, f"classp_{sequence}/{name}", s)
        record(table, "permuted_task/avg_acc", hypernet_vs_ewc(seed))
        record(table, "mip_steps_to_90pct", mip_steps(seed))
        record(table, "covariate_shift_rmse", losse_vs_mlp(seed))
        record(table, "fedrecon_all_classes_acc", fedrecon(seed))
        for name, s in recurrence(seed).items():
            record(table, f"recurrence/{name}", s)
    print(f"{'experiment/method':32s} metric: mean over seeds {SEEDS} (per seed)")
    for row, metrics in table.items():
        for key, values in metrics.items():
            shown = ", ".join(f"{v:.3f}" for v in values)
            print(f"{row:32s} {key}: {mean(values):.3f} ({shown})")

    def m(row: str, key: str) -> float:
        return mean(table[row][key])

    mip = table["mip_steps_to_90pct"]
    result = {
        "hypernet_minus_ewc_pts": round(
            100 * (m("permuted_task/avg_acc", "hypernet") - m("permuted_task/avg_acc", "ewc")), 2
        ),
        "mip_steps_to_target_ratio": round(mean(mip["mip"]) / mean(mip["plain"]), 3),
        "fsa_minus_er_pts": round(
            100 * (m("split_class/fsa", "avg_acc") - m("split_class/er", "avg_acc")), 2
        ),
        "lines_forgetting_over_finetune": round(
            m("split_task_lines/lines", "forgetting")
            / m("split_task_lines/finetune", "forgetting"),
            3,
        ),
        "breadcrumbs_minus_task_arithmetic_pts": round(
            100 * (m("merging", "breadcrumbs") - m("merging", "task_arithmetic")), 2
        ),
        "classp_minus_finetune_pts": round(
            100
            * (m("classp_permuted/classp", "avg_acc") - m("classp_permuted/finetune", "avg_acc")),
            2,
        ),
        "dst_minus_finetune_pts": round(
            100
            * (
                m("split_task_dst/avg_acc", "dst_random")
                - m("split_task_lines/finetune", "avg_acc")
            ),
            2,
        ),
        "losse_rmse_over_mlp_after_shift": round(
            m("covariate_shift_rmse", "losse") / m("covariate_shift_rmse", "mlp_shift"), 3
        ),
        "recurrence_gain_pts": round(
            100 * (m("recurrence/recurring", "avg_acc") - m("recurrence/once", "avg_acc")), 2
        ),
        "fedrecon_minus_local_pts": round(
            100
            * (m("fedrecon_all_classes_acc", "merged") - m("fedrecon_all_classes_acc", "local")),
            2,
        ),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
