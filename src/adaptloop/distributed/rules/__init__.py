"""Aggregation rules by name: ``fedavg``, ``fedbuff``, ``fedfix``, ``fedstale``,
``fedcompass``, ``gossip`` (see each module for the paper and equations it follows).

>>> registry.names()
['fedavg', 'fedbuff', 'fedcompass', 'fedfix', 'fedstale', 'gossip']
>>> registry.create("fedbuff", buffer_size=4).buffer_size
4
"""

from adaptloop.distributed.aggregate import staleness_weight
from adaptloop.distributed.rules.base import (
    AggregationRule,
    Assignment,
    Plan,
    ServerView,
    Update,
    registry,
)
from adaptloop.distributed.rules.buffered import FedBuff, FedFix
from adaptloop.distributed.rules.compass import FedCompass
from adaptloop.distributed.rules.fedavg import FedAvg
from adaptloop.distributed.rules.fedstale import FedStale
from adaptloop.distributed.rules.gossip import Gossip

__all__ = [
    "AggregationRule",
    "Assignment",
    "FedAvg",
    "FedBuff",
    "FedCompass",
    "FedFix",
    "FedStale",
    "Gossip",
    "Plan",
    "ServerView",
    "Update",
    "registry",
    "staleness_weight",
]
