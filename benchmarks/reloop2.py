"""ReLoop2 reproduction: a slow model with and without the error memory, frozen and incremental.

Per stream and seed, four learners see the same batches in one prequential pass:

- ``frozen``: the base trained on the first ``WARMUP`` samples, then frozen (``Static``);
- ``frozen+memory``: the same, wrapped in ``ErrorMemory`` (written from every sample);
- ``incremental``: the base fine-tuned online on every batch (small learning rate);
- ``incremental+memory``: the same, wrapped in ``ErrorMemory``.

Streams: the click simulator (a sudden segment drift and a gradual rotation; base = the
DCN-style ``CTRClassifier``) and Elec2 (base = the torch MLP), if ``../shared/data`` has it.
Printed: AUC and log loss overall and over the ``AFTER`` samples after each drift (mean over
seeds), the memory's read+write time per batch of 256 at 2**16 buckets (the exact top-K
FIFO, our peer, timed alongside), and as the last line one JSON object.

    python benchmarks/reloop2.py            # 3 seeds, a few minutes on 2 busy cores
    python benchmarks/reloop2.py --seeds 1  # quicker

How the memory's defaults were chosen (clicks, tuning seeds 10 and 11 -- not the seeds 0-2
reported here; AUC lift in points of base+memory over the base, mean of the two after-drift
windows, seed 10 / seed 11; the incremental base as here):

    incremental base                                   after drift     before (15k-25k)
    first version: lam .5, tau .1, L 10, k 8, g 1,
      reset 10k, live keys, equal bucket weights       -1.35 / -0.91   +0.25 / -0.05
    ... lam .25 | lam 1                                -1.07/-0.23 | -4.09/-3.23
    ... tau 1 | L 6 | L 14 | gamma .5                  -1.39/-0.56 | -0.97/+0.04 | -1.77/-0.55
                                                       | -1.41/-0.97
    ... reset 2.5k | 5k | 20k | never                  -3.37/-3.04 | -2.79/-2.62 | -1.35/-0.91
                                                       | -1.45/+0.38
    ... keys from a copy frozen at each reset
        (and the key scaler fixed after 1k samples)    -0.39 / -0.50   -0.43 / -0.57
    ... buckets weighted by count                      -1.26 / -0.11   +0.12 / -0.13
    ... + prior_count 20 | 50                          -0.28/-0.15 | -0.10/-0.13  +0.37/+0.29
    ... + prior_count 50 + frozen keys                 +0.24 / -0.05   +0.28 / +0.10
    ... + prior_count 50 + frozen keys + gamma .5      +0.33 / +0.02   +0.09 / +0.10
    ... + prior_count 50 + frozen keys + gamma 0
        (reset 20k)                                    +0.25 / -0.11   -0.17 / +0.22
    frozen base, no reset, count weights + prior 20 | 50 | 50 with lam 1:
                                                       +0.09/+3.78 | +0.09/+3.54 | -0.35/+9.14

Reading: the memory's error estimate is a mean of a handful of 0/1 labels at a 4 % click rate,
so for a base that already adapts (small true error) its noise outweighs its signal; the
sweep says: fewer resets (more samples per bucket), buckets weighted by how many samples they
hold, lam shrunk until enough samples back a read, and keys that do not move with every
update of the base. A base warm-started at lr 0.005 and fine-tuned at 0.001 gave the same
ordering (first version -2.69 / -1.28; final +0.28 / -0.12). gamma .5 is a small, not
clearly significant gain on two seeds; it is kept for the learning base because it is the
paper's term for a base that moved, and gamma 1 stays the default (the paper's experiments).
"""

from __future__ import annotations

import argparse
import json
import os
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy: BLAS threads contend on shared cores
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from adaptloop.evaluation import prequential  # noqa: E402
from adaptloop.learners import ErrorMemory, MLPClassifier, Static  # noqa: E402
from adaptloop.learners.models.ctr import CTRClassifier  # noqa: E402
from adaptloop.learners.wrappers.memory_index import ExactIndex, SketchIndex  # noqa: E402
from adaptloop.streams import registry as streams  # noqa: E402

N_CLICKS, WARMUP, AFTER, BATCH = 60_000, 10_000, 5_000, 250
CLICK_DRIFTS = [{"at": 25_000, "width": 1}, {"at": 45_000, "width": 4_000}]
ELEC2 = Path("../shared/data/elec2.csv.gz")
MEMORY = {"n_bits": 10, "k": 8, "tau": 0.1, "lam": 0.5, "prior_count": 50.0}
# a base that keeps learning: the paper's gamma < 1 term (see the sweep in the module doc)
INCREMENTAL = {"gamma": 0.5, "frozen_keys": True}


def ctr(seed: int, lr: float) -> CTRClassifier:
    return CTRClassifier(lr=lr, epochs=2, batch_size=64, seed=seed)


def learners(make_base, warmup: int, reset_every: int | None, seed: int) -> dict:
    frozen = Static(make_base(0.005), n_train=warmup)
    return {
        "frozen": frozen,
        "frozen+memory": ErrorMemory(frozen.clone(), seed=seed, **MEMORY),
        "incremental": make_base(0.001),
        "incremental+memory": ErrorMemory(
            make_base(0.001), reset_every=reset_every, seed=seed, **MEMORY, **INCREMENTAL
        ),
    }


def run(stream, models: dict, metrics: list[str]) -> dict:
    result = prequential(
        stream, models, batch_size=BATCH, metrics=metrics, window=AFTER, after=AFTER
    )
    table = result.to_pandas()
    out = {}
    for name in models:
        rows = table[table.learner == name]
        entry = {m: float(result.summary[name][m]) for m in metrics}
        for i, drift in enumerate(stream.info.drifts):
            at_end = rows[rows.position == drift.position + AFTER]
            for m in metrics:
                if m == "roc_auc":
                    entry[f"auc_after_{i}"] = float(at_end["roc_auc_window"].iloc[0])
            seg = next(
                d for d in result.drifts if d["learner"] == name and d["position"] == drift.position
            )
            entry[f"{result.drifts[0]['metric']}_after_{i}"] = float(seg["after"])
        out[name] = entry
    return out


def memory_speed(dim: int, repeats: int = 300) -> tuple[float, float]:
    """ms per read+write of a batch of 256: sketch at 2**16 buckets per table, exact FIFO."""
    rng = np.random.default_rng(0)
    keys = rng.normal(size=(repeats, 256, dim)).astype(np.float32)
    values = rng.random((repeats, 256, 2)).astype(np.float32)
    timings = []
    for index in (SketchIndex(dim, 2, k=MEMORY["k"], n_bits=16), ExactIndex(dim, 2, k=MEMORY["k"])):
        for i in range(20):  # warm-up (and fill the FIFO)
            index.write(keys[i], values[i])
        best = []
        for _ in range(3):
            start = time.perf_counter()
            for i in range(repeats):
                index.read(keys[i])
                index.write(keys[i], values[i])
            best.append((time.perf_counter() - start) / repeats * 1e3)
        timings.append(min(best))
    return timings[0], timings[1]


def mean_over_seeds(results: list[dict]) -> dict:
    return {
        name: {key: float(np.mean([r[name][key] for r in results])) for key in results[0][name]}
        for name in results[0]
    }


def show(title: str, table: dict) -> None:
    keys = list(next(iter(table.values())))
    print(f"\n{title}")
    print(f"{'learner':<20}" + "".join(f"{k:>16}" for k in keys))
    for name, row in table.items():
        print(f"{name:<20}" + "".join(f"{row[k]:>16.4f}" for k in keys))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = list(range(args.seeds))
    started = time.perf_counter()

    click_results = []
    for seed in seeds:
        stream = streams.create(
            "clicks", n=N_CLICKS, drifts=CLICK_DRIFTS, n_users=300, n_items=200, seed=seed
        )
        models = learners(lambda lr, s=seed: ctr(s, lr), WARMUP, reset_every=10_000, seed=seed)
        click_results.append(run(stream, models, ["log_loss", "roc_auc"]))
    clicks = mean_over_seeds(click_results)
    show(f"clicks (n={N_CLICKS}, drifts {CLICK_DRIFTS}, mean of {len(seeds)} seeds)", clicks)

    elec = None
    if ELEC2.exists():
        elec_results = []
        for seed in seeds:

            def mlp(lr: float, s: int = seed) -> MLPClassifier:
                return MLPClassifier(hidden=(32,), lr=lr * 10, epochs=2, batch_size=32, seed=s)

            models = learners(mlp, 5_000, reset_every=5_000, seed=seed)
            elec_results.append(
                run(
                    streams.create("elec2", path=ELEC2), models, ["accuracy", "log_loss", "roc_auc"]
                )
            )
        elec = mean_over_seeds(elec_results)
        show(f"elec2 (mean of {len(seeds)} seeds)", elec)

    dim = ctr(0, 0.001).embedding_dim * 4 + ctr(0, 0.001).hidden[-1]
    sketch_ms, exact_ms = memory_speed(dim)
    print(
        f"\nmemory read+write, batch 256, key dim {dim}, k={MEMORY['k']}: sketch 2**16 buckets "
        f"{sketch_ms:.3f} ms, exact FIFO 2000 {exact_ms:.3f} ms (ratio {exact_ms / sketch_ms:.2f})"
    )
    print(f"total {time.perf_counter() - started:.0f} s")

    def lift(table: dict, a: str, b: str, keys: list[str]) -> float:
        return round(100 * float(np.mean([table[a][k] - table[b][k] for k in keys])), 3)

    after = [f"auc_after_{i}" for i in range(len(CLICK_DRIFTS))]
    print(
        json.dumps(
            {
                "clicks_auc_lift_pts": lift(clicks, "frozen+memory", "frozen", after),
                "clicks_auc_lift_incremental_pts": lift(
                    clicks, "incremental+memory", "incremental", after
                ),
                "elec2_acc_lift_pts": None
                if elec is None
                else lift(elec, "frozen+memory", "frozen", ["accuracy"]),
                "memory_ms_per_batch256": round(sketch_ms, 4),
            }
        )
    )


if __name__ == "__main__":
    main()
