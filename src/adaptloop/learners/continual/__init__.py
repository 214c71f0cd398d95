"""Continual learning as composable plugins over any torch learner.

:class:`Continual` (``kind = "continual"``) runs a list of plugins over a
:class:`~adaptloop.learners.base.TorchTrainable` learner (MLP, CTR model, CfC / LTC / LSTM
regressor), on task sequences and on drifting streams (task boundaries given, detected or
none). One module per method: :mod:`~.replay` (``replay``, ``joint``), :mod:`~.ewc`,
:mod:`~.lwf`, :mod:`~.gem` (``gem``, ``agem``); :mod:`~.plugin` holds the hooks and the
``plugins`` registry; :mod:`~.shorthands` the one-plugin learners ``finetune``, ``er``,
``joint``, ``ewc``, ``lwf``, ``agem``, ``gem``. Beyond replay (docs/continual_beyond_replay.md):
:mod:`~.fsa` (learner ``fsa``), :mod:`~.merging` (plugin ``lines``, the ``mergers``),
:mod:`~.classp` (plugin ``classp``), :mod:`~.hypernet` (learner ``hypernet``) and
:mod:`~.fedrecon`, :mod:`~.dst` (learner ``dst``).

Why hand-written: Avalanche holds these methods but is a heavy dependency with a deep class
hierarchy (DESIGN.md); each method here is a few lines on the torch learners' public step and
follows its paper.
"""

from adaptloop.learners.continual import shorthands as _shorthands  # noqa: F401 - registers
from adaptloop.learners.continual.classp import CLASSP
from adaptloop.learners.continual.dst import DynamicSparseNetwork
from adaptloop.learners.continual.ewc import EWC
from adaptloop.learners.continual.fedrecon import federated_reconnaissance
from adaptloop.learners.continual.fsa import FirstSessionAdaptation, StreamingLDA
from adaptloop.learners.continual.gem import AGEM, GEM, gem_dual, gem_project
from adaptloop.learners.continual.hypernet import HyperNetwork
from adaptloop.learners.continual.learner import Continual
from adaptloop.learners.continual.lwf import LwF
from adaptloop.learners.continual.merging import (
    LiNeS,
    breadcrumbs,
    lines,
    mergers,
    task_arithmetic,
)
from adaptloop.learners.continual.plugin import Batch, Host, Plugin, make_plugin, plugins
from adaptloop.learners.continual.replay import Joint, Replay

__all__ = [
    "AGEM",
    "Batch",
    "CLASSP",
    "Continual",
    "DynamicSparseNetwork",
    "EWC",
    "FirstSessionAdaptation",
    "GEM",
    "Host",
    "HyperNetwork",
    "Joint",
    "LiNeS",
    "LwF",
    "Plugin",
    "Replay",
    "StreamingLDA",
    "breadcrumbs",
    "federated_reconnaissance",
    "gem_dual",
    "gem_project",
    "lines",
    "make_plugin",
    "mergers",
    "plugins",
    "task_arithmetic",
]
