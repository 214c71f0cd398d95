"""Continual learning beyond replay, on the 8x8 digits, seeds 0-2 (means over seeds).

The continual comparisons run ``examples/continual_beyond_replay.toml`` (as ``adaptloop run``
does: the same file, the same code path) and read its suite: an MLP 64-100-100-10 (SGD lr
0.1, batches of 16, 4 epochs per task, evaluated every 10 iterations) for every plugin
learner, on Split-Digits class-incremental, Split-Digits task-incremental and Permuted-Digits
(5 tasks) task-incremental, the task known at test time (the hypernetwork and DST are asked
``predict_proba_task`` with each test set's task; the others' arg-max is over the task's
classes, all 10 on Permuted-Digits).

- ``hypernet_minus_ewc_pts``: Permuted-Digits: the LSTM hypernetwork (target 64-100-10, Adam
  1e-3, one step per batch of 16) minus EWC (one shared head), final average accuracy, points.
- ``mip_steps_to_target_ratio``: mini-batches (of 32) until the hypernetwork reaches 90 %
  training accuracy on all digits (checked every 10), MIP over plain;
  ``mip_continual_steps_ratio``: in the example's Permuted-Digits run, iterations from each
  task's start until its own test accuracy reaches 90 % (at the evaluation points), MIP over
  plain; ``mip_minus_plain_hypernet_pts``: final average accuracy there.
- ``fsa_minus_er_pts``: Split-Digits class-incremental: First Session Adaptation (no replay)
  minus ER (reservoir of 200), final average accuracy, points.
- ``lines_forgetting_over_finetune``: Split-Digits task-incremental, fine-tuning with and
  without the ``lines`` plugin (alpha 0, beta 1); forgetting = mean over tasks 0-3 of (its
  accuracy at its own last point, after its ``end_task`` edit, - final accuracy).
- ``breadcrumbs_minus_task_arithmetic_pts``: a model pre-trained on all digits rotated by 90
  degrees, fine-tuned apart on each Split-Digits pair, the 5 task vectors merged; each
  method's scale is chosen from a grid on 20 % of the training data held out (never on the
  test data), Breadcrumbs with the paper's masks (1 % / 85 %);
  ``breadcrumbs_heldout_masks_minus_task_arithmetic_pts``: the masks chosen on the held-out
  20 % too; average task-incremental test accuracy, points.
- ``classp_minus_finetune_pts``: Permuted-Digits: CLASSP (SGD, lr 0.03, chosen on held-out
  data) minus fine-tuning.
- ``dst_minus_finetune_pts``: Split-Digits task-incremental: dynamic sparse training
  (density 0.2, random regrowth, masks updated every 16 steps with the pruned fraction
  decaying by a cosine over a task; its init and schedule chosen on held-out data) minus
  fine-tuning, final average accuracy, points.
- ``losse_rmse_over_mlp_after_shift``: the ``covariate_shift`` stream (``y = sin(2 pi x0)
  cos(2 pi x1)``, inputs arriving in 5 bands of ``x0``; not digits): Losse-FTL (one pass) over
  an MLP 64-64 (Adam, lr 0.01, 20 epochs per band), RMSE on the whole square; the MLP trained
  on all data shuffled is printed as the no-shift reference.
- ``recurrence_gain_pts``: fine-tuning on ``recurring_split_digits`` (the 5 pairs repeated 4
  times, 1 epoch each) minus the 5 pairs once (4 epochs each): the same SGD steps.
- ``fedrecon_minus_local_pts``: ``federated_split_digits``: FSA body adapted on digits 0-4
  (prototype head), three clients learn 5-6, 7-8 and 9 apart; merged model minus the clients'
  own, accuracy on all 10 classes, points.

- ``look_ahead_minus_plain_hypernet_pts`` (only with ``--look-ahead``, about 5 more minutes):
  the example's Permuted-Digits task-IL hypernetwork with von Oswald's look-ahead regulariser
  minus without it, same seeds, final average accuracy, points.

Choices made on data held out of the training sets, never on the reported test sets:
``--select`` prints them (CLASSP's learning rate; DST's init and mask schedule).

The LAST line is one JSON object.

    OMP_NUM_THREADS=1 python benchmarks/continual_beyond_replay.py
    OMP_NUM_THREADS=1 python benchmarks/continual_beyond_replay.py --select
    OMP_NUM_THREADS=1 python benchmarks/continual_beyond_replay.py --look-ahead
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from adaptloop.config.run import run_experiment
from adaptloop.config.schema import load_experiment, parse_experiment
from adaptloop.evaluation.continual import ContinualResult, ContinualSuite, continual_evaluation
from adaptloop.learners import MLPClassifier, MLPRegressor
from adaptloop.learners.continual import (
    CLASSP,
    Continual,
    DynamicSparseNetwork,
    FirstSessionAdaptation,
    HyperNetwork,
    federated_reconnaissance,
    mergers,
)
from adaptloop.learners.models.losse import Losse
from adaptloop.streams import registry as streams
from adaptloop.streams.tasks import (
    PAIRS,
    TaskSequence,
    load_digits_arrays,
    permuted,
    registry,
    rotated,
    split,
)

SEEDS = (0, 1, 2)
BATCH, EPOCHS = 16, 4
GRID = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0)
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "continual_beyond_replay.toml"
BREADCRUMBS_MASKS = ((0.01, 0.85), (0.01, 0.5), (0.01, 0.2), (0.0, 0.5), (0.0, 0.2))
"""Breadcrumbs' (drop_top, drop_bottom) tried with every scale on the held-out 20 %."""
CLASSP_LRS = (0.003, 0.01, 0.03, 0.1, 0.3)
"""CLASSP's learning rates tried on the held-out split (``--select``)."""
DST_SETTINGS = {"update_every": 16, "prune_decay": 64, "epochs": 1, "batch_size": 16}
"""DST as the example runs it: masks updated once per epoch (16 batches), the pruned fraction
decaying over a task's 64 steps."""
DST_SCHEDULES = {
    "every16_cosine64": DST_SETTINGS,
    "every100_constant": {**DST_SETTINGS, "update_every": 100, "prune_decay": None},
}
"""DST's mask schedules tried on the held-out split (``--select``): the example's, and the
defaults (every 100 steps, constant fraction: about once per two tasks at this scale)."""


def mlp(seed: int, **kw) -> MLPClassifier:
    params = {"hidden": (100, 100), "lr": 0.1, "optimizer": "sgd", "standardize": False}
    return MLPClassifier(n_classes=10, seed=seed, **{**params, **kw})


def accuracy(model, X: np.ndarray, y: np.ndarray, classes=None) -> float:
    """Accuracy; with ``classes`` the arg-max over those labels only (task-incremental)."""
    if classes is None:
        return float((model.predict(X) == y).mean())
    proba = model.predict_proba(X)[:, list(classes)]
    return float((np.asarray(classes)[proba.argmax(1)] == y).mean())


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

    def held_out(settings: dict) -> float:
        return score(merge(theta0, finetuned, **settings), X_train[held], y_train[held])

    out = {}
    candidates = {
        "task_arithmetic": [{"scale": s} for s in GRID],
        "breadcrumbs": [{"scale": s} for s in GRID],  # the paper's masks: 1 % / 85 %
        "breadcrumbs_masks": [
            {"scale": s, "drop_top": top, "drop_bottom": bottom}
            for s in GRID
            for top, bottom in BREADCRUMBS_MASKS
        ],
    }
    for name, grid in candidates.items():
        merge = mergers.get(name.removesuffix("_masks"))
        best = max(grid, key=held_out)
        out[name] = score(merge(theta0, finetuned, **best), X_test, y_test)
        out[f"{name}_scale"] = best["scale"]
        if "drop_bottom" in best:
            out[f"{name}_drop_bottom"] = best["drop_bottom"]
    out["pretrained"] = score(theta0, X_test, y_test)
    return out


def copy_of(model: MLPClassifier) -> MLPClassifier:
    """An independent copy of a trained model (weights and optimiser state)."""
    twin = model.clone()
    twin.load_state_dict(model.state_dict())
    return twin


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


def losse_vs_mlp(seed: int) -> dict[str, float]:
    """Covariate shift (the ``covariate_shift`` stream): the training inputs arrive in 5 bands
    of ``x0`` (left to right); Losse learns each band once, the MLP 20 epochs per band; RMSE
    on the whole square afterwards (the stream with one band, i.i.d.) and the MLP trained on
    all the data shuffled, the no-shift reference."""
    stream = streams.create("covariate_shift", n=2000, n_bands=5, seed=seed)
    ((X, y),) = stream.iter_batches(2000)
    ((X_test, y_test),) = streams.create(
        "covariate_shift", n_bands=1, seed=1000 + seed
    ).iter_batches(2000)
    bounds = [0, *(d.position for d in stream.info.drifts), len(y)]
    net = {"hidden": (64, 64), "lr": 0.01, "epochs": 20, "batch_size": BATCH, "seed": seed}
    losse, shifted, iid = Losse(seed=seed), MLPRegressor(**net), MLPRegressor(**net)
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        losse.learn(X[lo:hi], y[lo:hi])
        shifted.learn(X[lo:hi], y[lo:hi])
    iid.learn(*next(streams.create("covariate_shift", n_bands=1, seed=seed).iter_batches(2000)))

    def rmse(model) -> float:
        return float(np.sqrt(np.mean((model.predict(X_test) - y_test) ** 2)))

    return {"losse": rmse(losse), "mlp_shift": rmse(shifted), "mlp_iid": rmse(iid)}


def mean(values) -> float:
    return float(np.mean(values))


def fedrecon(seed: int) -> dict[str, float]:
    """``federated_split_digits``: the server adapts the body on its digits 0-4 (FSA first
    session, prototype head: shrinkage 1); three clients copy it and learn 5-6, 7-8 and 9
    apart; accuracy on the whole test set of the merged model and (mean) of the clients' own."""
    server_task, *client_tasks = registry.create("federated_split_digits", seed=seed).tasks
    _, _, X_test, y_test = load_digits_arrays(seed=seed)
    server = FirstSessionAdaptation(mlp(seed, epochs=EPOCHS, batch_size=BATCH), shrinkage=1.0)
    server.learn(server_task.X_train, server_task.y_train)
    server.end_task(server_task.X_train, server_task.y_train)
    clients = []
    for task in client_tasks:
        client = server.clone()
        client.load_state_dict(server.state_dict())
        client.learn(task.X_train, task.y_train)
        clients.append(client)
    merged = federated_reconnaissance(server, clients)
    return {
        "merged": accuracy(merged, X_test, y_test),
        "local": mean([accuracy(c, X_test, y_test) for c in clients]),
    }


def held_out_sequences(seed: int) -> dict[str, TaskSequence]:
    """Split- and Permuted-Digits (task-incremental) built from ``seed``'s TRAINING data only:
    70 % of it trains, the other 30 % is the "test" set the choices are scored on. The
    reported test sets are never used to choose anything."""
    from sklearn.model_selection import train_test_split

    X, y, _, _ = load_digits_arrays(seed=seed)
    X_fit, X_val, y_fit, y_val = train_test_split(
        X, y, test_size=0.3, random_state=100 + seed, stratify=y
    )
    data = (X_fit, y_fit, X_val, y_val)
    return {
        "split_task": split(*data, PAIRS, scenario="task", name="held_out_split"),
        "permuted_task": permuted(*data, n_tasks=5, seed=seed, scenario="task"),
    }


def select(seeds=SEEDS) -> dict[str, dict[str, float]]:
    """Held-out choice of CLASSP's learning rate (on Permuted-Digits, its key's sequence) and
    of DST's initialisation and mask schedule (on Split-Digits task-incremental): final
    average accuracy on the held-out part of the training data, mean over ``seeds``."""
    scores: dict[str, dict[str, list[float]]] = {"classp_lr": {}, "dst_init": {}}
    for seed in seeds:
        sequences = held_out_sequences(seed)
        classp = {str(lr): Continual(mlp(seed, lr=lr), [CLASSP()], seed=seed) for lr in CLASSP_LRS}
        dst = {
            f"{init}/{label}": DynamicSparseNetwork(
                n_classes=10, hidden=(100, 100), init=init, seed=seed, **settings
            )
            for init in ("dense", "sparse")
            for label, settings in DST_SCHEDULES.items()
        }
        for key, name, learners in (
            ("classp_lr", "permuted_task", classp),
            ("dst_init", "split_task", dst),
        ):
            result = continual_evaluation(
                sequences[name], learners, BATCH, EPOCHS, eval_every=10_000, seed=seed
            )
            for choice, summary in result.summary.items():
                scores[key].setdefault(choice, []).append(summary["avg_acc"])
    return {k: {c: mean(v) for c, v in per.items()} for k, per in scores.items()}


def record(table: dict, row: str, metrics: dict) -> None:
    """Append one seed's scalar metrics to ``table[row]``."""
    for key, value in metrics.items():
        if isinstance(value, (int, float)):
            table.setdefault(row, {}).setdefault(key, []).append(float(value))


def forgetting(result: ContinualResult, learner: str) -> float:
    """Mean over tasks but the last of (accuracy at the task's own last point, after its
    ``end_task`` - final accuracy)."""
    its, acc = result.curves(learner)
    ends = result.task_boundaries[1:]
    rows = [int(np.flatnonzero(its <= end)[-1]) for end in ends]
    return float(np.mean([acc[row, k] - acc[-1, k] for k, row in enumerate(rows)]))


def steps_to(result: ContinualResult, learner: str, target: float = 0.9) -> float:
    """Mean over tasks of the iterations from a task's start until its own test accuracy
    first reaches ``target`` (at the evaluation points; the task's length if never)."""
    its, acc = result.curves(learner)
    bounds = [*result.task_boundaries, int(its[-1])]
    steps = []
    for k in range(len(result.task_boundaries)):
        own = (its > bounds[k]) & (its <= bounds[k + 1])
        hit = own & (acc[:, k] >= target)
        steps.append((its[hit][0] if hit.any() else bounds[k + 1]) - bounds[k])
    return float(np.mean(steps))


def run_example() -> ContinualSuite:
    """examples/continual_beyond_replay.toml, run as ``adaptloop run`` runs it."""
    return run_experiment(load_experiment(EXAMPLE))  # type: ignore[return-value]


LOOK_AHEAD = """
name = "hypernet_look_ahead"
seed = 0

[[tasks]]
kind = "permuted_digits"
n_tasks = 5
scenario = "task"
batch_size = 16
epochs = 4

[learners.hypernet]
kind = "hypernet"
hidden = [100]
batch_size = 32

[learners.hypernet_look_ahead]   # von Oswald's eq. (2) regulariser at Theta + Delta Theta
kind = "hypernet"
hidden = [100]
batch_size = 32
look_ahead = true

[evaluation]
seeds = [0, 1, 2]
eval_every = 10
windows = [10]
"""


def run_look_ahead() -> ContinualSuite:
    """The example's Permuted-Digits task-IL sequence and hypernetwork, without and with the
    look-ahead (``--look-ahead``: about 5 more minutes)."""
    return run_experiment(parse_experiment(LOOK_AHEAD, "look_ahead"))  # type: ignore[return-value]


def main() -> None:
    torch.set_num_threads(1)
    if "--select" in sys.argv:
        for key, scores in select().items():
            best = max(scores, key=scores.get)
            shown = ", ".join(f"{c}: {v:.4f}" for c, v in scores.items())
            print(f"{key}: {shown} -> {best}")
        return
    table: dict[str, dict[str, list[float]]] = {}
    if "--look-ahead" in sys.argv:
        for result in run_look_ahead().runs["permuted_digits_task"].values():
            for name, s in result.summary.items():
                record(table, f"look_ahead/{name}", s)
    suite = run_example()
    for sequence, runs in suite.runs.items():
        for result in runs.values():
            for name, s in result.summary.items():
                record(table, f"{sequence}/{name}", s)
            if sequence == "split_digits_task":
                for name in ("finetune", "lines"):
                    record(table, f"{sequence}/{name}", {"forgetting": forgetting(result, name)})
            if sequence == "permuted_digits_task":
                for name in ("hypernet", "hypernet_mip"):
                    record(table, f"{sequence}/{name}", {"steps_to_90pct": steps_to(result, name)})
    for seed in SEEDS:
        record(table, "merging", merging(seed))
        record(table, "mip_steps_to_90pct", mip_steps(seed))
        record(table, "covariate_shift_rmse", losse_vs_mlp(seed))
        record(table, "fedrecon_all_classes_acc", fedrecon(seed))
        for name, s in recurrence(seed).items():
            record(table, f"recurrence/{name}", s)
    shown_keys = ("avg_acc", "min_acc", "wc_acc", "forgetting", "steps_to_90pct", "train_seconds")
    print(f"{'experiment/method':32s} metric: mean over seeds {SEEDS} (per seed)")
    for row, metrics in table.items():
        for key, values in metrics.items():
            if "/" in row and not row.startswith("recurrence") and key not in shown_keys:
                continue
            shown = ", ".join(f"{v:.3f}" for v in values)
            print(f"{row:32s} {key}: {mean(values):.3f} ({shown})")

    def m(row: str, key: str) -> float:
        return mean(table[row][key])

    def pts(a: str, b: str, key: str = "avg_acc") -> float:
        return round(100 * (m(a, key) - m(b, key)), 2)

    mip = table["mip_steps_to_90pct"]
    result = {
        "hypernet_minus_ewc_pts": pts("permuted_digits_task/hypernet", "permuted_digits_task/ewc"),
        "mip_steps_to_target_ratio": round(mean(mip["mip"]) / mean(mip["plain"]), 3),
        "mip_continual_steps_ratio": round(
            m("permuted_digits_task/hypernet_mip", "steps_to_90pct")
            / m("permuted_digits_task/hypernet", "steps_to_90pct"),
            3,
        ),
        "mip_minus_plain_hypernet_pts": pts(
            "permuted_digits_task/hypernet_mip", "permuted_digits_task/hypernet"
        ),
        "fsa_minus_er_pts": pts("split_digits_class/fsa", "split_digits_class/er"),
        "lines_forgetting_over_finetune": round(
            m("split_digits_task/lines", "forgetting")
            / m("split_digits_task/finetune", "forgetting"),
            3,
        ),
        "breadcrumbs_minus_task_arithmetic_pts": round(
            100 * (m("merging", "breadcrumbs") - m("merging", "task_arithmetic")), 2
        ),
        "breadcrumbs_heldout_masks_minus_task_arithmetic_pts": round(
            100 * (m("merging", "breadcrumbs_masks") - m("merging", "task_arithmetic")), 2
        ),
        "classp_minus_finetune_pts": pts(
            "permuted_digits_task/classp", "permuted_digits_task/finetune"
        ),
        "dst_minus_finetune_pts": pts("split_digits_task/dst", "split_digits_task/finetune"),
        "losse_rmse_over_mlp_after_shift": round(
            m("covariate_shift_rmse", "losse") / m("covariate_shift_rmse", "mlp_shift"), 3
        ),
        "recurrence_gain_pts": pts("recurrence/recurring", "recurrence/once"),
        "fedrecon_minus_local_pts": round(
            100
            * (m("fedrecon_all_classes_acc", "merged") - m("fedrecon_all_classes_acc", "local")),
            2,
        ),
    }
    if "look_ahead/hypernet" in table:
        result["look_ahead_minus_plain_hypernet_pts"] = pts(
            "look_ahead/hypernet_look_ahead", "look_ahead/hypernet"
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
