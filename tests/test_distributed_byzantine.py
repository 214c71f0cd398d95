"""Byzantine clients, noisy links and robust aggregation (distributed.attacks, the robust blocks
of distributed.aggregate inside the rules)."""

from __future__ import annotations

import numpy as np
import pytest

from adaptloop.config import ExperimentError, build_federation, parse_experiment
from adaptloop.distributed import Federation, LocalEngine, make_federated_data
from adaptloop.distributed.aggregate import (
    RobustBlock,
    centered_clip,
    coordinate_median,
    fltrust,
    krum,
    trimmed_mean,
    weighted_sum,
)
from adaptloop.distributed.attacks import Adversary, Attack
from adaptloop.distributed.rules import FedAvg, FedBuff, FedCompass, FedFix
from adaptloop.learners import LogisticRegression

ROBUST = ["median", "trimmed_mean", "krum", "multi_krum", "clip"]


def _honest_and_bad(seed: int = 0, n_honest: int = 9, n_bad: int = 3):
    rng = np.random.default_rng(seed)
    honest = [np.array([1.0, -1.0, 0.5]) + 0.1 * rng.normal(size=3) for _ in range(n_honest)]
    bad = [np.array([-40.0, 40.0, -20.0]) for _ in range(n_bad)]
    return honest, bad


@pytest.mark.parametrize("kind", ROBUST)
def test_every_robust_block_stays_near_the_honest_mean_and_flags_the_attackers(kind):
    honest, bad = _honest_and_bad()
    block = RobustBlock(kind, fraction=0.25)
    direction, influence = block(honest + bad, [1.0 / 12] * 12)
    assert np.linalg.norm(direction - np.mean(honest, axis=0)) < 0.3
    assert np.all(influence[len(honest) :] < 0.5)
    assert np.mean(influence[: len(honest)]) > np.mean(influence[len(honest) :])
    plain, _ = RobustBlock("mean")(honest + bad, [1.0 / 12] * 12)
    assert np.linalg.norm(plain - np.mean(honest, axis=0)) > 5


def test_the_mean_block_is_the_rules_weighted_sum():
    deltas = [np.array([1.0, 2.0]), np.array([3.0, -1.0])]
    direction, influence = RobustBlock("mean")(deltas, [0.2, 0.3])
    assert direction.tolist() == weighted_sum(deltas, [0.2, 0.3]).tolist()
    assert influence.tolist() == [1.0, 1.0]


@pytest.mark.parametrize("kind", ROBUST)
def test_a_robust_block_keeps_the_weights_total_so_staleness_still_shrinks_the_step(kind):
    deltas = [np.array([1.0]), np.array([1.0]), np.array([1.0]), np.array([1.0])]
    fresh, _ = RobustBlock(kind)(deltas, [0.25] * 4)
    stale, _ = RobustBlock(kind)(deltas, [0.125] * 4)  # s(tau) = 1/2 for everyone
    assert fresh.tolist() == pytest.approx([1.0]) and stale.tolist() == pytest.approx([0.5])


def test_weighted_median_and_trimmed_mean_follow_the_weights():
    deltas = [np.array([0.0]), np.array([1.0]), np.array([2.0])]
    assert coordinate_median(deltas, [1, 1, 5])[0].tolist() == [2.0]
    assert trimmed_mean(deltas, [1, 1, 5], trim=0.0)[0].tolist() == pytest.approx([11 / 7])
    points = [np.array([0.0]), np.array([1.0]), np.array([2.0]), np.array([10.0])]
    assert krum(points, [1, 1, 1, 1], byzantine=0)[1].tolist() == [0.0, 1.0, 0.0, 0.0]


def test_centered_clip_bounds_each_inputs_pull_by_the_radius():
    direction, factors = centered_clip(
        [np.array([0.0]), np.array([100.0])], [0.5, 0.5], center=np.zeros(1), radius=1.0
    )
    assert direction.tolist() == [0.5] and factors.tolist() == [1.0, 0.01]


def test_fltrust_trusts_by_direction_rescales_to_the_reference_and_keeps_counters():
    honest, bad = _honest_and_bad()
    reference = np.array([2.0, -2.0, 1.0])  # the server's own update: the honest direction
    block = RobustBlock("fltrust")
    direction, trust = block(honest + bad, [1.0 / 12] * 12, lambda: reference)
    assert np.all(trust[len(honest) :] == 0.0) and np.all(trust[: len(honest)] > 0.95)
    assert np.isclose(np.linalg.norm(direction), np.linalg.norm(reference), rtol=0.02)
    # the rule's weights multiply the trust; entries outside the parameters are not rescaled
    deltas = [np.array([1.0, 0.0, 5.0]), np.array([0.0, 3.0, 7.0])]
    direction, trust = fltrust(deltas, [3.0, 1.0], np.array([1.0, 1.0, 0.0]), np.array([0, 1]))
    assert np.allclose(trust, np.sqrt(0.5))
    assert np.allclose(direction, [0.75 * np.sqrt(2), 0.25 * np.sqrt(2), 5.5])
    opposed, trust = fltrust([-reference], [1.0], reference)  # no one trusted: no step
    assert trust.tolist() == [0.0] and not opposed.any()
    with pytest.raises(ValueError, match="root data"):
        block(honest, [1.0] * len(honest))
    with pytest.raises(ValueError, match="reference has shape"):
        fltrust(honest, [1.0] * len(honest), np.zeros(2))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: RobustBlock("bulyan"),
            "robust must be one of mean, median, .*fltrust, got .bulyan.",
        ),
        (lambda: RobustBlock("median", fraction=0.5), r"robust_fraction must be in \[0, 0.5\)"),
        (lambda: RobustBlock("fltrust", bucket=2), "robust_bucket must be 1 with"),
        (lambda: FedBuff(robust="bulyan"), "FedBuff.robust"),
        (lambda: FedAvg(robust_fraction=0.6), "FedAvg.robust_fraction"),
        (lambda: trimmed_mean([np.ones(1)], [1.0], trim=0.5), "trim must be"),
        (lambda: coordinate_median([np.ones(1)], [-1.0]), "weights must be >= 0"),
        (lambda: Attack("sign_flip", clients=(9,)).byzantine(4), r"clients \[9\] not in 0..3"),
        (lambda: Attack("flip"), "Attack.kind"),
    ],
)
def test_bad_input_is_refused_by_name(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# -- attacks -------------------------------------------------------------------------------------
def test_attacks_pick_a_seeded_share_of_the_clients_or_the_ones_listed():
    assert len(Attack("sign_flip", fraction=0.25).byzantine(32, seed=0)) == 8
    assert Attack("sign_flip").byzantine(32, 0) == Attack("sign_flip").byzantine(32, 0)
    assert Attack("gaussian", clients=(1, 3)).byzantine(32) == {1, 3}
    assert Attack("none").byzantine(32) == frozenset()


def _adversary(kind: str, **kw) -> Adversary:
    return Adversary(Attack(kind, clients=(0,), **kw), n_clients=4, n_classes=3, seed=0)


def test_sign_flip_gaussian_and_stale_replay_change_only_the_byzantine_clients():
    delta = np.array([1.0, -2.0, 0.5])
    assert _adversary("sign_flip", scale=4.0).uplink(0, delta, 0.0).tolist() == [-4, 8, -2]
    assert _adversary("sign_flip").uplink(1, delta, 0.0).tolist() == delta.tolist()
    noise = _adversary("gaussian", std=3.0).uplink(0, np.zeros(20_000), 0.0)
    assert noise.std() == pytest.approx(3.0, rel=0.05)
    stale = _adversary("stale", lag=2)
    sent = [stale.uplink(0, np.array([float(k)]), 0.0).tolist() for k in range(4)]
    assert sent == [[0.0], [0.0], [1.0], [2.0]]  # the delta of 2 tasks before, once there is one


def test_an_attack_waits_for_its_start_time():
    adversary = _adversary("sign_flip", start=10.0)
    assert adversary.uplink(0, np.ones(2), 5.0).tolist() == [1.0, 1.0]
    assert adversary.uplink(0, np.ones(2), 10.0).tolist() == [-4.0, -4.0]


def test_alie_sends_the_honest_mean_minus_z_standard_deviations():
    adversary = _adversary("alie", z=1.5)
    adversary.uplink(1, np.array([1.0, 0.0]), 0.0)
    adversary.uplink(2, np.array([3.0, 2.0]), 0.0)
    assert adversary.uplink(0, np.array([9.0, 9.0]), 0.0).tolist() == [0.5, -0.5]
    assert Attack("alie").alie_z(32, 8) == pytest.approx(0.5791, abs=1e-3)  # Baruch et al.


def test_communication_noise_has_the_set_snr_and_spares_the_statistics():
    keep = np.array([1.0] * 999 + [0.0])
    adversary = Adversary(Attack("none", snr_db=10.0), 4, 2, seed=0, keep=keep)
    signal = np.ones(1000)
    received = adversary.downlink(signal)
    noise = received[:-1] - 1.0
    assert 10 * np.log10(1.0 / np.mean(noise**2)) == pytest.approx(10.0, abs=0.5)
    assert received[-1] == 1.0
    assert adversary.uplink(1, signal, 0.0)[-1] == 1.0


def _federation(
    attack: Attack | None, clients: int = 12, duration: float = 80.0, root_samples: int = 0
) -> Federation:
    data = make_federated_data(
        "hyperplane", clients=clients, samples_per_client=200, concepts=[0], seed=0,
        n_features=5, mag_change=0.0, noise=0.0,
    )  # fmt: skip
    learner = LogisticRegression(lr=0.1, standardize=False)
    return Federation(data, learner, duration=duration, eval_every=20.0, slow_fraction=0.0,
                      attack=attack, root_samples=root_samples)  # fmt: skip


def test_label_flipping_clients_train_on_flipped_labels():
    fed = _federation(Attack("label_flip", clients=(2,)))
    flipped, honest = fed.make_client(2), fed.make_client(3)
    assert flipped.flip_classes == 2 and honest.flip_classes is None
    X, y = flipped._batch(0)
    original = fed.data.shards[2].train[0][1]
    assert set(np.unique(y)) <= {0, 1} and len(y) == flipped.batch_size
    assert np.mean(original) != pytest.approx(np.mean(y)) or len(set(original)) == 1


def test_no_attack_leaves_a_run_as_it_was():
    plain = LocalEngine().run(_federation(None), FedBuff(buffer_size=3, local_steps=2))
    none = LocalEngine().run(_federation(Attack("none")), FedBuff(buffer_size=3, local_steps=2))
    assert [r["accuracy"] for r in plain.rows] == [r["accuracy"] for r in none.rows]
    assert plain.byzantine == [] and plain.influence == []


def test_sign_flip_breaks_fedbuff_and_a_robust_buffer_holds_and_names_the_attackers():
    attack = Attack("sign_flip", fraction=0.25, scale=4.0)
    clean = LocalEngine().run(_federation(None), FedBuff(buffer_size=6, local_steps=2))
    fed = _federation(attack)
    attacked = LocalEngine().run(fed, FedBuff(buffer_size=6, local_steps=2))
    robust = LocalEngine().run(fed, FedBuff(buffer_size=6, local_steps=2, robust="median"))
    acc = {k: t.rows[-1]["accuracy"] for k, t in [("c", clean), ("a", attacked), ("r", robust)]}
    assert acc["a"] < acc["c"] - 0.15 and acc["r"] > acc["c"] - 0.05
    bad = set(robust.byzantine)
    assert len(bad) == 3 and attacked.influence == []
    down = robust.down_weighted_by_client
    assert sum(down.get(c, 0) for c in bad) > sum(v for c, v in down.items() if c not in bad)
    assert robust.rows[-1]["down_weighted"] == sum(down.values())


@pytest.mark.parametrize(
    "rule",
    [
        FedAvg(clients_per_round=6, local_steps=2, robust="median"),
        FedFix(window=4.0, local_steps=2, robust="trimmed_mean"),
        FedCompass(max_steps=4, robust="clip"),
    ],
    ids=["fedavg", "fedfix", "fedcompass"],
)
def test_every_server_rule_takes_a_robust_block_and_records_influence(rule):
    trace = LocalEngine().run(_federation(Attack("sign_flip"), duration=60.0), rule)
    assert trace.influence and all(0.0 <= k <= 1.0 for _, _, k in trace.influence)
    assert {c for _, c, _ in trace.influence} <= set(range(12))
    assert trace.rows[-1]["accuracy"] > 0.6


def test_fltrust_trusts_the_servers_root_data_over_a_byzantine_half():
    """FLTrust's point: the server's own update on a few clean rows is the anchor, so even
    half of the clients attacking cannot steer it (a median has no honest majority left)."""
    clean = LocalEngine().run(_federation(None), FedBuff(buffer_size=6, local_steps=2))
    attack = Attack("sign_flip", fraction=0.5, scale=4.0)
    fed = _federation(attack, root_samples=50)
    trusted = LocalEngine().run(fed, FedBuff(buffer_size=6, local_steps=2, robust="fltrust"))
    median = LocalEngine().run(fed, FedBuff(buffer_size=6, local_steps=2, robust="median"))
    final = clean.rows[-1]["accuracy"]
    assert trusted.rows[-1]["accuracy"] > final - 0.05
    assert median.rows[-1]["accuracy"] < trusted.rows[-1]["accuracy"] - 0.1
    assert len(trusted.byzantine) == 6
    byzantine, honest = _mean_trust(trusted)
    assert byzantine < 0.5 * honest
    rows = fed.data.public_part("rules")(50)[0]
    held = np.concatenate([shard.train[0][0] for shard in fed.data.shards])
    assert not (rows[:, None, :] == held[None, :, :]).all(axis=2).any()  # no client's rows


def _mean_trust(trace) -> tuple[float, float]:
    """The mean influence (FLTrust: trust score) of the Byzantine and of the honest updates."""
    bad = set(trace.byzantine)
    groups = ([k for _, c, k in trace.influence if c in bad], [k for _, c, k in trace.influence
                                                               if c not in bad])  # fmt: skip
    return float(np.mean(groups[0])), float(np.mean(groups[1]))


@pytest.mark.parametrize(
    "rule",
    [FedAvg(clients_per_round=6, local_steps=2, robust="fltrust"), FedCompass(robust="fltrust")],
    ids=["fedavg", "fedcompass"],
)
def test_fltrust_works_in_the_synchronous_and_grouped_rules_and_needs_root_data(rule):
    trace = LocalEngine().run(_federation(Attack("sign_flip"), 12, 120.0, root_samples=50), rule)
    assert trace.rows[-1]["accuracy"] > 0.85  # the plain mean ends at 0.38 under this attack
    byzantine, honest = _mean_trust(trace)
    assert byzantine < 0.5 * honest
    with pytest.raises(ValueError, match="needs the server's root data: set the .*root_samples"):
        LocalEngine().run(_federation(Attack("sign_flip")), rule)


# -- the experiment file -------------------------------------------------------------------------
EXPERIMENT = """
seed = 3
[stream]
kind = "hyperplane"
concepts = [0]
n_features = 5
[federation]
clients = 8
samples_per_client = 100
duration = 30.0
eval_every = 10.0
learner = { kind = "logistic", lr = 0.1, standardize = false }
[attack]
kind = "alie"
fraction = 0.25
snr_db = 20.0
[rules.robust]
kind = "fedbuff"
buffer_size = 4
robust = "krum"
"""


def test_the_experiment_file_picks_the_attack_and_the_robust_block():
    federation = build_federation(parse_experiment(EXPERIMENT))
    assert federation.attack == Attack("alie", fraction=0.25, snr_db=20.0)
    assert len(federation.adversary().byzantine) == 2
    text = EXPERIMENT.replace('robust = "krum"', 'robust = "fltrust"')
    text = text.replace("duration = 30.0", "duration = 30.0\nroot_samples = 40")
    federation = build_federation(parse_experiment(text))
    assert federation.root_samples == 40 and federation.root_trainer() is not None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('kind = "alie"', 'kind = "nasty"'), "attack.kind"),
        (("snr_db = 20.0", "snr = 20.0"), "attack.snr: unknown key"),
        (('robust = "krum"', 'robust = "bulyan"'), "rules.robust.robust"),
        (("fraction = 0.25", "clients = [8]"), r"attack: clients \[8\] not in 0..7"),
        (("duration = 30.0", "duration = 30.0\nroot_samples = -1"), "federation.root_samples"),
    ],
)
def test_attack_errors_name_the_key(change, message):
    with pytest.raises(ExperimentError, match=message):
        build_federation(parse_experiment(EXPERIMENT.replace(*change)))
