"""The ``Learner`` protocol and the small base class the built-in learners share.

Two calls make a learner: ``predict(X)`` and ``learn(X, y)``, both on batches. Classifiers add
``predict_proba``. Every learner can ``clone()`` itself (same parameters, unfitted) and save and
restore its state with ``state_dict()`` / ``load_state_dict()``.

>>> import numpy as np
>>> class MeanRegressor(BaseLearner):
...     def __init__(self):
...         super().__init__(task="regression")
...         self.total, self.count = 0.0, 0
...     def _learn(self, X, y):
...         self.total += float(y.sum()); self.count += len(y)
...     def _predict(self, X):
...         return np.full(len(X), self.total / max(self.count, 1), dtype=np.float32)
...     def _get_state(self):
...         return {"total": self.total, "count": self.count}
...     def _set_state(self, state):
...         self.total, self.count = state["total"], state["count"]
>>> m = MeanRegressor()
>>> m.learn(np.ones((2, 1)), np.array([1.0, 3.0]))
>>> m.predict(np.zeros((1, 1)))
array([2.], dtype=float32)
>>> m.clone().predict(np.zeros((1, 1)))
array([0.], dtype=float32)
"""

from __future__ import annotations

import copy
import functools
import inspect
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from adaptloop.registry import Registry
from adaptloop.validation import Task, check_features, check_targets

C = TypeVar("C", bound=type)

registry = Registry("learner")
"""Learners and wrappers by name; implementing modules register with ``@registry.register``."""


class _Capability(type(Protocol)):  # type: ignore[misc]
    """Metaclass of the protocols below: ``isinstance`` asks the object for each member
    (``hasattr``), so a wrapper whose member raises ``AttributeError`` because its served model
    lacks it is not an instance -- on every Python (3.12 stopped asking, reading the class).

    The members are collected once per protocol: ``typing``'s own check collects them on every
    call (7-26 us), and wrappers ask on every batch."""

    def __instancecheck__(cls, instance: object) -> bool:
        if not cls.__dict__.get("_is_protocol", False):
            return super().__instancecheck__(instance)
        return all(hasattr(instance, name) for name in _members(cls))


@functools.cache
def _members(protocol: type) -> frozenset[str]:
    names: set[str] = set()
    for klass in protocol.__mro__:
        if klass.__dict__.get("_is_protocol", False) and klass is not Protocol:
            names |= {n for n in vars(klass) if not n.startswith("_")}
            names |= {n for n in vars(klass).get("__annotations__", {}) if not n.startswith("_")}
    return frozenset(names)


@runtime_checkable
class Learner(Protocol, metaclass=_Capability):
    """What adapts: batch in, batch out (see DESIGN.md, "The two calls")."""

    def predict(self, X: np.ndarray) -> np.ndarray: ...

    def learn(self, X: np.ndarray, y: np.ndarray) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def clone(self) -> Learner: ...


@runtime_checkable
class Classifier(Learner, Protocol):
    """A learner that also gives class probabilities, shape ``(n, n_classes)``."""

    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...


def is_classifier(learner: object) -> bool:
    """Whether ``learner`` is a :class:`Classifier` (a wrapper is one when its model is).

    >>> from adaptloop.learners.models.majority import MajorityClass
    >>> is_classifier(MajorityClass()), is_classifier(object())
    (True, False)
    """
    return isinstance(learner, Classifier)


# -- capabilities: what a learner can do beyond the two calls, checked with isinstance ---------
@runtime_checkable
class HasTask(Protocol, metaclass=_Capability):
    """Says what it predicts: ``task`` (``binary``, ``multiclass``, ``regression``; ``None``
    when unknown, as a wrapper around a learner that does not say) and ``n_classes``
    (``None`` for regression)."""

    @property
    def task(self) -> Task | None: ...

    @property
    def n_classes(self) -> int | None: ...


@runtime_checkable
class Validating(Protocol, metaclass=_Capability):
    """Checks a batch without learning it: ``check_Xy(X, y)`` returns the checked arrays or
    raises ``ValueError`` (what a wrapper asks its model before changing any state)."""

    def check_Xy(self, X: object, y: object) -> tuple[np.ndarray, np.ndarray]: ...


@runtime_checkable
class Sequential(Protocol, metaclass=_Capability):
    """Predicts and learns sample by sample inside one call: exact test-then-train, whatever
    the batch size (what :func:`~adaptloop.evaluation.prequential` runs for it).

    ``test_then_train(X, X_learn, y_learn, learn_at, proba=False)`` predicts the rows of ``X``
    in order and learns sample ``j`` of ``(X_learn, y_learn)`` after the first ``learn_at[j]``
    predictions (``learn_at`` non-decreasing in ``[0, len(X)]``); it returns the predictions
    (``predict``'s, or ``predict_proba``'s with ``proba``), each made by the model that had
    learned every sample scheduled before it. With ``X_learn = X`` and
    ``learn_at = [1, 2, ..., n]`` that is a loop of ``predict`` then ``learn`` on batches of one,
    with the same numbers; later ``learn_at`` are labels that arrive late (label delay)."""

    def test_then_train(
        self,
        X: np.ndarray,
        X_learn: np.ndarray,
        y_learn: np.ndarray,
        learn_at: np.ndarray,
        proba: bool = False,
    ) -> np.ndarray: ...


@runtime_checkable
class MonitoredSequential(Protocol, metaclass=_Capability):
    """A :class:`Sequential` learner whose compiled loop can also watch its own errors with a
    compiled drift detector (:class:`~adaptloop.learners.detectors.CompiledDetector`):
    ``monitored_test_then_train(X, X_learn, y_learn, learn_at, detector, judge_from, proba)``
    is ``test_then_train`` where each sample of ``X_learn`` from index ``judge_from`` on is
    first predicted by the model as it stands, its error (0/1 mistake, or absolute error)
    fed to ``detector``, and the loop stops at the first alarm, before learning the alarming
    sample. It returns the predictions made, how many, how many samples of ``X_learn`` were
    consumed (the alarming one included) and whether it stopped at an alarm
    (:class:`~adaptloop.learners.wrappers.drift_reset.DriftReset` then re-fits and goes on)."""

    def monitored_test_then_train(
        self,
        X: np.ndarray,
        X_learn: np.ndarray,
        y_learn: np.ndarray,
        learn_at: np.ndarray,
        detector: Any,
        judge_from: int = 0,
        proba: bool = False,
    ) -> tuple[np.ndarray, int, int, bool]: ...


def check_sequence(
    learner: Any, X: object, X_learn: object, y_learn: object, learn_at: object
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The arguments of :meth:`Sequential.test_then_train`, checked by ``learner``'s own
    ``check_X`` / ``check_Xy`` (either part may be empty: nothing to predict, or no label yet),
    or ``ValueError``; changes nothing.

    >>> from adaptloop.learners.models.majority import MajorityClass
    >>> X = np.zeros((3, 2), dtype=np.float32)
    >>> check_sequence(MajorityClass(), X, X[:2], np.array([0, 1]), np.array([2, 1]))
    Traceback (most recent call last):
    ...
    ValueError: learn_at must be non-decreasing integers in [0, 3] (one per learned sample)
    """
    if not isinstance(X, np.ndarray) or not isinstance(X_learn, np.ndarray):
        raise ValueError("X and X_learn must be numpy arrays of shape (n, d)")
    if X_learn is X and len(X):  # plain test-then-train: the batch is checked once
        X, y_learn = learner.check_Xy(X, y_learn)
        return X, X, y_learn, _checked_schedule(learn_at, len(X), len(X))
    X = learner.check_X(X) if len(X) else np.zeros((0, X.shape[-1]), dtype=np.float32)
    if len(X_learn):
        X_learn, y_learn = learner.check_Xy(X_learn, y_learn)
    else:
        X_learn = np.zeros((0, X.shape[1]), dtype=np.float32)
        y_learn = np.asarray(y_learn)
    if X_learn.shape[1] != X.shape[1]:
        raise ValueError(f"X has {X.shape[1]} features, X_learn {X_learn.shape[1]}")
    return X, X_learn, y_learn, _checked_schedule(learn_at, len(X_learn), len(X))


def sequence_is_checked(
    learner: Any, X: object, X_learn: object, y_learn: object, learn_at: object
) -> bool:
    """Whether :func:`check_sequence` would return these arguments as they are, if their
    values pass: ``X`` and ``X_learn`` C-contiguous float32 ``(n, d)`` arrays with
    ``learner.n_features_in_`` columns, ``y_learn`` int64 class codes (float32 targets for a
    regressor) and ``learn_at`` int64, one of each per learned sample. O(1): a learner whose
    compiled loop checks the values itself before it changes anything (finite features,
    known labels, the schedule's order; on a refusal it calls :func:`check_sequence` for the
    message) skips the Python checks of every batch of a stream that is already in shape.

    >>> from adaptloop.learners.models.majority import MajorityClass
    >>> X = np.zeros((3, 2), dtype=np.float32)
    >>> at = np.arange(1, 4)
    >>> sequence_is_checked(MajorityClass(), X, X, np.zeros(3, dtype=np.int64), at)
    True
    >>> sequence_is_checked(MajorityClass(), X, X, np.zeros(3), at)  # float labels: convert
    False
    """
    if not (
        type(X) is np.ndarray
        and type(X_learn) is np.ndarray
        and type(y_learn) is np.ndarray
        and type(learn_at) is np.ndarray
        and X.dtype is _FLOAT32
        and X_learn.dtype is _FLOAT32
        and X.ndim == 2
        and X_learn.ndim == 2
        and X.flags.c_contiguous
        and X_learn.flags.c_contiguous
    ):
        return False
    d, m = X.shape[1], X_learn.shape[0]
    n_features = learner.n_features_in_
    return (
        X_learn.shape[1] == d
        and (n_features is None or n_features == d)
        and y_learn.shape == (m,)
        and y_learn.dtype is (_FLOAT32 if learner.task == "regression" else _INT64)
        and learn_at.shape == (m,)
        and learn_at.dtype is _INT64
    )


_FLOAT32, _INT64 = np.dtype(np.float32), np.dtype(np.int64)


def _checked_schedule(learn_at: object, m: int, n: int) -> np.ndarray:
    at = np.asarray(learn_at)
    if (
        at.shape != (m,)
        or (m and at.dtype.kind not in "iu")
        or (m and (at[0] < 0 or at[-1] > n or bool(np.any(at[1:] < at[:-1]))))
    ):
        raise ValueError(
            f"learn_at must be non-decreasing integers in [0, {n}] (one per learned sample)"
        )
    return at.astype(np.int64, copy=False)


@runtime_checkable
class TaskAware(Protocol, metaclass=_Capability):
    """Told where tasks begin and end: by :func:`~adaptloop.evaluation.continual_evaluation`
    on a task sequence, or on a drifting stream at a known drift or a detector's alarm.

    ``classes``: the new task's labels in a task-incremental sequence, else ``None``;
    ``end_task`` gets the finished task's training data (what a strategy consolidates)."""

    def begin_task(self, task: int, classes: Sequence[int] | None = None) -> None: ...

    def end_task(self, X: np.ndarray, y: np.ndarray) -> None: ...


@runtime_checkable
class KeepsPastData(Protocol, metaclass=_Capability):
    """Says how many past training samples it keeps to learn from again (a replay buffer, an
    episodic memory, every finished task's data): ``stored_samples``, 0 for a method that
    keeps none. The cost a replay-free method avoids, in the continual summary."""

    @property
    def stored_samples(self) -> int: ...


@runtime_checkable
class TaskConditioned(Protocol, metaclass=_Capability):
    """Predicts with a given task's model when the task is known at test time (hypernetworks,
    per-task sub-networks): :func:`~adaptloop.evaluation.continual_evaluation` calls
    ``predict_proba_task(X, task)`` on each test set of a task-incremental sequence."""

    def predict_proba_task(self, X: np.ndarray, task: int) -> np.ndarray: ...


@runtime_checkable
class DriftReporting(Protocol, metaclass=_Capability):
    """Reports where it detected drift: ``alarms``, sample positions in what it learned."""

    @property
    def alarms(self) -> list[int]: ...


@runtime_checkable
class Representing(Protocol, metaclass=_Capability):
    """Gives a hidden representation of its input (error memories, probes, plots)."""

    def hidden_representation(self, X: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class Refitting(Protocol, metaclass=_Capability):
    """Trains under a budget that re-fitting wrappers announce (learning-rate schedules span
    one fit): ``plan_fit(sizes, previous)`` before the ``learn`` calls of a re-fit.
    ``trainer_``: its :class:`~adaptloop.learners.optim.training.Trainer` (``None`` before the first
    ``learn``), whose gradient-norm trace the re-fit that replaces it may read."""

    @property
    def trainer_(self) -> Any: ...

    def plan_fit(self, sizes: Sequence[int], previous: object = None) -> None: ...


@runtime_checkable
class TorchTrainable(Protocol, metaclass=_Capability):
    """A learner whose PyTorch network others may train: what continual-learning plugins
    attach to (their losses, replayed samples and gradient changes run through this step).

    ``network`` (``torch.nn.Module``; ``None`` before the first ``learn``), ``rng`` (the
    mini-batch order), ``epochs`` and ``batch_size`` (a ``learn`` call's passes and mini-batch
    size); ``inputs(X)`` / ``targets(y)``: checked arrays as the tensors the network and loss
    take (standardised, typed); ``forward(inputs)``: the network applied to them, with
    gradients; ``loss(output, target)``: the learner's own training loss;
    ``begin_learn(X)`` starts a ``learn`` call (builds the network on the first one, updates
    running statistics); ``train_step(loss_fn, adjust)`` runs one optimiser step on
    ``loss_fn()`` with ``adjust()`` changing the gradients in place before it."""

    network: Any
    rng: np.random.Generator
    epochs: int
    batch_size: int | None

    def inputs(self, X: np.ndarray) -> Any: ...

    def targets(self, y: np.ndarray) -> Any: ...

    def loss(self, output: Any, target: Any) -> Any: ...

    def forward(self, inputs: Any) -> Any: ...

    def begin_learn(self, X: np.ndarray) -> None: ...

    def train_step(
        self, loss_fn: Callable[[], Any], adjust: Callable[[], None] | None = None
    ) -> float: ...


@dataclass(frozen=True)
class StateRoles:
    """Which parts of a ``state_dict()`` are what, for federation (see :class:`Federated`).

    Paths are dotted from the state's root and take shell wildcards (``"learned.scaler"``,
    ``"model.learned.optimizer"``). ``statistics``: running statistics dicts (``count``,
    ``mean``, ``m2``), pooled exactly by the server; ``local``: kept by each client, never sent
    (optimiser state, schedules, generators, step counters); every other numeric leaf is a
    shared parameter, averaged.

    >>> StateRoles(local=("learned.rng",)).within("model").local
    ('model.learned.rng',)
    """

    local: tuple[str, ...] = ()
    statistics: tuple[str, ...] = ()

    def within(self, prefix: str) -> StateRoles:
        """The same roles for a state nested under ``prefix`` (a wrapper's served model)."""
        return StateRoles(
            tuple(f"{prefix}.{p}" for p in self.local),
            tuple(f"{prefix}.{p}" for p in self.statistics),
        )

    def __add__(self, other: StateRoles) -> StateRoles:
        """Both declarations (a wrapper's own entries and its model's)."""
        return StateRoles(self.local + other.local, self.statistics + other.statistics)

    def paths(self, state: dict[str, Any]) -> tuple[list[str], list[str]]:
        """The dotted paths of ``state``'s local and statistics entries, in the state's order.

        A local entry is listed, not what it holds; a statistics entry is a dict, listed and
        searched on (its other keys may hold local entries).

        >>> state = {"learned": {"w": 1.0, "rng": {"seed": 3}, "scaler": {"count": 2}}}
        >>> StateRoles(local=("learned.rng",), statistics=("learned.s*",)).paths(state)
        (['learned.rng'], ['learned.scaler'])
        """
        local: list[str] = []
        statistics: list[str] = []

        def walk(value: Any, path: str) -> None:
            if path and any(fnmatchcase(path, p) for p in self.local):
                local.append(path)
                return
            if not isinstance(value, dict):
                return
            if path and any(fnmatchcase(path, p) for p in self.statistics):
                statistics.append(path)
            for key, item in value.items():
                walk(item, f"{path}.{key}" if path else str(key))

        walk(state, "")
        return local, statistics


@runtime_checkable
class Federated(Protocol, metaclass=_Capability):
    """Declares which parts of its state are shared parameters, mergeable statistics or local,
    so federation never guesses from key names."""

    def state_roles(self) -> StateRoles: ...


def shares(declaration: Callable[..., Any], **defaults: Any) -> Callable[[C], C]:
    """Class decorator: the class's ``__init__(self, ..., **shared)`` declares the keyword-only
    parameters of ``declaration`` (a function whose signature is a block of parameters several
    classes take, or another class's ``__init__``), ``defaults`` overriding its defaults. The
    signature and annotations of ``__init__`` gain them, so the declaration check, ``clone``,
    ``repr`` and ``adaptloop list`` see them as the class's own; :func:`shared_arguments` reads
    them back in ``__init__``.

    >>> def training(*, lr: float = 0.1, epochs: int = 1): ...
    >>> @shares(training, lr=0.5)
    ... class Net:
    ...     def __init__(self, width: int = 3, **shared: Any) -> None:
    ...         self.width = width
    ...         vars(self).update(shared_arguments(self, training, shared))
    >>> list(inspect.signature(Net.__init__).parameters), vars(Net(epochs=2))
    (['self', 'width', 'lr', 'epochs'], {'width': 3, 'lr': 0.5, 'epochs': 2})
    """
    declaration = inspect.unwrap(declaration)
    block = [
        p.replace(kind=p.KEYWORD_ONLY)
        for p in inspect.signature(declaration).parameters.values()
        if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    unknown = set(defaults) - {p.name for p in block}
    if unknown:
        raise TypeError(f"{declaration.__name__} declares no {sorted(unknown)}")

    def decorate(cls: C) -> C:
        init = inspect.unwrap(cls.__dict__["__init__"])  # under a declaration check, if any
        own = inspect.signature(init)
        kept = [p for p in own.parameters.values() if p.kind is not p.VAR_KEYWORD]
        added = [p.replace(default=defaults.get(p.name, p.default)) for p in block]
        init.__signature__ = own.replace(parameters=[*kept, *added])
        hints = typing.get_type_hints(declaration, include_extras=True)
        init.__annotations__ = {**init.__annotations__, **{p.name: hints[p.name] for p in block}}
        return cls

    return decorate


def shared_arguments(
    owner: object, declaration: Callable[..., Any], given: dict[str, Any]
) -> dict[str, Any]:
    """The parameters of ``declaration`` that ``owner``'s class :func:`shares`: ``given``
    ones, else its signature's defaults (copies); ``TypeError`` for a name it does not take."""
    names = [n for n in inspect.signature(declaration).parameters if n != "self"]
    unknown = set(given) - set(names)
    if unknown:
        raise TypeError(f"{type(owner).__name__} got unexpected parameters {sorted(unknown)}")
    declared = inspect.signature(type(owner).__init__).parameters
    return {n: copy.deepcopy(given[n] if n in given else declared[n].default) for n in names}


class BaseLearner(ABC):
    """Shared plumbing: parameters from ``__init__``, ``clone``, input checks, state framing.

    Subclasses store each ``__init__`` argument under the same attribute name (as in
    scikit-learn), call ``super().__init__(task=..., n_classes=...)``, and implement
    ``_learn``, ``_predict`` (and ``_predict_proba`` for classifiers), ``_get_state`` and
    ``_set_state``. The public methods validate input before any state changes, so a refused
    batch leaves the learner exactly as it was.
    """

    def __init__(self, task: Task, n_classes: int | None = None) -> None:
        if task not in ("binary", "multiclass", "regression"):
            raise ValueError(f"task must be binary, multiclass or regression, got {task!r}")
        if task != "regression":
            n_classes = 2 if n_classes is None and task == "binary" else n_classes
            if not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
                raise ValueError(f"n_classes must be an integer >= 2, got {n_classes!r}")
        self._task: Task = task
        self._n_classes = None if task == "regression" else int(n_classes)
        self.n_features_in_: int | None = None

    # -- parameters -------------------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [
            p.name
            for p in signature.parameters.values()
            if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments, read back from the attributes of the same name."""
        return {name: getattr(self, name) for name in self._param_names()}

    def clone(self) -> BaseLearner:
        """A new, unfitted learner with the same parameters (learner parameters are cloned)."""
        params = {
            name: value.clone() if isinstance(value, Learner) else copy.deepcopy(value)
            for name, value in self.get_params().items()
        }
        return type(self)(**params)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- task ---------------------------------------------------------------------------------
    @property
    def task(self) -> Task:
        return self._task

    @property
    def n_classes(self) -> int | None:
        return self._n_classes

    # -- checked public calls ----------------------------------------------------------------------
    def check_X(self, X: object) -> np.ndarray:
        return check_features(X, self.n_features_in_)

    def check_Xy(self, X: object, y: object) -> tuple[np.ndarray, np.ndarray]:
        X = self.check_X(X)
        return X, check_targets(y, X.shape[0], self._task, self._n_classes)

    def learn(self, X: np.ndarray, y: np.ndarray) -> None:
        """Update on a batch; a refused batch raises ``ValueError`` and changes nothing."""
        X, y = self.check_Xy(X, y)
        if self.n_features_in_ is None:
            self.n_features_in_ = X.shape[1]
        self._learn(X, y)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class codes (int64) for classifiers, values (float32) for regression."""
        return self._predict(self.check_X(X))

    def state_dict(self) -> dict[str, Any]:
        """Everything learned, as plain Python and numpy values (picklable)."""
        return {"n_features_in_": self.n_features_in_, "learned": self._get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state produced by ``state_dict`` of a learner with the same parameters."""
        if not isinstance(state, dict) or not {"n_features_in_", "learned"} <= set(state):
            raise ValueError(
                "state must be a dict from state_dict() with keys n_features_in_, learned"
            )
        self._set_state(copy.deepcopy(state["learned"]))
        self.n_features_in_ = state["n_features_in_"]

    # -- to implement ------------------------------------------------------------------------------
    @abstractmethod
    def _learn(self, X: np.ndarray, y: np.ndarray) -> None:
        """Update on a validated batch."""

    @abstractmethod
    def _predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions for a validated batch."""

    @abstractmethod
    def _get_state(self) -> Any:
        """What was learned, as plain Python / numpy values."""

    @abstractmethod
    def _set_state(self, state: Any) -> None:
        """Restore what ``_get_state`` returned."""


class BaseClassifier(BaseLearner):
    """A ``BaseLearner`` whose ``predict`` is the arg-max of ``predict_proba``."""

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probabilities, shape ``(n, n_classes)``, rows summing to one."""
        return self._predict_proba(self.check_X(X))

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return self._predict_proba(X).argmax(axis=1).astype(np.int64)

    @abstractmethod
    def _predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probabilities for a validated batch."""


def states_equal(a: Any, b: Any) -> bool:
    """Deep equality for state dicts (numpy arrays and torch tensors compared by value).

    >>> states_equal({"w": np.ones(2)}, {"w": np.ones(2)})
    True
    """
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(states_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(states_equal(x, y) for x, y in zip(a, b, strict=True))
    if hasattr(a, "detach") and hasattr(b, "detach"):  # torch tensors
        a, b = a.detach().cpu().numpy(), b.detach().cpu().numpy()
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        same_kind = a.shape == b.shape and a.dtype == b.dtype
        return same_kind and bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    return bool(a == b)
