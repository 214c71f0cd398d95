"""Learning-rate schedules: values against the papers' formulas, the budget of a fit (a
``learn`` call, a ``WindowRetrain`` re-fit, a ``horizon`` cycle), refinement from a recorded
gradient-norm trace, state round trips and experiment files."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from adaptloop.config import ExperimentError, parse_experiment, run_experiment  # noqa: E402
from adaptloop.learners import MLPClassifier, MLPRegressor, WindowRetrain, registry  # noqa: E402
from adaptloop.learners.optim.schedules import (  # noqa: E402
    UBA,
    Constant,
    Cosine,
    Linear,
    Refined,
    make_schedule,
    median_smooth,
    refined_factors,
)

LR = 0.05


def blobs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)).astype(np.float32)
    return X, (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.int64)


def record_lrs(model) -> list[float]:
    """Patch the model's trainer to record the rate of every step it takes from now on."""
    trainer, lrs = model.trainer_, []
    step = trainer.step

    def recording(loss_fn, adjust=None):
        lrs.append(trainer.lr_)
        return step(loss_fn, adjust)

    trainer.step = recording
    return lrs


# -- values at known steps ---------------------------------------------------------------------
@pytest.mark.parametrize("T", [1, 7, 100])
def test_decays_follow_their_formulas(T):
    t = np.arange(T)
    np.testing.assert_allclose(Linear().factors(T), 1 - t / T)
    np.testing.assert_allclose(Cosine().factors(T), 0.5 * (1 + np.cos(np.pi * t / T)))
    np.testing.assert_allclose(
        Cosine(min_ratio=0.2).factors(T), 0.2 + 0.8 * 0.5 * (1 + np.cos(np.pi * t / T))
    )
    np.testing.assert_allclose(Constant().factors(T), np.ones(T))
    for phi in (0.0, 0.5, 1.0, 1.7):
        c = 1 + np.cos(np.pi * t / T)
        expected = 0.1 + 0.9 * 2 * c / (2 * phi + (2 - phi) * c)
        np.testing.assert_allclose(UBA(phi=phi, min_ratio=0.1).factors(T), expected)


def test_uba_known_values_and_limits():
    # t = T/2: cos = 0, so 2 / (2 phi + 2 - phi) = 2 / (2 + phi)
    assert UBA(phi=1.0).factors(4)[2] == pytest.approx(2 / 3)
    assert UBA(phi=0.5).factors(4)[2] == pytest.approx(0.8)
    np.testing.assert_allclose(UBA(phi=2.0).factors(50), Cosine().factors(50))  # phi = 2: cosine
    np.testing.assert_allclose(UBA(phi=0.0).factors(50), np.ones(50))  # phi -> 0: constant
    for phi in (0.25, 1.0, 2.0):  # monotone, from the peak; smaller phi stays higher
        f = UBA(phi=phi).factors(64)
        assert f[0] == 1.0 and (np.diff(f) <= 0).all()
    assert (UBA(phi=0.5).factors(64) >= UBA(phi=1.5).factors(64) - 1e-12).all()


def test_cosine_and_linear_match_pytorchs_schedulers():
    T = 12

    def torch_lrs(make):
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=LR)
        sched = make(opt)
        out = []
        for _ in range(T):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return np.array(out)

    cosine = torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=T))
    linear = torch_lrs(
        lambda o: torch.optim.lr_scheduler.LinearLR(o, 1.0, end_factor=0.0, total_iters=T)
    )
    np.testing.assert_allclose(LR * Cosine().factors(T), cosine, atol=1e-12)
    np.testing.assert_allclose(LR * Linear().factors(T), linear, atol=1e-12)


def test_scheduler_drives_any_torch_optimizer():
    opt = torch.optim.Adam([torch.zeros(2, requires_grad=True)], lr=LR)
    sched = Linear().scheduler(opt, total_steps=5)
    lrs = []
    for _ in range(5):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    np.testing.assert_allclose(lrs, LR * (1 - np.arange(5) / 5))


# -- refinement --------------------------------------------------------------------------------
def test_refinement_of_a_constant_trace_is_linear_decay_to_zero():
    # w_t = c: eta_t = c^2 (T - 1 - t), the paper's linear schedule, rescaled to a peak of 1
    for T in (2, 7, 50):
        t = np.arange(T)
        np.testing.assert_allclose(refined_factors(np.full(T, 3.0), T), (T - 1 - t) / (T - 1))
    np.testing.assert_allclose(refined_factors([5.0], 1), [1.0])  # 0/0: the peak


def test_refinement_of_a_geometric_trace_matches_its_closed_form():
    # G_t = r^(-t/2) (SGD, w = G^-2 = r^t): sum_{p>t} w_p = (r^(t+1) - r^T) / (1 - r), so
    # eta_t is proportional to r^t (r^(t+1) - r^T); the L1 rule (w = G^-1) on G_t = r^-t alike
    T, t = 40, np.arange(40)
    for r in (0.9, 1.05):
        closed = r**t * (r ** (t + 1) - r**T) / (1 - r)
        expected = closed / closed.max()
        np.testing.assert_allclose(
            refined_factors(r ** (-t / 2), T, width=0.0), expected, atol=1e-12
        )
        got = refined_factors(r ** (-t.astype(float)), T, width=0.0, power=1.0)
        np.testing.assert_allclose(got, expected, atol=1e-12)


def test_refinement_of_a_step_trace_matches_its_closed_form():
    # norms a for the first half, b for the second (w = a^-2, b^-2): in the first half
    # eta_t = a^-2 ((H - 1 - t) a^-2 + H b^-2), in the second eta_t = b^-4 (T - 1 - t)
    a, b, H = 2.0, 1.0, 10
    T, t = 2 * H, np.arange(2 * H)
    closed = np.where(t < H, a**-2 * ((H - 1 - t) * a**-2 + H * b**-2), b**-4 * (T - 1 - t))
    np.testing.assert_allclose(
        refined_factors([a] * H + [b] * H, T, width=0.0), closed / closed.max()
    )
    # the sum runs over p > t: the rate falls to 0 at the last step, the maximum is where
    # the smaller norms begin
    assert refined_factors([a] * H + [b] * H, T, width=0.0).argmax() == H


def test_refinement_median_filter_as_the_authors():
    trace = np.ones(50)
    trace[20] = 100.0  # one outlier step: removed by the window of 2 * (5 // 2) + 1 = 5
    np.testing.assert_allclose(
        refined_factors(trace, 50, width=0.1), refined_factors(np.ones(50), 50)
    )
    assert not np.allclose(refined_factors(trace, 50, width=0.0), refined_factors(np.ones(50), 50))
    # a monotone trace keeps its interior; its end is padded by reflection (the authors'
    # README), so the last norm becomes the median of a window folded back on itself
    rising = np.arange(30, dtype=float)
    smooth = median_smooth(rising, width=0.1)  # window 3
    np.testing.assert_array_equal(smooth[:-1], rising[:-1])
    assert smooth[-1] == 28.0
    stretched = refined_factors(np.linspace(4, 1, 10), 40, width=0.0)  # 10 norms, 40 steps
    assert stretched.shape == (40,) and stretched.max() == 1.0 and stretched[-1] == 0.0


def test_refined_reads_l1_norms_with_adam_and_l2_otherwise():
    X, y = blobs(64)
    sgd = MLPClassifier(hidden=(8,), lr=LR, optimizer="sgd", batch_size=64, schedule="refined")
    adam = MLPClassifier(hidden=(8,), lr=LR, optimizer="adam", batch_size=64, schedule="refined")
    plain = MLPClassifier(hidden=(8,), lr=LR, optimizer="adam", batch_size=64, schedule="linear")
    for model in (sgd, adam, plain):
        model.learn(X, y)
    grads = lambda m: [p.grad for p in m.network.parameters()]  # noqa: E731
    assert sgd.trainer_.schedule.norm == "l2" and adam.trainer_.schedule.norm == "l1"
    l1 = float(sum(g.abs().sum() for g in grads(adam)))
    assert adam.trainer_.grad_norms_[-1] == pytest.approx(l1, rel=1e-5)
    l2 = float(sum((g**2).sum() for g in grads(plain))) ** 0.5
    assert plain.trainer_.grad_norms_[-1] == pytest.approx(l2, rel=1e-5)
    forced = Refined(trace=[1.0, 2.0, 4.0], norm="l1")
    np.testing.assert_allclose(forced.factors(3), refined_factors([1, 2, 4], 3, power=1.0))


def test_refined_without_a_trace_is_linear_then_refines_from_the_previous_fit():
    X, y = blobs(64)
    model = MLPClassifier(hidden=(8,), lr=LR, epochs=6, batch_size=16, schedule="refined")
    model.learn(X, y)  # first fit: no trace yet, linear decay
    trainer = model.trainer_
    np.testing.assert_allclose(trainer.factors_, Linear().factors(24))
    first = trainer.grad_norms_
    assert first.shape == (24,) and (first > 0).all()
    lrs = record_lrs(model)
    model.learn(X[:32], y[:32])  # second fit (12 steps), refined from the first's 24 norms
    np.testing.assert_allclose(trainer.previous_grad_norms_, first)
    np.testing.assert_allclose(trainer.factors_, refined_factors(first, 12, 0.1, power=1.0))
    np.testing.assert_allclose(
        lrs, LR * refined_factors(first, 12, 0.1, power=1.0)
    )  # the rates taken


def test_refined_with_a_given_trace():
    X, y = blobs(32)
    model = MLPRegressor(hidden=(4,), epochs=4, schedule=Refined(trace=[3.0, 2.0, 1.0, 1.0]))
    model.learn(X, y.astype(np.float32))
    np.testing.assert_allclose(model.trainer_.factors_, refined_factors([3, 2, 1, 1], 4, power=1.0))


# -- the budget of a fit ----------------------------------------------------------------------
def test_each_learn_call_is_a_fit_on_an_open_ended_stream():
    X, y = blobs(64)
    model = MLPClassifier(hidden=(8,), lr=LR, epochs=2, batch_size=16, schedule="linear")
    model.learn(X[:4], y[:4])
    lrs = record_lrs(model)
    model.learn(X, y)  # 2 epochs x 4 mini-batches: a fit of 8 steps, restarted at the peak
    model.learn(X[:32], y[:32])  # 2 x 2: a fit of 4
    expected = np.concatenate([Linear().factors(8), Linear().factors(4)]) * LR
    np.testing.assert_allclose(lrs, expected)
    assert (model.trainer_.step_, model.trainer_.budget_) == (4, 4)


def test_one_step_calls_take_the_peak_rate():
    X, y = blobs(40)
    model = MLPClassifier(hidden=(8,), lr=LR, schedule="cosine")
    model.learn(X[:8], y[:8])
    lrs = record_lrs(model)
    for start in range(8, 40, 8):
        model.learn(X[start : start + 8], y[start : start + 8])
    np.testing.assert_allclose(lrs, [LR] * 4)


def test_horizon_cycles_across_calls():
    X, y = blobs(64)
    schedule = {"name": "linear", "horizon": 6}
    model = MLPClassifier(hidden=(8,), lr=LR, batch_size=16, schedule=schedule)
    model.learn(X[:16], y[:16])  # step 0 of the first cycle
    lrs = record_lrs(model)
    model.learn(X, y)  # steps 1-4
    model.learn(X, y)  # steps 5, then a restart: 0, 1, 2
    f = Linear().factors(6) * LR
    np.testing.assert_allclose(lrs, [f[1], f[2], f[3], f[4], f[5], f[0], f[1], f[2]])


def test_window_retrain_refit_runs_the_schedule_over_its_budget():
    X, y = blobs(300)
    base = MLPClassifier(hidden=(8,), lr=LR, epochs=2, batch_size=32, schedule="linear")
    model = WindowRetrain(base, window=200, every=100, epochs=3, fit_batch_size=50, warmup=False)
    model.learn(X[:100], y[:100])  # first re-fit: 3 epochs x 2 calls x (2 epochs x 2 batches)
    trainer = model.model_.trainer_
    assert (trainer.step_, trainer.budget_) == (24, 24)
    assert trainer.lr_ == pytest.approx(LR * Linear().factors(24)[-1])
    model.learn(X[100:200], y[100:200])  # second: 3 epochs x 4 calls x 4 steps, one fit
    trainer = model.model_.trainer_
    assert (trainer.step_, trainer.budget_) == (48, 48)
    assert len(trainer.grad_norms_) == 48


def test_window_retrain_refined_reads_the_replaced_models_trace():
    X, y = blobs(300)
    base = MLPClassifier(hidden=(8,), lr=LR, batch_size=50, schedule="refined")
    model = WindowRetrain(base, window=100, every=100, epochs=2, fit_batch_size=50, warmup=False)
    model.learn(X[:100], y[:100])
    first = model.model_.trainer_.grad_norms_  # 2 epochs x 2 calls: 4 steps, linear decay
    np.testing.assert_allclose(model.model_.trainer_.factors_, Linear().factors(4))
    model.learn(X[100:200], y[100:200])
    trainer = model.model_.trainer_
    np.testing.assert_allclose(trainer.previous_grad_norms_, first)
    np.testing.assert_allclose(trainer.factors_, refined_factors(first, 4, 0.1, power=1.0))


def test_state_round_trip_mid_fit_goes_on_identically():
    X, y = blobs(96)
    make = lambda: MLPClassifier(  # noqa: E731
        hidden=(8,),
        lr=LR,
        batch_size=16,
        optimizer="drop_muon",
        schedule={"name": "refined", "horizon": 10},
    )
    a = make()
    for start in range(0, 48, 16):
        a.learn(X[start : start + 16], y[start : start + 16])  # 3 steps: mid-cycle
    a.learn(X[:96], y[:96])  # 6 more: over the horizon, refined from the first cycle
    b = make()
    b.load_state_dict(a.state_dict())
    assert (b.trainer_.step_, b.trainer_.budget_, b.trainer_.lr_) == (
        a.trainer_.step_,
        a.trainer_.budget_,
        a.trainer_.lr_,
    )
    lrs_a, lrs_b = record_lrs(a), record_lrs(b)
    a.learn(X, y)
    b.learn(X, y)
    assert lrs_a == lrs_b
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


def test_a_state_saved_before_schedules_loads():
    X, y = blobs(64)
    a = MLPClassifier(hidden=(8,), batch_size=16)
    a.learn(X, y)
    state = a.state_dict()
    legacy = state["learned"]["optimizer"]
    state["learned"]["optimizer"] = {k: legacy[k] for k in ("state", "param_groups")}
    b = MLPClassifier(hidden=(8,), batch_size=16)
    b.load_state_dict(state)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


def test_no_schedule_keeps_the_rate_and_the_old_numbers():
    X, y = blobs(64)
    a = MLPClassifier(hidden=(8,), lr=LR, epochs=3, batch_size=16)
    b = MLPClassifier(hidden=(8,), lr=LR, epochs=3, batch_size=16, schedule="constant")
    a.learn(X, y)
    b.learn(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert a.trainer_.lr_ == LR and b.trainer_.lr_ == LR


@pytest.mark.parametrize("kind", ["lstm", "cfc"])
def test_recurrent_learners_take_a_schedule(kind):
    X = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
    model = registry.create(kind, units=4, seq_len=3, epochs=3, batch_size=16, schedule="cosine")
    model.learn(X, X[:, 0])
    assert (model.trainer_.step_, model.trainer_.budget_) == (6, 6)
    assert model.trainer_.lr_ == pytest.approx(model.lr * Cosine().factors(6)[-1])


def test_ctr_takes_a_schedule():
    X = np.random.default_rng(0).integers(0, 5, size=(32, 2)).astype(np.float32)
    model = registry.create("ctr", epochs=2, batch_size=16, schedule={"name": "uba", "phi": 0.5})
    model.learn(X, (X[:, 0] > 2).astype(np.int64))
    assert (model.trainer_.step_, model.trainer_.budget_) == (4, 4)


# -- names and errors -------------------------------------------------------------------------
def test_make_schedule_names_and_errors():
    assert make_schedule(None) is None
    assert make_schedule("uba") == UBA(phi=1.0)
    assert make_schedule({"name": "cosine", "horizon": 5}) == Cosine(horizon=5)
    with pytest.raises(ValueError, match="unknown schedule 'cosin'; known: constant, cosine"):
        make_schedule("cosin")
    with pytest.raises(ValueError, match="takes no parameter 'phi'"):
        make_schedule({"name": "linear", "phi": 1})
    with pytest.raises(ValueError, match=r"^schedule\.phi: must be <= 2, got 2\.5"):
        make_schedule({"name": "uba", "phi": 2.5})
    with pytest.raises(ValueError, match=r"^schedule\.horizon: must be >= 1, got 0"):
        make_schedule({"name": "linear", "horizon": 0})
    with pytest.raises(ValueError, match="a table with a 'name'"):
        make_schedule({"phi": 1.0})
    with pytest.raises(ValueError, match="trace must be a non-empty"):
        Refined(trace=[])
    with pytest.raises(ValueError, match="unknown schedule"):
        MLPClassifier(schedule="warmup")


def test_schedules_compare_and_clone_by_parameters():
    model = MLPClassifier(schedule={"name": "uba", "phi": 0.5}, optimizer="drop_muon")
    clone = model.clone()
    assert repr(clone) == repr(model)
    assert UBA(phi=0.5) == UBA(phi=0.5) != UBA(phi=0.6)
    assert math.isclose(Linear(min_ratio=0.5).factors(2)[1], 0.75)


EXPERIMENT = """
seed = 3
[stream]
kind = "sea"
n = 1_200
batch_size = 100
[learners.refit]
kind = "window_retrain"
base = {{ kind = "mlp", hidden = [8], lr = 0.05, batch_size = 50, {base} }}
window = 300
every = 300
epochs = 2
"""


def test_experiment_file_sets_schedule_and_optimizer():
    text = EXPERIMENT.format(base='schedule = { name = "uba", phi = 1.0 }, optimizer = "drop_muon"')
    result = run_experiment(parse_experiment(text))
    assert result.summary["refit"]["n_samples"] == 1200
    linear = run_experiment(parse_experiment(EXPERIMENT.format(base='schedule = "linear"')))
    constant = run_experiment(parse_experiment(EXPERIMENT.format(base='schedule = "constant"')))
    # the schedule changes what is learned: the results differ
    assert linear.summary["refit"]["accuracy"] != constant.summary["refit"]["accuracy"]


@pytest.mark.parametrize(
    ("base", "message"),
    [
        ('schedule = "step"', r"learners.refit.base.*unknown schedule 'step'; known: constant"),
        (
            'schedule = { name = "uba", phi = 3.0 }',
            r"learners.refit.base.schedule.*phi: must be <= 2",
        ),
        ('optimizer = "lion"', r"learners.refit.base.optimizer: unknown optimizer 'lion'"),
        ('optimizer = { name = "muon", beta = 0.9 }', r"optimizer 'muon' takes no parameter"),
    ],
)
def test_experiment_file_refuses_bad_names(base, message):
    with pytest.raises(ExperimentError, match=message):
        parse_experiment(EXPERIMENT.format(base=base))
