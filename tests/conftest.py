"""Test-wide settings: one torch thread (the models in tests are tiny, and on a 2-core machine
shared with other work, torch's thread pool slows them down many times over)."""

import importlib.util

if importlib.util.find_spec("torch") is not None:
    import torch

    torch.set_num_threads(1)
