"""Federating learners whose state is more than numbers: shared weights, pooled statistics, local
optimiser state (adaptloop.distributed.sharing, on the in-process engine)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adaptloop.config import ExperimentError, build_federation, parse_experiment
from adaptloop.distributed import (
    FedAvg,
    FedBuff,
    Federation,
    LocalEngine,
    Moments,
    Server,
    StateSplit,
    StatisticsBlocks,
    make_federated_data,
)
from adaptloop.distributed.client import Client
from adaptloop.distributed.state import initial_state
from adaptloop.learners import LogisticRegression, MLPClassifier
from adaptloop.learners.base import BaseClassifier, StateRoles


def _data(clients: int = 6, seed: int = 1):
    return make_federated_data(
        "hyperplane",
        clients=clients,
        samples_per_client=300,
        concepts=[0],
        drift_at=[],
        class_skew=0.5,
        seed=seed,
        n_features=5,
        mag_change=0.0,
        noise=0.05,
    )


def _mlp() -> MLPClassifier:
    return MLPClassifier(n_classes=2, hidden=(16,), lr=0.01, seed=0)


def _split(learner, n_features: int = 4, **patterns) -> StateSplit:
    return StateSplit.for_learner(learner, n_features, 2, **patterns)


def test_an_mlp_state_splits_into_weights_pooled_scaler_and_local_optimizer():
    split = _split(_mlp())
    assert split.shared_paths == [
        "n_features_in_",
        "learned.model.0.weight",
        "learned.model.0.bias",
        "learned.model.2.weight",
        "learned.model.2.bias",
    ]
    assert split.statistics_paths == ["learned.scaler"]
    assert split.local_paths == ["learned.optimizer", "learned.rng"]
    linear = _split(LogisticRegression(optimizer="adam"))
    assert linear.shared_paths == ["n_features_in_", "learned.theta"]
    assert linear.statistics_paths == ["learned"]  # count, mean, m2 (and the derived inv_std)
    assert linear.local_paths == ["learned.steps", "learned.adam_m", "learned.adam_v"]


def test_share_and_local_patterns_move_entries_between_the_parts():
    own_scaler = _split(_mlp(), local=["scaler"])
    assert own_scaler.statistics_paths == [] and "learned.scaler" in own_scaler.local_paths
    moments = _split(LogisticRegression(optimizer="adam"), share=["adam_*"])
    assert moments.shared_paths == [
        "n_features_in_",
        "learned.theta",
        "learned.adam_m",
        "learned.adam_v",
    ]
    dotted = _split(_mlp(), local=["learned.model.2.*"])
    assert "learned.model.2.weight" in dotted.local_paths
    assert "learned.model.0.weight" in dotted.shared_paths
    with pytest.raises(ValueError, match="local must be a list of path patterns"):
        _split(_mlp(), local="scaler")


class _Moody(BaseClassifier):
    """A classifier whose state holds a string next to its weights, and running statistics
    and a step counter it declares (``roles``), under keys no default would know."""

    def __init__(self, n_classes: int = 2, seed: int = 0, roles: StateRoles | None = None):
        super().__init__(task="binary", n_classes=n_classes)
        self.seed = seed
        self.roles = roles
        self.w = np.zeros(2)
        self.mood = "calm"
        self.ticks = 0
        self.seen = {"count": 0, "mean": np.zeros(2), "m2": np.zeros(2)}

    def _learn(self, X, y):
        self.w += 1
        self.ticks += 1

    def _predict_proba(self, X):
        return np.full((len(X), 2), 0.5)

    def _get_state(self):
        return {"w": self.w.copy(), "mood": self.mood, "ticks": self.ticks, "seen": self.seen}

    def _set_state(self, state):
        self.w, self.mood, self.ticks = state["w"], state["mood"], state["ticks"]
        self.seen = state["seen"]

    def state_roles(self) -> StateRoles:
        return self.roles or StateRoles()


class _Anonymous:
    """A learner (predict, learn, state) that does not declare what it shares."""

    def predict(self, X):
        return np.zeros(len(X), dtype=np.int64)

    def learn(self, X, y):
        pass

    def state_dict(self):
        return {"w": np.zeros(2)}

    def load_state_dict(self, state):
        pass

    def clone(self):
        return _Anonymous()


def test_the_split_follows_the_learners_declaration_not_key_names():
    roles = StateRoles(local=("learned.ticks", "learned.mood"), statistics=("learned.seen",))
    split = _split(_Moody(roles=roles))
    assert split.shared_paths == ["n_features_in_", "learned.w"]
    same = StateSplit(initial_state(_Moody(), 4, 2), roles)  # a state and a declaration
    assert same.local_paths == split.local_paths
    assert split.statistics_paths == ["learned.seen"]
    assert split.local_paths == ["learned.mood", "learned.ticks"]
    # without a declaration the same keys are shared: the counter is averaged, the dict of
    # count/mean/m2 is three shared leaves, not pooled statistics
    undeclared = _split(_Moody(roles=StateRoles(local=("learned.mood",))))
    assert undeclared.statistics_paths == []
    assert "learned.ticks" in undeclared.shared_paths
    assert "learned.seen.m2" in undeclared.shared_paths


def test_a_learner_that_does_not_declare_its_roles_is_refused_by_name():
    with pytest.raises(ValueError, match=r"_Anonymous does not say .* implement state_roles\(\)"):
        _split(_Anonymous())
    with pytest.raises(ValueError, match=r"_Anonymous does not say"):
        Federation(_data(clients=2), _Anonymous())


def test_a_non_numeric_leaf_outside_the_local_set_is_refused_with_its_path():
    with pytest.raises(ValueError, match=r"'learned\.mood' is a str.*local patterns"):
        _split(_Moody())
    assert _split(_Moody(), local=["mood"]).local_paths == ["learned.mood"]
    wrong = StateRoles(local=("learned.mood",), statistics=("learned",))
    with pytest.raises(ValueError, match=r"'learned' is declared running statistics"):
        _split(_Moody(roles=wrong))
    # sharing the optimiser of the MLP would average its settings: a bool is refused by path
    bool_leaf = r"'learned\.optimizer\.param_groups\.0\.amsgrad' is a bool"
    with pytest.raises(ValueError, match=bool_leaf):
        _split(_mlp(), share=["optimizer"])


@pytest.mark.parametrize("learner", [_mlp(), LogisticRegression(lr=0.1)], ids=["mlp", "logistic"])
def test_pooled_statistics_of_two_clients_equal_those_of_their_concatenated_data(learner):
    split = _split(learner)
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, (40, 4)), rng.normal(-1.0, 0.5, (25, 4))]
    vector = split.without_statistics(split.flatten(split.template))
    server = Server(FedAvg(clients_per_round=2, local_steps=1), vector, np.ones(2) / 2, 0,
                    split.statistics)  # fmt: skip
    for task, X in zip(server.start(0.0), batches, strict=True):
        client = learner.clone()
        client.load_state_dict(split.compose(split.template, task.model))
        client.learn(X.astype(np.float32), (X[:, 0] > 0).astype(np.int64))
        server.receive(task.task_id, split.flatten(client.state_dict()) - task.model, len(X), 1.0)
    assert server.version == 1
    state = split.compose(split.template, server.model)
    scaler = state["learned"]["scaler"] if "scaler" in state["learned"] else state["learned"]
    both = Moments.of(np.concatenate(batches).astype(np.float32))
    assert scaler["count"] == 65
    np.testing.assert_allclose(scaler["mean"], both.mean, rtol=1e-9)
    np.testing.assert_allclose(scaler["m2"], both.m2, rtol=1e-9)
    if "inv_std" in scaler:  # derived from the pooled statistics, never averaged
        np.testing.assert_allclose(scaler["inv_std"], np.sqrt(65 / both.m2), rtol=1e-9)


def test_clients_keep_their_own_optimizer_state_across_tasks():
    data = _data(clients=2)
    split = _split(_mlp(), n_features=5)
    clients = [Client(i, _mlp(), data.shards[i], split, batch_size=16, seed=0) for i in range(2)]
    start = split.flatten(split.template)
    template_step = float(split.template["learned"]["optimizer"]["state"][0]["step"])
    deltas = [client.run(start, steps=3, time=0.0)[0] for client in clients]
    new_global = start + 0.5 * (deltas[0] + deltas[1])
    clients[0].run(new_global, steps=2, time=0.0)
    adam = [c.learner.state_dict()["learned"]["optimizer"]["state"][0] for c in clients]
    # the moments went on from the client's own (3 + 2 steps), not from the global learner's
    steps = [float(a["step"]) - template_step for a in adam]
    assert steps == [5.0, 3.0]
    template_moments = split.template["learned"]["optimizer"]["state"][0]["exp_avg"]
    assert not torch.equal(adam[0]["exp_avg"], template_moments)
    assert not torch.equal(adam[0]["exp_avg"], adam[1]["exp_avg"])
    # while its weights came from the global model it was sent
    clients[0].run(new_global, steps=1, time=0.0)
    reloaded = clients[0].learner.state_dict()["learned"]["optimizer"]["state"][0]
    assert float(reloaded["step"]) == template_step + 6


@pytest.mark.parametrize(
    "rule",
    [lambda: FedAvg(clients_per_round=6, local_steps=5), lambda: FedBuff(3, 5, server_lr=0.5)],
    ids=["fedavg", "fedbuff"],
)
def test_a_torch_mlp_federates_and_learns(rule):
    fed = Federation(_data(), _mlp(), duration=80.0, eval_every=10.0, slow_fraction=0.0)
    trace = LocalEngine().run(fed, rule())
    accuracy = [row["accuracy"] for row in trace.rows]
    assert accuracy[0] < 0.65 and accuracy[-1] > 0.85 and trace.rows[-1]["version"] >= 8


def test_a_standardised_linear_model_federates_with_positive_scales():
    fed = Federation(_data(), LogisticRegression(lr=0.1), duration=80.0, eval_every=10.0)
    trace = LocalEngine().run(fed, FedBuff(buffer_size=3, local_steps=5, server_lr=0.5))
    assert trace.rows[-1]["accuracy"] > 0.85


EXPERIMENT = """
seed = 3
[stream]
kind = "hyperplane"
concepts = [0]
n_features = 5
[federation]
clients = 3
samples_per_client = 100
duration = 20.0
learner = { kind = "mlp", hidden = [8] }
share = ["optimizer"]
[rules.fedbuff]
kind = "fedbuff"
"""


def test_a_federated_experiment_names_a_leaf_it_cannot_share():
    experiment = parse_experiment(EXPERIMENT)  # the learner's state is known once built
    with pytest.raises(ExperimentError, match=r"federation: state entry 'learned\.opt"):
        build_federation(experiment)
    build_federation(
        parse_experiment(EXPERIMENT.replace('share = ["optimizer"]', 'local = ["scaler"]'))
    )


def test_statistics_a_client_restarted_count_only_its_samples_since():
    blocks = StatisticsBlocks([(0, 1)])  # vector = [count, mean, m2]
    pooled, sent = np.array([10.0, 1.0, 5.0]), np.array([10.0, 1.0, 5.0])
    trained = np.array([2.0, 4.0, 2.0])  # the client reset, then learned [3, 5]
    merged = Moments(10.0, np.array([1.0]), np.array([5.0])).merge(
        Moments(2.0, np.array([4.0]), np.array([2.0]))
    )
    out = blocks.absorb(pooled, sent, trained - sent)
    assert out.tolist() == pytest.approx([merged.count, merged.mean[0], merged.m2[0]])
