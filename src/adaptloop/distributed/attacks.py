"""Byzantine clients and noisy links, injected per client in every engine.

An :class:`Attack` (an experiment file's ``[attack]`` section) names the Byzantine clients (a
seeded ``fraction`` of them, or the ``clients`` listed) and what they do from time ``start`` on:

* ``"sign_flip"``: send ``-scale`` times their honest delta (scaled sign flipping, as in
  Karimireddy et al. 2021, Sec. 6);
* ``"gaussian"``: send Gaussian noise of standard deviation ``std`` per coordinate;
* ``"label_flip"``: train on flipped labels (class ``c`` becomes ``K - 1 - c``) and send the
  honest delta of that (a data-poisoning client, handled by
  :class:`~adaptloop.distributed.client.Client`);
* ``"alie"``: "A Little Is Enough" (Baruch, Baruch & Goldberg, NeurIPS 2019, Sec. 3 and
  Algorithm 3): the colluding attackers send ``mu - z sigma`` coordinate-wise, ``mu`` and
  ``sigma`` the mean and standard deviation of the honest deltas, ``z`` the paper's
  ``z_max = Phi^-1((n - s) / n)``, ``s = floor(n / 2 + 1) - f``, unless ``z`` is given.
  Deviation: asynchronous clients have no round, so the attackers estimate ``mu`` and
  ``sigma`` from the latest honest delta of every honest client so far (an omniscient attacker,
  as the paper assumes);
* ``"stale"``: replay the delta they computed ``lag`` tasks earlier (their oldest kept until
  then).

``snr_db`` adds communication noise to *every* message, honest or not, in both directions:
white Gaussian noise with the power of the message divided by ``10^(snr_db / 10)``.

Only the learned parameters are attacked: the standardisation statistics blocks (sample counts
and moments) pass unchanged, as they are pooled exactly (see
:mod:`~adaptloop.distributed.sharing`).

>>> attack = Attack("sign_flip", fraction=0.25, scale=4.0)
>>> sorted(attack.byzantine(8, seed=0))
[0, 2]
>>> adversary = Adversary(attack, n_clients=8, n_classes=2, seed=0)
>>> adversary.uplink(0, np.array([1.0, -2.0]), now=0.0).tolist()
[-4.0, 8.0]
>>> adversary.uplink(1, np.array([1.0, -2.0]), now=0.0).tolist()
[1.0, -2.0]
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np

from adaptloop.parameters import declared
from adaptloop.validation import (
    Count,
    Fraction,
    NonNegativeInt,
    NonNegativeReal,
    PositiveReal,
    Real,
    Seed,
)

AttackKind = Literal["none", "sign_flip", "gaussian", "label_flip", "alie", "stale"]


@declared
@dataclass(frozen=True)
class Attack:
    """Which clients are Byzantine and what they do (see the module docstring); ``snr_db``:
    communication noise on every message (None: clean links)."""

    kind: AttackKind = "none"
    fraction: Fraction = 0.25
    clients: tuple[NonNegativeInt, ...] = ()
    scale: PositiveReal = 4.0
    std: NonNegativeReal = 1.0
    z: Real | None = None
    lag: Count = 10
    start: NonNegativeReal = 0.0
    snr_db: Real | None = None

    def byzantine(self, n_clients: int, seed: Seed = 0) -> frozenset[int]:
        """The Byzantine clients of a federation of ``n_clients`` (none for ``kind="none"``)."""
        if self.kind == "none":
            return frozenset()
        if self.clients:
            bad = [c for c in self.clients if c >= n_clients]
            if bad:
                raise ValueError(f"clients {bad} not in 0..{n_clients - 1}")
            return frozenset(self.clients)
        n_bad = int(round(self.fraction * n_clients))
        rng = np.random.default_rng([seed, 17])
        return frozenset(rng.choice(n_clients, size=n_bad, replace=False).tolist())

    def alie_z(self, n_clients: int, n_byzantine: int) -> float:
        """ALIE's ``z`` (given, or ``z_max`` of Baruch et al. 2019, Sec. 3).

        >>> round(Attack("alie").alie_z(32, 8), 3)
        0.579
        """
        if self.z is not None:
            return float(self.z)
        s = math.floor(n_clients / 2 + 1) - n_byzantine
        return NormalDist().inv_cdf(min(max((n_clients - s) / n_clients, 1e-6), 1 - 1e-6))


class Adversary:
    """An attack at run time: corrupts the Byzantine clients' deltas and adds the links' noise.

    ``keep`` is 1 on the coordinates an attack may touch, 0 on those it passes unchanged (the
    statistics blocks); None: all of them.
    """

    def __init__(
        self,
        attack: Attack | None,
        n_clients: int,
        n_classes: int | None,
        seed: int = 0,
        keep: np.ndarray | None = None,
    ) -> None:
        self.attack = attack or Attack()
        self.byzantine = self.attack.byzantine(n_clients, seed)
        self.n_clients, self.n_classes = n_clients, n_classes
        self.keep = keep
        self._rng = np.random.default_rng([seed, 18])
        self._honest: dict[int, np.ndarray] = {}
        self._history: dict[int, collections.deque[np.ndarray]] = {}

    def flips_labels(self, client: int) -> bool:
        """Whether ``client`` trains on flipped labels."""
        return self.attack.kind == "label_flip" and client in self.byzantine

    def _masked(self, honest: np.ndarray, corrupted: np.ndarray) -> np.ndarray:
        return corrupted if self.keep is None else honest + self.keep * (corrupted - honest)

    def _noise(self, vector: np.ndarray) -> np.ndarray:
        snr_db = self.attack.snr_db
        if snr_db is None:
            return vector
        part = vector if self.keep is None else vector[self.keep > 0]
        power = float(np.mean(part * part)) if part.size else 0.0
        std = math.sqrt(power / 10.0 ** (snr_db / 10.0))
        return self._masked(vector, vector + self._rng.normal(0.0, std, vector.shape))

    def downlink(self, model: np.ndarray) -> np.ndarray:
        """The model a client receives (with the link's noise)."""
        return self._noise(model)

    def uplink(self, client: int, delta: np.ndarray, now: float) -> np.ndarray:
        """The delta the server receives from ``client`` (attacked, then the link's noise)."""
        delta = np.asarray(delta, dtype=np.float64)
        kind = self.attack.kind
        if client not in self.byzantine:
            self._honest[client] = delta
            return self._noise(delta)
        history = self._history.setdefault(client, collections.deque(maxlen=self.attack.lag))
        history.append(delta)
        if now < self.attack.start or kind == "label_flip":
            return self._noise(delta)
        if kind == "sign_flip":
            sent = -self.attack.scale * delta
        elif kind == "gaussian":
            sent = self._rng.normal(0.0, self.attack.std, delta.shape)
        elif kind == "alie":
            sent = self._alie(delta)
        else:  # stale
            sent = history[0]
        return self._noise(self._masked(delta, sent))

    def _alie(self, delta: np.ndarray) -> np.ndarray:
        if len(self._honest) < 2:
            return delta  # nothing to estimate from yet: behave
        honest = np.stack(list(self._honest.values()))
        z = self.attack.alie_z(self.n_clients, len(self.byzantine))
        return honest.mean(axis=0) - z * honest.std(axis=0)
