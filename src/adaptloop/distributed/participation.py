"""Which clients can take part in each round: full, Bernoulli, Markov or cyclic participation.

A :class:`Participation` (an experiment file's ``[participation]`` section) says, for every
client ``i``, how often it is available: its participation probability ``p_i`` and the pattern
its presence follows from round to round. The patterns are those of Wang & Ji, "A Lightweight
Method for Tackling Unknown Participation Statistics in Federated Averaging" (ICLR 2024,
Sec. 6 and App. D; the authors' code ``IBM/fedau``, ``util.WorkerSampler``):

* ``"full"``: every client, every round (``p_i = 1``);
* ``"bernoulli"``: client ``i`` is present in a round with probability ``p_i``, independently
  of other rounds and clients (intermittent Bernoulli participation);
* ``"markov"``: a two-state Markov chain per client whose stationary probability of being
  present is ``p_i``: present -> absent with probability ``switch (1 / p_i - 1)``, absent ->
  present with probability ``switch`` (both divided by the first if it exceeds 1); the chain
  starts in its stationary law;
* ``"cyclic"``: present for ``max(1, round(cycle p_i))`` rounds, then absent for the rest of
  a ``cycle``, starting at a seeded offset in the absent phase.

``p_i`` are the ``probabilities`` given, or drawn as in the paper's experiments (App. D.1):
``p_i = max(minimum, K * mean * <c_i, m>)``, ``c_i`` client ``i``'s class mix, ``m`` one
Dirichlet draw of concentration ``skew`` over the ``K`` classes, so that how often a client
shows up depends on its data (the case where FedAvg's average over the clients present is
biased). ``known`` says whether the server may read ``p_i``; otherwise (the paper's *unknown
participation statistics*) a rule has to estimate them (FedAU).

Rounds are counted by the rule (a synchronous rule's round ``t``), so the clients available in
round ``t`` are a function of the seed and ``t`` alone: the same on every engine.

>>> import numpy as np
>>> schedule = Participation("bernoulli", probabilities=(1.0, 0.5, 0.0)).schedule(3, seed=0)
>>> [sorted(schedule.present(t)) for t in range(4)]
[[0], [0], [0, 1], [0, 1]]
>>> schedule.probabilities.tolist()
[1.0, 0.5, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
from annotated_types import Gt, Le

from adaptloop.parameters import declared
from adaptloop.validation import Count, Flag, Fraction, PositiveReal, Real, Seed

ParticipationKind = Literal["full", "bernoulli", "markov", "cyclic"]

Probability = Annotated[Real, Gt(0), Le(1)]
"""A probability that is not zero: a number in (0, 1]."""


@declared
@dataclass(frozen=True)
class Participation:
    """How often each client is available, and in which pattern (see the module docstring).

    ``probabilities``: ``p_i`` of every client (empty: drawn from ``mean``, ``skew`` and
    ``minimum``); ``known``: the server may read them; ``switch``: the Markov pattern's
    largest absent -> present probability; ``cycle``: the cyclic pattern's length in rounds.
    """

    kind: ParticipationKind = "full"
    probabilities: tuple[Fraction, ...] = ()
    mean: Annotated[Real, Gt(0)] = 0.5
    skew: PositiveReal = 0.5
    minimum: Probability = 0.05
    known: Flag = False
    switch: Probability = 0.2
    cycle: Count = 10

    def draw(self, class_mixes: Sequence[np.ndarray] | int, seed: Seed = 0) -> np.ndarray:
        """Every client's ``p_i``: the ``probabilities`` given, 1 for ``"full"``, else drawn
        from the clients' class mixes (or, given a number of clients, from uniform mixes).

        >>> mixes = [np.array([1.0, 0.0]), np.array([0.5, 0.5]), np.array([0.0, 1.0])]
        >>> Participation("bernoulli", mean=0.3).draw(mixes).round(3).tolist()
        [0.585, 0.3, 0.05]
        """
        n = class_mixes if isinstance(class_mixes, int) else len(class_mixes)
        if self.kind == "full":
            return np.ones(n)
        if self.probabilities:
            if len(self.probabilities) != n:
                raise ValueError(
                    f"participation.probabilities has {len(self.probabilities)} values for "
                    f"{n} clients"
                )
            return np.asarray(self.probabilities, dtype=np.float64)
        if isinstance(class_mixes, int):
            return np.full(n, min(1.0, max(self.minimum, self.mean)))
        mixes = np.asarray(class_mixes, dtype=np.float64)
        k = mixes.shape[1]
        m = np.random.default_rng([seed, 20]).dirichlet(np.full(k, self.skew))
        return np.clip(k * self.mean * (mixes @ m), self.minimum, 1.0)

    def schedule(
        self, class_mixes: Sequence[np.ndarray] | int, seed: Seed = 0
    ) -> ParticipationSchedule:
        """The run-time schedule over these clients (see :class:`ParticipationSchedule`)."""
        return ParticipationSchedule(self, self.draw(class_mixes, seed), seed)


class ParticipationSchedule:
    """The clients present in each round, drawn round after round with a seeded generator and
    kept, so that asking for a round again (or on another engine) gives the same set.

    >>> s = Participation("cyclic", probabilities=(0.5, 0.5), cycle=4).schedule(2, seed=1)
    >>> [sorted(s.present(t)) for t in range(8)]
    [[], [0, 1], [0, 1], [], [], [0, 1], [0, 1], []]
    """

    def __init__(self, participation: Participation, probabilities: np.ndarray, seed: int) -> None:
        self.participation = participation
        self.probabilities = probabilities
        self._rng = np.random.default_rng([seed, 21])
        self._rounds: list[frozenset[int]] = []
        p, n = probabilities, len(probabilities)
        self._active = np.zeros(n, dtype=bool)
        if participation.kind == "markov":
            safe = np.maximum(p, 1e-12)
            up = np.full(n, participation.switch)
            down = up * (1.0 / safe - 1.0)
            over = down > 1.0
            up[over] /= down[over]
            down[over] = 1.0
            self._up, self._down = up, down
            self._active = self._rng.random(n) < p
        elif participation.kind == "cyclic":
            cycle = participation.cycle
            self._on = np.maximum(1, np.rint(cycle * p)).astype(int)
            self._off = np.maximum(1, cycle - self._on)
            self._to_switch = np.array([self._rng.integers(k) for k in self._off])

    @property
    def known(self) -> bool:
        """Whether the server may read the probabilities."""
        return self.participation.known or self.participation.kind == "full"

    def present(self, round: int) -> frozenset[int]:
        """The clients available in round ``round`` (0, 1, ...)."""
        if self.participation.kind == "full":
            return frozenset(range(len(self.probabilities)))
        while len(self._rounds) <= round:
            self._rounds.append(frozenset(np.flatnonzero(self._next()).tolist()))
        return self._rounds[round]

    def _next(self) -> np.ndarray:
        kind, p = self.participation.kind, self.probabilities
        if kind == "bernoulli":
            return self._rng.random(len(p)) < p
        if kind == "markov":
            u = self._rng.random(len(p))
            self._active = np.where(self._active, u >= self._down, u < self._up)
            return self._active.copy()
        switch = self._to_switch == 0  # cyclic: as the authors' WorkerSampler.cyclic_update
        self._active = np.where(switch, ~self._active, self._active)
        self._to_switch = np.where(
            switch, np.where(self._active, self._on, self._off), self._to_switch
        )
        self._to_switch -= 1
        return self._active.copy()
