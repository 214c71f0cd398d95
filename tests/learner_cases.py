"""One small, fast, configured instance of every registered learner, for the shared suite.

``tests/test_learner_suite.py`` runs the checks shipped in :mod:`adaptloop.learners.checks`
over every entry of ``CASES``, for every task the entry lists, and fails while some name in
``adaptloop.learners.registry`` has no entry.

HOW TO ADD A LEARNER (or a wrapper): register it, then add ``CASES["<registry name>"] =
Case(make=..., tasks=...)`` below. ``make(task)`` returns a fresh instance configured for
``task`` -- ``"binary"`` (2 classes), ``"multiclass"`` (3 classes) or ``"regression"`` -- and
must give equal learners on equal calls (fixed seeds). Keep it small: the checks
(:mod:`adaptloop.learners.checks`) feed a few hundred samples of 3 features. A wrapper case
wraps a small base learner, e.g. ``lambda task: MyWrapper(base=linear_base(task),
window=200)``. Set ``min_score`` lower (or
``learns=False``) only if the learner cannot learn ``easy_data`` from 480 samples by design,
and say why.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from adaptloop.learners import (
    DriftReset,
    LinearRegression,
    LogisticRegression,
    RiverLearner,
    Static,
    WindowRetrain,
    hoeffding_adaptive_tree,
)
from adaptloop.learners.checks import CLASSES, LearnerSpec
from adaptloop.learners.models.naive_bayes import ForgettingNB

HAS_TORCH = importlib.util.find_spec("torch") is not None


@dataclass(frozen=True)
class Case:
    """How to build one registered learner for the suite.

    ``make(task)`` -> a fresh learner for that task; ``tasks`` -> the tasks it supports;
    ``needs_torch`` -> skipped without PyTorch; ``learns``, ``min_score``, ``exact_states``:
    as :class:`adaptloop.learners.checks.LearnerSpec`.
    """

    make: Callable[[str], Any]
    tasks: tuple[str, ...]
    needs_torch: bool = False
    learns: bool = True
    min_score: float = 0.8
    exact_states: bool = True

    def spec(self, task: str) -> LearnerSpec:
        """What the shipped checks take: this case for ``task``."""
        return LearnerSpec(
            lambda: self.make(task), task, self.learns, self.min_score, self.exact_states
        )


def linear_base(task: str) -> Any:
    """The small base learner the wrapper cases wrap."""
    if task == "regression":
        return LinearRegression(lr=0.05)
    return LogisticRegression(n_classes=CLASSES[task], lr=0.05)


def _logistic(task: str) -> Any:
    return LogisticRegression(n_classes=CLASSES[task], lr=0.05)


def _mlp(task: str) -> Any:
    """The small MLP: Adam at a constant rate for binary; for multiclass, Drop-Muon with a
    linear-decay schedule (so every continual strategy is checked under Drop-Muon too); for
    regression, Muon with a refined schedule cycling over 24 steps across calls. Muon and
    Drop-Muon take a larger rate (0.1) than Adam here: they learn too slowly at Adam's."""
    from adaptloop.learners import MLPClassifier, MLPRegressor

    if task == "regression":
        return MLPRegressor(
            hidden=(16,),
            lr=0.1,
            epochs=3,
            batch_size=32,
            seed=0,
            optimizer="muon",
            schedule={"name": "refined", "horizon": 24},
        )
    if task == "multiclass":
        return MLPClassifier(
            n_classes=3,
            hidden=(16,),
            lr=0.1,
            epochs=3,
            batch_size=32,
            seed=0,
            optimizer="drop_muon",
            schedule="linear",
        )
    return MLPClassifier(n_classes=2, hidden=(16,), lr=0.01, epochs=3, batch_size=32, seed=0)


def _river(task: str) -> Any:
    from river import linear_model, preprocessing

    if task == "binary":  # a pipeline with learn_many / predict_proba_many: the DataFrame path
        return RiverLearner(
            preprocessing.StandardScaler() | linear_model.LogisticRegression(), n_classes=2
        )
    if task == "multiclass":  # no learn_many: the learn_one loop
        return RiverLearner(
            "tree.HoeffdingTreeClassifier", n_classes=3, params={"grace_period": 50}
        )
    # learn_one loop forced: River's LinearRegression.learn_many takes one step per batch
    return RiverLearner(
        preprocessing.StandardScaler() | linear_model.LinearRegression(), use_many=False
    )


CASES: dict[str, Case] = {
    "logistic": Case(_logistic, ("binary", "multiclass")),
    "softmax": Case(_logistic, ("binary", "multiclass")),
    "linear": Case(lambda task: LinearRegression(lr=0.05), ("regression",), min_score=0.95),
    "forgetting_nb": Case(
        lambda task: ForgettingNB(n_classes=CLASSES[task], half_life=200),
        ("binary", "multiclass"),
    ),
    "mlp": Case(_mlp, ("binary", "multiclass"), needs_torch=True),
    "mlp_regressor": Case(_mlp, ("regression",), needs_torch=True),
    # River models' pickled states are not exact: Hoeffding trees give each leaf Gaussian
    # estimators holding an unseeded random.Random (used only to sample, never to learn or
    # predict), and predict_one fills defaultdicts (StandardScaler.vars) with zeros.
    "river": Case(_river, ("binary", "multiclass", "regression"), exact_states=False),
    "hoeffding_adaptive_tree": Case(
        lambda task: hoeffding_adaptive_tree(n_classes=CLASSES[task], seed=1, grace_period=50),
        ("binary", "multiclass"),
        exact_states=False,
    ),
    # Wrappers, around the small linear base.
    "window_retrain": Case(
        lambda task: WindowRetrain(base=linear_base(task), window=200, every=100),
        ("binary", "multiclass", "regression"),
    ),
    "drift_reset": Case(
        lambda task: DriftReset(base=linear_base(task), window=200),
        ("binary", "multiclass", "regression"),
    ),
    "static": Case(
        lambda task: Static(base=linear_base(task), n_train=300),
        ("binary", "multiclass", "regression"),
    ),
}


def _error_memory(task: str) -> Any:
    """ReLoop2's error memory (sketch index) around the small linear base (keys: the inputs)."""
    from adaptloop.learners import ErrorMemory

    return ErrorMemory(base=linear_base(task), n_bits=4, k=4)


CASES["error_memory"] = Case(_error_memory, ("binary", "multiclass", "regression"))


def _frozen_body(task: str) -> Any:
    """Bristle's learner: a small body pretrained on other samples of the checks' data."""
    from adaptloop.learners.checks import easy_data
    from adaptloop.learners.models.frozen_body import frozen_body

    X, y = easy_data(task, 200, seed=7)
    return frozen_body(
        public=lambda n: (X[:n], y[:n]), n_classes=CLASSES[task], body_hidden=8, body_samples=200
    )


CASES["frozen_body"] = Case(_frozen_body, ("binary", "multiclass"))


def _continual(kind: str, **params: Any) -> Callable[[str], Any]:
    """A continual-learning strategy around the small MLP (learns like it without task hooks)."""

    def make(task: str) -> Any:
        from adaptloop.learners import registry

        return registry.create(kind, base=_mlp(task), **params)

    return make


CASES.update(
    {
        "finetune": Case(_continual("finetune"), ("binary", "multiclass"), needs_torch=True),
        "joint": Case(_continual("joint"), ("binary", "multiclass"), needs_torch=True),
        "er": Case(_continual("er", memory=50), ("binary", "multiclass"), needs_torch=True),
        "ewc": Case(_continual("ewc"), ("binary", "multiclass"), needs_torch=True),
        "lwf": Case(_continual("lwf"), ("binary", "multiclass"), needs_torch=True),
        "agem": Case(_continual("agem"), ("binary", "multiclass"), needs_torch=True),
        # plugins combined, on classifiers and a regressor
        "continual": Case(
            _continual("continual", plugins=[{"kind": "replay", "memory": 50}, "ewc"]),
            ("binary", "multiclass", "regression"),
            needs_torch=True,
        ),
    }
)


def _ctr(task: str) -> Any:
    """The DCN-style CTR model; the suite's features are numeric, so no categorical column."""
    from adaptloop.learners.models.ctr import CTRClassifier

    extra: dict[str, Any] = {"lr": 0.01}
    if task == "multiclass":  # Drop-Muon over its three blocks, cosine schedule per call
        extra = {"lr": 0.1, "optimizer": "drop_muon", "schedule": "cosine"}
    return CTRClassifier(
        n_classes=CLASSES[task],
        categorical=(),
        hidden=(16,),
        epochs=3,
        batch_size=32,
        **extra,
    )


CASES["ctr"] = Case(_ctr, ("binary", "multiclass"), needs_torch=True)

# GEM (one QP constraint per finished task); without end_task it learns as Finetune.
CASES["gem"] = Case(
    _continual("gem", memory_per_task=20), ("binary", "multiclass"), needs_torch=True
)


def _liquid(kind: str, **params: Any) -> Callable[[str], Any]:
    """A small liquid / recurrent regressor: seq_len=1, so a suite row is one step of 3 inputs."""

    def make(task: str) -> Any:
        from adaptloop.learners import registry

        if kind in ("persistence", "seasonal_naive", "ewma"):
            return registry.create(kind, **params)
        settings = {"units": 8, "seq_len": 1, "lr": 0.02, "epochs": 3, "batch_size": 16}
        return registry.create(kind, **{**settings, **params})

    return make


CASES.update(
    {
        "cfc": Case(_liquid("cfc"), ("regression",), needs_torch=True),
        "ltc": Case(_liquid("ltc"), ("regression",), needs_torch=True),
        # the LSTM with Drop-Muon over (recurrent layer, head) and a UBA schedule
        "lstm": Case(
            _liquid("lstm", lr=0.1, optimizer="drop_muon", schedule={"name": "uba", "phi": 1.0}),
            ("regression",),
            needs_torch=True,
        ),
        # next = last value (column seq_len - 1): learns nothing by design, the forecasting floor
        "persistence": Case(_liquid("persistence", seq_len=3), ("regression",), learns=False),
        # the other naive forecasts: nothing fitted by design (seasonal naive keeps past targets)
        "seasonal_naive": Case(
            _liquid("seasonal_naive", seq_len=3, periods=(7, 2)), ("regression",), learns=False
        ),
        "ewma": Case(_liquid("ewma", seq_len=3, alpha=0.5), ("regression",), learns=False),
    }
)


def _pipeline(task: str) -> Any:
    """A scaler in front of the linear learner (dense: fixed width)."""
    from adaptloop.features import StandardScaler, pipeline
    from adaptloop.learners.models.linear import LinearRegression, LogisticRegression

    model = LinearRegression(lr=0.05) if task == "regression" else _logistic(task)
    del LogisticRegression
    return pipeline(StandardScaler(), model, categorical=())


CASES["pipeline"] = Case(_pipeline, ("binary", "multiclass", "regression"), min_score=0.8)
CASES["sparse_logistic"] = Case(lambda task: _sparse_logistic(), ("binary",))


def _sparse_logistic() -> Any:
    from adaptloop.learners.models.sparse_linear import SparseLogisticRegression

    return SparseLogisticRegression(lr=0.1, intercept_lr=0.1)


def _graph(kind: str, **params: Any) -> Callable[[str], Any]:
    """A small graph learner: a suite row is an edge [x0, x1, x2] whose endpoints are x1, x2
    (every row a new pair of nodes, a valid if sparse graph); small networks, short windows."""

    def make(task: str) -> Any:
        from adaptloop.learners import registry

        return registry.create(kind, **params)

    return make


CASES.update(
    {
        # the decoder sees the edge feature x0, so EGCN-O learns the target from it
        "evolvegcn": Case(
            _graph("evolvegcn", variant="O", hidden=4, window=2, lr=0.05, epochs=10, seed=0),
            ("regression",),
            needs_torch=True,
        ),
        # a link predictor scores node pairs; the suite's label is a function of x0, which it
        # ignores (columns before the endpoints), so it cannot learn it by design
        "evolvegcn_link": Case(
            _graph("evolvegcn_link", variant="H", hidden=4, window=2, seed=0),
            ("binary",),
            needs_torch=True,
            learns=False,
        ),
    }
)

# temporal link predictors read [time, ..., src, dst]: the suite's label is a function of x0,
# their time column, which they use only through time differences, so they cannot learn it
CASES.update(
    {
        "tgn_memory": Case(
            _graph("tgn_memory", memory=4, time_dim=4, neighbors=2, correction=0.5, seed=0),
            ("binary",),
            needs_torch=True,
            learns=False,
        ),
        "nat": Case(
            _graph("nat", memory=4, time_dim=4, cache_1hop=2, cache_2hop=2, hidden=4, seed=0),
            ("binary",),
            needs_torch=True,
            learns=False,
        ),
    }
)


def _beyond_replay(kind: str, **params: Any) -> Callable[[str], Any]:
    """The replay-free continual learners (FSA around the small MLP, the hypernetwork)."""

    def make(task: str) -> Any:
        from adaptloop.learners import registry

        if kind == "fsa":
            return registry.create(kind, base=_mlp(task), **params)
        return registry.create(kind, n_classes=CLASSES[task], **params)

    return make


CASES.update(
    {
        "fsa": Case(_beyond_replay("fsa"), ("binary", "multiclass"), needs_torch=True),
        "hypernet": Case(
            _beyond_replay("hypernet", hidden=(16,), chunk_size=64, epochs=3, lr=0.01),
            ("binary", "multiclass"),
            needs_torch=True,
        ),
        "losse": Case(lambda task: _losse(), ("regression",)),
    }
)


def _losse() -> Any:
    from adaptloop.learners import registry

    return registry.create("losse", n_projections=16, n_bins=8, seed=0)


CASES["dst"] = Case(lambda task: _dst(task), ("binary", "multiclass"), needs_torch=True)


def _dst(task: str) -> Any:
    from adaptloop.learners import registry

    return registry.create(
        "dst", n_classes=CLASSES[task], hidden=(16,), density=0.5, epochs=3, seed=0
    )
