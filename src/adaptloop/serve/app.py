"""The HTTP transport: requests to service calls, domain errors to statuses. Nothing else.

``create_app(service)`` builds the FastAPI app; every route calls one method of the
:class:`~adaptloop.serve.service.Service` (which holds the model, the gate and the versions,
and reaches the database through :mod:`adaptloop.serve.store`), and a domain error
(:mod:`adaptloop.serve.errors`) becomes the status :data:`STATUS` gives its type, with its
``field`` and message. The app's lifespan recovers the service (newest verified checkpoint +
replay) and starts its worker, and stops both on shutdown. Nothing runs at import time.

Endpoints: ``POST /v1/predict``, ``POST /v1/feedback`` (token), ``GET /v1/model``,
``POST /v1/model/snapshot`` (token), ``POST /v1/model/rollback/{version}`` (token),
``GET /v1/model/checkpoint[?version=N]`` (token: it exposes the model; a checkpoint file for
``adaptloop serve --checkpoint``),
``GET /metrics`` (Prometheus text format), ``GET /healthz`` (liveness), ``GET /readyz``
(readiness: 503 naming what is not ready), FastAPI's ``/docs`` and ``/openapi.json``, and
the Open Inference Protocol v2 (:mod:`adaptloop.serve.oip`): ``GET /v2``,
``/v2/health/live``, ``/v2/health/ready``, ``/v2/models/{name}``,
``/v2/models/{name}/ready``, ``POST /v2/models/{name}/infer`` (also under
``/versions/{version}``). A refused request (4xx) changes nothing and its ``detail`` names
the field (OIP routes answer ``{"error": ...}`` as that protocol says). Feedback sent with an
``Idempotency-Key`` header (or a ``key`` per item) is stored once: a retry gets the stored
``seq``. With ``predict_rate``, predictions beyond that many records per second are answered
429 (a token bucket of one second's worth).

>>> import tempfile, os
>>> from fastapi.testclient import TestClient
>>> service = Service.open(os.path.join(tempfile.mkdtemp(), "a.db"), learner="adwin_reset")
>>> with TestClient(create_app(service)) as client:
...     answer = client.post("/v1/predict", json={"records": [{"x0": 1, "x1": 2, "x2": 3}]})
...     pid = answer.json()["predictions"][0]["id"]
...     labels = {"feedback": [{"prediction_id": pid, "label": "1"}]}
...     client.post("/v1/feedback", json=labels).json()
{'accepted': 1, 'seq': [1]}
"""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Header, HTTPException, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import ValidationError

from adaptloop.serve import oip
from adaptloop.serve.auth import TokenCheck
from adaptloop.serve.errors import (
    Conflict,
    InputError,
    NotFound,
    RateLimited,
    ServiceError,
    StoreError,
)
from adaptloop.serve.schemas import (
    CheckpointInfo,
    FeedbackItem,
    FeedbackRequest,
    FeedbackResponse,
    Health,
    ModelStatus,
    PredictRequest,
    PredictResponse,
    Readiness,
)
from adaptloop.serve.service import Predictions, Service

MAX_BODY_BYTES = 1_000_000
"""Largest request body accepted (413 above it)."""
ROUTES = (
    "/v1/predict",
    "/v1/feedback",
    "/v1/model",
    "/v1/model/snapshot",
    "/v1/model/checkpoint",
    "/metrics",
    "/healthz",
    "/readyz",
    "/docs",
    "/openapi.json",
    "/v2",
    "/v2/health/live",
    "/v2/health/ready",
)
MAX_VERSION = 2**63 - 1
"""Largest model version a path accepts (SQLite's integer range)."""
STATUS: dict[type[ServiceError], int] = {
    InputError: 422,
    RateLimited: 429,
    NotFound: 404,
    Conflict: 409,
    StoreError: 503,
}
"""HTTP status of each domain error type (the nearest one in a type's MRO decides; a type
under none of them is a server error, 500)."""
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def _route(path: str) -> str:
    """Bounded label values for the request metrics.

    >>> _route("/v1/model/rollback/3"), _route("/nope")
    ('/v1/model/rollback/{version}', 'other')
    """
    if path in ROUTES:
        return path
    if path.startswith("/v1/model/rollback/"):
        return "/v1/model/rollback/{version}"
    if path.startswith("/v2/models/"):
        return "/v2/models/{name}/infer" if path.endswith("/infer") else "/v2/models/{name}"
    return "other"


class Telemetry:
    """Prometheus metrics of one app (its own registry, so apps never share counters)."""

    def __init__(self, service: Service) -> None:
        self.registry = CollectorRegistry()
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        r = self.registry
        self.requests = Counter(
            "adaptloop_requests", "HTTP requests", ["route", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "adaptloop_request_seconds",
            "HTTP request latency (seconds)",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = Counter("adaptloop_predictions", "records predicted", registry=r)
        self.feedback = Counter("adaptloop_feedback", "feedback records stored", registry=r)
        Gauge("adaptloop_model_version", "served model version", registry=r).set_function(
            lambda: service.version
        )
        Gauge("adaptloop_feedback_learned", "feedback records learned", registry=r).set_function(
            lambda: service.samples_learned
        )
        Gauge("adaptloop_drift_alarms", "drift alarms so far", registry=r).set_function(
            lambda: len(service.alarms())
        )
        Gauge(
            "adaptloop_feedback_quarantined", "feedback records quarantined", registry=r
        ).set_function(lambda: service.quarantine_summary()["records"])
        self.rate_limited = Counter(
            "adaptloop_predict_rate_limited", "predict requests refused (429)", registry=r
        )
        metrics = Gauge(
            "adaptloop_feedback_metric",
            "prequential metric over feedback (scope: cumulative or window)",
            ["metric", "scope"],
            registry=r,
        )
        for name in service.spec.metrics:
            for scope, key in (("cumulative", name), ("window", f"{name}_window")):
                metrics.labels(name, scope).set_function(
                    lambda key=key: _or_nan(service.report.get(key))
                )

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:  # label lookups cost more than the counting: once per label set
            count = self.requests.labels(route, method, str(status))
            children = (count, self.latency.labels(route))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else value


FastPath = Callable[[bytes, dict], Awaitable[bytes | None]]
"""A JSON body and the ASGI scope in, a JSON answer out (200), or None: "not the plain case
(or refused): let the route answer"."""


class EdgeMiddleware:
    """Pure ASGI middleware: refuses bodies over ``max_body_bytes`` (413), times requests, and
    answers the hot path (``fast_paths``: POST path -> :data:`FastPath`) itself.

    Why a fast path: on a one-record predict or feedback request the framework's per-request
    machinery (routing, dependency solving in a thread pool, request object, exception
    middleware, response model) costs several times the work itself, and that CPU decides the
    latency at 1,000 requests/s on 2 cores. A fast path validates with the same pydantic model
    and runs the same code as its route; whatever it does not accept (a refusal, which has
    changed nothing, or another content type) goes on to the FastAPI route, which answers it,
    so every refusal has one source.
    """

    def __init__(
        self,
        app: Any,
        max_body_bytes: int,
        telemetry: Telemetry,
        fast_paths: dict[str, FastPath] | None = None,
    ) -> None:
        self.app, self.max_body_bytes, self.telemetry = app, max_body_bytes, telemetry
        self.fast_paths = fast_paths or {}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            body = await self._read_body(scope, receive)
            if body is None:
                await self._too_large(send_status)
                return
            fast = self.fast_paths.get(scope["path"]) if scope["method"] == "POST" else None
            kind = (_header(scope, b"content-type") or "").split(";", 1)[0].strip().lower()
            answer = await fast(body, scope) if fast and kind == "application/json" else None
            if answer is not None:
                await _send_json(send_status, answer)
                return
            sent = False

            async def replay() -> dict:
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send_status)
        finally:
            self.telemetry.observe(
                _route(scope["path"]), scope["method"], status[0], time.perf_counter() - started
            )

    async def _read_body(self, scope: dict, receive: Any) -> bytes | None:
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    if int(value) > self.max_body_bytes:
                        return None
                except ValueError:
                    pass
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)

    async def _too_large(self, send: Any) -> None:
        response = JSONResponse(
            {"detail": f"body: larger than {self.max_body_bytes} bytes", "field": "body"},
            status_code=413,
        )
        await response({"type": "http"}, None, send)


def _json(value: Any) -> bytes:
    """Compact JSON, as FastAPI writes it; a NaN or an infinity (a model that diverged) is an
    error, never the invalid JSON token ``NaN``.

    >>> _json({"accepted": 1, "seq": [1]})
    b'{"accepted":1,"seq":[1]}'
    """
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


def _header(scope: dict, name: bytes) -> str | None:
    """The value of the request header ``name`` (lower case), or None.

    >>> _header({"headers": [(b"content-type", b"application/json")]}, b"content-type")
    'application/json'
    """
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def _send_json(send: Any, body: bytes) -> None:
    """Answer 200 with a JSON ``body`` (raw ASGI messages)."""
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _field(loc: tuple | list) -> str:
    """``("body", "records", 0, "x0")`` -> ``records[0].x0``."""
    out = ""
    for part in loc:
        if part == "body" and not out:
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def status_of(error: ServiceError) -> int:
    """The HTTP status of a domain error (see :data:`STATUS`).

    >>> from adaptloop.serve.errors import UnknownVersion, DuplicateFeedback
    >>> status_of(UnknownVersion("version", "none")), status_of(DuplicateFeedback("id", "twice"))
    (404, 409)
    """
    return next((STATUS[kind] for kind in type(error).__mro__ if kind in STATUS), 500)


def error_response(error: ServiceError) -> JSONResponse:
    """A domain error as an answer: its status, ``detail`` and ``field``; a failure (5xx)
    says only that nothing was stored, never the server's paths or messages."""
    status = status_of(error)
    detail = str(error) if status < 500 else f"{error.field}: unavailable, nothing was stored"
    return JSONResponse({"detail": detail, "field": error.field}, status_code=status)


def predictions_json(classes: tuple[str, ...] | None, served: Predictions) -> bytes:
    """The ``POST /v1/predict`` answer: class names and probabilities by class name
    (classification) or values (regression).

    >>> import numpy as np
    >>> served = Predictions(2, ["a"], np.array([1]), np.array([[0.25, 0.75]]))
    >>> predictions_json(("no", "yes"), served)
    b'{"model_version":2,"predictions":[{"id":"a","prediction":"yes","probabilities":{"no":0.25,"yes":0.75}}]}'
    """
    ids, pred = served.ids, served.pred
    if classes is None:
        out = [
            {"id": ids[i], "prediction": float(pred[i]), "probabilities": None}
            for i in range(len(ids))
        ]
    else:
        probs = served.proba.tolist()
        out = [
            {
                "id": ids[i],
                "prediction": classes[int(pred[i])],
                "probabilities": dict(zip(classes, probs[i], strict=True)),
            }
            for i in range(len(ids))
        ]
    # serialized here, not through a response model: validating these server-built
    # values again would cost a third of a one-record request
    return _json({"model_version": served.version, "predictions": out})


class Endpoints:
    """The work of the predict and feedback endpoints, shared by their routes and their edge
    fast paths: both call the same service methods, so they answer alike. A fast path answers
    only success; a refusal or a failure (which stored nothing) goes on to the route, so
    every error answer has one source."""

    def __init__(
        self,
        service: Service,
        telemetry: Telemetry,
        check: TokenCheck,
        limiter: RateLimit | None = None,
    ) -> None:
        self.service, self.telemetry, self.check = service, telemetry, check
        self.limiter = limiter

    async def predict(self, records: Sequence[Mapping[str, float]]) -> bytes:
        """Predict ``records``; answered once the predictions are logged."""
        if self.limiter is not None and not self.limiter.take(len(records)):
            self.telemetry.rate_limited.inc()
            raise RateLimited("records", f"more than {self.limiter.rate:g} records/s")
        served, logged = self.service.predict_records(records)
        await asyncio.wrap_future(logged)
        self.telemetry.predictions.inc(len(served.ids))
        return predictions_json(self.service.spec.classes, served)

    async def feedback(self, items: Sequence[FeedbackItem], key: str | None = None) -> bytes:
        """Store labels; answered once they are durably stored."""
        if key is not None and not 1 <= len(key) <= 128:
            raise InputError("Idempotency-Key", "must be 1 to 128 characters")
        seqs = await asyncio.wrap_future(self.service.add_feedback(items, key))
        self.telemetry.feedback.inc(len(seqs))
        return _json({"accepted": len(seqs), "seq": seqs})

    async def predict_fast(self, body: bytes, scope: dict) -> bytes | None:
        try:
            return await self.predict(PredictRequest.model_validate_json(body).records)
        except (ValidationError, ServiceError):
            return None  # nothing was stored: the route answers it

    async def feedback_fast(self, body: bytes, scope: dict) -> bytes | None:
        if not self.check.allows(_header(scope, b"authorization")):
            return None  # the route refuses it (401)
        key = _header(scope, b"idempotency-key")
        try:
            return await self.feedback(FeedbackRequest.model_validate_json(body).feedback, key)
        except (ValidationError, ServiceError):
            return None  # nothing was stored: the route answers it


class RateLimit:
    """A token bucket: ``rate`` records per second, up to one second's worth at once.

    >>> limit = RateLimit(10)
    >>> limit.take(10), limit.take(1)
    (True, False)
    """

    def __init__(self, rate: float) -> None:
        self.rate = float(rate)
        self._tokens = self.rate
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def take(self, n: int) -> bool:
        """Take ``n`` tokens if there are that many."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.rate, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if n > self._tokens:
                return False
            self._tokens -= n
            return True


def _oip_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
    """A request pydantic refused: 400 for malformed JSON, else 422 naming the fields."""
    errors = error.errors()
    first = errors[0]
    if first.get("type") == "json_invalid":
        message = first.get("ctx", {}).get("error", "malformed JSON")
        return JSONResponse(
            {"detail": f"body: malformed JSON ({message})", "field": "body"}, status_code=400
        )
    summary = "; ".join(f"{_field(e.get('loc', ()))}: {e['msg']}" for e in errors[:5])
    return JSONResponse({"detail": summary, "field": _field(first.get("loc", ()))}, status_code=422)


async def _refused(request: Request, error: ServiceError) -> JSONResponse:
    return error_response(error)


def create_app(
    service: Service,
    token: str | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    background: bool = True,
    predict_rate: float | None = None,
) -> FastAPI:
    """The app serving ``service``; write endpoints need ``Bearer <token>`` when one is set;
    with ``predict_rate``, more predicted records per second than that are answered 429.

    ``background=False`` starts no worker thread: feedback is then learned only when
    ``service.step()`` is called (tests use it to be deterministic)."""
    check = TokenCheck(token)
    telemetry = Telemetry(service)
    limiter = None if predict_rate is None else RateLimit(predict_rate)
    endpoints = Endpoints(service, telemetry, check, limiter)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await asyncio.to_thread(service.start, background)
        # what start-up loaded (libraries, the model) lives as long as the process: keep it
        # out of the collector, whose full passes over it (~1e5 objects) would stall requests
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await asyncio.to_thread(service.stop)

    app = FastAPI(
        title="adaptloop",
        summary="Predictions, delayed feedback and online adaptation with an update gate.",
        lifespan=lifespan,
        # our own Prometheus metrics cover requests; FastAPI's OpenTelemetry bridge would
        # look up its providers on every request even with no exporter configured
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.add_middleware(
        EdgeMiddleware,
        max_body_bytes=max_body_bytes,
        telemetry=telemetry,
        fast_paths={
            "/v1/predict": endpoints.predict_fast,
            "/v1/feedback": endpoints.feedback_fast,
        },
    )
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(ServiceError, _refused)

    async def writer(authorization: str | None = Header(None)) -> None:
        if not check.allows(authorization):
            raise HTTPException(
                401,
                "authorization: a valid bearer token is required",
                headers={"WWW-Authenticate": "Bearer"},
            )

    @app.post("/v1/predict", response_model=PredictResponse)
    async def predict(body: PredictRequest) -> Response:
        """Predict a batch of records; each prediction gets an id for its later feedback."""
        return Response(await endpoints.predict(body.records), media_type="application/json")

    @app.post("/v1/feedback", response_model=FeedbackResponse, dependencies=[Depends(writer)])
    async def feedback(
        body: FeedbackRequest,
        idempotency_key: str | None = Header(None, max_length=128),
    ) -> Response:
        """Labels for earlier predictions (or records with labels); answered once stored.
        With an ``Idempotency-Key`` header (item ``i`` is stored under ``<key>:<i>``) or a
        ``key`` per item, a retry is answered with the stored ``seq`` and learned once."""
        answer = await endpoints.feedback(body.feedback, idempotency_key)
        return Response(answer, media_type="application/json")

    @app.get("/v1/model", response_model=ModelStatus)
    def model() -> dict[str, Any]:
        """Served version, prequential metrics over feedback, drift alarms, gate decisions."""
        return service.status()

    @app.post("/v1/model/snapshot", response_model=CheckpointInfo, dependencies=[Depends(writer)])
    def snapshot() -> dict[str, Any]:
        """Checkpoint the whole state now (answered once stored)."""
        return service.snapshot()

    @app.get(
        "/v1/model/checkpoint",
        dependencies=[Depends(writer)],
        response_class=Response,
        responses={200: {"content": {"application/octet-stream": {}}}},
    )
    def checkpoint(version: int | None = None) -> Response:
        """A checkpoint file of the served model (or of ``version``): start a service from it
        with ``adaptloop serve --checkpoint FILE --db NEW.db``. It holds a pickle: treat it
        as trusted code."""
        exported = service.export_checkpoint(version)
        return Response(
            exported.to_bytes(),
            media_type="application/octet-stream",
            headers={"Content-Disposition": f'attachment; filename="{exported.file_name()}"'},
        )

    @app.post(
        "/v1/model/rollback/{version}",
        response_model=CheckpointInfo,
        dependencies=[Depends(writer)],
    )
    def rollback(version: int = Path(ge=1, le=MAX_VERSION)) -> dict[str, Any]:
        """Serve an earlier version's model again (as a new version)."""
        return service.rollback(version)

    @app.get("/metrics")
    def metrics() -> Response:
        """Prometheus text format."""
        return Response(generate_latest(telemetry.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", response_model=Health)
    def healthz() -> Health:
        """Liveness: the process answers and serves a model (see ``/readyz`` for readiness)."""
        return Health(status="ok", version=service.version)

    @app.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
    def readyz() -> JSONResponse:
        """Readiness: the store takes a write, the worker runs, the model predicts a probe
        row, and few enough feedback records are quarantined; 503 naming what is not."""
        checks = service.readiness()
        ready = all(problem is None for problem in checks.values())
        body = {"status": "ready" if ready else "not ready", "version": service.version}
        return JSONResponse({**body, "checks": checks}, status_code=200 if ready else 503)

    add_inference_protocol(app, service, endpoints)
    return app


def add_inference_protocol(app: FastAPI, service: Service, endpoints: Endpoints) -> None:
    """The Open Inference Protocol v2 routes (see :mod:`adaptloop.serve.oip`); the model's
    name is the served learner's."""
    name_of = service.spec.learner

    def ready() -> bool:
        return all(problem is None for problem in service.readiness().values())

    @app.get("/v2", tags=["open inference protocol"])
    def server_metadata() -> dict[str, Any]:
        """Server metadata."""
        from adaptloop import __version__

        return {"name": "adaptloop", "version": __version__, "extensions": ["binary_tensor_data"]}

    @app.get("/v2/health/live", tags=["open inference protocol"])
    def live() -> dict[str, bool]:
        """Liveness."""
        return {"live": True}

    @app.get("/v2/health/ready", tags=["open inference protocol"])
    def server_ready() -> JSONResponse:
        """Readiness (as ``/readyz``)."""
        ok = ready()
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    def known(name: str) -> JSONResponse | None:
        if name != name_of:
            return _oip_error(404, f"unknown model {name!r}; this server serves {name_of!r}")
        return None

    def known_version(name: str, version: str | None) -> JSONResponse | None:
        if version is not None and version != str(service.version):
            return _oip_error(
                404, f"model {name!r} serves version {service.version}, not {version!r}"
            )
        return known(name)

    @app.get("/v2/models/{name}", tags=["open inference protocol"])
    @app.get("/v2/models/{name}/versions/{version}", tags=["open inference protocol"])
    def model_metadata(name: str, version: str | None = None) -> Any:
        """Model metadata: inputs, outputs, the served version."""
        refused = known_version(name, version)
        if refused is not None:
            return refused
        spec = service.spec
        return oip.model_metadata(name, service.version, spec.feature_names, spec.classes)

    @app.get("/v2/models/{name}/ready", tags=["open inference protocol"])
    @app.get("/v2/models/{name}/versions/{version}/ready", tags=["open inference protocol"])
    def model_ready(name: str, version: str | None = None) -> Any:
        """Model readiness."""
        refused = known_version(name, version)
        if refused is not None:
            return refused
        ok = ready()
        return JSONResponse({"name": name, "ready": ok}, status_code=200 if ok else 503)

    body_schema = {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": oip.InferRequest.model_json_schema()}},
        }
    }

    @app.post(
        "/v2/models/{name}/infer", tags=["open inference protocol"], openapi_extra=body_schema
    )
    @app.post(
        "/v2/models/{name}/versions/{version}/infer",
        tags=["open inference protocol"],
        openapi_extra=body_schema,
    )
    async def infer(name: str, request: Request, version: str | None = None) -> Response:
        """Predict tensors (FP32 ``[n, d]``, or one ``[n]`` tensor per feature); the
        predictions are logged, and their ids returned as the ``id`` output (for feedback)."""
        refused = known_version(name, version)
        if refused is not None:
            return refused
        length = request.headers.get("inference-header-content-length")
        try:
            header = None if length is None else int(length)
        except ValueError:
            return _oip_error(400, "Inference-Header-Content-Length: not an integer")
        body = await request.body()
        try:
            parsed = oip.parse_infer(body, header)
            X = oip.features(parsed, service.spec.feature_names)
            served, logged = service.predict_array(X)
            await asyncio.wrap_future(logged)
        except InputError as error:
            return _oip_error(400, str(error))
        except ServiceError as error:
            status = status_of(error)
            return _oip_error(
                status, str(error) if status < 500 else "unavailable, nothing was stored"
            )
        endpoints.telemetry.predictions.inc(len(served.ids))
        content, json_length = oip.infer_response(
            name,
            served.version,
            parsed.request,
            served.ids,
            served.pred,
            served.proba,
            service.spec.classes,
        )
        headers = (
            {} if json_length is None else {"Inference-Header-Content-Length": str(json_length)}
        )
        kind = "application/json" if json_length is None else "application/octet-stream"
        return Response(content, media_type=kind, headers=headers)
