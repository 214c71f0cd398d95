"""The drift detector registry: River's detectors by name, from a name, a dict or an instance."""

from __future__ import annotations

import numpy as np
import pytest
from river import drift

from adaptloop.learners.detectors import detectors, is_binary_detector, make_detector

EXPECTED = {
    "adwin": drift.ADWIN,
    "page_hinkley": drift.PageHinkley,
    "kswin": drift.KSWIN,
    "ddm": drift.binary.DDM,
    "eddm": drift.binary.EDDM,
    "hddm_a": drift.binary.HDDMA,
    "hddm_w": drift.binary.HDDMW,
    "fhddm": drift.binary.FHDDM,
}


def test_registry_names_river_detectors():
    assert detectors.kind == "detector"
    assert set(detectors.names()) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_name_builds_its_river_class(name):
    det = make_detector(name)
    assert type(det) is EXPECTED[name]
    assert is_binary_detector(det) == (name in {"ddm", "eddm", "hddm_a", "hddm_w", "fhddm"})
    # every parameter is listed for `adaptloop list`, and a first line describes it
    assert detectors.parameter_names(name) is not None
    assert detectors.describe(name)
    det.update(0 if is_binary_detector(det) else 0.5)
    assert det.drift_detected is False


def test_dict_spec_with_params():
    det = make_detector({"kind": "page_hinkley", "threshold": 10.0, "min_instances": 5})
    assert isinstance(det, drift.PageHinkley)
    assert (det.threshold, det.min_instances) == (10.0, 5)


def test_params_override_spec():
    det = make_detector({"kind": "adwin", "delta": 0.1}, params={"delta": 0.5})
    assert det.delta == 0.5
    assert make_detector("adwin", params={"clock": 8}).clock == 8


def test_instance_is_cloned_fresh_and_not_shared():
    original = drift.ADWIN(delta=0.05)
    for x in [0.0] * 100 + [1.0] * 100:
        original.update(x)
    width = original.width
    det = make_detector(original)
    assert det is not original
    assert isinstance(det, drift.ADWIN) and det.delta == 0.05
    assert det.width == 0  # fresh state
    det.update(1.0)
    assert original.width == width  # the original is untouched
    assert make_detector(original, params={"delta": 0.3}).delta == 0.3


def test_class_spec_builds_an_instance():
    assert isinstance(make_detector(drift.PageHinkley), drift.PageHinkley)


def test_seed_goes_to_detectors_that_take_one():
    assert make_detector("kswin", seed=5).seed == 5
    assert make_detector({"kind": "kswin", "seed": 1}, seed=5).seed == 1  # explicit wins
    assert make_detector(drift.KSWIN(), seed=4).seed == 4
    assert make_detector(drift.KSWIN(seed=2), seed=4).seed == 2
    make_detector("adwin", seed=5)  # ignored by detectors without a seed


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError, match="unknown detector 'nope'") as info:
        make_detector("nope")
    for name in EXPECTED:
        assert name in str(info.value)
    with pytest.raises(ValueError, match="unknown detector"):
        make_detector({"kind": "nope"})


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"delta": 0.1}, "needs a 'kind'"),
        ({"kind": "adwin", "bogus": 1}, "no parameter 'bogus'"),
        (3, "must be a name"),
        (None, "must be a name"),
    ],
)
def test_bad_specs_are_refused(spec, match):
    with pytest.raises(ValueError, match=match):
        make_detector(spec)


def test_adwin_and_ddm_see_a_change():
    rng = np.random.default_rng(0)
    errors = np.r_[rng.random(1000) < 0.1, rng.random(1000) < 0.6]
    for name in ("adwin", "ddm"):
        det = make_detector(name)
        first = None
        for i, e in enumerate(errors.tolist()):
            det.update(e if is_binary_detector(det) else float(e))
            if det.drift_detected:
                first = i
                break
        assert first is not None and 1000 <= first < 1300, (name, first)


def test_detectors_are_imported_on_first_use_only():
    """``river.drift`` (which pulls in scikit-learn and scipy.stats, seconds of start-up) is
    not imported by importing the learners, only when a detector is built."""
    import subprocess
    import sys

    code = (
        "import sys; from adaptloop.learners import detectors, make_detector; "
        "print('river.drift' in sys.modules, 'adwin' in detectors); "
        "make_detector('adwin'); print('river.drift' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True", "True"]


def test_a_drift_reset_state_holds_its_compiled_detector_as_arrays_not_pickle():
    from adaptloop.learners import DriftReset, LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(3_000, 3)).astype(np.float32)
    y = np.r_[(X[:1_500, 0] > 0), (X[1_500:, 0] < 0)].astype(np.int64)
    learner = DriftReset(LogisticRegression(), detector="adwin")
    learner.learn(X, y)
    state = learner.state_dict()
    detector = state["learned"]["detector"]
    assert isinstance(detector, dict) and detector["detector"] == "ADWIN"
    again = DriftReset(LogisticRegression(), detector="adwin")
    again.load_state_dict(state)
    assert again.alarms == learner.alarms
    np.testing.assert_array_equal(again.predict_proba(X[:50]), learner.predict_proba(X[:50]))
    saved = again.state_dict()["learned"]["detector"]["state"]
    for a, b in zip(saved, detector["state"], strict=True):
        np.testing.assert_array_equal(a, b)
    detector["detector"] = "KSWIN"
    with pytest.raises(ValueError, match="does not compile"):
        DriftReset(LogisticRegression(), detector="adwin").load_state_dict(state)
