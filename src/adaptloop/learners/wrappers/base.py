"""The ``Wrapper`` base class: a learner around a learner.

A wrapper takes a learner (``base``) and is a learner. ``base`` stays an unfitted template;
the wrapper serves ``model_``, a clone of it that it trains and may replace by a fresh clone.
The base may be any ``Learner`` (a River adapter too): only the protocol is relied upon, plus
the capabilities the base has (:class:`~adaptloop.learners.base.HasTask`, ``Validating``,
``Classifier``, ``Representing``, ``DriftReporting``, ``Refitting``), which the wrapper passes on.

>>> from adaptloop.learners.models.majority import MajorityClass
>>> from adaptloop.learners.wrappers.static import Static
>>> Static(MajorityClass(n_classes=3), n_train=10).n_classes
3
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from adaptloop.learners.base import (
    BaseLearner,
    DriftReporting,
    Federated,
    HasTask,
    Learner,
    Refitting,
    Representing,
    StateRoles,
    Validating,
    check_sequence,
    is_classifier,
    registry,
)
from adaptloop.validation import Task, check_features, check_targets

__all__ = ["Wrapper", "resolve_learner"]


def resolve_learner(base: object, name: str = "base") -> Learner:
    """``base`` as a learner: a learner as is, a registered name or ``{"kind": name, ...}``.

    >>> resolve_learner(3)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: base must be a learner (predict, learn, ...), a learner name or ... dict, got int
    """
    if isinstance(base, Learner):
        return base
    if isinstance(base, str):
        return registry.create(base)
    if isinstance(base, dict) and isinstance(base.get("kind"), str):
        params = {k: v for k, v in base.items() if k != "kind"}
        return registry.create(base["kind"], **params)
    raise ValueError(
        f"{name} must be a learner (predict, learn, state_dict, load_state_dict, clone), "
        f"a learner name or a {{'kind': name, ...}} dict, got {type(base).__name__}"
    )


class Wrapper(BaseLearner):
    """Base of the wrappers: a learner around a learner (``base``), as River's meta-estimators.

    Subclasses implement ``_learn`` (given validated ``X``, ``y``), and extend ``_get_state`` /
    ``_set_state`` (which hold the served model's state under ``"model"``). ``predict`` and
    ``predict_proba`` go to the served model ``model_``; ``predict_proba`` exists only when
    that model has one (so ``is_classifier(wrapper)`` tells the truth). ``alarms`` is the served
    model's ``alarms`` (drift positions) or an empty list.

    >>> from adaptloop.learners.wrappers.static import Static
    >>> Static(base=3)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: base must be a learner (predict, learn, ...), a learner name or ... dict, got int
    """

    def __init__(self, base: Learner) -> None:  # the task comes from the base: no super()
        self.base = resolve_learner(base)
        self.model_: Learner = self.base.clone()
        self.n_features_in_: int | None = None

    # -- task, read from the base --------------------------------------------------------------
    @property
    def task(self) -> Task | None:  # type: ignore[override]
        """The base's task (``binary``, ``multiclass``, ``regression``), ``None`` if it has none."""
        return self.model_.task if isinstance(self.model_, HasTask) else None

    @property
    def n_classes(self) -> int | None:
        """The base's number of classes, ``None`` for regression or when it does not say."""
        return self.model_.n_classes if isinstance(self.model_, HasTask) else None

    @property
    def alarms(self) -> list[int]:
        """Drift alarm positions of the served model (nested wrappers), else ``[]``."""
        return list(self.model_.alarms) if isinstance(self.model_, DriftReporting) else []

    def _is_classifier(self) -> bool:
        task = self.task
        if task is not None:
            return task != "regression"
        return is_classifier(self.model_)

    # -- checks --------------------------------------------------------------------------------
    def check_X(self, X: object) -> np.ndarray:
        return check_features(X, self.n_features_in_)

    def check_Xy(self, X: object, y: object) -> tuple[np.ndarray, np.ndarray]:
        """Validate a batch against the wrapper and its base, changing nothing."""
        X = self.check_X(X)
        task = self.task
        if task is not None:
            y = check_targets(y, X.shape[0], task, self.n_classes)
        else:  # any finite numeric target, kept as given
            check_targets(y, X.shape[0], "regression")
        if isinstance(self.model_, Validating):
            X, y = self.model_.check_Xy(X, y)
        return X, y

    # -- serving -------------------------------------------------------------------------------
    def _predict(self, X: np.ndarray) -> np.ndarray:
        return self.model_.predict(X)

    @property
    def predict_proba(self) -> Any:
        """Class probabilities of the served model; missing (``AttributeError``) for regressors."""
        if not is_classifier(self.model_):
            raise AttributeError(
                f"{type(self).__name__} has no predict_proba: its base "
                f"{type(self.base).__name__} is not a classifier"
            )
        return self._predict_proba

    def _predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.model_.predict_proba(self.check_X(X))  # type: ignore[attr-defined]

    @property
    def hidden_representation(self) -> Any:
        """The served model's ``hidden_representation(X)``; missing when that model has none."""
        model = self.model_
        if not isinstance(model, Representing):
            raise AttributeError(
                f"{type(self).__name__} has no hidden_representation: its base "
                f"{type(self.base).__name__} has none"
            )
        return lambda X: model.hidden_representation(self.check_X(X))

    # -- exact test-then-train -----------------------------------------------------------------
    @property
    def test_then_train(self) -> Callable[..., np.ndarray]:
        """Exact test-then-train inside a batch (:class:`~adaptloop.learners.base.Sequential`),
        with the same numbers as batches of one; missing unless this wrapper runs per sample
        around its served model (see :meth:`_sequential`)."""
        if not self._sequential():
            raise AttributeError(
                f"{type(self).__name__} around {type(self.model_).__name__} learns per batch: "
                "no test_then_train"
            )
        return self._checked_test_then_train

    def _sequential(self) -> bool:
        """Whether this wrapper can run exact test-then-train around the served model. A
        subclass that says so when it can also defines ``_test_then_train(X, X_learn, y_learn,
        at, proba)`` on checked arrays (see :class:`~adaptloop.learners.base.Sequential`)."""
        return False

    def _checked_test_then_train(
        self,
        X: np.ndarray,
        X_learn: np.ndarray,
        y_learn: np.ndarray,
        learn_at: np.ndarray,
        proba: bool = False,
    ) -> np.ndarray:
        X, X_learn, y_learn, learn_at = check_sequence(self, X, X_learn, y_learn, learn_at)
        if self.n_features_in_ is None and len(X_learn):
            self.n_features_in_ = X_learn.shape[1]
        return self._test_then_train(X, X_learn, y_learn, learn_at, proba)

    def _served(
        self,
        X: np.ndarray,
        X_learn: np.ndarray | None = None,
        y_learn: np.ndarray | None = None,
        at: np.ndarray | None = None,
        proba: bool = False,
    ) -> np.ndarray:
        """The served model's ``test_then_train``: predictions of ``X`` with the samples
        scheduled by ``at`` learned between them (none when ``X_learn`` is None: a frozen
        stretch, still predicted one sample at a time, as a batch of one would be)."""
        if X_learn is None:
            X_learn, y_learn, at = X[:0], np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        model: Any = self.model_
        return model.test_then_train(X, X_learn, y_learn, at, proba)

    # -- state ---------------------------------------------------------------------------------
    _local_state: ClassVar[tuple[str, ...]] = ()
    """Keys of the wrapper's own state kept on each client in federation."""
    _statistics_state: ClassVar[tuple[str, ...]] = ()
    """Keys of the wrapper's own running statistics (``count``, ``mean``, ``m2``), pooled."""

    @property
    def state_roles(self) -> Callable[[], StateRoles]:
        """The served model's roles under ``learned.model``, plus the wrapper's own local and
        statistics entries; missing when the model declares none (not ``Federated``)."""
        model = self.model_
        if not isinstance(model, Federated):
            raise AttributeError(
                f"{type(self).__name__} has no state_roles: its base "
                f"{type(self.base).__name__} declares none"
            )
        return lambda: self._roles(model.state_roles())

    def _roles(self, model: StateRoles) -> StateRoles:
        own = StateRoles(self._local_state, self._statistics_state).within("learned")
        return model.within("learned.model") + own

    def _get_state(self) -> dict[str, Any]:
        return {"model": self.model_.state_dict()}

    def _new_model(self, state: dict[str, Any]) -> Learner:
        if not isinstance(state, dict) or "model" not in state:
            raise ValueError(f"{type(self).__name__} state must be a dict with key 'model'")
        model = self.base.clone()
        model.load_state_dict(state["model"])
        return model

    def _set_state(self, state: dict[str, Any]) -> None:
        self.model_ = self._new_model(state)

    def _fit_fresh(
        self, X: np.ndarray, y: np.ndarray, epochs: int, batch_size: int | None
    ) -> Learner:
        """A fresh clone of ``base`` trained ``epochs`` passes over ``(X, y)`` in order.

        A base that can plan a budget (the torch learners' ``plan_fit``) is told the learn
        calls first, so that its learning-rate schedule spans the whole re-fit; it may read the
        gradient-norm trace of the model it replaces (``model_``)."""
        model = self.base.clone()
        if len(X) == 0:
            return model
        step = len(X) if batch_size is None else batch_size
        if isinstance(model, Refitting):
            sizes = [min(step, len(X) - start) for start in range(0, len(X), step)]
            model.plan_fit(sizes * epochs, previous=self.model_)
        for _ in range(epochs):
            for start in range(0, len(X), step):
                model.learn(X[start : start + step], y[start : start + step])
        return model
