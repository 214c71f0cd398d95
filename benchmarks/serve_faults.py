"""Fault drill of ``adaptloop serve`` on 127.0.0.1: what an attacker or a careless operator does.

Starts the service as a subprocess on fresh databases and tries, in order (issue 15):

1. poison: feedback whose feature is ``1e300`` (finite in Python, infinite in float32):
   ``poison_status`` (goal 422); then valid feedback: ``learning_after_poison`` (the model
   version still advances);
2. ``restart_ok``: SIGTERM, restart on the same database, ``/readyz`` answers 200;
3. ``forged_checkpoint_ran_code``: ``serve --checkpoint`` with a format 1 (pickle) file and
   with a format 2 file whose detector is an attacker's pickle bytes (checksum recomputed),
   each of which would create a marker file when unpickled (goal false);
4. ``twin_server_refused``: a second ``serve`` on the same database exits with one line;
5. ``startup_mb_10_checkpoints``, ``startup_mb_1000_checkpoints``: peak resident memory of a
   server started on a database holding that many (pinned) checkpoints, and their ratio
   ``startup_mb_ratio`` (goal <= 1.2);
6. ``schemathesis_500s``: requests generated from the OpenAPI schema (``--examples`` per
   operation) answered 5xx (goal 0);
7. ``oip_infer_ok``: ``tritonclient`` infers the same predictions as ``/v1/predict``;
8. ``lost_acknowledged``: feedback from 4 client threads, SIGKILL mid-load, restart:
   acknowledged records missing from the database (goal 0).

There is no peer: the numbers are goals, not ratios. The last line printed is one JSON object.

    OMP_NUM_THREADS=1 python benchmarks/serve_faults.py
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

NAMES = ("x0", "x1", "x2")
FLAGS = [
    "--learner",
    "adwin_reset",
    "--micro-batch",
    "8",
    "--gate-window",
    "16",
    "--max-nfr",
    "0.2",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "ADAPTLOOP_TOKEN"}


def serve(db: Path, port: int, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "adaptloop", "serve", "--db", str(db), "--port", str(port)]
    return subprocess.Popen(
        [*command, *extra], env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def wait_ready(process: subprocess.Popen, port: int, timeout: float = 90) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    return False


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def sea(n: int, seed: int):
    from adaptloop.streams import registry

    stream = registry.create("sea", n=n, seed=seed, drifts=[{"at": n // 2, "width": 1}])
    return list(stream.iter_batches(16))


def records(X) -> list[dict[str, float]]:
    return [dict(zip(NAMES, map(float, r), strict=True)) for r in X]


def poison_and_learn(base: str) -> tuple[int, bool]:
    good = {"x0": 1.0, "x1": 2.0, "x2": 3.0}
    poisoned = {"feedback": [{"record": {**good, "x1": 1e300}, "label": 1}]}
    status = httpx.post(f"{base}/v1/feedback", json=poisoned, timeout=10).status_code
    before = httpx.get(f"{base}/v1/model", timeout=10).json()["version"]
    for X, y in sea(2000, seed=3):
        answer = httpx.post(f"{base}/v1/predict", json={"records": records(X)}, timeout=10).json()
        fb = [
            {"prediction_id": p["id"], "label": int(v)}
            for p, v in zip(answer["predictions"], y, strict=True)
        ]
        httpx.post(f"{base}/v1/feedback", json={"feedback": fb}, timeout=10)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        model = httpx.get(f"{base}/v1/model", timeout=10).json()
        if model["feedback"]["pending"] < 8:
            break
        time.sleep(0.2)
    return status, model["version"] > before


class RunsCode:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def forged_checkpoints(base: str, folder: Path) -> list[Path]:
    """A format 1 pickle file and a format 2 file with a pickled payload in its state."""
    from safetensors.numpy import load, save

    from adaptloop.serve.checkpoint import LEGACY_MAGIC, MAGIC, checkpoint_digest
    from adaptloop.serve.state import MAGIC as STATE

    data = httpx.get(f"{base}/v1/model/checkpoint", timeout=30).content
    end = data.index(b"\n", len(MAGIC))
    header, payload = json.loads(data[len(MAGIC) : end]), data[end + 1 :]
    marker = str(folder / "ran-code")
    # format 1: the header with a pickle payload
    legacy = pickle.dumps(RunsCode(marker))
    h1 = {k: v for k, v in header.items() if k != "sha256"} | {"format": 1}
    h1["payload_bytes"] = len(legacy)
    h1["sha256"] = checkpoint_digest(h1, legacy)
    one = folder / "forged-1.ckpt"
    one.write_bytes(LEGACY_MAGIC + json.dumps(h1).encode() + b"\n" + legacy)
    # format 2: the detector (stored as arrays) replaced by pickle bytes, checksum recomputed
    split = payload.index(b"\n", len(STATE))
    document, tensors = json.loads(payload[len(STATE) : split]), dict(load(payload[split + 1 :]))
    document["tree"]["learned"]["detector"] = {"$": "bytes", "ref": "forged"}
    tensors["forged"] = np.frombuffer(pickle.dumps(RunsCode(marker)), dtype=np.uint8)
    forged = STATE + json.dumps(document, sort_keys=True).encode() + b"\n" + save(tensors)
    h2 = {k: v for k, v in header.items() if k != "sha256"}
    h2["payload_bytes"] = len(forged)
    h2["sha256"] = checkpoint_digest(h2, forged)
    two = folder / "forged-2.ckpt"
    two.write_bytes(MAGIC + json.dumps(h2).encode() + b"\n" + forged)
    return [one, two]


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def startup_mb(folder: Path, n: int) -> float:
    """Peak RSS of a server started on a database holding ``n`` snapshot checkpoints."""
    from adaptloop.serve.service import Service

    db = folder / f"ck{n}.db"
    service = Service.open(db, learner="adwin_reset")
    service.start(background=False)
    for X, y in sea(800, seed=5):  # a learned state (buffers filled), as in production
        from adaptloop.serve.schemas import FeedbackItem

        items = [FeedbackItem(record=r, label=int(v)) for r, v in zip(records(X), y, strict=True)]
        service.add_feedback(items).result()
    while service.step():
        pass
    for _ in range(n):
        service.snapshot()
    service.stop()
    port = free_port()
    process = serve(db, port)
    ok = wait_ready(process, port)
    mb = peak_mb(process.pid) if ok else float("nan")
    stop(process)
    return mb


def fuzz(base: str, examples: int) -> tuple[int, int]:
    """(5xx answers, requests) over every operation of the OpenAPI schema."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    counts = [0, 0]
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(operation.as_strategy())
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def call(case):
            response = case.call(base_url=base, timeout=10)
            counts[1] += 1
            counts[0] += response.status_code >= 500

        call()
    return counts[0], counts[1]


def oip_matches(port: int) -> bool:
    import tritonclient.http as triton

    X = np.random.default_rng(1).uniform(0, 10, size=(8, 3)).astype(np.float32)
    client = triton.InferenceServerClient(url=f"127.0.0.1:{port}")
    tensor = triton.InferInput("input", list(X.shape), "FP32")
    tensor.set_data_from_numpy(X)
    result = client.infer("adwin_reset", [tensor])
    client.close()
    got = [p.decode() for p in result.as_numpy("prediction")]
    body = {"records": records(X)}
    answer = httpx.post(f"http://127.0.0.1:{port}/v1/predict", json=body, timeout=10).json()
    return got == [p["prediction"] for p in answer["predictions"]]


def sigkill_drill(db: Path, port: int) -> tuple[int, int]:
    """Feedback from 4 threads, SIGKILL mid-load, restart: (lost, acknowledged)."""
    process = serve(db, port, *FLAGS)
    assert wait_ready(process, port), "serve did not start"
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop_event = threading.Event()

    def load(seed: int) -> None:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5)
        try:
            for X, y in sea(4000, seed):
                if stop_event.is_set():
                    return
                answer = client.post("/v1/predict", json={"records": records(X)}).json()
                fb = [
                    {"prediction_id": p["id"], "label": int(v)}
                    for p, v in zip(answer["predictions"], y, strict=True)
                ]
                if client.post("/v1/feedback", json={"feedback": fb}).status_code == 200:
                    with lock:
                        acknowledged.extend(item["prediction_id"] for item in fb)
        except (httpx.TransportError, ValueError):
            return
        finally:
            client.close()

    threads = [threading.Thread(target=load, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while len(acknowledged) < 1500 and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    stop_event.set()
    for thread in threads:
        thread.join(timeout=10)
    process = serve(db, port, *FLAGS)
    restarted = wait_ready(process, port)
    stop(process)
    connection = sqlite3.connect(db)
    stored = {r[0] for r in connection.execute("SELECT prediction_id FROM feedback")}
    connection.close()
    lost = len(set(acknowledged) - stored) + (0 if restarted else len(acknowledged))
    return lost, len(acknowledged)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10, help="fuzz examples per operation")
    args = parser.parse_args()
    result: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        db, port = folder / "faults.db", free_port()
        base = f"http://127.0.0.1:{port}"
        process = serve(db, port, *FLAGS)
        try:
            assert wait_ready(process, port), process.stderr.read().decode()
            result["poison_status"], result["learning_after_poison"] = poison_and_learn(base)
            learning = result["learning_after_poison"]
            print(f"poison: {result['poison_status']}, learning after: {learning}")
            forged = forged_checkpoints(base, folder)
            twin = serve(db, free_port(), *FLAGS)
            twin.wait(timeout=120)
            message = twin.stderr.read().decode().strip()
            result["twin_server_refused"] = twin.returncode == 2 and message.count("\n") == 0
            print(f"twin: exit {twin.returncode}: {message}")
            result["oip_infer_ok"] = oip_matches(port)
            started = time.perf_counter()
            errors, requests = fuzz(base, args.examples)
            result["schemathesis_500s"], result["schemathesis_requests"] = errors, requests
            print(f"fuzz: {requests} requests, {errors} 5xx, {time.perf_counter() - started:.1f} s")
            stop(process)
            process = serve(db, port, *FLAGS)
            result["restart_ok"] = wait_ready(process, port)
        finally:
            stop(process)
        ran = []
        for path in forged:
            attempt = serve(folder / f"from-{path.stem}.db", free_port(), "--checkpoint", str(path))
            attempt.wait(timeout=120)
            print(
                f"{path.name}: exit {attempt.returncode}: {attempt.stderr.read().decode().strip()}"
            )
            ran.append((folder / "ran-code").exists())
        result["forged_checkpoint_ran_code"] = any(ran)
        small, large = startup_mb(folder, 10), startup_mb(folder, 1000)
        result["startup_mb_10_checkpoints"] = round(small, 1)
        result["startup_mb_1000_checkpoints"] = round(large, 1)
        result["startup_mb_ratio"] = round(large / small, 3)
        print(f"startup peak RSS: {small:.1f} MB (10 checkpoints), {large:.1f} MB (1000)")
        lost, acknowledged = sigkill_drill(folder / "kill.db", free_port())
        result["lost_acknowledged"], result["acknowledged"] = lost, acknowledged
    print(json.dumps(result))


if __name__ == "__main__":
    main()
