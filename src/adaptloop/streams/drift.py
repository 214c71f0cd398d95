"""Drift composition: concepts switched at known positions, suddenly, gradually or recurring.

A :class:`Concept` is a data-generating function. A :class:`DriftStream` holds a list of
concepts and one :class:`~adaptloop.streams.base.Drift` between each consecutive pair. As in
MOA's nested ``ConceptDriftStream``, at sample ``t`` drift ``k`` has switched with probability

    p_k(t) = 1 / (1 + exp(-4 (t - position_k) / width_k))

and the sample comes from concept ``j`` = the number of leading drifts that have switched.
A drift of width 1 is an exact step (``t >= position``); any width is computed without
overflow (:func:`sigmoid`). Recurring drift is a concept list with repeats, e.g. ``[a, b, a]``:
a repeated concept is the same object and carries on where it was.

>>> from adaptloop.streams.synthetic import SEAConcept
>>> a, b = SEAConcept(0, noise=0.0), SEAConcept(2, noise=0.0)
>>> stream = DriftStream([a, b, a], [Drift(300), Drift(600)], n=900, seed=1)
>>> [int(ids.max()) for ids in stream.iter_concepts(300)]
[0, 1, 2]
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from adaptloop.parameters import declared
from adaptloop.streams.base import Batch, Drift, Stream, StreamInfo
from adaptloop.streams.batching import rebatch
from adaptloop.validation import Count, Seed, Task, check_integer

CHUNK = 8192
"""Samples generated per internal chunk. Fixed, so the data never depends on the batch size
(and a shorter stream is a prefix of a longer one with the same seed)."""

_MIX, _SAMPLE = 0, 1  # seed-sequence tags: drift mixing, concept sampling


def sigmoid(z: ArrayLike) -> np.ndarray:
    """The logistic function ``1 / (1 + exp(-z))``, without overflow or warnings for any ``z``.

    Computed as ``exp(-logaddexp(0, -z))``; the one place the package evaluates it.

    >>> sigmoid([-1e6, 0.0, 2.0, 1e6]).round(6).tolist()
    [0.0, 0.5, 0.880797, 1.0]
    """
    z = np.asarray(z, dtype=np.float64)
    with np.errstate(under="ignore", over="ignore"):
        return np.exp(-np.logaddexp(0.0, -z))


def switch_probability(t: ArrayLike, drift: Drift) -> np.ndarray:
    """Probability that ``drift`` has switched to its new concept at sample(s) ``t``.

    Width 1 is an exact step (0 before ``position``, 1 from it on); wider drifts follow
    MOA's sigmoid ``1 / (1 + exp(-4 (t - position) / width))``, 0.5 at ``position``.

    >>> switch_probability([49_999, 50_000], Drift(50_000, width=1)).tolist()
    [0.0, 1.0]
    >>> float(switch_probability(1_000, Drift(1_000, width=500)))
    0.5
    """
    t = np.asarray(t, dtype=np.float64)
    if drift.width == 1:
        return (t >= drift.position).astype(np.float64)
    return sigmoid(4.0 * (t - drift.position) / drift.width)


def parse_drifts(drifts: Sequence[Drift | Mapping[str, int]], n: int) -> tuple[Drift, ...]:
    """Validate ``drifts`` for a stream of ``n`` samples: ``Drift`` objects or TOML-style dicts
    ``{"at": position, "width": w}`` (``"position"`` is accepted for ``"at"``).

    Positions must be strictly increasing and below ``n``; errors name the ``drifts`` entry.

    >>> parse_drifts([{"at": 500, "width": 100}, Drift(800)], n=1_000)
    (Drift(position=500, width=100), Drift(position=800, width=1))
    >>> parse_drifts([{"at": 5_000}], n=1_000)
    Traceback (most recent call last):
    ...
    ValueError: drifts[0] at position 5000 is beyond the stream length n=1000
    """
    if isinstance(drifts, (str, bytes, Mapping)) or not isinstance(drifts, Sequence):
        raise ValueError(
            f"drifts must be a list of Drift or {{'at': position, 'width': w}} dicts, "
            f"got {type(drifts).__name__}"
        )
    parsed: list[Drift] = []
    for i, item in enumerate(drifts):
        if isinstance(item, Drift):
            drift = item
        elif isinstance(item, Mapping):
            drift = _drift_from_mapping(item, f"drifts[{i}]")
        else:
            raise ValueError(
                f"drifts[{i}] must be a Drift or a dict like {{'at': 50000, 'width': 1}}, "
                f"got {item!r}"
            )
        if drift.position >= n:
            raise ValueError(
                f"drifts[{i}] at position {drift.position} is beyond the stream length n={n}"
            )
        if parsed and drift.position <= parsed[-1].position:
            raise ValueError(
                f"drifts must have increasing positions: drifts[{i}] at {drift.position} "
                f"does not come after drifts[{i - 1}] at {parsed[-1].position}"
            )
        parsed.append(drift)
    return tuple(parsed)


def _drift_from_mapping(item: Mapping, where: str) -> Drift:
    unknown = sorted(set(item) - {"at", "position", "width"})
    if unknown:
        raise ValueError(f"{where} has unknown key(s) {unknown}; expected 'at' and 'width'")
    if ("at" in item) == ("position" in item):
        raise ValueError(f"{where} needs exactly one of 'at' or 'position', got {dict(item)}")
    key = "at" if "at" in item else "position"
    position = check_integer(item[key], f"{where}.{key}", low=0)
    return Drift(position, check_integer(item.get("width", 1), f"{where}.width", low=1))


class Concept(ABC):
    """A data-generating function: from a random generator, an endless run of samples.

    Subclasses set ``n_features``, ``task`` and ``classes`` and implement :meth:`chunks`.
    A concept holds no state between runs: each call of :meth:`chunks` starts afresh, so the
    same generator seed always gives the same samples.

    >>> from adaptloop.streams.synthetic import SEAConcept
    >>> X, y = next(SEAConcept(0).chunks(np.random.default_rng(0), 4))
    >>> X.shape, X.dtype, y.dtype
    ((4, 3), dtype('float32'), dtype('int64'))
    """

    n_features: int
    task: Task
    classes: tuple[str, ...] | None

    @abstractmethod
    def chunks(self, rng: np.random.Generator, size: int) -> Iterator[Batch]:
        """Yield consecutive ``(X float32 (size, d), y)`` chunks from sample 0 on, forever."""


@declared
class DriftStream(Stream):
    """A stream of ``n`` samples drawn from ``concepts``, switching at ``drifts``.

    ``len(concepts) == len(drifts) + 1``; concept ``i`` is followed by concept ``i + 1`` around
    ``drifts[i]``. Every distinct concept runs alongside the others from sample 0 (its clock is
    the stream's), and each sample is taken from the concept selected for it. Randomness comes
    only from ``seed``.

    >>> from adaptloop.streams.synthetic import SEAConcept
    >>> stream = DriftStream([SEAConcept(0), SEAConcept(1)], [Drift(50, width=10)], n=100)
    >>> stream.info.drifts
    (Drift(position=50, width=10),)
    >>> sum(len(y) for _, y in stream.iter_batches(32))
    100
    """

    def __init__(
        self,
        concepts: Sequence[Concept],
        drifts: Sequence[Drift | Mapping[str, int]] = (),
        n: Count = 100_000,
        seed: Seed = 0,
        name: str = "drift",
        feature_names: Sequence[str] | None = None,
    ) -> None:
        parsed = parse_drifts(drifts, n)
        concepts = list(concepts)
        if not concepts or not all(isinstance(c, Concept) for c in concepts):
            raise ValueError(f"concepts must be a non-empty list of Concept, got {concepts!r}")
        if len(concepts) != len(parsed) + 1:
            raise ValueError(
                f"concepts must have one more entry than drifts: got {len(concepts)} "
                f"concept(s) for {len(parsed)} drift(s)"
            )
        first = concepts[0]
        for i, c in enumerate(concepts):
            if (c.n_features, c.task, c.classes) != (first.n_features, first.task, first.classes):
                raise ValueError(
                    f"concepts[{i}] has {c.n_features} features, task {c.task!r} and classes "
                    f"{c.classes}; concepts[0] has {first.n_features}, {first.task!r}, "
                    f"{first.classes}"
                )
        # A repeated concept object is one concept that recurs: it runs once.
        self._distinct: list[Concept] = []
        slots: list[int] = []
        for c in concepts:
            matches = [j for j, d in enumerate(self._distinct) if d is c]
            if not matches:
                self._distinct.append(c)
            slots.append(matches[0] if matches else len(self._distinct) - 1)
        self._slot = np.asarray(slots, dtype=np.int64)
        self.concepts: tuple[Concept, ...] = tuple(concepts)
        self.n = n
        self.seed = seed
        names = tuple(feature_names or (f"x{i}" for i in range(first.n_features)))
        if len(names) != first.n_features:
            raise ValueError(
                f"feature_names has {len(names)} names for {first.n_features} features"
            )
        self._info = StreamInfo(
            name=name,
            feature_names=names,
            task=first.task,
            classes=first.classes,
            n_samples=n,
            drifts=parsed,
        )

    @property
    def info(self) -> StreamInfo:
        return self._info

    def iter_batches(self, batch_size: int) -> Iterator[Batch]:
        """Yield ``(X, y)`` batches from sample 0; the same data for any batch size."""
        return rebatch(self._chunks(with_data=True), batch_size)

    def iter_concepts(self, batch_size: int) -> Iterator[np.ndarray]:
        """Yield, aligned with :meth:`iter_batches`, the index into ``concepts`` of each sample.

        The ground truth of which concept produced which sample (int64 arrays).
        """
        for (ids,) in rebatch(self._chunks(with_data=False), batch_size):
            yield ids

    def _chunks(self, with_data: bool) -> Iterator[tuple[np.ndarray, ...]]:
        mix = np.random.default_rng([self.seed, _MIX])
        runs = [
            c.chunks(np.random.default_rng([self.seed, _SAMPLE, j]), CHUNK)
            for j, c in enumerate(self._distinct)
        ]
        for t0 in range(0, self.n, CHUNK):
            keep = min(CHUNK, self.n - t0)
            which = self._select(np.arange(t0, t0 + CHUNK), mix)
            if not with_data:
                yield (which[:keep],)
                continue
            generated = [next(run) for run in runs]
            X, y = generated[0]
            if len(generated) > 1:
                slot = self._slot[which]
                X, y = X.copy(), y.copy()
                for j in range(1, len(generated)):
                    mask = slot == j
                    X[mask] = generated[j][0][mask]
                    y[mask] = generated[j][1][mask]
            yield X[:keep], y[:keep]

    def _select(self, t: np.ndarray, mix: np.random.Generator) -> np.ndarray:
        """Index into ``concepts`` for each sample time in ``t`` (MOA nesting)."""
        drifts = self._info.drifts
        if not drifts:
            return np.zeros(t.shape[0], dtype=np.int64)
        u = mix.random((t.shape[0], len(drifts)))
        switched = np.empty(u.shape, dtype=bool)
        for k, drift in enumerate(drifts):
            switched[:, k] = u[:, k] < switch_probability(t, drift)
        return np.cumprod(switched, axis=1).sum(axis=1).astype(np.int64)
