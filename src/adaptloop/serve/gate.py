"""The update gate: may an adapted model replace the one being served?

Follows MUSCLE (Echterhoff et al., "MUSCLE: A Model Update Strategy for Compatible LLM
Evolution", 2024): an update is judged not only by its accuracy but by its *negative flips*,
the samples the old model got right and the new one gets wrong, because users notice a model
that starts failing on what used to work even when its overall accuracy rises. We follow its
compatibility measure, the negative flip rate (NFR = negative flips / samples), and its rule
that an update must not regress what the old model handled; we do not follow its training
side (a compatibility adapter with distillation), since our learners adapt online. "Stationary
Representations" (Biondi et al., CVPR 2024) motivates the same check for model replacement.

Both models are scored on the same most recent labelled feedback, which neither has learned
yet (each micro-batch is scored before the candidate learns it, so the comparison is
prequential and unbiased). The candidate is promoted when, over at least ``window`` samples,
its accuracy is not lower than the served model's (``min_gain`` = 0) and its NFR is at most
``max_nfr``. After each decision the evidence is reset, so decisions use disjoint samples.

>>> import numpy as np

from adaptloop.parameters import declared
from adaptloop.validation import Count, Fraction, NonNegativeReal
>>> gate = UpdateGate(window=4, max_nfr=0.25)
>>> y = np.array([1, 0, 1, 1])
>>> gate.add(y, old=np.array([1, 0, 0, 0]), new=np.array([1, 1, 1, 1]))
>>> decision = gate.decide()
>>> decision.promote, decision.accuracy_old, decision.accuracy_new, decision.negative_flip_rate
(True, 0.5, 0.75, 0.25)
>>> gate.ready()
False
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from adaptloop.parameters import declared
from adaptloop.validation import Count, Fraction, NonNegativeReal


@dataclass(frozen=True)
class GateDecision:
    """One decision with its numbers (see :class:`UpdateGate`).

    >>> GateDecision(True, 10, 0.5, 0.6, 0.1, 1, 0.2, 0.0, "ok").as_dict()["promote"]
    True
    """

    promote: bool
    n: int
    accuracy_old: float
    accuracy_new: float
    negative_flip_rate: float
    negative_flips: int
    max_nfr: float
    min_gain: float
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


@declared
class UpdateGate:
    """Collect old-vs-new correctness on fresh labelled samples; decide once ``window`` are in.

    For regression, a prediction counts as correct when its absolute error is at most
    ``tolerance`` (the gate then compares hit rates). A refused parameter is a
    ``ParameterError`` naming it.

    >>> gate = UpdateGate(window=2, max_nfr=0.0)
    >>> gate.add(np.array([0, 1]), old=np.array([0, 1]), new=np.array([1, 1]))
    >>> gate.decide().reason
    'accuracy would fall: 1.0000 -> 0.5000'
    """

    def __init__(
        self,
        window: Count = 64,
        max_nfr: Fraction = 0.05,
        min_gain: float = 0.0,
        tolerance: NonNegativeReal | None = None,
    ) -> None:
        self.window = int(window)
        self.max_nfr = float(max_nfr)
        self.min_gain = float(min_gain)
        self.tolerance = tolerance
        self.reset()

    def reset(self) -> None:
        """Forget the collected evidence."""
        self.n = 0
        self.correct_old = 0
        self.correct_new = 0
        self.negative_flips = 0

    def _correct(self, y: np.ndarray, pred: np.ndarray) -> np.ndarray:
        if self.tolerance is None:
            return np.asarray(pred) == y
        return np.abs(np.asarray(pred, dtype=np.float64) - y) <= self.tolerance

    def add(self, y: np.ndarray, old: np.ndarray, new: np.ndarray) -> None:
        """Add a batch: true labels, the served model's and the candidate's predictions."""
        ok_old, ok_new = self._correct(y, old), self._correct(y, new)
        self.n += int(y.shape[0])
        self.correct_old += int(ok_old.sum())
        self.correct_new += int(ok_new.sum())
        self.negative_flips += int((ok_old & ~ok_new).sum())

    def ready(self) -> bool:
        """Enough evidence for a decision."""
        return self.n >= self.window

    def decide(self) -> GateDecision:
        """Decide on the evidence so far and reset it."""
        n = max(self.n, 1)
        acc_old, acc_new = self.correct_old / n, self.correct_new / n
        nfr = self.negative_flips / n
        if acc_new < acc_old + self.min_gain:
            promote, reason = False, f"accuracy would fall: {acc_old:.4f} -> {acc_new:.4f}"
        elif nfr > self.max_nfr:
            promote, reason = False, f"negative flip rate {nfr:.4f} > {self.max_nfr:.4f}"
        else:
            promote, reason = True, "accuracy kept and negative flips under the threshold"
        decision = GateDecision(
            promote,
            self.n,
            acc_old,
            acc_new,
            nfr,
            self.negative_flips,
            self.max_nfr,
            self.min_gain,
            reason,
        )
        self.reset()
        return decision
