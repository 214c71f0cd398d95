"""Naive forecasts, the baselines a network operator tries before any learned model.

Rows follow the series layout of the liquid learners (:mod:`adaptloop.learners.models.liquid`)
and of the ``linkload`` stream: ``seq_len`` values of one series, oldest first, then any extra
features; the target is the next value.

- :class:`Persistence` (``"persistence"``): next value = last value, ``X[:, seq_len - 1]``.
- :class:`SeasonalNaive` (``"seasonal_naive"``): next value = the value one season ago (same
  time yesterday, same time last week), from the targets it has learned, for the first period
  of ``periods`` whose value it holds; persistence while it holds none.
- :class:`EWMA` (``"ewma"``): the exponentially weighted moving average of the row's
  ``seq_len`` values, weight ``alpha (1 - alpha)^k`` on the value ``k`` steps before the last.

None of them fits a parameter, so none can be hurt by a drift the way a trained model is:
persistence lags one step behind a jump, the EWMA a few steps, the seasonal forecast one whole
season (it repeats the old regime until the new one is a period old).

>>> import numpy as np
>>> X = np.array([[1.0, 2.0, 4.0, 0.5]], dtype=np.float32)  # 3 series values + 1 feature
>>> Persistence(seq_len=3).predict(X), EWMA(seq_len=3, alpha=0.5).predict(X)
(array([4.], dtype=float32), array([3.], dtype=float32))
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from annotated_types import Gt, Le, MinLen

from adaptloop.learners.base import BaseLearner, StateRoles, registry
from adaptloop.validation import Count

__all__ = ["EWMA", "Persistence", "SeasonalNaive", "check_series_width"]


def check_series_width(X: np.ndarray, seq_len: int) -> np.ndarray:
    """``X`` if it has at least ``seq_len`` columns (the series values), else ``ValueError``."""
    if X.shape[1] < seq_len:
        raise ValueError(
            f"X has {X.shape[1]} features, expected at least seq_len={seq_len} "
            "(seq_len series values, oldest first, then any extra features)"
        )
    return X


class _Forecast(BaseLearner):
    """A regressor on series rows that fits nothing: no state unless a subclass keeps one."""

    seq_len: int

    def check_X(self, X: object) -> np.ndarray:
        return check_series_width(super().check_X(X), self.seq_len)

    def _learn(self, X: np.ndarray, y: np.ndarray) -> None:
        pass

    def _get_state(self) -> dict[str, Any]:
        return {}

    def _set_state(self, state: Any) -> None:
        if state != {}:
            raise ValueError(f"{type(self).__name__} has no state: expected {{}}")

    def state_roles(self) -> StateRoles:
        """Nothing to federate: nothing fitted."""
        return StateRoles()


@registry.register("persistence")
class Persistence(_Forecast):
    """The persistence forecast: predict the last series value, ``X[:, seq_len - 1]``.

    With the ``linkload`` stream's layout (``seq_len`` = its ``history``) that is the load one
    step ago. It learns nothing (``learn`` only validates), so it is the floor every
    forecaster should beat.

    >>> import numpy as np
    >>> model = Persistence(seq_len=3)
    >>> model.predict(np.array([[1.0, 2.0, 3.0, 0.5]], dtype=np.float32))
    array([3.], dtype=float32)
    """

    def __init__(self, seq_len: Count = 12) -> None:
        super().__init__(task="regression")
        self.seq_len = seq_len

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return X[:, self.seq_len - 1].astype(np.float32)


@registry.register("ewma")
class EWMA(_Forecast):
    """Exponentially weighted moving average of the row's last ``seq_len`` series values.

    Predicts ``sum_k w_k x_{t-1-k} / sum_k w_k`` with ``w_k = alpha (1 - alpha)^k``, ``k = 0 ..
    seq_len - 1`` (``x_{t-1}`` is ``X[:, seq_len - 1]``). Deviation from the recursive EWMA
    ``s_t = alpha x_t + (1 - alpha) s_{t-1}``: the average is truncated to the row's window and
    renormalised, so it needs no state and is exact for any batch size and label delay; the
    weight left out is ``(1 - alpha)^seq_len`` (1.4 % at ``alpha=0.3``, ``seq_len=12``).
    ``alpha=1`` is persistence.

    >>> import numpy as np
    >>> EWMA(seq_len=2, alpha=1.0).predict(np.array([[5.0, 7.0]], dtype=np.float32))
    array([7.], dtype=float32)
    """

    def __init__(self, seq_len: Count = 12, alpha: Annotated[float, Gt(0), Le(1)] = 0.3) -> None:
        super().__init__(task="regression")
        self.seq_len = seq_len
        self.alpha = alpha
        weights = alpha * (1 - alpha) ** np.arange(seq_len)[::-1]  # oldest value first
        self._weights = weights / weights.sum()

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return (X[:, : self.seq_len].astype(np.float64) @ self._weights).astype(np.float32)


@registry.register("seasonal_naive")
class SeasonalNaive(_Forecast):
    """The seasonal naive forecast: the value one period ago, ``y_{t - p}``.

    ``periods`` (in steps) are tried in order: the first whose value the learner holds is used,
    so ``(2016, 288)`` at 5-minute steps is "same time last week where the history allows,
    else same time yesterday"; with none, it predicts the last value (persistence). The values
    are the targets it has learned, the last ``max(periods)`` kept. Row ``i`` of a predicted
    batch is taken to be the ``i``-th sample after the last one learned: the test-then-train
    order without label delay (with a delay of ``d`` samples every look-up is ``d`` steps
    late); a row whose period-old value is in the same batch, not yet learned, falls back to
    the next period.

    >>> import numpy as np
    >>> model = SeasonalNaive(seq_len=1, periods=(4, 2))
    >>> X = np.zeros((1, 1), dtype=np.float32)
    >>> model.predict(X)  # nothing learned: persistence
    array([0.], dtype=float32)
    >>> model.learn(np.zeros((3, 1)), np.array([1.0, 2.0, 3.0], dtype=np.float32))
    >>> model.predict(X)  # sample 3: four steps ago is not held, two steps ago is y_1
    array([2.], dtype=float32)
    """

    def __init__(
        self, seq_len: Count = 12, periods: Annotated[tuple[Count, ...], MinLen(1)] = (288,)
    ) -> None:
        super().__init__(task="regression")
        self.seq_len = seq_len
        self.periods = tuple(periods)
        self._history = np.zeros(0, dtype=np.float32)

    def _learn(self, X: np.ndarray, y: np.ndarray) -> None:
        self._history = np.concatenate([self._history, y])[-max(self.periods) :]

    def _predict(self, X: np.ndarray) -> np.ndarray:
        out = X[:, self.seq_len - 1].astype(np.float32)
        held = len(self._history)
        done = np.zeros(len(X), dtype=bool)
        rows = np.arange(len(X))
        for period in self.periods:
            back = period - rows  # how far before the first predicted row
            use = ~done & (back >= 1) & (back <= held)
            out[use] = self._history[held - back[use]]
            done |= use
        return out

    def _get_state(self) -> dict[str, Any]:
        return {"history": self._history.copy()}

    def _set_state(self, state: Any) -> None:
        if not isinstance(state, dict) or set(state) != {"history"}:
            raise ValueError("state of SeasonalNaive must be a dict with key 'history'")
        self._history = np.asarray(state["history"], dtype=np.float32)[-max(self.periods) :]
