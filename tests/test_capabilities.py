"""Capabilities are protocols, checked with ``isinstance``; a wrapper has one exactly when the
model it serves has it."""

from __future__ import annotations

import numpy as np
import pytest

from adaptloop.learners import Static, registry
from adaptloop.learners.base import (
    Classifier,
    DriftReporting,
    HasTask,
    Refitting,
    Representing,
    TaskAware,
    TorchTrainable,
)
from adaptloop.learners.models.majority import MajorityClass


def test_a_wrapper_has_a_capability_exactly_when_its_model_has_it():
    wrapped = Static(MajorityClass(n_classes=3))
    assert isinstance(wrapped, Classifier) and isinstance(wrapped, HasTask)
    assert isinstance(wrapped, DriftReporting) and wrapped.alarms == []
    assert not isinstance(wrapped, Representing)
    with pytest.raises(AttributeError, match="no hidden_representation"):
        wrapped.hidden_representation(np.zeros((1, 1)))


def test_a_wrapped_regressor_is_no_classifier_but_passes_representation_on():
    pytest.importorskip("torch")
    wrapped = Static(registry.create("mlp_regressor", hidden=(3,)))
    assert not isinstance(wrapped, Classifier)
    assert isinstance(wrapped, Representing)
    wrapped.learn(np.ones((4, 2), dtype=np.float32), np.ones(4, dtype=np.float32))
    assert wrapped.hidden_representation(np.ones((2, 2), dtype=np.float32)).shape == (2, 3)


def test_torch_learners_are_refitting_and_torch_trainable_linear_ones_are_not():
    pytest.importorskip("torch")
    mlp, logistic = registry.create("mlp"), registry.create("logistic")
    assert isinstance(mlp, Refitting) and isinstance(mlp, TorchTrainable)
    assert not isinstance(logistic, Refitting) and not isinstance(logistic, TorchTrainable)
    assert not isinstance(logistic, TaskAware)
