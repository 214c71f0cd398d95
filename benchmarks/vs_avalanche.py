"""Our continual strategies against Avalanche 0.6's on the same tasks, in one run.

Both train the same exported tasks (Split-Digits, class-incremental, 5 tasks of 2 digits), from
the same initial weights (an MLP 64-100-100-10 built by our learner with the seed, copied into
Avalanche's ``torch.nn.Sequential``), with the same settings (SGD lr 0.1, batches of 16, 4 epochs
per task, cross-entropy over all 10 classes) and are scored by the same code (final accuracy on
each task's test set, averaged over tasks). Pairs: fine-tuning / ``Naive``; replay with 200
slots / ``Replay`` (its default ``ExperienceBalancedBuffer``) and ``Replay`` with a
``ClassBalancedBuffer`` -- ours ``*_as_avalanche`` replays as Avalanche does: the buffer filled
at task ends, shuffled passes through it, 16 replayed samples with every new batch (the epoch's
last, shorter one too) and one mean loss over both; the other ER rows change one of these
(reservoir buffer, independent draws, a replay batch as large as the new one weighted 0.5);
online EWC / ``EWC(mode="online")`` (``ewc_lambda`` = our ``strength / 2``: Avalanche's penalty
has no 1/2); LwF; A-GEM (50 per task, 64 sampled); GEM (50 per task, margin 0.5). ER over 10
seeds (its spread is large), the others over 3.

Timing: ``train_s`` is the training wall time of a run (ours: ``learn`` calls and task hooks;
Avalanche's: its ``train`` calls), both in this process on the same torch build. Evaluation
cost: fine-tuning on Split-Digits evaluated after every iteration on the seen tasks' test sets
(a fixed subsample of 100 per task, the same samples for both); the cost of one evaluation
point is ours ``eval_seconds / points`` and Avalanche's (wall with periodic evaluation
``peval_mode = "iteration"`` minus wall without) ``/ points``; ``eval_cost_ratio`` is ours over
theirs. The same pair of runs checks that per-iteration evaluation leaves the final accuracies
unchanged.

Avalanche needs torchvision, which does not load beside our CPU torch: it lives in a separate
environment that ``bash benchmarks/avalanche_env.sh`` builds once (docs/continual.md). This script
installs nothing: it runs in the current interpreter if Avalanche imports, else re-runs itself
with that environment's Python (``ADAPTLOOP_AVALANCHE_VENV``, default
``~/.cache/adaptloop/avalanche-venv``), else prints why it skipped. The LAST line is one JSON
object: er_split_acc_ours (``er_task_balanced_as_avalanche``), er_split_acc_avalanche (its
``Replay``: the same policy), gem_train_s_ours, gem_train_s_avalanche (mean per run),
eval_cost_ratio, and per pair the means.

    OMP_NUM_THREADS=1 python benchmarks/vs_avalanche.py
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
VENV = Path(
    os.environ.get("ADAPTLOOP_AVALANCHE_VENV", Path.home() / ".cache/adaptloop/avalanche-venv")
)
SETTINGS = {"batch_size": 16, "epochs": 4}
ER_SEEDS = tuple(range(10))
SEEDS = (0, 1, 2)
MEMORY = 200
EVAL_SUBSAMPLE = 100


def avalanche_importable() -> str | None:
    """None if Avalanche imports here, else why not."""
    try:
        import avalanche.training  # noqa: F401
    except Exception as error:  # ImportError, or torchvision failing beside a CPU torch
        return f"{type(error).__name__}: {error}"
    return None


def switch_to_avalanche_env(reason: str) -> None:
    """Re-run this script in Avalanche's environment if it exists; else say why we skip."""
    python = VENV / "bin" / "python"
    if python.exists() and os.environ.get("ADAPTLOOP_AVALANCHE_RERUN") != "1":
        path = os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path, "ADAPTLOOP_AVALANCHE_RERUN": "1"}
        sys.stdout.flush()
        os.execve(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]], env)
    message = (
        f"Avalanche is not available ({reason}); skipped. Build its environment once with "
        "`bash benchmarks/avalanche_env.sh` (see docs/continual.md), then run this again."
    )
    print(message)
    print(json.dumps({"skipped": message}))
    sys.exit(0)


# -- ours ---------------------------------------------------------------------------------------
def our_learners(seed: int, names: list[str]) -> dict:
    from adaptloop.learners.continual import AGEM, EWC, GEM, Continual, LwF, Replay

    def replay(policy: str, draw: str, avalanche: bool = False) -> list:
        if avalanche:  # Avalanche's batch: 16 replayed with every new batch, one mean over both
            return [Replay(MEMORY, SETTINGS["batch_size"], None, policy=policy, draw=draw)]
        return [Replay(memory=MEMORY, new_weight=0.5, policy=policy, draw=draw)]

    plugins = {
        "finetune": [],
        "er_reservoir": replay("reservoir", "independent"),
        "er_task_balanced": replay("task_balanced", "independent"),
        "er_task_balanced_passes": replay("task_balanced", "passes"),
        "er_task_balanced_as_avalanche": replay("task_balanced", "passes", avalanche=True),
        "er_class_balanced_as_avalanche": replay("class_balanced", "passes", avalanche=True),
        "ewc": [EWC(strength=10.0)],
        "lwf": [LwF(alpha=1.0, temperature=2.0)],
        "agem": [AGEM(memory_per_task=50, sample_size=64)],
        "gem": [GEM(memory_per_task=50, margin=0.5)],
    }
    return {name: Continual(base(seed), plugins[name], seed=seed) for name in names}


def base(seed: int):
    from adaptloop.learners import MLPClassifier

    return MLPClassifier(
        n_classes=10, hidden=(100, 100), lr=0.1, optimizer="sgd", standardize=False, seed=seed
    )


def initial_weights(seed: int, n_features: int) -> dict:
    """The weights our learner starts from with ``seed`` (built as at its first batch)."""
    probe = base(seed)
    probe.begin_learn(np.zeros((1, n_features), dtype=np.float32))
    return {k: v.detach().clone() for k, v in probe.network.state_dict().items()}


def run_ours(sequence, seed: int, names: list[str], eval_every: int = 10**9) -> dict:
    from adaptloop.evaluation.continual import continual_evaluation

    result = continual_evaluation(
        sequence,
        our_learners(seed, names),
        eval_every=eval_every,
        eval_subsample=EVAL_SUBSAMPLE,
        seed=seed,
        **SETTINGS,
    )
    return {
        name: {
            "acc": s["final_task_acc"],
            "train_s": s["train_seconds"],
            "eval_s": s["eval_seconds"],
            "points": len(np.unique(result.curves(name)[0])),
        }
        for name, s in result.summary.items()
    }


# -- Avalanche ----------------------------------------------------------------------------------
def avalanche_benchmark(sequence, seed: int):
    """The sequence as Avalanche streams: train, full test, and the evaluation subsample."""
    import torch
    from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
    from avalanche.benchmarks.utils.classification_dataset import (
        _make_taskaware_tensor_classification_dataset as tensor_dataset,
    )

    def data(X, y):
        X, y = torch.from_numpy(np.asarray(X, np.float32)), torch.from_numpy(np.asarray(y))
        return tensor_dataset(X, y, task_labels=0, targets=y.tolist())

    rng = np.random.default_rng(seed)  # the subsample our evaluator draws with this seed
    subsample = []
    for task in sequence:
        idx = np.arange(len(task.y_test))
        if len(idx) > EVAL_SUBSAMPLE:
            idx = np.sort(rng.choice(len(idx), size=EVAL_SUBSAMPLE, replace=False))
        subsample.append(data(task.X_test[idx], task.y_test[idx]))
    return benchmark_from_datasets(
        train=[data(t.X_train, t.y_train) for t in sequence],
        test=[data(t.X_test, t.y_test) for t in sequence],
        tracked=subsample,
    )


def avalanche_strategy(name: str, model, periodic_eval: bool):
    import torch
    from avalanche.evaluation.metrics import accuracy_metrics
    from avalanche.training import storage_policy
    from avalanche.training.plugins import EvaluationPlugin, ReplayPlugin, SupervisedPlugin
    from avalanche.training.supervised import AGEM, EWC, GEM, LwF, Naive, Replay

    class CountEvals(SupervisedPlugin):
        def __init__(self) -> None:
            super().__init__()
            self.evals = 0

        def after_eval(self, strategy, **kwargs) -> None:
            self.evals += 1

    counter = CountEvals()
    common = {
        "model": model,
        "optimizer": torch.optim.SGD(model.parameters(), lr=0.1),
        "criterion": torch.nn.CrossEntropyLoss(),
        "train_mb_size": SETTINGS["batch_size"],
        "train_epochs": SETTINGS["epochs"],
        "eval_mb_size": 10_000,
        "device": "cpu",
        "plugins": [counter],
        # accuracy only, no logger: what our evaluation computes
        "evaluator": EvaluationPlugin(accuracy_metrics(experience=True), loggers=[]),
        "eval_every": 1 if periodic_eval else -1,
        "peval_mode": "iteration",
    }
    balanced = storage_policy.ClassBalancedBuffer(max_size=MEMORY, adaptive_size=True)
    make = {
        "naive": lambda: Naive(**common),
        "replay": lambda: Replay(mem_size=MEMORY, **common),
        "replay_class_balanced": lambda: Naive(
            **{**common, "plugins": [counter, ReplayPlugin(MEMORY, storage_policy=balanced)]}
        ),
        "ewc": lambda: EWC(ewc_lambda=5.0, mode="online", decay_factor=1.0, **common),
        "lwf": lambda: LwF(alpha=1.0, temperature=2.0, **common),
        "agem": lambda: AGEM(patterns_per_exp=50, sample_size=64, **common),
        "gem": lambda: GEM(patterns_per_exp=50, memory_strength=0.5, **common),
    }
    return make[name](), counter


def accuracy(model, sequence) -> list[float]:
    import torch

    with torch.no_grad():
        return [
            float(
                (model(torch.from_numpy(t.X_test)).argmax(1).numpy() == np.asarray(t.y_test)).mean()
            )
            for t in sequence
        ]


def run_avalanche(sequence, seed: int, name: str, periodic_eval: bool = False) -> dict:
    import torch

    bench = avalanche_benchmark(sequence, seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(sequence.tasks[0].X_train.shape[1], 100),
        torch.nn.ReLU(),
        torch.nn.Linear(100, 100),
        torch.nn.ReLU(),
        torch.nn.Linear(100, 10),
    )
    model.load_state_dict(initial_weights(seed, sequence.tasks[0].X_train.shape[1]))
    torch.manual_seed(seed)  # Avalanche's loaders and buffers draw from the global generator
    strategy, counter = avalanche_strategy(name, model, periodic_eval)
    train_s = 0.0
    for t, experience in enumerate(bench.train_stream):
        started = time.perf_counter()
        if periodic_eval:
            strategy.train(experience, eval_streams=[bench.tracked_stream[: t + 1]])
        else:
            strategy.train(experience)
        train_s += time.perf_counter() - started
    model.eval()
    return {"acc": accuracy(model, sequence), "train_s": train_s, "evals": counter.evals}


# -- the run ------------------------------------------------------------------------------------
PAIRS = {  # ours -> Avalanche's
    "finetune": "naive",
    "er_reservoir": None,
    "er_task_balanced": None,
    "er_task_balanced_passes": None,
    "er_task_balanced_as_avalanche": "replay",
    "er_class_balanced_as_avalanche": "replay_class_balanced",
    "ewc": "ewc",
    "lwf": "lwf",
    "agem": "agem",
    "gem": "gem",
}


def mean_std(values: list[float]) -> tuple[float, float]:
    array = np.asarray(values, dtype=float)
    return float(array.mean()), float(array.std())


def main() -> None:
    reason = avalanche_importable()
    if reason is not None:
        switch_to_avalanche_env(reason)
    import avalanche
    import torch

    from adaptloop.streams.tasks import registry

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    print(
        f"torch {torch.__version__}, avalanche {avalanche.__version__}, "
        f"torch threads {torch.get_num_threads()}, OMP_NUM_THREADS "
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )
    rows: dict[str, dict[str, list]] = {}
    for ours, theirs in PAIRS.items():
        seeds = ER_SEEDS if ours.startswith("er_") else SEEDS
        for seed in seeds:
            sequence = registry.create("split_digits", seed=seed)
            mine = run_ours(sequence, seed, [ours])[ours]
            row = rows.setdefault(ours, {"ours": [], "ours_s": [], "theirs": [], "theirs_s": []})
            row["ours"].append(100 * float(np.mean(mine["acc"])))
            row["ours_s"].append(mine["train_s"])
            if theirs is not None:
                other = run_avalanche(sequence, seed, theirs)
                row["theirs"].append(100 * float(np.mean(other["acc"])))
                row["theirs_s"].append(other["train_s"])

    print("\nSplit-Digits (class-incremental), final average accuracy % and train s per run")
    head = f"{'acc':>13s} {'train s':>8s}"
    print(f"{'ours':26s} {head}   {'Avalanche':22s} {head}")
    table = {}
    for ours, theirs in PAIRS.items():
        row = rows[ours]
        acc, spread = mean_std(row["ours"])
        line = f"{ours:26s} {acc:6.1f} +-{spread:4.1f} {np.mean(row['ours_s']):8.2f}   "
        entry = {"ours": round(acc, 2), "ours_std": round(spread, 2), "seeds": len(row["ours"])}
        entry["ours_train_s"] = round(float(np.mean(row["ours_s"])), 3)
        if theirs is not None:
            other, other_spread = mean_std(row["theirs"])
            line += (
                f"{theirs:22s} {other:6.1f} +-{other_spread:4.1f} {np.mean(row['theirs_s']):8.2f}"
            )
            entry.update(
                avalanche=round(other, 2),
                avalanche_std=round(other_spread, 2),
                avalanche_train_s=round(float(np.mean(row["theirs_s"])), 3),
            )
        print(line)
        table[ours] = entry

    # evaluation cost, and final accuracies with and without per-iteration evaluation
    sequence = registry.create("split_digits", seed=0)
    quiet = run_ours(sequence, 0, ["finetune"])["finetune"]
    loud = run_ours(sequence, 0, ["finetune"], eval_every=1)["finetune"]
    ours_per_eval = loud["eval_s"] / loud["points"]
    a_quiet = run_avalanche(sequence, 0, "naive")
    a_loud = run_avalanche(sequence, 0, "naive", periodic_eval=True)
    theirs_per_eval = max(a_loud["train_s"] - a_quiet["train_s"], 0.0) / max(a_loud["evals"], 1)
    ratio = ours_per_eval / theirs_per_eval
    print(
        f"\nper-iteration evaluation (fine-tuning, seed 0): ours {loud['points']} points, "
        f"{1e3 * ours_per_eval:.3f} ms each; Avalanche {a_loud['evals']} evaluations, "
        f"{1e3 * theirs_per_eval:.3f} ms each; ratio {ratio:.3f}"
    )
    same_ours = quiet["acc"] == loud["acc"]
    same_theirs = a_quiet["acc"] == a_loud["acc"]
    print(
        "final accuracies unchanged by per-iteration evaluation: "
        f"ours {same_ours}, Avalanche {same_theirs}"
    )
    er, gem = table["er_task_balanced_as_avalanche"], table["gem"]
    print(
        json.dumps(
            {
                "er_split_acc_ours": er["ours"],
                "er_split_acc_avalanche": er["avalanche"],
                "gem_train_s_ours": gem["ours_train_s"],
                "gem_train_s_avalanche": gem["avalanche_train_s"],
                "eval_cost_ratio": round(ratio, 4),
                "final_acc_same_with_eval_ours": same_ours,
                "final_acc_same_with_eval_avalanche": same_theirs,
                **table,
            }
        )
    )


if __name__ == "__main__":
    main()
