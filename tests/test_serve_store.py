"""Store, update gate and recovery: a restart serves what an uninterrupted service would."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid

import numpy as np
import pytest

from adaptloop.learners.base import states_equal
from adaptloop.serve.errors import (
    ExperimentMismatch,
    LearnerMismatch,
    StoreError,
    UnknownLearner,
)
from adaptloop.serve.gate import UpdateGate
from adaptloop.serve.schemas import FeedbackItem
from adaptloop.serve.service import Service, ServiceConfig
from adaptloop.serve.store import Store, open_store
from adaptloop.streams import registry as streams

CONFIG = ServiceConfig(micro_batch=8, gate_window=16, max_nfr=0.1, checkpoint_every=3)


def open_service(path) -> Service:
    service = Service.open(path, learner="adwin_reset", config=CONFIG)
    service.start(background=False)
    return service


def add_feedback(service: Service, X: np.ndarray, y: np.ndarray) -> None:
    """Predict and log the predictions, then store their labels (as the API does)."""
    records = [dict(zip(("x0", "x1", "x2"), map(float, row), strict=True)) for row in X]
    served, logged = service.predict_records(records)
    logged.result()
    labels = [
        FeedbackItem(prediction_id=pid, label=int(label))
        for pid, label in zip(served.ids, y, strict=True)
    ]
    service.add_feedback(labels).result()


def run(service: Service, n: int, seed: int = 5, start: int = 0, learn: bool = True) -> None:
    stream = streams.create("sea", n=400, seed=seed, drifts=[{"at": 200, "width": 1}])
    for i, (X, y) in enumerate(stream.iter_batches(8)):
        if not start <= i * 8 < start + n:
            continue
        add_feedback(service, X, y)
        if learn:
            while service.step():
                pass


def same_state(a: Service, b: Service) -> None:
    assert a.version == b.version
    assert a.samples_learned == b.samples_learned
    assert states_equal(a.current[1].state_dict(), b.current[1].state_dict())
    assert states_equal(a.candidate.state_dict(), b.candidate.state_dict())
    assert a.report == pytest.approx(b.report, nan_ok=True)

    def untimed(decisions):
        return [{k: v for k, v in d.items() if k != "time"} for d in decisions]

    assert untimed(a.decisions) == untimed(b.decisions)


def crash(service: Service) -> None:
    """Drop the service without a shutdown checkpoint (the store only finishes its queue);
    its lease is given up, as the lock file of a killed process is (no standby in these
    tests waits for it)."""
    service.lease.stop()
    service.store.close()


def corrupt(db, fn) -> None:
    """Run ``fn(connection)`` on the database ``db`` of a crashed service (either backend)."""
    store = open_store(db).start()
    store.call(fn)
    store.close()


def test_restart_after_crash_serves_what_an_uninterrupted_service_would(new_db):
    # both store the same feedback (and serve the same predictions): 160 records learned as
    # they come, then 240 stored before the worker gets to them; one service crashes twice
    reference = open_service(new_db("ref"))
    run(reference, 160)
    run(reference, 240, start=160, learn=False)
    while reference.step():
        pass
    crashed = open_service(new_db("crash"))
    run(crashed, 160)
    crash(crashed)
    crashed = open_service(new_db("crash"))
    run(crashed, 240, start=160, learn=False)
    crash(crashed)
    crashed = open_service(new_db("crash"))
    assert crashed.replayed > 0
    assert crashed.version > 1, "no promotion: the test would not cover versions"
    same_state(reference, crashed)
    reference.stop()
    crashed.stop()


def test_corrupted_checkpoint_is_reported_and_skipped(new_db):
    reference = open_service(new_db("ref"))
    run(reference, 240)
    service = open_service(new_db("bad"))
    run(service, 240)
    crash(service)
    newest = []

    def flip_a_bit(conn):
        row = conn.execute("SELECT id, state FROM checkpoints ORDER BY id DESC LIMIT 1").fetchone()
        blob = bytearray(row["state"])
        blob[len(blob) // 2] ^= 0xFF
        conn.execute("UPDATE checkpoints SET state = ? WHERE id = ?", (bytes(blob), row["id"]))
        newest.append(row["id"])

    corrupt(new_db("bad"), flip_a_bit)
    service = open_service(new_db("bad"))
    assert len(service.skipped_checkpoints) == 1
    assert f"checkpoint {newest[0]} " in service.skipped_checkpoints[0]
    assert "checksum mismatch" in service.skipped_checkpoints[0]
    assert service.status()["skipped_checkpoints"] == service.skipped_checkpoints
    assert service.restored_from < newest[0]
    same_state(reference, service)
    reference.stop()
    service.stop()


def test_every_checkpoint_corrupted_replays_from_scratch(new_db):
    reference = open_service(new_db("ref"))
    run(reference, 96)
    service = open_service(new_db("bad"))
    run(service, 96)
    crash(service)
    changed = []
    corrupt(
        new_db("bad"),
        lambda conn: changed.append(conn.execute("UPDATE checkpoints SET sha256 = 'x'").rowcount),
    )
    n = changed[0]
    service = open_service(new_db("bad"))
    assert len(service.skipped_checkpoints) == n
    assert service.replayed == 96
    same_state(reference, service)
    reference.stop()
    service.stop()


def test_stop_writes_a_final_checkpoint(new_db):
    service = open_service(new_db())
    run(service, 40)  # 5 micro-batches: no periodic checkpoint at 5
    service.stop()
    service = open_service(new_db())
    assert service.replayed == 0 and service.samples_learned == 40
    assert service.last_checkpoint["kind"] == "shutdown"
    service.stop()


def test_another_experiment_or_learner_on_an_existing_database_is_refused(new_db, tmp_path):
    open_service(new_db()).stop()
    with pytest.raises(LearnerMismatch, match="serves learner 'adwin_reset'") as refused:
        Service.open(new_db(), learner="static")
    assert refused.value.field == "learner"
    other = tmp_path / "other.toml"
    other.write_text('[stream]\nkind = "sea"\nn = 100\n[learners.lr]\nkind = "logistic"\n')
    with pytest.raises(ExperimentMismatch) as refused:
        Service.open(new_db(), experiment=other)
    assert refused.value.field == "experiment"
    with pytest.raises(UnknownLearner, match="no learner 'nope'") as refused:
        Service.open(new_db("new"), learner="nope")
    assert refused.value.field == "learner"
    service = Service.open(new_db())  # what it was created with
    assert service.spec.learner == "adwin_reset"
    crash(service)


def test_store_refused_job_rolls_back_only_itself(new_db):
    store = open_store(new_db()).start()

    def good(conn):
        conn.execute("INSERT INTO meta VALUES ('a', '1')")
        return "ok"

    def bad(conn):
        conn.execute("INSERT INTO meta VALUES ('b', '2')")
        raise ValueError("refused")

    def failing(conn):  # a database error (here: a unique key) fails its job only: 503
        conn.execute("INSERT INTO meta VALUES ('c', '3')")
        conn.execute("INSERT INTO meta VALUES ('c', '4')")

    futures = [store.submit(good), store.submit(bad), store.submit(failing)]
    assert futures[0].result() == "ok"
    with pytest.raises(ValueError, match="refused"):
        futures[1].result()
    with pytest.raises(StoreError, match="write failed"):
        futures[2].result()
    assert store.get_meta() == {"a": 1}
    store.close()
    with pytest.raises(StoreError):
        store.submit(good)
    if new_db.backend != "sqlite":
        return
    db = sqlite3.connect(new_db())
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_gate_blocks_negative_flips_even_when_accuracy_rises():
    gate = UpdateGate(window=10, max_nfr=0.1)
    y = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    old = np.array([0, 0, 0, 1, 1, 1, 1, 0, 0, 0])  # 5 right
    new = np.array([1, 1, 0, 0, 0, 1, 1, 1, 1, 1])  # 8 right, but 2 of old's right now wrong
    gate.add(y[:5], old[:5], new[:5])
    assert not gate.ready()
    gate.add(y[5:], old[5:], new[5:])
    decision = gate.decide()
    assert decision.accuracy_new > decision.accuracy_old
    assert decision.negative_flips == 2 and decision.negative_flip_rate == pytest.approx(0.2)
    assert not decision.promote and "negative flip rate" in decision.reason
    assert gate.n == 0
    loose = UpdateGate(window=10, max_nfr=0.2)
    loose.add(y, old, new)
    assert loose.decide().promote


def test_gate_blocks_an_accuracy_drop_and_handles_regression():
    gate = UpdateGate(window=4, max_nfr=1.0)
    gate.add(np.array([1, 1, 1, 1]), np.array([1, 1, 1, 0]), np.array([1, 1, 0, 0]))
    assert not gate.decide().promote
    reg = UpdateGate(window=3, max_nfr=0.0, tolerance=0.5)
    y = np.array([1.0, 2.0, 3.0])
    reg.add(y, old=y + 1.0, new=y + 0.1)
    decision = reg.decide()
    assert decision.promote and decision.accuracy_old == 0.0 and decision.accuracy_new == 1.0
    with pytest.raises(ValueError, match="max_nfr"):
        UpdateGate(max_nfr=2.0)


class _TracedCursor(sqlite3.Cursor):
    """Records the thread each instance is finalized on."""

    deaths: list[str] = []

    def __del__(self) -> None:
        _TracedCursor.deaths.append(threading.current_thread().name)


def test_no_cursor_leaves_the_writer_thread(tmp_path):
    # the root cause of 'InterfaceError: bad parameter or other API misuse' under load: a job
    # returned executemany's cursor, which holds the cached INSERT statement; finalized on the
    # event loop's thread it reset that statement while the writer thread was reusing it
    store = Store(tmp_path / "s.db").start()
    _TracedCursor.deaths.clear()

    def returns_cursor(conn):
        cursor = conn.cursor(_TracedCursor)
        cursor.executemany("INSERT INTO meta VALUES (?, ?)", [("a", "1"), ("b", "2")])
        return cursor

    with pytest.raises(TypeError, match="never a cursor"):
        store.call(returns_cursor)
    with pytest.raises(TypeError, match="never a cursor"):
        store.call(lambda conn: [returns_cursor(conn)])
    with pytest.raises(TypeError, match="Connection"):
        store.call(lambda conn: conn)

    def raises_mid_select(conn):
        conn.execute("INSERT INTO meta VALUES ('c', '3')")
        cursor = conn.cursor(_TracedCursor)
        cursor.execute("SELECT * FROM meta")
        cursor.fetchone()  # the statement is still active
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused") as caught:
        store.call(raises_mid_select)
    del caught
    assert _TracedCursor.deaths == ["adaptloop-store"] * 3
    assert store.get_meta() == {}  # every refused job was rolled back
    store.close()


def test_store_refuses_numpy_scalars_as_parameters(new_db):
    # sqlite3 would store them silently as BLOBs (buffer protocol), not as numbers
    store = open_store(new_db()).start()
    for value in (np.int64(1), np.float32(0.5), np.bool_(True)):
        with pytest.raises(TypeError, match=f"parameter 1: numpy.{type(value).__name__}"):
            store.call(lambda c, v=value: c.execute("INSERT INTO meta VALUES (?, ?)", ("k", v)))
        with pytest.raises(TypeError, match="parameter 1"):
            store.call(
                lambda c, v=value: c.executemany("INSERT INTO meta VALUES (?, ?)", [("k", v)])
            )
    store.set_meta({"version": 3})
    store.call(
        lambda c: c.execute("UPDATE meta SET value = ? WHERE key = 'version'", (4.0,)).rowcount
    )
    assert store.get_meta() == {"version": 4.0}
    store.close()


def test_store_opens_its_connection_on_the_writer_thread(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not a database" * 100)
    with pytest.raises(StoreError, match="bad.db"):
        Store(bad).start()
    store = Store(tmp_path / "s.db").start()
    name = store.call(lambda c: threading.current_thread().name)
    assert name == "adaptloop-store"
    store.close()


def test_row_batcher_coalesces_concurrent_adds_into_few_commits(new_db):
    from adaptloop.serve.store import RowBatcher

    store = open_store(new_db()).start()
    log = RowBatcher(store, "INSERT INTO meta VALUES (?, ?)")
    gate = threading.Event()
    store.submit(lambda conn: gate.wait(5))  # hold the writer so that the adds queue up
    futures = [log.add([(f"k{i}", str(i))]) for i in range(50)]
    commits_before = store.commits
    gate.set()
    assert [future.result(5) for future in futures] == [50] * 50  # one job held all 50 rows
    assert store.commits - commits_before <= 1
    rows = store.call(lambda conn: conn.execute("SELECT count(*) AS n FROM meta").fetchone()["n"])
    assert rows == 50
    store.close()


def test_row_batcher_a_waiter_that_gives_up_does_not_cancel_the_others(new_db):
    from adaptloop.serve.store import RowBatcher

    store = open_store(new_db()).start()
    log = RowBatcher(store, "INSERT INTO meta VALUES (?, ?)")
    gate = threading.Event()
    store.submit(lambda conn: gate.wait(5))
    first, second = log.add([("a", "1")]), log.add([("b", "2")])
    assert first.cancel()
    gate.set()
    assert second.result(5) == 2  # both rows stored: the cancelled caller's too
    assert store.get_meta() == {"a": 1, "b": 2}
    log.add([("c", "3")]).result(5)  # the batcher goes on with new batches
    store.close()
    with pytest.raises(StoreError, match="not running"):
        log.add([("d", "4")])


def test_only_durable_jobs_wait_for_an_fsync(tmp_path):
    """A group of non-durable jobs commits at synchronous=NORMAL (1); a durable job, alone
    or sharing the group, makes the commit FULL (2) again."""
    store = Store(tmp_path / "sync.db").start()
    level = "PRAGMA synchronous"
    assert store.call(lambda conn: conn.execute(level).fetchone()[0]) == 2
    light = store.submit(lambda conn: conn.execute(level).fetchone()[0], durable=False)
    assert light.result(5) == 1
    gate = threading.Event()
    store.submit(lambda conn: gate.wait(5), durable=False)  # hold the writer: one group next
    mixed = [
        store.submit(lambda conn: conn.execute(level).fetchone()[0], durable=False),
        store.submit(lambda conn: conn.execute(level).fetchone()[0]),
    ]
    gate.set()
    assert [future.result(5) for future in mixed] == [2, 2]
    store.close()


def test_wal_is_checkpointed_off_the_writer_thread(tmp_path):
    """The writer never checkpoints inline (autocheckpoint off); the store's checkpointer
    thread copies the log into the database file, so the log stays small under writes."""
    store = Store(tmp_path / "wal.db", checkpoint_interval=0.05).start()
    assert store.call(lambda conn: conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]) == 0
    blob = b"x" * 4000  # about a page per row

    def write(conn) -> None:
        conn.execute("INSERT INTO meta VALUES (?, ?)", (uuid.uuid4().hex, blob))

    for _ in range(3000):  # past the 1,000 pages at which SQLite would checkpoint inline
        store.submit(write, durable=False)
    store.call(lambda conn: None)
    deadline = time.monotonic() + 10
    while store.wal.checkpoints < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    busy, in_log, copied = store.wal.checkpoint()
    assert busy == 0 and copied == in_log  # everything in the log is in the database file
    rows = store.call(lambda conn: conn.execute("SELECT count(*) FROM meta").fetchone()[0])
    assert rows == 3000
    store.close()
    with pytest.raises(RuntimeError, match="not running"):
        store.wal.checkpoint()
