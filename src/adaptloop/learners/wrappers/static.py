"""``Static``: the "static (trained once)" baseline — learn from the first samples, then freeze.

>>> import numpy as np
>>> from adaptloop.learners.wrappers.static import Static
>>> from adaptloop.learners.models.majority import MajorityClass
>>> model = Static(MajorityClass(), n_train=2)
>>> X = np.zeros((3, 1), dtype=np.float32)
>>> model.learn(X, np.array([1, 1, 0]))  # learns the first 2 samples only
>>> model.learn(X, np.array([0, 0, 0]))  # frozen: ignored (but still validated)
>>> model.n_learned_, model.predict(X[:1])
(2, array([1]))
"""

from __future__ import annotations

from typing import Any

import numpy as np

from adaptloop.learners.base import Learner, Sequential, registry
from adaptloop.learners.wrappers.base import Wrapper
from adaptloop.validation import Count

__all__ = ["Static"]


@registry.register("static")
class Static(Wrapper):
    """Learn from the first ``n_train`` samples of the stream only, then stay frozen.

    A batch that crosses ``n_train`` is cut: its first samples are learned, the rest are not.
    After that ``learn`` still validates its input (a bad batch raises ``ValueError``) but
    changes nothing, so the state is frozen. ``alarms`` is the base's, else ``[]``.

    >>> import numpy as np
    >>> from adaptloop.learners.models.majority import MajorityClass
    >>> model = Static(MajorityClass(), n_train=3)
    >>> model.learn(np.zeros((5, 1), dtype=np.float32), np.array([0, 0, 1, 1, 1]))
    >>> model.frozen, model.predict(np.zeros((1, 1), dtype=np.float32))
    (True, array([0]))
    >>> model.learn(np.zeros((1, 2), dtype=np.float32), np.array([0]))
    Traceback (most recent call last):
    ...
    ValueError: X has 2 features, expected 1
    """

    def __init__(self, base: Learner, n_train: Count = 1000) -> None:
        self.n_train = n_train
        super().__init__(base)
        self.n_learned_ = 0

    @property
    def frozen(self) -> bool:
        """Whether ``n_train`` samples have been learned (``learn`` is now a no-op)."""
        return self.n_learned_ >= self.n_train

    def _learn(self, X: np.ndarray, y: np.ndarray) -> None:
        k = min(len(X), self.n_train - self.n_learned_)
        if k <= 0:
            return
        self.model_.learn(X[:k], y[:k])
        self.n_learned_ += k

    def _sequential(self) -> bool:
        return isinstance(self.model_, Sequential)

    def _test_then_train(
        self, X: np.ndarray, X_learn: np.ndarray, y_learn: np.ndarray, at: np.ndarray, proba: bool
    ) -> np.ndarray:
        k = max(0, min(len(X_learn), self.n_train - self.n_learned_))
        p = int(at[k]) if k < len(X_learn) else len(X)  # the predictions before it freezes
        learning = self._served(X[:p], X_learn[:k], y_learn[:k], at[:k], proba)
        self.n_learned_ += k
        return np.concatenate([learning, self._served(X[p:], proba=proba)])

    def _get_state(self) -> dict[str, Any]:
        return {"model": self.model_.state_dict(), "n_learned": self.n_learned_}

    def _set_state(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or "n_learned" not in state:
            raise ValueError("Static state needs keys model, n_learned")
        model = self._new_model(state)
        self.model_, self.n_learned_ = model, int(state["n_learned"])
