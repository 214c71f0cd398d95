"""What adapts: the ``Learner`` protocol and capabilities (``base``), the models
(``models/``), the wrappers (``wrappers/``), the continual strategies, the torch training
machinery (``optim/``) and the learner checks (``checks``), all registered by name.

>>> from adaptloop.learners import registry
>>> "logistic" in registry
True
"""

import importlib
import pkgutil

from adaptloop.learners import models, wrappers
from adaptloop.learners.base import (
    BaseClassifier,
    BaseLearner,
    Classifier,
    Learner,
    is_classifier,
    registry,
    states_equal,
)
from adaptloop.learners.continual import Continual
from adaptloop.learners.detectors import detectors, make_detector
from adaptloop.learners.models.ctr import CTRClassifier
from adaptloop.learners.models.forecast import EWMA, Persistence, SeasonalNaive
from adaptloop.learners.models.linear import LinearRegression, LogisticRegression
from adaptloop.learners.models.liquid import CfCRegressor, LSTMRegressor, LTCRegressor
from adaptloop.learners.models.mlp import MLPClassifier, MLPRegressor
from adaptloop.learners.models.river_adapter import (
    RiverClassifier,
    RiverLearner,
    RiverRegressor,
    ToRiver,
    hoeffding_adaptive_tree,
)
from adaptloop.learners.wrappers.base import Wrapper
from adaptloop.learners.wrappers.drift_reset import DriftReset
from adaptloop.learners.wrappers.error_memory import ErrorMemory
from adaptloop.learners.wrappers.static import Static
from adaptloop.learners.wrappers.window import WindowRetrain

__all__ = [
    "Continual",
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
__all__ += ["CfCRegressor", "LSTMRegressor", "LTCRegressor"]
__all__ += ["EWMA", "Persistence", "SeasonalNaive"]

# Each module of models/ and wrappers/ registers its learners when imported: a new file there is
# registered (experiment files and `adaptloop list` see it) without an edit here.
for _package in (models, wrappers):
    for _module in pkgutil.iter_modules(_package.__path__):
        importlib.import_module(f"{_package.__name__}.{_module.name}")
