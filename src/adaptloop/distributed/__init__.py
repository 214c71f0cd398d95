"""Many clients adapting at once: synchronous and asynchronous aggregation, in-process or on Ray.

Each client is a learner plus its own non-IID shard of a drifting stream (its own class mix and
drift time, :mod:`~adaptloop.distributed.data`); it runs local steps from the model it is sent
and returns the delta (:mod:`~adaptloop.distributed.client`, states as vectors by
:mod:`~adaptloop.distributed.state`). Clients share the model parameters and pool their
standardisation statistics exactly; optimiser state, generators and counters stay on each client,
as each learner declares (its ``state_roles()``, :mod:`~adaptloop.distributed.sharing`), so torch
learners federate as well as numpy ones. The aggregation arithmetic is shared by every rule
(:mod:`~adaptloop.distributed.aggregate`), the engines' common run in
:mod:`~adaptloop.distributed.engine`.
The server (:mod:`~adaptloop.distributed.server`) applies an aggregation rule
(:mod:`~adaptloop.distributed.rules`: FedAvg, FedBuff, FedFix, FedStale, FedCompass; each
server rule can aggregate through a Byzantine-robust block) or lets the nodes gossip over a
topology without one (:mod:`~adaptloop.distributed.topology`: gossip with one final merge,
DFedSAM, MoDeST, DADAO, Bristle's peers on a frozen body; see ``docs/decentralised.md``),
counts the messages and bytes sent, counts
every update at most once, survives failed clients and evaluates the global model on every
client's held-out data over time. Engines:
:class:`~adaptloop.distributed.local.LocalEngine` (simulated clock, deterministic) and
:class:`~adaptloop.distributed.ray_engine.RayEngine` (clients are Ray actors; needs the
``[distributed]`` extra); both inject the same attacks (Byzantine clients, noisy links:
:mod:`~adaptloop.distributed.attacks`). :func:`~adaptloop.distributed.run.run_federation` runs
several rules and returns a result that writes the usual results folder.

>>> from adaptloop.distributed import registry
>>> "fedbuff" in registry
True
"""

from adaptloop.distributed.attacks import Attack
from adaptloop.distributed.data import ClientShard, FederatedData, make_federated_data
from adaptloop.distributed.federation import Evaluator, Fault, Federation, RunTrace
from adaptloop.distributed.local import LocalEngine
from adaptloop.distributed.rules import (
    DADAO,
    AggregationRule,
    DFedSAM,
    FedAvg,
    FedBuff,
    FedCompass,
    FedFix,
    FedStale,
    Gossip,
    MoDeST,
    registry,
)
from adaptloop.distributed.run import FederatedResult, run_federation
from adaptloop.distributed.server import Server
from adaptloop.distributed.sharing import Moments, StateSplit, StatisticsBlocks
from adaptloop.distributed.state import StateCodec

__all__ = [
    "DADAO",
    "AggregationRule",
    "Attack",
    "DFedSAM",
    "ClientShard",
    "Evaluator",
    "Fault",
    "FedAvg",
    "FedBuff",
    "FedCompass",
    "FedFix",
    "FedStale",
    "FederatedData",
    "FederatedResult",
    "Federation",
    "Gossip",
    "LocalEngine",
    "MoDeST",
    "Moments",
    "RunTrace",
    "Server",
    "StateCodec",
    "StateSplit",
    "StatisticsBlocks",
    "make_federated_data",
    "registry",
    "run_federation",
]
