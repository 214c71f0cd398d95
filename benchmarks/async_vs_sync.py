"""Asynchronous vs synchronous aggregation under stragglers: time to a fixed target accuracy.

32 clients, a quarter of them 10x slower, non-IID shards of a rotating-hyperplane stream (each
client's own class mix, Dirichlet 0.5) with a drift half-way (each client within +-5 % of the
run of the drift time). The target accuracy is fixed in advance (``TARGET``). For FedAvg, FedBuff,
FedStale and FedCompass scheduling it reports

- on the in-process engine (simulated clock, deterministic): the simulated time to reach the
  target, the accuracy over the first ``AFTER`` time units after the drift and at the end;
- on Ray (clients are actors, ``TIME_UNIT_S`` wall seconds per time unit, the 10x slower clients
  really sleep 10x longer): the wall-clock seconds to reach the target, over the first half
  (before the drift).

FedAvg is run with server learning rates 1.0 (the paper's plain average) and 0.5 and the faster
one is the baseline, so the ratios are against a tuned synchronous peer. The last line is one
JSON object: ``fedbuff_over_fedavg_time`` and ``fedstale_over_fedavg_time`` (simulated time to
the target, lower is better, null when a rule never reached it), ``ray_wall_s`` (wall-clock
seconds of the Ray runs, actor start-up excluded), ``clients`` and the per-rule numbers.

    python benchmarks/async_vs_sync.py            # ~3-4 minutes on 2 cores
    python benchmarks/async_vs_sync.py --no-ray   # the simulated part only (~1 minute)
"""

from __future__ import annotations

import argparse
import json
import time

from adaptloop.distributed import (
    FedAvg,
    FedBuff,
    FedCompass,
    Federation,
    FedStale,
    LocalEngine,
    make_federated_data,
)
from adaptloop.distributed.run import run_federation, time_to
from adaptloop.learners import LogisticRegression

CLIENTS = 32
DURATION = 2000.0
DRIFT_AT = 1000.0
TARGET = 0.85
AFTER = 100.0
TIME_UNIT_S = 0.02
SEED = 7


def federation(duration: float = DURATION) -> Federation:
    data = make_federated_data(
        "hyperplane",
        clients=CLIENTS,
        samples_per_client=1000,
        concepts=[0, 1],
        drift_at=[DRIFT_AT],
        drift_jitter=0.05 * DURATION,
        class_skew=0.5,
        seed=SEED,
        n_features=10,
        mag_change=0.0,
        noise=0.05,
    )
    return Federation(
        data,
        LogisticRegression(lr=0.1, standardize=False),
        duration=duration,
        eval_every=5.0,
        slow_fraction=0.25,
        slow_factor=10.0,
        latency=0.1,
        timeout=500.0,
        seed=SEED,
    )


def rules() -> dict:
    return {
        "fedavg_lr1": FedAvg(clients_per_round=8, local_steps=5, server_lr=1.0),
        "fedavg_lr0.5": FedAvg(clients_per_round=8, local_steps=5, server_lr=0.5),
        "fedbuff": FedBuff(buffer_size=8, local_steps=5, server_lr=0.5),
        "fedstale": FedStale(buffer_size=8, beta=0.5, local_steps=5, server_lr=0.5),
        "fedcompass": FedCompass(max_steps=10),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a / b, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray runs")
    args = parser.parse_args()

    started = time.perf_counter()
    result = run_federation(federation(), rules(), LocalEngine(), target=TARGET, after=AFTER)
    local_s = time.perf_counter() - started
    per_rule = result.federated["rules"]
    avg_name = min(
        ("fedavg_lr1", "fedavg_lr0.5"),
        key=lambda n: per_rule[n]["time_to_target"] or float("inf"),
    )
    print(f"simulated clock ({CLIENTS} clients, {local_s:.0f} s): target accuracy {TARGET}")
    header = ("rule", "time to target", "after drift", "final", "updates")
    print("{:14s} {:>15s} {:>12s} {:>7s} {:>8s}".format(*header))
    for name, rule in per_rule.items():
        t = rule["time_to_target"]
        print(
            f"{name:14s} {('never' if t is None else f'{t:.0f}'):>15s} "
            f"{rule['accuracy_after_drift'][0]:12.3f} "
            f"{result.summary[name]['accuracy_final']:7.3f} {rule['updates']:8d}"
        )
    t_avg = per_rule[avg_name]["time_to_target"]
    out = {
        "fedbuff_over_fedavg_time": ratio(per_rule["fedbuff"]["time_to_target"], t_avg),
        "fedstale_over_fedavg_time": ratio(per_rule["fedstale"]["time_to_target"], t_avg),
        "fedcompass_over_fedavg_time": ratio(per_rule["fedcompass"]["time_to_target"], t_avg),
        "fedavg_baseline": avg_name,
        "target": TARGET,
        "time_to_target": {n: r["time_to_target"] for n, r in per_rule.items()},
        "accuracy_after_drift": {n: r["accuracy_after_drift"][0] for n, r in per_rule.items()},
        "ray_wall_s": None,
        "clients": CLIENTS,
    }
    if not args.no_ray:
        out.update(ray_part(avg_name))
    print(json.dumps(out))


def ray_part(avg_name: str) -> dict:
    """Wall-clock seconds to the target on Ray, over the first half (before the drift)."""
    from adaptloop.distributed.ray_engine import RayEngine

    fed = federation(duration=DRIFT_AT)
    engine = RayEngine(time_unit_s=TIME_UNIT_S, local_cpus=2)
    chosen = {
        n: r for n, r in rules().items() if n in (avg_name, "fedbuff", "fedstale", "fedcompass")
    }
    started = time.perf_counter()
    engine._prepare(fed)  # start the 32 actors before timing
    startup = time.perf_counter() - started
    walls, runs_s = {}, 0.0
    try:
        for name, rule in chosen.items():
            trace = engine.run(fed, rule, name=name)
            runs_s += trace.wall_seconds
            walls[name] = time_to(trace.rows, TARGET, "wall_seconds")
            print(
                f"ray {name:14s} wall to target: {walls[name]} s "
                f"({trace.counts.get('accepted', 0)} updates in {trace.wall_seconds:.1f} s)"
            )
    finally:
        engine.close()
    print(f"ray: {CLIENTS} actors started in {startup:.1f} s")
    return {
        "ray_wall_s": round(runs_s, 2),
        "ray_wall_to_target_s": walls,
        "ray_fedbuff_over_fedavg_wall": ratio(walls["fedbuff"], walls[avg_name]),
        "ray_actor_startup_s": round(startup, 1),
    }


if __name__ == "__main__":
    main()
