"""What adapts: the ``Learner`` protocol, base learners and wrappers, registered by name.

>>> from adaptloop.learners import registry
>>> "logistic" in registry
True
"""

from adaptloop.learners.base import (
    BaseClassifier,
    BaseLearner,
    Classifier,
    Learner,
    is_classifier,
    registry,
    states_equal,
)
from adaptloop.learners.continual import AGEM, ER, EWC, ContinualStrategy, Finetune, Joint, LwF
from adaptloop.learners.ctr import CTRClassifier
from adaptloop.learners.detectors import detectors, make_detector
from adaptloop.learners.drift_reset import DriftReset
from adaptloop.learners.error_memory import ErrorMemory
from adaptloop.learners.linear import LinearRegression, LogisticRegression
from adaptloop.learners.liquid import CfCRegressor, LSTMRegressor, LTCRegressor, Persistence
from adaptloop.learners.mlp import MLPClassifier, MLPRegressor
from adaptloop.learners.river_adapter import (
    RiverClassifier,
    RiverLearner,
    RiverRegressor,
    ToRiver,
    hoeffding_adaptive_tree,
)
from adaptloop.learners.static import Static
from adaptloop.learners.window import WindowRetrain
from adaptloop.learners.wrapping import Wrapper

__all__ = [
    "AGEM",
    "ER",
    "EWC",
    "ContinualStrategy",
    "Finetune",
    "Joint",
    "LwF",
    "BaseClassifier",
    "BaseLearner",
    "Classifier",
    "Learner",
    "is_classifier",
    "registry",
    "states_equal",
    "CTRClassifier",
    "DriftReset",
    "ErrorMemory",
    "Static",
    "WindowRetrain",
    "Wrapper",
    "detectors",
    "make_detector",
    "LinearRegression",
    "LogisticRegression",
    "MLPClassifier",
    "MLPRegressor",
    "RiverClassifier",
    "RiverLearner",
    "RiverRegressor",
    "ToRiver",
    "hoeffding_adaptive_tree",
]
__all__ += ["CfCRegressor", "LSTMRegressor", "LTCRegressor", "Persistence"]
