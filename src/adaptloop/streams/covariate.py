"""A regression stream under covariate shift (``covariate_shift``): the input distribution moves,
the target function does not.

``y = sin(2 pi x0) cos(2 pi x1)`` with ``x`` uniform on the unit square, but the samples arrive
band by band of ``x0`` (``n_bands`` equal bands, left to right; a known drift at each band's
start). A learner that fits only recent data forgets the bands it left; one that fits all
past data (Losse, Liu et al. ICLR 2024, whose world-model setting this mimics) does not. With
``n_bands = 1`` the stream is i.i.d., which makes a test set for the whole square.

>>> stream = covariate_shift(n=1_000, n_bands=4, seed=0)
>>> stream.info.task, [d.position for d in stream.info.drifts]  # doctest: +ELLIPSIS
('regression', [2..., 4..., 7...])
>>> X, y = next(stream.iter_batches(250))
>>> float(X[:, 0].max()) <= 0.25, X.dtype, y.dtype
(True, dtype('float32'), dtype('float32'))
"""

from __future__ import annotations

import numpy as np

from adaptloop.streams.base import ArrayStream, Drift, registry
from adaptloop.validation import Count, Seed

__all__ = ["covariate_shift"]


@registry.register("covariate_shift")
def covariate_shift(n: Count = 2_000, n_bands: Count = 5, seed: Seed = 0) -> ArrayStream:
    """``n`` samples of ``y = sin(2 pi x0) cos(2 pi x1)`` (``x`` uniform, seeded), in order of
    ``n_bands`` bands of ``x0`` (the draw order within a band)."""
    X = np.random.default_rng(seed).random((n, 2)).astype(np.float32)
    y = (np.sin(2 * np.pi * X[:, 0]) * np.cos(2 * np.pi * X[:, 1])).astype(np.float32)
    band = np.minimum((X[:, 0] * n_bands).astype(int), n_bands - 1)
    order = np.argsort(band, kind="stable")
    starts = np.searchsorted(band[order], np.arange(1, n_bands))
    drifts = [Drift(int(s), 1) for s in starts if 0 < s < n]
    return ArrayStream(X[order], y[order], task="regression", drifts=drifts, name="covariate_shift")
