"""EvolveGCN (Pareja et al., AAAI 2020): graph convolutional networks whose weights evolve over
a sequence of graph snapshots through a recurrent cell, as learners on graph streams.

Rows and snapshots. A row is one edge: ``[f_1 .. f_F, src, dst]`` -- edge features, then the
two endpoints as node ids (any numbers; a node is known by its value, indexed in order of first
appearance, as the rows of :mod:`adaptloop.streams.graphs` give them). Every ``predict`` /
``learn`` call is one snapshot (``prequential`` with ``batch_size`` = the rows of a snapshot,
or :func:`adaptloop.evaluation.graphs.graph_prequential`).

- :class:`EvolveGCNRegressor` (``"evolvegcn"``): edge regression, e.g. the next-step load of
  every link of the ``linkload_graph`` stream. The rows of a batch are the edges of the current
  snapshot; with ``up_column`` set (``-3``: the ``up`` flag of ``linkload_graph``) only the
  rows flagged up join the graph, the others are still predicted. Node features: the mean of
  the (standardised) features of a node's incident edges and ``log(1 + degree)``.
- :class:`EvolveGCNLinkPredictor` (``"evolvegcn_link"``): temporal link prediction (binary).
  A batch is the candidate pairs of the next snapshot (positives and sampled negatives, as
  ``edge_events`` gives them); it is scored from the graphs of the snapshots learned before;
  ``learn`` takes a step on those scores, then the pairs labelled 1 become the newest snapshot.
  Node features: ``log(1 + out-degree)``, ``log(1 + in-degree)`` (columns before the last two
  are ignored).

The model (sections and equations of the arXiv v3 paper):

- GCN layer (Sec. 3.1, Eq. 1): ``H_t^(l+1) = sigma(A_t H_t^(l) W_t^(l))`` with ``A_t`` the
  symmetrically normalised adjacency with self-loops, ``D^-1/2 (A + I) D^-1/2``; ``sigma`` is
  ReLU; ``layers`` layers of ``hidden`` units. The sparse product is ``torch.sparse.mm``.
- Weight evolution (Sec. 3.2): **EGCN-O** (``variant="O"``, Eq. 3, Sec. 3.5) evolves each
  layer's weight matrix with a matrix LSTM whose input and hidden state are both
  ``W_(t-1)`` (the columns of ``W`` are the LSTM's batch); **EGCN-H** (``variant="H"``, Eq. 2,
  Sec. 3.4) with a matrix GRU whose hidden state is ``W_(t-1)`` and whose input is the layer's
  node embeddings summarised to ``#columns(W)`` rows: ``y = H p / ||p||``, the top-``k`` rows
  of ``H * tanh(y)`` (Sec. 3.4, "summarize").
- Prediction (Sec. 3.6): the last snapshot's embeddings of the two endpoints, concatenated,
  through a two-layer MLP (one output: the value, or the link's logit).
- Training (Sec. 3.6): the evolution is unrolled over the last ``window`` snapshots from the
  learned initial weights ``W_0`` (the paper's ``num_hist_steps``), and back-propagated through
  it; squared error (regression) or logistic loss (links), Adam.

Note on EGCN-O: its evolution takes only the previous weights, and the unrolling starts from
``W_0`` at the start of the window, so once the window is full the weights are the same at
every step: a frozen EGCN-O is a static GCN; a frozen EGCN-H still follows the graph.

Where we deviate from the paper: training is online (each ``learn`` call takes ``epochs``
steps on the new snapshot; ``mode="frozen"`` stops after a warm-up as the liquid learners do:
after it the GCN weights still evolve through the frozen recurrent cell, nothing is learned)
instead of epochs over a train split; node features are log-degrees and incident-edge means
(the paper uses one-hot degrees or given features); the regression head also sees the edge's
own standardised features next to the endpoint embeddings, and standardised features are
clipped (``clip``: the paper does not say how features are scaled); a snapshot with fewer nodes than
``hidden`` pads the summary of EGCN-H with zero rows; the logistic loss replaces the paper's
weighted cross-entropy over two classes (the same for one logit).

Weights are drawn under ``torch.random.fork_rng()`` seeded with ``seed``.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> edges = np.array([[0, 1], [1, 2], [2, 3], [3, 0]], dtype=np.float32)
>>> model = EvolveGCNRegressor(variant="O", hidden=8, window=2, lr=0.02, epochs=5)
>>> for t in range(30):  # load of every edge = its feature + 1
...     f = rng.random((4, 1)).astype(np.float32)
...     X = np.hstack([f, edges])
...     model.learn(X, f[:, 0] + 1.0)
>>> f = rng.random((4, 1)).astype(np.float32)
>>> bool(np.abs(model.predict(np.hstack([f, edges])) - (f[:, 0] + 1)).max() < 0.3)
True
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any, Literal

import numpy as np

from adaptloop.learners.base import BaseClassifier, BaseLearner, registry
from adaptloop.learners.models.torch_core import TorchLearner, import_torch, trains
from adaptloop.validation import Count, NonNegativeInt, PositiveReal

__all__ = ["EvolveGCNLinkPredictor", "EvolveGCNRegressor", "NodeIndex", "normalized_adjacency"]

Variant = Literal["O", "H"]
Normalize = Literal["none", "difference"]
Mode = Literal["online", "frozen"]


class NodeIndex:
    """Node ids (any float values) to indices ``0..n-1`` in order of first appearance.

    >>> index = NodeIndex()
    >>> index.lookup(np.array([5.0, 7.0, 5.0]), grow=True)
    (array([0, 1, 0]), 2)
    >>> index.lookup(np.array([9.0, 7.0]), grow=False)  # 9 is new: a temporary index
    (array([2, 1]), 3)
    >>> len(index)
    2
    """

    def __init__(self, values: np.ndarray | None = None) -> None:
        self._ids: dict[float, int] = {}
        for value in [] if values is None else np.asarray(values).tolist():
            self._ids[value] = len(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def lookup(self, values: np.ndarray, grow: bool) -> tuple[np.ndarray, int]:
        """Indices of ``values`` and the node count they live in; unknown values get new
        indices, kept only when ``grow``."""
        ids = self._ids if grow else dict(self._ids)
        distinct, first, inverse = np.unique(
            np.asarray(values, dtype=np.float64), return_index=True, return_inverse=True
        )
        codes = np.empty(len(distinct), dtype=np.int64)
        for k in np.argsort(first, kind="stable").tolist():  # new ids by first appearance
            codes[k] = ids.setdefault(float(distinct[k]), len(ids))
        return codes[inverse.ravel()], len(ids)

    def values(self) -> np.ndarray:
        """The node ids in index order (float64), as the state keeps them."""
        return np.array(list(self._ids), dtype=np.float64)


def normalized_adjacency(edges: np.ndarray, n: int, weights: np.ndarray | None = None) -> Any:
    """``D^-1/2 (A + I) D^-1/2`` for the undirected graph of ``edges`` (``(m, 2)`` indices
    ``< n``), as a sparse ``(n, n)`` torch tensor (EvolveGCN's Eq. 1, Kipf and Welling's
    renormalisation); parallel edges add up.

    >>> a = normalized_adjacency(np.array([[0, 1]]), 3).to_dense()
    >>> [round(float(v), 3) for v in a[0]], float(a[2, 2])
    ([0.5, 0.5, 0.0], 1.0)
    """
    torch = import_torch()
    loops = np.arange(n)
    rows = np.concatenate([edges[:, 0], edges[:, 1], loops])
    cols = np.concatenate([edges[:, 1], edges[:, 0], loops])
    w = np.ones(len(edges)) if weights is None else np.asarray(weights, dtype=np.float64)
    vals = np.concatenate([w, w, np.ones(n)])
    degree = np.bincount(rows, weights=vals, minlength=n)
    inv = 1.0 / np.sqrt(degree)
    vals = vals * inv[rows] * inv[cols]
    index = torch.from_numpy(np.stack([rows, cols]))
    return torch.sparse_coo_tensor(
        index, torch.from_numpy(vals.astype(np.float32)), (n, n), check_invariants=False
    )


def _evolvegcn_module(variant: str, n_in: int, hidden: int, layers: int, n_edge: int) -> Any:
    """The EvolveGCN network: evolving GCN layers and the MLP decoder (see the module doc)."""
    torch = import_torch()
    nn = torch.nn

    def square(rows: int) -> Any:
        bound = 1.0 / math.sqrt(rows)
        return nn.Parameter(torch.empty(rows, rows).uniform_(-bound, bound))

    class MatrixGate(nn.Module):
        """``act(W X + U H + B)`` on matrices (Sec. 3.4's gates; columns are the batch)."""

        def __init__(self, rows: int, cols: int, act: Any) -> None:
            super().__init__()
            self.W, self.U = square(rows), square(rows)
            self.B = nn.Parameter(torch.zeros(rows, cols))
            self.act = act

        def forward(self, x: Any, h: Any) -> Any:
            return self.act(self.W @ x + self.U @ h + self.B)

    class MatrixGRU(nn.Module):
        """EGCN-H's cell: ``W_t = GRU(Z_t, W_(t-1))`` (Sec. 3.4)."""

        def __init__(self, rows: int, cols: int) -> None:
            super().__init__()
            self.update = MatrixGate(rows, cols, torch.sigmoid)
            self.reset = MatrixGate(rows, cols, torch.sigmoid)
            self.candidate = MatrixGate(rows, cols, torch.tanh)

        def forward(self, x: Any, h: Any) -> Any:
            z, r = self.update(x, h), self.reset(x, h)
            return (1 - z) * h + z * self.candidate(x, r * h)

    class MatrixLSTM(nn.Module):
        """EGCN-O's cell: ``W_t = LSTM(W_(t-1))`` (Sec. 3.5), input = hidden = ``W_(t-1)``."""

        def __init__(self, rows: int, cols: int) -> None:
            super().__init__()
            self.i = MatrixGate(rows, cols, torch.sigmoid)
            self.f = MatrixGate(rows, cols, torch.sigmoid)
            self.o = MatrixGate(rows, cols, torch.sigmoid)
            self.g = MatrixGate(rows, cols, torch.tanh)

        def forward(self, w: Any, c: Any) -> tuple[Any, Any]:
            c = self.f(w, w) * c + self.i(w, w) * self.g(w, w)
            return self.o(w, w) * torch.tanh(c), c

    class EvolveGCNNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            dims = [n_in] + [hidden] * layers
            self.init = nn.ParameterList()
            self.cells = nn.ModuleList()
            self.p = nn.ParameterList()
            for a, b in zip(dims[:-1], dims[1:], strict=True):
                bound = math.sqrt(6.0 / (a + b))
                self.init.append(nn.Parameter(torch.empty(a, b).uniform_(-bound, bound)))
                self.cells.append(MatrixGRU(a, b) if variant == "H" else MatrixLSTM(a, b))
                if variant == "H":
                    self.p.append(nn.Parameter(torch.empty(a).uniform_(-1, 1)))
            self.head = nn.Sequential(
                nn.Linear(2 * hidden + n_edge, hidden), nn.ReLU(), nn.Linear(hidden, 1)
            )

        def summarize(self, h: Any, p: Any, k: int) -> Any:
            """Sec. 3.4: the top-``k`` rows of ``h * tanh(y)``, ``y = h p / ||p||``, as
            ``(features, k)``; zero rows pad a graph of fewer than ``k`` nodes."""
            y = h @ p / p.norm()
            top = torch.topk(y, min(k, len(y))).indices
            z = h[top] * torch.tanh(y[top])[:, None]
            if len(top) < k:
                z = torch.cat([z, z.new_zeros(k - len(top), z.shape[1])])
            return z.t()

        def embed(self, graphs: list[tuple[Any, Any]]) -> Any:
            """Node embeddings of the last graph, the weights evolved along ``graphs``
            (``(A_hat, X)`` pairs, oldest first)."""
            weights = list(self.init)
            cells = [torch.zeros_like(w) for w in weights]
            h = None
            for a_hat, x in graphs:
                h = x
                for layer, cell in enumerate(self.cells):
                    if variant == "H":
                        z = self.summarize(h, self.p[layer], weights[layer].shape[1])
                        weights[layer] = cell(z, weights[layer])
                    else:
                        weights[layer], cells[layer] = cell(weights[layer], cells[layer])
                    h = torch.relu(torch.sparse.mm(a_hat, h @ weights[layer]))
            return h

        def forward(self, inputs: Any) -> Any:
            graphs, edge, src, dst = inputs
            h = self.embed(graphs)
            if h is None:  # nothing seen yet: no graph to embed
                h = torch.zeros(int(max(src.max(), dst.max())) + 1, hidden)
            return self.head(torch.cat([h[src], h[dst], edge], dim=1))

    return EvolveGCNNet()


class _EvolveGCN(TorchLearner):
    """The shared learner: node index, snapshot window, online / frozen training."""

    _local_state = ("optimizer", "rng", "n_seen")
    _STATE = TorchLearner._STATE | {"n_seen", "nodes", "window", "warm"}
    _current_in_context = True  # regression: the batch's own graph is known when predicting

    def __init__(
        self,
        variant: Variant = "O",
        hidden: Count = 16,
        layers: Count = 2,
        window: Count = 4,
        mode: Mode = "online",
        warmup: NonNegativeInt = 1000,
        warmup_epochs: NonNegativeInt = 5,
        **training: Any,
    ) -> None:
        self.variant = variant
        self.hidden = hidden
        self.layers = layers
        self.window = window
        self.mode = mode
        self.warmup = warmup
        self.warmup_epochs = warmup_epochs
        self._init_training(training)
        self._clear()

    def _clear(self) -> None:
        self.n_seen_ = 0
        self._nodes = NodeIndex()
        self._window: list[dict[str, np.ndarray]] = []  # the last `window` snapshots
        self._warm: list[dict[str, Any]] = []  # frozen mode: the warm-up rows per snapshot
        self._snaps: list[dict[str, np.ndarray]] = []  # frozen mode: the warm-up snapshots

    @property
    def frozen(self) -> bool:
        """Whether learning has stopped (frozen mode, ``warmup`` rows learned)."""
        return self.mode == "frozen" and self.n_seen_ >= self.warmup

    @property
    def n_nodes_(self) -> int:
        """Nodes seen in learned snapshots."""
        return len(self._nodes)

    def check_X(self, X: object) -> np.ndarray:
        X = super().check_X(X)  # type: ignore[misc]
        if X.shape[1] < 2:
            raise ValueError(
                f"X has {X.shape[1]} features, expected at least 2 (the last two columns are "
                "the edge's endpoints)"
            )
        return X

    # -- to implement per task ---------------------------------------------------------------
    @abstractmethod
    def _snapshot(
        self, X: np.ndarray, y: np.ndarray | None, src: Any, dst: Any, n: int
    ) -> dict: ...

    @abstractmethod
    def _node_features(self, snap: dict, n: int) -> np.ndarray: ...

    @abstractmethod
    def _edge_features(self, X: np.ndarray) -> np.ndarray: ...

    # -- network ---------------------------------------------------------------------------
    def _scaled(self, X: np.ndarray) -> np.ndarray:
        return X[:, :-2]

    def _n_features(self, model: dict[str, Any], scaler: dict[str, Any]) -> int:
        return len(scaler["mean"]) + 2

    @abstractmethod
    def _n_node_features(self, n_edge_features: int) -> int: ...

    def _n_edge_features(self, d: int) -> int:
        """Edge features the decoder sees, for rows of ``d`` columns."""
        return d - 2

    def _network(self, d: int) -> tuple[Any, list[Any]]:
        torch = import_torch()
        n_edge = self._n_edge_features(d)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.seed))
            net = _evolvegcn_module(
                self.variant, self._n_node_features(d - 2), self.hidden, self.layers, n_edge
            )
        net.eval()
        return net, [net.init, net.cells, net.p, net.head]  # Drop-Muon's blocks

    def _graphs(self, snaps: list[dict], n: int) -> list[tuple[Any, Any]]:
        torch = import_torch()
        return [
            (
                normalized_adjacency(s["edges"], n),
                torch.from_numpy(self._node_features(s, n).astype(np.float32)),
            )
            for s in snaps
        ]

    def inputs(self, X: np.ndarray) -> Any:
        """Rows as ``(graphs, edge features, src, dst)``: the window's graphs (the batch's own
        last when it is known at prediction time) and the rows' tensors."""
        return self._inputs(X, None, grow=False)[0]

    def _inputs(self, X: np.ndarray, y: np.ndarray | None, grow: bool) -> tuple[Any, dict]:
        torch = import_torch()
        nodes, n = self._nodes.lookup(X[:, -2:].ravel(), grow)
        src, dst = nodes[0::2], nodes[1::2]
        snap = self._snapshot(X, y, src, dst, n)
        context = self._window[-self.window :]
        if self._current_in_context:
            context = [*self._window[len(self._window) - self.window + 1 :], snap]
        graphs = self._graphs(context[-self.window :], n)
        edge = torch.from_numpy(self._edge_features(X))
        return (graphs, edge, torch.from_numpy(src), torch.from_numpy(dst)), snap

    def _output(self, X: np.ndarray) -> np.ndarray:
        if self._net is None:
            return np.zeros(len(X), dtype=np.float64)
        with import_torch().no_grad():
            return self._net(self.inputs(X))[:, 0].numpy().astype(np.float64)

    # -- learning ----------------------------------------------------------------------------
    def _learn(self, X: np.ndarray, y: np.ndarray) -> None:
        """A snapshot: ``epochs`` steps on it (before the warm-up ends, in frozen mode; the
        whole snapshot counts), then it joins the window."""
        learning = not self.frozen
        if learning:
            self.begin_learn(X)
            inputs, snap = self._inputs(X, y, grow=True)
            self._steps(inputs, self.targets(y), self.epochs)
            if self.mode == "frozen" and self.warmup_epochs:
                self._warm.append({"X": X, "y": y})
                self._snaps.append(snap)
        else:
            if self._net is None:  # frozen with warmup 0: a network that never learns
                self._build(X.shape[1])
            nodes, n = self._nodes.lookup(X[:, -2:].ravel(), grow=True)
            snap = self._snapshot(X, y, nodes[0::2], nodes[1::2], n)
        self._window = [*self._window[len(self._window) - self.window + 1 :], snap]
        self.n_seen_ += len(X)
        if learning and self.frozen and self.warmup_epochs:
            self._fit_warmup()

    def _steps(self, inputs: Any, target: Any, epochs: int) -> None:
        self._net.train()
        for _ in range(epochs):
            self.train_step(lambda: self.loss(self._net(inputs), target))
        self._net.eval()

    def _fit_warmup(self) -> None:
        """``warmup_epochs`` passes over the warm-up snapshots in shuffled order, each with the
        window of snapshots before it (and itself, for regression), then drop them."""
        torch = import_torch()
        self._trainer.begin_call(self.warmup_epochs * len(self._warm))
        n = len(self._nodes)
        for _ in range(self.warmup_epochs):
            for at in self.rng.permutation(len(self._warm)).tolist():
                X, y = self._warm[at]["X"], self._warm[at]["y"]
                nodes, _ = self._nodes.lookup(X[:, -2:].ravel(), grow=False)
                end = at + 1 if self._current_in_context else at
                inputs = (
                    self._graphs(self._snaps[max(0, end - self.window) : end], n),
                    torch.from_numpy(self._edge_features(X)),
                    torch.from_numpy(nodes[0::2]),
                    torch.from_numpy(nodes[1::2]),
                )
                self._steps(inputs, self.targets(y), 1)
        self._warm, self._snaps = [], []

    # -- state -------------------------------------------------------------------------------
    def _get_state(self) -> dict[str, Any]:
        return {
            **super()._get_state(),
            "n_seen": self.n_seen_,
            "nodes": self._nodes.values(),
            "window": [dict(s) for s in self._window],
            "warm": {"rows": list(self._warm), "snapshots": list(self._snaps)},
        }

    def _set_state(self, state: Any) -> None:
        if not isinstance(state, dict) or set(state) != self._STATE:
            name = type(self).__name__
            raise ValueError(f"state of {name} must be a dict with keys {sorted(self._STATE)}")
        super()._set_state(state)
        self.n_seen_ = int(state["n_seen"])
        self._nodes = NodeIndex(state["nodes"])
        self._window = [dict(s) for s in state["window"]]
        self._warm = list(state["warm"]["rows"])
        self._snaps = list(state["warm"]["snapshots"])

    def _reset(self) -> None:
        super()._reset()
        if hasattr(self, "n_seen_"):
            self._clear()


@registry.register("evolvegcn")
@trains(lr=0.01)
class EvolveGCNRegressor(_EvolveGCN, BaseLearner):
    """EvolveGCN for edge regression: every row an edge ``[features.., src, dst]`` of the
    current snapshot, its target a value (the module doc has the model and the deviations).

    Parameters: ``variant`` (``"O"``: the LSTM evolves the weights; ``"H"``: a GRU fed the node
    embeddings); ``hidden`` (units per GCN layer), ``layers``; ``window`` (snapshots the
    evolution is unrolled over, the current one included); ``up_column``: the column of a 0/1
    flag saying whether the edge is in the graph (``None``: every row is; ``linkload_graph``'s
    ``up`` is column ``-3``); ``normalize``: ``"difference"`` makes the first ``seq_len``
    columns (a series, oldest first) and the target relative to the last series value, and
    predicts the change (the liquid learners' option; a failed link's zero load rules out
    their ``"ratio"``); ``clip``: standardised features (the edge's own and their means per
    node) are clipped to ``[-clip, clip]`` (``None``: not clipped); ``mode``, ``warmup``
    (rows), ``warmup_epochs`` as the liquid learners; the training parameters of the torch
    learners (``lr`` 0.01).

    Why ``clip`` (default 3): after a failure the failed and re-routed links' load histories
    are unlike anything seen before; standardised by the running statistics of the
    step-to-step changes they are tens of standard deviations out, and a ReLU network
    extrapolates them linearly: without clipping, EGCN-O's RMSE over the 11 snapshots after
    the failure snapshot was 3-8 times the clipped model's (held-out simulator seeds 10 and
    11, where ``clip`` was chosen: 3 and 5 did alike), whether it kept learning or not.

    >>> import numpy as np
    >>> model = EvolveGCNRegressor(variant="H", hidden=4, up_column=-3)
    >>> X = np.array([[0.5, 1.0, 0, 1], [0.7, 0.0, 1, 2]], dtype=np.float32)  # second is down
    >>> model.learn(X, np.array([0.5, 0.0], dtype=np.float32))
    >>> model.predict(X).shape, model.n_nodes_
    ((2,), 3)
    """

    def __init__(
        self,
        variant: Variant = "O",
        hidden: Count = 16,
        layers: Count = 2,
        window: Count = 4,
        up_column: int | None = None,
        normalize: Normalize = "none",
        seq_len: Count = 1,
        clip: PositiveReal | None = 3.0,
        mode: Mode = "online",
        warmup: NonNegativeInt = 1000,
        warmup_epochs: NonNegativeInt = 5,
        **training: Any,
    ) -> None:
        BaseLearner.__init__(self, task="regression")
        self.up_column = up_column
        self.normalize = normalize
        self.seq_len = seq_len
        self.clip = clip
        super().__init__(variant, hidden, layers, window, mode, warmup, warmup_epochs, **training)

    def check_X(self, X: object) -> np.ndarray:
        X = super().check_X(X)
        d, column = X.shape[1], self.up_column
        if column is not None and (not -d <= column < d or column % d >= d - 2):
            raise ValueError(
                f"up_column={self.up_column} must name a feature column of the {X.shape[1]} "
                "(not the endpoints, the last two)"
            )
        if self.normalize == "difference" and self.seq_len > d - 2:
            raise ValueError(
                f"X has {d} features, expected at least seq_len={self.seq_len} + 2 (the series, "
                "then the endpoints)"
            )
        return X

    def _relative(self, X: np.ndarray, y: np.ndarray | None = None) -> tuple[Any, Any]:
        """With ``normalize="difference"``: the series columns and the target minus the last
        series value ``X[:, seq_len - 1]`` (as the liquid learners' option)."""
        if self.normalize == "none":
            return X, y
        ref = X[:, self.seq_len - 1].astype(np.float64)
        Xr = X.astype(np.float64)
        Xr[:, : self.seq_len] -= ref[:, None]
        return Xr.astype(np.float32), None if y is None else (y - ref).astype(np.float32)

    def _learn(self, X: np.ndarray, y: np.ndarray) -> None:
        super()._learn(*self._relative(X, y))

    def _up(self, X: np.ndarray) -> np.ndarray:
        if self.up_column is None:
            return np.ones(len(X), dtype=bool)
        return X[:, self.up_column] > 0.5

    def _standardised(self, values: np.ndarray) -> np.ndarray:
        out = super()._standardised(values)
        return out if self.clip is None else np.clip(out, -self.clip, self.clip)

    def _edge_features(self, X: np.ndarray) -> np.ndarray:
        return self._standardised(X[:, :-2])

    def _n_node_features(self, n_edge_features: int) -> int:
        return n_edge_features + 1

    def _snapshot(self, X: np.ndarray, y: Any, src: Any, dst: Any, n: int) -> dict:
        up = self._up(X)
        edges = np.stack([src[up], dst[up]], axis=1)
        feats = X[up, :-2].astype(np.float64)
        total = np.zeros((n, feats.shape[1]))
        np.add.at(total, edges[:, 0], feats)
        np.add.at(total, edges[:, 1], feats)
        count = np.bincount(edges.ravel(), minlength=n).astype(np.float64)
        return {"edges": edges, "total": total, "count": count}

    def _node_features(self, snap: dict, n: int) -> np.ndarray:
        total, count = snap["total"], snap["count"]
        k = len(count)
        out = np.zeros((n, total.shape[1] + 1))
        seen = count > 0
        mean = np.zeros_like(total)
        mean[seen] = self._standardised(total[seen] / count[seen, None])
        out[:k, :-1] = mean
        out[:k, -1] = np.log1p(count)
        return out

    def targets(self, y: np.ndarray) -> Any:
        """Values as a float32 tensor."""
        return import_torch().from_numpy(np.array(y, dtype=np.float32))

    def loss(self, output: Any, target: Any) -> Any:
        """Mean squared error."""
        return import_torch().nn.functional.mse_loss(output[:, 0], target)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        out = self._output(self._relative(X)[0])
        if self.normalize == "difference":
            out = out + X[:, self.seq_len - 1]
        return out.astype(np.float32)


@registry.register("evolvegcn_link")
@trains(lr=0.01)
class EvolveGCNLinkPredictor(_EvolveGCN, BaseClassifier):
    """EvolveGCN for temporal link prediction: a batch is the candidate pairs of the next
    snapshot, scored from the snapshots learned before; ``learn`` steps on them, then keeps the
    pairs labelled 1 as the newest snapshot (module doc). Columns before the last two are
    ignored. Same parameters as :class:`EvolveGCNRegressor` without ``up_column``.

    >>> import numpy as np
    >>> model = EvolveGCNLinkPredictor(hidden=4)
    >>> X = np.array([[0, 1, 2], [0, 1, 3], [0, 2, 3]], dtype=np.float32)  # [time, src, dst]
    >>> model.learn(X, np.array([1, 0, 1]))
    >>> model.predict_proba(X).shape, model.n_nodes_
    ((3, 2), 3)
    """

    _current_in_context = False

    def __init__(
        self,
        variant: Variant = "O",
        hidden: Count = 16,
        layers: Count = 2,
        window: Count = 4,
        mode: Mode = "online",
        warmup: NonNegativeInt = 1000,
        warmup_epochs: NonNegativeInt = 5,
        **training: Any,
    ) -> None:
        BaseClassifier.__init__(self, task="binary")
        super().__init__(variant, hidden, layers, window, mode, warmup, warmup_epochs, **training)

    def _scaled(self, X: np.ndarray) -> np.ndarray:
        return X[:, :0]

    def _n_features(self, model: dict[str, Any], scaler: dict[str, Any]) -> int:
        return int(self.n_features_in_ or 2)

    def _edge_features(self, X: np.ndarray) -> np.ndarray:
        return np.zeros((len(X), 0), dtype=np.float32)

    def _n_node_features(self, n_edge_features: int) -> int:
        return 2

    def _n_edge_features(self, d: int) -> int:
        return 0

    def _snapshot(self, X: np.ndarray, y: Any, src: Any, dst: Any, n: int) -> dict:
        keep = np.zeros(len(X), dtype=bool) if y is None else y == 1
        return {"edges": np.stack([src[keep], dst[keep]], axis=1)}

    def _node_features(self, snap: dict, n: int) -> np.ndarray:
        edges = snap["edges"]
        out = np.bincount(edges[:, 0], minlength=n)[:n]
        into = np.bincount(edges[:, 1], minlength=n)[:n]
        return np.log1p(np.stack([out, into], axis=1).astype(np.float64))

    def targets(self, y: np.ndarray) -> Any:
        """Labels as a float32 tensor of 0 / 1."""
        return import_torch().from_numpy(np.array(y, dtype=np.float32))

    def loss(self, output: Any, target: Any) -> Any:
        """Logistic loss of the link's logit."""
        return import_torch().nn.functional.binary_cross_entropy_with_logits(output[:, 0], target)

    def _predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-self._output(X)))
        return np.stack([1.0 - p, p], axis=1)
