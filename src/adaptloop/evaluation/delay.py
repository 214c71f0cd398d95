"""Label delay: when each label becomes available to the learners, independent of batch size.

The semantics are River's (``evaluate.progressive_val_score(..., moment=..., delay=...)``,
through ``stream.simulate_qa``): sample ``i`` arrives at time ``t_i`` (its index, or the value
of a ``timestamp`` column) and is predicted; its label is revealed at ``t_i + d_i``, where
``d_i`` is a constant ``delay`` (samples, or time units of the timestamp) or the value of a
column (a delay per sample). Before a sample is predicted, every label whose time has come
(``t_i + d_i <= t``) is learned, oldest reveal time first (arrival order among equals). A
delay of 0 is plain test-then-train: each label is learned just before the next sample is
predicted. Labels still pending when the stream ends are learned at the end (they change no
prediction). MOA's ``EvaluatePrequentialDelayed`` is the same with a delay in samples.

:class:`LabelSchedule` turns each batch into the samples to learn and where, between the
batch's predictions, each is learned (``learn_at``), which a
:class:`~adaptloop.learners.base.Sequential` learner follows exactly; a learner that learns in
mini-batches learns all of them after predicting the batch.

>>> import numpy as np
>>> schedule = LabelSchedule(delay=2)
>>> X, y = np.zeros((4, 1), dtype=np.float32), np.arange(4)
>>> learned = schedule.arrive(X, y)
>>> learned.y.tolist(), learned.learn_at.tolist()  # label i learned before predicting i + 2
([0, 1], [2, 3])
>>> learned = schedule.arrive(X, y + 4)
>>> learned.y.tolist(), learned.learn_at.tolist(), learned.arrival.tolist()
([2, 3, 4, 5], [0, 1, 2, 3], [2, 3, 4, 5])
>>> schedule.flush().y.tolist()
[6, 7]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from adaptloop.streams.base import StreamInfo
from adaptloop.validation import check_delay

__all__ = ["LabelSchedule", "Learned"]


@dataclass
class Learned:
    """The labelled samples learned during one batch, in the order they are learned:
    features ``X``, labels ``y``, ``learn_at`` (each is learned after this many of the batch's
    predictions) and ``arrival`` (each sample's position in the stream); ``sums``:
    ``(sum(learn_at), sum(arrival))`` when known without summing (plain test-then-train)."""

    X: np.ndarray
    y: np.ndarray
    learn_at: np.ndarray
    arrival: np.ndarray
    sums: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.y)

    def lag(self, position: int, at: int | None = None) -> int:
        """How many later samples were predicted before each label was learned, summed over
        the labels, in a batch that starts at stream ``position``: each label learned after
        its ``learn_at`` predictions of the batch, or after ``at`` (all of a batch of ``at``
        predicted first).

        >>> learned = LabelSchedule(delay=0).arrive(np.zeros((4, 1)), np.zeros(4))
        >>> learned.lag(0), learned.lag(0, at=4)  # exact: none; batch: 3 + 2 + 1 + 0
        (0, 6)
        """
        if self.sums is None:
            self.sums = (int(self.learn_at.sum()), int(self.arrival.sum()))
        m = len(self.y)
        learned_at = self.sums[0] if at is None else at * m
        return m * (position - 1) + learned_at - self.sums[1]


class LabelSchedule:
    """Which labels are learned where, batch after batch (see the module docstring).

    ``delay``: a number (samples; time units of ``timestamp`` when one is named) or the name of
    a feature holding each sample's delay; ``timestamp``: the name of a feature holding each
    sample's time (non-decreasing), else the sample's index. ``info`` gives the feature names
    (required when a column is named). Bad settings raise ``ValueError`` naming them.

    >>> LabelSchedule(delay=2.5)
    Traceback (most recent call last):
    ...
    ValueError: delay: without a timestamp it counts samples: must be a whole number, got 2.5
    """

    def __init__(
        self,
        delay: float | str = 0,
        timestamp: str | None = None,
        info: StreamInfo | None = None,
    ) -> None:
        names = list(info.feature_names) if info is not None else []
        self._time_column = _column(timestamp, names, "timestamp") if timestamp else None
        self._delay_column = _column(delay, names, "delay") if isinstance(delay, str) else None
        try:
            delay = check_delay(delay)
        except ValueError as error:
            raise ValueError(f"delay: {error}") from None
        if not isinstance(delay, str) and timestamp is None and float(delay) != int(delay):
            raise ValueError(
                f"delay: without a timestamp it counts samples: must be a whole number, "
                f"got {delay!r}"
            )
        self.delay, self.timestamp = delay, timestamp
        self.trivial = timestamp is None and not isinstance(delay, str) and delay <= 1
        """Plain test-then-train: every label learned just before the next prediction."""
        self._seen = 0
        self._last_time = -np.inf
        self._pending: Learned | None = None
        self._pending_expiry = np.zeros(0)
        self._steps = np.zeros(0, dtype=np.int64)  # 1, 2, ...: learn_at of plain batches

    def describe(self) -> dict[str, float | str | None]:
        """The setting, for results: ``{"delay": ..., "timestamp": ...}``."""
        return {"delay": self.delay, "timestamp": self.timestamp}

    def arrive(self, X: np.ndarray, y: np.ndarray) -> Learned:
        """The next batch arrives: the labels learned during it, in order."""
        n, start = len(y), self._seen
        self._seen += n
        arrival = np.arange(start, start + n)
        if self.trivial:
            if len(self._steps) < n:
                self._steps = np.arange(1, n + 1)
            sums = (n * (n + 1) // 2, n * start + n * (n - 1) // 2)
            return Learned(X, y, self._steps[:n], arrival, sums)
        if self._time_column is None:
            times = arrival.astype(np.float64)
        else:
            times = X[:, self._time_column].astype(np.float64)
            if np.any(np.diff(times) < 0) or times[0] < self._last_time:
                raise ValueError(
                    f"timestamp: column {self.timestamp!r} must not decrease along the stream"
                )
        self._last_time = times[-1]
        if self._delay_column is None:
            delays = np.full(n, float(self.delay))
        else:
            delays = X[:, self._delay_column].astype(np.float64)
            if not np.all(delays >= 0):  # NaN fails too
                raise ValueError(f"delay: column {self.delay!r} holds a negative or NaN delay")
        expiry = times + delays
        # labels are revealed before the first prediction at or after their time, and never
        # before the sample itself was predicted
        reveal = np.searchsorted(times, expiry, side="left")
        reveal = np.maximum(reveal, np.arange(1, n + 1))
        if self._pending is not None:
            old = self._pending
            X_all = np.concatenate([old.X, X])
            y_all = np.concatenate([old.y, y])
            expiry = np.concatenate([self._pending_expiry, expiry])
            reveal = np.concatenate([np.searchsorted(times, self._pending_expiry), reveal])
            arrival = np.concatenate([old.arrival, arrival])
        else:
            X_all, y_all = X, y
        done = expiry <= times[-1]
        order = np.lexsort((arrival, expiry, np.minimum(reveal, n)))
        order_done = order[done[order]]
        order_left = np.lexsort((arrival[~done], expiry[~done]))
        left = np.flatnonzero(~done)[order_left]
        self._pending = Learned(X_all[left], y_all[left], np.zeros(0), arrival[left])
        self._pending_expiry = expiry[left]
        return Learned(
            X_all[order_done],
            y_all[order_done],
            np.minimum(reveal[order_done], n),
            arrival[order_done],
        )

    def flush(self) -> Learned | None:
        """The labels still pending when the stream ends (learned after its last prediction)."""
        pending, self._pending = self._pending, None
        if pending is None or len(pending) == 0:
            return None
        return Learned(
            pending.X, pending.y, np.zeros(len(pending), dtype=np.int64), pending.arrival
        )


def _column(name: object, names: list[str], setting: str) -> int:
    if not isinstance(name, str) or name not in names:
        shown = ", ".join(names) if names else "none"
        raise ValueError(f"{setting}: no feature named {name!r}; the stream's features: {shown}")
    return names.index(name)
