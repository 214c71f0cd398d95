"""Roles on one store (SQLite and PostgreSQL alike): the trainer lease and its fence, a standby
trainer taking over, predictors following new versions, and a killed predictor losing nothing
it acknowledged."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from adaptloop.serve.errors import LeaseLost, StoreError, WrongRole
from adaptloop.serve.localpg import free_port
from adaptloop.serve.schemas import FeedbackItem
from adaptloop.serve.service import Service, ServiceConfig
from adaptloop.serve.store import open_store
from adaptloop.streams import registry as streams

CONFIG = ServiceConfig(
    micro_batch=8,
    gate_window=16,
    max_nfr=0.1,
    checkpoint_every=3,
    lease_seconds=0.6,
    follow_seconds=0.1,
)
NAMES = ("x0", "x1", "x2")


def batches(n: int, start: int = 0):
    stream = streams.create("sea", n=400, seed=5, drifts=[{"at": 200, "width": 1}])
    for i, (X, y) in enumerate(stream.iter_batches(8)):
        if start <= i * 8 < start + n:
            yield X, y


def feed(service: Service, n: int, start: int = 0) -> None:
    """Predict through ``service`` (logged), then store the labels of those predictions."""
    for X, y in batches(n, start):
        records = [dict(zip(NAMES, map(float, row), strict=True)) for row in X]
        served, logged = service.predict_records(records)
        logged.result()
        items = [
            FeedbackItem(prediction_id=p, label=int(v)) for p, v in zip(served.ids, y, strict=True)
        ]
        service.add_feedback(items).result()


def until(condition, seconds: float = 20.0) -> float:
    """Wait for ``condition()``; returns the seconds it took (fails after ``seconds``)."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, "timed out"
        time.sleep(0.01)
    return time.monotonic() - started


def test_lease_has_one_holder_expires_and_fences_the_old_one(new_db):
    a = open_store(new_db(), exclusive=False).start()  # two processes' stores
    b = open_store(new_db(), exclusive=False).start()
    assert b.lease() is None
    assert a.take_lease("A", 0.3)
    assert not b.take_lease("B", 0.3)
    assert a.renew_lease("A", 0.3) and a.take_lease("A", 0.3)  # its own: taken again
    time.sleep(0.4)
    assert b.take_lease("B", 5.0)  # expired: taken over
    assert not a.renew_lease("A", 5.0)
    assert b.lease()["holder"] == "B"
    a.fence, b.fence = "A", "B"
    with pytest.raises(LeaseLost, match="A no longer holds the trainer lease") as lost:
        a.add_decision(1, {"by": "A"})
    assert lost.value.field == "lease"
    with pytest.raises(LeaseLost):
        a.add_checkpoint(2, "promotion", 0, {"w": np.zeros(2)}, {})
    b.add_decision(1, {"by": "B"})
    assert a.decisions() == [{"by": "B"}] and a.checkpoints() == []
    b.release_lease("B")
    assert a.take_lease("A", 5.0)  # released: taken at once
    a.close()
    b.close()


def test_concurrent_feedback_for_one_prediction_is_stored_once(new_db):
    from adaptloop.serve.store import NewFeedback

    a = open_store(new_db(), exclusive=False).start()
    b = open_store(new_db(), exclusive=False).start()
    a.log_predictions(["p"], 1, np.zeros((1, 3), np.float32), np.zeros(1), None).result()
    futures = [store.add_feedback([NewFeedback("p", None, 1.0)]) for store in (a, b) * 3]
    outcomes = [f.exception() is None for f in futures]
    assert outcomes.count(True) == 1
    assert a.count("feedback") == 1
    keyed = [s.add_feedback([NewFeedback(None, b"\0" * 12, 0.0, "k")]) for s in (a, b, a)]
    assert len({tuple(f.result()) for f in keyed}) == 1  # one seq for one idempotency key
    a.close()
    b.close()


def test_a_second_server_is_refused_and_a_standby_trainer_takes_over(new_db):
    db = new_db()
    first = Service.open(db, learner="adwin_reset", config=CONFIG, role="trainer")
    first.start(background=False)
    feed(first, 160)
    while first.step():
        pass
    with pytest.raises(StoreError):
        Service.open(db, config=CONFIG, role="all")
    opened: list[Service] = []
    standby = threading.Thread(
        target=lambda: opened.append(Service.open(db, config=CONFIG, role="trainer", wait=30))
    )
    standby.start()
    feed(first, 240, start=160)  # acknowledged, not learned by the first trainer
    time.sleep(0.3)
    assert not opened, "the standby took the lease while the trainer renewed it"
    version = first.version
    first.lease.stop(release=False)  # the trainer dies: no renewal, no release, no checkpoint
    first.store.close()
    standby.join(30)
    (second,) = opened
    second.start(background=False)  # newest checkpoint + replay of what came after it
    assert second.samples_learned == 400  # every acknowledged label is learned
    assert second.version >= version > 1
    assert second.status()["lease"]["holder"] == second.lease.holder
    assert second.readiness()["lease"] is None
    second.stop()


def test_predictor_follows_new_versions_and_forwards_feedback(new_db):
    db = new_db()
    trainer = Service.open(db, learner="adwin_reset", config=CONFIG, role="trainer")
    trainer.start()
    predictor = Service.open(db, config=CONFIG, role="predictor")
    predictor.start()
    try:
        assert predictor.version == trainer.version == 1
        feed(predictor, 400)  # predictions logged and labels stored by the predictor
        until(lambda: trainer.samples_learned == 400)
        trainer.snapshot()  # under the state lock: the last step's promotion decision is made
        assert trainer.version > 1, "no promotion: the test would not cover versions"
        until(lambda: predictor.version == trainer.version, 10)
        status = predictor.status()
        assert status["role"] == "predictor" and status["version"] == trainer.version
        assert status["feedback"]["received"] == 400
        with pytest.raises(WrongRole, match="a predictor does not snapshot"):
            predictor.snapshot()
        with pytest.raises(WrongRole):
            predictor.rollback(1)
        trainer.rollback(1)  # a rollback is a new version: followed too
        until(lambda: predictor.version == trainer.version, 10)
        assert predictor.readiness() == {
            "store": None,
            "worker": None,
            "model": None,
            "quarantine": None,
        }
    finally:
        predictor.stop()
        trainer.stop()


def test_a_predictor_waits_for_its_trainer_then_refuses(new_db):
    with pytest.raises(StoreError, match="serves nothing yet"):
        Service.open(new_db(), config=CONFIG, role="predictor", wait=0.2)


def serve(db: str, role: str, port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "adaptloop", "serve", "--db", db, "--role", role]
    command += ["--port", str(port), "--learner", "adwin_reset", "--micro-batch", "8"]
    env = {k: v for k, v in os.environ.items() if k != "ADAPTLOOP_TOKEN"}
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_killed_predictor_loses_nothing_it_acknowledged(postgres):
    httpx = pytest.importorskip("httpx")
    db = postgres.database()
    trainer = Service.open(db, learner="adwin_reset", config=CONFIG, role="trainer")
    trainer.start()
    port = free_port()
    process = serve(db, "predictor", port)
    url = f"http://127.0.0.1:{port}"
    predicted: list[str] = []
    labelled: list[int] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=url, timeout=5) as http:
            for X, y in batches(400):
                for row, label in zip(X, y, strict=True):
                    if stop.is_set():
                        return
                    record = dict(zip(NAMES, map(float, row), strict=True))
                    try:
                        answer = http.post("/v1/predict", json={"records": [record]})
                        pid = answer.json()["predictions"][0]["id"]
                        predicted.append(pid)
                        body = {"feedback": [{"prediction_id": pid, "label": str(int(label))}]}
                        labelled.extend(http.post("/v1/feedback", json=body).json()["seq"])
                    except (httpx.TransportError, KeyError, ValueError):
                        return  # the predictor died: what it answered before must be stored

    try:
        until(lambda: _answers(httpx, url), 60)
        threads = [threading.Thread(target=client) for _ in range(2)]
        for thread in threads:
            thread.start()
        until(lambda: len(labelled) >= 40, 60)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        stop.set()
        for thread in threads:
            thread.join(10)
        store = trainer.store
        stored = set(
            store.call(lambda conn: [r["id"] for r in conn.execute("SELECT id FROM predictions")])
        )
        seqs = set(
            store.call(lambda conn: [r["seq"] for r in conn.execute("SELECT seq FROM feedback")])
        )
        assert set(predicted) <= stored and set(labelled) <= seqs
        until(lambda: trainer.samples_learned >= len(labelled) // 8 * 8)
    finally:
        if process.poll() is None:
            process.kill()
        trainer.stop()


def _answers(httpx, url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
