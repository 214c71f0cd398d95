"""Adapters between River and adaptloop, both ways.

``RiverLearner`` makes any River classifier or regressor (a pipeline too) an adaptloop learner:
batches in, batches out, checked input, ``state_dict`` and ``clone``. ``ToRiver`` does the
reverse: it makes an adaptloop learner a River estimator, usable wherever River expects one
(``evaluate.progressive_val_score``, pipelines, meta-estimators).

>>> import numpy as np
>>> from river import linear_model
>>> X = np.array([[0.0, 1.0], [1.0, 0.0]] * 50, dtype=np.float32)
>>> y = np.array([1, 0] * 50)
>>> learner = RiverLearner(linear_model.LogisticRegression(), n_classes=2)
>>> learner.learn(X, y)
>>> learner.predict(X[:2])
array([1, 0])
>>> river_model = ToRiver(LogisticRegression())
>>> for xi, yi in zip(X, y):
...     river_model.learn_one({"a": float(xi[0]), "b": float(xi[1])}, int(yi))
>>> river_model.predict_one({"a": 0.0, "b": 1.0})
1
"""

from __future__ import annotations

import copy
import importlib
import inspect
import math
import pickle
from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
from annotated_types import Ge
from river import base as river_base
from river import compose

from adaptloop.learners.base import (
    BaseClassifier,
    BaseLearner,
    HasTask,
    Learner,
    StateRoles,
    check_sequence,
    is_classifier,
    registry,
)
from adaptloop.learners.models.linear import LogisticRegression  # noqa: F401  (module doctest)
from adaptloop.validation import Seed, check_features


def _resolve(model: object, params: dict[str, Any] | None, seed: int | None) -> Any:
    """A River estimator from an instance or a dotted name under ``river``."""
    if params is not None and not isinstance(params, dict):
        raise ValueError(f"params must be a dict of constructor arguments, got {params!r}")
    if isinstance(model, str):
        path = model.removeprefix("river.")
        module_name, _, class_name = path.rpartition(".")
        try:
            factory = getattr(importlib.import_module(f"river.{module_name}"), class_name)
        except (ImportError, AttributeError, ValueError):
            raise ValueError(
                f"model {model!r} is not a River estimator; expected a dotted name under "
                "river such as 'tree.HoeffdingAdaptiveTreeClassifier'"
            ) from None
        kwargs = dict(params or {})
        if seed is not None and "seed" not in kwargs:
            try:
                accepts_seed = "seed" in inspect.signature(factory).parameters
            except (TypeError, ValueError):
                accepts_seed = False
            if accepts_seed:
                kwargs["seed"] = seed
        try:
            estimator = factory(**kwargs)
        except TypeError as error:
            raise ValueError(
                f"cannot build River model {model!r} with params {kwargs}: {error}"
            ) from error
    elif isinstance(model, river_base.Estimator):
        # Learn on a copy: the given instance stays untouched (it is the clone prototype).
        estimator = model.clone(params) if params else copy.deepcopy(model)
    else:
        raise ValueError(
            f"model must be a River estimator or a dotted name under river, got {model!r}"
        )
    if not isinstance(estimator, (river_base.Classifier, river_base.Regressor)):
        raise ValueError(
            f"model must be a River classifier or regressor, got {type(estimator).__name__}"
        )
    return estimator


def _has(obj: object, *methods: str) -> bool:
    return all(callable(getattr(obj, m, None)) for m in methods)


def _supports_many(model: object, final: tuple[str, ...]) -> bool:
    """Whether the whole model works on DataFrames: every pipeline step has *_many methods.

    A River ``Pipeline`` always defines ``learn_many``, but it only works when each of its
    steps does, so pipelines (and transformer unions) are checked step by step.
    """
    if isinstance(model, compose.Pipeline):
        steps = list(model.steps.values())
        return all(_transformer_many(s) for s in steps[:-1]) and _supports_many(steps[-1], final)
    return _has(model, "learn_many", *final)


def _transformer_many(step: object) -> bool:
    if isinstance(step, compose.TransformerUnion):
        return all(_transformer_many(t) for t in step.transformers.values())
    if isinstance(step, compose.Pipeline):
        return all(_transformer_many(s) for s in step.steps.values())
    return _has(step, "transform_many", "learn_many")


def _build_caches(model: object) -> None:
    """Build a River pipeline's lazily cached execution plan now (nested pipelines too).

    River builds it on the first ``learn_one`` or ``predict_one``; building it up front keeps
    the pickled state a function of what was learned, not of whether a prediction came first.
    """
    if isinstance(model, compose.Pipeline):
        for step in model.steps.values():
            _build_caches(step)
        build = getattr(model, "_build_plan", None)
        if callable(build) and getattr(model, "_plan", None) is None:
            build()
    elif isinstance(model, compose.TransformerUnion):
        for step in model.transformers.values():
            _build_caches(step)


def _label_code(label: object) -> int | None:
    """The class code River reports a label under (we feed int codes; some models say bool)."""
    if isinstance(label, (bool, int, np.integer)):
        return int(label)
    if isinstance(label, (float, np.floating)) and float(label).is_integer():
        return int(label)
    return None


@registry.register("river")
class RiverLearner(BaseLearner):
    """Any River classifier or regressor as an adaptloop learner.

    ``RiverLearner(...)`` is a :class:`RiverClassifier` (with ``predict_proba``) around a River
    classifier and a :class:`RiverRegressor` around a River regressor.

    ``model`` is a River estimator (a pipeline too) or a dotted name under ``river`` such as
    ``"tree.HoeffdingAdaptiveTreeClassifier"``, built with the constructor arguments in
    ``params`` (and ``seed``, when the class takes one and ``params`` does not set it), so an
    experiment file can name it. A given instance is copied, never updated in place.

    Classifiers learn and predict class codes ``0..n_classes-1`` (``n_classes`` defaults to 2;
    a binary-only River model refuses more); ``predict_proba`` gives ``(n, n_classes)``
    arrays: classes the model has not seen get 0, rows are renormalised, and a model that
    knows nothing yet gives uniform rows. Regressors (``n_classes`` must stay None) predict
    float32.

    Batches go through ``learn_many`` / ``predict_many`` / ``predict_proba_many`` with a
    pandas DataFrame when the whole model supports them (every pipeline step), else through a
    ``learn_one`` loop over dict rows; a batch of one always takes the ``*_one`` path.
    ``use_many=False`` forces the loop: River's mini-batch methods are not equivalent to the
    loop (``linear_model`` takes one mean-gradient step per batch, and
    ``preprocessing.StandardScaler.learn_many`` can produce negative variances on
    near-constant columns). Features are named ``x0 .. x{d-1}`` unless ``feature_names`` are
    given.

    Unless ``use_many=True``, it is :class:`~adaptloop.learners.base.Sequential`:
    ``test_then_train`` runs River's own loop (``predict_one``, ``learn_one``) in the order of
    the schedule, so ``prequential`` gives River's numbers at any batch size.

    ``model_`` is the River estimator being trained; ``state_dict`` holds it pickled;
    ``clone`` uses River's ``clone``.

    >>> import numpy as np
    >>> from river import tree
    >>> learner = RiverLearner("tree.HoeffdingTreeClassifier", n_classes=3,
    ...                        params={"grace_period": 20})
    >>> learner.predict_proba(np.zeros((1, 2), dtype=np.float32))
    array([[0.33333333, 0.33333333, 0.33333333]])
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(size=(300, 2)).astype(np.float32)
    >>> y = (X[:, 0] * 3).astype(np.int64)
    >>> learner.learn(X, y)
    >>> float((learner.predict(X) == y).mean()) > 0.8
    True
    """

    def __new__(cls, model: Any = None, *args: Any, **kwargs: Any) -> RiverLearner:
        # (``model`` is optional only so that pickle and copy can call ``cls.__new__(cls)``.)
        if cls is RiverLearner:
            params = kwargs.get("params", args[1] if len(args) > 1 else None)
            estimator = _resolve(model, params, None)  # the kind only; __init__ seeds it
            classifier = isinstance(estimator, river_base.Classifier)
            cls = RiverClassifier if classifier else RiverRegressor
        return super().__new__(cls)

    def __init__(
        self,
        model: Any,
        n_classes: Annotated[int, Ge(2)] | None = None,
        params: dict[str, Any] | None = None,
        feature_names: Sequence[str] | None = None,
        use_many: bool | None = None,
        seed: Seed | None = None,
    ) -> None:
        if feature_names is not None and (
            isinstance(feature_names, str)
            or not all(isinstance(name, str) for name in feature_names)
            or len(set(feature_names)) != len(feature_names)
        ):
            raise ValueError(f"feature_names must be distinct strings, got {feature_names!r}")
        estimator = _resolve(model, params, seed)
        classifier = isinstance(estimator, river_base.Classifier)
        if classifier != isinstance(self, BaseClassifier):
            kind = "classifier" if classifier else "regressor"
            raise ValueError(
                f"{type(self).__name__} cannot wrap the River {kind} {type(estimator).__name__}; "
                "use RiverLearner, which picks the right class"
            )
        if classifier:
            n = 2 if n_classes is None else n_classes
            super().__init__(task="binary" if n == 2 else "multiclass", n_classes=n)
            if self._n_classes > 2 and not estimator._multiclass:
                raise ValueError(
                    f"River model {type(estimator).__name__} is binary only, "
                    f"but n_classes={self._n_classes}"
                )
        else:
            if n_classes is not None:
                raise ValueError(
                    f"n_classes is for classifiers, but {type(estimator).__name__} is a River "
                    "regressor; leave n_classes unset"
                )
            super().__init__(task="regression")
        self.model = model
        self.params = params
        self.feature_names = feature_names
        self.use_many = use_many
        self.seed = seed
        _build_caches(estimator)
        self._model = estimator
        final = ("predict_proba_many",) if classifier else ("predict_many",)
        many = _supports_many(estimator, final)
        if use_many and not many:
            raise ValueError(
                f"use_many=True, but River model {type(estimator).__name__} (or a step of it) "
                "has no learn_many / predict_many"
            )
        self._many = many if use_many is None else bool(use_many)

    @property
    def model_(self) -> Any:
        """The River estimator this learner trains: a copy of ``model`` (or built from its
        name, ``params`` and ``seed``), updated by ``learn`` and replaced by
        ``load_state_dict``. Read it to inspect what River learned; learn through the adapter.

        >>> from river import tree
        >>> learner = RiverLearner("tree.HoeffdingTreeClassifier", params={"grace_period": 30})
        >>> type(learner.model_).__name__, learner.model_.grace_period
        ('HoeffdingTreeClassifier', 30)
        """
        return self._model

    # -- adaptloop protocol -------------------------------------------------------------------
    def clone(self) -> RiverLearner:
        """A new, unfitted adapter: River's ``clone`` for an instance, a rebuild for a name."""
        model = self.model.clone() if isinstance(self.model, river_base.Base) else self.model
        return type(self)(
            model,
            n_classes=self._n_classes,
            params=copy.deepcopy(self.params),
            feature_names=copy.deepcopy(self.feature_names),
            use_many=self.use_many,
            seed=self.seed,
        )

    def check_X(self, X: object) -> np.ndarray:
        X = check_features(X, self.n_features_in_)
        if self.feature_names is not None and X.shape[1] != len(self.feature_names):
            raise ValueError(
                f"X has {X.shape[1]} features, but feature_names names {len(self.feature_names)}"
            )
        return X

    # -- conversions ----------------------------------------------------------------------------
    def _names(self, d: int) -> list[str]:
        if self.feature_names is not None:
            return list(self.feature_names)
        return [f"x{i}" for i in range(d)]

    def _rows(self, X: np.ndarray) -> list[dict[str, float]]:
        names = self._names(X.shape[1])
        return [dict(zip(names, row)) for row in X.tolist()]  # noqa: B905 (same length)

    def _frame(self, X: np.ndarray) -> Any:
        import pandas as pd

        return pd.DataFrame(X.astype(np.float64), columns=self._names(X.shape[1]))

    def _proba_row(self, proba: dict[Any, float], out: np.ndarray) -> None:
        for label, p in proba.items():
            code = _label_code(label)
            if code is not None and 0 <= code < out.shape[0] and p is not None:
                out[code] = float(p)

    @staticmethod
    def _normalise(P: np.ndarray) -> np.ndarray:
        P[~np.isfinite(P) | (P < 0)] = 0.0
        total = P.sum(axis=1, keepdims=True)
        empty = total[:, 0] <= 0
        P[empty] = 1.0 / P.shape[1]
        total[empty] = 1.0
        P /= total
        return P

    # -- exact test-then-train -------------------------------------------------------------------
    @property
    def test_then_train(self) -> Any:
        """Exact test-then-train (:class:`~adaptloop.learners.base.Sequential`): River's
        ``*_one`` calls in order; missing with ``use_many=True`` (mini-batches by request)."""
        if self.use_many:
            raise AttributeError("use_many=True learns per batch: no test_then_train")
        return self._test_then_train

    def _test_then_train(
        self,
        X: np.ndarray,
        X_learn: np.ndarray,
        y_learn: np.ndarray,
        learn_at: np.ndarray,
        proba: bool = False,
    ) -> np.ndarray:
        X, X_learn, y_learn, at = check_sequence(self, X, X_learn, y_learn, learn_at)
        if self.n_features_in_ is None and len(X_learn):
            self.n_features_in_ = X_learn.shape[1]
        predict = self._predict_proba if proba else self._predict  # type: ignore[attr-defined]
        out, j = [predict(X[:0])], 0
        for i in range(len(X) + 1):  # batches of one: the *_one path
            while j < len(at) and at[j] <= i:
                self._learn(X_learn[j : j + 1], y_learn[j : j + 1])
                j += 1
            if i < len(X):
                out.append(predict(X[i : i + 1]))
        return np.concatenate(out)

    # -- hooks ----------------------------------------------------------------------------------
    def _learn(self, X: np.ndarray, y: np.ndarray) -> None:
        model = self._model
        if self._many and X.shape[0] > 1:
            import pandas as pd

            model.learn_many(self._frame(X), pd.Series(y))
            return
        for x, target in zip(self._rows(X), y.tolist()):  # noqa: B905 (same length)
            model.learn_one(x, target)

    def _get_state(self) -> dict[str, Any]:
        return {"model": pickle.dumps(self._model, protocol=pickle.HIGHEST_PROTOCOL)}

    def state_roles(self) -> StateRoles:
        """No local entries or statistics: the state is the pickled River model, which cannot
        be averaged (federation refuses it, naming ``learned.model``)."""
        return StateRoles()

    def _set_state(self, state: Any) -> None:
        if not isinstance(state, dict) or set(state) != {"model"}:
            raise ValueError("state of RiverLearner must be a dict with key 'model'")
        try:
            model = pickle.loads(state["model"])
        except Exception as error:  # noqa: BLE001 - any unpickling failure is a bad state
            raise ValueError(f"state of RiverLearner holds no River model: {error}") from error
        if type(model) is not type(self._model):
            raise ValueError(
                f"state holds a {type(model).__name__}, this learner wraps a "
                f"{type(self._model).__name__}"
            )
        _build_caches(model)
        self._model = model


# ``__new__`` takes ``*args, **kwargs``: tell ``inspect`` (and so the registry and
# ``adaptloop list``) the real parameters, those of ``__init__``.
RiverLearner.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    list(inspect.signature(RiverLearner.__init__).parameters.values())[1:]
)


class RiverClassifier(RiverLearner, BaseClassifier):
    """A :class:`RiverLearner` around a River classifier (what ``RiverLearner`` builds for one).

    >>> from river import naive_bayes
    >>> type(RiverLearner(naive_bayes.GaussianNB(), n_classes=3)).__name__
    'RiverClassifier'
    """

    def _predict_proba(self, X: np.ndarray) -> np.ndarray:
        n, k = X.shape[0], self._n_classes
        P = np.zeros((n, k))
        if self._many and n > 1:
            frame = self._model.predict_proba_many(self._frame(X))
            for label in frame.columns:
                code = _label_code(label)
                if code is not None and 0 <= code < k:
                    P[:, code] = np.asarray(frame[label], dtype=np.float64)
        else:
            for row, x in zip(P, self._rows(X)):  # noqa: B905 (same length)
                self._proba_row(self._model.predict_proba_one(x), row)
        return self._normalise(P)


class RiverRegressor(RiverLearner):
    """A :class:`RiverLearner` around a River regressor (what ``RiverLearner`` builds for one).

    >>> import numpy as np
    >>> from river import linear_model
    >>> learner = RiverLearner(linear_model.LinearRegression())
    >>> type(learner).__name__, learner.predict(np.ones((2, 1), dtype=np.float32))
    ('RiverRegressor', array([0., 0.], dtype=float32))
    """

    def _predict(self, X: np.ndarray) -> np.ndarray:
        if self._many and X.shape[0] > 1:
            values = np.array(self._model.predict_many(self._frame(X)), dtype=np.float64)
        else:
            values = np.array(
                [_as_float(self._model.predict_one(x)) for x in self._rows(X)], dtype=np.float64
            )
        values[~np.isfinite(values)] = 0.0
        return values.astype(np.float32)


def _as_float(value: object) -> float:
    if value is None:
        return 0.0
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


@registry.register("hoeffding_adaptive_tree")
def hoeffding_adaptive_tree(
    n_classes: int = 2,
    seed: int = 0,
    grace_period: int = 200,
    delta: float = 1e-7,
    leaf_prediction: str = "nba",
    max_depth: int | None = None,
) -> RiverLearner:
    """River's Hoeffding Adaptive Tree classifier, as a ``RiverLearner``.

    Parameters are River's (``tree.HoeffdingAdaptiveTreeClassifier``), with its defaults.

    >>> learner = hoeffding_adaptive_tree(n_classes=2, seed=1, grace_period=50)
    >>> type(learner).__name__, learner.n_classes
    ('RiverClassifier', 2)
    """
    from river import tree

    model = tree.HoeffdingAdaptiveTreeClassifier(
        grace_period=grace_period,
        delta=delta,
        leaf_prediction=leaf_prediction,
        max_depth=max_depth,
        seed=seed,
    )
    return RiverLearner(model, n_classes=n_classes)


class ToRiver:
    """An adaptloop learner as a River estimator (``river.base.Classifier`` or ``Regressor``).

    ``ToRiver(learner)`` is an instance of a subclass of ``river.base.Classifier`` when the
    learner has ``predict_proba``, else of ``river.base.Regressor``. Dict samples become
    ``(1, d)`` float32 arrays in a fixed key order: ``feature_names`` when given, else the keys
    of the first sample seen, in its order (extra keys are ignored, a missing key is refused).
    Labels are class codes (``int`` or ``bool``); ``predict_one`` returns a code and
    ``predict_proba_one`` a dict ``{code: probability}`` over all ``n_classes`` codes.

    >>> from river import evaluate, metrics
    >>> from adaptloop.learners.models.linear import LogisticRegression
    >>> data = [({"a": float(i % 2), "b": float(i % 3)}, i % 2 == 1) for i in range(200)]
    >>> model = ToRiver(LogisticRegression(lr=0.1))
    >>> evaluate.progressive_val_score(data, model, metrics.Accuracy())
    Accuracy: 99.00%
    """

    def __new__(cls, learner: Learner | None = None, *args: Any, **kwargs: Any) -> ToRiver:
        # (``learner`` is optional only so that pickle and copy can call ``cls.__new__(cls)``.)
        if cls is ToRiver:
            cls = _ToRiverClassifier if is_classifier(learner) else _ToRiverRegressor
        return super().__new__(cls)

    def __init__(self, learner: Learner, feature_names: Sequence[str] | None = None) -> None:
        if not isinstance(learner, Learner):
            raise ValueError(
                f"learner must be an adaptloop learner (predict, learn, ...), got {learner!r}"
            )
        if feature_names is not None and (
            isinstance(feature_names, str)
            or not all(isinstance(name, str) for name in feature_names)
        ):
            raise ValueError(f"feature_names must be a list of strings, got {feature_names!r}")
        self.learner = learner
        self.feature_names = feature_names
        self._keys: list[Any] | None = list(feature_names) if feature_names is not None else None

    def _array(self, x: dict[Any, Any]) -> np.ndarray:
        if not isinstance(x, dict):
            raise ValueError(f"x must be a dict of features, got {type(x).__name__}")
        if self._keys is None:
            self._keys = list(x)
        try:
            values = [x[key] for key in self._keys]
        except KeyError as error:
            raise ValueError(f"x has no feature {error.args[0]!r}") from None
        try:
            return np.array([values], dtype=np.float32)
        except (TypeError, ValueError):
            raise ValueError(f"x has non-numeric feature values: {values!r}") from None

    def learn_one(self, x: dict[Any, Any], y: Any) -> None:  # type: ignore[override]
        """Update the learner on one sample."""
        self.learner.learn(self._array(x), np.array([y]))

    def predict_one(self, x: dict[Any, Any]) -> Any:  # type: ignore[override]
        """The predicted class code (classifiers) or value (regressors)."""
        return self.learner.predict(self._array(x))[0].item()

    def clone(
        self, new_params: dict[str, Any] | None = None, include_attributes: bool = False
    ) -> ToRiver:
        """A fresh ``ToRiver`` around ``learner.clone()`` (River's ``clone`` contract)."""
        if include_attributes:
            return copy.deepcopy(self)
        params = {"learner": self.learner.clone(), "feature_names": self.feature_names}
        params.update(new_params or {})
        return ToRiver(**params)


class _ToRiverClassifier(ToRiver, river_base.Classifier):
    @property
    def _multiclass(self) -> bool:
        learner = self.learner
        return isinstance(learner, HasTask) and (learner.n_classes or 2) > 2

    def predict_proba_one(self, x: dict[Any, Any]) -> dict[int, float]:  # type: ignore[override]
        """Probability of each class code."""
        proba = self.learner.predict_proba(self._array(x))[0]  # type: ignore[attr-defined]
        return {code: float(p) for code, p in enumerate(proba)}


class _ToRiverRegressor(ToRiver, river_base.Regressor):
    pass
