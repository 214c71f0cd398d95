"""The service on Ray Serve: N predictor replicas and the trainer, as two Ray Serve apps.

``adaptloop serve --engine ray --replicas N [--max-replicas M] [--address ADDR] --db URL``
deploys, on a local Ray (or the cluster at ``ADDR``):

- ``adaptloop-predictors`` at ``/`` (the HTTP API of :mod:`adaptloop.serve.app`, as one
  process serves it): ``N`` replicas of ``Service(role="predictor")``; with ``M``, Ray Serve's
  autoscaler runs between ``N`` and ``M`` replicas by ongoing requests;
- ``adaptloop-trainer`` at ``/trainer`` (the same API: ``/trainer/v1/model``, snapshot,
  rollback): one replica of ``Service(role="trainer")``.

Ray Serve's proxy spreads requests over the predictors; its health checks call each
replica's :meth:`Deployment.check_health` (the service's ``/readyz`` checks) and replace a
replica that fails them or dies: a new predictor loads the newest version, a new trainer takes
the lease over (after it expires, ``lease_seconds``) and replays the feedback after the newest
checkpoint. Nothing is scheduled by adaptloop itself.

Every replica opens the same database: use PostgreSQL (``postgresql://``) on a cluster; a
SQLite file works only when all replicas run on one host. On a cluster every node needs
adaptloop installed (or a Ray ``runtime_env``) and the database reachable.

>>> RayServeOptions(replicas=2).autoscaling() is None
True
>>> RayServeOptions(replicas=2, max_replicas=4).autoscaling()["max_replicas"]
4
"""

from __future__ import annotations

import asyncio
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptloop.serve.errors import InputError

PREDICTORS = "adaptloop-predictors"
TRAINER = "adaptloop-trainer"


@dataclass(frozen=True)
class RayServeOptions:
    """How to deploy: predictor ``replicas`` (autoscaled up to ``max_replicas`` when given),
    the Ray cluster ``address`` (None: start a local one), the proxy's ``host`` and
    ``port``, and the predictors' ``predict_rate`` limit (records/s per replica)."""

    replicas: int = 1
    max_replicas: int | None = None
    address: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    predict_rate: float | None = None
    cpus: float = 0.5
    """CPUs Ray reserves for each replica (its scheduling only: a replica uses what it
    needs)."""

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise InputError("replicas", f"must be >= 1, got {self.replicas}")
        if self.max_replicas is not None and self.max_replicas < self.replicas:
            raise InputError(
                "max_replicas", f"must be >= replicas ({self.replicas}), got {self.max_replicas}"
            )

    def autoscaling(self) -> dict[str, Any] | None:
        """Ray Serve's ``autoscaling_config`` for the predictors (None: a fixed count)."""
        if self.max_replicas is None:
            return None
        return {
            "min_replicas": self.replicas,
            "max_replicas": self.max_replicas,
            "target_ongoing_requests": 16,
        }


class Replica:
    """One replica: opens the service of its role on the database and builds its app (Ray
    Serve calls :meth:`__serve_build_asgi_app__` after the constructor and runs the app's
    lifespan, which starts the service)."""

    def __init__(
        self,
        db: str,
        role: str,
        config: Any,
        token: str | None,
        checkpoint_key: bytes | None,
        spec: dict[str, Any],
        predict_rate: float | None = None,
    ) -> None:
        self.db, self.role, self.config, self.token = db, role, config, token
        self.checkpoint_key, self.spec, self.predict_rate = checkpoint_key, spec, predict_rate
        self.service: Any = None

    def __serve_build_asgi_app__(self) -> Any:
        from adaptloop.serve.app import create_app
        from adaptloop.serve.service import Service

        spec = self.spec if self.role == "trainer" else {}
        self.service = Service.open(
            self.db,
            config=self.config,
            checkpoint_key=self.checkpoint_key,
            role=self.role,
            wait=None if self.role == "trainer" else 120.0,
            **spec,
        )
        return create_app(self.service, token=self.token, predict_rate=self.predict_rate)

    async def check_health(self) -> None:
        """Ray Serve's health check: raises (the replica is replaced) when a readiness check
        other than the quarantine fails (run off the event loop: it asks the database)."""
        if self.service is None:
            return
        checks = await asyncio.to_thread(self.service.readiness)
        failed = {k: v for k, v in checks.items() if v is not None and k != "quarantine"}
        if failed:
            raise RuntimeError(f"not healthy: {failed}")


def applications(
    db: str,
    config: Any,
    token: str | None,
    checkpoint_key: bytes | None,
    spec: dict[str, Any],
    options: RayServeOptions,
) -> dict[str, Any]:
    """The two Ray Serve applications (bound deployments), by name."""
    from ray import serve

    ingress = serve.ingress()(Replica)
    common = {
        "health_check_period_s": 2.0,
        "health_check_timeout_s": 10.0,
        "ray_actor_options": {"num_cpus": options.cpus},
    }
    trainer = serve.deployment(
        ingress, name="trainer", num_replicas=1, graceful_shutdown_timeout_s=10.0, **common
    )
    autoscaling = options.autoscaling()
    replicas = (
        {"autoscaling_config": autoscaling} if autoscaling else {"num_replicas": options.replicas}
    )
    predictor = serve.deployment(ingress, name="predictor", **replicas, **common)
    spec = {k: (str(v) if isinstance(v, Path) else v) for k, v in spec.items()}
    return {
        TRAINER: trainer.bind(db, "trainer", config, token, checkpoint_key, spec),
        PREDICTORS: predictor.bind(
            db, "predictor", config, token, checkpoint_key, {}, options.predict_rate
        ),
    }


def deploy(
    db: str,
    config: Any,
    token: str | None,
    checkpoint_key: bytes | None,
    spec: dict[str, Any],
    options: RayServeOptions,
    block: bool = True,
) -> None:
    """Start Ray (or join ``options.address``), deploy the trainer and then the predictors
    (they load the version it publishes), and with ``block`` serve until interrupted, then
    shut the applications down."""
    import ray
    from ray import serve

    if not ray.is_initialized():
        ray.init(address=options.address, include_dashboard=False)
    serve.start(http_options={"host": options.host, "port": options.port})
    apps = applications(db, config, token, checkpoint_key, spec, options)
    serve.run(apps[TRAINER], name=TRAINER, route_prefix="/trainer")
    serve.run(apps[PREDICTORS], name=PREDICTORS, route_prefix="/")
    if not block:
        return
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    serve.shutdown()
    ray.shutdown()
