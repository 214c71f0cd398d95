"""Graph streams, graph learners, graph evaluation and root cause: tiny graphs, public calls."""

from __future__ import annotations

import numpy as np
import pytest

from adaptloop.evaluation.graphs import (
    average_precision,
    graph_prequential,
    link_prediction_metrics,
    mean_reciprocal_rank,
)
from adaptloop.learners.models.rootcause import OnlineRootCause
from adaptloop.streams import registry as streams
from adaptloop.streams.graphs import (
    EdgeEvents,
    EdgeEventStream,
    LinkLoadGraphStream,
    graph_measures,
    read_edge_list,
)

torch = pytest.importorskip("torch")


# -- edge lists and measures --------------------------------------------------------------------
def test_read_edge_list_finds_columns_and_sorts_by_time(tmp_path):
    path = tmp_path / "edges.csv"
    path.write_text("source target timestamp w\n7 8 30 1\n8 9 10 1\n7 9 20 1\n")
    events = read_edge_list(path)
    assert events.time.tolist() == [10.0, 20.0, 30.0]
    assert events.node_ids[events.src].tolist() == [8, 7, 7]
    with pytest.raises(ValueError, match="src column 'from' not in"):
        read_edge_list(path, src="from")


def test_measures_count_new_and_repeated_edges_per_snapshot():
    day = 86_400
    events = EdgeEvents.from_arrays([0, 0, 1, 0, 2], [1, 1, 2, 1, 0], [0, 1, 2, day, day + 5])
    m = graph_measures(events, "daily")
    assert m["n_events"].tolist() == [3, 2]
    assert m["n_edges"].tolist() == [2, 2]
    assert m["new_edges"].tolist() == [2, 1]
    assert m["reuse"].tolist() == [0.0, 0.5]
    assert m["average_degree"].tolist() == [4 / 3, 4 / 3]


def test_edge_event_stream_groups_and_tgb_negatives():
    rng = np.random.default_rng(0)
    src, dst = rng.integers(0, 6, 120), rng.integers(0, 6, 120)
    keep = src != dst
    events = EdgeEvents.from_arrays(src[keep], dst[keep], np.arange(keep.sum()) * 60.0)
    stream = EdgeEventStream(events=events, negatives=4, historical=2, batch_events=10, seed=1)
    X, y = stream.arrays()
    g = stream.group_size
    groups, labels = X.reshape(-1, g, 3), y.reshape(-1, g)
    assert (labels[:, 0] == 1).all() and (labels[:, 1:] == 0).all()
    assert (groups[:, 1:, 2] != groups[:, :1, 2]).all()  # never the true destination
    assert (groups[:, :, 1] == groups[:, :1, 1]).all()  # same source, same time
    # historical negatives: destinations the source reached before (when it has any)
    seen: dict[int, set[int]] = {}
    for s, d, h in zip(groups[:, 0, 1], groups[:, 0, 2], groups[:, 1:3, 2], strict=True):
        if len(seen.get(int(s), set()) - {int(d)}) > 0:
            assert set(h.astype(int).tolist()) <= seen[int(s)]
        seen.setdefault(int(s), set()).add(int(d))
    assert stream.bounds[-1] == len(y) and stream.bounds[1] == 10 * g
    again = EdgeEventStream(events=events, negatives=4, historical=2, batch_events=10, seed=1)
    assert np.array_equal(again.arrays()[0], X)


def test_edge_event_stream_refuses_bad_settings():
    events = EdgeEvents.from_arrays([0, 1], [1, 0], [0, 1])
    with pytest.raises(ValueError, match="historical=3 must be <= negatives=2"):
        EdgeEventStream(events=events, negatives=2, historical=3)
    with pytest.raises(ValueError, match="exactly one of path or events"):
        EdgeEventStream()
    with pytest.raises(ValueError, match="negatives"):
        streams.create("edge_events", events=events, negatives=0)


def test_linkload_graph_rows_flag_the_failed_link():
    stream = LinkLoadGraphStream(
        linkload={"days": 0.5, "failures": [{"at": 60, "severity": "drastic"}], "seed": 2}
    )
    E, failed = stream.n_links, stream.events[0]["link"]
    X, y = stream.arrays()
    rows = X.reshape(-1, E, X.shape[1])
    assert rows[60, failed, -3] == 1.0  # up during step 59: the failure is not known yet
    assert rows[61, failed, -3] == 0.0 and y.reshape(-1, E)[61, failed] == 0.0
    assert np.array_equal(rows[5, :, -2:], stream.source.links)
    assert stream.info.drifts[0].position == 60 * E
    assert np.allclose(rows[13, :, 11], stream.loads[12])  # load_t-1 of step 13


# -- learners -----------------------------------------------------------------------------------
def _ring(n: int = 5) -> np.ndarray:
    return np.array([[i, (i + 1) % n] for i in range(n)], dtype=np.float32)


@pytest.mark.parametrize("variant", ["O", "H"])
def test_evolvegcn_prediction_depends_on_the_graph(variant):
    from adaptloop.learners.models.graph import EvolveGCNRegressor

    model = EvolveGCNRegressor(variant=variant, hidden=8, window=2, up_column=-3, seed=0)
    rng = np.random.default_rng(0)
    edges = _ring()
    for _ in range(5):
        f = rng.random((5, 1)).astype(np.float32)
        model.learn(np.hstack([f, np.ones((5, 1), np.float32), edges]), f[:, 0])
    f = rng.random((5, 1)).astype(np.float32)
    up = np.hstack([f, np.ones((5, 1), np.float32), edges])
    down = up.copy()
    down[0, 1] = 0.0  # edge 0 leaves the graph
    assert not np.allclose(model.predict(up)[1:], model.predict(down)[1:])


def test_clipped_inputs_keep_an_unseen_edge_history_from_running_away():
    """A load history far outside the training range (a failed link's) is clipped at ``clip``
    standard deviations: the prediction stays near the usual target; unclipped it runs off."""
    from adaptloop.learners.models.graph import EvolveGCNRegressor

    rng = np.random.default_rng(0)
    rows = [np.hstack([rng.normal(0, 0.01, (5, 1)).astype(np.float32), _ring()]) for _ in range(30)]
    unseen = rows[0].copy()
    unseen[0, 0] = 10.0  # a thousand standard deviations out
    predictions = {}
    for clip in (3.0, None):
        model = EvolveGCNRegressor(hidden=8, window=2, clip=clip, lr=0.02, seed=0)
        for X in rows:
            model.learn(X, np.ones(5, np.float32))
        predictions[clip] = model.predict(unseen)
    assert np.abs(predictions[3.0] - 1.0).max() < 1.0
    assert np.abs(predictions[None] - 1.0).max() > 5 * np.abs(predictions[3.0] - 1.0).max()


def test_frozen_evolvegcn_h_stops_learning_but_keeps_evolving():
    """EGCN-H's weights evolve from the node embeddings, so a frozen model still changes with
    the snapshots in its window (EGCN-O's evolution ignores the data: with a full window its
    weights are the same at every step)."""
    from adaptloop.learners.models.graph import EvolveGCNRegressor

    model = EvolveGCNRegressor(
        variant="H", hidden=4, window=3, mode="frozen", warmup=10, warmup_epochs=2
    )
    rng = np.random.default_rng(1)
    edges = _ring()
    batches = [np.hstack([rng.random((5, 1)).astype(np.float32), edges]) for _ in range(5)]
    model.learn(batches[0], batches[0][:, 0])
    model.learn(batches[1], batches[1][:, 0])  # 10 rows: warm-up done, its epochs run
    assert model.frozen
    weights = {k: v.clone() for k, v in model.network.state_dict().items()}
    before = model.predict(batches[4])
    model.learn(batches[2], batches[2][:, 0] + 5.0)
    assert all(torch.equal(weights[k], v) for k, v in model.network.state_dict().items())
    assert not np.allclose(model.predict(batches[4]), before)  # a new snapshot in the window


def test_evolvegcn_state_restores_the_window():
    from adaptloop.learners.models.graph import EvolveGCNLinkPredictor

    model = EvolveGCNLinkPredictor(variant="H", hidden=4, window=2, seed=3)
    X = np.hstack([np.zeros((5, 1), np.float32), _ring()])
    model.learn(X, np.array([1, 1, 0, 1, 0]))
    model.learn(X, np.array([1, 0, 1, 1, 0]))
    twin = EvolveGCNLinkPredictor(variant="H", hidden=4, window=2, seed=3)
    twin.load_state_dict(model.state_dict())
    assert np.array_equal(twin.predict_proba(X), model.predict_proba(X))


@pytest.mark.parametrize("kind", ["evolvegcn_link", "nat", "tgn_memory"])
def test_link_predictors_learn_a_hub(kind):
    """Every hour, each of six users messages user 0 with probability 0.6 (and 7 messages 8):
    the true destination is the hub far more often than a random negative."""
    from adaptloop.learners import registry

    small = {"evolvegcn_link": {"hidden": 8, "epochs": 5, "lr": 0.02}}
    params = small.get(kind, {"memory": 8, "time_dim": 8, "epochs": 3, "lr": 0.01})
    rng = np.random.default_rng(0)
    src, dst, time = [], [], []
    for hour in range(40):
        for leaf in range(1, 7):
            if rng.random() < 0.6:
                src, dst, time = src + [leaf], dst + [0], time + [hour * 3600.0 + leaf]
        src, dst, time = src + [7], dst + [8], time + [hour * 3600.0 + 10]
    stream = EdgeEventStream(
        events=EdgeEvents.from_arrays(src, dst, time),
        unit="hourly",
        negatives=3,
        historical=0,
        seed=0,
    )
    result = graph_prequential(stream, {kind: registry.create(kind, seed=0, **params)})
    assert np.nanmean(result.series(kind, "roc_auc")[-10:]) > 0.75


# -- evaluation -----------------------------------------------------------------------------
def test_link_metrics_match_their_definitions():
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(0)
    y = (rng.random(200) < 0.3).astype(np.int64)
    score = np.round(rng.random(200) + 0.3 * y, 1)  # ties on purpose
    m = link_prediction_metrics(y, score, 4)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, score))
    assert average_precision(y, score) == pytest.approx(average_precision_score(y, score))
    assert mean_reciprocal_rank(np.array([0.5, 0.5, 0.5]), 3) == pytest.approx(1 / 2)


def test_graph_prequential_segments_at_the_failure():
    from adaptloop.learners import Persistence

    stream = LinkLoadGraphStream(
        linkload={"days": 0.5, "failures": [{"at": 80, "severity": "drastic"}], "seed": 0}
    )
    result = graph_prequential(stream, {"last": Persistence(seq_len=12)}, window=6, after=6)
    (seg,) = result.drifts
    assert seg["position"] == 80 and seg["after"] > 3 * seg["before"]
    assert result.summary["last"]["snapshots"] == stream.n_snapshots
    assert result.summary_json()["kind"] == "graph"
    with pytest.raises(ValueError, match="no learners"):
        graph_prequential(stream, {})


# -- root cause -----------------------------------------------------------------------------
def test_root_cause_ranks_the_failed_link_on_the_simulated_backbone():
    stream = LinkLoadGraphStream(
        linkload={"days": 1, "failures": [{"at": 200, "severity": "drastic"}], "seed": 4}
    )
    rca = OnlineRootCause(stream.n_links)
    for t in range(200):
        rca.observe(stream.loads[t])
    rank = int(np.flatnonzero(rca.rank(stream.loads[200]) == stream.events[0]["link"])[0])
    assert rank < 3
    with pytest.raises(ValueError, match="41 finite values"):
        rca.observe(np.zeros(3))
