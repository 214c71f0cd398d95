import numpy as np
import pytest

from adaptloop.evaluation import prequential
from adaptloop.learners.base import BaseClassifier, BaseLearner
from adaptloop.results import PREQUENTIAL_RECORD_COLUMNS
from adaptloop.streams import ArrayStream, Drift


class Memorizer(BaseClassifier):
    """Remembers the label of every exact feature row it learned; unknown rows -> class 0."""

    def __init__(self, log=None):
        super().__init__(task="binary")
        self.log = log
        self.table = {}

    def _learn(self, X, y):
        if self.log is not None:
            self.log.append(("learn", X[:, 0].tolist()))
        self.table.update({row.tobytes(): int(label) for row, label in zip(X, y, strict=True)})

    def _predict_proba(self, X):
        if self.log is not None:
            self.log.append(("predict", X[:, 0].tolist()))
        codes = np.array([self.table.get(row.tobytes(), 0) for row in X])
        return np.eye(2)[codes]

    def _get_state(self):
        return dict(self.table)

    def _set_state(self, state):
        self.table = state


class AlarmEvery(Memorizer):
    """Raises a fake drift alarm at every multiple of 100 samples learned."""

    def __init__(self):
        super().__init__()
        self.alarms = []
        self.seen = 0

    def _learn(self, X, y):
        for i in range(X.shape[0]):
            if (self.seen + i) % 100 == 99:
                self.alarms.append(self.seen + i)
        self.seen += X.shape[0]


class Zero(BaseLearner):
    def __init__(self):
        super().__init__(task="regression")

    def _learn(self, X, y):
        pass

    def _predict(self, X):
        return np.zeros(X.shape[0], dtype=np.float32)

    def _get_state(self):
        return {}

    def _set_state(self, state):
        pass


def unique_stream(n=1000, seed=0, drifts=()):
    rng = np.random.default_rng(seed)
    X = np.arange(n, dtype=np.float32).reshape(-1, 1)  # every row unique
    y = rng.integers(0, 2, n)
    return ArrayStream(X, y, drifts=drifts)


def test_each_batch_is_predicted_before_it_is_learned():
    log = []
    result = prequential(
        unique_stream(10), {"m": Memorizer(log)}, batch_size=4, metrics=["accuracy"]
    )
    assert [kind for kind, _ in log] == ["predict", "learn"] * 3
    assert log[0][1] == log[1][1] == [0, 1, 2, 3]
    # rows are never repeated, so a memorizer scored before learning is only right on label 0
    y = np.concatenate([b[1] for b in unique_stream(10).iter_batches(4)])
    assert result.summary["m"]["accuracy"] == pytest.approx(np.mean(y == 0))


def test_records_one_row_per_batch_and_learner():
    result = prequential(
        unique_stream(1000), {"a": Memorizer(), "b": Memorizer()}, batch_size=64, window=100
    )
    table = result.to_pandas()
    assert len(table) == 2 * 16
    for _, rows in table.groupby("learner"):
        assert rows["n"].sum() == 1000
        assert rows["position"].tolist() == [min(64 * (i + 1), 1000) for i in range(16)]
        assert rows["record"].tolist() == list(range(16))
    for column in ("accuracy", "accuracy_window", "accuracy_batch", "log_loss", "roc_auc_window"):
        assert column in table.columns
    documented = {c.replace("{metric}", "accuracy") for c in PREQUENTIAL_RECORD_COLUMNS}
    assert documented - {"slot"} <= set(table.columns)  # slot: only with slots=N
    # identical learners on identical batches record identical metrics
    a, b = (table[table.learner == k].reset_index(drop=True) for k in ("a", "b"))
    assert a["accuracy_window"].equals(b["accuracy_window"])


def test_batch_size_does_not_change_what_a_fixed_model_scores():
    stream = ArrayStream(np.ones((300, 2)), np.linspace(0, 3, 300).astype(np.float32))
    results = [prequential(stream, {"z": Zero()}, batch_size=b) for b in (1, 7, 300)]
    maes = [r.summary["z"]["mae"] for r in results]
    assert maes == pytest.approx([maes[0]] * 3)


def test_record_every_and_max_samples():
    result = prequential(
        unique_stream(1000), {"m": Memorizer()}, batch_size=10, record_every=250, max_samples=905
    )
    table = result.to_pandas()
    assert table["position"].tolist() == [250, 500, 750, 905]
    assert table["n"].sum() == 905
    assert result.summary["m"]["n_samples"] == 905


def test_alarms_are_recorded_with_positions():
    result = prequential(unique_stream(500), {"m": AlarmEvery()}, batch_size=64)
    assert result.summary["m"]["alarms"] == [99, 199, 299, 399, 499]
    table = result.to_pandas()
    assert sum(len(a) for a in table["alarms"]) == 5
    assert list(table["alarms"][1]) == [99]  # second batch covers samples 64..127


def test_drift_segments_for_known_drifts():
    rng = np.random.default_rng(0)
    n = 4000
    X = rng.normal(size=(n, 1)).astype(np.float32)
    y = np.where(np.arange(n) < 2000, X[:, 0] > 0, X[:, 0] < 0).astype(np.int64)

    class Sign(Memorizer):
        def _predict_proba(self, X):
            return np.eye(2)[(X[:, 0] > 0).astype(int)]

    stream = ArrayStream(X, y, drifts=[Drift(2000)])
    result = prequential(stream, {"sign": Sign()}, batch_size=100, window=500, after=500)
    (seg,) = result.drifts
    assert seg["learner"] == "sign" and seg["position"] == 2000
    assert seg["before"] == 1.0 and seg["after"] == 0.0
    assert seg["drop"] == 1.0 and seg["recovery"] is None


def test_learner_that_does_not_fit_the_stream_is_refused():
    with pytest.raises(ValueError, match="regressor"):
        prequential(unique_stream(10), {"z": Zero()})
    with pytest.raises(ValueError, match="no learners"):
        prequential(unique_stream(10), {})
    with pytest.raises(ValueError, match="batch_size"):
        prequential(unique_stream(10), {"m": Memorizer()}, batch_size=0)
    with pytest.raises(ValueError, match="mae"):
        prequential(unique_stream(10), {"m": Memorizer()}, metrics=["mae"])


def test_slots_cut_the_run_into_chronological_slots():
    result = prequential(
        unique_stream(1000), {"a": Memorizer()}, batch_size=50, window=100, slots=4
    )
    slots = result.summary["a"]["slots"]
    assert [(s["start"], s["end"], s["n"]) for s in slots] == [
        (0, 250, 250),
        (250, 500, 250),
        (500, 750, 250),
        (750, 1000, 250),
    ]
    table = result.to_pandas()
    assert table["slot"].tolist() == [i * 50 // 250 for i in range(20)]
    accuracy = table["accuracy_batch"].to_numpy().reshape(4, 5).mean(axis=1)
    np.testing.assert_allclose([s["accuracy"] for s in slots], accuracy)
    assert result.summary_json()["slots"] == 4
    with pytest.raises(ValueError, match="slots must be >= 1"):
        prequential(unique_stream(10), {"a": Memorizer()}, slots=0)
