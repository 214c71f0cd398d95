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
    "test_grid_ray.py": ("ray", "slow"),
    "test_report_browser.py": ("browser",),
    "test_serve_api.py": ("service",),
    "test_serve_crash.py": ("service", "slow"),
    "test_serve_faults.py": ("service",),
    "test_serve_protocols.py": ("service",),
    "test_serve_store.py": ("service",),
    "test_serve_roles.py": ("service",),
    "test_serve_ray.py": ("service", "ray", "slow"),
}


def pytest_collection_modifyitems(config, items):  # noqa: ARG001 - pytest's hook signature
    for item in items:
        for marker in MARKERS_BY_FILE.get(item.path.name, ()):
            item.add_marker(getattr(pytest.mark, marker))


@pytest.fixture(scope="module")
def two_tasks():
    """Digits 0-1 then 2-3 (class-incremental), labels 0..3: the continual strategies' and
    plugins' tests share it."""
    from adaptloop.streams.tasks import load_digits_arrays, split

    X_train, y_train, X_test, y_test = load_digits_arrays()
    keep, keep_test = y_train < 4, y_test < 4
    return split(
        X_train[keep], y_train[keep], X_test[keep_test], y_test[keep_test], [[0, 1], [2, 3]]
    )


# -- PostgreSQL: a throwaway server for the store tests (both backends run the same tests) ----
@pytest.fixture(scope="session")
def postgres():
    """A local PostgreSQL server for this test session (initdb into a temporary folder, a
    free port), stopped at the end. No server: the test fails, naming what is missing."""
    from adaptloop.serve.localpg import LocalPostgres, PostgresUnavailable

    try:
        server = LocalPostgres().start()
    except PostgresUnavailable as error:
        pytest.fail(f"PostgreSQL is needed for the store tests: {error}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def new_db(request, tmp_path):
    """``new_db(name)``: the database ``name`` of this test (a SQLite file, or a fresh
    PostgreSQL database URL); the same name gives the same database."""
    made: dict[str, object] = {}

    def make(name: str = "s"):
        if name not in made:
            if request.param == "sqlite":
                made[name] = tmp_path / f"{name}.db"
            else:
                made[name] = request.getfixturevalue("postgres").database()
        return made[name]

    make.backend = request.param
    return make
