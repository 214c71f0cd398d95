"""The service on Ray Serve: a trainer and two predictor replicas on one PostgreSQL database,
behind Ray Serve's proxy (a local Ray on 2 CPUs; slow: Ray and three replicas start)."""

from __future__ import annotations

import time

import pytest

ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")
httpx = pytest.importorskip("httpx")

from adaptloop.serve.localpg import free_port  # noqa: E402
from adaptloop.serve.rayserve import PREDICTORS, TRAINER, RayServeOptions, deploy  # noqa: E402
from adaptloop.serve.service import ServiceConfig  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False)
    yield
    serve.shutdown()
    ray.shutdown()


def test_predictors_and_trainer_on_ray_serve(local_ray, postgres):
    db = postgres.database()
    port = free_port()
    config = ServiceConfig(micro_batch=4, gate_window=8, follow_seconds=0.2)
    options = RayServeOptions(replicas=2, port=port)
    deploy(db, config, None, None, {"learner": "adwin_reset"}, options, block=False)
    status = serve.status().applications
    assert status[PREDICTORS].status == "RUNNING" and status[TRAINER].status == "RUNNING"
    replicas = status[PREDICTORS].deployments["predictor"].replica_states
    assert replicas.get("RUNNING") == 2
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        records = [{"x0": float(i % 10), "x1": float(i % 7), "x2": 1.0} for i in range(64)]
        answer = http.post("/v1/predict", json={"records": records}).json()
        ids = [p["id"] for p in answer["predictions"]]
        labels = [
            {"prediction_id": p, "label": str(int(r["x0"] + r["x1"] > 8))}
            for p, r in zip(ids, records, strict=True)
        ]
        assert http.post("/v1/feedback", json={"feedback": labels}).json()["accepted"] == 64
        deadline = time.monotonic() + 60
        while http.get("/trainer/v1/model").json()["feedback"]["learned"] < 64:
            assert time.monotonic() < deadline, "the trainer did not learn the feedback"
            time.sleep(0.2)
        trainer = http.get("/trainer/v1/model").json()
        assert trainer["role"] == "trainer"
        rolled = http.post("/trainer/v1/model/rollback/1").json()
        while http.get("/v1/model").json()["version"] != rolled["version"]:
            assert time.monotonic() < deadline, "a predictor did not follow the new version"
            time.sleep(0.1)
        assert http.get("/v1/model").json()["role"] == "predictor"
    serve.delete(PREDICTORS)
    serve.delete(TRAINER)
