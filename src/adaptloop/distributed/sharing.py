"""What clients share and what each keeps: a learner state split into three parts.

FedAvg as the papers run it averages the *model* only. Each client trains with its own optimiser
(the "client optimizer" of Reddi et al., "Adaptive Federated Optimization", ICLR 2021,
Algorithm 1: ClientOpt runs locally from the global model, only the model delta goes to the
server) and keeps its optimiser state, schedule and random generator to itself. The learner says
which entries of its ``state_dict()`` are which, by their dotted paths (its
:meth:`~adaptloop.learners.base.Federated.state_roles`, a
:class:`~adaptloop.learners.base.StateRoles`); a :class:`StateSplit` applies it, as Flower
leaves it to the client what it shares. Nothing is guessed from key names:

* **local** — an entry at (or below) one of the learner's ``local`` paths: optimiser moments
  and settings, schedule and step counters, random generators. Nothing local is ever sent, as
  in Reddi et al.; a client keeps its own across rounds, so its Adam moments and step count go
  on from its last task (in Reddi et al.'s adaptive variants, Algorithm 2, clients run plain
  SGD, which has no state to keep; resetting Adam every round would restart its bias
  correction each time). The server's global learner keeps its own.
* **statistics** — a dict at one of the learner's ``statistics`` paths, holding ``count``,
  ``mean`` and ``m2`` (the running standardisation statistics of the learners' scalers; an
  ``inv_std`` next to them is derived from them). These are not averaged: the server merges the
  statistics of the samples each client learned into one pooled ``count``/``mean``/``m2`` with
  Chan et al.'s parallel formula (see :class:`Moments`), exactly as if one scaler had seen
  every client's samples, and every new global model carries the pooled statistics as of its
  server step (see :class:`StatisticsBlocks`).
* **shared** — every other leaf: the model parameters, averaged by the aggregation rule. A
  shared leaf that is not numeric (a string, a bool, ...) is refused with its path.

The federation can move entries: ``local`` patterns are kept local besides the learner's,
``share`` patterns are shared even where the learner keeps them local or pools them (their
leaves must then be numeric). A pattern without a dot (``"scaler"``, ``"adam_*"``) matches a key
of that name at any depth; a dotted one (``"learned.optimizer.state"``) matches that path from
the root, or any path below it; both take shell wildcards. ``local = ["scaler"]`` keeps each
client's standardisation to itself (as FedBN keeps batch-norm statistics local) instead of
pooling it.

Why pool the statistics rather than freeze a scaler fitted on the first data: the learners'
own scalers keep running over everything they see, so pooling keeps the federated model
standardised the way a single learner on all the data would be, drift included; the merge is
exact (no averaging of variances, which is what made the averaged ``inv_std`` negative); and
every client standardises with the same statistics, so the weights the rule averages are in one
coordinate system.

>>> import numpy as np
>>> from adaptloop.learners.base import StateRoles
>>> state = {"learned": {"theta": np.zeros(2), "steps": 4,
...                      "scaler": {"count": 0, "mean": np.zeros(2), "m2": np.zeros(2)},
...                      "rng": {"bit_generator": "PCG64"}}}
>>> roles = StateRoles(local=("learned.steps", "learned.rng"), statistics=("learned.scaler",))
>>> split = StateSplit(state, roles)
>>> split.shared_paths, split.statistics_paths, split.local_paths
(['learned.theta'], ['learned.scaler'], ['learned.steps', 'learned.rng'])
>>> split.size  # 2 shared numbers, then count, mean (2) and m2 (2) of the scaler
7
>>> StateSplit({"w": np.ones(2), "mode": "adam"}, StateRoles())
Traceback (most recent call last):
...
ValueError: state entry 'mode' is a str, not a number or numeric array: it cannot be averaged \
(name it in the federation's local patterns to keep it on each client)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

import numpy as np

from adaptloop.distributed.state import (
    Keys,
    StateCodec,
    dotted,
    initial_state,
    lookup,
    replace_leaves,
)
from adaptloop.learners.base import Federated, Learner, StateRoles

_STATISTICS = ("count", "mean", "m2")
_DERIVED = "inv_std"
_LOCAL = object()  # marks a pruned local entry


@dataclass(frozen=True)
class Moments:
    """Running statistics of samples: ``count``, per-feature ``mean`` and ``m2`` (sum of squared
    deviations from the mean), as the learners' scalers keep them.

    :meth:`merge` pools two sets of samples with the parallel formula of Chan, Golub and
    LeVeque ("Updating formulae and a pairwise algorithm for computing sample variances",
    1979): ``n = n_a + n_b``, ``d = mean_b - mean_a``, ``mean = mean_a + d n_b / n``,
    ``m2 = m2_a + m2_b + d^2 n_a n_b / n``. :meth:`minus` inverts it: the statistics of the
    samples ``self`` holds beyond ``part``.

    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.normal(size=(5, 2)), rng.normal(3.0, 2.0, size=(7, 2))
    >>> pooled = Moments.of(a).merge(Moments.of(b))
    >>> both = Moments.of(np.concatenate([a, b]))
    >>> pooled.count, np.allclose(pooled.mean, both.mean), np.allclose(pooled.m2, both.m2)
    (12.0, True, True)
    >>> bool(np.allclose(pooled.minus(Moments.of(a)).m2, Moments.of(b).m2))
    True
    """

    count: float
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def of(cls, X: np.ndarray) -> Moments:
        """The statistics of the rows of ``X``."""
        X = np.asarray(X, dtype=np.float64)
        mean = X.mean(axis=0)
        return cls(float(len(X)), mean, ((X - mean) ** 2).sum(axis=0))

    def merge(self, other: Moments) -> Moments:
        """The statistics of both sets of samples."""
        total = self.count + other.count
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / total)
        m2 = self.m2 + other.m2 + delta * delta * (self.count * other.count / total)
        return Moments(total, mean, m2)

    def minus(self, part: Moments) -> Moments:
        """The statistics of the samples in ``self`` that are not in ``part`` (a subset)."""
        rest = self.count - part.count
        if rest < 0:
            raise ValueError(
                f"cannot remove {part.count:g} samples from statistics of {self.count:g}"
            )
        if rest == 0:
            return Moments(0.0, np.zeros_like(self.mean), np.zeros_like(self.m2))
        mean = (self.count * self.mean - part.count * part.mean) / rest
        delta = mean - part.mean
        m2 = self.m2 - part.m2 - delta * delta * (part.count * rest / self.count)
        return Moments(rest, mean, np.maximum(m2, 0.0))


class StatisticsBlocks:
    """Where the statistics sit in a model vector, and the server's exact merge of them.

    Each block is ``[count, mean (d), m2 (d)]`` starting at an offset. A client returns
    ``trained - sent``; the server turns that back into the statistics of the samples the client
    learned (:meth:`Moments.minus`), pools them into its running total (:meth:`absorb`, every
    accepted update counts once, stale or not: samples are samples), hands the rule the delta
    with its statistics zeroed (:meth:`strip`: rules only average parameters) and writes the
    pooled total into every model it sends or steps to (:meth:`publish`).

    >>> blocks = StatisticsBlocks([(1, 1)])  # one feature: vector = [w, count, mean, m2]
    >>> sent = np.array([0.5, 2.0, 1.0, 0.0])  # statistics of the samples [1, 1]
    >>> delta = np.array([0.1, 2.0, 0.5, 9.0])  # it learned [0, 4]: [1, 1, 0, 4] has 4, 1.5, 9
    >>> pooled = blocks.absorb(sent, sent, delta)  # the pooled total had the same [1, 1]
    >>> pooled[1:].tolist()
    [4.0, 1.5, 9.0]
    >>> blocks.strip(delta).tolist(), blocks.publish(sent + delta, pooled).tolist()
    ([0.1, 0.0, 0.0, 0.0], [0.6, 4.0, 1.5, 9.0])
    """

    def __init__(self, blocks: Sequence[tuple[int, int]]) -> None:
        self.blocks = [(int(start), int(dim)) for start, dim in blocks]

    def __bool__(self) -> bool:
        return bool(self.blocks)

    def _moments(self, vector: np.ndarray, start: int, dim: int) -> Moments:
        part = vector[start : start + 1 + 2 * dim]
        return Moments(float(part[0]), part[1 : 1 + dim], part[1 + dim :])

    def absorb(self, pooled: np.ndarray, sent: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """``pooled`` with the samples a client learned from ``sent`` (``delta`` = trained -
        sent) merged into each block; ``pooled`` itself is not changed. A block whose count
        went down was restarted on the client (a learner that resets itself): its statistics
        are the samples since the restart."""
        out = np.array(pooled, dtype=np.float64)
        trained = sent + delta
        for start, dim in self.blocks:
            after, before = self._moments(trained, start, dim), self._moments(sent, start, dim)
            learned = after if after.count < before.count else after.minus(before)
            total = self._moments(out, start, dim).merge(learned)
            out[start] = total.count
            out[start + 1 : start + 1 + dim] = total.mean
            out[start + 1 + dim : start + 1 + 2 * dim] = total.m2
        return out

    def strip(self, delta: np.ndarray) -> np.ndarray:
        """``delta`` with every statistics block zeroed (a copy)."""
        out = np.array(delta, dtype=np.float64)
        for start, dim in self.blocks:
            out[start : start + 1 + 2 * dim] = 0.0
        return out

    def publish(self, model: np.ndarray, pooled: np.ndarray) -> np.ndarray:
        """``model`` with the statistics blocks of ``pooled`` (a copy)."""
        out = np.array(model, dtype=np.float64)
        for start, dim in self.blocks:
            out[start : start + 1 + 2 * dim] = pooled[start : start + 1 + 2 * dim]
        return out


def _matches(keys: Keys, patterns: Iterable[str]) -> bool:
    """A federation's pattern: a key name at any depth, or (dotted) a path from the root."""
    for pattern in patterns:
        if "." not in pattern:
            if any(fnmatchcase(str(key), pattern) for key in keys):
                return True
        elif any(fnmatchcase(dotted(keys[:i]), pattern) for i in range(1, len(keys) + 1)):
            return True
    return False


def _check_patterns(patterns: Iterable[str], name: str) -> tuple[str, ...]:
    if isinstance(patterns, str):
        raise ValueError(f"{name} must be a list of path patterns, got the string {patterns!r}")
    out = tuple(patterns)
    for pattern in out:
        if not isinstance(pattern, str) or not pattern or pattern.startswith("."):
            raise ValueError(
                f"{name} patterns must be non-empty key names or paths, got {pattern!r}"
            )
    return out


class StateSplit:
    """A learner state's shared, statistics and local parts (see the module docstring).

    ``template`` is a state as ``state_dict()`` returns it, every parameter allocated; ``roles``
    the learner's declaration of its local and statistics entries; ``share`` and ``local`` the
    federation's patterns. :meth:`for_learner` builds both from a learner. :meth:`flatten`
    gives the vector the server works on (shared leaves, then one statistics block per scaler,
    see :attr:`statistics`); :meth:`compose` puts a vector into a learner's own state, keeping
    its local part.
    """

    def __init__(
        self,
        template: dict[str, Any],
        roles: StateRoles,
        share: Iterable[str] = (),
        local: Iterable[str] = (),
    ) -> None:
        if not isinstance(template, dict):
            raise ValueError(f"a learner state must be a dict, got {type(template).__name__}")
        if not isinstance(roles, StateRoles):
            raise ValueError(f"roles must be a StateRoles, got {type(roles).__name__}")
        self.roles = roles
        self.share = _check_patterns(share, "share")
        self.local = _check_patterns(local, "local")
        self.template = template
        declared_local, declared_statistics = roles.paths(template)
        self._declared_local, self._declared_statistics = (
            set(declared_local),
            set(declared_statistics),
        )
        self._local: list[Keys] = []
        self._statistics: list[Keys] = []
        self._dims: list[int] = []
        try:
            self.codec = StateCodec(self._prune(template, ()))
        except ValueError as error:
            raise ValueError(
                f"{error} (name it in the federation's local patterns to keep it on each client)"
            ) from None
        self.shared_paths = self.codec.paths
        """Dotted paths of the shared (averaged) leaves."""
        self.statistics_paths = [dotted(keys) for keys in self._statistics]
        """Dotted paths of the statistics entries (pooled)."""
        self.local_paths = [dotted(keys) for keys in self._local]
        """Dotted paths of the local entries (kept by each client)."""
        blocks, start = [], self.codec.size
        for dim in self._dims:
            blocks.append((start, dim))
            start += 1 + 2 * dim
        self.statistics = StatisticsBlocks(blocks)
        """The statistics blocks of :meth:`flatten`'s vectors (for the server's merge)."""
        self.size = start

    @classmethod
    def for_learner(
        cls,
        learner: Learner,
        n_features: int,
        n_classes: int | None,
        share: Iterable[str] = (),
        local: Iterable[str] = (),
    ) -> StateSplit:
        """The split of ``learner``'s state (allocated by :func:`initial_state`) by its own
        :meth:`~adaptloop.learners.base.Federated.state_roles` and the federation's patterns.

        >>> class Plain:  # a learner that does not say what it shares
        ...     def state_dict(self): return {}
        >>> StateSplit.for_learner(Plain(), 3, 2)
        Traceback (most recent call last):
        ...
        ValueError: Plain does not say which parts of its state are shared, pooled statistics \
or local: implement state_roles() -> StateRoles (adaptloop.learners.base.Federated) to federate it
        """
        name = type(learner).__name__
        if not isinstance(learner, Federated):
            raise ValueError(
                f"{name} does not say which parts of its state are shared, pooled statistics or "
                "local: implement state_roles() -> StateRoles (adaptloop.learners.base."
                "Federated) to federate it"
            )
        roles = learner.state_roles()
        if not isinstance(roles, StateRoles):
            raise ValueError(f"{name}.state_roles() must return a StateRoles, got {roles!r}")
        template = initial_state(learner, n_features, n_classes)
        return cls(template, roles, share, local)

    def _is_local(self, keys: Keys) -> bool:
        local = dotted(keys) in self._declared_local or _matches(keys, self.local)
        return local and not _matches(keys, self.share)

    def _prune(self, value: Any, keys: Keys) -> Any:
        """The nest of shared leaves (lists become dicts keyed by index); records the rest."""
        if keys and self._is_local(keys):
            self._local.append(keys)
            return _LOCAL
        if isinstance(value, dict):
            skip: tuple[str, ...] = ()
            if self._is_statistics(value, keys):
                self._statistics.append(keys)
                self._dims.append(int(np.asarray(value["mean"]).size))
                skip = (*_STATISTICS, _DERIVED)
            items = ((k, v) for k, v in value.items() if k not in skip)
        elif isinstance(value, (list, tuple)):
            items = enumerate(value)
        else:
            return value
        out = {}
        for key, item in items:
            kept = self._prune(item, (*keys, key))
            if kept is not _LOCAL:
                out[key] = kept
        return out

    def _is_statistics(self, value: dict, keys: Keys) -> bool:
        path = dotted(keys)
        if path not in self._declared_statistics or _matches(keys, self.share):
            return False
        count, mean, m2 = (value.get(key) for key in _STATISTICS)
        if not (
            isinstance(mean, np.ndarray)
            and isinstance(m2, np.ndarray)
            and mean.shape == m2.shape
            and isinstance(count, (int, np.integer))
            and not isinstance(count, bool)
        ):
            raise ValueError(
                f"state entry {path or '(the root)'!r} is declared running statistics but does "
                "not hold an integer count and a mean and an m2 array of one shape"
            )
        return True

    def flatten(self, state: dict[str, Any]) -> np.ndarray:
        """The shared leaves, then ``[count, mean, m2]`` of each statistics entry, as float64."""
        parts = [self.codec.flatten(state)]
        for keys in self._statistics:
            entry = lookup(state, keys)
            parts.append(np.array([float(entry["count"])]))
            parts.append(np.asarray(entry["mean"], dtype=np.float64).ravel())
            parts.append(np.asarray(entry["m2"], dtype=np.float64).ravel())
        return np.concatenate(parts)

    def compose(self, state: dict[str, Any], vector: np.ndarray) -> dict[str, Any]:
        """``state`` (a learner's own) with its shared leaves and statistics taken from
        ``vector``; its local part is kept as it is."""
        vector = np.asarray(vector, dtype=np.float64)
        if vector.shape != (self.size,):
            raise ValueError(f"state vector must have shape ({self.size},), got {vector.shape}")
        values = self.codec.values(vector[: self.codec.size])
        for keys, (start, dim) in zip(self._statistics, self.statistics.blocks, strict=True):
            entry = lookup(self.template, keys)
            count = int(round(vector[start]))
            mean = vector[start + 1 : start + 1 + dim].reshape(np.shape(entry["mean"]))
            m2 = vector[start + 1 + dim : start + 1 + 2 * dim].reshape(np.shape(entry["m2"]))
            values[(*keys, "count")] = count
            values[(*keys, "mean")] = mean.astype(entry["mean"].dtype)
            values[(*keys, "m2")] = m2.astype(entry["m2"].dtype)
            if _DERIVED in entry:
                std = np.sqrt(m2 / count) if count > 0 else np.zeros_like(m2)
                inv = np.divide(1.0, std, out=np.zeros_like(std), where=std > 0)
                values[(*keys, _DERIVED)] = inv.astype(np.asarray(entry[_DERIVED]).dtype)
        out, found = replace_leaves(state, values)
        missing = [dotted(keys) for keys in values if keys not in found]
        if missing:
            raise ValueError(f"state has no entry {missing[0]!r} (the template has)")
        return out

    def without_statistics(self, vector: np.ndarray) -> np.ndarray:
        """``vector`` with every statistics block emptied (count 0): no samples seen yet."""
        return self.statistics.strip(vector)
