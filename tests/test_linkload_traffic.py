"""The link-load stream on measured traffic matrices from a file, and the simulator's snapshots."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from adaptloop.streams import registry
from adaptloop.streams.linkload import linkload
from adaptloop.streams.network import Backbone, parse_failures, simulate
from adaptloop.streams.traffic import read_traffic_matrices

ABILENE = Path("../shared/data/abilene_tm.csv.gz")
N = 12  # the Abilene routers


def write_matrices(path, n_nodes=N, rows=3 * 288, step=5, seed=0, start="2024-01-01T00:00"):
    """A gzip traffic-matrix file with a daily cycle (Monday 00:00 onwards)."""
    rng = np.random.default_rng(seed)
    times = np.datetime64(start) + np.arange(rows) * np.timedelta64(step, "m")
    tod = np.arange(rows) * step / 1440.0
    base = rng.uniform(1e3, 1e5, n_nodes * n_nodes)
    values = base * (1.5 + np.sin(2 * np.pi * tod))[:, None] * rng.uniform(0.9, 1.1, (rows, 1))
    header = ["time"] + [f"o{i}_d{j}" for i in range(n_nodes) for j in range(n_nodes)]
    lines = [",".join(header)]
    for t, row in zip(times, values, strict=True):
        lines.append(str(t).replace("T", " ") + "," + ",".join(f"{v:.1f}" for v in row))
    with gzip.open(path, "wt") as handle:
        handle.write("\n".join(lines) + "\n")
    return values


def test_replays_the_file_routed_on_the_topology(tmp_path):
    path = tmp_path / "tm.csv.gz"
    values = write_matrices(path)
    stream = registry.create("linkload", topology="sndlib/abilene", traffic=str(path))
    h = stream.history
    assert stream.n == 3 * 288 - h and stream.step_minutes == 5
    assert stream.times[0] == np.datetime64("2024-01-01T00:00")
    # every off-diagonal demand of a row, routed on its shortest path, adds up on the links
    pairs = stream.demand_pairs
    assert len(pairs) == N * (N - 1)
    hops = stream.backbone.route(pairs, frozenset())[0].sum(axis=1)
    row = 100
    expected = values[row].reshape(N, N)[pairs[:, 0], pairs[:, 1]] @ hops
    assert stream.loads[row].sum() == pytest.approx(expected, rel=1e-6)
    # time features from the file's clock: sample t is row t + history
    X, y = stream.arrays()
    minutes = ((row - h) + h) * 5 % 1440
    assert X[row - h, h] == pytest.approx(np.sin(2 * np.pi * minutes / 1440), abs=1e-6)
    assert y[:100].dtype == np.float32 and y.mean() == pytest.approx(1.0, abs=1e-3)
    assert "tm.csv.gz" in stream.info.name


def test_days_takes_the_first_days_and_seed_only_draws_failures(tmp_path):
    path = tmp_path / "tm.csv.gz"
    write_matrices(path)
    short = linkload(topology="sndlib/abilene", traffic=str(path), days=1)
    assert short.info.n_samples == 288
    a = linkload(topology="sndlib/abilene", traffic=str(path), seed=1)
    b = linkload(topology="sndlib/abilene", traffic=str(path), seed=2)
    assert np.array_equal(a.arrays()[1], b.arrays()[1])  # no synthetic noise on measured data
    c = linkload(topology="sndlib/abilene", traffic=str(path), random_failures=2, seed=1)
    d = linkload(topology="sndlib/abilene", traffic=str(path), random_failures=2, seed=1)
    assert c.events == d.events and len(c.events) == 2


def test_failures_reroute_measured_traffic(tmp_path):
    path = tmp_path / "tm.csv.gz"
    write_matrices(path)
    at = 2 * 288
    jumps = {}
    for severity in ("drastic", "moderate"):
        stream = linkload(
            topology="sndlib/abilene",
            traffic=str(path),
            failures=[{"at": at, "severity": severity}],
        )
        (event,) = stream.events
        assert event["unroutable"] == 0 and stream.info.drifts[0].position == at
        snap = stream.simulation.snapshot(at)
        assert snap.failed == (event["link"],) and snap.loads[event["link"]] == 0
        assert stream.simulation.snapshot(at - 1).failed == ()
        _, y = stream.arrays()
        jumps[severity] = y[at : at + 48].mean() / y[at - 288 : at - 240].mean()
    assert jumps["drastic"] > jumps["moderate"] > 1.0


def test_a_cut_router_counts_its_demand_as_dropped(tmp_path):
    path = tmp_path / "tm.csv.gz"
    values = write_matrices(path, rows=400)
    # ATLAM5 (node 0) hangs on the single link ATLAM5-ATLAng: cutting it isolates the router
    with pytest.warns(RuntimeWarning, match="disconnects"):
        stream = linkload(
            topology="sndlib/abilene",
            traffic=str(path),
            failures=[{"at": 200, "link": ["ATLAM5", "ATLAng"], "repair_at": 300}],
        )
    assert [e["unroutable"] for e in stream.events] == [2 * (N - 1), 0]
    h = stream.history
    matrix = values[200 + h].reshape(N, N)
    lost = matrix[0].sum() + matrix[:, 0].sum() - 2 * matrix[0, 0]
    assert stream.simulation.snapshot(200).dropped == pytest.approx(lost, rel=1e-6)
    assert stream.simulation.snapshot(199).dropped == 0 == stream.simulation.snapshot(300).dropped


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("nodes", "has 3 nodes .* topology sndlib/abilene has 12"),
        ("column", r"needs the N\*N columns .*o1_d2.* is missing"),
        ("extra", "unexpected column"),
        ("time", "no 'time' column"),
        ("step", "regular step; row 2"),
        ("negative", "o0_d1 in row 1 .* >= 0"),
        ("missing", "does not exist"),
    ],
)
def test_bad_files_are_refused_by_name(tmp_path, kind, message):
    path = tmp_path / "bad.csv"
    header = ["time"] + [f"o{i}_d{j}" for i in range(N) for j in range(N)]
    rows = [[f"2024-01-01 00:{5 * r:02d}"] + ["1"] * N * N for r in range(4)]
    if kind == "nodes":
        header = ["time"] + [f"o{i}_d{j}" for i in range(3) for j in range(3)]
        rows = [r[:10] for r in rows]
    elif kind == "column":
        gone = header.index("o1_d2")
        header = header[:gone] + header[gone + 1 :]
        rows = [r[:gone] + r[gone + 1 :] for r in rows]
    elif kind == "extra":
        header.append("note")
        rows = [r + ["x"] for r in rows]
    elif kind == "time":
        header[0] = "when"
    elif kind == "step":
        rows[2][0] = "2024-01-01 00:07"
    elif kind == "negative":
        rows[1][header.index("o0_d1")] = "-3"
    path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
    target = tmp_path / "nowhere.csv" if kind == "missing" else path
    with pytest.raises(ValueError, match=message):
        linkload(topology="sndlib/abilene", traffic=str(target), history=2)


def test_step_and_length_must_fit_the_file(tmp_path):
    path = tmp_path / "tm.csv.gz"
    write_matrices(path, rows=300)
    with pytest.raises(ValueError, match="step_minutes=15 .* 5-minute steps"):
        linkload(topology="sndlib/abilene", traffic=str(path), step_minutes=15)
    with pytest.raises(ValueError, match="300 snapshots: 288 samples .* days=2"):
        linkload(topology="sndlib/abilene", traffic=str(path), days=2)
    with pytest.raises(ValueError, match=r"failures\[0\]\.at"):
        linkload(
            topology="sndlib/abilene", traffic=str(path), failures=[{"at": 288, "link": [1, 4]}]
        )


def test_reader_layout(tmp_path):
    path = tmp_path / "tm.csv.gz"
    values = write_matrices(path, n_nodes=3, rows=10, step=15, start="2024-01-03T23:30")
    tm = read_traffic_matrices(path)
    assert (tm.n_nodes, tm.step_minutes, tm.demands.shape) == (3, 15, (10, 6))
    assert tm.pairs.tolist() == [[0, 1], [0, 2], [1, 0], [1, 2], [2, 0], [2, 1]]
    np.testing.assert_allclose(tm.demands[:, 2], values[:, 3], atol=0.06)  # o1_d0, row-major
    assert tm.day_of_week()[0] == 2 and tm.day_of_week()[-1] == 3  # Wednesday, then Thursday
    assert tm.time_of_day()[2] == 0.0


def test_simulator_snapshots_mark_failed_links():
    net = Backbone.from_topohub("sndlib/abilene")
    pairs, volumes = net.sndlib_demands()
    rng = np.random.default_rng(0)
    schedule = parse_failures(
        [{"at": 3, "link": ["ATLAng", "HSTNng"], "repair_at": 6}], net, 10, 1, rng
    )
    sim = simulate(net, pairs, np.tile(volumes, (10, 1)), schedule, start=0, rng=rng)
    assert sim.up.shape == sim.loads.shape == (10, 15)
    assert [s.failed for s in map(sim.snapshot, (2, 3, 5, 6))][:2] == [(), (1,)]
    assert sim.failed(6) <= sim.failed(5) | sim.failed(9)
    assert np.all(sim.loads[~sim.up] == 0)
    with pytest.raises(ValueError, match="random failures need"):
        simulate(net, pairs, np.tile(volumes, (10, 1)), schedule)
    with pytest.raises(ValueError, match="step"):
        sim.snapshot(10)


@pytest.mark.skipif(not ABILENE.exists(), reason="needs ../shared/data/abilene_tm.csv.gz")
def test_abilene_measured_two_weeks():
    stream = linkload(
        topology="sndlib/abilene",
        traffic=str(ABILENE),
        failures=[{"at": 2500, "severity": "drastic"}],
    )
    assert stream.info.n_samples == 4032 - 12 and stream.step_minutes == 5
    assert stream.times[0] == np.datetime64("2004-03-01T00:00")
    assert stream.times[-1] == np.datetime64("2004-03-14T23:55")
    _, y = stream.arrays()
    assert y[2500:2788].mean() > 2 * y[2212:2500].mean()  # the drastic re-routing
    with pytest.raises(ValueError, match="has 12 nodes .* topology sndlib/nobel-eu has 28"):
        linkload(topology="sndlib/nobel-eu", traffic=str(ABILENE))
