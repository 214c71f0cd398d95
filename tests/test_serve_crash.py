"""Crash test: SIGKILL the service mid-load, restart it on the same database, lose nothing.

Bounded: a few hundred feedback records on 127.0.0.1, two short-lived subprocesses.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from adaptloop.streams import registry as streams  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
NAMES = ("x0", "x1", "x2")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(db, port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "ADAPTLOOP_TOKEN"}
    command = [sys.executable, "-m", "adaptloop", "serve", "--db", str(db), "--port", str(port)]
    command += ["--learner", "adwin_reset", "--micro-batch", "8", "--gate-window", "16"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited: {process.stderr.read().decode()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("serve did not answer /healthz within 60 s")


def test_sigkill_mid_load_loses_no_acknowledged_feedback(tmp_path):
    db = tmp_path / "crash.db"
    port = free_port()
    process = start(db, port)
    acknowledged: list[str] = []
    snapshots: list[int] = []
    stop = threading.Event()
    stream = streams.create("sea", n=600, seed=11)
    batches = list(stream.iter_batches(4))

    def load() -> None:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5)
        try:
            for i, (X, y) in enumerate(batches):
                if stop.is_set():
                    return
                records = [dict(zip(NAMES, map(float, r), strict=True)) for r in X]
                answer = client.post("/v1/predict", json={"records": records}).json()
                fb = [
                    {"prediction_id": p["id"], "label": int(v)}
                    for p, v in zip(answer["predictions"], y, strict=True)
                ]
                if client.post("/v1/feedback", json={"feedback": fb}).status_code == 200:
                    acknowledged.extend(item["prediction_id"] for item in fb)
                if i == 40:
                    snap = client.post("/v1/model/snapshot")
                    if snap.status_code == 200:
                        snapshots.append(snap.json()["version"])
        except httpx.TransportError:
            return  # the server was killed mid-request: that request was not acknowledged
        finally:
            client.close()

    loader = threading.Thread(target=load)
    loader.start()
    deadline = time.monotonic() + 60
    while len(acknowledged) < 300 and loader.is_alive() and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    stop.set()
    loader.join(timeout=10)
    assert len(acknowledged) >= 300 and snapshots, "the load did not get far enough"

    process = start(db, port)  # restart on the same database
    try:
        status = httpx.get(f"http://127.0.0.1:{port}/v1/model", timeout=10).json()
        assert status["version"] >= snapshots[-1]
        assert status["skipped_checkpoints"] == []
        assert status["feedback"]["received"] >= len(acknowledged)
        connection = sqlite3.connect(db)
        stored = {row[0] for row in connection.execute("SELECT prediction_id FROM feedback")}
        connection.close()
        assert set(acknowledged) <= stored
        # the restarted service learns what was stored (the worker catches up)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = httpx.get(f"http://127.0.0.1:{port}/v1/model", timeout=10).json()
            if status["feedback"]["pending"] < 8:
                break
            time.sleep(0.1)
        assert status["feedback"]["pending"] < 8
        assert status["metrics"]["accuracy"] is not None
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
