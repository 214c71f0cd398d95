"""The stream contract: restartable iterables of ``(X float32 (n, d), y)`` batches with metadata.

>>> import numpy as np
>>> stream = ArrayStream(np.arange(10, dtype=np.float32).reshape(5, 2), np.array([0, 1, 0, 1, 1]))
>>> [X.shape for X, _ in stream.iter_batches(2)]
[(2, 2), (2, 2), (1, 2)]
>>> stream.info.task, stream.info.classes
('binary', ('0', '1'))
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from adaptloop.registry import Registry
from adaptloop.validation import Task, check_features, check_integer, check_targets

registry = Registry("stream")
"""Stream factories by name; implementing modules register with ``@registry.register``."""

Batch = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Drift:
    """A known concept change: centred at ``position`` (sample index), over ``width`` samples.

    ``width == 1`` is a sudden drift: every sample from ``position`` on is of the new concept.
    """

    position: int
    width: int = 1

    def __post_init__(self) -> None:
        if self.position < 0:
            raise ValueError(f"drift position must be >= 0, got {self.position}")
        if self.width < 1:
            raise ValueError(f"drift width must be >= 1, got {self.width}")

    @property
    def start(self) -> int:
        """First sample at which the new concept can appear (with noticeable probability)."""
        return max(0, self.position - self.width // 2)

    @property
    def end(self) -> int:
        """First sample at which the new concept has (almost) fully replaced the old one."""
        return self.position + (self.width + 1) // 2


@dataclass(frozen=True)
class StreamInfo:
    """What a learner and an evaluation need to know about a stream before reading it.

    ``classes`` holds the original label names in code order (code ``i`` is ``classes[i]``);
    it is ``None`` for regression. ``n_samples`` is ``None`` when unknown before reading.
    ``drifts`` lists the known drift positions: the true ones of synthetic streams, those a
    user declares for a file (empty when unknown). ``categorical`` names the features that
    hold category codes (0: missing, ``1..``: values), as learners with embeddings and the
    encoders of :mod:`adaptloop.features` take them.
    """

    name: str
    feature_names: tuple[str, ...]
    task: Task
    classes: tuple[str, ...] | None = None
    n_samples: int | None = None
    drifts: tuple[Drift, ...] = field(default_factory=tuple)
    categorical: tuple[str, ...] = ()

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def n_classes(self) -> int | None:
        return None if self.classes is None else len(self.classes)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "feature_names": list(self.feature_names),
            "task": self.task,
            "classes": None if self.classes is None else list(self.classes),
            "n_samples": self.n_samples,
            "drifts": [{"position": d.position, "width": d.width} for d in self.drifts],
            "categorical": list(self.categorical),
        }


class Stream(ABC):
    """A restartable source of batches: each call of :meth:`iter_batches` starts from the first
    sample and, for seeded streams, yields exactly the same data."""

    @property
    @abstractmethod
    def info(self) -> StreamInfo:
        """Metadata known before reading."""

    @abstractmethod
    def iter_batches(self, batch_size: int) -> Iterator[Batch]:
        """Yield ``(X, y)`` batches of ``batch_size`` samples (the last one may be smaller)."""

    def __iter__(self) -> Iterator[Batch]:
        return self.iter_batches(256)

    def summary(self) -> dict:
        """What the last pass over the data found (file streams: new and overflowed category
        values); empty for streams with nothing to report. Added to a run's ``summary.json``
        under ``stream``."""
        return {}


def check_batch_size(batch_size: object) -> int:
    """``batch_size`` (an argument of a call, not a parameter) as an int >= 1.

    >>> check_batch_size(0)
    Traceback (most recent call last):
    ...
    ValueError: batch_size must be an integer >= 1, got 0
    """
    return check_integer(batch_size, "batch_size", low=1)


class ArrayStream(Stream):
    """A stream over in-memory arrays, in their order (for tests and small data)."""

    def __init__(
        self,
        X: np.ndarray,
        y: np.ndarray,
        task: Task | None = None,
        classes: Sequence[str] | None = None,
        feature_names: Sequence[str] | None = None,
        drifts: Sequence[Drift] = (),
        name: str = "arrays",
    ) -> None:
        X = check_features(X)
        if task is None:
            task = (
                "regression"
                if np.asarray(y).dtype.kind == "f"
                else ("binary" if classes is None or len(classes) <= 2 else "multiclass")
            )
            if task != "regression" and classes is None and np.asarray(y).max() > 1:
                task = "multiclass"
        if task != "regression" and classes is None:
            classes = [str(c) for c in range(int(np.asarray(y).max()) + 1)]
        n_classes = None if classes is None else len(classes)
        self._y = check_targets(y, X.shape[0], task, n_classes)
        self._X = X
        self._info = StreamInfo(
            name=name,
            feature_names=tuple(feature_names or (f"x{i}" for i in range(X.shape[1]))),
            task=task,
            classes=None if classes is None else tuple(classes),
            n_samples=X.shape[0],
            drifts=tuple(drifts),
        )

    @property
    def info(self) -> StreamInfo:
        return self._info

    def iter_batches(self, batch_size: int) -> Iterator[Batch]:
        batch_size = check_batch_size(batch_size)
        for start in range(0, self._X.shape[0], batch_size):
            yield self._X[start : start + batch_size], self._y[start : start + batch_size]
