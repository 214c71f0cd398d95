"""Every learner declares its state's roles for federation (``Federated``), and
``distributed.sharing`` splits its state by that declaration."""

from __future__ import annotations

import numpy as np
import pytest
from learner_cases import CASES, HAS_TORCH

from adaptloop.distributed.sharing import StateSplit
from adaptloop.learners.base import Federated
from adaptloop.learners.checks import easy_data

PARAMS = [
    pytest.param(
        name,
        task,
        marks=[
            *(
                [pytest.mark.skipif(not HAS_TORCH, reason="needs torch")]
                if case.needs_torch
                else []
            ),
        ],
        id=f"{name}-{task}",
    )
    for name, case in sorted(CASES.items())
    for task in case.tasks
]


@pytest.mark.parametrize(("name", "task"), PARAMS)
def test_the_split_follows_the_declared_roles(name, task):
    learner = CASES[name].make(task)
    X, y = easy_data(task, 64)
    learner.learn(X, y)
    assert isinstance(learner, Federated)
    state = learner.state_dict()
    roles = learner.state_roles()
    local, statistics = roles.paths(state)
    try:
        split = StateSplit(state, roles)
    except ValueError:  # opaque (pickled) entries: not federable
        return
    assert local == split.local_paths
    assert statistics == split.statistics_paths


def test_a_wrapper_nests_its_model_roles_under_learned_model():
    pytest.importorskip("torch")
    from adaptloop.learners import MLPClassifier, WindowRetrain

    roles = WindowRetrain(MLPClassifier(hidden=(2,)), window=10).state_roles()
    assert roles.local == (
        "learned.model.learned.optimizer",
        "learned.model.learned.rng",
        "learned.n_seen",
    )
    assert roles.statistics == ("learned.model.learned.scaler",)


def test_a_learner_with_opaque_state_keeps_it_local():
    from adaptloop.learners import DriftReset, LogisticRegression

    learner = DriftReset(LogisticRegression(), window=10)
    learner.learn(np.zeros((4, 2), dtype=np.float32), np.array([0, 1, 0, 1]))
    local, _ = learner.state_roles().paths(learner.state_dict())
    assert "learned.detector" in local
