"""Temporal link prediction on edge events: a TGN-like memory model and a NAT-style model with
neighbourhood caches, as binary classifiers on rows ``[time, ..., src, dst]`` (the
``edge_events`` stream: every event a group of the true edge and sampled negatives).

Both keep a **memory** per node, as TGN (Rossi et al. 2020, Sec. 3.1): an event ``(i, j, t)``
sends node ``i`` the message ``[s_i, s_j, phi(t - t_i)]`` (``phi``: TGAT's cosine time encoding
``cos(w dt + b)``, ``w`` initialised to ``10^-linspace(0, 9)``), the last message of a batch per
node is kept (TGN's "last" aggregator) and a GRU updates ``s_i``. As in TGN's training (its
Algorithm 1), the messages of a batch are applied when the *next* batch is scored, inside its
loss, so the message and memory functions get gradients; then the updated memory is stored.
A batch is scored from what was learned before it (no event of the batch leaks into its own
scores). Columns other than the first (time) and the last two (endpoints, node ids by value)
are ignored.

- :class:`MemoryLinkPredictor` (``"tgn_memory"``): TGN's embedding module on top (Sec. 3.1,
  "temporal graph attention", one layer): node ``i`` at time ``t`` attends over its ``neighbors``
  most recent neighbours ``j`` with keys ``[s_j, phi(t - t_j)]``, query ``[s_i, phi(0)]``
  (two heads); an MLP of ``[attention, s_i]`` is the embedding; the decoder is an MLP of both
  endpoints' embeddings. ``correction`` (``gamma`` in ``[0, 1]``) adds PRES's
  prediction-correction of the memory (Su et al., ICLR 2024, Sec. 4): the memory of a node is
  also *predicted* as ``s + mu`` (``mu`` the running mean of past memory changes, one Gaussian
  where PRES fits a mixture) and the stored memory is ``(1 - gamma) * updated + gamma *
  predicted``; PRES's memory-coherence regulariser is not included.
- :class:`NATLinkPredictor` (``"nat"``): NAT (Luo and Li, LoG 2022), Sec. 3: every node keeps
  N-caches, a 1-hop cache of ``cache_1hop`` slots and a 2-hop cache of ``cache_2hop`` slots
  holding neighbour ids; on an event ``(u, v)``, ``v`` is written into ``u``'s 1-hop cache at
  slot ``hash(v) mod M1`` and the entries of ``v``'s 1-hop cache into ``u``'s 2-hop cache at
  their hashed slots, replacing an occupant with probability ``replace`` (NAT's
  down-sampling; symmetrically for ``v``). A candidate ``(u, v)`` gets joint structural
  features without any neighbour search: for every node ``w`` in ``{u, v}`` and the four
  caches, its distance encoding ``[w = u, w in N1(u), w in N2(u), w = v, w in N1(v), w in
  N2(v)]`` goes through an MLP together with ``s_w``, and the mean over the entries with the
  two memories feeds the decoder MLP.

Where we deviate: one attention layer for TGN; NAT's caches store ids and read the current
memory of a cached node (NAT stores a representation next to the id), and aggregate the
entries by a mean (NAT: attention); both train online, ``epochs`` steps per batch, Adam.

>>> import numpy as np
>>> X = np.array([[0, 0, 1], [0, 0, 2], [1, 1, 2], [1, 1, 0]], dtype=np.float32)
>>> model = NATLinkPredictor(memory=4, cache_1hop=2, cache_2hop=2)
>>> model.learn(X, np.array([1, 0, 1, 0]))
>>> model.predict_proba(X).shape, model.n_nodes_
((4, 2), 3)
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np

from adaptloop.learners.base import BaseClassifier, registry
from adaptloop.learners.models.graph import NodeIndex
from adaptloop.learners.models.torch_core import TorchLearner, import_torch, trains
from adaptloop.validation import Count, Fraction

__all__ = ["MemoryLinkPredictor", "NATLinkPredictor"]

_HASH = 2_654_435_761  # Knuth's multiplicative hash, for the cache slots


def _memory_core(memory: int, time_dim: int) -> Any:
    """Time encoding, message function and GRU memory updater (TGN's memory module)."""
    torch = import_torch()
    nn = torch.nn

    class TimeEncoding(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.from_numpy(1.0 / 10 ** np.linspace(0, 9, time_dim)).float())
            self.b = nn.Parameter(torch.zeros(time_dim))

        def forward(self, dt: Any) -> Any:
            return torch.cos(dt[..., None] * self.w + self.b)

    class Core(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.time = TimeEncoding()
            self.gru = nn.GRUCell(2 * memory + time_dim, memory)

        def update(self, s: Any, other: Any, dt: Any) -> Any:
            return self.gru(torch.cat([s, other, self.time(dt)], dim=1), s)

    return Core()


class _MemoryLearner(TorchLearner, BaseClassifier):
    """Node index, memory, pending messages; subclasses add the embedding and structures."""

    _local_state = ("optimizer", "rng")
    _STATE = TorchLearner._STATE | {"nodes", "memory", "pending", "structure"}

    def __init__(self, memory: Count, time_dim: Count, training: dict) -> None:
        BaseClassifier.__init__(self, task="binary")
        self.memory = memory
        self.time_dim = time_dim
        self._init_training(training)
        self._clear()

    def _clear(self) -> None:
        self._nodes = NodeIndex()
        self._s = np.zeros((0, self.memory), dtype=np.float32)  # memory per node
        self._last = np.zeros(0, dtype=np.float64)  # last update time per node
        self._pending = np.zeros((0, 3), dtype=np.float64)  # (node, other, time) messages
        self._delta = np.zeros(self.memory, dtype=np.float64)  # running mean memory change
        self._clear_structure()

    def _reset(self) -> None:
        super()._reset()
        if hasattr(self, "_nodes"):
            self._clear()

    @property
    def n_nodes_(self) -> int:
        """Nodes seen in learned batches."""
        return len(self._nodes)

    def check_X(self, X: object) -> np.ndarray:
        X = super().check_X(X)
        if X.shape[1] < 3:
            raise ValueError(
                f"X has {X.shape[1]} features, expected at least 3 (time, then the endpoints)"
            )
        return X

    # -- TorchLearner ----------------------------------------------------------------------
    def _scaled(self, X: np.ndarray) -> np.ndarray:
        return X[:, :0]

    def _n_features(self, model: dict[str, Any], scaler: dict[str, Any]) -> int:
        return int(self.n_features_in_ or 3)

    def targets(self, y: np.ndarray) -> Any:
        """Labels as a float32 tensor of 0 / 1."""
        return import_torch().from_numpy(np.array(y, dtype=np.float32))

    def loss(self, output: Any, target: Any) -> Any:
        """Logistic loss of the link's logit."""
        return import_torch().nn.functional.binary_cross_entropy_with_logits(output[:, 0], target)

    def _network(self, d: int) -> tuple[Any, list[Any]]:
        torch = import_torch()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.seed))
            net = self._module()
        net.eval()
        return net, [net.core, net.embed, net.head]

    # -- memory ------------------------------------------------------------------------------
    def _sized(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        s = np.zeros((n, self.memory), dtype=np.float32)
        last = np.zeros(n, dtype=np.float64)
        s[: len(self._s)], last[: len(self._last)] = self._s, self._last
        return s, last

    def _updated_memory(self, n: int) -> tuple[Any, Any, np.ndarray]:
        """The memory with the pending messages applied (a tensor; with gradients when
        training), the last-update times after them, and the updated nodes."""
        torch = import_torch()
        s_np, last = self._sized(n)
        s = torch.from_numpy(s_np)
        if not len(self._pending):
            return s, last, np.zeros(0, dtype=np.int64)
        node = self._pending[:, 0].astype(np.int64)
        other = self._pending[:, 1].astype(np.int64)
        t = self._pending[:, 2]
        new = self._net.core.update(
            s[node], s[other], torch.from_numpy((t - last[node]).astype(np.float32))
        )
        if self.correction > 0:
            predicted = s[node] + torch.from_numpy(self._delta.astype(np.float32))
            new = (1 - self.correction) * new + self.correction * predicted
        s = s.index_put((torch.from_numpy(node),), new)
        last = last.copy()
        last[node] = t
        return s, last, node

    def _commit(self, n: int, X: np.ndarray, y: np.ndarray, src: Any, dst: Any) -> None:
        """Store the memory updated by the pending messages; the batch's true edges become the
        next pending messages (the last per node) and join the neighbour structures."""
        torch = import_torch()
        with torch.no_grad():
            s, last, node = self._updated_memory(n)
        s = s.numpy()
        if len(node):
            change = (s[node] - self._sized(n)[0][node]).mean(axis=0)
            self._delta = 0.9 * self._delta + 0.1 * change
        self._s, self._last = s, last
        keep = y == 1
        t = X[keep, 0].astype(np.float64)
        u, v = src[keep], dst[keep]
        messages = np.concatenate([np.stack([u, v, t], 1), np.stack([v, u, t], 1)])
        _, first_from_end = np.unique(messages[::-1, 0], return_index=True)
        self._pending = messages[len(messages) - 1 - first_from_end]
        self._observe(u, v, t, n)

    # -- calls -------------------------------------------------------------------------------
    def _forward(self, X: np.ndarray, grow: bool) -> tuple[Any, np.ndarray, np.ndarray, int]:
        nodes, n = self._nodes.lookup(X[:, -2:].ravel(), grow)
        src, dst = nodes[0::2], nodes[1::2]
        s, last, _ = self._updated_memory(n)
        return self._score(s, last, X[:, 0].astype(np.float64), src, dst, n), src, dst, n

    def _predict_proba(self, X: np.ndarray) -> np.ndarray:
        if self._net is None:
            p = np.full(len(X), 0.5)
        else:
            with import_torch().no_grad():
                logit = self._forward(X, grow=False)[0][:, 0].numpy().astype(np.float64)
            p = 1.0 / (1.0 + np.exp(-logit))
        return np.stack([1.0 - p, p], axis=1)

    def _learn(self, X: np.ndarray, y: np.ndarray) -> None:
        self.begin_learn(X)
        target = self.targets(y)
        self._net.train()
        for _ in range(self.epochs):
            self.train_step(lambda: self.loss(self._forward(X, grow=True)[0], target))
        self._net.eval()
        nodes, n = self._nodes.lookup(X[:, -2:].ravel(), grow=True)
        self._commit(n, X, y, nodes[0::2], nodes[1::2])

    def inputs(self, X: np.ndarray) -> Any:
        """Rows as they are (the memory and structures are the learner's own)."""
        return X

    def forward(self, inputs: Any) -> Any:
        """Logits of the rows, from the memory with the pending messages applied."""
        return self._forward(inputs, grow=False)[0]

    # -- state -------------------------------------------------------------------------------
    def _get_state(self) -> dict[str, Any]:
        return {
            **super()._get_state(),
            "nodes": self._nodes.values(),
            "memory": {"s": self._s.copy(), "last": self._last.copy(), "delta": self._delta.copy()},
            "pending": self._pending.copy(),
            "structure": self._structure_state(),
        }

    def _set_state(self, state: Any) -> None:
        if not isinstance(state, dict) or set(state) != self._STATE:
            name = type(self).__name__
            raise ValueError(f"state of {name} must be a dict with keys {sorted(self._STATE)}")
        super()._set_state(state)
        self._nodes = NodeIndex(state["nodes"])
        memory = state["memory"]
        self._s, self._last = np.array(memory["s"]), np.array(memory["last"])
        self._delta = np.array(memory["delta"])
        self._pending = np.array(state["pending"])
        self._load_structure(state["structure"])

    # -- to implement ------------------------------------------------------------------------
    correction: float = 0.0

    @abstractmethod
    def _module(self) -> Any: ...

    @abstractmethod
    def _clear_structure(self) -> None: ...

    @abstractmethod
    def _observe(self, u: np.ndarray, v: np.ndarray, t: np.ndarray, n: int) -> None: ...

    @abstractmethod
    def _score(
        self, s: Any, last: np.ndarray, t: np.ndarray, src: Any, dst: Any, n: int
    ) -> Any: ...

    @abstractmethod
    def _structure_state(self) -> dict[str, np.ndarray]: ...

    @abstractmethod
    def _load_structure(self, state: dict[str, np.ndarray]) -> None: ...


def _grown(array: np.ndarray, n: int, fill: float) -> np.ndarray:
    if len(array) >= n:
        return array
    out = np.full((n, *array.shape[1:]), fill, dtype=array.dtype)
    out[: len(array)] = array
    return out


@registry.register("tgn_memory")
@trains(lr=0.001)
class MemoryLinkPredictor(_MemoryLearner):
    """TGN-like memory with one temporal-attention layer (and PRES's correction with
    ``correction > 0``); see the module doc.

    Parameters: ``memory`` (memory size), ``time_dim`` (time encoding size), ``neighbors``
    (most recent neighbours attended), ``correction`` (PRES's ``gamma``; 0 turns it off) and
    the torch learners' training parameters (``lr`` 0.001).

    >>> import numpy as np
    >>> X = np.array([[0, 0, 1], [0, 0, 2], [5, 1, 2], [5, 1, 0]], dtype=np.float32)
    >>> model = MemoryLinkPredictor(memory=4, time_dim=4, neighbors=2, correction=0.5)
    >>> model.learn(X[:2], np.array([1, 0])); model.learn(X[2:], np.array([1, 0]))
    >>> model.predict_proba(X).shape
    (4, 2)
    """

    def __init__(
        self,
        memory: Count = 32,
        time_dim: Count = 16,
        neighbors: Count = 10,
        correction: Fraction = 0.0,
        **training: Any,
    ) -> None:
        self.neighbors = neighbors
        self.correction = correction
        super().__init__(memory, time_dim, training)

    def _module(self) -> Any:
        torch = import_torch()
        nn = torch.nn
        width = self.memory + self.time_dim

        class Net(nn.Module):
            def __init__(self, memory: int, time_dim: int) -> None:
                super().__init__()
                self.core = _memory_core(memory, time_dim)
                self.embed = nn.ModuleDict(
                    {
                        "attention": nn.MultiheadAttention(width, 2, batch_first=True),
                        "mlp": nn.Sequential(nn.Linear(width + memory, memory), nn.ReLU()),
                    }
                )
                self.head = nn.Sequential(
                    nn.Linear(2 * memory, memory), nn.ReLU(), nn.Linear(memory, 1)
                )

        if width % 2:
            raise ValueError(f"memory + time_dim must be even (two heads), got {width}")
        return Net(self.memory, self.time_dim)

    def _clear_structure(self) -> None:
        self._nbr = np.full((0, self.neighbors), -1, dtype=np.int64)  # most recent first
        self._nbr_t = np.zeros((0, self.neighbors), dtype=np.float64)

    def _observe(self, u: np.ndarray, v: np.ndarray, t: np.ndarray, n: int) -> None:
        self._nbr, self._nbr_t = _grown(self._nbr, n, -1), _grown(self._nbr_t, n, 0.0)
        pairs = zip(np.r_[u, v].tolist(), np.r_[v, u].tolist(), np.r_[t, t].tolist(), strict=True)
        for a, b, when in pairs:
            self._nbr[a, 1:] = self._nbr[a, :-1]
            self._nbr_t[a, 1:] = self._nbr_t[a, :-1]
            self._nbr[a, 0], self._nbr_t[a, 0] = b, when

    def _embed(self, s: Any, node: np.ndarray, t: np.ndarray) -> Any:
        torch = import_torch()
        net = self._net
        nbr, nbr_t = _grown(self._nbr, len(s), -1), _grown(self._nbr_t, len(s), 0.0)
        ids, times = nbr[node], nbr_t[node]
        empty = ids < 0
        keys_s = s[torch.from_numpy(np.where(empty, 0, ids))] * torch.from_numpy(~empty)[..., None]
        dt = torch.from_numpy((t[:, None] - times).astype(np.float32))
        keys = torch.cat([keys_s, net.core.time(dt)], dim=2)
        query = torch.cat([s[node], net.core.time(torch.zeros(len(node)))], dim=1)[:, None]
        mask = torch.from_numpy(np.c_[np.zeros(len(node), dtype=bool), empty])
        keys = torch.cat([torch.zeros_like(keys[:, :1]), keys], dim=1)  # a null key: no NaN
        out = net.embed["attention"](query, keys, keys, key_padding_mask=mask)[0][:, 0]
        return net.embed["mlp"](torch.cat([out, s[node]], dim=1))

    def _score(self, s: Any, last: np.ndarray, t: np.ndarray, src: Any, dst: Any, n: int) -> Any:
        torch = import_torch()
        z_src, z_dst = self._embed(s, src, t), self._embed(s, dst, t)
        return self._net.head(torch.cat([z_src, z_dst], dim=1))

    def _structure_state(self) -> dict[str, np.ndarray]:
        return {"neighbors": self._nbr.copy(), "times": self._nbr_t.copy()}

    def _load_structure(self, state: dict[str, np.ndarray]) -> None:
        self._nbr, self._nbr_t = np.array(state["neighbors"]), np.array(state["times"])


@registry.register("nat")
@trains(lr=0.001)
class NATLinkPredictor(_MemoryLearner):
    """NAT-style link prediction from N-caches (module doc).

    Parameters: ``memory``, ``time_dim``; ``cache_1hop`` and ``cache_2hop`` (slots of the two
    N-caches); ``replace`` (probability that a new neighbour replaces an occupied slot);
    ``hidden`` (the structural-feature MLP); the training parameters (``lr`` 0.001).
    """

    def __init__(
        self,
        memory: Count = 32,
        time_dim: Count = 16,
        cache_1hop: Count = 8,
        cache_2hop: Count = 4,
        replace: Fraction = 0.5,
        hidden: Count = 16,
        **training: Any,
    ) -> None:
        self.cache_1hop = cache_1hop
        self.cache_2hop = cache_2hop
        self.replace = replace
        self.hidden = hidden
        super().__init__(memory, time_dim, training)

    def _module(self) -> Any:
        torch = import_torch()
        nn = torch.nn
        memory, hidden = self.memory, self.hidden

        class Net(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.core = _memory_core(memory, self_time)
                self.embed = nn.Sequential(nn.Linear(6 + memory, hidden), nn.ReLU())
                self.head = nn.Sequential(
                    nn.Linear(hidden + 2 * memory, hidden), nn.ReLU(), nn.Linear(hidden, 1)
                )

        self_time = self.time_dim
        return Net()

    def _clear_structure(self) -> None:
        self._c1 = np.full((0, self.cache_1hop), -1, dtype=np.int64)
        self._c2 = np.full((0, self.cache_2hop), -1, dtype=np.int64)
        self._cache_rng = np.random.default_rng([self.seed, 1])

    def _write(self, cache: np.ndarray, owner: int, entries: list[int]) -> None:
        size = cache.shape[1]
        for w in entries:
            if w < 0 or w == owner:
                continue
            slot = (w * _HASH) % (2**32) % size
            held = cache[owner, slot]
            if held < 0 or held == w or self._cache_rng.random() < self.replace:
                cache[owner, slot] = w

    def _observe(self, u: np.ndarray, v: np.ndarray, t: np.ndarray, n: int) -> None:
        self._c1, self._c2 = _grown(self._c1, n, -1), _grown(self._c2, n, -1)
        for a, b in zip(u.tolist(), v.tolist(), strict=True):
            hop_a, hop_b = self._c1[a].tolist(), self._c1[b].tolist()
            self._write(self._c1, a, [b])
            self._write(self._c1, b, [a])
            self._write(self._c2, a, hop_b)
            self._write(self._c2, b, hop_a)

    def _score(self, s: Any, last: np.ndarray, t: np.ndarray, src: Any, dst: Any, n: int) -> Any:
        torch = import_torch()
        c1, c2 = _grown(self._c1, n, -1), _grown(self._c2, n, -1)
        m1 = self.cache_1hop
        side_u = np.c_[src, c1[src], c2[src]]  # (B, 1 + M1 + M2): self, 1-hop, 2-hop
        side_v = np.c_[dst, c1[dst], c2[dst]]
        entries = np.c_[side_u, side_v]  # (B, S)

        def membership(side: np.ndarray) -> np.ndarray:
            hit = (entries[:, :, None] == side[:, None, :]) & (side[:, None, :] >= 0)
            return np.stack(
                [hit[:, :, 0], hit[:, :, 1 : 1 + m1].any(2), hit[:, :, 1 + m1 :].any(2)], axis=2
            )

        de = np.concatenate([membership(side_u), membership(side_v)], axis=2).astype(np.float32)
        valid = entries >= 0
        rep = s[torch.from_numpy(np.where(valid, entries, 0))]
        feats = self._net.embed(torch.cat([torch.from_numpy(de), rep], dim=2))
        weight = torch.from_numpy(valid.astype(np.float32))[..., None]
        pooled = (feats * weight).sum(1) / weight.sum(1)
        return self._net.head(torch.cat([pooled, s[src], s[dst]], dim=1))

    def _structure_state(self) -> dict[str, Any]:
        return {
            "hop1": self._c1.copy(),
            "hop2": self._c2.copy(),
            "rng": self._cache_rng.bit_generator.state,
        }

    def _load_structure(self, state: dict[str, Any]) -> None:
        self._c1, self._c2 = np.array(state["hop1"]), np.array(state["hop2"])
        self._cache_rng = np.random.default_rng()
        self._cache_rng.bit_generator.state = state["rng"]
