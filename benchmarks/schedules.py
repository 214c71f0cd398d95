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

(3) The claim of Defazio et al. (2023) that linear decay matches or beats cosine and that
refinement helps, on convex problems: multinomial logistic regression (L2 ``L2_REG``) by
mini-batch SGD (batches of ``CONVEX_BATCH``, ``CONVEX_EPOCHS`` passes, zero start) on
``len(PROBLEMS)`` problems from offline data: scikit-learn's bundled breast cancer, iris, wine,
digits (10 classes) and digits parity, and ``CONVEX_ROWS`` rows of Elec2 and Rialto (10
classes). Each problem is split once (seeded): 25 % test, the rest into training and a
held-out validation part (20 % of the whole). The peak rate of each schedule is tuned on the
validation part (the best mean validation loss over ``TUNE_SEEDS`` orders, grid
``CONVEX_LRS``), then each schedule is trained on the training part with ``CONVEX_SEEDS`` other
sample orders and scored by test log-loss. Refinement follows the paper's recipe: a
linear-decay run at linear decay's tuned rate records the gradient norms (``||g_t||_2``, SGD),
from which the refined schedule is built (median filter 0.1 T), then run at its own tuned rate.
A schedule *wins* on a problem when its mean test loss over the seeds is lower by more than
twice the standard error of the paired differences, *loses* when higher by as much, else ties.

The LAST line is one JSON object: linear_minus_cosine_acc_pts, refined_minus_linear_acc_pts,
uba_minus_cosine_acc_pts (accuracy ahead, points, mean over windows x seeds),
dropmuon_over_muon_time_to_target (median over seeds of the ratio of wall-clock times), and
from (3) linear_vs_cosine_wins and refined_vs_linear_wins (wins of the first over the second,
counted over the problems) with the matching ``_ties`` and ``_losses`` counts.

    python benchmarks/schedules.py            # all three parts
    python benchmarks/schedules.py convex     # part (3) only

    python benchmarks/schedules.py
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pandas as pd
import torch

from adaptloop.learners import MLPClassifier, WindowRetrain
from adaptloop.learners.optim.schedules import Refined, make_schedule, refined_factors
from adaptloop.streams.real import ELEC2_PATH, RIALTO_PATH
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
# (3) the convex suite
PROBLEMS = ("breast_cancer", "iris", "wine", "digits", "digits_parity", "elec2", "rialto")
CONVEX_SCHEDULES = ("cosine", "linear", "refined", "uba")
CONVEX_ROWS, CONVEX_BATCH, CONVEX_EPOCHS, L2_REG = 8000, 16, 10, 1e-4
CONVEX_LRS = tuple(float(2.0**k) for k in range(-7, 5))
TUNE_SEEDS, CONVEX_SEEDS = (100, 101), (0, 1, 2, 3, 4)


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
            # the paper's first run: linear decay (a refined schedule without a trace), which
            # records the norms the refined weights read (L1 under Adam)
            trace = refit(X, y, start, Refined(), lr, seed)[2]
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


# -- (3) linear vs cosine vs refined on convex problems ------------------------------------------
def problem(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Features (float64) and class codes of one problem of the suite."""
    from sklearn import datasets

    if name in ("elec2", "rialto"):
        frame = pd.read_csv(ELEC2_PATH if name == "elec2" else RIALTO_PATH)
        rows = np.random.default_rng(7).choice(len(frame), CONVEX_ROWS, replace=False)
        frame = frame.iloc[np.sort(rows)]
        X = frame.drop(columns="class").to_numpy(np.float64)
        y = pd.factorize(frame["class"], sort=True)[0]
        return X, y.astype(np.int64)
    loader = {
        "breast_cancer": datasets.load_breast_cancer,
        "iris": datasets.load_iris,
        "wine": datasets.load_wine,
        "digits": datasets.load_digits,
        "digits_parity": datasets.load_digits,
    }[name]
    X, y = loader(return_X_y=True)
    if name == "digits_parity":
        y = y % 2
    return X.astype(np.float64), y.astype(np.int64)


def splits(X: np.ndarray, y: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Train / validation (tuning) / test, stratified, standardised on the training part, with
    a bias column."""
    from sklearn.model_selection import train_test_split

    X_rest, X_test, y_rest, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0
    )
    X_train, X_val, y_train, y_val = train_test_split(
        X_rest, y_rest, test_size=0.2 / 0.75, stratify=y_rest, random_state=0
    )
    mean, std = X_train.mean(0), X_train.std(0) + 1e-8
    out = {}
    for part, (Xp, yp) in {
        "train": (X_train, y_train),
        "val": (X_val, y_val),
        "test": (X_test, y_test),
    }.items():
        Z = (Xp - mean) / std
        out[part] = (np.hstack([Z, np.ones((len(Z), 1))]), yp)
    return out


def log_loss(W: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
    logits = X @ W
    logits -= logits.max(1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    return float(-log_p[np.arange(len(y)), y].mean())


def sgd(data, factors: np.ndarray, lr: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Mini-batch SGD on the L2-regularised multinomial logistic loss with the rates
    ``lr * factors``; returns the weights and the gradient norms of every step."""
    X, y = data
    n, d = X.shape
    k = int(y.max()) + 1
    W = np.zeros((d, k))
    Y = np.eye(k)[y]
    rng = np.random.default_rng(seed)
    per_epoch = -(-n // CONVEX_BATCH)
    norms = np.empty(len(factors))
    for step in range(len(factors)):
        if step % per_epoch == 0:
            order = rng.permutation(n)
        batch = order[(step % per_epoch) * CONVEX_BATCH : (step % per_epoch + 1) * CONVEX_BATCH]
        logits = X[batch] @ W
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        grad = X[batch].T @ (p - Y[batch]) / len(batch) + L2_REG * W
        norms[step] = np.linalg.norm(grad)
        W -= lr * factors[step] * grad
        if not np.isfinite(W).all():
            return np.full_like(W, np.nan), norms
    return W, norms


def schedule_run(data, name: str, lr: float, seed: int, linear_lr: float) -> np.ndarray:
    """The weights after one run of schedule ``name`` at peak ``lr`` (refined: from the
    gradient norms of a linear-decay run at ``linear_lr`` with the same sample order)."""
    T = CONVEX_EPOCHS * -(-len(data[1]) // CONVEX_BATCH)
    if name == "refined":
        _, trace = sgd(data, make_schedule("linear").factors(T), linear_lr, seed)
        return sgd(data, refined_factors(trace, T), lr, seed)[0]
    return sgd(data, make_schedule(name).factors(T), lr, seed)[0]


def score(W: np.ndarray, data) -> float:
    return float("inf") if not np.isfinite(W).all() else log_loss(W, *data)


def objective(W: np.ndarray, data) -> float:
    """The training objective SGD minimises: log-loss + (L2_REG / 2) ||W||^2."""
    return score(W, data) + 0.5 * L2_REG * float((W**2).sum())


def tune(parts, name: str, linear_lr: float) -> float:
    """The peak rate of ``CONVEX_LRS`` with the best mean validation loss (tuning orders)."""
    losses = {
        lr: np.mean(
            [
                score(schedule_run(parts["train"], name, lr, s, linear_lr), parts["val"])
                for s in TUNE_SEEDS
            ]
        )
        for lr in CONVEX_LRS
    }
    return min(losses, key=losses.get)


def verdict(a: np.ndarray, b: np.ndarray) -> str:
    """'win' (a's loss lower), 'loss' or 'tie', paired over seeds, at two standard errors."""
    diff = a - b
    if not np.isfinite(diff).all():
        return (
            "tie"
            if np.isinf(a).all() and np.isinf(b).all()
            else ("win" if np.isinf(b).any() else "loss")
        )
    se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else 0.0
    if abs(diff.mean()) <= 2 * se or abs(diff.mean()) < 1e-9:
        return "tie"
    return "win" if diff.mean() < 0 else "loss"


def part_three() -> dict[str, int]:
    print(
        f"\n(3) convex suite: multinomial logistic regression, SGD, batch {CONVEX_BATCH}, "
        f"{CONVEX_EPOCHS} epochs, L2 {L2_REG}; peak rate tuned per schedule on a validation "
        f"split over {CONVEX_LRS[0]:g}..{CONVEX_LRS[-1]:g} (x2); test log-loss over "
        f"{len(CONVEX_SEEDS)} seeds"
    )
    header = "".join(f"{name:>22s}" for name in CONVEX_SCHEDULES)
    print(f"{'problem':14s} {'n x d, K':>14s}{header}")
    pairs = (("linear", "cosine"), ("refined", "linear"), ("refined", "cosine"), ("uba", "cosine"))
    counts = {pair: {"win": 0, "tie": 0, "loss": 0} for pair in pairs}
    train_counts = {pair: {"win": 0, "tie": 0, "loss": 0} for pair in pairs}
    for name in PROBLEMS:
        parts = splits(*problem(name))
        linear_lr = tune(parts, "linear", 0.0)
        lrs = {
            s: linear_lr if s == "linear" else tune(parts, s, linear_lr) for s in CONVEX_SCHEDULES
        }
        runs = {
            s: [schedule_run(parts["train"], s, lrs[s], seed, linear_lr) for seed in CONVEX_SEEDS]
            for s in CONVEX_SCHEDULES
        }
        test = {s: np.array([score(W, parts["test"]) for W in runs[s]]) for s in runs}
        train = {s: np.array([objective(W, parts["train"]) for W in runs[s]]) for s in runs}
        X_train, y_train = parts["train"]
        shape = f"{len(y_train)}x{X_train.shape[1] - 1}, {int(y_train.max()) + 1}"
        cells = "".join(
            f"{test[s].mean():9.4f}+-{test[s].std():.4f} @{lrs[s]:<5g}" for s in CONVEX_SCHEDULES
        )
        marks = []
        for pair, tally in counts.items():
            v = verdict(test[pair[0]], test[pair[1]])
            tally[v] += 1
            train_counts[pair][verdict(train[pair[0]], train[pair[1]])] += 1
            marks.append(f"{pair[0]}/{pair[1]}: {v}")
        print(f"{name:14s} {shape:>14s}{cells}   {'; '.join(marks)}")
        objectives = "".join(f"{train[s].mean():22.5f}" for s in CONVEX_SCHEDULES)
        print(f"{'  train obj.':14s} {'':>14s}{objectives}")
    for (a, b), tally in counts.items():
        t = train_counts[(a, b)]
        print(
            f"  {a} vs {b}: test loss {tally['win']} wins, {tally['tie']} ties, "
            f"{tally['loss']} losses; training objective {t['win']}/{t['tie']}/{t['loss']}"
        )
    out = {}
    for a, b in (("linear", "cosine"), ("refined", "linear")):
        for kind, word in (("win", "wins"), ("tie", "ties"), ("loss", "losses")):
            out[f"{a}_vs_{b}_{word}"] = counts[(a, b)][kind]
    return out


def main() -> None:
    began = time.perf_counter()
    if sys.argv[1:] == ["convex"]:
        summary = part_three()
        print(f"\n(total {time.perf_counter() - began:.0f} s)")
        print(json.dumps(summary))
        return
    summary = part_one()
    summary["dropmuon_over_muon_time_to_target"] = part_two()
    summary.update(part_three())
    print(f"\n(total {time.perf_counter() - began:.0f} s)")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
