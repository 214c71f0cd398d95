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
from typing import Annotated

import numpy as np
from annotated_types import Gt, Lt

from adaptloop.streams.base import Batch, Drift, Stream, StreamInfo, registry
from adaptloop.streams.batching import rebatch
from adaptloop.streams.drift import CHUNK, parse_drifts, sigmoid, switch_probability
from adaptloop.validation import Count, Fraction, NonNegativeReal, Seed

__all__ = ["ClickStream", "clicks"]

FIELDS = ("user", "item", "category", "context")
_MODEL, _SAMPLE, _CALIBRATE = 0, 1, 2  # seed-sequence tags


def _zipf(n: int, exponent: float = 1.0, offset: float = 10.0) -> np.ndarray:
    """Popularity of ranks ``0..n-1``: ``(rank + offset) ** -exponent``, normalised."""
    weights = (np.arange(n) + offset) ** -exponent
    return weights / weights.sum()


@registry.register("clicks")
class ClickStream(Stream):
    """Impressions and clicks of users whose interests drift (see the module doc).

    ``drifts`` of width 1 re-draw the preferences of a ``segment`` of users, wider ones rotate
    every user's preferences by ``rotation`` radians. Registered as ``"clicks"`` (:data:`clicks`
    is this class). :meth:`click_probability` gives the true click probability of any
    impressions at any stream positions (for tests and for the best achievable AUC).

    >>> stream = ClickStream(n=1_000, n_users=50, n_items=40, seed=2)
    >>> X, y = next(stream.iter_batches(1_000))
    >>> p = stream.click_probability(X, np.arange(1_000))
    >>> p.shape, bool(((p > 0) & (p < 1)).all())
    ((1000,), True)
    >>> clicks(n=1_000, drifts=[{"at": 500, "width": 200}], seed=3).info.drifts
    (Drift(position=500, width=200),)
    """

    def __init__(
        self,
        n: Count = 100_000,
        drifts: Sequence[Drift | Mapping[str, int]] = (),
        n_users: Count = 1000,
        n_items: Count = 500,
        n_categories: Count = 20,
        n_contexts: Count = 4,
        dim: Count = 8,
        base_rate: Annotated[float, Gt(0), Lt(1)] = 0.04,
        affinity: NonNegativeReal = 2.0,
        segment: Fraction = 0.5,
        rotation: NonNegativeReal = math.pi / 2,
        seed: Seed = 0,
    ) -> None:
        if dim % 2:
            raise ValueError(f"dim must be even (rotations act on pairs of axes), got {dim}")
        self.n, self.seed, self.dim = n, seed, dim
        self.n_users, self.n_items = n_users, n_items
        self.n_categories, self.n_contexts = n_categories, n_contexts
        self.base_rate, self.affinity, self.rotation = base_rate, affinity, rotation
        self.segment = segment
        parsed = parse_drifts(drifts, self.n)
        self._info = StreamInfo(
            name="clicks",
            feature_names=FIELDS,
            task="binary",
            classes=("no_click", "click"),
            n_samples=self.n,
            drifts=parsed,
            categorical=FIELDS,
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


clicks = ClickStream
"""The click stream under its registered name: ``clicks(n=..., drifts=...)``."""
