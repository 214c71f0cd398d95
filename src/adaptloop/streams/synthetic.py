"""Seeded synthetic drifting generators: SEA, rotating hyperplane, random RBF with moving centroids.

All are vectorised (numpy chunks, no per-sample Python loop) and compose their concepts with
:class:`~adaptloop.streams.drift.DriftStream`: sudden (``width=1``), gradual (sigmoid mixing
over ``width`` samples) and recurring (repeated concept ids) drift. Registered as ``"sea"``,
``"hyperplane"`` and ``"rbf"``.

>>> stream = sea(n=1_000, drifts=[{"at": 500, "width": 1}], concepts=[0, 2], noise=0.0)
>>> stream.info.task, stream.info.classes, stream.info.drifts
('binary', ('0', '1'), (Drift(position=500, width=1),))
>>> X, y = next(stream.iter_batches(256))
>>> X.shape, X.dtype, y.dtype
((256, 3), dtype('float32'), dtype('int64'))
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Annotated

import numpy as np
from annotated_types import Ge, Le

from adaptloop.parameters import declared
from adaptloop.streams.base import Batch, Drift, registry
from adaptloop.streams.drift import Concept, DriftStream, parse_drifts
from adaptloop.validation import (
    Count,
    Fraction,
    NonNegativeInt,
    NonNegativeReal,
    Seed,
    check_integer,
)

SEA_THRESHOLDS: tuple[float, ...] = (8.0, 9.0, 7.0, 9.5)
"""SEA concept thresholds by concept id (River's ``variant``, MOA's ``function - 1``)."""

SEAVariant = Annotated[int, Ge(0), Le(len(SEA_THRESHOLDS) - 1)]
"""A SEA concept id: an index into :data:`SEA_THRESHOLDS`."""

_MODEL = 2  # seed-sequence tag for a concept's model (weights, centroids)


NClasses = Annotated[int, Ge(2)]
"""A number of classes: at least two."""


def _at_most(value: int, name: str, limit: int) -> int:
    """``value`` (checked as declared) no larger than the parameter ``limit`` it depends on."""
    if value > limit:
        raise ValueError(f"{name} must be <= {limit} (its total), got {value}")
    return value


def _binary_or_multiclass(n_classes: int) -> tuple[str, tuple[str, ...]]:
    return ("binary" if n_classes == 2 else "multiclass"), tuple(str(c) for c in range(n_classes))


def _flip(y: np.ndarray, u: np.ndarray, noise: float) -> np.ndarray:
    """Label noise for binary codes: flip where the uniform draw ``u`` falls below ``noise``."""
    return np.where(u < noise, 1 - y, y)


@declared
class SEAConcept(Concept):
    """One SEA concept (Street & Kim 2001): 3 features uniform in [0, 10], label
    ``x0 + x1 > threshold`` (River's and MOA's convention), thresholds (8, 9, 7, 9.5) for
    ``variant`` 0..3; each label is flipped with probability ``noise``.

    Labels are computed from the float32 features the stream yields.

    >>> X, y = next(SEAConcept(2, noise=0.0).chunks(np.random.default_rng(0), 1_000))
    >>> bool(np.all(y == (X[:, 0].astype(float) + X[:, 1] > 7.0)))
    True
    """

    n_features = 3
    task = "binary"
    classes = ("0", "1")

    def __init__(self, variant: SEAVariant = 0, noise: Fraction = 0.0) -> None:
        self.variant = variant
        self.threshold = SEA_THRESHOLDS[variant]
        self.noise = noise

    def chunks(self, rng: np.random.Generator, size: int) -> Iterator[Batch]:
        while True:
            X = rng.uniform(0.0, 10.0, (size, 3)).astype(np.float32)
            u = rng.random(size)
            x = X.astype(np.float64)
            y = (x[:, 0] + x[:, 1] > self.threshold).astype(np.int64)
            yield X, _flip(y, u, self.noise)


@declared
class HyperplaneConcept(Concept):
    """A rotating hyperplane (Hulten et al. 2001; MOA ``HyperplaneGenerator``).

    Features uniform in [0, 1]; label 1 iff ``sum(w * x) >= sum(w) / 2``. The weights start
    uniform in [0, 1) (drawn from ``seed``); after every sample each of the first
    ``n_drift_features`` weights moves by ``mag_change`` in its current direction, and the
    direction reverses with probability ``sigma``. Labels flip with probability ``noise``.

    >>> concept = HyperplaneConcept(n_features=4, n_drift_features=2, mag_change=0.01, seed=3)
    >>> X, y = next(concept.chunks(np.random.default_rng(0), 500))
    >>> X.shape, sorted(set(y.tolist()))
    ((500, 4), [0, 1])
    """

    task = "binary"
    classes = ("0", "1")

    def __init__(
        self,
        n_features: Count = 10,
        n_drift_features: NonNegativeInt = 2,
        mag_change: NonNegativeReal = 0.001,
        sigma: Fraction = 0.1,
        noise: Fraction = 0.05,
        seed: int | Sequence[int] = 0,
    ) -> None:
        self.n_features = n_features
        self.n_drift_features = _at_most(n_drift_features, "n_drift_features", n_features)
        self.mag_change, self.sigma, self.noise = mag_change, sigma, noise
        self.initial_weights = np.random.default_rng(seed).random(self.n_features)

    def chunks(self, rng: np.random.Generator, size: int) -> Iterator[Batch]:
        nd = self.n_drift_features
        w = self.initial_weights.copy()
        direction = np.ones(nd)
        static_sum = w[nd:].sum()
        while True:
            X = rng.random((size, self.n_features)).astype(np.float32)
            flips = rng.random((size, nd)) < self.sigma
            u = rng.random(size)
            # Direction used at step i: the initial one times the flips before i.
            signs = np.cumprod(np.where(flips, -1.0, 1.0), axis=0)
            used = direction * np.vstack([np.ones((1, nd)), signs[:-1]])
            steps = self.mag_change * used
            moved = np.cumsum(steps, axis=0)
            W = w[:nd] + (moved - steps)  # weights in force for sample i
            x = X.astype(np.float64)
            score = np.einsum("ij,ij->i", x[:, :nd], W) + x[:, nd:] @ w[nd:]
            y = (score >= 0.5 * (W.sum(axis=1) + static_sum)).astype(np.int64)
            w[:nd] += moved[-1]
            direction = direction * signs[-1]
            yield X, _flip(y, u, self.noise)


@declared
class RBFConcept(Concept):
    """Random RBF with moving centroids (MOA ``RandomRBFGeneratorDrift``, River ``RandomRBFDrift``).

    ``n_centroids`` centroids with a random centre in [0, 1]^d, class, spread and weight are
    drawn from ``seed``. A sample picks a centroid by weight and lies at a Gaussian distance
    (scaled by the centroid's spread) in a random direction from it; its label is the
    centroid's class. The first ``n_drift_centroids`` centroids move with speed
    ``change_speed`` per sample along a random unit direction, bouncing off the walls of the
    unit cube (an exact reflection, computed in closed form by :meth:`centres_at`).

    >>> concept = RBFConcept(n_features=2, n_centroids=5, n_drift_centroids=5, change_speed=0.01)
    >>> bool(np.allclose(concept.centres_at(0), concept.centres_at(100)))
    False
    """

    def __init__(
        self,
        n_features: Count = 10,
        n_classes: NClasses = 2,
        n_centroids: Count = 50,
        n_drift_centroids: NonNegativeInt = 50,
        change_speed: NonNegativeReal = 0.0001,
        seed: int | Sequence[int] = 0,
    ) -> None:
        self.n_features = n_features
        self.task, self.classes = _binary_or_multiclass(n_classes)
        self.n_centroids = n_centroids
        self.n_drift_centroids = _at_most(n_drift_centroids, "n_drift_centroids", n_centroids)
        self.change_speed = change_speed
        model = np.random.default_rng(seed)
        c, d = self.n_centroids, self.n_features
        self.centres = model.random((c, d))
        self.labels = model.integers(0, n_classes, c)
        self.spreads = model.random(c)
        weights = model.random(c)
        self.weights = weights / weights.sum()
        velocity = np.zeros((c, d))
        raw = model.random((self.n_drift_centroids, d))
        velocity[: self.n_drift_centroids] = raw / np.linalg.norm(raw, axis=1, keepdims=True)
        self.velocity = velocity

    def centres_at(self, t: int) -> np.ndarray:
        """Centroid centres ``(n_centroids, n_features)`` at sample ``t``."""
        return _reflect(self.centres + (self.change_speed * t) * self.velocity)

    def chunks(self, rng: np.random.Generator, size: int) -> Iterator[Batch]:
        t0 = 0
        while True:
            idx = rng.choice(self.n_centroids, size=size, p=self.weights)
            direction = rng.random((size, self.n_features)) * 2.0 - 1.0
            distance = rng.standard_normal(size) * self.spreads[idx]
            t = np.arange(t0, t0 + size, dtype=np.float64)
            centre = _reflect(
                self.centres[idx] + (self.change_speed * t)[:, None] * self.velocity[idx]
            )
            norm = np.linalg.norm(direction, axis=1)
            X = centre + direction * (distance / np.where(norm > 0, norm, 1.0))[:, None]
            yield X.astype(np.float32), self.labels[idx].astype(np.int64)
            t0 += size


def _reflect(position: np.ndarray) -> np.ndarray:
    """Fold positions into [0, 1] as a point bouncing between the walls would be (triangle wave)."""
    r = np.mod(position, 2.0)
    return np.where(r > 1.0, 2.0 - r, r)


def _concept_ids(
    concepts: Sequence[int] | None, n_drifts: int, n_known: int | None = None
) -> list[int]:
    """Concept ids, one more than drifts; default: 0, 1, 2, ... (cycling over ``n_known``)."""
    if concepts is None:
        return [i % n_known if n_known else i for i in range(n_drifts + 1)]
    if isinstance(concepts, (str, bytes, Mapping)) or not isinstance(concepts, Sequence):
        raise ValueError(f"concepts must be a list of integers, got {concepts!r}")
    ids = list(concepts)
    if len(ids) != n_drifts + 1:
        raise ValueError(
            f"concepts must have one more entry than drifts: got {len(ids)} concept(s) "
            f"for {n_drifts} drift(s)"
        )
    high = n_known - 1 if n_known else None
    return [check_integer(c, f"concepts[{i}]", 0, high) for i, c in enumerate(ids)]


def _compose(
    make: Callable[[int], Concept],
    ids: list[int],
    drifts: tuple[Drift, ...],
    n: int,
    seed: int,
    name: str,
) -> DriftStream:
    """One concept object per distinct id, so a repeated id is the same concept recurring."""
    made: dict[int, Concept] = {}
    for c in ids:
        if c not in made:
            made[c] = make(c)
    return DriftStream([made[c] for c in ids], drifts, n=n, seed=seed, name=name)


@registry.register("sea")
def sea(
    n: Count = 100_000,
    drifts: Sequence[Drift | Mapping[str, int]] = (),
    concepts: Sequence[int] | None = None,
    noise: Fraction = 0.1,
    seed: Seed = 0,
) -> DriftStream:
    """SEA (Street & Kim 2001): 3 features in [0, 10], label x0 + x1 > threshold, 4 thresholds.

    Concepts 0..3 use thresholds 8, 9, 7, 9.5 (River's ``SEA(variant)`` convention: label 1
    iff ``x0 + x1 > threshold``; ``x2`` is irrelevant). ``concepts`` defaults to 0, 1, 2, 3, 0, ...
    (one more than ``drifts``); repeat ids for recurring drift, e.g. ``[0, 2, 0]``.
    Each label is flipped with probability ``noise``.

    >>> stream = sea(n=2_000, drifts=[{"at": 1_000, "width": 1}], concepts=[0, 2], noise=0.0)
    >>> [int(ids[0]) for ids in stream.iter_concepts(1_000)]
    [0, 1]
    """
    parsed = parse_drifts(drifts, n)
    ids = _concept_ids(concepts, len(parsed), n_known=len(SEA_THRESHOLDS))
    return _compose(lambda c: SEAConcept(c, noise), ids, parsed, n, seed, "sea")


@registry.register("hyperplane")
def hyperplane(
    n: Count = 100_000,
    n_features: Count = 10,
    n_drift_features: NonNegativeInt = 2,
    mag_change: NonNegativeReal = 0.001,
    sigma: Fraction = 0.1,
    noise: Fraction = 0.05,
    drifts: Sequence[Drift | Mapping[str, int]] = (),
    concepts: Sequence[int] | None = None,
    seed: Seed = 0,
) -> DriftStream:
    """Rotating hyperplane (Hulten et al. 2001): continuous gradual drift of magnitude mag_change.

    Features uniform in [0, 1]; label 1 iff ``sum(w * x) >= sum(w) / 2``. The first
    ``n_drift_features`` weights move by ``mag_change`` per sample, reversing direction with
    probability ``sigma``; labels flip with probability ``noise``. ``drifts`` additionally
    switches between concepts (each concept id is an independently seeded weight vector);
    the continuous rotation has no discrete position, so ``info.drifts`` lists only ``drifts``.

    >>> stream = hyperplane(n=1_000, n_features=5)
    >>> stream.info.n_features, stream.info.drifts
    (5, ())
    """
    parsed = parse_drifts(drifts, n)
    ids = _concept_ids(concepts, len(parsed))

    def make(c: int) -> Concept:
        return HyperplaneConcept(
            n_features, n_drift_features, mag_change, sigma, noise, seed=[seed, _MODEL, c]
        )

    return _compose(make, ids, parsed, n, seed, "hyperplane")


@registry.register("rbf")
def rbf(
    n: Count = 100_000,
    n_features: Count = 10,
    n_classes: NClasses = 2,
    n_centroids: Count = 50,
    n_drift_centroids: NonNegativeInt = 50,
    change_speed: NonNegativeReal = 0.0001,
    drifts: Sequence[Drift | Mapping[str, int]] = (),
    concepts: Sequence[int] | None = None,
    seed: Seed = 0,
) -> DriftStream:
    """Random RBF with moving centroids (MOA RandomRBFGeneratorDrift): incremental drift.

    ``n_drift_centroids`` of the ``n_centroids`` centroids move ``change_speed`` per sample.
    ``drifts`` additionally switches between concepts (each concept id is an independently
    seeded set of centroids); ``info.drifts`` lists only those switches.

    >>> stream = rbf(n=1_000, n_features=4, n_classes=3)
    >>> stream.info.task, stream.info.classes
    ('multiclass', ('0', '1', '2'))
    """
    parsed = parse_drifts(drifts, n)
    ids = _concept_ids(concepts, len(parsed))

    def make(c: int) -> Concept:
        return RBFConcept(
            n_features,
            n_classes,
            n_centroids,
            n_drift_centroids,
            change_speed,
            seed=[seed, _MODEL, c],
        )

    return _compose(make, ids, parsed, n, seed, "rbf")
