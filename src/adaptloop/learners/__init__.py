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

__all__ = [
    "BaseClassifier",
    "BaseLearner",
    "Classifier",
    "Learner",
    "is_classifier",
    "registry",
    "states_equal",
]
