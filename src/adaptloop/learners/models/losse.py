"""Losse-FTL (``losse``): a linear regressor on locality-sensitive sparse random features,
fitted exactly to all data seen (follow-the-leader) in one pass.

Liu, Du, Lee and Lin, "Locality Sensitive Sparse Encoding for Learning World Models Online",
ICLR 2024. Section 3.2 (the encoding): the input is randomly projected, ``z = P x`` (``P``
Gaussian, ``n_projections`` rows), and each projected coordinate is soft-binned into
``n_bins`` bins over ``[-bound, bound]``, so only a few of the ``n_projections * n_bins``
features are non-zero and nearby inputs share active features (locality sensitivity).
Section 3.1 (FTL): the weights minimise the ridge loss on *all* samples so far,
``w = (Phi^T Phi + ridge * I)^-1 Phi^T y``, kept exactly by accumulating ``Phi^T Phi`` and
``Phi^T y`` -- so a shift of the input distribution does not overwrite what was fitted
elsewhere (no forgetting), with a single pass over the data and no replay.

Deviations: the soft binning is the triangular kernel of one bin's width (each coordinate
activates its two nearest bin centres with weights summing to one); the paper's own kernel
and its sparse incremental solver (which updates only the active block, section 3.3) are not
reproduced: the solve here is dense, ``O(D^3)`` for ``D = n_projections * n_bins`` features,
done lazily once per ``predict`` after new data, which suits ``D`` up to a few thousand.
Inputs are taken as given (scale them so that ``P x`` mostly falls in ``[-bound, bound]``;
values outside are clipped to the edge bins).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.uniform(-1, 1, (500, 1)).astype(np.float32)
>>> y = np.sin(3 * X[:, 0])
>>> model = Losse(n_projections=8, n_bins=20, seed=0)
>>> model.learn(X[X[:, 0] < 0], y[X[:, 0] < 0])  # left half first ...
>>> model.learn(X[X[:, 0] >= 0], y[X[:, 0] >= 0])  # ... then the right half
>>> float(np.sqrt(np.mean((model.predict(X) - y) ** 2))) < 0.05
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from adaptloop.learners.base import BaseLearner, StateRoles, registry
from adaptloop.validation import Count, PositiveReal, Seed

__all__ = ["Losse"]


@registry.register("losse")
class Losse(BaseLearner):
    """Losse-FTL regression (see the module doc): ``n_projections`` random directions,
    ``n_bins`` soft bins each over ``[-bound, bound]``, ``ridge`` the FTL ridge, ``seed`` the
    projection."""

    def __init__(
        self,
        n_projections: Count = 32,
        n_bins: Count = 16,
        bound: PositiveReal = 3.0,
        ridge: PositiveReal = 1e-3,
        seed: Seed = 0,
    ) -> None:
        super().__init__(task="regression")
        if n_bins < 2:
            raise ValueError(f"n_bins must be >= 2, got {n_bins}")
        self.n_projections = n_projections
        self.n_bins = n_bins
        self.bound = bound
        self.ridge = ridge
        self.seed = seed
        self._projection: np.ndarray | None = None
        dim = n_projections * n_bins
        self.gram = np.zeros((dim, dim))
        self.moment = np.zeros(dim)
        self.n_seen_ = 0
        self._weights: np.ndarray | None = None

    def encode(self, X: np.ndarray) -> np.ndarray:
        """The sparse features ``(n, n_projections * n_bins)`` of a checked batch."""
        X = self.check_X(X)
        if self._projection is None or self._projection.shape[1] != X.shape[1]:
            rng = np.random.default_rng(self.seed)  # a function of the seed: not state
            self._projection = rng.normal(size=(self.n_projections, X.shape[1]))
        z = np.clip(X.astype(np.float64) @ self._projection.T, -self.bound, self.bound)
        position = (z + self.bound) / (2 * self.bound) * (self.n_bins - 1)  # in [0, n_bins - 1]
        low = np.minimum(np.floor(position).astype(np.int64), self.n_bins - 2)
        frac = position - low
        n = len(X)
        phi = np.zeros((n, self.n_projections, self.n_bins))
        rows, cols = np.arange(n)[:, None], np.arange(self.n_projections)[None, :]
        phi[rows, cols, low] = 1.0 - frac
        phi[rows, cols, low + 1] = frac
        return phi.reshape(n, -1)

    def _learn(self, X: np.ndarray, y: np.ndarray) -> None:
        phi = self.encode(X)
        self.gram += phi.T @ phi
        self.moment += phi.T @ y.astype(np.float64)
        self.n_seen_ += len(X)
        self._weights = None

    @property
    def weights(self) -> np.ndarray:
        """The FTL weights: the ridge solution on every sample learned."""
        if self._weights is None:
            dim = len(self.moment)
            self._weights = np.linalg.solve(self.gram + self.ridge * np.eye(dim), self.moment)
        return self._weights

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return (self.encode(X) @ self.weights).astype(np.float32)

    def state_roles(self) -> StateRoles:
        """Federation: the sufficient statistics are shared (averaged: the pooled FTL fit, up
        to the ridge's scale); nothing is local."""
        return StateRoles()

    def _get_state(self) -> dict[str, Any]:
        return {
            "gram": self.gram.copy(),
            "moment": self.moment.copy(),
            "n_seen": self.n_seen_,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        keys = {"gram", "moment", "n_seen"}
        if not isinstance(state, dict) or set(state) != keys:
            raise ValueError(f"Losse state must be a dict with keys {sorted(keys)}")
        dim = self.n_projections * self.n_bins
        gram, moment = np.asarray(state["gram"], float), np.asarray(state["moment"], float)
        if gram.shape != (dim, dim) or moment.shape != (dim,):
            raise ValueError(f"Losse state holds {moment.shape[0]} features, this learner {dim}")
        self.gram, self.moment = gram.copy(), moment.copy()
        self.n_seen_ = int(state["n_seen"])
        self._weights = None
