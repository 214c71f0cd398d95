"""An experiment grid here and on Ray: 3 learners x 3 seeds on the built-in SEA stream.

The same experiment file (a ``[grid]`` of ``seed = [1, 2, 3]`` over three learners: a window
re-fit, a drift reset on ADWIN and a forgetting naive Bayes; 9 runs) is run twice in this
process:

- locally, its parts one after the other (what ``adaptloop run`` does with a grid);
- as Ray tasks on a Ray started here with ``--cpus`` CPUs (``adaptloop run --engine ray``);
  the time to start Ray is measured apart (``ray_start_s``), as a cluster that is already up
  would not pay it.

``grid_identical`` is True when both runs' records and ``summary.json`` are equal but for the
timings (:func:`adaptloop.config.grid.numbers`). ``measure()`` returns the numbers; run as a
script it prints them, the JSON object last.

    OMP_NUM_THREADS=1 python benchmarks/grid_ray.py              # 60,000 samples per run
    OMP_NUM_THREADS=1 python benchmarks/grid_ray.py --n 10000    # smaller
"""

from __future__ import annotations

import argparse
import json
import os
import time

from adaptloop.config import parse_experiment, run_experiment
from adaptloop.config.grid import numbers, ray_session

EXPERIMENT = """
name = "grid_ray"
seed = 1

[stream]
kind = "sea"
n = {n}
concepts = [0, 3]
drifts = [{{ at = {half}, width = 1 }}]
noise = 0.1
batch_size = 256

[learners.window_retrain]
kind = "window_retrain"
base = {{ kind = "logistic" }}
window = 2_000
every = 1_000

[learners.adwin_reset]
kind = "drift_reset"
base = {{ kind = "logistic" }}
detector = "adwin"

[learners.forgetting_nb]
kind = "forgetting_nb"
half_life = 2_000

[grid]
seed = [1, 2, 3]
"""


def measure(n: int = 60_000, cpus: int | None = None) -> dict:
    """Run the 3 x 3 grid here and on a Ray started with ``cpus`` CPUs (default: all);
    the times in seconds, whether the numbers are identical, and the runs' summary."""
    experiment = parse_experiment(EXPERIMENT.format(n=n, half=n // 2), "grid_ray")
    started = time.perf_counter()
    local = run_experiment(experiment)
    local_s = time.perf_counter() - started
    started = time.perf_counter()
    with ray_session(cpus=cpus) as ray:
        ray_start_s = time.perf_counter() - started
        started = time.perf_counter()
        remote = run_experiment(experiment, engine="ray")
        ray_s = time.perf_counter() - started
        ray_cpus = int(ray.cluster_resources().get("CPU", 0))
    return {
        "grid_local_s": round(local_s, 3),
        "grid_ray_s": round(ray_s, 3),
        "grid_identical": numbers(local) == numbers(remote),
        "ray_start_s": round(ray_start_s, 3),
        "ray_cpus": ray_cpus,
        "runs": len(local.summary),
        "samples_per_run": n,
        "speedup": round(local_s / ray_s, 2),
        "accuracy": {name: round(s["accuracy"], 4) for name, s in local.summary.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60_000, help="samples per run (60,000)")
    parser.add_argument("--cpus", type=int, default=None, help="CPUs of Ray (default: all)")
    args = parser.parse_args()
    result = measure(args.n, args.cpus)
    print(f"cores here: {os.cpu_count()}, Ray CPUs: {result['ray_cpus']}")
    print(f"{result['runs']} runs of {args.n:,} samples")
    print(f"local (one after the other): {result['grid_local_s']:.2f} s")
    print(f"Ray start:                   {result['ray_start_s']:.2f} s")
    print(f"on Ray:                      {result['grid_ray_s']:.2f} s ({result['speedup']}x)")
    print(f"identical numbers:           {result['grid_identical']}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
