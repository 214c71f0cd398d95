"""``CTRClassifier``: a small DCN-v2-style click-through-rate model in PyTorch.

Categorical columns (integer codes stored in float32 ``X``, as the click stream yields) are
embedded; numeric columns are standardised online and appended. Following DCN-v2 (Wang et
al., WWW 2021, "DCN V2", Eq. 1, the parallel structure of Fig. 1b), the input ``x0`` goes
through ``n_cross`` cross layers ``x_{l+1} = x0 * (W_l x_l + b_l) + x_l`` (full-rank ``W_l``,
no low-rank mixture) and, in parallel, through a ReLU MLP; both outputs are concatenated
(the *hidden representation*, what ``ErrorMemory`` keys on) and a linear layer gives the
class logits, trained with cross-entropy and Adam (or SGD, Muon, Drop-Muon) at a rate that
follows ``schedule``, as the MLP learners. Drop-Muon's blocks, in forward order: the
embeddings, the cross and deep layers (parallel, so one block), the head.

Codes are taken modulo ``vocab_size`` (the hashing trick: unseen codes need no vocabulary
update; distinct codes may share an embedding row). PyTorch is imported on the first
``learn``; weights come from ``seed`` without touching the global random state.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = np.column_stack([rng.integers(0, 20, 2000), rng.integers(0, 5, 2000)]).astype(np.float32)
>>> y = ((X[:, 0] % 2 == 0) ^ (X[:, 1] == 3)).astype(np.int64)  # an interaction of two fields
>>> model = CTRClassifier(embedding_dim=4, hidden=(16,), lr=0.02, epochs=5, batch_size=64)
>>> model.learn(X, y)
>>> float((model.predict(X) == y).mean()) > 0.95
True
>>> model.hidden_representation(X[:2]).shape  # 2 fields x 4 + 16 (cross + deep outputs)
(2, 24)
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from adaptloop.learners.base import BaseClassifier, registry
from adaptloop.learners.mlp import Optimizer, Schedule, _check_params, _torch
from adaptloop.learners.optimizers import make_optimizer
from adaptloop.learners.schedules import make_schedule
from adaptloop.learners.training import TrainedLearner, Trainer

__all__ = ["CTRClassifier"]


def _network(torch: Any, n_fields: int, n_numeric: int, params: CTRClassifier) -> Any:
    """The DCN-v2 module (a class built on demand, so torch is imported lazily)."""
    nn = torch.nn

    class DCN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embeddings = nn.ModuleList(
                nn.Embedding(params.vocab_size, params.embedding_dim) for _ in range(n_fields)
            )
            width = n_fields * params.embedding_dim + n_numeric
            self.cross = nn.ModuleList(nn.Linear(width, width) for _ in range(params.n_cross))
            layers: list[Any] = []
            deep_in = width
            for h in params.hidden:
                layers += [nn.Linear(deep_in, h), nn.ReLU()]
                deep_in = h
            self.deep = nn.Sequential(*layers)
            self.head = nn.Linear(width + deep_in, params.n_classes)

        def hidden(self, codes: Any, numeric: Any) -> Any:
            parts = [emb(codes[:, i]) for i, emb in enumerate(self.embeddings)]
            x0 = torch.cat([*parts, numeric], dim=1)
            x = x0
            for layer in self.cross:
                x = x0 * layer(x) + x
            return torch.cat([x, self.deep(x0)], dim=1)

        def forward(self, codes: Any, numeric: Any) -> Any:
            return self.head(self.hidden(codes, numeric))

    with torch.random.fork_rng(devices=[]):  # seeded init; the global state is restored after
        torch.manual_seed(int(params.seed))
        net = DCN()
        for emb in net.embeddings:  # DCN/DeepFM practice: small embeddings at the start
            nn.init.normal_(emb.weight, std=0.01)
    return net


@registry.register("ctr")
class CTRClassifier(TrainedLearner, BaseClassifier):
    """A DCN-v2-style CTR classifier: embeddings, cross layers and an MLP (see the module doc).

    Parameters: ``n_classes``; ``categorical`` (column indices of the categorical fields,
    ``None``: every column); ``vocab_size`` (embedding rows per field; codes modulo it);
    ``embedding_dim``; ``n_cross`` (cross layers); ``hidden`` (widths of the MLP); ``lr``,
    ``epochs``, ``batch_size``, ``weight_decay``, ``optimizer``, ``standardize`` (numeric
    columns), ``seed`` and ``schedule`` as :class:`~adaptloop.learners.mlp.MLPClassifier`.
    Categorical columns must hold non-negative integer codes (``ValueError`` otherwise).
    Uniform probabilities before the first ``learn``.

    >>> import numpy as np
    >>> model = CTRClassifier(categorical=(0,))
    >>> model.learn(np.array([[1.5, 0.0]], dtype=np.float32), np.array([1]))
    Traceback (most recent call last):
    ...
    ValueError: X column 0 is categorical: it must hold non-negative integer codes, got 1.5
    """

    def __init__(
        self,
        n_classes: int = 2,
        categorical: tuple[int, ...] | None = None,
        vocab_size: int = 4096,
        embedding_dim: int = 8,
        n_cross: int = 2,
        hidden: tuple[int, ...] = (64, 32),
        lr: float = 0.01,
        epochs: int = 1,
        batch_size: int | None = None,
        weight_decay: float = 0.0,
        optimizer: Optimizer = "adam",
        standardize: bool = True,
        seed: int = 0,
        schedule: Schedule = None,
    ) -> None:
        hidden = _check_params(
            hidden, lr, epochs, batch_size, weight_decay, optimizer, standardize, seed, schedule
        )
        super().__init__(task="binary" if n_classes == 2 else "multiclass", n_classes=n_classes)

        def is_count(value: object, low: int) -> bool:
            return (
                isinstance(value, (int, np.integer))
                and not isinstance(value, bool)
                and value >= low
            )

        if categorical is not None:
            if not isinstance(categorical, (tuple, list)) or not all(
                is_count(c, 0) for c in categorical
            ):
                raise ValueError(
                    f"categorical must be None or a tuple of column indices, got {categorical!r}"
                )
            if len(set(categorical)) != len(categorical):
                raise ValueError(f"categorical lists a column twice: {categorical!r}")
            categorical = tuple(int(c) for c in categorical)
        for name, value in (("vocab_size", vocab_size), ("embedding_dim", embedding_dim)):
            if not is_count(value, 1):
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not is_count(n_cross, 0):
            raise ValueError(f"n_cross must be an integer >= 0, got {n_cross!r}")
        self.categorical = categorical
        self.vocab_size = int(vocab_size)
        self.embedding_dim = int(embedding_dim)
        self.n_cross = int(n_cross)
        self.hidden = hidden
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.optimizer = copy.deepcopy(optimizer)
        self.schedule = copy.deepcopy(schedule)
        self.standardize = standardize
        self.seed = seed
        self._reset()

    def _reset(self) -> None:
        self._net: Any = None
        self._trainer: Trainer | None = None
        self._plan = None
        self._count = 0
        self._mean: np.ndarray | None = None
        self._m2: np.ndarray | None = None
        self._rng = np.random.default_rng(self.seed)

    # -- input ----------------------------------------------------------------------------------
    def _columns(self, d: int) -> tuple[list[int], list[int]]:
        cat = list(range(d)) if self.categorical is None else list(self.categorical)
        return cat, [j for j in range(d) if j not in cat]

    def check_X(self, X: object) -> np.ndarray:
        X = super().check_X(X)
        cat, _ = self._columns(X.shape[1])
        if cat and max(cat) >= X.shape[1]:
            raise ValueError(f"categorical column {max(cat)} does not exist: X has {X.shape[1]}")
        codes = X[:, cat]
        bad = (codes < 0) | (codes != np.floor(codes))
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise ValueError(
                f"X column {cat[j]} is categorical: it must hold non-negative integer codes, "
                f"got {X[i, cat[j]]:g}"
            )
        return X

    def inputs(self, X: np.ndarray) -> tuple[Any, Any]:
        """Checked features as the network's two inputs: the categorical codes (int64, modulo
        ``vocab_size``) and the standardised numeric columns (float32)."""
        torch = _torch()
        cat, num = self._columns(X.shape[1])
        codes = torch.from_numpy(X[:, cat].astype(np.int64) % self.vocab_size)
        numeric = X[:, num].astype(np.float64)
        if self.standardize and num:
            std = np.sqrt(self._m2 / max(self._count, 1))
            inv = np.divide(1.0, std, out=np.zeros_like(std), where=std > 0)
            numeric = (numeric - self._mean) * inv
        return codes, torch.from_numpy(numeric.astype(np.float32))

    def _update_scaler(self, X: np.ndarray) -> None:
        _, num = self._columns(X.shape[1])
        values = X[:, num].astype(np.float64)
        n, total = len(values), self._count + len(values)
        batch_mean = values.mean(axis=0)
        delta = batch_mean - self._mean
        self._mean = self._mean + delta * (n / total)
        self._m2 = self._m2 + ((values - batch_mean) ** 2).sum(axis=0)
        self._m2 = self._m2 + delta**2 * (self._count * n / total)
        self._count = total

    # -- learning ---------------------------------------------------------------------------------
    def _build(self, d: int) -> None:
        torch = _torch()
        cat, num = self._columns(d)
        net = self._net = _network(torch, len(cat), len(num), self)
        blocks = [net.embeddings, torch.nn.ModuleList([net.cross, net.deep]), net.head]
        self._trainer = Trainer(
            net,
            blocks,
            make_optimizer(self.optimizer),
            make_schedule(self.schedule),
            float(self.lr),
            float(self.weight_decay),
            int(self.seed),
        )
        self._count, self._mean, self._m2 = 0, np.zeros(len(num)), np.zeros(len(num))

    def forward(self, inputs: tuple[Any, Any]) -> Any:
        """The logits of :meth:`inputs`' codes and numeric columns, with gradients."""
        return self._net(*inputs)

    def targets(self, y: np.ndarray) -> Any:
        """Class codes as an int64 tensor."""
        return _torch().from_numpy(np.asarray(y, dtype=np.int64))

    def loss(self, output: Any, target: Any) -> Any:
        """Cross-entropy of the logits."""
        return _torch().nn.functional.cross_entropy(output, target)

    def _predict_proba(self, X: np.ndarray) -> np.ndarray:
        if self._net is None:
            return np.full((len(X), self._n_classes), 1.0 / self._n_classes)
        torch = _torch()
        with torch.no_grad():
            return self._net(*self.inputs(X)).double().softmax(dim=1).numpy()

    def hidden_representation(self, X: np.ndarray) -> np.ndarray:
        """The concatenated cross and deep outputs, float32 ``(n, width + hidden[-1])``.

        ``width`` is ``n_categorical * embedding_dim + n_numeric``. Zeros before the first
        ``learn``. Input is checked like ``predict``'s.
        """
        X = self.check_X(X)
        cat, num = self._columns(X.shape[1])
        width = len(cat) * self.embedding_dim + len(num)
        size = width + (self.hidden[-1] if self.hidden else width)
        if self._net is None:
            return np.zeros((len(X), size), dtype=np.float32)
        torch = _torch()
        with torch.no_grad():
            return self._net.hidden(*self.inputs(X)).numpy().astype(np.float32, copy=False)

    # -- state -------------------------------------------------------------------------------------
    def _get_state(self) -> dict[str, Any]:
        rng = copy.deepcopy(self._rng.bit_generator.state)
        if self._net is None:
            return {"model": None, "optimizer": None, "scaler": None, "rng": rng}
        return {
            "model": {k: v.detach().clone() for k, v in self._net.state_dict().items()},
            "optimizer": self._trainer.state(),
            "scaler": {"count": self._count, "mean": self._mean.copy(), "m2": self._m2.copy()},
            "rng": rng,
        }

    def _set_state(self, state: Any) -> None:
        keys = {"model", "optimizer", "scaler", "rng"}
        if not isinstance(state, dict) or set(state) != keys:
            raise ValueError(f"state of CTRClassifier must be a dict with keys {sorted(keys)}")
        rng = np.random.default_rng()
        rng.bit_generator.state = state["rng"]
        if state["model"] is None:
            self._reset()
            self._rng = rng
            return
        model = state["model"]
        n_fields = sum(1 for k in model if k.startswith("embeddings.") and k.endswith(".weight"))
        numeric = len(state["scaler"]["mean"])
        previous = (self._net, self._trainer, self._count, self._mean, self._m2)
        try:
            self._build(n_fields + numeric)
            self._net.load_state_dict(model)
            self._trainer.load(state["optimizer"])
        except (RuntimeError, KeyError, ValueError) as error:
            self._net, self._trainer, self._count, self._mean, self._m2 = previous
            raise ValueError(
                f"state of CTRClassifier does not fit this network ({error}); was it saved by a "
                "learner with other parameters?"
            ) from error
        scaler = state["scaler"]
        self._count = int(scaler["count"])
        self._mean = np.asarray(scaler["mean"], dtype=np.float64)
        self._m2 = np.asarray(scaler["m2"], dtype=np.float64)
        self._rng = rng
        self._net.eval()
