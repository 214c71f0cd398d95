"""The models: learners that learn by themselves (linear, torch MLP, CTR, recurrent, River).

One file per model family; each registers its learners by name. The torch learners share
:mod:`~adaptloop.learners.models.torch_core` (training parameters, trainer, scaler, state).
"""
