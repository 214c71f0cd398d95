"""Decentralised learning against a server: single merge, DFedSAM, MoDeST, vanishing variance.

32 clients, non-IID shards of a rotating-hyperplane stream (Dirichlet 0.3 class mixes), a quarter
of them 2x slower, seeds 0-2, the in-process engine (simulated clock), logistic regression
(per-sample SGD, lr 0.1) for the first three claims:

* **A single merge suffices** (Zhu et al. 2025): gossip (each node averages with one random peer
  after its local steps) and one final merge against FedAvg with every client every round (the
  same participation as gossip's). ``single_merge_gap_pts`` = merged gossip's final accuracy
  minus FedAvg's, in points (the paper: about 0); ``single_merge_gap_vs_fedavg8_pts`` against
  FedAvg sampling 8 clients a round.
* **DFedSAM** (Shi et al., ICML 2023) on a sparse ring: SAM local steps against plain local SGD
  (DFedAvg), one gossip step a round each; ``dfedsam_minus_dfedavg_pts`` compares the nodes' own
  models (``accuracy_local``: the paper's subject is the local models' consistency; the merged
  models' gap is in the table). SAM's radius ``rho`` is chosen on a separate seed
  (``SELECT_SEED``) among ``RHOS``.
* **MoDeST** (de Vos et al. 2023): a sample of 8 nodes trains and aggregates each round, against
  gossip; ``modest_comm_over_gossip`` = bytes sent until the nodes' models reach ``TARGET``
  (mean accuracy of the models the nodes hold), MoDeST over gossip (the paper: 3-14x less than
  decentralised learning, so below 0.5 is the goal). A run that never reaches the target counts
  its total bytes (a lower bound, flagged in the table).

Then a small MLP (two hidden layers of 32, SGD, lr 0.3 chosen on ``SELECT_SEED``), every node
initialised on its own (gossip learning's setting), for the **vanishing variance** claim (Tian
et al. 2024): gossip with variance-corrected merges against plain averaging;
``variance_fix_time_over_plain`` = simulated time until the nodes' models reach ``MLP_TARGET``,
corrected over plain (a run that never reaches it counts as the duration).

"Final accuracy" is the mean over the evaluations of the last ``LAST`` time units. DADAO (torus,
its paper's communication rate) and DFedSAM-MGS (4 gossip steps) are in the table, not in a goal.
``--ray`` adds one run of the headline rule (DFedSAM on the ring) on Ray. If
``benchmarks/partial_participation.py`` exists, its ``measure(seeds)`` keys are merged in.

The last line is one JSON object with the keys above (means over the seeds) and the table.

    OMP_NUM_THREADS=1 python benchmarks/decentralised.py            # ~6 minutes on 2 cores
    OMP_NUM_THREADS=1 python benchmarks/decentralised.py --ray --figure decentral.png
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np

from adaptloop.distributed import (
    DADAO,
    DFedSAM,
    FedAvg,
    Federation,
    Gossip,
    LocalEngine,
    MoDeST,
    make_federated_data,
)
from adaptloop.distributed.federation import RunTrace
from adaptloop.distributed.run import time_to
from adaptloop.learners import LogisticRegression
from adaptloop.learners import registry as learners

CLIENTS = 32
DURATION = 300.0
MLP_DURATION = 200.0
EVAL_EVERY = 10.0
LAST = 50.0
TARGET = 0.7
MLP_TARGET = 0.65
SEEDS = (0, 1, 2)
SELECT_SEED = 9
RHOS = (0.02, 0.05, 0.1, 0.2, 0.5)
BATCH = 32
LR = 0.1


def federation(seed: int, mlp: bool = False, duration: float | None = None) -> Federation:
    data = make_federated_data(
        "hyperplane",
        clients=CLIENTS,
        samples_per_client=500,
        concepts=[0],
        seed=seed,
        n_features=10,
        mag_change=0.0,
        noise=0.05,
        class_skew=0.3,
    )
    if mlp:
        learner = learners.create(
            "mlp", hidden=(32, 32), lr=0.3, optimizer="sgd", standardize=False, seed=seed
        )
    else:
        learner = LogisticRegression(lr=LR, standardize=False)
    return Federation(
        data,
        learner,
        batch_size=BATCH,
        duration=duration or (MLP_DURATION if mlp else DURATION),
        eval_every=EVAL_EVERY,
        slow_fraction=0.25,
        slow_factor=2.0,
        seed=seed,
    )


def rules(rho: float) -> dict:
    return {
        "fedavg": FedAvg(clients_per_round=8, local_steps=5),
        "fedavg_all": FedAvg(clients_per_round=CLIENTS, local_steps=5),
        "gossip": Gossip(local_steps=5),
        "gossip_ring": Gossip(local_steps=5, topology="ring"),
        "dfedavg_ring": DFedSAM(local_steps=5, rho=0.0, topology="ring"),
        "dfedsam_ring": DFedSAM(local_steps=5, rho=rho, topology="ring"),
        "dfedsam_mgs_ring": DFedSAM(local_steps=5, rho=rho, gossip_steps=4, topology="ring"),
        "modest": MoDeST(sample_size=8, aggregators=1, local_steps=5),
        # the clients' step per unit gradient: per-sample SGD over a batch
        "dadao_torus": DADAO(topology="torus", lr=LR * BATCH, smoothness=1.0, strong_convexity=0.1),
    }


def final(trace: RunTrace, key: str = "accuracy") -> float:
    end = trace.rows[-1]["time"]
    return float(np.mean([r[key] for r in trace.rows if r["time"] > end - LAST - 1e-9]))


def reach(trace: RunTrace, target: float, key: str) -> tuple[float, bool]:
    """``key`` (time, bytes) when the nodes' models first reach ``target``; else its total."""
    rows = [{**r, "accuracy": r["accuracy_local"]} for r in trace.rows]
    value = time_to(rows, target, key)
    return (float(rows[-1][key]), False) if value is None else (value, True)


def choose_rho() -> float:
    fed = federation(SELECT_SEED)
    scores = {
        rho: final(LocalEngine().run(fed, DFedSAM(5, rho=rho, topology="ring")), "accuracy_local")
        for rho in RHOS
    }
    return max(scores, key=scores.get)


def ray_run(rho: float) -> dict:
    """DFedSAM on the ring, on Ray (2 CPUs), seed 0, a third of the duration."""
    from adaptloop.distributed.ray_engine import RayEngine

    engine = RayEngine(time_unit_s=0.02, local_cpus=2)
    try:
        started = time.perf_counter()
        trace = engine.run(federation(0, duration=DURATION / 3), DFedSAM(5, rho, topology="ring"))
        wall = time.perf_counter() - started
    finally:
        engine.close()
    return {
        "ray_dfedsam_ring_final_acc": round(trace.rows[-1]["accuracy"], 4),
        "ray_dfedsam_ring_final_acc_local": round(trace.rows[-1]["accuracy_local"], 4),
        "ray_dfedsam_ring_bytes": int(trace.rows[-1]["bytes_sent"]),
        "ray_wall_s": round(wall, 1),
    }


def partial_keys() -> dict:
    """The partial-participation benchmark's keys, if that benchmark exists."""
    path = Path(__file__).with_name("partial_participation.py")
    if not path.exists():
        return {}
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location("partial_participation", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.measure(SEEDS)


def figure(traces: dict[str, RunTrace], path: str) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2))
    by_time, by_bytes = fig.subplots(1, 2, sharey=True)
    for name, trace in traces.items():
        t = [r["time"] for r in trace.rows]
        acc = [r["accuracy_local"] for r in trace.rows]
        sent = [(r["bytes_sent"] / 1e6, r["accuracy_local"]) for r in trace.rows if r["bytes_sent"]]
        by_time.plot(t, acc, label=name)
        by_bytes.plot(*zip(*sent, strict=True), label=name)
    by_time.set_xlabel("simulated time (units)")
    by_bytes.set_xlabel("megabytes sent (log)")
    by_bytes.set_xscale("log")
    by_time.set_ylabel("accuracy of the nodes' own models")
    by_time.legend(fontsize=8)
    for ax in (by_time, by_bytes):
        ax.axhline(TARGET, color="#999999", lw=0.8, ls="--")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--figure", help="write accuracy against time and bytes (seed 0) here")
    parser.add_argument("--ray", action="store_true", help="add one Ray run of DFedSAM")
    args = parser.parse_args()
    started = time.perf_counter()
    rho = choose_rho()
    print(f"rho chosen on seed {SELECT_SEED}: {rho}", file=sys.stderr, flush=True)
    table: dict[str, dict] = {}
    gaps, gaps8, sam, comm, comm_dfedavg, vv = [], [], [], [], [], []
    for seed in SEEDS:
        fed = federation(seed)
        traces = {name: LocalEngine().run(fed, rule) for name, rule in rules(rho).items()}
        if seed == 0 and args.figure:
            figure(traces, args.figure)
        for name, trace in traces.items():
            bytes_, reached = reach(trace, TARGET, "bytes_sent")
            time_, _ = reach(trace, TARGET, "time")
            table.setdefault(name, {})[str(seed)] = {
                "final_acc": round(final(trace), 4),
                "final_acc_local": round(final(trace, "accuracy_local"), 4),
                "mb_to_target": round(bytes_ / 1e6, 4),
                "reached": reached,
                "time_to_target": time_,
                "mb_sent": round(trace.rows[-1]["bytes_sent"] / 1e6, 4),
            }
        gaps.append(100 * (final(traces["gossip"]) - final(traces["fedavg_all"])))
        gaps8.append(100 * (final(traces["gossip"]) - final(traces["fedavg"])))
        sam.append(
            100
            * (
                final(traces["dfedsam_ring"], "accuracy_local")
                - final(traces["dfedavg_ring"], "accuracy_local")
            )
        )
        modest_bytes = reach(traces["modest"], TARGET, "bytes_sent")[0]
        comm.append(modest_bytes / reach(traces["gossip"], TARGET, "bytes_sent")[0])
        comm_dfedavg.append(modest_bytes / reach(traces["dfedavg_ring"], TARGET, "bytes_sent")[0])
        mlp = federation(seed, mlp=True)
        plain = LocalEngine().run(mlp, Gossip(5, independent_init=True))
        fixed = LocalEngine().run(mlp, Gossip(5, independent_init=True, variance_correction=True))
        times = [reach(trace, MLP_TARGET, "time") for trace in (plain, fixed)]
        vv.append(times[1][0] / times[0][0])
        table.setdefault("mlp_gossip_plain", {})[str(seed)] = {
            "time_to_target": times[0][0],
            "reached": times[0][1],
            "final_acc_local": round(final(plain, "accuracy_local"), 4),
        }
        table.setdefault("mlp_gossip_variance_fix", {})[str(seed)] = {
            "time_to_target": times[1][0],
            "reached": times[1][1],
            "final_acc_local": round(final(fixed, "accuracy_local"), 4),
        }
        print(f"seed {seed} done at {time.perf_counter() - started:.0f} s", file=sys.stderr)
    out = {
        "single_merge_gap_pts": round(float(np.mean(gaps)), 2),
        "single_merge_gap_vs_fedavg8_pts": round(float(np.mean(gaps8)), 2),
        "dfedsam_minus_dfedavg_pts": round(float(np.mean(sam)), 2),
        "modest_comm_over_gossip": round(float(np.mean(comm)), 3),
        "modest_comm_over_dfedavg_ring": round(float(np.mean(comm_dfedavg)), 3),
        "variance_fix_time_over_plain": round(float(np.mean(vv)), 3),
        "rho": rho,
        "target": TARGET,
        "mlp_target": MLP_TARGET,
    }
    if args.ray:
        out.update(ray_run(rho))
    for key, value in partial_keys().items():  # a shared name (target, seconds) is prefixed
        out[f"partial_{key}" if key in out or key == "seconds" else key] = value
    out["seconds"] = round(time.perf_counter() - started, 1)
    out["table"] = table
    print(json.dumps(out))


if __name__ == "__main__":
    main()
