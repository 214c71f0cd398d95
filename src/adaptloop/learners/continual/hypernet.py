"""A task-conditioned RNN hypernetwork for task-incremental learning (``hypernet``), with MIP.

The classifier's weights are not trained directly: a hypernetwork generates them from a
learned task embedding, so each task keeps its own network while only the hypernetwork and
one small embedding per task are stored.

- Hypernetwork and regulariser: von Oswald, Henning, Sacramento and Grewe, "Continual learning
  with hypernetworks", ICLR 2020, eq. (2): while task ``T`` is trained, the loss is
  ``L_task + beta / (T - 1) * sum_{t < T} || h(e_t, Theta*) - h(e_t, Theta) ||^2``, where
  ``Theta*`` is the hypernetwork before task ``T`` and the past embeddings ``e_t`` are fixed
  (the targets ``h(e_t, Theta*)`` are computed once when task ``T`` begins; here tasks count
  from 0, so the divisor is the number of past tasks). With ``look_ahead = True`` the
  regulariser is evaluated at ``h(e_t, Theta + Delta Theta)``, ``Delta Theta`` the step the
  optimiser would take on the task loss alone (Adam's step, computed from its state without
  changing it, and detached), as eq. (2) and the authors' code (``calc_delta_theta`` and
  ``calc_fix_target_reg`` in ``chrhenning/hypercl``, ``backprop_dt`` off) do: the task loss is
  back-propagated first, then the regulariser at the looked-ahead weights, and one step takes
  the sum of both gradients. The default (``look_ahead = False``, ``Delta Theta = 0``) is the
  variant the authors also report (their ``no_lookahead``). Deviation: one Adam optimiser holds
  the hypernetwork and the current task embedding (the authors step the embedding with its own
  optimiser, before the regulariser); the embedding does not enter the regulariser, so only
  the hypernetwork's weights are looked ahead.
- Dependency-preserving RNN generator: Chandra, Varshney, Srijith and Gupta, "Continual
  Learning with Dependency Preserving Hypernetworks", WACV 2023: an LSTM emits the target
  weights chunk by chunk (input: the task embedding and a learned chunk embedding), its
  hidden state carrying what earlier chunks (earlier layers) generated, and a shared linear
  map turns each hidden state into ``chunk_size`` weights. Deviations: none of their network
  growth nor their own regularisation variant (the abstract names both; their details could
  not be read here), so the regulariser is von Oswald's above; the number of tasks is not
  bounded in advance.
- MIP (``mip = True``): Gonzalez Ortiz, Guttag and Dalca, "Magnitude Invariant
  Parametrizations Improve Hypernetwork Learning", ICLR 2024: the input is encoded to a
  constant norm and the output is an additive change ``theta = theta_0 + h(.)`` to
  independently learned weights ``theta_0`` (initialised as the plain network is). Deviation:
  the inputs here are learned task embeddings, not bounded hyperparameters, so the
  constant-norm encoding is ``e / ||e||`` rather than the paper's ``[cos, sin]`` encoding
  of values in ``[0, 1]``.

Sources checked (the search tool reached abstracts, summaries and code, not the full PDFs):
von Oswald's eq. (2) and its fixed targets (their code's ``calc_fix_target_reg``, cited by
third-party code as "the second part of equation 2"); MIP's two components (the paper's
Figure 2 as summarised: input encoding to a constant L2 norm, ``theta = theta_0 + Delta
theta``); Chandra's RNN generator, growth and regularisation (abstract only). Section
numbers were not checked and are not given.

The target network is an MLP (``hidden`` widths, ReLU). Task identity: ``begin_task(task,
classes)`` selects the task that ``learn`` trains and ``predict`` serves; ``predict_proba_task``
evaluates any seen task (task-incremental evaluation needs it per task). ``classes`` restricts
the training loss to the task's labels, as :class:`~adaptloop.learners.continual.Continual`
does.

>>> import numpy as np
>>> X = np.eye(4, dtype=np.float32)
>>> model = HyperNetwork(n_classes=2, hidden=(8,), chunk_size=16, epochs=50, seed=0)
>>> model.begin_task(0); model.learn(X, np.array([0, 0, 1, 1]))
>>> model.begin_task(1); model.learn(X, np.array([1, 1, 0, 0]))
>>> model.predict_proba_task(X, 0).argmax(1).tolist(), model.predict(X).tolist()
([0, 0, 1, 1], [1, 1, 0, 0])
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np

from adaptloop.learners.base import BaseClassifier, StateRoles, registry
from adaptloop.learners.models.torch_core import Hidden
from adaptloop.validation import Count, Flag, NonNegativeReal, PositiveReal, Seed

__all__ = ["HyperNetwork"]


def _modules(n_in: int, hidden: Sequence[int], n_out: int, embed: int, chunk: int, rnn: int):
    """The hypernetwork's torch modules and the target layers' shapes."""
    import torch

    widths = [n_in, *hidden, n_out]
    shapes = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        shapes += [(b, a), (b,)]
    total = sum(int(np.prod(s)) for s in shapes)
    n_chunks = -(-total // chunk)
    net = torch.nn.ModuleDict(
        {
            "lstm": torch.nn.LSTMCell(2 * embed, rnn),
            "out": torch.nn.Linear(rnn, chunk),
        }
    )
    net.chunks = torch.nn.Parameter(torch.randn(n_chunks, embed))  # type: ignore[attr-defined]
    return net, shapes, total


@registry.register("hypernet")
class HyperNetwork(BaseClassifier):
    """An LSTM hypernetwork generating an MLP's weights per task (see the module doc).

    ``hidden``: the target MLP's widths; ``embedding_dim``: task and chunk embeddings;
    ``chunk_size``: weights per LSTM step; ``rnn_hidden``: the LSTM's width; ``beta``: the
    output regulariser's strength; ``look_ahead``: evaluate it at the task loss's candidate
    step (see the module doc); ``mip``: magnitude-invariant parametrisation; ``lr``: Adam's step;
    ``epochs``, ``batch_size``: passes and mini-batch size per ``learn`` call.
    """

    def __init__(
        self,
        n_classes: int = 2,
        hidden: Hidden = (100,),
        embedding_dim: Count = 16,
        chunk_size: Count = 500,
        rnn_hidden: Count = 64,
        beta: NonNegativeReal = 0.01,
        look_ahead: Flag = False,
        mip: Flag = False,
        lr: PositiveReal = 1e-3,
        epochs: Count = 1,
        batch_size: Count | None = 32,
        seed: Seed = 0,
    ) -> None:
        super().__init__(task="binary" if n_classes == 2 else "multiclass", n_classes=n_classes)
        self.hidden = tuple(hidden)
        self.embedding_dim = embedding_dim
        self.chunk_size = chunk_size
        self.rnn_hidden = rnn_hidden
        self.beta = beta
        self.look_ahead = look_ahead
        self.mip = mip
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.task_ = 0
        self.classes_: dict[int, list[int]] = {}
        self._net: Any = None
        self._embeddings: list[Any] = []
        self._targets: list[Any] = []  # h(e_t', Theta*) of the past tasks, fixed per task
        self._opt: Any = None

    # -- building -----------------------------------------------------------------------------
    def _build(self, n_in: int) -> None:
        import torch

        gen = torch.Generator().manual_seed(self.seed)
        with torch.random.fork_rng():
            torch.manual_seed(int(torch.randint(2**31, (1,), generator=gen)))
            net, self._shapes, self._total = _modules(
                n_in,
                self.hidden,
                self._n_classes or 2,
                self.embedding_dim,
                self.chunk_size,
                self.rnn_hidden,
            )
            if self.mip:  # theta_0: the target MLP's own initialisation
                layers = [torch.nn.Linear(s[1], s[0]) for s in self._shapes[::2]]
                flat = [
                    p.detach().reshape(-1) for layer in layers for p in (layer.weight, layer.bias)
                ]
                net.theta0 = torch.nn.Parameter(torch.cat(flat))  # type: ignore[attr-defined]
        self._net = net
        self._embeddings = []
        self._ensure_task(self.task_)

    def _ensure_task(self, task: int) -> None:
        import torch

        gen = torch.Generator().manual_seed(self.seed + 1 + len(self._embeddings))
        while len(self._embeddings) <= task:
            self._embeddings.append(
                torch.nn.Parameter(torch.randn(self.embedding_dim, generator=gen))
            )
        self._opt = torch.optim.Adam([*self._net.parameters(), self._embeddings[task]], lr=self.lr)

    # -- the hypernetwork ---------------------------------------------------------------------
    def _generate(self, task: int, delta: dict[str, Any] | None = None) -> Any:
        """The flat target weights ``h(e_task)`` (``theta_0 +`` it under MIP); with ``delta``
        (a change per named parameter of the hypernetwork), ``h(e_task, Theta + delta)``."""
        import torch
        from torch.func import functional_call

        params = dict(self._net.named_parameters())
        if delta is not None:
            params = {name: value + delta[name] for name, value in params.items()}

        own = {  # each module's parameters, under its own names
            name: {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith(name + ".")}
            for name in ("lstm", "out")
        }

        def call(name: str, *args: Any) -> Any:
            return functional_call(self._net[name], own[name], args)

        e = self._embeddings[task]
        if self.mip:
            e = e / e.norm().clamp_min(1e-12)
        h = torch.zeros(1, self.rnn_hidden)
        c = torch.zeros(1, self.rnn_hidden)
        out = []
        for chunk in params["chunks"]:
            h, c = call("lstm", torch.cat([e, chunk])[None], (h, c))
            out.append(call("out", h)[0])
        flat = torch.cat(out)[: self._total]
        return params["theta0"] + flat if self.mip else flat

    def _adam_step(self) -> dict[str, Any]:
        """The change Adam's next ``step()`` would make to each hypernetwork parameter, from
        the gradients now accumulated and its state, without changing either (the authors'
        ``adam_step`` in ``utils/optim_step.py`` does the same for their optimiser)."""
        import torch

        group = self._opt.param_groups[0]
        (beta1, beta2), eps, lr = group["betas"], group["eps"], group["lr"]
        delta = {}
        for name, p in self._net.named_parameters():
            g = torch.zeros_like(p) if p.grad is None else p.grad.detach()
            state = self._opt.state.get(p, {})
            t = float(state["step"]) + 1.0 if "step" in state else 1.0
            m = beta1 * state.get("exp_avg", torch.zeros_like(p)) + (1 - beta1) * g
            v = beta2 * state.get("exp_avg_sq", torch.zeros_like(p)) + (1 - beta2) * g * g
            denom = (v / (1 - beta2**t)).sqrt() + eps
            delta[name] = (-lr / (1 - beta1**t) * m / denom).detach()
        return delta

    def _regulariser(self, delta: dict[str, Any] | None = None) -> Any:
        """``sum_t || h(e_t, Theta + delta) - h(e_t, Theta*) ||^2 / (number of past tasks)``."""
        reg = sum(
            ((self._generate(t, delta) - target) ** 2).sum()
            for t, target in enumerate(self._targets)
        )
        return reg / len(self._targets)

    def _logits(self, flat: Any, X: Any) -> Any:
        import torch

        h, offset = X, 0
        n_layers = len(self._shapes) // 2
        for i in range(n_layers):
            w_shape, b_shape = self._shapes[2 * i], self._shapes[2 * i + 1]
            w = flat[offset : offset + w_shape[0] * w_shape[1]].reshape(w_shape)
            offset += w_shape[0] * w_shape[1]
            b = flat[offset : offset + b_shape[0]]
            offset += b_shape[0]
            h = h @ w.T + b
            if i < n_layers - 1:
                h = torch.relu(h)
        return h

    # -- task boundaries ----------------------------------------------------------------------
    def begin_task(self, task: int, classes: Sequence[int] | None = None) -> None:
        """Task ``task`` begins; ``classes`` restricts its training loss to those labels."""
        import torch

        if task < 0:
            raise ValueError(f"task must be >= 0, got {task}")
        if classes is not None:
            self.classes_[int(task)] = [int(c) for c in classes]
        self.task_ = int(task)
        if self._net is None:
            return
        with torch.no_grad():  # Theta*: the past tasks' outputs before this task trains
            self._targets = [
                self._generate(t).detach() for t in range(min(task, len(self._embeddings)))
            ]
        self._ensure_task(task)

    def end_task(self, X: np.ndarray, y: np.ndarray) -> None:
        """Nothing to do at a task's end (the targets are taken when the next begins)."""
        self.check_Xy(X, y)

    # -- learning -----------------------------------------------------------------------------
    def _learn(self, X: np.ndarray, y: np.ndarray) -> None:
        import torch

        if self._net is None:
            self._build(X.shape[1])
        n = len(X)
        size = n if self.batch_size is None else min(self.batch_size, n)
        Xt, yt = torch.from_numpy(X.astype(np.float32)), torch.from_numpy(y)
        allowed = self.classes_.get(self.task_)
        for _ in range(self.epochs):
            order = self.rng.permutation(n)
            for lo in range(0, n, size):
                idx = torch.from_numpy(order[lo : lo + size])
                logits = self._logits(self._generate(self.task_), Xt[idx])
                if allowed is not None:
                    mask = torch.full((logits.shape[1],), float("-inf"))
                    mask[allowed] = 0.0
                    logits = logits + mask
                loss = torch.nn.functional.cross_entropy(logits, yt[idx])
                self._opt.zero_grad()
                regularised = bool(self._targets) and self.beta > 0
                if regularised and self.look_ahead:
                    loss.backward()  # the task loss's gradient gives Delta Theta
                    (self.beta * self._regulariser(self._adam_step())).backward()
                elif regularised:
                    (loss + self.beta * self._regulariser()).backward()
                else:
                    loss.backward()
                self._opt.step()

    # -- serving ------------------------------------------------------------------------------
    @property
    def stored_samples(self) -> int:
        """0: the regulariser keeps past tasks' generated weights, never samples."""
        return 0

    def predict_proba_task(self, X: np.ndarray, task: int) -> np.ndarray:
        """Class probabilities of task ``task``'s generated network."""
        import torch

        X = self.check_X(X)
        if self._net is None or task >= len(self._embeddings):
            return np.full((len(X), self._n_classes or 2), 1 / (self._n_classes or 2))
        with torch.no_grad():
            logits = self._logits(self._generate(task), torch.from_numpy(X.astype(np.float32)))
            return torch.softmax(logits, 1).numpy()

    def _predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.predict_proba_task(X, self.task_)

    # -- state --------------------------------------------------------------------------------
    def state_roles(self) -> StateRoles:
        """Federation: the hypernetwork and the task embeddings are shared; the optimiser,
        the generator, the current task, its classes and the regulariser's targets stay local."""
        local = ("optimizer", "rng", "task", "classes", "targets", "n_features")
        return StateRoles(local=tuple(f"learned.{k}" for k in local))

    def _get_state(self) -> dict[str, Any]:
        if self._net is None:
            return {"net": None, "task": self.task_, "classes": dict(self.classes_)}
        return {
            "net": {k: v.detach().numpy().copy() for k, v in self._net.state_dict().items()},
            "embeddings": [e.detach().numpy().copy() for e in self._embeddings],
            "targets": [t.numpy().copy() for t in self._targets],
            "optimizer": copy.deepcopy(self._opt.state_dict()),
            "task": self.task_,
            "classes": dict(self.classes_),
            "n_features": self._shapes[0][1],
            "rng": copy.deepcopy(self.rng.bit_generator.state),
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        import torch

        if not isinstance(state, dict) or not {"net", "task", "classes"} <= set(state):
            raise ValueError("HyperNetwork state must be a dict with keys net, task, classes")
        self.task_, self.classes_ = int(state["task"]), dict(state["classes"])
        if state["net"] is None:
            self._net = None
            return
        embeddings = state["embeddings"]
        self._build(int(state["n_features"]))
        self._net.load_state_dict({k: torch.tensor(v) for k, v in state["net"].items()})
        self._embeddings = [torch.nn.Parameter(torch.tensor(e)) for e in embeddings]
        self._targets = [torch.tensor(t) for t in state["targets"]]
        self._ensure_task(self.task_)
        self._opt.load_state_dict(state["optimizer"])
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = copy.deepcopy(state["rng"])
