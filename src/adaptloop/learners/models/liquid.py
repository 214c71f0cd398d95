"""Liquid time-constant networks (``ncps``) and their recurrent and naive peers, as regressors.

The learners of Ayoub, Andreoletti et al. (2024), "Liquid Neural Network-based Adaptive Learning
vs. Incremental Learning for Link Load Prediction amid Concept Drift due to Network Failures":

- :class:`LTCRegressor` (``"ltc"``) wraps ``ncps.torch.LTC``, a liquid time-constant network
  (Hasani et al. 2021) whose neurons follow
  ``dx/dt = -[1/tau + f(x, I; theta)] x + f(x, I; theta) A``: the effective time constant
  ``tau / (1 + tau f(x, I; theta))`` depends on the input, so the dynamics adapt to the
  input they see even with fixed weights. ncps integrates it with its fused semi-implicit
  Euler solver (``ode_unfolds=6`` unfolds per input step).
- :class:`CfCRegressor` (``"cfc"``) wraps ``ncps.torch.CfC``, the closed-form continuous-time
  network (Hasani et al. 2022) that replaces the ODE solve by the closed-form approximation
  ``x(t) = sigma(-f(x, I; theta_f) t) * g(x, I; theta_g) + [1 - sigma(-f(x, I; theta_f) t)]
  * h(x, I; theta_h)`` (their Eq. 10): the same input-dependent time constant, much faster.
- :class:`LSTMRegressor` (``"lstm"``): a ``torch.nn.LSTM`` with the same interface, for the
  incremental reference ``WindowRetrain(LSTMRegressor(...))``.

The naive forecasts beside them (persistence, seasonal naive, EWMA) are in
:mod:`adaptloop.learners.models.forecast`.

Input layout. A row of ``X`` is ``seq_len`` values of one series, oldest first, followed by
``d - seq_len`` extra features (e.g. the time-of-day encoding of the ``linkload`` stream). It is
reshaped into a sequence of shape ``(seq_len, 1 + d - seq_len)``: step ``j`` sees the series
value ``X[:, j]`` and the extra features, repeated at every step. ``X`` must have at least
``seq_len`` columns (``ValueError`` otherwise). The last hidden state goes through a linear
head to one output.

Level normalisation. ``normalize="ratio"`` divides the series values of a row and its target
by the row's last series value ``X[:, seq_len - 1]`` (which must be positive) and multiplies the
prediction back: the network sees the *shape* of the recent window, not its level, so a
re-routing that doubles a link's load does not push its inputs out of the range it was trained
on (the idea of instance normalisation, e.g. RevIN, Kim et al. ICLR 2022, here with the last
value as the reference). ``"difference"`` subtracts the last value instead (any sign);
``"none"`` (default) feeds the values as they are.

Training. Each ``learn`` call runs ``epochs`` passes of Adam (or SGD, Muon, Drop-Muon over two
blocks: the recurrent layer, then the head) over the batch, in mini-batches of ``batch_size``,
on the squared error, at a rate that follows ``schedule`` (constant when ``None``; the frozen
mode's warm-up epochs are one fit); inputs are standardised online (the machinery of every
torch learner, :mod:`adaptloop.learners.models.torch_core`).
``mode="online"`` keeps updating on every batch. ``mode="frozen"`` learns the first ``warmup``
samples as they come, keeps them, and when the warm-up is complete trains ``warmup_epochs``
more passes over all of them in shuffled mini-batches (``batch_size``, 32 when ``None``) -- the
paper's training on pre-failure data -- and then stops: ``learn`` still validates and counts
(``n_seen_``) but changes no weight, optimiser state or scaler; what is left to adapt is the
network's own input-dependent dynamics, the paper's "pure self-adaptation" setting.

Where we deviate from the paper: fully connected ncps wirings (``units`` neurons, not sparse
NCP wirings), unit time spans between input steps, a linear read-out of the last state,
online input standardisation, the optional level normalisation above, and a warm-up that is
first learned test-then-train (so the model predicts during it) before its offline epochs.

Weights are drawn under ``torch.random.fork_rng()`` seeded with ``seed`` (ncps takes no
generator), so the global torch random state is left as it was; PyTorch is imported only when a
network is built.

>>> import numpy as np
>>> t = np.arange(600)
>>> series = np.sin(2 * np.pi * t / 50).astype(np.float32)
>>> X = np.lib.stride_tricks.sliding_window_view(series[:-1], 8)  # last 8 values
>>> y = series[8:]
>>> model = CfCRegressor(units=8, seq_len=8, lr=0.01, epochs=3, batch_size=32, seed=0)
>>> for start in range(0, 500, 50):
...     model.learn(X[start : start + 50], y[start : start + 50])
>>> bool(np.sqrt(np.mean((model.predict(X[500:]) - y[500:]) ** 2)) < 0.2)
True
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from adaptloop.learners.base import BaseLearner, registry
from adaptloop.learners.models.forecast import check_series_width
from adaptloop.learners.models.torch_core import (
    SquaredErrorLoss,
    TorchLearner,
    import_torch,
    train_epochs,
    trains,
)
from adaptloop.learners.sample_window import SampleWindow
from adaptloop.parameters import declared
from adaptloop.validation import Count, NonNegativeInt

__all__ = ["CfCRegressor", "LSTMRegressor", "LTCRegressor"]

Mode = Literal["online", "frozen"]
Normalize = Literal["none", "ratio", "difference"]


def _sequence_module(kind: str, n_inputs: int, units: int, seq_len: int) -> Any:
    """``(n, d)`` rows -> ``(n, seq_len, n_inputs)`` sequences -> recurrent net -> ``(n, 1)``."""
    torch = import_torch()

    class SequenceNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            if kind == "cfc":
                from ncps.torch import CfC

                self.rnn = CfC(n_inputs, units, return_sequences=False)
            elif kind == "ltc":
                from ncps.torch import LTC

                self.rnn = LTC(n_inputs, units, return_sequences=False)
            else:
                self.rnn = torch.nn.LSTM(n_inputs, units, batch_first=True)
            self.head = torch.nn.Linear(units, 1)

        def forward(self, x: Any) -> Any:
            series = x[:, :seq_len, None]
            extra = x[:, None, seq_len:].expand(-1, seq_len, -1)
            out = self.rnn(torch.cat([series, extra], dim=2))[0]
            return self.head(out[:, -1] if kind == "lstm" else out)

    return SequenceNet()


@declared
@trains(lr=0.005)
class _SequenceRegressor(SquaredErrorLoss, TorchLearner, BaseLearner):
    """The shared recurrent regressor: a sequence net, trained as every torch learner."""

    _kind = ""
    _local_state = ("optimizer", "rng", "n_seen")
    _STATE = TorchLearner._STATE | {"n_seen", "warm"}

    def __init__(
        self,
        units: Count = 16,
        seq_len: Count = 12,
        mode: Mode = "online",
        warmup: NonNegativeInt = 1000,
        warmup_epochs: NonNegativeInt = 10,
        normalize: Normalize = "none",
        **training: Any,
    ) -> None:
        super().__init__(task="regression")
        self.units = units
        self.seq_len = seq_len
        self.mode = mode
        self.warmup = warmup
        self.warmup_epochs = warmup_epochs
        self.normalize = normalize
        self._init_training(training)
        self.n_seen_ = 0
        self._warm = SampleWindow(max(self.warmup, 1))  # frozen mode: the warm-up samples

    @property
    def frozen(self) -> bool:
        """Whether learning has stopped (frozen mode, ``warmup`` samples learned)."""
        return self.mode == "frozen" and self.n_seen_ >= self.warmup

    def check_X(self, X: object) -> np.ndarray:
        X = check_series_width(super().check_X(X), self.seq_len)
        if self.normalize == "ratio":
            bad = np.flatnonzero(X[:, self.seq_len - 1] <= 0)
            if bad.size:
                raise ValueError(
                    f"normalize='ratio' divides by the last series value X[:, {self.seq_len - 1}]"
                    f", which must be > 0; row {bad[0]} has {X[bad[0], self.seq_len - 1]!r}"
                )
        return X

    def _relative(self, X: np.ndarray, y: np.ndarray | None = None) -> tuple[Any, Any]:
        """Rows (and targets) relative to each row's last series value (see ``normalize``)."""
        if self.normalize == "none":
            return X, y
        ref = X[:, self.seq_len - 1 : self.seq_len].astype(np.float64)
        Xr = X.astype(np.float64)
        if self.normalize == "ratio":
            Xr[:, : self.seq_len] /= ref
            yr = None if y is None else y / ref[:, 0]
        else:
            Xr[:, : self.seq_len] -= ref
            yr = None if y is None else y - ref[:, 0]
        return Xr.astype(np.float32), None if yr is None else yr.astype(np.float32)

    def _absolute(self, out: np.ndarray, X: np.ndarray) -> np.ndarray:
        ref = X[:, self.seq_len - 1].astype(np.float64)
        if self.normalize == "ratio":
            return out * ref
        return out + ref if self.normalize == "difference" else out

    def _network(self, d: int) -> tuple[Any, list[Any]]:
        torch = import_torch()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.seed))
            net = _sequence_module(self._kind, 1 + d - self.seq_len, self.units, self.seq_len)
        net.eval()
        return net, [net.rnn, net.head]  # Drop-Muon's blocks: the recurrent layer, the head

    def inputs(self, X: np.ndarray) -> Any:
        """Checked rows (relative, see ``normalize``) as the float32 tensor the network takes
        (standardised)."""
        return import_torch().from_numpy(self._standardised(X))

    def _n_features(self, model: dict[str, Any], scaler: dict[str, Any]) -> int:
        return len(scaler["mean"])

    def _predict(self, X: np.ndarray) -> np.ndarray:
        if self._net is None:
            return np.zeros(X.shape[0], dtype=np.float32)
        with import_torch().no_grad():
            out = self._net(self.inputs(self._relative(X)[0]))[:, 0].numpy().astype(np.float64)
        return self._absolute(out, X).astype(np.float32)

    def _learn(self, X: np.ndarray, y: np.ndarray) -> None:
        X, y = self._relative(X, y)
        if self.mode == "online":
            super()._learn(X, y)
        else:
            k = max(0, min(len(X), self.warmup - self.n_seen_))
            if k > 0:
                super()._learn(X[:k], y[:k])
                if self.warmup_epochs:
                    self._warm.extend(X[:k], y[:k])
                if self.n_seen_ + k >= self.warmup and self.warmup_epochs:
                    self._fit_warmup()
        self.n_seen_ += len(X)

    def _fit_warmup(self) -> None:
        """``warmup_epochs`` shuffled passes over the kept warm-up samples, then drop them.

        The loop is ``learn``'s without its scaler update: the scaler has already seen these
        samples, once each."""
        X, y = self._warm.get()
        size = min(self.batch_size or 32, len(X))
        self._trainer.begin_call(self.warmup_epochs * -(-len(X) // size))
        inputs, target = self.inputs(X), self.targets(y)
        train_epochs(self, inputs, target, self.warmup_epochs, size, shuffle=True)
        self._warm = SampleWindow(max(self.warmup, 1))

    def _get_state(self) -> dict[str, Any]:
        return {**super()._get_state(), "n_seen": self.n_seen_, "warm": self._warm.state()}

    def _set_state(self, state: Any) -> None:
        if not isinstance(state, dict) or set(state) != self._STATE:
            name = type(self).__name__
            raise ValueError(f"state of {name} must be a dict with keys {sorted(self._STATE)}")
        warm = SampleWindow.from_state(max(self.warmup, 1), state["warm"])
        super()._set_state(state)
        self._warm = warm
        self.n_seen_ = int(state["n_seen"])


@registry.register("cfc")
class CfCRegressor(_SequenceRegressor):
    """A closed-form continuous-time (CfC) network, ``ncps.torch.CfC``, as a regressor.

    Parameters: ``units`` (neurons); ``seq_len`` (series values per row, see the module doc);
    ``mode`` (``"online"`` or ``"frozen"``); ``warmup`` (samples learned before freezing,
    frozen mode only); ``warmup_epochs`` (passes over the warm-up samples when it completes);
    ``normalize`` (``"none"``, ``"ratio"`` or ``"difference"``: inputs relative to the last
    series value, see the module doc); the training parameters of
    :func:`~adaptloop.learners.models.torch_core.training_parameters` (``lr`` 0.005 by default).
    Predicts 0.0 before the first ``learn``.

    >>> import numpy as np
    >>> model = CfCRegressor(units=4, seq_len=3, mode="frozen", warmup=2)
    >>> X = np.ones((4, 5), dtype=np.float32)  # 3 series values + 2 extra features
    >>> model.learn(X, np.ones(4, dtype=np.float32))  # learns the first 2 samples only
    >>> model.n_seen_, model.frozen, model.predict(X[:1]).shape
    (4, True, (1,))
    >>> model.predict(X[:, :2])
    Traceback (most recent call last):
    ...
    ValueError: X has 2 features, expected 5
    """

    _kind = "cfc"


@registry.register("ltc")
class LTCRegressor(_SequenceRegressor):
    """A liquid time-constant (LTC) network, ``ncps.torch.LTC``, as a regressor.

    Same parameters as :class:`CfCRegressor`. Slower than CfC (an ODE solve of 6 unfolds per
    input step) and usually wants a larger ``lr`` (its parameters live on wider scales).

    >>> import numpy as np
    >>> model = LTCRegressor(units=4, seq_len=2, lr=0.02, epochs=5)
    >>> X = np.array([[0.0, 0.1], [0.5, 0.6], [0.2, 0.3]], dtype=np.float32)
    >>> model.learn(X, np.array([0.2, 0.7, 0.4], dtype=np.float32))
    >>> model.predict(X).dtype
    dtype('float32')
    """

    _kind = "ltc"


@registry.register("lstm")
class LSTMRegressor(_SequenceRegressor):
    """An LSTM (``torch.nn.LSTM``, one layer of ``units``) with the liquid learners' interface.

    The incremental reference of the paper wraps it: ``WindowRetrain(LSTMRegressor(...))``.

    >>> import numpy as np
    >>> from adaptloop.learners import WindowRetrain
    >>> model = WindowRetrain(LSTMRegressor(units=4, seq_len=2), window=50, every=25)
    >>> X = np.random.default_rng(0).random((60, 2)).astype(np.float32)
    >>> model.learn(X[:30], X[:30, 1])  # crosses 25: re-fit a fresh LSTM on the window
    >>> model.learn(X[30:], X[30:, 1])  # crosses 50: again
    >>> model.n_refits_
    2
    """

    _kind = "lstm"
