"""One-plugin shorthands: ``finetune``, ``er``, ``joint``, ``ewc``, ``lwf``, ``agem``, ``gem``.

``kind = "er"`` with ``memory = 200`` builds the same learner as ``kind = "continual"`` with
``plugins = [{ kind = "replay", memory = 200 }]``: a :class:`Continual` holding one plugin.
A shorthand's parameters are the base, its plugin's and the learner's (``boundaries``,
``window``, ``seed``), read from those declarations, so they are stated once.

>>> import numpy as np
>>> from adaptloop.learners import registry
>>> from adaptloop.learners.models.mlp import MLPClassifier
>>> model = registry.create("er", base=MLPClassifier(), memory=50)
>>> model.plugins
[Replay(memory=50, replay_batch=None, new_weight=0.5, policy='reservoir', draw='independent')]
>>> [p.name for p in registry.parameters("ewc")]
['base', 'strength', 'gamma', 'fisher_samples', 'boundaries', 'window', 'seed']
"""

from __future__ import annotations

import inspect
from typing import Any

from adaptloop.learners.base import registry
from adaptloop.learners.continual.ewc import EWC
from adaptloop.learners.continual.gem import AGEM, GEM
from adaptloop.learners.continual.learner import Continual
from adaptloop.learners.continual.lwf import LwF
from adaptloop.learners.continual.plugin import Plugin
from adaptloop.learners.continual.replay import Joint, Replay
from adaptloop.parameters import parameter_hints

__all__: list[str] = []


def _register(name: str, plugin: type[Plugin] | None, summary: str) -> None:
    """Register ``name``: a :class:`Continual` with one ``plugin`` (``None``: none)."""
    host = [p for p in inspect.signature(Continual).parameters.values() if p.name != "plugins"]
    own = [] if plugin is None else list(inspect.signature(plugin).parameters.values())
    keyword = [p.replace(kind=p.KEYWORD_ONLY) for p in [*own, *host[1:]]]
    signature = inspect.Signature([host[0], *keyword], return_annotation=Continual)
    names = [p.name for p in own]

    def make(*args: Any, **kwargs: Any) -> Continual:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        params = dict(bound.arguments)
        mine = {k: params.pop(k) for k in names}
        return Continual(**params, plugins=[] if plugin is None else [plugin(**mine)])

    hints = parameter_hints(Continual)
    if plugin is not None:
        hints.update(parameter_hints(plugin))
    make.__signature__ = signature  # type: ignore[attr-defined]
    make.__annotations__ = {k: v for k, v in hints.items() if k != "plugins"}
    make.__name__ = make.__qualname__ = name
    make.__doc__ = f"{summary} (a ``continual`` learner with one plugin; see its doc)."
    registry.register(name)(make)


_register("finetune", None, "Naive fine-tuning, the lower bound: no plugin")
_register("joint", Joint, "Incremental joint training, the upper bound: ``joint`` plugin")
_register("er", Replay, "Experience replay from a reservoir: ``replay`` plugin")
_register("ewc", EWC, "Online elastic weight consolidation: ``ewc`` plugin")
_register("lwf", LwF, "Learning without forgetting: ``lwf`` plugin")
_register("agem", AGEM, "Averaged gradient episodic memory: ``agem`` plugin")
_register("gem", GEM, "Gradient episodic memory: ``gem`` plugin")
