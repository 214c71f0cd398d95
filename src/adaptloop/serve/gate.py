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

For regression (a ``tolerance`` is given) the gate compares *errors*: the candidate's mean
absolute error must not be higher than the served model's, and a negative flip is a sample
the served model had within ``tolerance`` and the candidate has not. A classification gate
never promotes on a tie of zeros (neither model right once in the window: no evidence that
the candidate is no worse), and no gate promotes a candidate whose predictions are not finite.

>>> import numpy as np
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
    mae_old: float | None = None
    mae_new: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@declared
class UpdateGate:
    """Collect old-vs-new correctness on fresh labelled samples; decide once ``window`` are in.

    For regression, a prediction counts as correct (for the hit rates and the negative flips)
    when its absolute error is at most ``tolerance``, and the gate compares mean absolute
    errors (see the module docstring). A refused parameter is a ``ParameterError`` naming it.

    >>> gate = UpdateGate(window=2, tolerance=0.5)
    >>> gate.add(np.array([0.0, 0.0]), old=np.array([3.0, 3.0]), new=np.array([900.0, 900.0]))
    >>> d = gate.decide()
    >>> d.promote, d.accuracy_old, d.accuracy_new, d.mae_old, d.mae_new
    (False, 0.0, 0.0, 3.0, 900.0)

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
        self.error_old = 0.0
        self.error_new = 0.0
        self.finite_new = True

    def state_dict(self) -> dict:
        """The evidence so far (the parameters are the constructor's)."""
        keys = ("n", "correct_old", "correct_new", "negative_flips", "error_old", "error_new")
        return {**{key: getattr(self, key) for key in keys}, "finite_new": self.finite_new}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.n, self.correct_old = int(state["n"]), int(state["correct_old"])
        self.correct_new, self.negative_flips = (
            int(state["correct_new"]),
            int(state["negative_flips"]),
        )
        self.error_old, self.error_new = float(state["error_old"]), float(state["error_new"])
        self.finite_new = bool(state["finite_new"])

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
        new = np.asarray(new, dtype=np.float64)
        self.finite_new = self.finite_new and bool(np.isfinite(new).all())
        if self.tolerance is not None:
            self.error_old += float(np.abs(np.asarray(old, dtype=np.float64) - y).sum())
            self.error_new += float(np.abs(new - y).sum())

    def ready(self) -> bool:
        """Enough evidence for a decision."""
        return self.n >= self.window

    def decide(self) -> GateDecision:
        """Decide on the evidence so far and reset it."""
        n = max(self.n, 1)
        acc_old, acc_new = self.correct_old / n, self.correct_new / n
        nfr = self.negative_flips / n
        regression = self.tolerance is not None
        mae_old = self.error_old / n if regression else None
        mae_new = self.error_new / n if regression else None
        if not self.finite_new or (regression and not np.isfinite(mae_new)):
            promote, reason = False, "the candidate predicts non-finite values"
        elif regression and not mae_new <= mae_old - self.min_gain:
            promote, reason = (
                False,
                f"mean absolute error would rise: {mae_old:.4g} -> {mae_new:.4g}",
            )
        elif not regression and self.correct_old == 0 and self.correct_new == 0:
            promote, reason = False, "no evidence: neither model was right once (0 = 0)"
        elif not regression and acc_new < acc_old + self.min_gain:
            promote, reason = False, f"accuracy would fall: {acc_old:.4f} -> {acc_new:.4f}"
        elif nfr > self.max_nfr:
            promote, reason = False, f"negative flip rate {nfr:.4f} > {self.max_nfr:.4f}"
        else:
            kept = "error" if regression else "accuracy"
            promote, reason = True, f"{kept} kept and negative flips under the threshold"
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
            mae_old,
            mae_new,
        )
        self.reset()
        return decision
