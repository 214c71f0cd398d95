"""Liquid networks vs incremental learning vs naive forecasts for link load amid failures.

The comparison of Ayoub, Andreoletti et al. (2024) on the ``linkload`` stream, 3 seeds
(failure time where drawn, learner initialisation), on one of two kinds of traffic:

- ``--traffic synthetic`` (default): Nobel-EU backbone (28 nodes, 41 links, SNDlib demands
  with sine-shaped daily and weekly profiles), 3 simulated days at 5 minutes; the failure at
  step 720 (day 3, 12:00); learned models warm up on the first 576 samples (2 days).
- ``--traffic abilene``: the Abilene backbone (topohub ``sndlib/abilene``, 12 routers, 15
  links) carrying two weeks of *measured* traffic matrices (``../shared/data/abilene_tm.csv.gz``,
  4,032 snapshots at 5 minutes, 2004-03-01 to 03-14), 12 steps of history, so 4,020 samples;
  learned models warm up on the first week (samples 0 .. 2,003, targets 2004-03-01 00:00 ..
  03-07 23:55); the failure at a seeded hour of the second week's first five days (sample
  ``2,004 + 12 k``, ``k`` uniform in ``0 .. 119``: ``numpy.random.default_rng([seed, 22])``),
  the same step for both scenarios of a seed. Labels are learned an hour at a time
  (``batch_size=12``, batches on the hour): every forecast is still of the next 5 minutes from
  the measured last loads, but a model learns the hour's 12 labels after predicting them. The
  naive forecasts and the re-fitted MLPs (every 72 samples; the static one after 167 hours)
  predict as with ``batch_size=1``; ``cfc_online`` and the frozen networks' first, online pass
  over the warm-up (before their 10 epochs) take a gradient step per hour instead of per
  sample (at batch 1 those steps are three quarters of the run's cost). Errors are recorded
  per hour, so times to convergence are multiples of 12 steps.

The failure is ``drastic`` (the most loaded non-bridge link) or ``moderate`` (the one at the
25th load percentile); the monitored link is the one the failure loads most; its load is
normalised by its pre-failure mean. Every method forecasts that link's next load from its last
12 loads and the time of day, test-then-train (``prequential``; synthetic: one sample at a time,
``batch_size=1``; abilene: see above):

- ``cfc_frozen`` / ``ltc_frozen``: CfC / LTC (ncps) learned on the warm-up samples (online,
  then 10 shuffled passes over them), then frozen -- the paper's liquid network adapting only
  through its input-dependent time constants; inputs relative to the last load
  (``normalize="ratio"``);
- ``cfc_online``: the CfC with a gradient step on every sample (no LTC twin: a gradient step
  through its ODE unfolds on each of 4,020 samples costs more than the rest of a run);
- ``incremental_mlp``: the paper's reference, ``WindowRetrain(MLPRegressor)``, a fresh MLP
  re-fitted every 72 steps (6 h) on the last 288 (1 day), 20 shuffled epochs;
- ``incremental_lstm``: the same scheme around an LSTM with the CfC's ratio inputs;
- ``static_mlp``: the MLP fitted once on the warm-up samples, then frozen;
- naive forecasts (:mod:`adaptloop.learners.models.forecast`): ``persistence`` (next = last),
  ``seasonal_day`` (same time yesterday), ``seasonal_week`` (same time last week where held,
  else yesterday; abilene only: 3 synthetic days hold no week), ``ewma`` (alpha 0.3 over the
  last 12 loads).

Metrics per method and scenario (mean +- std over seeds 0, 1, 2): RMSE over the 288 steps (1
day) before the failure, RMSE over the 12 steps (1 h) after it and over the 288 steps (1 day)
after it, and the time to convergence.

**Time to convergence** (our definition; the paper does not give its own): the number of steps
from the failure to the start of the first window of 12 consecutive steps (1 h), starting at or
after the failure, whose MAPE is at most 1.5 x the method's MAPE over the 288 steps (1 day)
before the failure; "never" when no such window ends before the stream does. MAPE, not RMSE,
because the failure multiplies the load and with it every absolute error; a day as reference
because on measured traffic an hour's error varies by a factor of two from hour to hour. A
method the failure does not hurt converges in 0 steps. See :func:`convergence_steps`.

The LAST line is one JSON object. Synthetic: ``drastic_rmse_after_cfc_over_incremental``,
``drastic_convergence_steps_cfc``, ``drastic_convergence_steps_incremental``,
``moderate_rmse_after_cfc_over_incremental``. Abilene: ``abilene_drastic_rmse_after_{cfc,ltc}
_over_incremental``, ``abilene_drastic_rmse_after_{cfc,ltc}_over_persistence``,
``abilene_drastic_rmse_after_best_learned_over_best_naive``,
``abilene_moderate_rmse_after_{cfc,ltc}_over_incremental``,
``abilene_moderate_rmse_after_best_learned_over_best_naive``,
``abilene_convergence_steps_{cfc,ltc,incremental}`` (drastic), and the same best-learned over
best-naive ratios on the day after (``..._rmse_day_after_...``). "cfc" / "ltc" are the frozen
networks, "incremental" is ``incremental_mlp``; "rmse_after" is the hour after; ratios are of
means over seeds; convergence is the mean over seeds, ``null`` when a seed never converged.

    python benchmarks/liquid_vs_incremental.py [--traffic abilene] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

SEEDS = (0, 1, 2)
SCENARIOS = ("drastic", "moderate")
HISTORY, AFTER, DAY, TOLERANCE = 12, 12, 288, 0.5
ABILENE = "../shared/data/abilene_tm.csv.gz"
LEARNED = (
    "cfc_frozen",
    "ltc_frozen",
    "cfc_online",
    "incremental_mlp",
    "incremental_lstm",
    "static_mlp",
)
NAIVE = ("persistence", "seasonal_day", "seasonal_week", "ewma")


@dataclass(frozen=True)
class Setting:
    """One kind of traffic: the stream's parameters, the warm-up, where the failure falls."""

    stream: dict
    warmup: int
    fail_lo: int  # failure step: fail_lo when fail_hi is None, else seeded in [lo, hi)
    fail_hi: int | None
    naive: tuple[str, ...]
    batch: int  # samples predicted before their labels are learned (1: test-then-train)


SETTINGS = {
    "synthetic": Setting({"days": 3}, 576, 720, None, NAIVE[:2] + NAIVE[3:], 1),
    "abilene": Setting(
        {"topology": "sndlib/abilene", "traffic": ABILENE},
        7 * DAY - HISTORY,
        7 * DAY - HISTORY,
        7 * DAY - HISTORY + 5 * DAY,
        NAIVE,
        AFTER,
    ),
}


def failure_step(setting: Setting, seed: int) -> int:
    if setting.fail_hi is None:
        return setting.fail_lo
    slots = (setting.fail_hi - setting.fail_lo) // setting.batch  # on a batch boundary
    return setting.fail_lo + setting.batch * int(np.random.default_rng([seed, 22]).integers(slots))


def learners(seed: int, warmup: int, naive: tuple[str, ...]) -> dict:
    from adaptloop.learners import (
        EWMA,
        CfCRegressor,
        LSTMRegressor,
        LTCRegressor,
        MLPRegressor,
        Persistence,
        SeasonalNaive,
        Static,
        WindowRetrain,
    )

    net = dict(units=16, seq_len=HISTORY, seed=seed, normalize="ratio")
    frozen = dict(mode="frozen", warmup=warmup, warmup_epochs=10, batch_size=32)
    # shuffled epochs: the whole window goes to the base in one learn call, which runs
    # `epochs` passes in shuffled mini-batches of `batch_size`
    mlp = MLPRegressor(hidden=(32,), lr=0.01, epochs=20, batch_size=32, seed=seed)
    lstm = LSTMRegressor(lr=0.01, epochs=10, batch_size=32, **net)
    retrain = dict(window=DAY, every=72, epochs=1, fit_batch_size=None)
    methods = {
        "cfc_frozen": CfCRegressor(lr=0.005, **frozen, **net),
        # LTC: a larger rate (its parameters live on wider scales; see LTCRegressor)
        "ltc_frozen": LTCRegressor(lr=0.02, **frozen, **net),
        "cfc_online": CfCRegressor(lr=0.005, mode="online", **net),
        "incremental_mlp": WindowRetrain(mlp, **retrain),
        "incremental_lstm": WindowRetrain(lstm, **retrain),
        # one re-fit on the warm-up samples, then frozen
        "static_mlp": Static(
            WindowRetrain(mlp.clone(), window=warmup, every=warmup, epochs=1, fit_batch_size=None),
            n_train=warmup,
        ),
        "persistence": Persistence(seq_len=HISTORY),
        "seasonal_day": SeasonalNaive(seq_len=HISTORY, periods=(DAY,)),
        "seasonal_week": SeasonalNaive(seq_len=HISTORY, periods=(7 * DAY, DAY)),
        "ewma": EWMA(seq_len=HISTORY, alpha=0.3),
    }
    return {name: model for name, model in methods.items() if name in LEARNED + naive}


def convergence_steps(ape: np.ndarray, at: int, batch: int = 1) -> int | None:
    """Time to convergence after a failure at sample ``at`` (see the module doc): the first
    ``s >= at`` with ``mean(ape[s : s + 12]) <= 1.5 * mean(ape[at - 288 : at])``, as ``s - at``;
    ``None`` if there is none. ``ape``: the absolute percentage error per record, one record
    per ``batch`` samples (``at``, 12 and 288 multiples of it), so ``s`` steps by ``batch``."""
    at, window = at // batch, AFTER // batch
    reference = ape[max(0, at - DAY // batch) : at].mean()
    windows = np.lib.stride_tricks.sliding_window_view(ape[at:], window).mean(axis=1)
    hits = np.flatnonzero(windows <= (1 + TOLERANCE) * reference)
    return batch * int(hits[0]) if hits.size else None


def run(job: tuple[str, str, int]) -> tuple[str, int, dict]:
    import warnings

    import torch

    from adaptloop.evaluation.prequential import prequential
    from adaptloop.streams import linkload

    torch.set_num_threads(1)
    traffic, scenario, seed = job
    setting = SETTINGS[traffic]
    at = failure_step(setting, seed)
    with warnings.catch_warnings():
        # no severity failure may disconnect the backbone
        warnings.simplefilter("error", RuntimeWarning)
        stream = linkload(
            history=HISTORY,
            failures=[{"at": at, "severity": scenario}],
            seed=seed,
            **setting.stream,
        )
    result = prequential(
        stream,
        learners(seed, setting.warmup, setting.naive),
        batch_size=setting.batch,
        metrics=["rmse", "mae", "mape"],
        window=AFTER,
        after=AFTER,
    )
    records = result.records.to_pandas()
    out: dict = {
        "_at": at,
        "_link": stream.link_names[stream.monitored],
        "_failed": stream.events[0]["link_name"],
    }
    b = setting.batch  # one record per batch; the failure starts a batch
    for name, summary in result.summary.items():
        rows = records[records["learner"] == name]
        rmse = rows["rmse_batch"].to_numpy()  # per record (batch 1: |error| of the sample)
        ape = rows["mape_batch"].to_numpy()
        seconds = summary["predict_seconds"] + summary["learn_seconds"]

        def over(lo: int, hi: int, rmse: np.ndarray = rmse) -> float:  # samples [lo, hi)
            return float(np.sqrt(np.mean(rmse[lo // b : hi // b] ** 2)))

        out[name] = {
            "before": over(at - DAY, at),
            "after": over(at, at + AFTER),
            "day_after": over(at, at + DAY),
            "recovery": convergence_steps(ape, at, b),
            "ms_per_step": 1000 * seconds / summary["n_samples"],
        }
    done = ", ".join(f"{name} {out[name]['after']:.3f}" for name in result.summary)
    print(f"{traffic} {scenario} seed {seed}, RMSE 1 h after: {done}", file=sys.stderr)
    return scenario, seed, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--traffic", choices=sorted(SETTINGS), default="synthetic")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    setting = SETTINGS[args.traffic]
    methods = LEARNED + setting.naive
    jobs = [(args.traffic, scenario, seed) for scenario in SCENARIOS for seed in SEEDS]
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(run, jobs))
    wall = time.perf_counter() - start
    table: dict[tuple[str, str], dict[str, list]] = {}
    for scenario, seed, out in results:
        print(
            f"{scenario} seed {seed}: failure of {out['_failed']} at sample {out['_at']}, "
            f"monitored link {out['_link']}"
        )
        for name in methods:
            cell = table.setdefault((name, scenario), {k: [] for k in out[name]})
            for key, value in out[name].items():
                cell[key].append(value)

    def ms(values: list) -> str:
        return f"{np.mean(values):.3f} ± {np.std(values):.3f}"

    def steps(values: list) -> str:
        never = sum(v is None for v in values)
        done = [v for v in values if v is not None]
        mean = f"{np.mean(done):.0f}" if done else "-"
        return mean + (f" ({never}/{len(values)} never)" if never else "")

    print(
        f"linkload {args.traffic}: {setting.stream}, warm-up {setting.warmup} samples, "
        f"seeds {list(SEEDS)}, batch {setting.batch} ({wall:.0f} s wall, {args.jobs} processes)"
    )
    header = (
        f"{'method':<17} {'scenario':<9} {'RMSE day before':>16} {'RMSE 1 h after':>16} "
        f"{'RMSE day after':>16} {'converge (steps)':>20} {'ms/step':>8}"
    )
    print(header)
    print("-" * len(header))
    for scenario in SCENARIOS:
        for name in methods:
            c = table[(name, scenario)]
            print(
                f"{name:<17} {scenario:<9} {ms(c['before']):>16} {ms(c['after']):>16} "
                f"{ms(c['day_after']):>16} {steps(c['recovery']):>20} "
                f"{np.mean(c['ms_per_step']):>8.1f}"
            )

    def mean(name: str, scenario: str, key: str = "after") -> float:
        return float(np.mean(table[(name, scenario)][key]))

    def ratio(a: str, b: str, scenario: str, key: str = "after") -> float:
        return round(mean(a, scenario, key) / mean(b, scenario, key), 4)

    def best(names: tuple[str, ...], scenario: str, key: str = "after") -> str:
        return min(names, key=lambda name: mean(name, scenario, key))

    def convergence(name: str) -> float | None:
        values = table[(name, "drastic")]["recovery"]
        return None if any(v is None for v in values) else float(np.mean(values))

    if args.traffic == "synthetic":
        summary = {
            "drastic_rmse_after_cfc_over_incremental": ratio(
                "cfc_frozen", "incremental_mlp", "drastic"
            ),
            "drastic_convergence_steps_cfc": convergence("cfc_frozen"),
            "drastic_convergence_steps_incremental": convergence("incremental_mlp"),
            "moderate_rmse_after_cfc_over_incremental": ratio(
                "cfc_frozen", "incremental_mlp", "moderate"
            ),
        }
    else:
        summary = {}
        for net in ("cfc", "ltc"):
            for scenario in SCENARIOS:
                summary[f"abilene_{scenario}_rmse_after_{net}_over_incremental"] = ratio(
                    f"{net}_frozen", "incremental_mlp", scenario
                )
            summary[f"abilene_drastic_rmse_after_{net}_over_persistence"] = ratio(
                f"{net}_frozen", "persistence", "drastic"
            )
        for key, label in (("after", "rmse_after"), ("day_after", "rmse_day_after")):
            for scenario in SCENARIOS:
                learned, naive = best(LEARNED, scenario, key), best(setting.naive, scenario, key)
                print(f"{scenario}, {key}: best learned {learned}, best naive {naive}")
                if key == "after":
                    summary[f"abilene_{scenario}_best_learned"] = learned
                    summary[f"abilene_{scenario}_best_naive"] = naive
                summary[f"abilene_{scenario}_{label}_best_learned_over_best_naive"] = ratio(
                    learned, naive, scenario, key
                )
        for name, net in (
            ("cfc_frozen", "cfc"),
            ("ltc_frozen", "ltc"),
            ("incremental_mlp", "incremental"),
            ("persistence", "persistence"),
        ):
            summary[f"abilene_convergence_steps_{net}"] = convergence(name)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
