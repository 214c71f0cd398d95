"""Learning without Forgetting (``lwf``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from adaptloop.learners.continual.plugin import Batch, Host, Plugin, classification_only, plugins
from adaptloop.validation import NonNegativeReal, PositiveReal

__all__ = ["LwF"]


@plugins.register("lwf")
class LwF(Plugin):
    """Learning without Forgetting (Li & Hoiem 2017, eq. 2-4): when a new task begins, the
    current network is frozen as the teacher; each step minimises
    ``L + alpha * KD``, where ``L`` is the loss so far (the learner's cross-entropy on the
    batch, then earlier plugins') and ``KD`` the cross-entropy between the teacher's and the
    student's temperature-``T`` softmax (``T = temperature``, 2 in the paper) over the classes
    learned before the task, on the step's batch. Deviation: one shared head (class- and
    domain-incremental), so the "old task outputs" are the logits of the classes seen before
    the task, as in van de Ven et al.'s class-incremental LwF. Classifiers only.

    The teacher is kept as the network's weights (``teacher_``), evaluated with
    ``torch.func.functional_call`` on the learner's network.

    >>> import numpy as np
    >>> from adaptloop.learners.continual import Continual
    >>> from adaptloop.learners.models.mlp import MLPClassifier
    >>> model = Continual(MLPClassifier(n_classes=4, hidden=(4,)), plugins=[LwF(alpha=1.0)])
    >>> model.learn(np.eye(4, dtype=np.float32)[:2], np.array([0, 1]))
    >>> model.begin_task(1)
    >>> model.plugins_[0].old_classes_
    [0, 1]
    """

    def __init__(self, alpha: NonNegativeReal = 1.0, temperature: PositiveReal = 2.0) -> None:
        self.alpha = alpha
        self.temperature = temperature
        self.seen_classes_: set[int] = set()
        self.old_classes_: list[int] = []
        self.teacher_: dict[str, Any] | None = None

    def check(self, task: str | None) -> None:
        classification_only(self, task)

    def begin_task(self, host: Host, task: int) -> None:
        net = host.trainable.network
        if net is not None and self.seen_classes_:
            self.teacher_ = {k: v.detach().clone() for k, v in net.state_dict().items()}
            self.old_classes_ = sorted(self.seen_classes_)

    def after_step(self, host: Host, X: np.ndarray, y: np.ndarray) -> None:
        self.seen_classes_.update(int(c) for c in np.unique(y))

    def loss(self, host: Host, batch: Batch, loss: Any) -> Any:
        if self.teacher_ is None:
            return loss
        import torch

        old, t = self.old_classes_, self.temperature
        with torch.no_grad():
            target = (host.forward(batch.inputs, self.teacher_)[:, old] / t).softmax(1)
        log_p = (batch.output[:, old] / t).log_softmax(1)
        return loss + self.alpha * -(target * log_p).sum(1).mean()

    def state_dict(self) -> dict[str, Any]:
        teacher = None
        if self.teacher_ is not None:
            teacher = {k: v.clone() for k, v in self.teacher_.items()}
        return {
            "seen": sorted(self.seen_classes_),
            "old": list(self.old_classes_),
            "teacher": teacher,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seen_classes_ = set(state["seen"])
        self.old_classes_ = list(state["old"])
        self.teacher_ = state["teacher"]
