"""The service on a real socket: the Open Inference Protocol v2 through a client nobody here
wrote (``tritonclient[http]``), the transport limits, and the OpenAPI schema fuzzed with
schemathesis (bounded: a few examples per operation; no answer may be a 5xx).

One server (uvicorn in a thread, 127.0.0.1, an ephemeral port) serves the whole module.
"""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

from adaptloop.serve.app import create_app  # noqa: E402
from adaptloop.serve.service import Service, ServiceConfig  # noqa: E402
from adaptloop.serve.transport import TransportLimits, protocol  # noqa: E402

NAMES = ("x0", "x1", "x2")
LIMITS = TransportLimits(max_header_bytes=8192, read_timeout=1.0, max_connections=100)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    path = tmp_path_factory.mktemp("protocols") / "p.db"
    service = Service.open(path, learner="adwin_reset", config=ServiceConfig(micro_batch=8))
    port = free_port()
    config = uvicorn.Config(
        create_app(service),
        host="127.0.0.1",
        port=port,
        http=protocol(LIMITS),
        limit_concurrency=LIMITS.max_connections,
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the server did not start"
    yield f"127.0.0.1:{port}", service
    server.should_exit = True
    thread.join(timeout=30)


def rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 10, size=(n, 3)).astype(np.float32)


def v1_predict(url: str, X: np.ndarray) -> dict:
    body = {"records": [dict(zip(NAMES, map(float, r), strict=True)) for r in X]}
    answer = httpx.post(f"http://{url}/v1/predict", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_infer_matches_v1_predict(server, binary):
    tritonclient = pytest.importorskip("tritonclient.http")
    url, service = server
    client = tritonclient.InferenceServerClient(url=url)
    name = service.spec.learner
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(name)
    metadata = client.get_model_metadata(name)
    assert metadata["name"] == name and metadata["inputs"][0]["shape"] == [-1, 3]
    X = rows(6, seed=1)
    tensor = tritonclient.InferInput("input", list(X.shape), "FP32")
    tensor.set_data_from_numpy(X, binary_data=binary)
    outputs = [
        tritonclient.InferRequestedOutput(out, binary_data=binary)
        for out in ("prediction", "probabilities", "id")
    ]
    result = client.infer(name, [tensor], outputs=outputs)
    expected = v1_predict(url, X)["predictions"]
    got = [p.decode() if isinstance(p, bytes) else p for p in result.as_numpy("prediction")]
    assert got == [p["prediction"] for p in expected]
    proba = result.as_numpy("probabilities")
    want = np.array([[p["probabilities"][c] for c in ("0", "1")] for p in expected])
    np.testing.assert_allclose(proba, want, rtol=1e-6)
    ids = [i.decode() if isinstance(i, bytes) else i for i in result.as_numpy("id")]
    assert len(set(ids)) == 6  # logged: feedback may name them
    fb = {"feedback": [{"prediction_id": ids[0], "label": "1"}]}
    assert httpx.post(f"http://{url}/v1/feedback", json=fb, timeout=10).status_code == 200
    client.close()


def test_oip_inputs_per_feature_and_refusals(server):
    tritonclient = pytest.importorskip("tritonclient.http")
    from tritonclient.utils import InferenceServerException

    url, service = server
    client = tritonclient.InferenceServerClient(url=url)
    X = rows(4, seed=2)
    inputs = []
    for j, name in enumerate(NAMES):
        tensor = tritonclient.InferInput(name, [4], "FP32")
        tensor.set_data_from_numpy(X[:, j].copy())
        inputs.append(tensor)
    result = client.infer(service.spec.learner, inputs)
    expected = [p["prediction"] for p in v1_predict(url, X)["predictions"]]
    assert [p.decode() for p in result.as_numpy("prediction")] == expected
    huge = X.astype(np.float64)
    huge[2, 1] = 1e300
    tensor = tritonclient.InferInput("input", [4, 3], "FP64")
    tensor.set_data_from_numpy(huge)
    with pytest.raises(InferenceServerException, match=r"inputs\[2\]\.x1"):
        client.infer(service.spec.learner, [tensor])
    with pytest.raises(InferenceServerException, match="unknown model"):
        client.infer("nope", inputs)
    client.close()


def test_headers_over_the_limit_are_refused(server):
    url, _ = server
    answer = httpx.get(f"http://{url}/healthz", headers={"x-big": "a" * 20_000}, timeout=10)
    assert answer.status_code == 431
    assert httpx.get(f"http://{url}/healthz", timeout=10).status_code == 200


def test_a_stalled_body_is_cut_off_after_the_read_deadline(server):
    url, _ = server
    host, port = url.split(":")
    stalled = []
    for _ in range(20):
        s = socket.create_connection((host, int(port)), timeout=10)
        s.sendall(
            b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"records": ['
        )
        stalled.append(s)
    idle = socket.create_connection((host, int(port)), timeout=10)  # sends nothing at all
    time.sleep(LIMITS.read_timeout + 0.5)
    for s in [*stalled, idle]:
        data = s.recv(4096)
        assert data == b"" or data.startswith(b"HTTP/1.1 408"), data[:80]
        s.close()
    assert httpx.get(f"http://{url}/healthz", timeout=10).status_code == 200


def test_fuzzed_requests_never_get_a_server_error(server):
    """schemathesis generates requests from the OpenAPI schema (a few per operation)."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings

    url, _ = server
    schema = schemathesis.openapi.from_url(f"http://{url}/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(operation.as_strategy())
        @settings(
            max_examples=8,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def call(case):
            response = case.call(base_url=f"http://{url}", timeout=10)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code}")

        call()
    assert operations >= 15
    assert failures == []
