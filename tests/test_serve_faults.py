"""The service against what users and attackers send it (issue 15): one test (or more) per
defect found when it was tried as an attacker and as a careless operator would."""

from __future__ import annotations

import json
import os
import pickle
import sqlite3

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from adaptloop.cli import app as cli_app  # noqa: E402
from adaptloop.serve.app import create_app  # noqa: E402
from adaptloop.serve.checkpoint import (  # noqa: E402
    LEGACY_MAGIC,
    CheckpointFile,
    checkpoint_digest,
    read_checkpoint,
    write_checkpoint,
)
from adaptloop.serve.errors import (  # noqa: E402
    CheckpointFileError,
    LegacyDatabase,
    NotStorable,
    StoreError,
)
from adaptloop.serve.gate import UpdateGate  # noqa: E402
from adaptloop.serve.schemas import FeedbackItem  # noqa: E402
from adaptloop.serve.service import Service, ServiceConfig  # noqa: E402
from adaptloop.serve.state import pack, unpack  # noqa: E402
from adaptloop.serve.store import NewFeedback, checksum  # noqa: E402
from adaptloop.streams import registry as streams  # noqa: E402

NAMES = ("x0", "x1", "x2")
CONFIG = ServiceConfig(micro_batch=8, gate_window=16, max_nfr=0.1)
REGRESSION = """name = "reg"
seed = 1
[stream]
kind = "linkload"
days = 0.5
history = 3
[learners.lin]
kind = "linear"
"""


def records(X: np.ndarray) -> list[dict[str, float]]:
    return [dict(zip(NAMES, map(float, row), strict=True)) for row in X]


def open_service(path, **kwargs) -> Service:
    return Service.open(path, learner="adwin_reset", config=CONFIG, **kwargs)


@pytest.fixture
def service(tmp_path):
    return open_service(tmp_path / "f.db")


@pytest.fixture
def client(service):
    with TestClient(create_app(service, background=False)) as client:
        yield client


def feed(client, service, n: int, seed: int = 3) -> None:
    for X, y in streams.create("sea", n=n, seed=seed).iter_batches(16):
        answer = client.post("/v1/predict", json={"records": records(X)}).json()
        fb = [
            {"prediction_id": p["id"], "label": int(v)}
            for p, v in zip(answer["predictions"], y, strict=True)
        ]
        assert client.post("/v1/feedback", json={"feedback": fb}).status_code == 200
    while service.step():
        pass


# -- 1. poison values ------------------------------------------------------------------------
@pytest.mark.parametrize("value", [1e300, 3.5e38, -1e39])
def test_values_outside_float32_are_refused_in_predict_and_feedback(client, service, value):
    good = {"x0": 1.0, "x1": 2.0, "x2": 3.0}
    answer = client.post("/v1/predict", json={"records": [good, {**good, "x1": value}]})
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == "records[1].x1"
    fb = {"feedback": [{"record": {**good, "x2": value}, "label": 1}]}
    answer = client.post("/v1/feedback", json=fb)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == "feedback[0].record[0].x2"
    assert service.store.count("feedback") == 0 and service.store.count("predictions") == 0


def test_a_regression_label_outside_float32_is_refused(tmp_path):
    experiment = tmp_path / "reg.toml"
    experiment.write_text(REGRESSION)
    service = Service.open(tmp_path / "reg.db", experiment=experiment)
    record = dict.fromkeys(service.spec.feature_names, 0.5)
    with TestClient(create_app(service, background=False)) as client:
        answer = client.post(
            "/v1/feedback", json={"feedback": [{"record": record, "label": 1e300}]}
        )
        assert answer.status_code == 422, answer.text
        assert answer.json()["field"] == "feedback[0].label"
        ok = client.post("/v1/feedback", json={"feedback": [{"record": record, "label": 0.25}]})
        assert ok.status_code == 200
        assert service.store.count("feedback") == 1


def poison(service: Service, n: int) -> None:
    """Store ``n`` records with an infinite feature behind the edge's back (as a database of
    an earlier version could hold them)."""
    bad = np.full(3, np.inf, dtype=np.float32).tobytes()
    service.store.add_feedback([NewFeedback(None, bad, 1.0) for _ in range(n)]).result()


def test_a_failing_micro_batch_is_quarantined_and_learning_goes_on(tmp_path):
    path = tmp_path / "q.db"
    service = open_service(path)
    service.start(background=False)
    poison(service, 8)
    X, y = next(streams.create("sea", n=64, seed=1).iter_batches(64))
    items = [FeedbackItem(record=r, label=int(v)) for r, v in zip(records(X), y, strict=True)]
    service.add_feedback(items).result()
    while service.step():
        pass
    status = service.status()
    assert status["quarantine"]["batches"] == 1 and status["quarantine"]["records"] == 8
    assert "non-finite" in status["quarantine"]["last"]["error"]
    assert status["feedback"]["learned"] == 64 and status["feedback"]["pending"] == 0
    assert service.readiness()["quarantine"] is None  # 8 <= max_quarantined
    service.stop()
    again = open_service(path)  # the restart replays past it: it never blocks start-up
    again.start(background=False)
    assert again.samples_learned == 64 and again.quarantine_summary()["batches"] == 1
    again.stop()


# -- 2. forged checkpoints -------------------------------------------------------------------
class RunsCode:
    """Unpickling this creates ``marker``: a stand-in for an attacker's code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def exported(service, client, tmp_path):
    feed(client, service, 160)
    path = tmp_path / "good.ckpt"
    write_checkpoint(path, service.export_checkpoint())
    return path


def test_a_legacy_pickle_checkpoint_is_refused_and_runs_nothing(exported, tmp_path):
    marker = tmp_path / "ran"
    header = dict(read_checkpoint(exported).header, format=1)
    payload = pickle.dumps(RunsCode(str(marker)))
    forged = CheckpointFile({**header, "payload_bytes": len(payload)}, payload, legacy=True)
    forged.header["sha256"] = checkpoint_digest(forged.header, payload)
    path = tmp_path / "forged.ckpt"
    path.write_bytes(forged.to_bytes())
    assert path.read_bytes().startswith(LEGACY_MAGIC)
    result = CliRunner().invoke(
        cli_app, ["serve", "--checkpoint", str(path), "--db", str(tmp_path / "n.db")]
    )
    assert result.exit_code == 2 and "--trust-pickle" in result.output
    assert not marker.exists() and not (tmp_path / "n.db").exists()


def test_a_forged_state_with_a_pickled_payload_is_refused(exported, tmp_path):
    """A format 2 file whose drift detector bytes are an attacker's pickle, checksum
    recomputed: refused when read, nothing runs."""
    marker = tmp_path / "ran"
    good = read_checkpoint(exported)
    state = unpack(good.payload)
    state["learned"]["detector"] = pickle.dumps(RunsCode(str(marker)))
    with pytest.raises(ValueError, match=r"pickled \w+\.open"):
        pack(state)
    # written by hand, as an attacker would: the JSON and tensors parts are public
    document, tensors = _split(good.payload)
    tensors = dict(tensors)
    # the served detector is stored as arrays: the attacker swaps in a bytes node
    assert _replace(document["tree"], "detector", {"$": "bytes", "ref": "forged"})
    tensors["forged"] = np.frombuffer(pickle.dumps(RunsCode(str(marker))), dtype=np.uint8)
    payload = _join(document, tensors)
    header = {k: v for k, v in good.header.items() if k != "sha256"}
    header["payload_bytes"] = len(payload)
    header["sha256"] = checkpoint_digest(header, payload)
    path = tmp_path / "forged2.ckpt"
    path.write_bytes(CheckpointFile(header, payload).to_bytes())
    with pytest.raises(CheckpointFileError, match=r"pickled \w+\.open"):
        Service.open(tmp_path / "n.db", checkpoint=path)
    assert not marker.exists() and not (tmp_path / "n.db").exists()


def _split(payload: bytes):
    from safetensors.numpy import load

    from adaptloop.serve.state import MAGIC

    end = payload.index(b"\n", len(MAGIC))
    return json.loads(payload[len(MAGIC) : end]), load(payload[end + 1 :])


def _join(document, tensors) -> bytes:
    from safetensors.numpy import save

    from adaptloop.serve.state import MAGIC

    return MAGIC + json.dumps(document, sort_keys=True).encode() + b"\n" + save(tensors)


def _replace(node, key, value) -> bool:
    """Replace the first ``key`` entry found in a state tree by ``value``."""
    if isinstance(node, dict):
        if key in node:
            node[key] = value
            return True
        return any(_replace(v, key, value) for v in node.values())
    if isinstance(node, list):
        return any(_replace(v, key, value) for v in node)
    return False


def test_signed_checkpoints(service, client, tmp_path):
    key, other = b"k" * 32, b"o" * 32
    feed(client, service, 32)
    signed = tmp_path / "signed.ckpt"
    service.checkpoint_key = key
    write_checkpoint(signed, service.export_checkpoint())
    service.checkpoint_key = None
    unsigned = tmp_path / "unsigned.ckpt"
    write_checkpoint(unsigned, service.export_checkpoint())
    assert read_checkpoint(signed, key).header["hmac_sha256"]
    with pytest.raises(CheckpointFileError, match="not signed"):
        read_checkpoint(unsigned, key)
    with pytest.raises(CheckpointFileError, match="does not verify"):
        read_checkpoint(signed, other)
    # a changed header with a recomputed checksum keeps its old signature: refused
    tampered = read_checkpoint(signed)
    header = dict(tampered.header, model_version=99)
    header["sha256"] = checkpoint_digest(header, tampered.payload)
    (tmp_path / "t.ckpt").write_bytes(CheckpointFile(header, tampered.payload).to_bytes())
    with pytest.raises(CheckpointFileError, match="does not verify"):
        read_checkpoint(tmp_path / "t.ckpt", key)
    key_file = tmp_path / "key"
    key_file.write_bytes(key)
    result = CliRunner().invoke(
        cli_app,
        ["checkpoint", "export", "--db", str(service.store.path), "--out", str(tmp_path / "c.ckpt")]
        + ["--checkpoint-key", str(key_file)],
    )
    assert result.exit_code == 0 and "signed" in result.output, result.output
    assert read_checkpoint(tmp_path / "c.ckpt", key).model_version == service.version
    opened = Service.open(tmp_path / "n.db", checkpoint=signed, checkpoint_key=key)
    opened.store.close()


def test_legacy_pickled_database_rows_are_refused_unless_trusted(tmp_path):
    path = tmp_path / "old.db"
    service = open_service(path)
    service.start(background=False)
    service.stop()
    marker = tmp_path / "ran"
    blob = pickle.dumps(RunsCode(str(marker)))
    db = sqlite3.connect(path)
    db.execute("UPDATE checkpoints SET state = ?, sha256 = ?", (blob, checksum(blob)))
    db.commit()
    db.close()
    with pytest.raises(LegacyDatabase, match="pickled"):
        open_service(path)
    assert not marker.exists()
    result = CliRunner().invoke(cli_app, ["serve", "--db", str(path)])
    assert result.exit_code == 2 and "--trust-pickle" in result.output
    assert not marker.exists()


def test_trust_pickle_converts_legacy_rows_once(tmp_path):
    path = tmp_path / "old.db"
    service = open_service(path)
    service.start(background=False)
    state = service._state()
    service.stop()
    legacy = {**state, "tracker": service.tracker, "gate": service.gate}
    blob = pickle.dumps(legacy)
    db = sqlite3.connect(path)
    db.execute("UPDATE checkpoints SET state = ?, sha256 = ?", (blob, checksum(blob)))
    db.commit()
    db.close()
    trusted = open_service(path, trust_pickle=True)
    trusted.start(background=False)
    assert trusted.restored_from is not None and trusted.skipped_checkpoints == []
    trusted.stop()
    again = open_service(path)  # converted: no --trust-pickle needed any more
    again.store.close()


def test_a_learner_whose_state_is_an_object_is_refused_at_checkpoint_time(tmp_path):
    experiment = tmp_path / "river.toml"
    experiment.write_text(
        '[stream]\nkind = "sea"\nn = 100\n[learners.tree]\nkind = "hoeffding_adaptive_tree"\n'
    )
    with pytest.raises(NotStorable, match="cannot be checkpointed"):
        Service.open(tmp_path / "r.db", experiment=experiment)
    assert not (tmp_path / "r.db").exists()


# -- 3. one server per database --------------------------------------------------------------
def test_a_second_server_on_the_same_database_is_refused(tmp_path):
    path = tmp_path / "twin.db"
    first = open_service(path)
    with pytest.raises(StoreError, match="in use by another server"):
        open_service(path)
    result = CliRunner().invoke(cli_app, ["serve", "--db", str(path)])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "in use by another server" in result.output
    first.store.close()
    open_service(path).store.close()  # free again once the first one stopped


# -- 4. retention, full disk, rate limit -----------------------------------------------------
def test_predictions_and_checkpoints_are_pruned(tmp_path):
    config = ServiceConfig(
        micro_batch=8,
        gate_window=1000,
        checkpoint_every=1,
        keep_checkpoints=3,
        keep_predictions=20,
        prune_seconds=1e-6,
    )
    service = Service.open(tmp_path / "p.db", learner="adwin_reset", config=config)
    service.start(background=False)
    X, y = next(streams.create("sea", n=80, seed=1).iter_batches(80))
    served, logged = service.predict_records(records(X))
    logged.result()
    items = [
        FeedbackItem(prediction_id=i, label=int(v))
        for i, v in zip(served.ids[:40], y, strict=False)
    ]
    service.add_feedback(items).result()
    service._prune()  # 40 pending feedback keep their predictions, the newest 20 are kept
    assert service.store.count("predictions") <= 60
    while service.step():
        pass
    service._prune()
    assert service.store.count("predictions") <= 20
    kinds = [c.kind for c in service.store.checkpoints()]
    assert len(kinds) <= 3 + 2 and kinds[-1] == "initial"  # + the newest of version 1
    service.stop()


def test_a_full_disk_is_a_503_and_readyz_says_so(client, service):
    assert client.get("/readyz").status_code == 200
    service.store.call(lambda conn: conn.execute("PRAGMA max_page_count = 1").fetchall())
    good = {"records": [{"x0": 1.0, "x1": 2.0, "x2": 3.0}] * 1000}
    for _ in range(30):
        answer = client.post("/v1/predict", json=good)
        if answer.status_code != 200:
            break
    assert answer.status_code == 503 and answer.json()["field"] == "db"
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["store"].startswith("not writable")
    assert client.get("/healthz").status_code == 200


def test_predict_rate_limit(service):
    with TestClient(create_app(service, background=False, predict_rate=5)) as client:
        good = {"records": [{"x0": 1.0, "x1": 2.0, "x2": 3.0}] * 5}
        assert client.post("/v1/predict", json=good).status_code == 200
        answer = client.post("/v1/predict", json=good)
        assert answer.status_code == 429 and answer.json()["field"] == "records"


# -- 5. the gate -----------------------------------------------------------------------------
def test_the_regression_gate_compares_errors_and_never_promotes_a_tie_of_zeros():
    gate = UpdateGate(window=4, tolerance=0.5)
    y = np.zeros(4)
    gate.add(y, old=np.full(4, 2.0), new=np.full(4, 1e6))  # hit rates 0 = 0, far worse MAE
    assert not gate.decide().promote
    gate.add(y, old=np.full(4, 2.0), new=np.full(4, 1.0))  # better MAE, hits still 0 = 0
    assert gate.decide().promote
    gate.add(y, old=np.full(4, 2.0), new=np.full(4, np.nan))
    assert not gate.decide().promote
    classes = UpdateGate(window=4)
    classes.add(np.zeros(4), old=np.ones(4), new=np.ones(4))  # both always wrong
    assert not classes.decide().promote


# -- 6. a checkpoint that does not fit its model; failed starts ------------------------------
def test_a_checksum_valid_checkpoint_that_does_not_fit_is_refused(exported, tmp_path):
    good = read_checkpoint(exported)
    state = unpack(good.payload)
    state["learned"]["model"]["learned"]["w"] = np.zeros((2, 7), dtype=np.float64)
    forged = CheckpointFile.encode(good.header, good.model_version, state)
    path = write_checkpoint(tmp_path / "misfit.ckpt", forged)
    result = CliRunner().invoke(
        cli_app, ["serve", "--checkpoint", str(path), "--db", str(tmp_path / "n.db")]
    )
    assert result.exit_code == 2 and "cannot load the state" in result.output, result.output
    assert not (tmp_path / "n.db").exists()


def test_a_failed_start_leaves_no_database(tmp_path):
    db = tmp_path / "x.db"
    result = CliRunner().invoke(cli_app, ["serve", "--db", str(db), "--learner", "nope"])
    assert result.exit_code == 2 and not db.exists()
    assert sorted(os.listdir(tmp_path)) == []


# -- 7. bad --db paths; huge versions --------------------------------------------------------
def test_bad_db_paths_are_one_line_errors(tmp_path, monkeypatch):
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: None)  # never serve here
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 100)
    folder = tmp_path / "folder"
    folder.mkdir()
    unwritable = "/proc/adaptloop-test/x.db"  # no one may create files there, root neither
    for db in (text, folder, unwritable):
        result = CliRunner().invoke(cli_app, ["serve", "--db", str(db)])
        assert result.exit_code == 2, (db, result.output)
        assert result.output.startswith("error: --db: "), result.output
        assert result.output.count("\n") == 1, result.output
    assert text.read_text().startswith("not a database")


def test_a_huge_rollback_version_is_a_422(client):
    for version in ("1180591620717411303424", "0", "-1"):
        answer = client.post(f"/v1/model/rollback/{version}")
        assert answer.status_code == 422, answer.text


# -- 9. idempotent feedback ------------------------------------------------------------------
def test_record_feedback_with_an_idempotency_key_is_stored_once(client, service):
    record = {"x0": 1.0, "x1": 2.0, "x2": 3.0}
    body = {"feedback": [{"record": record, "label": 1, "key": "client-7/42"}]}
    first = client.post("/v1/feedback", json=body)
    retry = client.post("/v1/feedback", json=body)
    assert first.status_code == retry.status_code == 200
    assert first.json()["seq"] == retry.json()["seq"]
    assert service.store.count("feedback") == 1
    other = {"feedback": [{"record": record, "label": 0, "key": "client-7/42"}]}
    conflict = client.post("/v1/feedback", json=other)
    assert conflict.status_code == 409 and conflict.json()["field"] == "feedback[0].key"
    # the header: item i is stored under "<key>:<i>"
    batch = {"feedback": [{"record": record, "label": 1}, {"record": record, "label": 0}]}
    headers = {"Idempotency-Key": "request-9"}
    a = client.post("/v1/feedback", json=batch, headers=headers)
    b = client.post("/v1/feedback", json=batch, headers=headers)
    assert a.status_code == b.status_code == 200 and a.json()["seq"] == b.json()["seq"]
    assert service.store.count("feedback") == 3
