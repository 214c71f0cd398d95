"""Aggregation rules by name: ``fedavg``, ``fedbuff``, ``fedfix``, ``fedstale``,
``fedcompass``, ``gossip``; for partial participation ``fedau``, ``fedamd`` (anchor sampling),
``fedhyper``, ``fedavg_m`` and ``scaffold_m``; without a server ``gossip``, ``dfedsam``,
``modest``, ``dadao`` and ``bristle`` (see each module for the paper and equations it follows).

>>> registry.names()  # doctest: +NORMALIZE_WHITESPACE
['bristle', 'dadao', 'dfedsam', 'fedamd', 'fedau', 'fedavg', 'fedavg_m', 'fedbuff', 'fedcompass',
 'fedfix', 'fedhyper', 'fedstale', 'gossip', 'modest', 'scaffold_m']
>>> registry.create("fedbuff", buffer_size=4).buffer_size
4
"""

from adaptloop.distributed.aggregate import staleness_weight
from adaptloop.distributed.rules.anchor import FedAMD
from adaptloop.distributed.rules.base import (
    AggregationRule,
    Assignment,
    Plan,
    ServerView,
    Update,
    registry,
)
from adaptloop.distributed.rules.bristle import Bristle
from adaptloop.distributed.rules.buffered import FedBuff, FedFix
from adaptloop.distributed.rules.compass import FedCompass
from adaptloop.distributed.rules.dadao import DADAO
from adaptloop.distributed.rules.dfedsam import DFedSAM
from adaptloop.distributed.rules.fedau import FedAU
from adaptloop.distributed.rules.fedavg import FedAvg
from adaptloop.distributed.rules.fedhyper import FedHyper
from adaptloop.distributed.rules.fedstale import FedStale
from adaptloop.distributed.rules.gossip import Gossip
from adaptloop.distributed.rules.modest import MoDeST
from adaptloop.distributed.rules.momentum import FedAvgM, ScaffoldM

__all__ = [
    "DADAO",
    "AggregationRule",
    "Assignment",
    "DFedSAM",
    "Bristle",
    "FedAMD",
    "FedAU",
    "FedAvg",
    "FedAvgM",
    "FedBuff",
    "FedCompass",
    "FedFix",
    "FedHyper",
    "FedStale",
    "Gossip",
    "MoDeST",
    "Plan",
    "ScaffoldM",
    "ServerView",
    "Update",
    "registry",
    "staleness_weight",
]
