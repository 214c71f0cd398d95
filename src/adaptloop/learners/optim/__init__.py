"""How the torch learners train: the :class:`~adaptloop.learners.optim.training.Trainer` (one
optimiser step with its schedule and budget), learning-rate schedules and optimisers."""
