"""Pipelines: encoders in front of a learner, and a learner themselves.

``pipeline(step, ..., learner)`` (or ``step | step | learner``) encodes each batch and hands
the encoded batch to the learner. Each step takes its columns (by name or index; by default
one-hot and hashing take the stream's categorical columns, the scaler the others) and gives a
block; the learner sees the blocks in step order, then the columns no step took, unchanged.
This is River's ``(Select(...) | OneHotEncoder()) + (Select(...) | StandardScaler()) |
learner`` in one call.

``learn(X, y)`` lets every step learn the batch first and then encodes it (River's pipeline
learns an unsupervised step before transforming with it), ``predict`` encodes with the state
as it is. A learner that takes sparse input (:class:`SparseInput`: ``SparseLogisticRegression``)
gets a CSR matrix and may follow a growing width; any other learner gets a dense float32
array, so its width must stay fixed (one-hot with ``max_categories``, hashing). When every
step is ``stable`` and the learner has ``test_then_train``, so has the pipeline: exact
test-then-train inside a batch at compiled speed (with label delay too: ``learn_at``).

The pipeline's state is every step's state and the learner's (``state_dict``).

>>> import numpy as np
>>> from adaptloop.features.encoders import OneHotEncoder
>>> from adaptloop.learners.models.sparse_linear import SparseLogisticRegression
>>> model = OneHotEncoder(columns=("user",)) | SparseLogisticRegression(lr=0.5)
>>> model.bind_features(("user", "price"))
>>> X = np.array([[1, 0.5], [2, 0.1], [1, 0.4]], dtype=np.float32)
>>> y, learn_at = np.array([1, 0, 1]), np.arange(1, 4)  # learn each sample after predicting it
>>> model.test_then_train(X, X, y, learn_at, proba=True)[:, 1].round(3).tolist()
[0.5, 0.504, 0.572]
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp

from adaptloop.features.encoders import Encoder, EncoderSpec, registry
from adaptloop.learners.base import (
    BaseLearner,
    Federated,
    HasTask,
    Learner,
    StateRoles,
    is_classifier,
)
from adaptloop.learners.base import registry as learners
from adaptloop.learners.wrappers.base import resolve_learner
from adaptloop.parameters import ParameterError
from adaptloop.validation import Task, check_features, check_targets

__all__ = ["Pipeline", "SparseInput", "pipeline"]


@runtime_checkable
class SparseInput(Protocol):
    """A learner that takes ``scipy.sparse`` input whose width may grow between batches, and
    learns sample by sample inside a call (``test_then_train``, the ``Sequential`` protocol)."""

    def test_then_train(
        self,
        X: Any,
        X_learn: Any,
        y_learn: np.ndarray,
        learn_at: np.ndarray,
        proba: bool = False,
    ) -> np.ndarray: ...

    @property
    def width(self) -> int: ...


def make_encoder(spec: object, where: str = "steps") -> Encoder:
    """An encoder from an encoder, a registered name or ``{"kind": name, ...}``."""
    if isinstance(spec, Encoder):
        return spec
    if isinstance(spec, str):
        return registry.create(spec)
    if isinstance(spec, dict) and isinstance(spec.get("kind"), str):
        return registry.create(spec["kind"], **{k: v for k, v in spec.items() if k != "kind"})
    raise ParameterError(
        where, f"must be an encoder, an encoder name or a table with a 'kind', got {spec!r}"
    )


@learners.register("pipeline")
class Pipeline(BaseLearner):
    """Encoders (``steps``) in front of a ``learner`` (see the module doc). ``feature_names``
    and ``categorical`` (names) describe the input, as the stream's info does; experiment
    files fill them in. Steps may be encoders, names or ``{kind = ..., ...}`` tables."""

    def __init__(
        self,
        steps: Sequence[EncoderSpec],
        learner: Learner,
        feature_names: tuple[str, ...] | None = None,
        categorical: tuple[str, ...] | None = None,
    ) -> None:
        self.steps = [make_encoder(s, f"Pipeline.steps[{i}]") for i, s in enumerate(steps)]
        self.learner = resolve_learner(learner, "learner")
        self.feature_names = None if feature_names is None else tuple(feature_names)
        self.categorical = None if categorical is None else tuple(categorical)
        self.n_features_in_ = None
        self._sparse = isinstance(self.learner, SparseInput)
        self._bound_to: int | None = None
        self._learning = False
        if self.feature_names is not None:
            self.bind_features(self.feature_names, self.categorical)

    # -- composition ------------------------------------------------------------------------
    def __or__(self, other: Any) -> Pipeline:
        raise TypeError("a pipeline already ends in a learner; put encoders before it")

    def bind_features(
        self,
        names: Sequence[str] | None,
        categorical: Sequence[str] | None = None,
        d: int | None = None,
    ) -> None:
        """Resolve every step's columns against the input's feature ``names`` (or ``d``
        columns without names); ``categorical``: the categorical ones (default: every column
        not taken by a scaler)."""
        width = len(names) if names is not None else d
        assert width is not None
        cats = (
            set(range(width))
            if categorical is None
            else {list(names).index(c) for c in categorical}
        )  # type: ignore[arg-type]
        claimed: set[int] = set()
        for step in self.steps:
            if step.columns is not None:
                step.bind(names, ())
                claimed |= set(step.index_ or ())
        for step in self.steps:
            if step.columns is None:
                pool = cats if step.categorical else set(range(width)) - cats
                step.bind(names, sorted(pool - claimed))
                claimed |= set(step.index_ or ())
        self._rest = [j for j in range(width) if j not in claimed]
        self._bound_to = width
        if not self._sparse:
            for step in self.steps:
                if step.grows:
                    raise ParameterError(
                        "Pipeline.steps",
                        f"{type(step).__name__} grows its width (no max_categories), but "
                        f"{type(self.learner).__name__} needs a fixed one: set max_categories, "
                        "use hashing, or a learner that takes sparse input (sparse_logistic)",
                    )

    # -- task ---------------------------------------------------------------------------------
    @property
    def task(self) -> Task | None:  # type: ignore[override]
        return self.learner.task if isinstance(self.learner, HasTask) else None

    @property
    def n_classes(self) -> int | None:
        return self.learner.n_classes if isinstance(self.learner, HasTask) else None

    # -- encoding -------------------------------------------------------------------------------
    def check_X(self, X: object) -> np.ndarray:
        """A checked batch; before the first ``learn`` the steps' columns are resolved for it
        and released again (only ``learn`` fixes the input width)."""
        X = check_features(X, self._bound_to)
        bound = self._bound_to is not None
        if not bound:
            self.bind_features(self.feature_names, self.categorical, X.shape[1])
        try:
            for step in self.steps:
                step.check(X)
        finally:
            if not bound and not self._learning:
                self._unbind()
        return X

    def _unbind(self) -> None:
        self._bound_to = None
        for step in self.steps:
            step.index_ = None if step.columns is None else step._indices(None)

    def learn(self, X: np.ndarray, y: np.ndarray) -> None:
        """Let every step learn the batch, then the learner learn its encoding."""
        self._learning = True
        try:
            X, y = self.check_Xy(X, y)
        except ValueError:
            if self.n_features_in_ is None:
                self._unbind()
            raise
        finally:
            self._learning = False
        self.n_features_in_ = self._bound_to
        self._learn(X, y)

    def _encoded(self, X: np.ndarray) -> np.ndarray | sp.csr_matrix:
        """:meth:`transform` of a checked batch, before the first ``learn`` too."""
        bound = self._bound_to is not None
        if not bound:
            self.bind_features(self.feature_names, self.categorical, X.shape[1])
        try:
            return self.transform(X)
        finally:
            if not bound:
                self._unbind()

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return self.learner.predict(self._encoded(X))

    def check_Xy(self, X: object, y: object) -> tuple[np.ndarray, np.ndarray]:
        X = self.check_X(X)
        task = self.task or "regression"
        return X, check_targets(y, X.shape[0], task, self.n_classes)

    def transform(self, X: np.ndarray) -> np.ndarray | sp.csr_matrix:
        """The batch as the learner sees it: the steps' blocks, then the untouched columns."""
        blocks = [step.transform(X) for step in self.steps]
        if self._rest:
            blocks.append(X[:, self._rest])
        if self._sparse:
            if len(blocks) == 1 and sp.issparse(blocks[0]):
                return blocks[0]
            return sp.hstack([sp.csr_matrix(b) for b in blocks], format="csr")
        dense = [b.toarray() if sp.issparse(b) else b for b in blocks]
        return np.hstack(dense).astype(np.float32) if dense else X[:, :0]

    # -- the learner calls ------------------------------------------------------------------------
    def _learn(self, X: np.ndarray, y: np.ndarray) -> None:
        for step in self.steps:
            step.learn(X)
        self.learner.learn(self.transform(X), y)

    @property
    def predict_proba(self) -> Any:
        """The learner's probabilities of the encoded batch; missing for a regressor."""
        if not is_classifier(self.learner):
            raise AttributeError(
                f"Pipeline has no predict_proba: {type(self.learner).__name__} has none"
            )
        return lambda X: self.learner.predict_proba(self._encoded(self.check_X(X)))  # type: ignore[attr-defined]

    @property
    def test_then_train(self) -> Any:
        """Exact test-then-train (the ``Sequential`` protocol, see the learner's
        ``test_then_train``): present when every step is ``stable`` and the learner takes
        sparse input; missing otherwise. The steps learn ``X_learn`` first: a value they learn
        gets a column whose weight is still zero until its sample is learned, so the
        predictions equal a sample-by-sample loop."""
        if not (self._sparse and all(s.stable for s in self.steps)):
            raise AttributeError(
                "Pipeline has no test_then_train: a step is not stable or the learner has none"
            )

        def run(
            X: np.ndarray,
            X_learn: np.ndarray,
            y_learn: np.ndarray,
            learn_at: np.ndarray,
            proba: bool = False,
        ) -> np.ndarray:
            self._learning = True
            try:  # either part may be empty (no label arrived yet; labels left at the end)
                if len(y_learn):
                    X_learn, y_learn = self.check_Xy(X_learn, y_learn)
                if len(X):
                    X = self.check_X(X)
                if self._bound_to is None:
                    raise ValueError("test_then_train needs rows before the input width is known")
            except ValueError:
                if self.n_features_in_ is None:
                    self._unbind()
                raise
            finally:
                self._learning = False
            self.n_features_in_ = self._bound_to
            X = np.asarray(X, dtype=np.float32).reshape(-1, self._bound_to)
            X_learn = np.asarray(X_learn, dtype=np.float32).reshape(-1, self._bound_to)
            y_learn = np.asarray(y_learn)
            if len(X_learn):
                for encoder in self.steps:
                    encoder.learn(X_learn)
            encoded = self.transform(X_learn)
            # test-then-train without delay predicts the rows it learns: encode them once
            same = X is X_learn or (X.shape == X_learn.shape and np.array_equal(X, X_learn))
            return self.learner.test_then_train(  # type: ignore[attr-defined]
                encoded if same else self.transform(X), encoded, y_learn, learn_at, proba
            )

        return run

    # -- state ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "n_features_in_": self._bound_to,
            "learned": {
                "steps": {str(i): s.state_dict() for i, s in enumerate(self.steps)},
                "learner": self.learner.state_dict(),
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        learned = state["learned"]
        if len(learned["steps"]) != len(self.steps):
            raise ValueError(
                f"state has {len(learned['steps'])} steps, the pipeline {len(self.steps)}"
            )
        self.learner.load_state_dict(copy.deepcopy(learned["learner"]))
        for i, step in enumerate(self.steps):
            step.load_state_dict(copy.deepcopy(learned["steps"][str(i)]))
        if state["n_features_in_"] is not None and self._bound_to is None:
            self.bind_features(self.feature_names, self.categorical, state["n_features_in_"])

    @property
    def state_roles(self) -> Any:
        """The learner's roles under ``learned.learner``, each step's state as its ``role``
        says (a scaler's statistics pooled, a one-hot table local); missing when the learner
        declares none."""
        if not isinstance(self.learner, Federated):
            raise AttributeError(
                f"Pipeline has no state_roles: {type(self.learner).__name__} declares none"
            )
        learner = self.learner

        def roles() -> StateRoles:
            steps = [(f"learned.steps.{i}", s.role) for i, s in enumerate(self.steps)]
            own = StateRoles(
                local=tuple(p for p, role in steps if role == "local"),
                statistics=tuple(p for p, role in steps if role == "statistics"),
            )
            return learner.state_roles().within("learned.learner") + own

        return roles

    def _get_state(self) -> Any:  # state_dict is overridden
        return self.state_dict()["learned"]

    def _set_state(self, state: Any) -> None:
        self.load_state_dict({"n_features_in_": self._bound_to, "learned": state})

    def clone(self) -> Pipeline:
        return Pipeline(
            [s.clone() for s in self.steps],
            self.learner.clone(),
            self.feature_names,
            self.categorical,
        )


def pipeline(
    *parts: Any,
    feature_names: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
) -> Any:
    """Compose encoders and a final learner: ``pipeline(OneHotEncoder(), LogisticRegression())``.

    Encoders only (no learner yet) give a :class:`Steps` chain that ``|`` extends; a part that
    is a pipeline's steps chain is flattened.
    """
    steps: list[Encoder] = []
    for i, part in enumerate(parts):
        if isinstance(part, Steps):
            steps.extend(part.steps)
        elif isinstance(part, Encoder):
            steps.append(part)
        elif i == len(parts) - 1 and isinstance(part, Learner):
            return Pipeline(
                steps,
                part,
                None if feature_names is None else tuple(feature_names),
                None if categorical is None else tuple(categorical),
            )
        else:
            raise TypeError(
                f"pipeline part {i} must be an encoder (or the last one a learner), got {part!r}"
            )
    return Steps(steps)


class Steps:
    """Encoders chained with ``|`` that do not end in a learner yet."""

    def __init__(self, steps: list[Encoder]) -> None:
        self.steps = steps

    def __or__(self, other: Any) -> Any:
        return pipeline(self, other)
