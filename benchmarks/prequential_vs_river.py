"""Prequential throughput and accuracy: adaptloop's logistic regression vs River's, same data.

River: ``preprocessing.StandardScaler() | linear_model.LogisticRegression()`` through
``evaluate.progressive_val_score`` (one sample at a time). adaptloop: ``LogisticRegression``
with online standardisation through ``prequential`` at batch sizes 1, 32 and 256 (exact
test-then-train inside each batch: the numbers of batch 1). Streams: SEA, 100,000 samples with
a sudden drift at 50,000, and Elec2 when ``../shared/data/elec2.csv.gz`` exists. Both sides
read the same pre-materialised samples, so only learning and scoring are timed.

Exact path and label delay (:func:`exact_rows`, :func:`delay_rows`, :func:`drift_reset_rows`):
our exact path at batch 256 vs River per sample (``*_exact_ratio_b256``, ``*_exact_acc_diff``);
``progressive_val_score(..., delay=1000)`` vs our ``delay=1000`` (``*_delay_acc_diff``, points);
our exact ``DriftReset(logistic, ADWIN)`` vs River's ``drift.DriftRetrainingClassifier`` around
the same pipeline with ADWIN on SEA (``drift_reset_exact_ratio``, samples/s).

The table goes to stdout; the LAST line is one JSON object with the ratios.

Pipeline row (``onehot_ratio``, ``onehot_acc_diff``): a click log with a high-cardinality
user column (ids keep arriving), an item and a context column, all categorical. River:
``OneHotEncoder(drop_zeros=True) | LogisticRegression()`` per sample (``drop_zeros`` is River's
sparse setting; its default builds a dict of every category seen for every sample); adaptloop:
``OneHotEncoder() | SparseLogisticRegression()`` through ``test_then_train`` at batch 1,024
(exact test-then-train).

    python benchmarks/prequential_vs_river.py [--elec2 PATH] [--n 100000]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from river import drift, evaluate, linear_model, metrics, preprocessing

from adaptloop.evaluation import prequential
from adaptloop.features import OneHotEncoder
from adaptloop.learners.models.linear import LogisticRegression
from adaptloop.learners.models.sparse_linear import SparseLogisticRegression
from adaptloop.learners.wrappers.drift_reset import DriftReset
from adaptloop.streams import ArrayStream, registry

BATCH_SIZES = (1, 32, 256)
ONEHOT_BATCH = 1024  # exact test-then-train: the batch size changes the speed only
DEFAULT_ELEC2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "elec2.csv.gz"


def materialise(stream) -> tuple[np.ndarray, np.ndarray]:
    batches = list(stream.iter_batches(4096))
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def river_dataset(X: np.ndarray, y: np.ndarray, names: list[str]) -> list[tuple[dict, int]]:
    return [
        (dict(zip(names, map(float, row), strict=True)), int(label))
        for row, label in zip(X, y, strict=True)
    ]


def time_river(
    X: np.ndarray, y: np.ndarray, names: list[str], model=None, **delay
) -> tuple[float, float]:
    dataset = river_dataset(X, y, names)
    model = model or preprocessing.StandardScaler() | linear_model.LogisticRegression()
    metric = metrics.Accuracy()
    start = time.perf_counter()
    evaluate.progressive_val_score(dataset, model, metric, **delay)
    return time.perf_counter() - start, metric.get()


def river_delayed_accuracy(X: np.ndarray, y: np.ndarray, names: list[str], delay: int) -> float:
    """River's model fed as adaptloop is at batch ``delay``: predict a whole batch, then learn
    it, so both sides see labels equally late (accuracy only; this path is not timed)."""
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    rows = [dict(zip(names, map(float, row), strict=True)) for row in X]
    correct = 0
    for start in range(0, len(rows), delay):
        batch = rows[start : start + delay]
        labels = y[start : start + delay]
        predictions = [model.predict_one(x) for x in batch]
        correct += sum(
            int(p is not None and int(p) == t) for p, t in zip(predictions, labels, strict=True)
        )
        for x, t in zip(batch, labels, strict=True):
            model.learn_one(x, int(t))
    return correct / len(rows)


def time_adaptloop(
    X: np.ndarray, y: np.ndarray, batch_size: int, learner=None, **delay
) -> tuple[float, float]:
    stream = ArrayStream(X, y)
    learner = learner or LogisticRegression(standardize=True)
    start = time.perf_counter()
    result = prequential(
        stream,
        {"lr": learner},
        batch_size=batch_size,
        metrics=["accuracy"],
        record_every=1000,
        **delay,
    )
    return time.perf_counter() - start, result.summary["lr"]["accuracy"]


def row(name: str, rate: float | None, acc: float, ratio: float | None, diff: float) -> None:
    rate_text = "-" if rate is None else f"{rate:,.0f}"
    ratio_text = "-" if ratio is None else f"{ratio:.2f}"
    print(f"{name:<34}{rate_text:>14}{acc:>10.4f}{ratio_text:>9}{diff:>10.2f}")


def exact_rows(X: np.ndarray, y: np.ndarray, river: tuple[float, float]) -> dict[str, float]:
    """Our exact path at batch 256 vs River per sample (``river``: its seconds, accuracy)."""
    n, (river_seconds, river_acc) = len(y), river
    seconds, acc = time_adaptloop(X, y, 256)
    ratio, diff = river_seconds / seconds, 100 * (acc - river_acc)
    row("adaptloop exact, batch 256", n / seconds, acc, ratio, diff)
    return {"exact_ratio_b256": ratio, "exact_acc_diff": diff}


def delay_rows(X: np.ndarray, y: np.ndarray, names: list[str], delay: int = 1000) -> dict:
    """River's ``progressive_val_score(delay=...)`` vs our ``delay`` at batch 256."""
    river_seconds, river_acc = time_river(X, y, names, delay=delay)
    seconds, acc = time_adaptloop(X, y, 256, delay=delay)
    n = len(y)
    row(f"river, delay {delay}", n / river_seconds, river_acc, 1.0, 0.0)
    diff = 100 * (acc - river_acc)
    row(f"adaptloop exact, delay {delay}, b256", n / seconds, acc, river_seconds / seconds, diff)
    return {"delay_acc_diff": diff}


def drift_reset_rows(X: np.ndarray, y: np.ndarray, names: list[str]) -> dict[str, float]:
    """Exact ``DriftReset(logistic, ADWIN)`` at batch 256 vs River's
    ``DriftRetrainingClassifier(StandardScaler() | LogisticRegression(), ADWIN())``: samples/s
    (the two differ on purpose at an alarm: River restarts, we re-fit on the last window)."""
    river = drift.DriftRetrainingClassifier(
        model=preprocessing.StandardScaler() | linear_model.LogisticRegression(),
        drift_detector=drift.ADWIN(),
        train_in_background=False,
    )
    river_seconds, river_acc = time_river(X, y, names, model=river)
    ours = DriftReset(LogisticRegression(), detector="adwin")
    seconds, acc = time_adaptloop(X, y, 256, learner=ours)
    n = len(y)
    row("river DriftRetraining(ADWIN)", n / river_seconds, river_acc, 1.0, 0.0)
    ratio = river_seconds / seconds
    row("adaptloop exact DriftReset(ADWIN)", n / seconds, acc, ratio, 100 * (acc - river_acc))
    return {"drift_reset_exact_ratio": ratio}


def bench(label: str, X: np.ndarray, y: np.ndarray, names: list[str]) -> dict[str, float]:
    n = X.shape[0]
    river_seconds, river_acc = time_river(X, y, names)
    river_rate = n / river_seconds
    print(f"\n{label}: {n:,} samples, {X.shape[1]} features")
    print(f"{'method':<34}{'samples/s':>14}{'accuracy':>10}{'ratio':>9}{'acc diff':>10}")
    row("river (one at a time)", river_rate, river_acc, 1.0, 0.0)
    out = exact_rows(X, y, (river_seconds, river_acc))
    for batch_size in BATCH_SIZES:
        seconds, acc = time_adaptloop(X, y, batch_size)
        ratio = (n / seconds) / river_rate
        diff = 100 * (acc - river_acc)
        row(f"adaptloop batch {batch_size}", n / seconds, acc, ratio, diff)
        out[f"ratio_b{batch_size}"] = ratio
        out[f"acc_diff_b{batch_size}"] = diff
    delayed = river_delayed_accuracy(X, y, names, max(BATCH_SIZES))
    ours = river_acc + out[f"acc_diff_b{max(BATCH_SIZES)}"] / 100
    row(f"river, labels {max(BATCH_SIZES)} late", None, delayed, None, 100 * (delayed - river_acc))
    out[f"acc_diff_b{max(BATCH_SIZES)}_same_delay"] = 100 * (ours - delayed)
    out.update(delay_rows(X, y, names))
    return out


def click_log(n: int, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Codes of (user, item, context) and a click label: users arrive over time (about one
    new user every 4 samples, returning users drawn from those seen), the click depends on a
    per-user and a per-item bias."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    seen = np.maximum(t // 4, 1)
    user = np.where(rng.random(n) < 0.25, t // 4, (seen * rng.random(n) ** 2).astype(np.int64))
    item = rng.zipf(1.3, n) % 2_000
    context = rng.integers(0, 8, n)
    bias_user = rng.normal(0, 1.5, user.max() + 1)
    bias_item = rng.normal(0, 1.0, 2_000)
    logit = bias_user[user] + bias_item[item] + 0.3 * (context - 3.5)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    X = np.column_stack([user + 1, item + 1, context + 1]).astype(np.float32)
    return X, y


def bench_onehot(n: int) -> dict[str, float]:
    """One-hot + logistic on a high-cardinality categorical stream, ours vs River's."""
    X, y = click_log(n)
    names = ["user", "item", "context"]
    dataset = [
        (dict(zip(names, (str(int(v)) for v in row), strict=True)), bool(label))
        for row, label in zip(X, y, strict=True)
    ]
    river_model = preprocessing.OneHotEncoder(drop_zeros=True) | linear_model.LogisticRegression()
    metric = metrics.Accuracy()
    start = time.perf_counter()
    evaluate.progressive_val_score(dataset, river_model, metric)
    river_seconds, river_acc = time.perf_counter() - start, metric.get()

    ours = OneHotEncoder() | SparseLogisticRegression()
    ours.bind_features(names, names)
    learn_at = np.arange(1, ONEHOT_BATCH + 1)  # each label right after its prediction
    ours.test_then_train(X[:8], X[:8], y[:8], learn_at[:8])  # compile outside the timing
    ours = ours.clone()
    ours.bind_features(names, names)
    correct = 0
    start = time.perf_counter()
    for lo in range(0, n, ONEHOT_BATCH):
        part = slice(lo, lo + ONEHOT_BATCH)
        pred = ours.test_then_train(X[part], X[part], y[part], learn_at[: len(y[part])])
        correct += int((pred == y[part]).sum())
    our_seconds = time.perf_counter() - start
    our_acc = correct / n
    users = len(np.unique(X[:, 0]))
    print(f"\nOne-hot + logistic: {n:,} samples, {users:,} users, 2,000 items, 8 contexts")
    print(f"{'method':<28}{'samples/s':>14}{'accuracy':>10}")
    print(f"{'river onehot|logistic':<28}{n / river_seconds:>14,.0f}{river_acc:>10.4f}")
    print(f"{f'adaptloop exact b{ONEHOT_BATCH}':<28}{n / our_seconds:>14,.0f}{our_acc:>10.4f}")
    return {
        "onehot_ratio": river_seconds / our_seconds,
        "onehot_acc_diff": 100 * (our_acc - river_acc),
    }


def warm_up(X: np.ndarray, y: np.ndarray) -> None:
    """Load (or, on the first run ever, compile) the numba kernels before anything is timed:
    a one-off cost per process, like an import."""
    for learner in (LogisticRegression(), DriftReset(LogisticRegression(), detector="adwin")):
        time_adaptloop(X[:600], y[:600], 256, learner=learner)
        time_adaptloop(X[:600], y[:600], 1, learner=learner.clone())
    time_adaptloop(X[:600], y[:600], 256, delay=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elec2", type=Path, default=DEFAULT_ELEC2)
    parser.add_argument("--n", type=int, default=100_000, help="SEA stream length")
    args = parser.parse_args()
    summary: dict[str, float | None] = {}
    sea = registry.create(
        "sea", n=args.n, drifts=[{"at": args.n // 2, "width": 1}], noise=0.1, seed=1
    )
    X, y = materialise(sea)
    warm_up(X, y)
    for key, value in bench(
        "SEA, sudden drift at the middle", X, y, list(sea.info.feature_names)
    ).items():
        summary[f"sea_{key}"] = value
    summary.update(drift_reset_rows(X, y, list(sea.info.feature_names)))
    if args.elec2.is_file():
        elec2 = registry.create("elec2", path=str(args.elec2))
        X, y = materialise(elec2)
        for key, value in bench("Elec2", X, y, list(elec2.info.feature_names)).items():
            summary[f"elec2_{key}"] = value
    else:
        print(f"\nElec2 skipped: {args.elec2} not found")
    summary.update(bench_onehot(args.n))
    keys = [
        "sea_ratio_b256",
        "sea_acc_diff_b256",
        "elec2_ratio_b256",
        "elec2_acc_diff_b256",
        "sea_ratio_b1",
        "sea_acc_diff_b1",
        "sea_ratio_b32",
        "elec2_ratio_b1",
        "elec2_acc_diff_b1",
        "onehot_ratio",
        "onehot_acc_diff",
        "sea_exact_ratio_b256",
        "sea_exact_acc_diff",
        "elec2_exact_ratio_b256",
        "elec2_exact_acc_diff",
        "elec2_delay_acc_diff",
        "drift_reset_exact_ratio",
    ]
    print(json.dumps({k: (round(summary[k], 3) if k in summary else None) for k in keys}))


if __name__ == "__main__":
    main()
