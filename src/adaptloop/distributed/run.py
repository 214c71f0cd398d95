"""Run several aggregation rules over one federation and collect the usual results.

Each rule becomes one "learner" of a :class:`~adaptloop.evaluation.prequential.PrequentialResult`
so the results folder, the summary table and ``adaptloop report`` work unchanged: one record per
server evaluation, ``position`` = simulated time (rounded to whole units), ``n`` = time since the
previous record, ``accuracy_batch`` = the global model's accuracy on every client's held-out data
at that time (mean over clients), ``accuracy_window`` = its mean over the last ``window`` time
units, ``accuracy`` = its time average so far; plus ``accuracy_worst`` (worst client),
``accuracy_local`` (a decentralised rule: the mean accuracy of the nodes' own models; a server
rule: ``accuracy_batch``), ``time``, ``version`` (server steps), ``updates`` (accepted),
``down_weighted`` (updates a robust block down-weighted or rejected so far), ``samples``,
``messages`` and ``bytes_sent`` (model-sized messages sent so far and their bytes: to and from the
server, or between the nodes), ``failed`` (clients down) and ``wall_seconds``.
Per rule, ``federated["rules"]`` also lists the Byzantine clients of the attack (``byzantine``),
the down-weighted updates per client (``down_weighted_by_client``) and the times each client's
update was weighed (``weighed_by_client``: by a robust block, or by Bristle's receiving peers),
the ``bytes_sent`` in all and
``bytes_to_target`` (sent until the first evaluation at or above the target). Drift segments
(before / after / recovery) are computed over time the same way.

>>> from adaptloop.learners import LogisticRegression
>>> from adaptloop.distributed.data import make_federated_data
>>> from adaptloop.distributed.federation import Federation
>>> from adaptloop.distributed.local import LocalEngine
>>> from adaptloop.distributed.rules import FedAvg, FedBuff
>>> data = make_federated_data("sea", clients=4, samples_per_client=200, concepts=[0, 3],
...                            drift_at=[20.0], seed=0, noise=0.0)
>>> fed = Federation(data, LogisticRegression(lr=0.05, standardize=False), duration=40.0,
...                  eval_every=5.0)
>>> result = run_federation(fed, {"avg": FedAvg(2), "buff": FedBuff(2)}, LocalEngine(),
...                         target=0.6, window=10)
>>> sorted(result.summary), result.records.num_rows
(['avg', 'buff'], 18)
>>> result.federated["rules"]["buff"]["time_to_target"] is not None
True
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from adaptloop.distributed.engine import Engine
from adaptloop.distributed.federation import Federation, RunTrace
from adaptloop.distributed.rules.base import AggregationRule
from adaptloop.evaluation.drift import drift_segments
from adaptloop.evaluation.prequential import PrequentialResult

POSITION_LABEL = "simulated time (units)"
"""How reports label the x axis of a federated run (``summary.json``: ``position_label``)."""


@dataclass
class FederatedResult(PrequentialResult):
    """A prequential-shaped result (one "learner" per rule) plus ``federated``: per-rule time to
    target, accuracy after the drift, update and failure counts, engine and clock settings."""

    federated: dict = field(default_factory=dict)

    def summary_json(self, **extra) -> dict:
        """The prequential ``summary.json`` plus ``federated`` and the x-axis label reports use
        (``position_label``); the tables add the federation's (per rule)."""
        return super().summary_json(
            federated=self.federated, position_label=POSITION_LABEL, **extra
        )


def time_to(rows: list[dict], target: float | None, key: str = "time") -> float | None:
    """``key`` (time, wall seconds, bytes sent) of the first evaluation at or above ``target``.

    >>> time_to([{"time": 0.0, "accuracy": 0.5}, {"time": 5.0, "accuracy": 0.9}], 0.8)
    5.0
    """
    if target is None:
        return None
    return next((float(r[key]) for r in rows if r["accuracy"] >= target), None)


def _columns(trace: RunTrace, window: float) -> dict[str, list]:
    times = np.array([r["time"] for r in trace.rows])
    acc = np.array([r["accuracy"] for r in trace.rows])
    positions = np.rint(times).astype(np.int64)
    n = np.maximum(np.diff(positions, prepend=0), 1)
    cumulative = np.cumsum(acc * n) / np.cumsum(n)
    windowed = [float(acc[(times > t - window) & (times <= t)].mean()) for t in times]
    windowed[0] = float(acc[0])
    return {
        "record": list(range(len(times))),
        "position": positions.tolist(),
        "n": n.tolist(),
        "accuracy": cumulative.tolist(),
        "accuracy_window": windowed,
        "accuracy_batch": acc.tolist(),
        "accuracy_worst": [r["accuracy_worst"] for r in trace.rows],
        "accuracy_local": [r["accuracy_local"] for r in trace.rows],
        "time": times.tolist(),
        "version": [r["version"] for r in trace.rows],
        "updates": [r["updates"] for r in trace.rows],
        "down_weighted": [r["down_weighted"] for r in trace.rows],
        "samples": [r["samples"] for r in trace.rows],
        "messages": [r["messages"] for r in trace.rows],
        "bytes_sent": [r["bytes_sent"] for r in trace.rows],
        "failed": [r["failed"] for r in trace.rows],
        "wall_seconds": [r["wall_seconds"] for r in trace.rows],
        "alarms": [[] for _ in trace.rows],
    }


def _participation(federation: Federation) -> dict | None:
    """The participation model's settings and every client's probability (None: full)."""
    schedule = federation.participation_schedule()
    if schedule is None:
        return None
    return {**vars(schedule.participation), "probabilities": schedule.probabilities.tolist()}


def run_federation(
    federation: Federation,
    rules: Mapping[str, AggregationRule],
    engine: Engine,
    *,
    target: float | None = None,
    window: float = 50.0,
    after: float = 50.0,
    tolerance: float = 0.02,
    on_time: Callable[[float], None] | None = None,
) -> FederatedResult:
    """Run every rule (fresh server, same clients and seed) on ``engine``; collect the results.

    ``target`` is the accuracy whose first crossing gives each rule's ``time_to_target``
    (simulated) and ``wall_to_target`` (seconds); ``window``, ``after`` and ``tolerance`` are
    the drift-segment settings, in time units. ``on_time(t)`` reports progress, ``t`` running
    over ``duration`` times the number of rules.
    """
    if not rules:
        raise ValueError("no aggregation rules to run")
    if target is not None and not 0 < target <= 1:
        raise ValueError(f"target must be an accuracy in (0, 1], got {target!r}")
    info = federation.data.info
    tables, summary, drifts, per_rule = [], {}, [], {}
    for index, (name, rule) in enumerate(rules.items()):
        offset = index * federation.duration

        def progress(t: float, offset: float = offset) -> None:
            if on_time is not None:
                on_time(offset + t)

        trace = engine.run(federation, rule, progress, name=name)
        columns = _columns(trace, window)
        tables.append(pa.table({"learner": [name] * len(trace.rows), **columns}))
        segments = drift_segments(
            {k: np.asarray(v) for k, v in columns.items() if k != "alarms"},
            info.drifts,
            "accuracy",
            int(round(window)),
            int(round(after)),
            tolerance,
        )
        drifts.extend({"learner": name, **seg} for seg in segments)
        samples = trace.counts.get("samples", 0)
        summary[name] = {
            "n_samples": samples,
            "accuracy": columns["accuracy"][-1],
            "accuracy_window": columns["accuracy_window"][-1],
            "accuracy_final": columns["accuracy_batch"][-1],
            "predict_seconds": trace.eval_seconds,
            "learn_seconds": trace.learn_seconds,
            "samples_per_second": samples / trace.wall_seconds if trace.wall_seconds else 0.0,
            "alarms": [],
        }
        per_rule[name] = {
            "kind": type(rule).__name__,
            "params": rule.params(),
            "time_to_target": time_to(trace.rows, target),
            "wall_to_target": time_to(trace.rows, target, "wall_seconds"),
            "bytes_to_target": time_to(trace.rows, target, "bytes_sent"),
            "bytes_sent": trace.rows[-1]["bytes_sent"],
            "messages": trace.rows[-1]["messages"],
            "decentralised": rule.decentralised,
            "accuracy_after_drift": [s["after"] for s in segments],
            "updates": trace.counts.get("accepted", 0),
            "server_steps": trace.rows[-1]["version"],
            "dropped_duplicate": trace.counts.get("duplicate", 0),
            "dropped_late": trace.counts.get("late", 0),
            "failures": trace.counts.get("failures", 0),
            "rejoins": trace.counts.get("rejoins", 0),
            "failed_at_end": trace.failed_clients,
            "events": [list(e) for e in trace.events],
            "updates_by_client": {str(k): v for k, v in sorted(trace.accepted_by_client.items())},
            "byzantine": trace.byzantine,
            "down_weighted": trace.counts.get("down_weighted", 0),
            "down_weighted_by_client": {
                str(k): v for k, v in sorted(trace.down_weighted_by_client.items())
            },
            "weighed_by_client": {
                str(k): v for k, v in sorted(Counter(c for _, c, _ in trace.influence).items())
            },
            "wall_seconds": trace.wall_seconds,
        }
    federated = {
        "engine": engine.name,
        "clients": federation.n_clients,
        "duration": federation.duration,
        "eval_every": federation.eval_every,
        "target": target,
        "step_times": federation.step_times.tolist(),
        "attack": vars(federation.attack) if federation.attack is not None else None,
        "participation": _participation(federation),
        "rules": per_rule,
    }
    return FederatedResult(
        info=info,
        metrics=["accuracy"],
        window=int(round(window)),
        records=pa.concat_tables(tables),
        summary=summary,
        drifts=drifts,
        federated=federated,
    )
