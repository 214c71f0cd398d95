"""The models: learners that learn by themselves (linear, torch MLP, CTR, recurrent, River).

One file per model family; each registers its learners by name. The torch learners share
:mod:`~adaptloop.learners.models.torch_core` (training parameters, trainer, scaler, state).
"""

from adaptloop.learners.models.ctr import CTRClassifier
from adaptloop.learners.models.linear import LinearRegression, LogisticRegression
from adaptloop.learners.models.liquid import (
    CfCRegressor,
    LSTMRegressor,
    LTCRegressor,
    Persistence,
)
from adaptloop.learners.models.majority import MajorityClass
from adaptloop.learners.models.mlp import MLPClassifier, MLPRegressor
from adaptloop.learners.models.river_adapter import (
    RiverClassifier,
    RiverLearner,
    RiverRegressor,
    ToRiver,
    hoeffding_adaptive_tree,
)

__all__ = [
    "CTRClassifier",
    "CfCRegressor",
    "LSTMRegressor",
    "LTCRegressor",
    "LinearRegression",
    "LogisticRegression",
    "MLPClassifier",
    "MLPRegressor",
    "MajorityClass",
    "Persistence",
    "RiverClassifier",
    "RiverLearner",
    "RiverRegressor",
    "ToRiver",
    "hoeffding_adaptive_tree",
]
