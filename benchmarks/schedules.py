"""Update schedules and Drop-Muon, 3 seeds.

(1) A budgeted re-fit: ``WindowRetrain`` re-fits a fresh MLP (64-64, Adam, mini-batches of 64,
``EPOCHS`` passes) on a window of ``WINDOW`` Elec2 samples, then predicts the next ``AHEAD``
samples; the windows start at ``STARTS``. Every schedule takes the same steps and the same
peak rate, tuned once on a separate window (the best of ``LRS`` for linear decay and cosine
together, on seed 100). Constant, cosine, linear decay, UBA (phi = 1) and refinement -- the
paper's recipe: a linear-decay run of the same re-fit records its gradient norms, from which
the refined schedule is built. Reported per schedule: the final training loss on the window
and the accuracy on the samples ahead (mean +- std over windows x seeds).

(2) Adam vs Muon vs Drop-Muon (uniform start block) on digits (scikit-learn's 8x8, 70/30
split): an MLP 64-256-256-256-10 trained one mini-batch of 64 per step, test accuracy every
``EVAL_EVERY`` steps; reported: steps and training wall-clock (evaluation excluded) until the
test accuracy first reaches ``TARGET``, and the accuracy after ``MAX_STEPS``.

The LAST line is one JSON object: linear_minus_cosine_acc_pts, refined_minus_linear_acc_pts,
uba_minus_cosine_acc_pts (accuracy ahead, points, mean over windows x seeds) and
dropmuon_over_muon_time_to_target (median over seeds of the ratio of wall-clock times).

    python benchmarks/schedules.py
"""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import torch

from adaptloop.learners import MLPClassifier, WindowRetrain
from adaptloop.learners.optim.schedules import Refined
from adaptloop.streams.real import ELEC2_PATH
from adaptloop.streams.tasks import load_digits_arrays

SEEDS = (0, 1, 2)
# (1) the re-fit
WINDOW, AHEAD, EPOCHS, BATCH = 4000, 2000, 5, 64
STARTS = (6000, 18000, 30000)
TUNE_START = 40000
LRS = (0.003, 0.01, 0.03)
SCHEDULES = ("constant", "cosine", "linear", "uba", "refined")
# (2) the optimisers
HIDDEN, DIGITS_BATCH, TARGET, EVAL_EVERY, MAX_STEPS = (256, 256, 256), 64, 0.95, 5, 200
OPTIMIZERS = {"adam": ("adam", 0.003), "muon": ("muon", 0.02), "drop_muon": ("drop_muon", 0.02)}


def elec2() -> tuple[np.ndarray, np.ndarray]:
    frame = pd.read_csv(ELEC2_PATH)
    X = frame.drop(columns="class").to_numpy(np.float32)
    return X, (frame["class"] == "UP").to_numpy().astype(np.int64)


def refit(X, y, start, schedule, lr, seed) -> tuple[float, float, np.ndarray]:
    """(final loss on the window, accuracy on the samples ahead, gradient-norm trace)."""
    base = MLPClassifier(hidden=(64, 64), lr=lr, batch_size=BATCH, schedule=schedule, seed=seed)
    model = WindowRetrain(
        base, window=WINDOW, every=WINDOW, epochs=EPOCHS, fit_batch_size=None, warmup=False
    )
    Xw, yw = X[start : start + WINDOW], y[start : start + WINDOW]
    model.learn(Xw, yw)  # one re-fit: EPOCHS calls on the whole window, one fit over all
    fitted = model.model_
    proba = np.clip(fitted.predict_proba(Xw)[np.arange(WINDOW), yw], 1e-12, 1.0)
    Xa, ya = X[start + WINDOW : start + WINDOW + AHEAD], y[start + WINDOW : start + WINDOW + AHEAD]
    accuracy = float((fitted.predict(Xa) == ya).mean())
    return float(-np.log(proba).mean()), accuracy, fitted.trainer_.grad_norms_


def run_schedules(X, y, start, lr, seed, names=SCHEDULES) -> dict[str, tuple[float, float]]:
    out = {}
    for name in names:
        if name == "refined":
            trace = refit(X, y, start, "linear", lr, seed)[2]  # the paper's first run
            out[name] = refit(X, y, start, Refined(trace=trace), lr, seed)[:2]
        else:
            out[name] = refit(X, y, start, name, lr, seed)[:2]
    return out


def part_one() -> dict[str, float]:
    X, y = elec2()
    tuning = {lr: run_schedules(X, y, TUNE_START, lr, 100, ("linear", "cosine")) for lr in LRS}
    lr = max(LRS, key=lambda r: tuning[r]["linear"][1] + tuning[r]["cosine"][1])
    print(
        f"(1) Elec2 re-fit: window {WINDOW}, {EPOCHS} epochs x {-(-WINDOW // BATCH)} batches"
        f" = {EPOCHS * -(-WINDOW // BATCH)} steps, Adam, peak lr {lr} (tuned on {LRS})"
    )
    results = {name: [] for name in SCHEDULES}
    for seed in SEEDS:
        for start in STARTS:
            for name, value in run_schedules(X, y, start, lr, seed).items():
                results[name].append(value)
    print(f"{'schedule':10s} {'final loss':>16s} {'accuracy ahead':>18s}")
    acc = {}
    for name, values in results.items():
        loss, accuracy = np.array(values).T
        acc[name] = accuracy
        print(
            f"{name:10s} {loss.mean():9.4f} +- {loss.std():.4f} "
            f"{100 * accuracy.mean():10.2f} +- {100 * accuracy.std():.2f}"
        )
    for a, b in (("linear", "cosine"), ("refined", "linear"), ("uba", "cosine")):
        wins = int((acc[a] > acc[b]).sum())
        print(
            f"  {a} - {b}: {100 * (acc[a] - acc[b]).mean():+.2f} pts "
            f"({wins}/{len(acc[a])} runs better)"
        )
    return {
        "linear_minus_cosine_acc_pts": round(
            100 * float((acc["linear"] - acc["cosine"]).mean()), 3
        ),
        "refined_minus_linear_acc_pts": round(
            100 * float((acc["refined"] - acc["linear"]).mean()), 3
        ),
        "uba_minus_cosine_acc_pts": round(100 * float((acc["uba"] - acc["cosine"]).mean()), 3),
    }


def train_to_target(optimizer, lr, data, seed) -> tuple[int | None, float | None, float]:
    """(steps to TARGET, training seconds to TARGET, accuracy after MAX_STEPS)."""
    X_train, y_train, X_test, y_test = data
    model = MLPClassifier(
        n_classes=10, hidden=HIDDEN, lr=lr, optimizer=optimizer, standardize=False, seed=seed
    )
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(len(y_train)) for _ in range(40)])
    seconds, reached, accuracy = 0.0, (None, None), 0.0
    for step in range(MAX_STEPS):
        batch = order[step * DIGITS_BATCH : (step + 1) * DIGITS_BATCH]
        begin = time.perf_counter()
        model.learn(X_train[batch], y_train[batch])
        seconds += time.perf_counter() - begin
        if (step + 1) % EVAL_EVERY == 0:
            accuracy = float((model.predict(X_test) == y_test).mean())
            if reached[0] is None and accuracy >= TARGET:
                reached = (step + 1, seconds)
    return reached[0], reached[1], accuracy


def part_two() -> float:
    torch.set_num_threads(1)  # steadier timings; the three optimisers are timed alike
    widths = "-".join(str(h) for h in (64, *HIDDEN, 10))
    print(
        f"\n(2) digits, MLP {widths}, batches of {DIGITS_BATCH}: steps and training seconds"
        f" to test accuracy {TARGET} (median over seeds), accuracy after {MAX_STEPS} steps"
    )
    runs = {name: [] for name in OPTIMIZERS}
    for seed in SEEDS:
        data = load_digits_arrays(seed=seed)
        for name, (optimizer, lr) in OPTIMIZERS.items():  # interleaved: same machine state
            runs[name].append(train_to_target(optimizer, lr, data, seed))
    for name, values in runs.items():
        steps = [v[0] for v in values]
        secs = [v[1] for v in values]
        final = np.array([v[2] for v in values])
        reached = all(s is not None for s in steps)
        med = (
            f"{np.median(steps):6.0f} steps {np.median(secs):6.2f} s"
            if reached
            else f"not all seeds reached it: {steps}"
        )
        print(f"{name:10s} lr {OPTIMIZERS[name][1]:<6} {med}   final {100 * final.mean():.1f} %")
    ratios = [
        d[1] / m[1]
        for d, m in zip(runs["drop_muon"], runs["muon"], strict=True)
        if d[1] is not None and m[1] is not None
    ]
    ratio = float(np.median(ratios)) if ratios else float("nan")
    print(
        f"  Drop-Muon / Muon time to target: {ratio:.3f} (per seed: "
        f"{', '.join(f'{r:.2f}' for r in ratios)})"
    )
    return round(ratio, 3)


def main() -> None:
    began = time.perf_counter()
    summary = part_one()
    summary["dropmuon_over_muon_time_to_target"] = part_two()
    print(f"\n(total {time.perf_counter() - began:.0f} s)")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
