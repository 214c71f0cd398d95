"""Open-loop load on ``adaptloop serve`` (127.0.0.1): predict, then feedback, then SIGKILL.

Starts the service as a subprocess on a fresh database, sends ``--rate`` predict requests
per second (one record each) for ``--duration`` seconds on a fixed schedule (open loop: a
request's latency counts from its *scheduled* time, so a slow server cannot slow the load
down and hide its queueing), then labels for the first ``--feedback-count`` predictions at
``--feedback-rate`` per second. Then the service is killed with SIGKILL and the database is
read: ``lost_acknowledged`` counts acknowledged feedback records that are not stored.

The client is a small HTTP/1.1 keep-alive client on asyncio streams (``--connections``
connections), light enough to share the machine with the server. The last line printed is
one JSON object: predict_rps, predict_p50_ms, predict_p99_ms, feedback_rps, feedback_p50_ms,
feedback_p99_ms, lost_acknowledged (and the counts), and predict_server_cpu_ms: the server's
CPU time per predict request, which unlike latency does not depend on what else runs.

    python benchmarks/serve_load.py --rate 1000 --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``; NaN elsewhere):
    the server's CPU cost per request does not depend on what else the machine runs."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(db: Path, port: int, learner: str, log) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "ADAPTLOOP_TOKEN"}
    command = [sys.executable, "-m", "adaptloop", "serve", "--db", str(db), "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--learner", learner],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"serve exited (code {process.returncode}); see its log")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                if b" 200 " in s.recv(1024):
                    return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("serve did not start within 60 s")


class Connection:
    """One keep-alive HTTP/1.1 connection: a request at a time."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader = self.writer = None

    async def request(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        header = await self.reader.readuntil(b"\r\n\r\n")
        status = int(header.split(b" ", 2)[1])
        length = 0
        for line in header.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        return status, await self.reader.readexactly(length)


async def open_loop(port, bodies, rate, connections, path):
    """Send ``bodies`` at ``rate``/s; returns (latencies s, statuses, answers, seconds)."""
    queue: asyncio.Queue = asyncio.Queue()
    n = len(bodies)
    latencies = np.full(n, np.nan)
    statuses = [0] * n
    answers: list[bytes | None] = [None] * n
    start = time.perf_counter() + 0.05

    async def worker():
        conn = Connection(port)
        while True:
            item = await queue.get()
            if item is None:
                return
            i, scheduled = item
            try:
                statuses[i], answers[i] = await conn.request(path, bodies[i])
            except (OSError, asyncio.IncompleteReadError):
                statuses[i] = -1
                conn = Connection(port)
            latencies[i] = time.perf_counter() - scheduled

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    for i in range(n):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((i, scheduled))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return latencies, statuses, answers, time.perf_counter() - start


def summary(name, latencies, statuses, seconds):
    ok = np.array(statuses) == 200
    ms = latencies[ok] * 1e3
    out = {
        f"{name}_rps": round(int(ok.sum()) / seconds, 1),
        f"{name}_p50_ms": round(float(np.percentile(ms, 50)), 2) if ms.size else None,
        f"{name}_p99_ms": round(float(np.percentile(ms, 99)), 2) if ms.size else None,
        f"{name}_errors": int((~ok).sum()),
    }
    failed = collections.Counter(s for s in statuses if s != 200)
    print(
        f"{name}: {ok.sum()} ok / {len(statuses)} in {seconds:.2f} s = {out[f'{name}_rps']}/s, "
        f"p50 {out[f'{name}_p50_ms']} ms, p99 {out[f'{name}_p99_ms']} ms; failed {dict(failed)}"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="predict requests/s")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of predict load")
    parser.add_argument("--feedback-rate", type=float, default=500.0)
    parser.add_argument("--feedback-count", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--learner", default="adwin_reset")
    parser.add_argument("--server-log", help="write the server's stderr here")
    args = parser.parse_args()
    n = int(args.rate * args.duration)
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 10, size=(n, 3))
    bodies = [
        json.dumps({"records": [{"x0": a, "x1": b, "x2": c}]}).encode() for a, b, c in X.tolist()
    ]
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "load.db"
        port = free_port()
        log = open(args.server_log or os.devnull, "wb")  # noqa: SIM115 - closed below
        server = start_server(db, port, args.learner, log)
        try:
            cpu = cpu_seconds(server.pid)
            lat, st, answers, secs = asyncio.run(
                open_loop(port, bodies, args.rate, args.connections, "/v1/predict")
            )
            result = summary("predict", lat, st, secs)
            result["predict_server_cpu_ms"] = round((cpu_seconds(server.pid) - cpu) / n * 1e3, 3)
            print(f"predict: server CPU {result['predict_server_cpu_ms']} ms per request")
            ids = [
                json.loads(a)["predictions"][0]["id"]
                for a, s in zip(answers, st, strict=True)
                if s == 200
            ]
            ids = ids[: args.feedback_count]
            labels = (X[: len(ids), 0] + X[: len(ids), 1] > 8).astype(int).tolist()
            fb = [
                json.dumps({"feedback": [{"prediction_id": i, "label": y}]}).encode()
                for i, y in zip(ids, labels, strict=True)
            ]
            lat, st, _, secs = asyncio.run(
                open_loop(port, fb, args.feedback_rate, args.connections, "/v1/feedback")
            )
            result.update(summary("feedback", lat, st, secs))
            acknowledged = {i for i, s in zip(ids, st, strict=True) if s == 200}
        finally:
            server.send_signal(signal.SIGKILL)
            server.wait()
            log.close()
        connection = sqlite3.connect(db)
        stored = {r[0] for r in connection.execute("SELECT prediction_id FROM feedback")}
        connection.close()
    result["lost_acknowledged"] = len(acknowledged - stored)
    result["acknowledged"] = len(acknowledged)
    result["predict_requests"] = n
    result["cpus"] = os.cpu_count()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
