"""What every engine runs: clients, their speeds, the clock's settings and the evaluation.

A :class:`Federation` holds the data shards, the learner every client clones, the local batch
size, the per-client speed profile (simulated time per local step: the fast clients take
``step_time``, a ``slow_fraction`` of them ``slow_factor`` times longer; or, with
``faster_pct = P``, Fraboni et al.'s scenario, :func:`linear_speed_profile`), the communication
latency, the task timeout and the restart delay of failed clients, the run's duration and how
often the server evaluates, and which parts of the learner's state clients share (``share`` and
``local`` path patterns, see :mod:`~adaptloop.distributed.sharing`), the ``attack`` (Byzantine
clients and noisy links, :mod:`~adaptloop.distributed.attacks`) and the ``participation`` model
(which clients are available in each round, :mod:`~adaptloop.distributed.participation`) and
``root_samples``, the size of the server's own small clean dataset (rows of the stream no client
holds, the data's public rows; what FLTrust's robust block trains its reference update on). Time
is simulated time in *units* (one local step of a fast client takes ``step_time`` units); the Ray
engine maps a unit to ``time_unit_s`` wall-clock seconds.

>>> from adaptloop.learners import LogisticRegression
>>> from adaptloop.distributed.data import make_federated_data
>>> data = make_federated_data("sea", clients=4, samples_per_client=100, concepts=[0],
...                            drift_at=[], seed=0)
>>> fed = Federation(data, LogisticRegression(), slow_fraction=0.25, slow_factor=10.0)
>>> sorted(fed.step_times.tolist())
[1.0, 1.0, 1.0, 10.0]
>>> Evaluator(fed).evaluate(fed.initial_model(), 0.0)["accuracy"] > 0
True
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Literal

import numpy as np
from annotated_types import Ge, Lt

from adaptloop.distributed.attacks import Adversary, Attack
from adaptloop.distributed.client import Client
from adaptloop.distributed.data import ClientShard, FederatedData
from adaptloop.distributed.participation import Participation, ParticipationSchedule
from adaptloop.distributed.sharing import StateSplit
from adaptloop.learners.base import Learner
from adaptloop.parameters import declared
from adaptloop.validation import (
    Count,
    Fraction,
    Limit,
    NonNegativeInt,
    NonNegativeReal,
    PositiveReal,
    Real,
    Seed,
)

FaultKind = Literal["raise", "hang", "die", "late", "duplicate"]


@dataclass(frozen=True)
class Fault:
    """An injected fault (in-process engine): from time ``at`` on, client ``client`` ...

    ``"raise"``: its next task raises (detected at once); ``"die"``: its process dies, the task
    in flight is lost (detected at once, as a lost connection); ``"hang"``: it never answers
    (detected by the timeout); ``"late"``: its next update arrives after the timeout (it is
    marked failed, the late update is dropped); ``"duplicate"``: its next update is delivered
    twice (the second copy is dropped).
    """

    client: int
    at: float
    kind: FaultKind

    def __post_init__(self) -> None:
        if self.kind not in ("raise", "hang", "die", "late", "duplicate"):
            raise ValueError(
                f"fault kind must be raise, hang, die, late or duplicate, got {self.kind!r}"
            )
        if not math.isfinite(self.at) or self.at < 0:
            raise ValueError(f"fault time must be a number >= 0, got {self.at!r}")


SlowFactor = Annotated[Real, Ge(1)]
"""How many times longer a slow client's local step takes: a number >= 1."""


@declared
def speed_profile(
    n_clients: Count,
    step_time: PositiveReal,
    slow_fraction: Fraction,
    slow_factor: SlowFactor,
    seed: Seed,
) -> np.ndarray:
    """Simulated time per local step of each client; the slow ones are drawn with ``seed``.

    >>> speed_profile(4, 1.0, 0.5, 10.0, seed=0).tolist()
    [10.0, 1.0, 10.0, 1.0]
    >>> speed_profile(4, 1.0, 0.5, 0.5, seed=0)
    Traceback (most recent call last):
    ...
    adaptloop.parameters.ParameterError: speed_profile.slow_factor: must be >= 1, got 0.5
    """
    times = np.full(n_clients, float(step_time))
    n_slow = int(round(slow_fraction * n_clients))
    slow = np.random.default_rng([seed, 11]).choice(n_clients, size=n_slow, replace=False)
    times[slow] *= slow_factor
    return times


@declared
def linear_speed_profile(
    n_clients: Count, step_time: PositiveReal, faster_pct: Annotated[Real, Ge(0), Lt(100)]
) -> np.ndarray:
    """Fraboni et al.'s client-time scenario (JMLR 2023, Sec. 6; the authors' code): client
    ``i`` takes ``tau_i = 1 - i (P / 100) / (n - 1)`` x ``step_time`` per local step, so the
    fastest client is ``P`` % faster than the slowest and the others are evenly spread.

    >>> linear_speed_profile(5, 1.0, 40.0).tolist()
    [1.0, 0.9, 0.8, 0.7, 0.6]
    """
    i = np.arange(n_clients, dtype=np.float64)
    spread = (faster_pct / 100.0) / max(n_clients - 1, 1)
    return float(step_time) * (1.0 - i * spread)


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Torch's intra-op thread pool at one thread meanwhile, if torch is loaded (restored after).

    Clients take small local steps, one client at a time per process: a thread pool only adds
    contention (on 2 busy cores an MLP step took ~50 ms with torch's default pool, ~3 ms with one
    thread).

    >>> with one_torch_thread():
    ...     pass
    """
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@declared
@dataclass
class Federation:
    """The clients, their speeds and the run's clock settings (see the module docstring).

    ``jitter`` is the standard deviation of the log-normal factor on every task's duration;
    ``timeout`` (time units after sending) marks a silent client failed; failed clients are
    restarted ``restart_after`` units later (None: never). ``faults`` are injected by the
    in-process engine only. ``share`` and ``local`` are the path patterns of
    :class:`~adaptloop.distributed.sharing.StateSplit`; ``split`` is the resulting split.

    The fields are the one declaration of these settings: the constructor checks them
    (:func:`adaptloop.parameters.declared`) and an experiment file's ``[federation]`` section
    is read from them (:mod:`adaptloop.config.schema`).

    >>> Federation(None, None, duration=0.0)
    Traceback (most recent call last):
    ...
    adaptloop.parameters.ParameterError: Federation.duration: must be > 0, got 0.0
    """

    data: FederatedData
    learner: Learner
    batch_size: Count = 32
    duration: PositiveReal = 600.0
    eval_every: PositiveReal = 5.0
    step_time: PositiveReal = 1.0
    slow_fraction: Fraction = 0.25
    slow_factor: SlowFactor = 10.0
    faster_pct: Annotated[Real, Ge(0), Lt(100)] | None = None
    latency: NonNegativeReal = 0.1
    jitter: NonNegativeReal = 0.1
    timeout: Limit = math.inf
    restart_after: NonNegativeReal | None = 10.0
    seed: Seed = 0
    faults: tuple[Fault, ...] = ()
    share: tuple[str, ...] = ()
    local: tuple[str, ...] = ()
    attack: Attack | None = None
    participation: Participation | None = None
    root_samples: NonNegativeInt = 0
    step_times: np.ndarray = field(init=False)
    split: StateSplit = field(init=False)

    def __post_init__(self) -> None:
        for fault in self.faults:
            if not 0 <= fault.client < self.data.n_clients:
                raise ValueError(
                    f"fault client must be in 0..{self.data.n_clients - 1}, got {fault.client}"
                )
        if self.faster_pct is None:
            self.step_times = speed_profile(
                self.data.n_clients, self.step_time, self.slow_fraction, self.slow_factor, self.seed
            )
        else:
            self.step_times = linear_speed_profile(
                self.data.n_clients, self.step_time, self.faster_pct
            )
        info = self.data.info
        self.split = StateSplit.for_learner(
            self.learner, info.n_features, info.n_classes, share=self.share, local=self.local
        )

    @property
    def n_clients(self) -> int:
        return self.data.n_clients

    def initial_model(self) -> np.ndarray:
        """The global model's starting vector (its statistics empty: no sample seen yet)."""
        return self.split.without_statistics(self.split.flatten(self.split.template))

    def client_weights(self) -> np.ndarray:
        """Each client's share of the training data (``p_i``)."""
        sizes = np.array([s.n_train for s in self.data.shards], dtype=np.float64)
        return sizes / sizes.sum()

    def adversary(self) -> Adversary:
        """The attack at run time (a fresh one per run): Byzantine clients, noisy links."""
        keep = np.where(self.split.statistics.strip(np.ones(self.split.size)) > 0, 1.0, 0.0)
        return Adversary(self.attack, self.n_clients, self.data.info.n_classes, self.seed, keep)

    def participation_schedule(self) -> ParticipationSchedule | None:
        """The participation model at run time (a fresh one per run; None: full participation).

        ``p_i`` are drawn from the clients' class mixes with the federation's seed."""
        if self.participation is None or self.participation.kind == "full":
            return None
        mixes = [shard.class_mix for shard in self.data.shards]
        return self.participation.schedule(mixes, self.seed)

    def make_client(self, index: int, generation: int = 0) -> Client:
        """Client ``index`` (a restarted client is generation 1, 2, ...: a fresh data order)."""
        attack = self.attack or Attack()
        flips = attack.kind == "label_flip" and index in attack.byzantine(self.n_clients, self.seed)
        return Client(
            index,
            self.learner,
            self.data.shards[index],
            self.split,
            self.batch_size,
            seed=self.seed * 1000 + generation,
            flip_classes=self.data.info.n_classes if flips else None,
        )

    def root_trainer(self) -> Callable[[np.ndarray, int, float], np.ndarray] | None:
        """The server's own training on its ``root_samples`` public rows (None without them):
        ``(model, steps, time) -> delta``, ``steps`` local steps of the learner from ``model``
        as a client's task takes them (the rows of the rules' part of the public data,
        :class:`~adaptloop.distributed.data.PublicSamples`)."""
        if not self.root_samples:
            return None
        public = self.data.public_part("rules")
        if public is None:
            raise ValueError("root_samples: the federation's data has no public rows to draw from")
        X, y = public(self.root_samples)
        info = self.data.info
        mix = np.bincount(y, minlength=info.n_classes) / len(y)
        shard = ClientShard(((X, y),), ((X, y),), (), mix)
        server = Client(self.n_clients, self.learner, shard, self.split, self.batch_size, self.seed)

        def train(model: np.ndarray, steps: int, time: float) -> np.ndarray:
            return server.run(model, steps, time)[0]

        return train

    def task_duration(self, client: int, steps: int, rng: np.random.Generator) -> float:
        """Simulated time a task of ``steps`` local steps takes on ``client``, latency included."""
        factor = float(np.exp(rng.normal(0.0, self.jitter))) if self.jitter > 0 else 1.0
        return steps * self.step_times[client] * factor + self.latency

    def eval_times(self) -> list[float]:
        """When the server evaluates: 0, every ``eval_every`` units, and at the end."""
        n = int(math.floor(self.duration / self.eval_every + 1e-9))
        times = [k * self.eval_every for k in range(n + 1)]
        if times[-1] < self.duration - 1e-9:
            times.append(self.duration)
        return times


class Evaluator:
    """Accuracy of a model vector on every client's held-out data of the concept it is in.

    The global learner evaluated keeps its own local part (the split's template's)."""

    def __init__(self, federation: Federation) -> None:
        self.federation = federation
        self.model = federation.learner.clone()
        self.seconds = 0.0

    def evaluate(self, vector: np.ndarray, at: float) -> dict[str, float]:
        """``accuracy`` (mean over clients) and ``accuracy_worst`` (worst client) at time ``at``."""
        started = time.perf_counter()
        fed = self.federation
        self.model.load_state_dict(fed.split.compose(fed.split.template, vector))
        scores = []
        for shard in fed.data.shards:
            X, y = shard.test[shard.concept_at(at)]
            scores.append(float((self.model.predict(X) == y).mean()))
        self.seconds += time.perf_counter() - started
        return {"accuracy": float(np.mean(scores)), "accuracy_worst": float(np.min(scores))}

    def evaluate_nodes(self, vectors: list[np.ndarray], at: float) -> float:
        """The mean over ``vectors`` (the nodes' own models of a decentralised rule) of each
        one's accuracy on every client's held-out data at time ``at`` (mean over clients)."""
        started = time.perf_counter()
        fed = self.federation
        tests = [shard.test[shard.concept_at(at)] for shard in fed.data.shards]
        X = np.concatenate([X for X, _ in tests])
        y = np.concatenate([y for _, y in tests])
        sizes = np.array([len(part) for _, part in tests], dtype=np.float64)
        owner = np.repeat(np.arange(len(tests)), sizes.astype(np.int64))
        scores = []
        for vector in vectors:
            self.model.load_state_dict(fed.split.compose(fed.split.template, vector))
            hits = np.bincount(owner, weights=self.model.predict(X) == y, minlength=len(tests))
            scores.append(float(np.mean(hits / sizes)))
        self.seconds += time.perf_counter() - started
        return float(np.mean(scores))


@dataclass
class RunTrace:
    """What one rule's run recorded: one row per evaluation, the server's counts (and per client,
    see :class:`~adaptloop.distributed.server.Server`), failures and rejoins, timings; the
    Byzantine clients and every robust block's ``influence`` ``(time, client, influence)``."""

    rule: str
    rows: list[dict] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    accepted_by_client: dict[int, int] = field(default_factory=dict)
    last_update_at: dict[int, float] = field(default_factory=dict)
    events: list[tuple[float, str, int]] = field(default_factory=list)
    failed_clients: list[int] = field(default_factory=list)
    wall_seconds: float = 0.0
    learn_seconds: float = 0.0
    eval_seconds: float = 0.0
    engine: str = "local"
    byzantine: list[int] = field(default_factory=list)
    influence: list[tuple[float, int, float]] = field(default_factory=list)
    down_weighted_by_client: dict[int, int] = field(default_factory=dict)
