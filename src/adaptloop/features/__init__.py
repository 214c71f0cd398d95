"""Online encoders and pipelines in front of a learner (see ``docs/features.md``).

Encoders (registered by name in :data:`registry`: ``one_hot``, ``hashing``,
``standard_scaler``) learn from the stream as it arrives and keep all their state in
``state_dict``; :func:`pipeline` or ``|`` puts them in front of any learner, and the result is a
learner (registered as ``pipeline``; an experiment file writes ``steps = [...]`` in a learner
table).

>>> from adaptloop.features import OneHotEncoder, StandardScaler, registry
>>> from adaptloop.learners.models.sparse_linear import SparseLogisticRegression
>>> model = OneHotEncoder() | StandardScaler() | SparseLogisticRegression()
>>> type(model).__name__, [type(s).__name__ for s in model.steps], registry.names()
('Pipeline', ['OneHotEncoder', 'StandardScaler'], ['hashing', 'one_hot', 'standard_scaler'])
"""

from adaptloop.features.encoders import (
    Encoder,
    EncoderSpec,
    FeatureHasher,
    OneHotEncoder,
    StandardScaler,
    registry,
)
from adaptloop.features.pipeline import Pipeline, SparseInput, Steps, pipeline

__all__ = [
    "Encoder",
    "EncoderSpec",
    "FeatureHasher",
    "OneHotEncoder",
    "Pipeline",
    "SparseInput",
    "StandardScaler",
    "Steps",
    "pipeline",
    "registry",
]
