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

Categorical columns are named (``categorical``, by feature name as the stream names them, or
by index); only they are embedded, every other column is numeric. Codes are taken modulo
``vocab_size`` (the hashing trick: the table never needs to grow for codes that keep arriving,
as a file stream's growing vocabulary gives them; distinct codes may share an embedding row).
PyTorch is imported on the first ``learn``; weights come from ``seed`` without touching the
global random state.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = np.column_stack([rng.integers(0, 20, 2000), rng.integers(0, 5, 2000)]).astype(np.float32)
>>> y = ((X[:, 0] % 2 == 0) ^ (X[:, 1] == 3)).astype(np.int64)  # an interaction of two fields
>>> model = CTRClassifier(categorical=(0, 1), embedding_dim=4, hidden=(16,), lr=0.02, epochs=5,
...                       batch_size=64)
>>> model.learn(X, y)
>>> float((model.predict(X) == y).mean()) > 0.95
True
>>> model.hidden_representation(X[:2]).shape  # 2 fields x 4 + 16 (cross + deep outputs)
(2, 24)
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from annotated_types import Ge

from adaptloop.learners.base import BaseClassifier, registry
from adaptloop.learners.models.torch_core import (
    CrossEntropyLoss,
    Hidden,
    TorchLearner,
    import_torch,
    trains,
)
from adaptloop.parameters import ParameterError
from adaptloop.validation import Count, NonNegativeInt

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
@trains()
class CTRClassifier(CrossEntropyLoss, TorchLearner, BaseClassifier):
    """A DCN-v2-style CTR classifier: embeddings, cross layers and an MLP (see the module doc).

    Parameters: ``n_classes``; ``categorical`` (the categorical fields: feature names, read
    through ``feature_names``, or column indices; ``None``: none, every column is numeric;
    experiment files fill both in from the stream); ``vocab_size`` (embedding rows per field;
    codes modulo it);
    ``embedding_dim``; ``n_cross`` (cross layers); ``hidden`` (widths of the MLP); the
    training parameters of :func:`~adaptloop.learners.models.torch_core.training_parameters`
    (``standardize``: of the numeric columns).
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
        n_classes: Annotated[int, Ge(2)] = 2,
        categorical: tuple[str | NonNegativeInt, ...] | None = None,
        vocab_size: Count = 4096,
        embedding_dim: Count = 8,
        n_cross: NonNegativeInt = 2,
        hidden: Hidden = (64, 32),
        feature_names: tuple[str, ...] | None = None,
        **training: Any,
    ) -> None:
        super().__init__(task="binary" if n_classes == 2 else "multiclass", n_classes=n_classes)
        if categorical is not None and len(set(categorical)) != len(categorical):
            raise ParameterError(
                "CTRClassifier.categorical", f"lists a column twice: {categorical!r}"
            )
        self.categorical = None if categorical is None else tuple(categorical)
        self.feature_names = None if feature_names is None else tuple(feature_names)
        self._categorical = self._resolve()
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.n_cross = n_cross
        self.hidden = tuple(hidden)
        self._init_training(training)

    # -- input ----------------------------------------------------------------------------------
    def _resolve(self) -> list[int]:
        """The categorical columns' indices (names looked up in ``feature_names``)."""
        out = []
        for column in self.categorical or ():
            if isinstance(column, int):
                out.append(column)
            elif self.feature_names is None:
                raise ParameterError(
                    "CTRClassifier.categorical",
                    f"names column {column!r} but feature_names is not given",
                )
            elif column not in self.feature_names:
                raise ParameterError(
                    "CTRClassifier.categorical",
                    f"unknown column {column!r}; columns: {list(self.feature_names)}",
                )
            else:
                out.append(self.feature_names.index(column))
        return out

    def _columns(self, d: int) -> tuple[list[int], list[int]]:
        cat = self._categorical
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

    def _scaled(self, X: np.ndarray) -> np.ndarray:
        """The numeric columns (the scaler sees no codes)."""
        return X[:, self._columns(X.shape[1])[1]].astype(np.float64)

    def inputs(self, X: np.ndarray) -> tuple[Any, Any]:
        """Checked features as the network's two inputs: the categorical codes (int64, modulo
        ``vocab_size``) and the standardised numeric columns (float32)."""
        torch = import_torch()
        cat, _ = self._columns(X.shape[1])
        codes = torch.from_numpy(X[:, cat].astype(np.int64) % self.vocab_size)
        return codes, torch.from_numpy(self._standardised(self._scaled(X)))

    # -- learning ---------------------------------------------------------------------------------
    def _network(self, d: int) -> tuple[Any, list[Any]]:
        torch = import_torch()
        cat, num = self._columns(d)
        net = _network(torch, len(cat), len(num), self)
        return net, [net.embeddings, torch.nn.ModuleList([net.cross, net.deep]), net.head]

    def _n_features(self, model: dict[str, Any], scaler: dict[str, Any]) -> int:
        n_fields = sum(1 for k in model if k.startswith("embeddings.") and k.endswith(".weight"))
        return n_fields + len(scaler["mean"])

    def forward(self, inputs: tuple[Any, Any]) -> Any:
        """The logits of :meth:`inputs`' codes and numeric columns, with gradients."""
        return self._net(*inputs)

    def _predict_proba(self, X: np.ndarray) -> np.ndarray:
        if self._net is None:
            return np.full((len(X), self._n_classes), 1.0 / self._n_classes)
        with import_torch().no_grad():
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
        with import_torch().no_grad():
            return self._net.hidden(*self.inputs(X)).numpy().astype(np.float32, copy=False)
