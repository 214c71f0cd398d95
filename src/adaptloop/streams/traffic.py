"""Traffic for the link-load simulator: synthetic daily/weekly profiles, or measured traffic
matrices read from a file.

A traffic-matrix file is a CSV (gzip inferred from ``.gz``) with one row per snapshot: a
``time`` column (timestamps at a regular step, increasing) and one column ``o<i>_d<j>`` per
origin ``i`` and destination ``j`` (``i, j = 0 .. N-1``, every pair present, the node order of
the topology it is routed on; values finite and >= 0). The diagonal ``o<i>_d<i>`` (traffic
that stays inside a router) is read but crosses no link. ``../shared/data/abilene_tm.csv.gz``
(two weeks of the Abilene backbone, 12 routers, 5-minute steps; see its README) is one.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "tm.csv"
>>> _ = path.write_text("time,o0_d0,o0_d1,o1_d0,o1_d1\\n"
...                     "2024-01-01 00:00,5,1,2,0\\n2024-01-01 00:15,5,3,4,0\\n")
>>> tm = read_traffic_matrices(path)
>>> tm.n_nodes, tm.step_minutes, tm.pairs.tolist(), tm.demands.tolist()
(2, 15, [[0, 1], [1, 0]], [[1.0, 2.0], [3.0, 4.0]])
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np

__all__ = ["TrafficMatrices", "profile_demands", "read_traffic_matrices"]

_COLUMN = re.compile(r"o(\d+)_d(\d+)")
_PHASES, _NOISE = 0, 1  # seed-sequence tags of the synthetic profile


@dataclass(frozen=True)
class TrafficMatrices:
    """Measured traffic: ``times`` ``(T,)`` (``datetime64[m]``), ``pairs`` ``(K, 2)`` (every
    origin-destination pair with origin != destination, row-major), ``demands`` ``(T, K)``
    (float64, the file's unit), ``n_nodes``, ``step_minutes`` and the ``path`` read."""

    times: np.ndarray
    pairs: np.ndarray
    demands: np.ndarray
    n_nodes: int
    step_minutes: int
    path: str

    def time_of_day(self) -> np.ndarray:
        """Fraction of the day elapsed at each snapshot, in ``[0, 1)``."""
        minutes = (self.times - self.times.astype("datetime64[D]")).astype(np.int64)
        return minutes / 1440.0

    def day_of_week(self) -> np.ndarray:
        """Day of the week of each snapshot, Monday = 0."""
        return (self.times.astype("datetime64[D]").astype(np.int64) + 3) % 7


def read_traffic_matrices(path: str | os.PathLike) -> TrafficMatrices:
    """Read a traffic-matrix file (layout in the module doc); ``ValueError`` naming the file
    and what is wrong (a missing ``time`` column, missing or unexpected ``o<i>_d<j>`` columns,
    an irregular step, negative or missing values)."""
    import pyarrow.csv as pacsv

    where = f"traffic file {os.fspath(path)!r}"
    if not os.path.exists(path):
        raise ValueError(f"{where} does not exist")
    table = pacsv.read_csv(
        path, convert_options=pacsv.ConvertOptions(column_types={"time": "string"})
    )
    columns = table.column_names
    if "time" not in columns:
        raise ValueError(f"{where} has no 'time' column (columns: {columns[:5]}...)")
    entries = {name: _COLUMN.fullmatch(name) for name in columns if name != "time"}
    unexpected = [name for name, match in entries.items() if match is None]
    if unexpected:
        raise ValueError(f"{where}: unexpected column(s) {unexpected[:5]}; expected o<i>_d<j>")
    n_nodes = 1 + max((max(int(m[1]), int(m[2])) for m in entries.values() if m), default=-1)
    expected = [f"o{i}_d{j}" for i in range(n_nodes) for j in range(n_nodes)]
    missing = sorted(set(expected) - set(entries), key=expected.index)
    if n_nodes < 2 or missing:
        raise ValueError(
            f"{where}: a traffic matrix of N nodes needs the N*N columns o<i>_d<j>, "
            f"i, j = 0..N-1; the columns name {n_nodes} node(s) but {missing[:5]} "
            f"{'are' if len(missing) > 1 else 'is'} missing"
        )
    try:
        times = np.array(table.column("time").to_pylist(), dtype="datetime64[m]")
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: column 'time' must hold timestamps ({error})") from error
    if len(times) < 2:
        raise ValueError(f"{where} needs at least 2 rows, has {len(times)}")
    steps = np.diff(times).astype(np.int64)
    if steps[0] <= 0 or np.any(steps != steps[0]):
        bad = int(np.flatnonzero(steps != steps[0])[0]) + 1 if steps[0] > 0 else 1
        raise ValueError(
            f"{where}: 'time' must advance by one regular step; row {bad} breaks it "
            f"({times[bad - 1]} -> {times[bad]})"
        )
    pairs = np.array([(i, j) for i in range(n_nodes) for j in range(n_nodes) if i != j])
    names = [f"o{i}_d{j}" for i, j in pairs]
    demands = np.column_stack([table.column(c).to_numpy(zero_copy_only=False) for c in names])
    demands = demands.astype(np.float64)
    bad = ~np.isfinite(demands) | (demands < 0)
    if bad.any():
        row, col = (int(a[0]) for a in np.nonzero(bad))
        raise ValueError(
            f"{where}: {names[col]} in row {row} is {demands[row, col]!r}; "
            "values must be finite and >= 0"
        )
    return TrafficMatrices(times, pairs, demands, n_nodes, int(steps[0]), os.fspath(path))


def profile_demands(
    volumes: np.ndarray,
    steps: np.ndarray,
    step_minutes: int,
    daily_amplitude: float,
    weekly: bool,
    weekly_amplitude: float,
    phase_spread: float,
    noise: float,
    seed: int,
) -> np.ndarray:
    """Synthetic demands ``(len(steps), K)``: ``volumes[k] * (1 + a_d sin(2 pi tod - pi/2 +
    phi_k)) * (1 + a_w sin(2 pi dow / 7 + psi_k)) * (1 + noise * eps)``, clipped at 0, at the
    integer ``steps`` (step 0 is a Monday, 00:00); see
    :class:`~adaptloop.streams.linkload.LinkLoadStream`."""
    minutes = steps * step_minutes
    tod = (minutes % 1440) / 1440.0
    k = len(volumes)
    rng = np.random.default_rng([seed, _PHASES])
    phi = rng.uniform(-phase_spread, phase_spread, k) * (2 * np.pi / 24)
    psi = rng.uniform(-phase_spread, phase_spread, k) * (2 * np.pi / 7 / 24)
    profile = 1 + daily_amplitude * np.sin(2 * np.pi * tod[:, None] - np.pi / 2 + phi)
    if weekly:
        week = (minutes / 1440.0) / 7.0
        profile = profile * (1 + weekly_amplitude * np.sin(2 * np.pi * week[:, None] + psi))
    eps = np.random.default_rng([seed, _NOISE]).standard_normal((len(steps), k))
    return np.clip(volumes * profile * (1 + noise * eps), 0.0, None)
