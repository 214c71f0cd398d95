"""Non-IID client shards with their own class mix and their own drift time.

Every concept of the experiment is one pool of samples from a registered drifting generator
(``sea``, ``hyperplane``, ``rbf``: any stream kind with a ``concepts`` parameter), drawn with
the experiment's seed so all clients share the same concepts. Each client draws its shard from
each pool with its own class proportions (a Dirichlet draw with concentration ``class_skew``:
small values give clients dominated by one or two classes) and switches from one concept to the
next at its own time: the shared drift time plus a uniform offset in ``[-drift_jitter,
drift_jitter]``. A fraction of every shard is held out; the server evaluates on the held-out
samples of the concept each client is in at that time. The rows of the first concept's
generator after the clients' pool are public: no client holds them (:class:`PublicSamples`).

>>> data = make_federated_data("sea", clients=4, samples_per_client=200, concepts=[0, 3],
...                            drift_at=[50.0], drift_jitter=5.0, seed=1, noise=0.0)
>>> len(data.shards), data.info.task, data.info.drifts
(4, 'binary', (Drift(position=50, width=11),))
>>> shard = data.shards[0]
>>> shard.concept_at(0.0), shard.concept_at(100.0)
(0, 1)
>>> shard.train[0][0].shape[1], len(shard.test[1][1])
(3, 40)
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Literal

import numpy as np
from annotated_types import Ge, Gt, Lt, MinLen

from adaptloop.parameters import declared
from adaptloop.streams import registry as stream_registry
from adaptloop.streams.base import Drift, StreamInfo
from adaptloop.validation import Count, Integer, NonNegativeReal, PositiveReal, Real, Seed

Arrays = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class ClientShard:
    """One client's data: training and held-out arrays per concept, and its drift times.

    ``train[k]`` / ``test[k]`` are ``(X, y)`` of concept ``k``; ``drift_times[k]`` is the time
    at which the client moves from concept ``k`` to ``k + 1``; ``class_mix`` its class
    proportions.
    """

    train: tuple[Arrays, ...]
    test: tuple[Arrays, ...]
    drift_times: tuple[float, ...]
    class_mix: np.ndarray

    def concept_at(self, time: float) -> int:
        """Index of the concept this client sees at ``time``."""
        return bisect.bisect_right(self.drift_times, time)

    @property
    def n_train(self) -> int:
        """Training samples of the first concept (the client's weight in data-weighted rules)."""
        return len(self.train[0][1])


def _pool(
    kind: str, concept: int, n: int, seed: int, stream_params: Mapping[str, object]
) -> tuple[np.ndarray, np.ndarray, StreamInfo]:
    """The first ``n`` samples of concept ``concept`` of the generator ``kind`` (the same rows
    for every larger ``n``) and the stream's info."""
    stream = stream_registry.create(kind, n=n, concepts=[concept], seed=seed, **stream_params)
    X, y = (np.concatenate(parts) for parts in zip(*stream.iter_batches(8192), strict=True))
    return X, y, stream.info


@dataclass(frozen=True)
class PublicSamples:
    """Public data: rows of the first concept's generator drawn after the clients' pool (row
    ``start`` on), which no client holds. They are dealt out in turn to ``parts`` users: part
    ``part`` gets rows ``start + part``, ``start + part + parts``, ..., so different parts never
    share a row. Called with ``n``, it gives the part's first ``n`` rows ``(X, y)`` (what a
    frozen body is pretrained on, or a rule's validation sample).

    >>> data = make_federated_data("sea", clients=2, samples_per_client=50, concepts=[0])
    >>> body, validation = data.public_part("learner"), data.public_part("rules")
    >>> X, y = body(3)
    >>> X.shape, bool((X == validation(3)[0]).all())
    ((3, 3), False)
    """

    kind: str
    concept: int
    start: int
    seed: int
    stream_params: Mapping[str, object] = field(default_factory=dict)
    part: int = 0
    parts: int = 1

    def split(self, parts: int) -> tuple[PublicSamples, ...]:
        """This part's rows dealt out in turn to ``parts`` users, one part each."""
        step = self.parts * parts
        return tuple(
            PublicSamples(
                self.kind,
                self.concept,
                self.start,
                self.seed,
                self.stream_params,
                self.part + k * self.parts,
                step,
            )
            for k in range(parts)
        )

    def __call__(self, n: int) -> Arrays:
        if n < 1:
            raise ValueError(f"n must be >= 1 public rows, got {n}")
        first = self.start + self.part
        end = first + self.parts * (n - 1) + 1
        X, y, _ = _pool(self.kind, self.concept, end, self.seed, self.stream_params)
        return X[first :: self.parts], y[first :: self.parts]


@dataclass(frozen=True)
class FederatedData:
    """The shards of every client, what the evaluation needs to know about the data, and the
    public rows no client holds (:class:`PublicSamples`)."""

    shards: tuple[ClientShard, ...]
    info: StreamInfo
    public: PublicSamples | None = None

    def public_part(self, user: Literal["learner", "rules"]) -> PublicSamples | None:
        """``user``'s own part of the public rows (None without them): the ``learner``'s (what
        a frozen body is pretrained on) or the ``rules``' (a rule's validation sample, the
        server's root data); the two never share a row."""
        users = ("learner", "rules")
        return None if self.public is None else self.public.split(len(users))[users.index(user)]

    @property
    def n_clients(self) -> int:
        return len(self.shards)


@declared
def make_federated_data(
    kind: str,
    concepts: Annotated[list[int], MinLen(1)],
    clients: Count = 32,
    samples_per_client: Annotated[Integer, Ge(10)] = 1000,
    drift_at: tuple[float, ...] = (),
    drift_jitter: NonNegativeReal = 0.0,
    class_skew: PositiveReal = 0.5,
    test_fraction: Annotated[Real, Gt(0), Lt(1)] = 0.2,
    seed: Seed = 0,
    **stream_params: object,
) -> FederatedData:
    """Shards for ``clients`` clients from the generator ``kind`` (see the module docstring).

    ``concepts`` lists the concept ids in time order, ``drift_at`` the (simulated) times of the
    switches between them (one fewer). ``stream_params`` go to the generator (e.g. ``noise``).
    The declaration is also what an experiment file's ``[federation]`` section reads.
    """
    if kind not in stream_registry:
        known = ", ".join(stream_registry.names())
        raise ValueError(f"stream.kind: unknown stream {kind!r}; known: {known}")
    if "concepts" not in stream_registry.parameter_names(kind):
        raise ValueError(
            f"stream.kind: {kind!r} has no 'concepts' parameter; federated shards need a "
            "generator with concepts (sea, hyperplane, rbf)"
        )
    if len(concepts) != len(drift_at) + 1:
        raise ValueError(
            f"concepts must have one more entry than drift_at: got {len(concepts)} concept(s) "
            f"for {len(drift_at)} drift time(s)"
        )
    if any(b <= a for a, b in zip(drift_at, drift_at[1:], strict=False)) or any(
        t < 0 for t in drift_at
    ):
        raise ValueError(f"drift_at must be increasing times >= 0, got {drift_at}")
    pool_size = clients * samples_per_client
    pools = [_pool(kind, c, pool_size, seed, stream_params) for c in concepts]
    info = pools[0][2]
    n_classes = info.n_classes
    if n_classes is None:
        raise ValueError(f"stream {kind!r} is a regression stream; federated runs classify")
    rng = np.random.default_rng([seed, 8])
    n_test = max(1, int(round(samples_per_client * test_fraction)))
    shards = []
    for _ in range(clients):
        mix = rng.dirichlet(np.full(n_classes, class_skew))
        offsets = rng.uniform(-drift_jitter, drift_jitter, len(drift_at))
        times = tuple(float(max(0.0, t + o)) for t, o in zip(drift_at, offsets, strict=True))
        train, test = [], []
        for X, y, _ in pools:
            index = _draw(rng, y, mix, samples_per_client, n_classes)
            test.append((X[index[:n_test]], y[index[:n_test]]))
            train.append((X[index[n_test:]], y[index[n_test:]]))
        shards.append(ClientShard(tuple(train), tuple(test), tuple(sorted(times)), mix))
    width = int(2 * drift_jitter) + 1
    drifts = tuple(Drift(int(round(t)), width) for t in drift_at)
    info = StreamInfo(
        name=f"{info.name} ({clients} clients)",
        feature_names=info.feature_names,
        task=info.task,
        classes=info.classes,
        n_samples=None,
        drifts=drifts,
    )
    public = PublicSamples(kind, concepts[0], pool_size, seed, stream_params)
    return FederatedData(tuple(shards), info, public)


def _draw(
    rng: np.random.Generator, y: np.ndarray, mix: np.ndarray, n: int, n_classes: int
) -> np.ndarray:
    """Indices of ``n`` pool samples with class proportions ``mix`` (classes the pool lacks are
    made up by the others), in random order."""
    counts = rng.multinomial(n, mix)
    chosen = []
    for c in range(n_classes):
        where = np.flatnonzero(y == c)
        chosen.append(rng.choice(where, size=min(counts[c], len(where)), replace=False))
    index = np.concatenate(chosen)
    if len(index) < n:  # a class was short in the pool: fill from the others
        rest = np.setdiff1d(np.arange(len(y)), index)
        index = np.concatenate([index, rng.choice(rest, size=n - len(index), replace=False)])
    return rng.permutation(index)
