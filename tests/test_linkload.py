"""The link-load simulator: reproducibility, layout, failures, conservation, bad parameters."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from adaptloop.streams import registry
from adaptloop.streams.linkload import linkload

DAY = 288


def test_registered_and_real_topology():
    stream = registry.create("linkload", days=1)
    assert len(stream.node_names) == 28 and len(stream.links) == 41  # Nobel-EU (Euro28)
    assert len(stream.demand_pairs) == 378  # the SNDlib demand matrix, not a gravity model
    assert len(linkload(topology="sndlib/abilene", days=1).links) == 15
    assert len(linkload(topology="sndlib/geant", days=1).links) == 36


def test_seeded_reproducible():
    spec = dict(days=2, failures=[{"at": DAY, "severity": "drastic"}])
    a, b, c = linkload(seed=3, **spec), linkload(seed=3, **spec), linkload(seed=4, **spec)
    assert np.array_equal(a.arrays()[0], b.arrays()[0])
    assert np.array_equal(a.arrays()[1], b.arrays()[1])
    assert not np.array_equal(a.arrays()[1], c.arrays()[1])
    batches = list(a.iter_batches(100))
    assert np.array_equal(np.concatenate([y for _, y in batches]), a.arrays()[1])


def test_shapes_and_feature_names():
    stream = linkload(
        days=2, history=6, day_of_week=True, failures=[{"at": 400, "severity": "moderate"}]
    )
    X, y = stream.arrays()
    info = stream.info
    assert X.shape == (2 * DAY, 10) and X.dtype == np.float32 and y.dtype == np.float32
    assert info.task == "regression" and info.n_samples == 2 * DAY
    assert info.feature_names[:6] == tuple(f"load_t-{k}" for k in range(6, 0, -1))
    assert info.feature_names[6:] == ("tod_sin", "tod_cos", "dow_sin", "dow_cos")
    assert [d.position for d in info.drifts] == [400]
    # the window is the target's past: row t's last load is y[t - 1]
    assert np.array_equal(X[1:, 5], y[:-1]) and np.array_equal(X[1:, :5], X[:-1, 1:6])
    # normalised by the pre-failure mean of the monitored link
    assert y[:400].mean() == pytest.approx(1.0, abs=0.02)
    assert linkload(days=1).arrays()[0].shape == (DAY, 14)  # time of day only by default


def test_drastic_jump_far_larger_than_moderate():
    jumps = {}
    for severity in ("drastic", "moderate"):
        stream = linkload(days=3, failures=[{"at": 2 * DAY, "severity": severity}], seed=1)
        _, y = stream.arrays()
        # same time of day, one day apart: the daily profile cancels out
        jumps[severity] = y[2 * DAY : 2 * DAY + 48].mean() / y[DAY : DAY + 48].mean()
    assert jumps["drastic"] > 2.0
    assert 1.05 < jumps["moderate"] < 1.6
    assert jumps["drastic"] - 1 > 3 * (jumps["moderate"] - 1)


def test_scheduled_failure_and_repair():
    spec = {"at": 100, "link": ["Berlin", "Hamburg"], "repair_at": 200}
    stream = linkload(days=1, failures=[spec], link=["Frankfurt", "Munich"])
    assert [(e["kind"], e["link_name"]) for e in stream.events] == [
        ("failure", "Berlin-Hamburg"),
        ("repair", "Berlin-Hamburg"),
    ]
    assert [d.position for d in stream.info.drifts] == [100, 200]
    baseline = linkload(days=1, link=["Frankfurt", "Munich"])
    failed_link = stream.link_names.index("Berlin-Hamburg")
    h = stream.history
    assert np.all(stream.loads[100 + h : 200 + h, failed_link] == 0)
    # as without the failure, up to BLAS rounding (segments are multiplied in separate blocks)
    np.testing.assert_allclose(stream.loads[: 100 + h], baseline.loads[: 100 + h], rtol=1e-12)
    np.testing.assert_allclose(stream.loads[200 + h :], baseline.loads[200 + h :], rtol=1e-12)
    assert stream.loads[100 + h : 200 + h].sum() > baseline.loads[100 + h : 200 + h].sum()


def test_traffic_conservation():
    stream = linkload(days=1, failures=[{"at": 150, "severity": "drastic"}])
    for step in (10, 200):
        row = step + stream.history
        graph = stream.graph.copy()
        graph.remove_edges_from([tuple(stream.links[e]) for e in stream.failed_at[row]])
        hops = np.array(
            [
                len(nx.dijkstra_path(graph, int(s), int(t), weight="dist")) - 1
                for s, t in stream.demand_pairs
            ]
        )
        expected = float(stream.demands[row] @ hops)
        assert stream.loads[row].sum() == pytest.approx(expected, rel=1e-9)


def test_unroutable_demands_are_dropped_and_reported():
    stream = linkload(days=1)
    node = next(n for n, degree in stream.graph.degree if degree == 2)
    u, v = stream.graph.neighbors(node)
    cut = [{"at": 50, "link": [node, u]}, {"at": 60, "link": [node, v]}]
    with pytest.warns(RuntimeWarning, match="disconnects"):
        failed = linkload(days=1, failures=cut)
    # the second cut isolates the node: every demand to or from it (one per pair) is lost
    assert [e["unroutable"] for e in failed.events] == [0, 27]
    row = 70 + failed.history
    assert failed.loads[row].sum() < stream.loads[row].sum()


def test_random_failures_seeded():
    a = linkload(days=2, random_failures=2, seed=5)
    b = linkload(days=2, random_failures=2, seed=5)
    assert len(a.events) == 2 and a.events == b.events
    assert all(DAY // 2 <= e["at"] < 3 * DAY // 2 for e in a.events)


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"topology": "sndlib/nowhere"}, "topology"),
        ({"days": -1}, r"LinkLoadStream\.days: must be > 0"),
        ({"step_minutes": 0}, "step_minutes"),
        ({"history": 0}, "history"),
        ({"noise": 2.0}, "noise"),
        ({"random_failures": -1}, "random_failures"),
        ({"seed": -1}, "seed"),
        ({"failures": [{"at": 10}]}, "failures\\[0\\]"),
        ({"failures": [{"at": 10, "severity": "huge"}]}, "severity"),
        ({"failures": [{"at": 10_000, "severity": "drastic"}]}, "at"),
        ({"failures": [{"at": 10, "link": ["Berlin", "Atlantis"]}]}, "Atlantis"),
        ({"failures": [{"at": 10, "link": ["Berlin", "Athens"]}]}, "no link"),
        ({"failures": [{"at": 10, "severity": "drastic", "when": 3}]}, "when"),
        ({"failures": [{"at": 10, "severity": "drastic", "repair_at": 5}]}, "repair_at"),
        ({"link": ["Berlin"]}, "link"),
        ({"day_of_week": "yes"}, "day_of_week"),
    ],
)
def test_bad_params_name_the_field(params, name):
    with pytest.raises(ValueError, match=name):
        linkload(**{"days": 1, **params})
