"""ReLoop2's per-slot evaluation (Zhu et al., KDD 2023, Sec. 4): the test period split into 10
chronological slots; an incremental baseline trained on slot ``i`` is tested on slot ``i + 1``,
alone and with the error memory (``ErrorMemory``, ``gamma = 1``, the paper's ``lambda`` and
"K for memory reading"), whose memory holds slot ``i`` and is written with every sample of slot
``i + 1`` right after it is scored (test, then write; the base stays as trained,
``base_learns=False``).

We do not have the paper's datasets (AmazonElectronics, MicroVideo). Our data: the click
simulator (``clicks``: users, items, categories, contexts, a sudden segment drift and a gradual
rotation inside the test period; base the DCN-style ``CTRClassifier``, the analogue of the
paper's DCNv2) and Elec2 (base a one-hidden-layer MLP). Both of the paper's settings are run on
each: ``lambda = 0.9, K = 180`` (its AmazonElectronics values) and ``lambda = 0.4, K = 70``
(MicroVideo). The memory is exact top-``K`` by cosine similarity over the last ``slot`` samples
(``backend="exact"``); ``tau`` is ours (0.1: the paper's value could not be read).

Printed: AUC and gAUC (the AUC per user, weighted by the user's samples, over users with both
outcomes; clicks only) per slot and their means over the 9 test slots, base and +ReLoop2, beside
the paper's Table 2; the LAST line is one JSON object.

    python benchmarks/reloop2_slots.py            # 2 seeds
    python benchmarks/reloop2_slots.py --seeds 1
"""

from __future__ import annotations

import argparse
import json
import os
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from adaptloop.learners import ErrorMemory, MLPClassifier  # noqa: E402
from adaptloop.learners.models.ctr import CTRClassifier  # noqa: E402
from adaptloop.streams import registry as streams  # noqa: E402

SLOTS, BATCH = 10, 250
SETTINGS = {"amazon": {"lam": 0.9, "k": 180}, "microvideo": {"lam": 0.4, "k": 70}}
PAPER = {  # Table 2: (gAUC, AUC) in %, base -> +ReLoop2
    "DCNv2 AmazonElectronics": ((87.90, 88.12), (88.81, 88.99)),
    "DCNv2 MicroVideo": ((68.59, 73.44), (69.71, 74.25)),
    "DIN AmazonElectronics": ((88.35, 88.60), (89.10, 89.34)),
    "xDeepFM AmazonElectronics": ((87.90, 88.13), (88.73, 88.96)),
}
ELEC2 = Path("../shared/data/elec2.csv.gz")


def arrays(stream) -> tuple[np.ndarray, np.ndarray]:
    parts = list(stream.iter_batches(10_000))
    return np.concatenate([b[0] for b in parts]), np.concatenate([b[1] for b in parts])


def gauc(users: np.ndarray, y: np.ndarray, p: np.ndarray) -> float:
    total, weight = 0.0, 0
    for user in np.unique(users):
        mask = users == user
        if 0 < y[mask].sum() < mask.sum():
            total += mask.sum() * roc_auc_score(y[mask], p[mask])
            weight += mask.sum()
    return total / weight if weight else float("nan")


def run(X, y, make_base, train_end: int, seed: int, users: bool) -> dict[str, np.ndarray]:
    """Per test slot: AUC (and gAUC) of the base and of base + memory in each setting."""
    bounds = np.linspace(train_end, len(y), SLOTS + 1).astype(int)
    base = make_base(seed)
    for start in range(0, train_end, BATCH):  # the training period
        base.learn(X[start : start + BATCH], y[start : start + BATCH])
    rows: dict[str, list[float]] = {}
    for i in range(SLOTS - 1):
        lo, hi = bounds[i], bounds[i + 1]  # slot i: the incremental base trains on it
        for start in range(lo, hi, BATCH):
            base.learn(X[start : min(start + BATCH, hi)], y[start : min(start + BATCH, hi)])
        nxt = slice(bounds[i + 1], bounds[i + 2])  # slot i + 1: tested
        scores = {"base": base.predict_proba(X[nxt])[:, 1]}
        for name, setting in SETTINGS.items():
            memory = ErrorMemory(
                base.clone(),
                backend="exact",
                capacity=hi - lo,
                gamma=1.0,
                base_learns=False,
                seed=seed,
                **setting,
            )
            memory.model_.load_state_dict(base.state_dict())  # a wrapper starts from a clone
            memory.learn(X[lo:hi], y[lo:hi])  # the memory holds slot i
            out = []
            for start in range(nxt.start, nxt.stop, BATCH):  # test, then write
                stop = min(start + BATCH, nxt.stop)
                out.append(memory.predict_proba(X[start:stop])[:, 1])
                memory.learn(X[start:stop], y[start:stop])
            scores[name] = np.concatenate(out)
        for name, p in scores.items():
            rows.setdefault(f"{name}_auc", []).append(roc_auc_score(y[nxt], p))
            if users:
                rows.setdefault(f"{name}_gauc", []).append(gauc(X[nxt][:, 0], y[nxt], p))
    return {k: np.array(v) for k, v in rows.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    began = time.perf_counter()
    data = {}
    for seed in range(args.seeds):
        stream = streams.create(
            "clicks",
            n=40_000,
            drifts=[{"at": 20_000, "width": 1}, {"at": 30_000, "width": 4_000}],
            n_users=300,
            n_items=200,
            seed=seed,
        )
        X, y = arrays(stream)
        data.setdefault("clicks (CTRClassifier)", []).append(
            run(
                X,
                y,
                lambda s: CTRClassifier(lr=0.001, epochs=2, batch_size=64, seed=s),
                10_000,
                seed,
                users=True,
            )
        )
        if ELEC2.exists():
            X, y = arrays(streams.create("elec2", path=ELEC2))
            data.setdefault("elec2 (MLP)", []).append(
                run(
                    X,
                    y,
                    lambda s: MLPClassifier(hidden=(32,), lr=0.01, epochs=2, batch_size=32, seed=s),
                    5_000,
                    seed,
                    users=False,
                )
            )
    summary = {}
    for name, runs in data.items():
        keys = runs[0].keys()
        per_slot = {k: np.mean([r[k] for r in runs], axis=0) for k in keys}
        print(f"\n{name}: per test slot (mean of {len(runs)} seeds), %")
        for k, v in per_slot.items():
            print(
                f"  {k:18s} "
                + " ".join(f"{100 * x:6.2f}" for x in v)
                + f"   mean {100 * v.mean():6.2f}"
            )
        tag = name.split()[0]
        for setting in SETTINGS:
            lift = 100 * float((per_slot[f"{setting}_auc"] - per_slot["base_auc"]).mean())
            wins = int((per_slot[f"{setting}_auc"] > per_slot["base_auc"]).sum())
            summary[f"{tag}_{setting}_auc_lift_pts"] = round(lift, 3)
            print(f"  +ReLoop2 ({setting} setting): AUC {lift:+.2f} pts, better in {wins}/9 slots")
            if f"{setting}_gauc" in per_slot:
                glift = 100 * float(np.nanmean(per_slot[f"{setting}_gauc"] - per_slot["base_gauc"]))
                summary[f"{tag}_{setting}_gauc_lift_pts"] = round(glift, 3)
        summary[f"{tag}_base_auc"] = round(100 * float(per_slot["base_auc"].mean()), 2)
    print("\nthe paper's Table 2 (gAUC / AUC, %): base -> +ReLoop2 (lift)")
    for name, ((g0, a0), (g1, a1)) in PAPER.items():
        print(
            f"  {name:26s} {g0:.2f}/{a0:.2f} -> {g1:.2f}/{a1:.2f}  (+{g1 - g0:.2f}/+{a1 - a0:.2f})"
        )
    print(f"(total {time.perf_counter() - began:.0f} s)")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
