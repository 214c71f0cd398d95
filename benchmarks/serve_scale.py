"""Past one process, on loopback: PostgreSQL + a trainer + 1, then 2 predictor replicas.

Starts a throwaway PostgreSQL server (:class:`adaptloop.serve.localpg.LocalPostgres`), then
``adaptloop serve --role trainer`` and a standby trainer (it waits for the lease), then
``adaptloop serve --role predictor`` processes, all on one fresh database, and measures:

1. ``predict_rps_1`` / ``p99_ms_1``: after ``--warmup`` seconds of the same load (not
   measured), a fixed offered load (``--rate`` one-record predict
   requests per second for ``--duration`` s, open loop: latency counts from the scheduled
   time) on one predictor, while labels for the answered predictions go to the same
   predictors at ``--feedback-rate`` per second (the trainer learns them and promotes);
2. ``predict_rps_2`` / ``p99_ms_2``: the same load spread over two predictors (round robin,
   as a load balancer would);
3. ``version_propagation_s``: the trainer publishes a new version (a rollback: the same
   publish path as a promotion, at a known instant) and every predictor is polled until it
   answers with it: the longest of ``--probes`` such times, from the request to the last
   replica serving it;
4. ``replica_kill_lost``: the two-predictor load again, one predictor SIGKILLed half-way;
   acknowledged predictions and labels (200 answers) missing from the database afterwards;
5. ``trainer_failover_s``: the active trainer is SIGKILLed; seconds until the standby
   answers ``/readyz`` (it took the lease after its expiry, loaded the newest checkpoint and
   replayed the feedback after it); ``failover_learned`` says whether it then learned every
   stored label (up to the last partial micro-batch);
6. with ``--ray``: ``predict_rps_ray_2`` / ``p99_ms_ray_2``, the load of 2. through Ray Serve's
   proxy to ``adaptloop serve --engine ray --replicas 2`` (a local Ray; its own database).

With ``benchmarks/grid_ray.py`` beside it (the experiment grid on Ray), its ``measure()``
adds ``grid_local_s``, ``grid_ray_s`` and ``grid_identical``. The last line printed is one
JSON object.

    OMP_NUM_THREADS=1 python benchmarks/serve_scale.py --rate 800 --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import psycopg
from serve_load import Connection, cpu_seconds, free_port, summary

from adaptloop.serve.localpg import LocalPostgres

LEARNER = "adwin_reset"


def start(db: str, role: str, port: int, log, wait: bool = True) -> subprocess.Popen:
    """``adaptloop serve --role role`` on ``port``; with ``wait``, until ``/readyz`` is 200."""
    env = {k: v for k, v in os.environ.items() if k != "ADAPTLOOP_TOKEN"}
    command = [sys.executable, "-m", "adaptloop", "serve", "--db", db, "--role", role]
    command += ["--port", str(port), "--learner", LEARNER]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
    if wait:
        until_ready(process, port, 90)
    return process


def get(port: int, path: str, timeout: float = 1.0) -> tuple[int, dict | None]:
    """A GET on loopback (status, JSON body); (0, None) when nothing answers."""
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    except OSError:
        return 0, None
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        return int(head.split(b" ", 2)[1]), json.loads(body)
    except (IndexError, ValueError):
        return 0, None


def until_ready(process: subprocess.Popen, port: int, seconds: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if process.poll() is not None:
            raise SystemExit(f"serve exited (code {process.returncode}); see its log")
        if get(port, "/readyz")[0] == 200:
            return time.monotonic() - started
        time.sleep(0.02)
    raise SystemExit(f"port {port} not ready within {seconds} s")


def post(port: int, path: str, body: bytes = b"{}") -> int:
    async def once() -> int:
        return (await Connection(port).request(path, body))[0]

    return asyncio.run(once())


async def load(ports, bodies, rate, feedback_rate, connections, kill=None):
    """Open-loop predict load over ``ports`` (round robin) at ``rate``/s, and labels for the
    answered predictions at ``feedback_rate``/s; ``kill`` (at half-time) is called once.
    Returns the predict summary's inputs and the acknowledged ids and feedback ``seq``s."""
    n = len(bodies)
    latencies, statuses = np.full(n, np.nan), [0] * n
    answered: asyncio.Queue = asyncio.Queue()
    acknowledged: list[str] = []
    labelled: list[int] = []
    start = time.perf_counter() + 0.05
    jobs: asyncio.Queue = asyncio.Queue()

    async def predictor_worker(k: int) -> None:
        conns = {port: Connection(port) for port in ports}
        while (item := await jobs.get()) is not None:
            i, scheduled = item
            port = ports[i % len(ports)]
            try:
                statuses[i], answer = await conns[port].request("/v1/predict", bodies[i])
                if statuses[i] == 200:
                    pid = json.loads(answer)["predictions"][0]["id"]
                    acknowledged.append(pid)
                    answered.put_nowait((port, pid, i))
            except (OSError, asyncio.IncompleteReadError):
                statuses[i] = -1
                conns[port] = Connection(port)
            latencies[i] = time.perf_counter() - scheduled

    async def feedback_worker(share: float) -> None:
        conns = {port: Connection(port) for port in ports}
        sent = 0
        while time.perf_counter() < start + n / rate:
            port, pid, i = await answered.get()
            label = int(X_LABEL[i % len(X_LABEL)])
            body = json.dumps({"feedback": [{"prediction_id": pid, "label": label}]}).encode()
            try:
                status, answer = await conns[port].request("/v1/feedback", body)
                if status == 200:
                    labelled.extend(json.loads(answer)["seq"])
            except (OSError, asyncio.IncompleteReadError):
                conns[port] = Connection(port)
            sent += 1
            delay = start + sent / share - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)

    workers = [asyncio.create_task(predictor_worker(k)) for k in range(connections)]
    feeders = [asyncio.create_task(feedback_worker(feedback_rate / 4)) for _ in range(4)]
    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if kill is not None and i == n // 2:
            kill()
        jobs.put_nowait((i, start + i / rate))
    for _ in workers:
        jobs.put_nowait(None)
    await asyncio.gather(*workers)
    for feeder in feeders:
        feeder.cancel()
    return latencies, statuses, time.perf_counter() - start, acknowledged, labelled


X_LABEL: np.ndarray = np.zeros(1)


def propagation(trainer: int, predictors: list[int], probes: int) -> list[float]:
    """Seconds from a rollback request to the trainer to every predictor answering with the
    new version, ``probes`` times."""
    times = []
    for _ in range(probes):
        before = get(trainer, "/healthz")[1]["version"]
        started = time.perf_counter()
        assert post(trainer, "/v1/model/rollback/1") == 200
        waiting = set(predictors)
        while waiting:
            for port in list(waiting):
                answer = get(port, "/healthz")[1]
                if answer is not None and answer["version"] > before:
                    waiting.discard(port)
            if time.perf_counter() - started > 30:
                raise SystemExit("a predictor did not follow within 30 s")
        times.append(time.perf_counter() - started)
        time.sleep(0.2)
    return times


def stored(db: str, acknowledged: list[str], labelled: list[int]) -> int:
    """Acknowledged predictions and labels that are not in the database."""
    with psycopg.connect(db) as conn:
        ids = {row[0] for row in conn.execute("SELECT id FROM predictions")}
        seqs = {row[0] for row in conn.execute("SELECT seq FROM feedback")}
    return len(set(acknowledged) - ids) + len(set(labelled) - seqs)


def on_ray(pg: LocalPostgres, bodies: list[bytes], args, log) -> dict:
    """The two-predictor load through Ray Serve's proxy: ``adaptloop serve --engine ray
    --replicas 2`` (a local Ray) on a database of its own."""
    db, port = pg.database(), free_port()
    command = [sys.executable, "-m", "adaptloop", "serve", "--engine", "ray", "--replicas", "2"]
    command += ["--db", db, "--port", str(port), "--learner", LEARNER]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
    try:
        started = time.monotonic()
        while get(port, "/readyz")[0] != 200 or get(port, "/trainer/readyz")[0] != 200:
            if process.poll() is not None or time.monotonic() - started > 300:
                raise SystemExit("adaptloop serve --engine ray did not start; see its log")
            time.sleep(0.5)
        print(f"ray: a trainer and 2 predictors ready in {time.monotonic() - started:.1f} s")
        warm = bodies[: int(args.rate * args.warmup)]
        asyncio.run(load([port], warm, args.rate, args.feedback_rate, args.connections))
        lat, st, secs, _, _ = asyncio.run(
            load([port], bodies, args.rate, args.feedback_rate, args.connections)
        )
        out = summary("predict (Ray Serve, 2 replicas)", lat, st, secs)
        return {
            "predict_rps_ray_2": out["predict (Ray Serve, 2 replicas)_rps"],
            "p99_ms_ray_2": out["predict (Ray Serve, 2 replicas)_p99_ms"],
        }
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def grid() -> dict:
    """The experiment grid on Ray (``benchmarks/grid_ray.py``, issue 21 part 4)."""
    try:
        import grid_ray
    except ImportError as error:
        print(f"grid: benchmarks/grid_ray.py is not here ({error}): grid keys are null")
        return {"grid_local_s": None, "grid_ray_s": None, "grid_identical": None}
    measured = grid_ray.measure()
    return {key: measured[key] for key in ("grid_local_s", "grid_ray_s", "grid_identical")}


def main() -> None:
    global X_LABEL
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=800.0, help="predict requests/s")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per load phase")
    parser.add_argument("--feedback-rate", type=float, default=100.0, help="labels/s")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--probes", type=int, default=5, help="version propagation probes")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of unmeasured load")
    parser.add_argument("--no-grid", action="store_true", help="skip the grid on Ray")
    parser.add_argument("--ray", action="store_true", help="also 2 replicas on Ray Serve")
    parser.add_argument("--server-log", help="write the servers' stderr here")
    args = parser.parse_args()
    n = int(args.rate * args.duration)
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 10, size=(n, 3))
    X_LABEL = (X[:, 0] + X[:, 1] > 8).astype(int)
    bodies = [
        json.dumps({"records": [{"x0": a, "x1": b, "x2": c}]}).encode() for a, b, c in X.tolist()
    ]
    result: dict = {"offered_rps": args.rate, "cpus": os.cpu_count()}
    log = open(args.server_log or os.devnull, "wb")  # noqa: SIM115 - closed below
    processes: list[subprocess.Popen] = []
    with LocalPostgres() as pg:
        db = pg.database()
        try:
            t_port, s_port, p1, p2 = (free_port() for _ in range(4))
            trainer = start(db, "trainer", t_port, log)
            standby = start(db, "trainer", s_port, log, wait=False)
            first = start(db, "predictor", p1, log)
            processes += [trainer, standby, first]
            warm = bodies[: int(args.rate * args.warmup)]
            asyncio.run(load([p1], warm, args.rate, args.feedback_rate, args.connections))
            # 1. one predictor
            cpu = cpu_seconds(first.pid)
            lat, st, secs, _, labelled = asyncio.run(
                load([p1], bodies, args.rate, args.feedback_rate, args.connections)
            )
            one = summary("predict (1 predictor)", lat, st, secs)
            result["predict_rps_1"] = one["predict (1 predictor)_rps"]
            result["p99_ms_1"] = one["predict (1 predictor)_p99_ms"]
            result["predictor_cpu_ms"] = round((cpu_seconds(first.pid) - cpu) / n * 1e3, 3)
            # 2. two predictors
            second = start(db, "predictor", p2, log)
            processes.append(second)
            asyncio.run(load([p2], warm, args.rate, args.feedback_rate, args.connections))
            lat, st, secs, _, more = asyncio.run(
                load([p1, p2], bodies, args.rate, args.feedback_rate, args.connections)
            )
            two = summary("predict (2 predictors)", lat, st, secs)
            result["predict_rps_2"] = two["predict (2 predictors)_rps"]
            result["p99_ms_2"] = two["predict (2 predictors)_p99_ms"]
            result["labels_sent"] = len(labelled) + len(more)
            status = get(t_port, "/v1/model")[1]
            result["trainer_version"] = status["version"]
            result["trainer_learned"] = status["feedback"]["learned"]
            print(f"trainer: version {status['version']}, learned {status['feedback']}")
            # 3. version propagation
            times = propagation(t_port, [p1, p2], args.probes)
            print(f"version propagation: {[round(t, 3) for t in times]} s")
            result["version_propagation_s"] = round(max(times), 3)
            result["version_propagation_median_s"] = round(float(np.median(times)), 3)
            # 4. a predictor killed mid-load
            lat, st, secs, acknowledged, labelled = asyncio.run(
                load(
                    [p1, p2],
                    bodies,
                    args.rate,
                    args.feedback_rate,
                    args.connections,
                    kill=lambda: second.send_signal(signal.SIGKILL),
                )
            )
            summary("predict (2, one killed)", lat, st, secs)
            result["replica_kill_lost"] = stored(db, acknowledged, labelled)
            result["replica_kill_acknowledged"] = len(acknowledged) + len(labelled)
            # 5. trainer failover
            received = get(t_port, "/v1/model")[1]["feedback"]["received"]
            trainer.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            trainer.wait()
            until_ready(standby, s_port, 60)
            result["trainer_failover_s"] = round(time.monotonic() - killed, 3)
            time.sleep(1.0)
            after = get(s_port, "/v1/model")[1]["feedback"]
            result["failover_learned"] = after["learned"] + after["quarantined"] >= (
                received // 16 * 16
            )
            print(f"failover: {result['trainer_failover_s']} s; standby's feedback {after}")
            for process in processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGKILL)
                    process.wait()
            if args.ray:
                result.update(on_ray(pg, bodies, args, log))
        finally:
            for process in processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGKILL)
                    process.wait()
            log.close()
    if not args.no_grid:
        result.update(grid())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
