"""Gradient episodic memory: ``gem`` (one constraint per previous task) and ``agem`` (one
averaged constraint), sharing one episodic memory."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from adaptloop.learners.continual.plugin import Host, Plugin, plugins
from adaptloop.validation import Count, NonNegativeReal

__all__ = ["AGEM", "GEM", "gem_dual", "gem_project"]


def _flat_grad(params: Sequence[Any]) -> Any:
    """The gradients of ``params`` as one flat vector."""
    import torch

    return torch.cat([p.grad.reshape(-1) for p in params])


def _set_flat_grad(params: Sequence[Any], g: Any) -> None:
    """Write the flat vector ``g`` back into the gradients of ``params``."""
    start = 0
    for p in params:
        p.grad.copy_(g[start : start + p.numel()].view_as(p))
        start += p.numel()


def _grad_vector(loss: Any, params: Sequence[Any]) -> Any:
    """The gradient of ``loss`` with respect to ``params``, as one flat vector."""
    import torch

    grads = torch.autograd.grad(loss, params)
    return torch.cat([r.reshape(-1) for r in grads])


class _EpisodicMemory(Plugin):
    """The episodic memory of GEM and A-GEM: ``memory_per_task`` random training samples of
    each finished task, stored at its end; ``memory_task_`` numbers each sample's task in the
    order of the ``end_task`` calls."""

    def __init__(self, memory_per_task: Count = 50) -> None:
        self.memory_per_task = memory_per_task
        self.memory_X_: np.ndarray | None = None
        self.memory_y_: np.ndarray | None = None
        self.memory_task_ = np.empty(0, dtype=np.int64)

    @property
    def n_memory_tasks_(self) -> int:
        """Tasks with samples in the memory."""
        return 0 if len(self.memory_task_) == 0 else int(self.memory_task_[-1]) + 1

    def end_task(self, host: Host, X: np.ndarray, y: np.ndarray) -> None:
        idx = host.rng.choice(len(y), size=min(self.memory_per_task, len(y)), replace=False)
        task = np.full(len(idx), self.n_memory_tasks_, dtype=np.int64)
        if self.memory_X_ is None or self.memory_y_ is None:
            self.memory_X_, self.memory_y_ = X[idx], y[idx]
        else:
            self.memory_X_ = np.concatenate([self.memory_X_, X[idx]])
            self.memory_y_ = np.concatenate([self.memory_y_, y[idx]])
        self.memory_task_ = np.concatenate([self.memory_task_, task])

    def stored_samples(self) -> int:
        return len(self.memory_task_)

    def _memory(self, host: Host, idx: Any = slice(None)) -> tuple[Any, Any]:
        """Memory samples ``idx`` as the network's inputs and the loss's targets."""
        model = host.trainable
        return model.inputs(self.memory_X_[idx]), model.targets(self.memory_y_[idx])

    def state_dict(self) -> dict[str, Any]:
        X = None if self.memory_X_ is None else self.memory_X_.copy()
        y = None if self.memory_y_ is None else self.memory_y_.copy()
        return {"X": X, "y": y, "task": self.memory_task_.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.memory_X_ = None if state["X"] is None else np.asarray(state["X"], np.float32)
        self.memory_y_ = None if state["y"] is None else np.asarray(state["y"])
        self.memory_task_ = np.asarray(state["task"], np.int64)


@plugins.register("agem")
class AGEM(_EpisodicMemory):
    """Averaged GEM (Chaudhry et al. 2019, ICLR, eq. 10-11): an episodic memory holds
    ``memory_per_task`` random training samples of each finished task (stored at its end).
    Each step computes the new batch's gradient ``g`` and the gradient ``g_ref`` on
    ``sample_size`` random memory samples; if ``g . g_ref < 0`` the step uses
    ``g - (g . g_ref) / (g_ref . g_ref) * g_ref`` instead of ``g``.

    >>> import numpy as np
    >>> from adaptloop.learners.continual import Continual
    >>> from adaptloop.learners.models.mlp import MLPClassifier
    >>> model = Continual(MLPClassifier(hidden=(4,)), plugins=[AGEM(memory_per_task=1)])
    >>> model.end_task(np.eye(2, dtype=np.float32), np.array([0, 1]))
    >>> len(model.plugins_[0].memory_y_)
    1
    """

    def __init__(self, memory_per_task: Count = 50, sample_size: Count = 64) -> None:
        super().__init__(memory_per_task)
        self.sample_size = sample_size

    def adjust_gradient(self, host: Host, params: Sequence[Any]) -> None:
        if self.memory_y_ is None or host.trainable.network is None:
            return
        import torch

        g = _flat_grad(params)
        k = min(self.sample_size, len(self.memory_y_))
        idx = host.rng.choice(len(self.memory_y_), size=k, replace=False)
        x_ref, y_ref = self._memory(host, idx)
        g_ref = _grad_vector(host.loss(host.forward(x_ref), y_ref), params)
        dot = torch.dot(g, g_ref)
        if dot < 0:
            _set_flat_grad(params, g - dot / torch.dot(g_ref, g_ref) * g_ref)


def gem_dual(gram: np.ndarray, Gg: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """GEM's dual solution (Lopez-Paz & Ranzato 2017, section 3, eq. 12-13) in ``t`` dimensions.

    ``v >= margin`` minimising ``1/2 v^T K v + (G g)^T v``, from the ``t x t`` Gram matrix
    ``K = G G^T`` of the previous tasks' gradients and ``G g`` (the authors' code,
    ``project2cone2``, solves the same dual with ``quadprog`` on ``K + 1e-3 I``). With
    ``v = u + margin`` it is the non-negative least-squares problem ``min_{u >= 0} ||R u +
    d||^2``, where ``K = R^T R`` (from ``K``'s eigendecomposition, directions of zero
    eigenvalue left out) and ``R^T d = G g + margin K 1`` (that vector lies in ``K``'s range),
    solved exactly by ``scipy.optimize.nnls`` (Lawson-Hanson) -- no ``eps I`` regularisation,
    and every solve works on ``t x t`` numbers, never on the ``(parameters x t)`` matrix, so it
    costs microseconds whatever the BLAS threading.

    >>> gem_dual(np.array([[1.0]]), np.array([-2.0]))  # one constraint: v = -g.g_1 / |g_1|^2
    array([2.])
    >>> gem_dual(np.array([[1.0]]), np.array([-2.0]), margin=3.0)
    array([3.])
    """
    from scipy.optimize import nnls

    gram = np.asarray(gram, dtype=np.float64)
    c = np.asarray(Gg, dtype=np.float64) + margin * gram.sum(axis=1)
    lam, Q = np.linalg.eigh(gram)
    keep = lam > max(lam[-1], 0.0) * 1e-12
    if not keep.any():  # every previous task's gradient is zero: no constraint binds
        return np.full(len(c), float(margin))
    scale = np.sqrt(lam[keep])
    R = scale[:, None] * Q[:, keep].T
    u, _ = nnls(R, -(Q[:, keep].T @ c) / scale)
    return u + margin


def gem_project(g: np.ndarray, G: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """GEM's projected gradient (Lopez-Paz & Ranzato 2017, section 3, eq. 10-13).

    The primal (eq. 10-11) is ``min_z 1/2 ||g - z||^2`` s.t. ``G z >= 0``, one row of ``G``
    ``(t, p)`` per previous task's gradient; its dual (eq. 12-13) is ``min_{v >= 0} 1/2 v^T G
    G^T v + g^T G^T v`` and ``z = G^T v + g``; the paper's code's margin asks ``v >= margin``.
    The dual is solved in ``t`` dimensions (:func:`gem_dual`). At the optimum every ``G z = G
    G^T v + G g`` is the dual gradient, hence ``>= 0`` (KKT): ``z`` opposes no previous task.
    When ``g`` opposes none (``G g >= 0``) it is returned unchanged, as in the authors' code.

    >>> gem_project(np.array([1.0, -1.0]), np.array([[0.0, 1.0]]))
    array([1., 0.])
    >>> gem_project(np.array([1.0, 1.0]), np.array([[0.0, 1.0]]))  # no conflict: unchanged
    array([1., 1.])
    """
    g = np.asarray(g, dtype=np.float64)
    G = np.asarray(G, dtype=np.float64)
    Gg = G @ g
    if (Gg >= 0).all():
        return g.copy()
    return G.T @ gem_dual(G @ G.T, Gg, margin) + g


@plugins.register("gem")
class GEM(_EpisodicMemory):
    """Gradient Episodic Memory (Lopez-Paz & Ranzato 2017, NeurIPS, section 3, eq. 6-13):
    the memory of A-GEM (``memory_per_task`` random samples of each finished task), but one
    constraint per previous task: each step computes the new batch's gradient ``g`` and, for
    every task ``k`` in the memory, the gradient ``g_k`` of the loss on all of ``k``'s memory
    samples; if some ``g . g_k < 0`` (eq. 7-8), the step uses the projection of ``g`` onto
    ``{z : z . g_k >= 0 for all k}`` (eq. 10-13, :func:`gem_project`, with the paper's code's
    ``margin``, its ``memory_strength``: 0.5 in its experiments), its dual solved in ``t``
    dimensions from the ``t x t`` Gram matrix of the task gradients (:func:`gem_dual`). A
    regressor's per-task loss is its own loss on the task's memory samples.

    >>> import numpy as np
    >>> from adaptloop.learners.continual import Continual
    >>> from adaptloop.learners.models.mlp import MLPClassifier
    >>> model = Continual(MLPClassifier(n_classes=4, hidden=(4,)), plugins=[GEM(memory_per_task=2)])
    >>> X = np.eye(4, dtype=np.float32)
    >>> model.end_task(X[:2], np.array([0, 1])); model.end_task(X[2:], np.array([2, 3]))
    >>> model.plugins_[0].memory_task_.tolist()
    [0, 0, 1, 1]
    """

    def __init__(self, memory_per_task: Count = 50, margin: NonNegativeReal = 0.5) -> None:
        super().__init__(memory_per_task)
        self.margin = margin

    def memory_gradients(self, host: Host, params: Sequence[Any]) -> Any:
        """``(tasks, parameters)``: each memory task's loss gradient, one forward and one
        backward pass over that task's samples (cheaper than one pass over the whole memory
        differentiated per task, which costs ``tasks`` backward passes over all of it)."""
        import torch

        bounds = np.searchsorted(self.memory_task_, np.arange(self.n_memory_tasks_ + 1))
        rows = []
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            x, y = self._memory(host, slice(lo, hi))
            rows.append(_grad_vector(host.loss(host.forward(x), y), params))
        return torch.stack(rows)

    def adjust_gradient(self, host: Host, params: Sequence[Any]) -> None:
        if self.memory_y_ is None or host.trainable.network is None:
            return
        import torch

        g = _flat_grad(params)
        G = self.memory_gradients(host, params)
        Gg = G @ g
        if bool((Gg >= 0).all()):
            return
        v = gem_dual((G @ G.T).double().numpy(), Gg.double().numpy(), self.margin)
        _set_flat_grad(params, g + torch.from_numpy(v).to(g.dtype) @ G)
