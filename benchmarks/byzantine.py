"""Byzantine clients against plain and robust aggregation, synchronous and asynchronous.

32 clients, non-IID shards of a rotating-hyperplane stream (Dirichlet 0.5 class mixes), a quarter
of them 10x slower (stragglers), a quarter of them Byzantine (drawn apart from the stragglers'
draw), seeds 0-2, the in-process engine (simulated clock). Attacks: sign flip x4 and ALIE
("a little is enough", ``z_max`` of Baruch et al. 2019). Rules: FedBuff (buffer 8, staleness
``1/sqrt(1+tau)``, the setting of ``benchmarks/async_vs_sync.py``) and FedAvg (8 clients a
round), each with the plain mean and every robust block of
:class:`adaptloop.distributed.aggregate.RobustBlock` (median, trimmed mean, Krum, Multi-Krum,
centred clipping; ``robust_fraction`` 0.25; and FLTrust, whose server trains its reference
update on ``ROOT`` = 100 clean rows of the stream no client holds, the paper's default size).

Accuracy is the global model's mean accuracy on every client's held-out data over the last
``LAST`` time units. The "best robust block" of each rule is chosen on a separate seed
(``SELECT_SEED``, never on the seeds reported), by its worst accuracy over the two attacks. The
target accuracy for the time comparison is fixed in advance (``TARGET``).

Peers: Flower has robust aggregators but no asynchronous aggregation, APPFL asynchronous
aggregation but no robust one; neither is installed here, so the baselines are our own plain
FedBuff / FedAvg in the same run.

The last line is one JSON object: ``fedbuff_clean_acc``, ``fedbuff_attacked_acc`` (plain FedBuff,
worst of the two attacks), ``fedbuff_robust_attacked_acc`` (FedBuff with its chosen block,
worst attack; FLTrust is one of the candidates), ``fedavg_robust_attacked_acc``,
``fedbuff_robust_data_free_attacked_acc`` / ``fedavg_...`` (the same among the blocks that need
no data at the server), ``robust_fedbuff_over_fedavg_time`` (simulated
time to ``TARGET`` under sign flip, robust FedBuff over robust FedAvg; a run that never reaches
it counts as the duration), ``down_weighted_share_byzantine`` / ``_honest`` (the share of each
group's updates robust FedBuff down-weighted), ``bristle_attacked_acc``
and ``admm_noise_rmse_ratio`` (see ``--help``), means over the seeds, and the table behind them.

    OMP_NUM_THREADS=1 python benchmarks/byzantine.py                  # ~5 minutes on 2 cores
    python benchmarks/byzantine.py --figure report/figures/byzantine.png --ray
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from adaptloop.distributed import FedAvg, FedBuff, Federation, LocalEngine, make_federated_data
from adaptloop.distributed.attacks import Attack
from adaptloop.distributed.federation import Evaluator, RunTrace
from adaptloop.distributed.rules.admm import admm_wls, fedavg_wls, wls_problem
from adaptloop.distributed.rules.bristle import Bristle
from adaptloop.distributed.run import time_to
from adaptloop.learners import LogisticRegression
from adaptloop.learners.models.frozen_body import FrozenBodyClassifier, pretrain_body
from adaptloop.streams import registry as streams

CLIENTS = 32
DURATION = 600.0
LAST = 100.0
TARGET = 0.85
SEEDS = (0, 1, 2)
SELECT_SEED = 100
ATTACKS = {
    "sign_flip": Attack("sign_flip", fraction=0.25, scale=4.0),
    "alie": Attack("alie", fraction=0.25),
}
BLOCKS = ("median", "trimmed_mean", "krum", "multi_krum", "clip", "fltrust")
DATA_FREE = BLOCKS[:-1]  # the blocks that need no data at the server
ROOT = 100  # FLTrust's root dataset: the paper's default size (100 examples, Cao et al. 2021)
SAMPLES = 500
STREAM = {"n_features": 10, "mag_change": 0.0, "noise": 0.05}
PUBLIC = 1000  # Bristle's public split: fresh samples of the same stream, no client holds them
HIDDEN = 32
BRISTLE_LRS = (0.1, 0.5)  # the output layer's step size, chosen on SELECT_SEED
TARGET_BRISTLE = 0.9  # Bristle's "iterations to 90 %"
SNR_DB = 20.0
SCHEDULE = 0.25
RHOS = (10.0, 30.0, 100.0)  # ADMM's penalty, chosen per variant on SELECT_SEED


def public_split(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``PUBLIC`` samples of the clients' stream drawn after every client's pool."""
    pool = CLIENTS * SAMPLES
    stream = streams.create("hyperplane", n=pool + PUBLIC, concepts=[0], seed=seed, **STREAM)
    X, y = (np.concatenate(parts) for parts in zip(*stream.iter_batches(8192), strict=True))
    return X[pool:].astype(np.float32), y[pool:]


def federation(
    seed: int, attack: Attack | None, duration: float = DURATION, learner=None
) -> Federation:
    data = make_federated_data(
        "hyperplane",
        clients=CLIENTS,
        samples_per_client=SAMPLES,
        concepts=[0],
        class_skew=0.5,
        seed=seed,
        **STREAM,
    )
    return Federation(
        data,
        learner or LogisticRegression(lr=0.1, standardize=False),
        duration=duration,
        eval_every=10.0,
        slow_fraction=0.25,
        slow_factor=10.0,
        seed=seed,
        attack=attack,
        root_samples=ROOT,
    )


def make_rule(rule: str, block: str):
    if rule == "fedbuff":
        return FedBuff(buffer_size=8, local_steps=5, server_lr=0.5, robust=block)
    return FedAvg(clients_per_round=8, local_steps=5, robust=block)


def accuracy(trace: RunTrace) -> float:
    rows = [r["accuracy"] for r in trace.rows if r["time"] >= DURATION - LAST - 1e-9]
    return float(np.mean(rows))


def run(seed: int, attack: str | None, rule: str, block: str) -> RunTrace:
    fed = federation(seed, ATTACKS[attack] if attack else None)
    return LocalEngine().run(fed, make_rule(rule, block), name=f"{rule}/{block}/{attack}")


def share_down_weighted(trace: RunTrace) -> tuple[float, float]:
    """The share of the Byzantine clients' and of the honest clients' updates down-weighted."""
    bad = set(trace.byzantine)
    down, sent = trace.down_weighted_by_client, trace.accepted_by_client
    shares = []
    for group in (bad, set(sent) - bad):
        total = sum(sent.get(c, 0) for c in group)
        shares.append(sum(down.get(c, 0) for c in group) / total if total else 0.0)
    return shares[0], shares[1]


def choose_blocks() -> tuple[dict[str, str], dict[str, str]]:
    """Each rule's block with the best worst-attack accuracy on the selection seed: among all
    blocks, and among those that need no data at the server (every block but FLTrust)."""
    chosen, data_free = {}, {}
    for rule in ("fedbuff", "fedavg"):
        worst = {b: min(accuracy(run(SELECT_SEED, a, rule, b)) for a in ATTACKS) for b in BLOCKS}
        chosen[rule] = max(BLOCKS, key=lambda b: worst[b])
        data_free[rule] = max(DATA_FREE, key=lambda b: worst[b])
        print(f"selection seed {SELECT_SEED}: {rule} worst-attack accuracy {worst}")
    return chosen, data_free


def bristle_run(seed: int, attack: str | None, lr: float, duration: float = DURATION):
    """Bristle over the same federation, on a body pretrained on the public split."""
    X, y = public_split(seed)
    body = pretrain_body(X, y, n_classes=2, hidden=HIDDEN, seed=seed)
    learner = FrozenBodyClassifier(body, n_classes=2, lr=lr)
    fed = federation(seed, ATTACKS[attack] if attack else None, duration, learner)
    rule = Bristle(exploit=4, explore=2, eval_samples=50, validation=(X, y))
    trace = LocalEngine().run(fed, rule, name=f"bristle/lr{lr}/{attack}")
    return trace, rule, fed


def honest_own_accuracy(trace: RunTrace, rule: Bristle, fed: Federation) -> float:
    """Mean accuracy of every honest peer's own model on all clients' held-out data, at the
    end (what the Bristle paper reports per peer)."""
    evaluator = Evaluator(fed)
    bad = set(trace.byzantine)
    own = [v for c, v in rule.models.items() if c not in bad]
    return float(np.mean([evaluator.evaluate(v, fed.duration)["accuracy"] for v in own]))


def updates_to(trace: RunTrace, target: float) -> int | None:
    """Accepted updates (local tasks, all clients) until the accuracy first reaches ``target``."""
    for row in trace.rows:
        if row["accuracy"] >= target:
            return int(row["updates"])
    return None


def bristle_section(
    fedbuff_traces: dict[int, RunTrace],
) -> tuple[dict, dict[str, list[float]], dict[str, RunTrace]]:
    """Bristle's output-layer step size chosen on the selection seed (worst attack), then
    clean and both attacks on the reported seeds; ``fedbuff_traces``: plain FedBuff clean runs
    by seed (for the updates-to-90 % comparison). Also its seed-0 traces (for the figure)."""
    worst = {
        lr: min(accuracy(bristle_run(SELECT_SEED, a, lr)[0]) for a in ATTACKS) for lr in BRISTLE_LRS
    }
    lr = max(BRISTLE_LRS, key=lambda k: worst[k])
    print(f"selection seed {SELECT_SEED}: bristle worst-attack accuracy by lr {worst}")
    table: dict[str, list[float]] = {}
    own: dict[str, list[float]] = {}
    to90: dict[str, list[int | None]] = {"bristle": [], "fedbuff": []}
    seed0: dict[str, RunTrace] = {}
    for seed in SEEDS:
        for attack in (None, *ATTACKS):
            trace, rule, fed = bristle_run(seed, attack, lr)
            if seed == 0:
                seed0[f"bristle/{attack}"] = trace
            table.setdefault(f"bristle/{attack}", []).append(accuracy(trace))
            honest = honest_own_accuracy(trace, rule, fed)
            own.setdefault(f"bristle_own/{attack}", []).append(honest)
            if attack is None:
                to90["bristle"].append(updates_to(trace, TARGET_BRISTLE))
                to90["fedbuff"].append(updates_to(fedbuff_traces[seed], TARGET_BRISTLE))
    body = STREAM["n_features"] * HIDDEN + HIDDEN  # the frozen body's parameters
    head = (HIDDEN + 1) * 2 + 1  # what a peer sends: output layer (+ the feature count)
    mean = {k: float(np.mean(v)) for k, v in {**table, **own}.items()}
    out = {
        "bristle_lr": lr,
        "bristle_clean_acc": round(mean["bristle/None"], 4),
        "bristle_attacked_acc": round(min(mean[f"bristle/{a}"] for a in ATTACKS), 4),
        "bristle_honest_own_clean_acc": round(mean["bristle_own/None"], 4),
        "bristle_honest_own_attacked_acc": round(min(mean[f"bristle_own/{a}"] for a in ATTACKS), 4),
        "bristle_updates_to_90": to90,
        "bristle_message_share_of_full_model": round(head / (head + body), 4),
    }
    return out, {**table, **own}, seed0


def admm_section() -> dict:
    """Noise-robust vs standard ADMM vs FedAvg on WLS at ``SNR_DB``, ``SCHEDULE`` of the
    clients a round: steady-state RMSE (mean of the last 100 of 500 iterations); each ADMM
    variant's ``rho`` chosen on the selection seed."""

    def rmse(seed: int, method: str, rho: float = 10.0) -> float:
        problem = wls_problem(clients=CLIENTS, dim=8, samples=50, seed=seed)
        common = {"schedule": SCHEDULE, "snr_db": SNR_DB, "seed": seed}
        if method == "fedavg":
            curve = fedavg_wls(problem, iterations=500, local_steps=5, **common)
        else:
            variant, local = {
                "standard": ("standard", False),
                "robust": ("noise_robust", True),
                "robust_no_local": ("noise_robust", False),
            }[method]
            curve = admm_wls(problem, 500, rho, variant=variant, local_updates=local, **common)
        return float(curve[-100:].mean())

    methods = ("standard", "robust", "robust_no_local")
    rho = {m: min(RHOS, key=lambda r, m=m: rmse(SELECT_SEED, m, r)) for m in methods}
    result = {m: float(np.mean([rmse(s, m, rho[m]) for s in SEEDS])) for m in methods}
    result["fedavg"] = float(np.mean([rmse(s, "fedavg") for s in SEEDS]))
    return {
        "admm_noise_rmse_ratio": round(result["robust"] / result["standard"], 4),
        "admm_noise_rmse_ratio_vs_fedavg": round(result["robust"] / result["fedavg"], 4),
        "admm_rmse": {k: round(v, 5) for k, v in result.items()},
        "admm_rho": rho,
        "admm_snr_db": SNR_DB,
        "admm_schedule": SCHEDULE,
    }


def ray_run(block: str) -> dict:
    """One Ray run: robust FedBuff under sign flip, seed 0, a third of the duration."""
    from adaptloop.distributed.ray_engine import RayEngine

    engine = RayEngine(time_unit_s=0.02)
    try:
        fed = federation(0, ATTACKS["sign_flip"], duration=DURATION / 3)
        started = time.perf_counter()
        trace = engine.run(fed, make_rule("fedbuff", block))
        wall = time.perf_counter() - started
    finally:
        engine.close()
    bad, honest = share_down_weighted(trace)
    return {
        "ray_fedbuff_robust_sign_flip_final_acc": round(trace.rows[-1]["accuracy"], 4),
        "ray_wall_s": round(wall, 1),
        "ray_down_weighted_share_byzantine": round(bad, 4),
        "ray_down_weighted_share_honest": round(honest, 4),
    }


def figure(traces: dict[str, RunTrace], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(ATTACKS), figsize=(12, 7), sharex=True)
    for col, attack in enumerate(ATTACKS):
        top, bottom = axes[0, col], axes[1, col]
        colors = iter(plt.get_cmap("tab10").colors * 2)  # one colour per rule, both lines
        for name, trace in traces.items():
            if not (name.endswith(f"/{attack}") or name.endswith("/None")):
                continue
            t = [r["time"] for r in trace.rows]
            top.plot(t, [r["accuracy"] for r in trace.rows], label=name.replace("/None", "/clean"))
            if trace.influence:
                bad = set(trace.byzantine)
                times = np.array([x[0] for x in trace.influence])
                down = np.array([x[2] < 0.5 for x in trace.influence])
                is_bad = np.array([x[1] in bad for x in trace.influence])
                rule = name.split("/" + attack)[0].replace("/None", " clean")
                color = next(colors)
                for mask, style, who in ((is_bad, "-", "Byzantine"), (~is_bad, ":", "honest")):
                    counts = [int(np.sum(down & mask & (times <= s))) for s in t]
                    bottom.plot(t, counts, style, color=color, label=f"{rule} {who}")
        top.set_title(f"{attack}, 25 % Byzantine (seed 0)")
        top.set_ylabel("accuracy")
        bottom.set_ylabel("updates down-weighted (cumulative)")
        bottom.set_xlabel("simulated time (units)")
        top.legend(fontsize=7)
        bottom.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--figure", help="write accuracy over time (seed 0) to this PNG")
    parser.add_argument("--ray", action="store_true", help="add one Ray run")
    args = parser.parse_args()
    started = time.perf_counter()
    chosen, data_free = choose_blocks()
    table: dict[str, list[float]] = {}
    ttt: dict[str, list[float | None]] = {"fedbuff": [], "fedavg": []}
    seed0: dict[str, RunTrace] = {}
    clean_fedbuff: dict[int, RunTrace] = {}
    down_bad, down_honest = [], []
    for seed in SEEDS:
        for attack in (None, *ATTACKS):
            for rule in ("fedbuff", "fedavg"):
                for block in ("mean", *BLOCKS):
                    if attack is None and block != "mean":
                        continue
                    trace = run(seed, attack, rule, block)
                    table.setdefault(trace.rule, []).append(accuracy(trace))
                    if attack is None and rule == "fedbuff":
                        clean_fedbuff[seed] = trace
                    if block == chosen[rule] and attack == "sign_flip":
                        ttt[rule].append(time_to(trace.rows, TARGET))
                    if block == chosen["fedbuff"] and rule == "fedbuff" and attack:
                        bad, honest = share_down_weighted(trace)
                        down_bad.append(bad)
                        down_honest.append(honest)
                    if seed == 0 and block in ("mean", chosen[rule], data_free[rule]):
                        seed0[trace.rule] = trace
    bristle, bristle_table, bristle_seed0 = bristle_section(clean_fedbuff)
    table.update(bristle_table)
    seed0.update(bristle_seed0)  # the figure draws Bristle beside the other rules
    print(f"accuracy over the last {LAST:.0f} time units, seeds {SEEDS} (mean, min)")
    for name, accs in table.items():
        print(f"{name:32s} {np.mean(accs):.3f} {np.min(accs):.3f}")
    mean = {k: float(np.mean(v)) for k, v in table.items()}

    def worst(rule: str, block: str) -> float:
        return round(min(mean[f"{rule}/{block}/{a}"] for a in ATTACKS), 4)

    def mean_time(rule: str) -> float:
        """Mean time to the target, a run that never reached it counted as the duration (so
        FedAvg's time is a lower bound and the ratio an upper bound)."""
        return float(np.mean([DURATION if t is None else t for t in ttt[rule]]))

    t_buff, t_avg = mean_time("fedbuff"), mean_time("fedavg")
    out = {
        "fedbuff_clean_acc": round(mean["fedbuff/mean/None"], 4),
        "fedbuff_attacked_acc": worst("fedbuff", "mean"),
        "fedbuff_robust_attacked_acc": worst("fedbuff", chosen["fedbuff"]),
        "fedavg_robust_attacked_acc": worst("fedavg", chosen["fedavg"]),
        "fedbuff_robust_data_free_attacked_acc": worst("fedbuff", data_free["fedbuff"]),
        "fedavg_robust_data_free_attacked_acc": worst("fedavg", data_free["fedavg"]),
        "fedavg_clean_acc": round(mean["fedavg/mean/None"], 4),
        "robust_fedbuff_over_fedavg_time": round(t_buff / t_avg, 4),
        "time_to_target": {"fedbuff": ttt["fedbuff"], "fedavg": ttt["fedavg"]},
        "chosen_blocks": chosen,
        "chosen_data_free_blocks": data_free,
        "down_weighted_share_byzantine": round(float(np.mean(down_bad)), 4),
        "down_weighted_share_honest": round(float(np.mean(down_honest)), 4),
        **bristle,
        "bristle_over_robust_fedbuff_attacked": round(
            bristle["bristle_attacked_acc"] / worst("fedbuff", chosen["fedbuff"]), 4
        ),
        **admm_section(),
        "target": TARGET,
        "clients": CLIENTS,
        "seeds": list(SEEDS),
        "table": {k: round(v, 4) for k, v in mean.items()},
        "wall_s": None,
    }
    if args.figure:
        Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
        figure(seed0, args.figure)
    if args.ray:
        out.update(ray_run(chosen["fedbuff"]))
    out["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
