"""``WindowRetrain``: periodic re-fit of a fresh model on the most recent window of samples.

>>> import numpy as np
>>> from adaptloop.learners.wrappers.window import WindowRetrain
>>> from adaptloop.learners.models.majority import MajorityClass
>>> model = WindowRetrain(MajorityClass(), window=4, every=3)
>>> model.learn(np.ones((5, 1), dtype=np.float32), np.array([0, 1, 1, 1, 1]))
>>> model.n_refits_, model.predict(np.ones((1, 1), dtype=np.float32))
(1, array([1]))
"""

from __future__ import annotations

from typing import Any

import numpy as np

from adaptloop.learners.base import Learner, Sequential, registry
from adaptloop.learners.sample_window import SampleWindow
from adaptloop.learners.wrappers.base import Wrapper
from adaptloop.validation import Count

__all__ = ["WindowRetrain"]


@registry.register("window_retrain")
class WindowRetrain(Wrapper):
    """Keep the last ``window`` samples; every ``every`` samples re-fit a fresh clone on them.

    This is the incremental-learning reference (periodic re-fit on the most recent window) of
    the liquid-network paper (Ayoub, Andreoletti et al. 2024): between re-fits the served model
    is used as is, without incremental updates; at each re-fit a fresh clone of ``base`` is
    trained for ``epochs`` passes over the window, oldest sample first, in mini-batches of
    ``fit_batch_size`` (``None``: the whole window in one ``learn`` call per epoch), and
    replaces the served model.

    Timing. Samples are counted across batch boundaries; a re-fit happens at the end of every
    batch during which the count reaches a multiple of ``every`` (so with batches that divide
    ``every``, exactly after samples ``every``, ``2 * every``, ...). A batch that crosses
    several multiples triggers one re-fit, at its end, on the window as it stands then.

    Warm-up. Before the first re-fit there is no re-fitted model yet; with ``warmup=True``
    (default) the served model learns incrementally from those first batches so that it is not
    empty; with ``warmup=False`` it stays unfitted until the first re-fit (the strict reference).

    ``alarms`` is the served model's (for a drift-detecting base such as ``DriftReset``),
    else ``[]``. Each re-fit starts a fresh base, so a nested base's alarms are those since the
    last re-fit, counted in the samples that base has learned (the window replay included).

    >>> import numpy as np
    >>> from adaptloop.learners.models.majority import MajorityClass
    >>> model = WindowRetrain(MajorityClass(), window=2, every=4, warmup=False)
    >>> X = np.zeros((3, 1), dtype=np.float32)
    >>> model.learn(X, np.array([1, 1, 1]))
    >>> model.n_refits_, model.predict(X[:1])  # unfitted until sample 4
    (0, array([0]))
    >>> model.learn(X, np.array([0, 1, 1]))  # crosses 4: re-fit on the last 2 samples
    >>> model.n_refits_, model.n_seen_, model.predict(X[:1])
    (1, 6, array([1]))
    """

    _local_state = ("n_seen",)

    def __init__(
        self,
        base: Learner,
        window: Count = 2000,
        every: Count = 1000,
        epochs: Count = 1,
        fit_batch_size: Count | None = 256,
        warmup: bool = True,
    ) -> None:
        self.window = window
        self.every = every
        self.epochs = epochs
        self.fit_batch_size = fit_batch_size
        self.warmup = warmup
        super().__init__(base)
        self.buffer_ = SampleWindow(self.window)
        self.n_seen_ = 0
        self.n_refits_ = 0

    def _learn(self, X: np.ndarray, y: np.ndarray) -> None:
        self.buffer_.extend(X, y)
        before = self.n_seen_
        self.n_seen_ += len(X)
        if self.n_seen_ // self.every > before // self.every:
            self.refit()
        elif self.warmup and self.n_refits_ == 0:
            self.model_.learn(X, y)

    def _sequential(self) -> bool:
        return isinstance(self.model_, Sequential)

    def _test_then_train(
        self, X: np.ndarray, X_learn: np.ndarray, y_learn: np.ndarray, at: np.ndarray, proba: bool
    ) -> np.ndarray:
        """Per sample, as ``learn`` on batches of one: a re-fit right after the sample that
        reaches a multiple of ``every``; in between the served model learns each sample
        (warm-up) or only predicts."""
        out, p0, j0, m = [], 0, 0, len(X_learn)
        while j0 < m:
            end = j0 + self.every - self.n_seen_ % self.every  # one past the re-fit's sample
            refit = end <= m
            stop, last = (end, end - 1) if refit else (m, m)  # the re-fit's sample: not learned
            p = int(at[end - 1]) if refit else len(X)
            if self.warmup and self.n_refits_ == 0:
                part = (X_learn[j0:last], y_learn[j0:last], at[j0:last] - p0)
                out.append(self._served(X[p0:p], *part, proba=proba))
            else:
                out.append(self._served(X[p0:p], proba=proba))
            self.buffer_.extend(X_learn[j0:stop], y_learn[j0:stop])
            self.n_seen_ += stop - j0
            if refit:
                self.refit()
            j0, p0 = stop, p
        if p0 < len(X) or not out:
            out.append(self._served(X[p0:], proba=proba))
        return np.concatenate(out)

    def refit(self) -> None:
        """Replace the served model by a fresh clone trained on the current window now."""
        Xw, yw = self.buffer_.get()
        self.model_ = self._fit_fresh(Xw, yw, self.epochs, self.fit_batch_size)
        self.n_refits_ += 1

    def _get_state(self) -> dict[str, Any]:
        return {
            "model": self.model_.state_dict(),
            "buffer": self.buffer_.state(),
            "n_seen": self.n_seen_,
            "n_refits": self.n_refits_,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or not {"buffer", "n_seen", "n_refits"} <= set(state):
            raise ValueError("WindowRetrain state needs keys model, buffer, n_seen, n_refits")
        buffer = SampleWindow.from_state(self.window, state["buffer"])
        model = self._new_model(state)
        self.model_, self.buffer_ = model, buffer
        self.n_seen_, self.n_refits_ = int(state["n_seen"]), int(state["n_refits"])
