"""Test-wide settings: one torch thread (the models in tests are tiny, and on a 2-core machine
shared with other work, torch's thread pool slows them down many times over)."""

import importlib.util

if importlib.util.find_spec("torch") is not None:
    import torch

    torch.set_num_threads(1)


# -- markers: `-m "not slow"` for a quick run; CI runs everything -----------------------------
# Which files hold which kind of test is said here once (pyproject.toml registers the names).
import pytest  # noqa: E402

MARKERS_BY_FILE = {
    "test_distributed_ray.py": ("ray", "slow"),
    "test_report_browser.py": ("browser",),
    "test_serve_api.py": ("service",),
    "test_serve_crash.py": ("service", "slow"),
    "test_serve_store.py": ("service",),
}


def pytest_collection_modifyitems(config, items):  # noqa: ARG001 - pytest's hook signature
    for item in items:
        for marker in MARKERS_BY_FILE.get(item.path.name, ()):
            item.add_marker(getattr(pytest.mark, marker))
