"""API tests of the service: every endpoint, every refused input (and nothing changes)."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from adaptloop.cli import app as cli_app  # noqa: E402
from adaptloop.learners.base import states_equal  # noqa: E402
from adaptloop.serve.app import create_app  # noqa: E402
from adaptloop.serve.service import Service, ServiceConfig  # noqa: E402
from adaptloop.streams import registry as streams  # noqa: E402

TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NAMES = ("x0", "x1", "x2")


def sea_batches(n: int, batch: int, seed: int = 3):
    stream = streams.create("sea", n=n, seed=seed)
    return list(stream.iter_batches(batch))


def records(X: np.ndarray) -> list[dict[str, float]]:
    return [dict(zip(NAMES, map(float, row), strict=True)) for row in X]


@pytest.fixture
def service(tmp_path):
    config = ServiceConfig(micro_batch=8, gate_window=16, max_nfr=0.1)
    return Service.open(tmp_path / "api.db", learner="adwin_reset", config=config)


@pytest.fixture
def client(service):
    with TestClient(create_app(service, token=TOKEN, background=False)) as client:
        yield client


def snapshot_state(service: Service) -> dict:
    """Everything a refused request must leave as it was."""
    version, served = service.current
    db = sqlite3.connect(service.store.path)
    try:
        rows = {
            table: db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
            for table in ("predictions", "feedback", "checkpoints", "decisions")
        }
    finally:
        db.close()
    return {
        "version": version,
        "served": served.state_dict(),
        "candidate": service.candidate.state_dict(),
        "rows": rows,
    }


def assert_unchanged(before: dict, service: Service) -> None:
    after = snapshot_state(service)
    assert after["version"] == before["version"]
    assert after["rows"] == before["rows"]
    assert states_equal(after["served"], before["served"])
    assert states_equal(after["candidate"], before["candidate"])


def predict(client, X) -> list[str]:
    answer = client.post("/v1/predict", json={"records": records(X)})
    assert answer.status_code == 200, answer.text
    return [p["id"] for p in answer.json()["predictions"]]


def test_predict_returns_ids_probabilities_and_stores_them(client, service):
    (X, _), *_ = sea_batches(5, 5)
    answer = client.post("/v1/predict", json={"records": records(X)})
    assert answer.status_code == 200
    body = answer.json()
    assert body["model_version"] == service.version
    preds = body["predictions"]
    assert len(preds) == 5 and len({p["id"] for p in preds}) == 5
    _, expected, proba = service.predict(X)
    for p, code, row in zip(preds, expected, proba, strict=True):
        assert p["prediction"] == ("0", "1")[int(code)]
        assert p["probabilities"]["0"] + p["probabilities"]["1"] == pytest.approx(1.0)
        assert p["probabilities"]["1"] == pytest.approx(float(row[1]), abs=1e-6)
    assert service.store.count("predictions") == 5


def test_feedback_by_id_and_by_record_is_stored_and_learned(client, service):
    batches = sea_batches(32, 16)
    X, y = batches[0]
    ids = predict(client, X)
    fb = [{"prediction_id": i, "label": int(label)} for i, label in zip(ids, y, strict=True)]
    answer = client.post("/v1/feedback", json={"feedback": fb}, headers=AUTH)
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 16
    X2, y2 = batches[1]
    by_record = [
        {"record": r, "label": str(label)} for r, label in zip(records(X2), y2, strict=True)
    ]
    answer = client.post("/v1/feedback", json={"feedback": by_record}, headers=AUTH)
    assert answer.status_code == 200
    assert answer.json()["seq"] == list(range(17, 33))
    assert service.store.count("feedback") == 32
    before = service.candidate.state_dict()
    while service.step():
        pass
    assert service.samples_learned == 32
    assert not states_equal(before, service.candidate.state_dict())
    status = client.get("/v1/model").json()
    assert status["feedback"] == {
        "received": 32,
        "learned": 32,
        "pending": 0,
        "quarantined": 0,
        "micro_batch": 8,
    }


def test_model_metrics_are_prequential_over_what_was_served(client, service):
    served, labels = [], []
    for X, y in sea_batches(96, 8):
        answer = client.post("/v1/predict", json={"records": records(X)}).json()
        served += [int(p["prediction"]) for p in answer["predictions"]]
        labels += [int(v) for v in y]
        fb = [
            {"prediction_id": p["id"], "label": int(v)}
            for p, v in zip(answer["predictions"], y, strict=True)
        ]
        assert client.post("/v1/feedback", json={"feedback": fb}, headers=AUTH).status_code == 200
        while service.step():  # learn between requests: later predictions use newer versions
            pass
    status = client.get("/v1/model").json()
    expected = float(np.mean(np.array(served) == np.array(labels)))
    assert status["metrics"]["accuracy"] == pytest.approx(expected)
    assert status["feedback"]["learned"] == 96
    # 96 samples, gate window 16: six decisions, each with its numbers, in the store too
    assert len(status["decisions"]) == 6
    for decision in status["decisions"]:
        assert decision["n"] == 16
        assert decision["promote"] == (
            decision["accuracy_new"] >= decision["accuracy_old"]
            and decision["negative_flip_rate"] <= decision["max_nfr"]
        )
    assert service.store.decisions(50) == status["decisions"]
    promotions = sum(d["promote"] for d in status["decisions"])
    assert status["version"] == 1 + promotions


def bad_predict_bodies():
    good = {"x0": 1.0, "x1": 2.0, "x2": 3.0}
    return [
        ("missing feature", {"records": [{"x0": 1.0, "x1": 2.0}]}, 422, "records[0]"),
        ("unknown feature", {"records": [good, {**good, "x9": 1.0}]}, 422, "records[1]"),
        ("string value", {"records": [{**good, "x1": "2"}]}, 422, "records[0].x1"),
        ("bool value", {"records": [{**good, "x2": True}]}, 422, "records[0].x2"),
        ("null value", {"records": [{**good, "x0": None}]}, 422, "records[0].x0"),
        ("empty batch", {"records": []}, 422, "records"),
        ("not a list", {"records": good}, 422, "records"),
        ("extra key", {"records": [good], "model": 3}, 422, "model"),
        ("too many", {"records": [good] * 1001}, 422, "records"),
    ]


@pytest.mark.parametrize(
    ("case", "body", "status", "field"), bad_predict_bodies(), ids=lambda v: str(v)[:20]
)
def test_predict_refuses_bad_input_and_changes_nothing(client, service, case, body, status, field):
    before = snapshot_state(service)
    answer = client.post("/v1/predict", json=body)
    assert answer.status_code == status, (case, answer.text)
    assert answer.json()["field"] == field
    assert field in answer.json()["detail"]
    assert_unchanged(before, service)


@pytest.mark.parametrize(
    ("raw", "status", "field"),
    [
        ('{"records": [{"x0": NaN, "x1": 1, "x2": 1}]}', 422, "records[0].x0"),
        ('{"records": [{"x0": 1, "x1": Infinity, "x2": 1}]}', 422, "records[0].x1"),
        ('{"records": [{"x0": 1, "x1": 1, "x2": -1e999}]}', 422, "records[0].x2"),
        ('{"records": [{"x0": 1, "x1": 1, "x2"', 400, "body"),
        ("not json at all", 400, "body"),
    ],
)
def test_predict_refuses_non_finite_and_malformed_json(client, service, raw, status, field):
    before = snapshot_state(service)
    answer = client.post("/v1/predict", content=raw, headers={"Content-Type": "application/json"})
    assert answer.status_code == status, answer.text
    assert answer.json()["field"] == field
    assert_unchanged(before, service)


def test_oversized_body_is_refused(tmp_path):
    service = Service.open(tmp_path / "big.db", learner="adwin_reset")
    with TestClient(create_app(service, max_body_bytes=2_000, background=False)) as client:
        before = snapshot_state(service)
        body = {"records": [{"x0": 1.0, "x1": 2.0, "x2": 3.0}] * 200}
        answer = client.post("/v1/predict", json=body)
        assert answer.status_code == 413
        assert answer.json()["field"] == "body"
        chunks = (b'{"records": [' + b'{"x0": 1, "x1": 2, "x2": 3},' * 50 for _ in range(2))
        answer = client.post(
            "/v1/predict", content=chunks, headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 413  # streamed (no Content-Length) and too large
        assert_unchanged(before, service)
        assert client.post("/v1/predict", json={"records": body["records"][:2]}).status_code == 200


def test_feedback_refusals_change_nothing(client, service):
    (X, y), *_ = sea_batches(4, 4)
    ids = predict(client, X)
    ok = client.post(
        "/v1/feedback", json={"feedback": [{"prediction_id": ids[0], "label": 1}]}, headers=AUTH
    )
    assert ok.status_code == 200
    good_record = records(X)[0]
    cases = [
        ({"feedback": [{"prediction_id": "nope", "label": 1}]}, 404, "feedback[0].prediction_id"),
        ({"feedback": [{"prediction_id": ids[0], "label": 0}]}, 409, "feedback[0].prediction_id"),
        (
            {
                "feedback": [
                    {"prediction_id": ids[1], "label": 0},
                    {"prediction_id": ids[1], "label": 1},
                ]
            },
            409,
            "feedback[1].prediction_id",
        ),
        (  # a good item then an unknown id: the whole request is refused
            {
                "feedback": [
                    {"prediction_id": ids[2], "label": 0},
                    {"prediction_id": "missing", "label": 1},
                ]
            },
            404,
            "feedback[1].prediction_id",
        ),
        ({"feedback": [{"prediction_id": ids[1], "label": "7"}]}, 422, "feedback[0].label"),
        ({"feedback": [{"prediction_id": ids[1], "label": True}]}, 422, "feedback[0].label"),
        ({"feedback": [{"prediction_id": ids[1], "label": 0.5}]}, 422, "feedback[0].label"),
        ({"feedback": [{"label": 1}]}, 422, "feedback[0]"),
        (
            {"feedback": [{"prediction_id": ids[1], "record": good_record, "label": 1}]},
            422,
            "feedback[0]",
        ),
        ({"feedback": [{"record": {"x0": 1.0}, "label": 1}]}, 422, "feedback[0].record[0]"),
        ({"feedback": [{"record": {**good_record, "x1": float("nan")}, "label": 1}]}, 422, None),
        ({"feedback": []}, 422, "feedback"),
        ({"labels": []}, 422, "feedback"),
    ]
    for body, status, field in cases:
        before = snapshot_state(service)
        if field is None:  # NaN is not JSON: send it raw
            raw = json.dumps(body)
            answer = client.post(
                "/v1/feedback",
                content=raw,
                headers={**AUTH, "Content-Type": "application/json"},
            )
            field = "feedback[0].record.x1"
        else:
            answer = client.post("/v1/feedback", json=body, headers=AUTH)
        assert answer.status_code == status, (body, answer.text)
        assert answer.json()["field"] == field, answer.json()
        assert field in answer.json()["detail"]
        assert_unchanged(before, service)
    assert service.store.count("feedback") == 1


def test_a_store_failure_is_a_503_that_names_no_server_path(client, service):
    ids = predict(client, np.array([[1.0, 7.0, 3.0]]))
    service.store.close()  # every write now fails: nothing can be acknowledged
    for url, body, headers in (
        ("/v1/predict", {"records": [{"x0": 1.0, "x1": 2.0, "x2": 3.0}]}, {}),
        ("/v1/feedback", {"feedback": [{"prediction_id": ids[0], "label": 1}]}, AUTH),
    ):
        answer = client.post(url, json=body, headers=headers)
        assert answer.status_code == 503, answer.text
        assert answer.json()["field"] == "db"
        assert str(service.store.path.parent) not in answer.text


def test_write_endpoints_need_the_token(client, service):
    (X, y), *_ = sea_batches(2, 2)
    ids = predict(client, X)
    body = {"feedback": [{"prediction_id": ids[0], "label": int(y[0])}]}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        before = snapshot_state(service)
        for method, url, payload in (
            ("post", "/v1/feedback", body),
            ("post", "/v1/model/snapshot", None),
            ("post", "/v1/model/rollback/1", None),
        ):
            answer = client.request(method, url, json=payload, headers=headers)
            assert answer.status_code == 401, (url, headers)
            assert "authorization" in answer.json()["detail"]
        assert_unchanged(before, service)
    assert client.post("/v1/feedback", json=body, headers=AUTH).status_code == 200


def feed(client, service, n: int, seed: int = 3) -> None:
    for X, y in sea_batches(n, 16, seed):
        answer = client.post("/v1/predict", json={"records": records(X)}).json()
        fb = [
            {"prediction_id": p["id"], "label": int(v)}
            for p, v in zip(answer["predictions"], y, strict=True)
        ]
        assert client.post("/v1/feedback", json={"feedback": fb}, headers=AUTH).status_code == 200
    while service.step():
        pass


def test_snapshot_and_rollback(client, service):
    initial = service.current[1].state_dict()
    feed(client, service, 320)
    version = service.version
    assert version > 1, "no promotion in 320 samples: the gate never passed"
    snap = client.post("/v1/model/snapshot", headers=AUTH)
    assert snap.status_code == 200
    assert snap.json()["version"] == version and snap.json()["kind"] == "snapshot"
    assert snap.json()["learned_seq"] == 320

    back = client.post("/v1/model/rollback/1", headers=AUTH)
    assert back.status_code == 200, back.text
    assert back.json()["version"] == version + 1
    assert back.json()["rolled_back_to"] == 1
    assert service.version == version + 1
    assert states_equal(service.current[1].state_dict(), initial)
    assert states_equal(service.candidate.state_dict(), initial)
    status = client.get("/v1/model").json()
    assert status["version"] == version + 1
    assert status["last_checkpoint"]["kind"] == "rollback"

    before = snapshot_state(service)
    missing = client.post("/v1/model/rollback/999", headers=AUTH)
    assert missing.status_code == 404 and missing.json()["field"] == "version"
    not_int = client.post("/v1/model/rollback/abc", headers=AUTH)
    assert not_int.status_code == 422 and not_int.json()["field"] == "path.version"
    assert_unchanged(before, service)


def test_metrics_health_and_openapi(client, service):
    feed(client, service, 64)
    text = client.get("/metrics")
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    body = text.text
    assert 'adaptloop_requests_total{method="POST",route="/v1/predict",status="200"} 4.0' in body
    assert 'adaptloop_request_seconds_bucket{le="+Inf",route="/v1/feedback"} 4.0' in body
    assert f"adaptloop_model_version {float(service.version)}" in body
    accuracy = service.report["accuracy_window"]
    line = 'adaptloop_feedback_metric{metric="accuracy",scope="window"} '
    assert any(
        row.startswith(line) and float(row[len(line) :]) == pytest.approx(accuracy)
        for row in body.splitlines()
    )
    assert "adaptloop_drift_alarms" in body
    assert client.get("/healthz").json() == {"status": "ok", "version": service.version}
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/predict",
        "/v1/feedback",
        "/v1/model",
        "/v1/model/snapshot",
        "/v1/model/rollback/{version}",
    ):
        assert path in paths


def test_serve_refuses_a_public_address_without_token(tmp_path, monkeypatch):
    monkeypatch.delenv("ADAPTLOOP_TOKEN", raising=False)
    result = CliRunner().invoke(
        cli_app, ["serve", "--host", "0.0.0.0", "--db", str(tmp_path / "x.db")]
    )
    assert result.exit_code == 2
    assert "--host" in result.output and "token" in result.output
    assert not (tmp_path / "x.db").exists()
    result = CliRunner().invoke(
        cli_app, ["serve", "--token-file", str(tmp_path / "none"), "--db", str(tmp_path / "x.db")]
    )
    assert result.exit_code == 2 and "--token-file" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--micro-batch", "0"], "error: --micro-batch: must be >= 1, got 0"),
        (["--max-nfr", "1.5"], "error: --max-nfr: must be <= 1, got 1.5"),
        (["--learner", "nope"], "error: --learner: no learner 'nope' in the experiment"),
    ],
)
def test_serve_names_the_flag_of_a_refused_setting(tmp_path, args, message):
    result = CliRunner().invoke(cli_app, ["serve", "--db", str(tmp_path / "x.db"), *args])
    assert result.exit_code == 2 and result.output.startswith(message), result.output


# -- checkpoint files ------------------------------------------------------------------------
def serve_via_cli(monkeypatch, args: list[str]):
    """Run `adaptloop serve ARGS` with uvicorn.run replaced: returns (result, app or None)."""
    import uvicorn

    served = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: served.append(app))
    result = CliRunner().invoke(cli_app, ["serve", *args])
    return result, (served[0] if served else None)


@pytest.fixture
def exported(client, service, tmp_path):
    """A service that learned (and promoted), its checkpoint file from the API and a batch."""
    feed(client, service, 320)
    assert service.version > 1, "no promotion: the round trip would not cover versions"
    answer = client.get("/v1/model/checkpoint", headers=AUTH)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/octet-stream"
    assert f"-v{service.version}.ckpt" in answer.headers["content-disposition"]
    path = tmp_path / "model.ckpt"
    path.write_bytes(answer.content)
    return path


def test_checkpoint_round_trip_serves_identical_predictions(
    exported, client, service, tmp_path, monkeypatch
):
    from adaptloop.serve.checkpoint import read_checkpoint

    header = read_checkpoint(exported).header
    assert header["model_version"] == service.version
    assert header["learner"] == "adwin_reset"
    assert header["experiment_source"] == service.spec.experiment.source
    # the CLI export from the database holds the same model
    out = tmp_path / "cli.ckpt"
    result = CliRunner().invoke(
        cli_app, ["checkpoint", "export", "--db", str(service.store.path), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert read_checkpoint(out).model_version == service.version
    assert read_checkpoint(out).payload == read_checkpoint(exported).payload

    X = np.concatenate([X for X, _ in sea_batches(64, 64, seed=9)])
    old = client.post("/v1/predict", json={"records": records(X)}).json()["predictions"]
    new_db = tmp_path / "new.db"
    result, app = serve_via_cli(monkeypatch, ["--checkpoint", str(exported), "--db", str(new_db)])
    assert result.exit_code == 0, result.output
    with TestClient(app) as fresh:
        answer = fresh.post("/v1/predict", json={"records": records(X)}).json()
        assert answer["model_version"] == 1
        new = answer["predictions"]
        assert [p["prediction"] for p in new] == [p["prediction"] for p in old]
        assert [p["probabilities"] for p in new] == [p["probabilities"] for p in old]
        status = fresh.get("/v1/model").json()
        assert status["last_checkpoint"]["from_checkpoint"]["sha256"] == header["sha256"]
        assert status["feedback"]["received"] == 0
    # restarting on that database with the same file resumes it
    result, app = serve_via_cli(monkeypatch, ["--checkpoint", str(exported), "--db", str(new_db)])
    assert result.exit_code == 0, result.output
    with TestClient(app) as again:
        answer = again.post("/v1/predict", json={"records": records(X)}).json()
        assert [p["probabilities"] for p in answer["predictions"]] == [
            p["probabilities"] for p in old
        ]


def test_checkpoint_of_an_earlier_version_and_auth(exported, client, service, tmp_path):
    from adaptloop.serve.checkpoint import read_checkpoint

    for headers in ({}, {"Authorization": "Bearer wrong"}):
        answer = client.get("/v1/model/checkpoint", headers=headers)
        assert answer.status_code == 401 and answer.content.startswith(b"{")
    answer = client.get("/v1/model/checkpoint?version=1", headers=AUTH)
    assert answer.status_code == 200
    (tmp_path / "v1.ckpt").write_bytes(answer.content)
    v1 = Service.open(tmp_path / "v1.db", checkpoint=tmp_path / "v1.ckpt")
    v1.start(background=False)
    initial = service.spec.build()
    assert read_checkpoint(tmp_path / "v1.ckpt").model_version == 1
    assert states_equal(v1.current[1].state_dict(), initial.state_dict())
    v1.stop()
    missing = client.get("/v1/model/checkpoint?version=999", headers=AUTH)
    assert missing.status_code == 404 and missing.json()["field"] == "version"
    result = CliRunner().invoke(
        cli_app,
        [
            "checkpoint",
            "export",
            "--db",
            str(service.store.path),
            "--version",
            "999",
            "--out",
            str(tmp_path / "none.ckpt"),
        ],
    )
    assert result.exit_code == 2 and "--version" in result.output
    assert not (tmp_path / "none.ckpt").exists()


def corrupt(path, tmp_path, how: str):
    data = bytearray(path.read_bytes())
    out = tmp_path / f"{how}.ckpt"
    if how == "state-bit":
        data[-20] ^= 0x01
    elif how == "experiment":
        data = data.replace(b"seed = ", b"seed = 1", 1)
    elif how == "truncated":
        data = data[:-100]
    elif how == "header":
        data = data.replace(b'"learner"', b'"learner', 1)
    elif how == "not-a-checkpoint":
        data = b"PK\x03\x04" + data[4:]
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("state-bit", "checksum mismatch"),
        ("experiment", "checksum mismatch"),
        ("truncated", "truncated"),
        ("header", "corrupted checkpoint header"),
        ("not-a-checkpoint", "not an adaptloop checkpoint file"),
    ],
)
def test_serve_refuses_a_corrupted_checkpoint(exported, tmp_path, monkeypatch, how, message):
    bad = corrupt(exported, tmp_path, how)
    new_db = tmp_path / "new.db"
    result, app = serve_via_cli(monkeypatch, ["--checkpoint", str(bad), "--db", str(new_db)])
    assert result.exit_code == 2 and app is None
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: --checkpoint:") and message in lines[0], lines[0]
    assert not new_db.exists()


def test_serve_checkpoint_conflicts_are_refused(exported, service, tmp_path, monkeypatch):
    new_db = tmp_path / "new.db"
    other = tmp_path / "other.toml"
    other.write_text('[stream]\nkind = "sea"\nn = 100\n[learners.lr]\nkind = "logistic"\n')
    args = ["--checkpoint", str(exported), "--db", str(new_db)]
    result, app = serve_via_cli(monkeypatch, [*args, "--experiment", str(other)])
    assert result.exit_code == 2 and app is None
    assert "--checkpoint" in result.output and "not both" in result.output
    result, app = serve_via_cli(monkeypatch, [*args, "--learner", "static"])
    assert result.exit_code == 2 and "--learner" in result.output
    assert not new_db.exists()
    # a database created from another experiment
    elsewhere = tmp_path / "other.db"
    Service.open(elsewhere, experiment=other).store.close()
    result, app = serve_via_cli(
        monkeypatch, ["--checkpoint", str(exported), "--db", str(elsewhere)]
    )
    assert result.exit_code == 2 and app is None
    assert "another experiment" in result.output and "new --db" in result.output
    # the same experiment, but a database that was not created from this file
    same = tmp_path / "same.db"
    Service.open(same, learner="adwin_reset").store.close()
    result, app = serve_via_cli(monkeypatch, ["--checkpoint", str(exported), "--db", str(same)])
    assert result.exit_code == 2 and "not from this checkpoint" in result.output


def test_predict_fast_path_and_route_answer_alike(client, service):
    """A plain JSON request is answered by the middleware's fast path; one with another JSON
    content type goes through the FastAPI route: same predictions, both logged."""
    body = json.dumps({"records": records(np.array([[1.0, 7.0, 3.0], [9.0, 2.0, 5.0]]))})
    fast = client.post("/v1/predict", content=body, headers={"Content-Type": "application/json"})
    plus_json = {"Content-Type": "application/vnd.adaptloop+json"}  # the route takes it
    routed = client.post("/v1/predict", content=body, headers=plus_json)
    assert fast.status_code == routed.status_code == 200, (fast.text, routed.text)
    assert fast.headers["content-type"] == routed.headers["content-type"] == "application/json"
    a, b = fast.json(), routed.json()
    assert a["model_version"] == b["model_version"]
    for p, q in zip(a["predictions"], b["predictions"], strict=True):
        assert p["id"] != q["id"] and p["prediction"] == q["prediction"]
        assert p["probabilities"] == pytest.approx(q["probabilities"])
    assert service.store.count("predictions") == 4


def test_feedback_fast_path_and_route_store_alike(client, service):
    ids = predict(client, np.array([[1.0, 7.0, 3.0], [9.0, 2.0, 5.0]]))
    plus_json = {"Content-Type": "application/vnd.adaptloop+json"}  # the route takes it
    answers = [
        client.post(
            "/v1/feedback",
            content=json.dumps({"feedback": [{"prediction_id": pid, "label": "1"}]}),
            headers={**AUTH, "Content-Type": kind},
        )
        for pid, kind in zip(ids, ("application/json", plus_json["Content-Type"]), strict=True)
    ]
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert [a.json()["seq"] for a in answers] == [[1], [2]]
    refused = client.post(
        "/v1/feedback",
        content=json.dumps({"feedback": [{"prediction_id": ids[0], "label": "0"}]}),
        headers={"Content-Type": "application/json"},  # no token
    )
    assert refused.status_code == 401 and service.store.count("feedback") == 2
