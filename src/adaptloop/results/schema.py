"""The columns of ``records.parquet``, per kind of run; ``summary.json`` repeats them under
``"record_columns"`` so a folder describes itself.

>>> list(CONTINUAL_RECORD_COLUMNS)[:3]
['sequence', 'seed', 'learner']
>>> "{metric}_window" in PREQUENTIAL_RECORD_COLUMNS
True
"""

from __future__ import annotations

PREQUENTIAL_RECORD_COLUMNS = {
    "learner": "name of the learner",
    "record": "index of the record (0, 1, ...) for this learner",
    "position": "samples seen so far, including this record's batch(es)",
    "n": "samples added since the previous record",
    "{metric}": "metric over all samples so far (cumulative)",
    "{metric}_window": "metric over the last `window` samples",
    "{metric}_batch": "metric over the `n` samples of this record (per-sample metrics only)",
    "predict_seconds": "time spent in predict / predict_proba for this record's samples",
    "learn_seconds": "time spent in learn for this record's samples (the whole interleaved call "
    "for learners run with exact test-then-train)",
    "label_delay": "mean number of later samples predicted before each label learned in this "
    "record was learned (0: exact test-then-train without delay)",
    "alarms": "stream positions of drift alarms raised during this record (list)",
    "slot": "chronological slot of this record's last sample (only with `evaluation.slots`)",
}
"""Columns of a prequential (or federated) run: one row per record and learner."""

CONTINUAL_RECORD_COLUMNS = {
    "sequence": "name of the task sequence",
    "seed": "seed of the run (task split, batch order, learners)",
    "learner": "name of the learner",
    "iteration": "training iterations (learn calls) done so far",
    "task": "index of the task being trained at this point",
    "eval_task": "index of the task whose test set was evaluated",
    "accuracy": "accuracy on eval_task's test set (or its fixed subsample)",
}
"""Columns of a continual run: one row per (sequence, seed, learner, evaluation point,
evaluated task)."""
