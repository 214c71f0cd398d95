"""Online root-cause ranking on a network's link loads: which link's failure explains the
anomalies seen now?

:class:`OnlineRootCause` watches one load vector per step (every link of a backbone) and learns
online, during normal operation, (1) what a normal step-to-step change of every link looks like
(an exponentially weighted mean and variance of its change, so an anomaly is a z-score) and
(2) a dependency graph among the links (the exponentially weighted correlation of their
changes: links that carry the same demands move together). When the anomalies are large it
ranks the links as a root-cause analysis does (:meth:`OnlineRootCause.rank`): a random walk
with restart over the learned graph, restarting at each link in proportion to its anomaly, and
each link's stationary mass is its score -- the ranking step of CORAL (Wang et al., KDD 2023,
"Incremental Causal Graph Learning for Online Root Cause Analysis", Sec. 4.3, after
MicroCause). A failed link's own load falls to zero, so its score is its anomaly (a drop, which
``drop_weight`` favours over rises: a failure removes load, re-routing adds it) plus the mass the
walk carries to it from the links its traffic moved onto.

Deviations from CORAL: the dependency graph is an online correlation graph, not a causal graph
learned by a VAE with state-invariant and state-dependent parts; there is no trigger model (the
caller asks for a ranking, e.g. at a known failure or when :attr:`OnlineRootCause.anomalous`).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> rca = OnlineRootCause(n_links=4)
>>> base = np.array([1.0, 2.0, 1.5, 0.5])
>>> for _ in range(200):
...     rca.observe(base * (1 + 0.01 * rng.standard_normal(4)))
>>> after = np.array([1.0, 0.0, 2.6, 1.2])  # link 1 failed; its traffic moved to 2 and 3
>>> int(rca.rank(after)[0])
1
"""

from __future__ import annotations

import numpy as np

from adaptloop.validation import Count, Fraction, PositiveReal

__all__ = ["OnlineRootCause"]


class OnlineRootCause:
    """Online anomaly statistics and link dependency graph; root-cause ranking on demand.

    ``n_links``: loads per step; ``half_life``: steps over which the normal statistics fade;
    ``restart``: the walk's restart probability; ``drop_weight``: how much more a fall of load
    counts than a rise; ``threshold``: the z-score above which a step is anomalous (not
    learned from)."""

    def __init__(
        self,
        n_links: Count,
        half_life: Count = 288,
        restart: Fraction = 0.3,
        drop_weight: PositiveReal = 2.0,
        threshold: PositiveReal = 6.0,
    ) -> None:
        self.n_links, self.half_life, self.restart = n_links, half_life, restart
        self.drop_weight, self.threshold = drop_weight, threshold
        self._alpha = 1 - 0.5 ** (1 / half_life)
        self._last: np.ndarray | None = None
        self._mean = np.zeros(n_links)
        self._cov = np.eye(n_links) * 1e-6
        self.n_seen_ = 0
        self.anomalous = False

    def _check(self, loads: object) -> np.ndarray:
        loads = np.asarray(loads, dtype=np.float64)
        if loads.shape != (self.n_links,) or not np.isfinite(loads).all():
            raise ValueError(f"loads must be {self.n_links} finite values, got shape {loads.shape}")
        return loads

    def scores(self, loads: object) -> np.ndarray:
        """Signed z-scores of this step's change of every link (0 before two steps)."""
        loads = self._check(loads)
        if self._last is None:
            return np.zeros(self.n_links)
        std = np.sqrt(np.maximum(np.diag(self._cov), 1e-12))
        return (loads - self._last - self._mean) / std

    def observe(self, loads: object) -> None:
        """Take one step's loads; learn from it unless it is anomalous (``max |z| >
        threshold``: the statistics describe normal operation)."""
        loads = self._check(loads)
        z = self.scores(loads)
        self.anomalous = self.n_seen_ > 10 and bool(np.abs(z).max() > self.threshold)
        if self._last is not None and not self.anomalous:
            change = loads - self._last
            a = self._alpha if self.n_seen_ > 1 / self._alpha else 1 / (self.n_seen_ + 1)
            delta = change - self._mean
            self._mean += a * delta
            self._cov = (1 - a) * (self._cov + a * np.outer(delta, delta))
        self._last = loads
        self.n_seen_ += 1

    def graph(self) -> np.ndarray:
        """The learned dependency graph: absolute correlations of the links' changes, zero
        diagonal."""
        std = np.sqrt(np.maximum(np.diag(self._cov), 1e-12))
        corr = np.abs(self._cov / np.outer(std, std))
        np.fill_diagonal(corr, 0.0)
        return corr

    def rank(self, loads: object) -> np.ndarray:
        """Link indices, most likely root cause first, for this step's loads (nothing is
        learned)."""
        z = self.scores(loads)
        anomaly = np.where(z < 0, self.drop_weight * -z, z)
        if anomaly.sum() <= 0:
            return np.arange(self.n_links)
        restart = anomaly / anomaly.sum()
        w = self.graph() * anomaly[None, :]  # walk towards anomalous neighbours
        rows = w.sum(axis=1, keepdims=True)
        step = np.divide(w, rows, out=np.zeros_like(w), where=rows > 0)
        mass = restart.copy()
        for _ in range(50):
            mass = self.restart * restart + (1 - self.restart) * mass @ step
        return np.argsort(-(mass + restart), kind="stable")
