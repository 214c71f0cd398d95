"""The shared learner suite: the checks shipped in :mod:`adaptloop.learners.checks`, run on
every registered learner and wrapper.

Each learner comes from ``tests/learner_cases.py`` (one ``Case`` per registry name; see the
docstring there for how to add one) and is checked for every task its case lists, one test per
check.
"""

from __future__ import annotations

import numpy as np
import pytest
from learner_cases import CASES, HAS_TORCH

from adaptloop.learners import LogisticRegression, registry
from adaptloop.learners.checks import CHECKS, LearnerSpec, check_learner, check_outputs

PARAMS = [
    pytest.param(
        name,
        task,
        check,
        marks=[pytest.mark.skipif(not HAS_TORCH, reason="needs PyTorch")]
        if case.needs_torch
        else [],
        id=f"{name}-{task}-{check.__name__.removeprefix('check_')}",
    )
    for name, case in sorted(CASES.items())
    for task in case.tasks
    for check in CHECKS
]


@pytest.mark.parametrize(("name", "task", "check"), PARAMS)
def test_learner_passes_the_check(name, task, check):
    check(CASES[name].spec(task))


def test_every_registered_learner_has_a_case():
    missing = sorted(set(registry.names()) - set(CASES))
    assert not missing, (
        f"registered learners without a case in tests/learner_cases.py: {missing} "
        "(add one: see the docstring of learner_cases.py)"
    )


def test_cases_name_registered_learners():
    assert set(CASES) <= set(registry.names())


# -- the checks catch broken learners -------------------------------------------------------------
class ForgetfulClone(LogisticRegression):
    """Broken on purpose: its clone keeps what was learned."""

    def clone(self):
        twin = super().clone()
        twin.load_state_dict(self.state_dict())
        return twin


class WrongDtype(LogisticRegression):
    """Broken on purpose: predicts float codes."""

    def predict(self, X):
        return super().predict(X).astype(np.float64)


@pytest.mark.parametrize(
    ("broken", "message"),
    [(ForgetfulClone, "clone is not unfitted"), (WrongDtype, "expected int64")],
)
def test_check_learner_reports_what_is_broken(broken, message):
    with pytest.raises(AssertionError, match=message):
        check_learner(lambda: broken(lr=0.05), task="binary")


def test_a_check_runs_alone_on_a_spec():
    check_outputs(LearnerSpec(lambda: LogisticRegression(n_classes=3), task="multiclass"))
