"""A click stream simulator: users, items, categories and contexts with drifting interests.

Each sample is one impression: four categorical fields encoded as integer codes in float32
columns ``user, item, category, context``, and the label click (1) or no click (0). Users and
items have latent vectors; the click probability is

    p = sigmoid(b + affinity * <u_user + c_context, w_item> + b_item),
    w_item = (v_item + v_category(item)) / sqrt(2)

with the global bias ``b`` calibrated at construction so the mean click rate at the start
is ``base_rate`` (a few percent, as in display advertising). Users and items are drawn with
Zipf-like popularity (a few heavy users and items, a long tail).

Interest drift, at known positions (``drifts``, as in the other streams):

- ``width == 1``, sudden: a segment of users (fraction ``segment``, drawn per drift) gets new
  latent vectors from ``position`` on -- their preferences change overnight;
- ``width > 1``, gradual: every user vector rotates in a random orthonormal basis by an angle
  ``rotation * s(t)``, where ``s(t)`` is the sigmoid switch of the other streams (MOA's
  ``1 / (1 + exp(-4 (t - position) / width))``) -- tastes shift slowly.

>>> stream = clicks(n=20_000, drifts=[{"at": 10_000, "width": 1}], seed=1)
>>> stream.info.feature_names, stream.info.classes
(('user', 'item', 'category', 'context'), ('no_click', 'click'))
>>> X, y = next(stream.iter_batches(5_000))
>>> X.dtype, bool(0.02 < y.mean() < 0.07)
(dtype('float32'), True)
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from adaptloop.streams.base import Batch, Drift, Stream, StreamInfo, registry
from adaptloop.streams.batching import rebatch
from adaptloop.streams.drift import (
    CHUNK,
    check_positive_int,
    check_seed,
    parse_drifts,
    sigmoid,
    switch_probability,
)
from adaptloop.streams.synthetic import check_fraction

__all__ = ["ClickStream", "clicks"]

FIELDS = ("user", "item", "category", "context")
_MODEL, _SAMPLE, _CALIBRATE = 0, 1, 2  # seed-sequence tags


def _zipf(n: int, exponent: float = 1.0, offset: float = 10.0) -> np.ndarray:
    """Popularity of ranks ``0..n-1``: ``(rank + offset) ** -exponent``, normalised."""
    weights = (np.arange(n) + offset) ** -exponent
    return weights / weights.sum()


class ClickStream(Stream):
    """The click stream; build it with :func:`clicks` (registered as ``"clicks"``).

    :meth:`click_probability` gives the true click probability of any impressions at any
    stream positions (for tests and for the best achievable AUC).

    >>> stream = ClickStream(n=1_000, n_users=50, n_items=40, seed=2)
    >>> X, y = next(stream.iter_batches(1_000))
    >>> p = stream.click_probability(X, np.arange(1_000))
    >>> p.shape, bool(((p > 0) & (p < 1)).all())
    ((1000,), True)
    """

    def __init__(
        self,
        n: int = 100_000,
        drifts: Sequence[Drift | Mapping[str, int]] = (),
        n_users: int = 1000,
        n_items: int = 500,
        n_categories: int = 20,
        n_contexts: int = 4,
        dim: int = 8,
        base_rate: float = 0.04,
        affinity: float = 2.0,
        segment: float = 0.5,
        rotation: float = math.pi / 2,
        seed: int = 0,
    ) -> None:
        self.n = check_positive_int(n, "n")
        self.seed = check_seed(seed)
        self.n_users = check_positive_int(n_users, "n_users")
        self.n_items = check_positive_int(n_items, "n_items")
        self.n_categories = check_positive_int(n_categories, "n_categories")
        self.n_contexts = check_positive_int(n_contexts, "n_contexts")
        self.dim = check_positive_int(dim, "dim")
        if self.dim % 2:
            raise ValueError(f"dim must be even (rotations act on pairs of axes), got {dim}")
        rate = check_fraction(base_rate, "base_rate")
        if not 0.0 < rate < 1.0:
            raise ValueError(f"base_rate must be strictly between 0 and 1, got {base_rate!r}")
        self.base_rate = rate
        for name, value in (("affinity", affinity), ("rotation", rotation)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        self.affinity, self.rotation = float(affinity), float(rotation)
        self.segment = check_fraction(segment, "segment")
        parsed = parse_drifts(drifts, self.n)
        self._info = StreamInfo(
            name="clicks",
            feature_names=FIELDS,
            task="binary",
            classes=("no_click", "click"),
            n_samples=self.n,
            drifts=parsed,
        )
        self._build_model()

    # -- the hidden model ------------------------------------------------------------------------
    def _build_model(self) -> None:
        rng = np.random.default_rng([self.seed, _MODEL])
        scale = self.dim**-0.25  # <u, w> has unit variance
        self.user_vectors = rng.standard_normal((self.n_users, self.dim)) * scale
        self.item_vectors = rng.standard_normal((self.n_items, self.dim)) * scale
        self.category_vectors = rng.standard_normal((self.n_categories, self.dim)) * scale
        self.context_vectors = 0.5 * rng.standard_normal((self.n_contexts, self.dim)) * scale
        self.item_category = rng.integers(0, self.n_categories, self.n_items)
        self.item_bias = 0.5 * rng.standard_normal(self.n_items)
        self.user_popularity = _zipf(self.n_users)[rng.permutation(self.n_users)]
        self.item_popularity = _zipf(self.n_items)[rng.permutation(self.n_items)]
        self._drift_models = []
        for drift in self._info.drifts:
            if drift.width == 1:
                in_segment = rng.random(self.n_users) < self.segment
                new = rng.standard_normal((self.n_users, self.dim)) * scale
                self._drift_models.append((drift, in_segment, new))
            else:
                basis, _ = np.linalg.qr(rng.standard_normal((self.dim, self.dim)))
                self._drift_models.append((drift, None, basis))
        self.bias = 0.0
        calibration = self._impressions(np.random.default_rng([self.seed, _CALIBRATE]), 20_000)
        scores = self._scores(calibration, np.zeros(len(calibration)))
        low, high = -20.0, 20.0
        for _ in range(60):  # bisection: mean sigmoid(bias + score) == base_rate
            mid = (low + high) / 2
            low, high = (mid, high) if sigmoid(mid + scores).mean() < self.base_rate else (low, mid)
        self.bias = (low + high) / 2

    def _impressions(self, rng: np.random.Generator, size: int) -> np.ndarray:
        users = rng.choice(self.n_users, size, p=self.user_popularity)
        items = rng.choice(self.n_items, size, p=self.item_popularity)
        contexts = rng.integers(0, self.n_contexts, size)
        codes = np.column_stack([users, items, self.item_category[items], contexts])
        return codes.astype(np.float32)

    def _user_vectors(self, users: np.ndarray, t: np.ndarray) -> np.ndarray:
        u = self.user_vectors[users]
        for drift, in_segment, model in self._drift_models:
            if in_segment is not None:  # sudden: the segment's vectors are replaced
                changed = (t >= drift.position) & in_segment[users]
                u = np.where(changed[:, None], model[users], u)
                continue
            angle = self.rotation * switch_probability(t, drift)
            if not angle.any():
                continue
            z = u @ model
            cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
            even, odd = z[:, 0::2].copy(), z[:, 1::2].copy()
            z[:, 0::2], z[:, 1::2] = cos * even - sin * odd, sin * even + cos * odd
            u = z @ model.T
        return u

    def _scores(self, X: np.ndarray, t: np.ndarray) -> np.ndarray:
        codes = X.astype(np.int64)
        users, items, contexts = codes[:, 0], codes[:, 1], codes[:, 3]
        u = self._user_vectors(users, t) + self.context_vectors[contexts]
        w = (
            self.item_vectors[items] + self.category_vectors[self.item_category[items]]
        ) / math.sqrt(2)
        return self.affinity * np.einsum("nd,nd->n", u, w) + self.item_bias[items]

    def click_probability(self, X: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """True click probability of impressions ``X`` (the stream's codes) at ``positions``."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != len(FIELDS):
            raise ValueError(f"X must have shape (n, 4) ({', '.join(FIELDS)}), got {X.shape}")
        positions = np.asarray(positions, dtype=np.float64)
        if positions.shape != (len(X),):
            raise ValueError(f"positions must have shape ({len(X)},), got {positions.shape}")
        return sigmoid(self.bias + self._scores(X, positions))

    # -- the stream -------------------------------------------------------------------------------
    @property
    def info(self) -> StreamInfo:
        return self._info

    def iter_batches(self, batch_size: int) -> Iterator[Batch]:
        """Yield ``(X, y)`` from the first impression; the same data for any batch size."""
        return rebatch(self._chunks(), batch_size)

    def _chunks(self) -> Iterator[Batch]:
        rng = np.random.default_rng([self.seed, _SAMPLE])
        for t0 in range(0, self.n, CHUNK):
            size = min(CHUNK, self.n - t0)
            X = self._impressions(rng, CHUNK)[:size]
            u = rng.random(CHUNK)[:size]
            p = self.click_probability(X, np.arange(t0, t0 + size))
            yield X, (u < p).astype(np.int64)


@registry.register("clicks")
def clicks(
    n: int = 100_000,
    drifts: Sequence[Mapping[str, int]] = (),
    n_users: int = 1000,
    n_items: int = 500,
    n_categories: int = 20,
    n_contexts: int = 4,
    dim: int = 8,
    base_rate: float = 0.04,
    affinity: float = 2.0,
    segment: float = 0.5,
    rotation: float = math.pi / 2,
    seed: int = 0,
) -> ClickStream:
    """A click stream (see the module doc): ``drifts`` of width 1 re-draw the preferences of a
    ``segment`` of users, wider ones rotate every user's preferences by ``rotation`` radians.

    >>> stream = clicks(n=1_000, drifts=[{"at": 500, "width": 200}], seed=3)
    >>> stream.info.drifts
    (Drift(position=500, width=200),)
    """
    return ClickStream(
        n=n,
        drifts=drifts,
        n_users=n_users,
        n_items=n_items,
        n_categories=n_categories,
        n_contexts=n_contexts,
        dim=dim,
        base_rate=base_rate,
        affinity=affinity,
        segment=segment,
        rotation=rotation,
        seed=seed,
    )
