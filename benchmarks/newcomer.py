"""A newcomer's first hour (issue 16), checked and timed: each step in a fresh interpreter, as a
new user meets it.

1. A missing extra (PyTorch hidden, as on a base install) gives one line containing
   ``adaptloop[torch]`` and exit code 2 (a torch learner in an experiment file).
2. ``window = "2000"`` in an experiment file exits 2 with the key path.
3. ``adaptloop list`` does not import torch; its wall-clock time is measured (best of 3) against
   the peer a newcomer compares it with: ``python -c "import torch"``, what the old ``list`` paid.
4. ``adaptloop run ... | cat`` prints every summary number whole (each learner's accuracy and log
   loss, as in ``summary.json``, to 4 decimals; no ``…``).
5. The README's Python snippet prints what the README shows.

Usage: ``OMP_NUM_THREADS=1 python benchmarks/newcomer.py`` (about a minute). Last line: JSON.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = str(ROOT / "src")
EXPERIMENT = """
name = "newcomer"
[stream]
kind = "sea"
n = 3_000
drifts = [{ at = 1_500, width = 1 }]
[learners.retrain]
kind = "window_retrain"
base = { kind = "logistic" }
window = 1_000
[learners.adwin]
kind = "drift_reset"
base = { kind = "logistic" }
detector = "adwin"
"""


def run(args: list[str], folder: Path, hide: tuple[str, ...] = ()) -> tuple[int, str, str, float]:
    """A fresh interpreter; ``hide``: modules that fail to import there."""
    paths = [SRC]
    if hide:
        shim = folder / "hidden"
        shim.mkdir(exist_ok=True)
        for module in hide:
            (shim / f"{module}.py").write_text(
                f"raise ModuleNotFoundError(\"No module named '{module}'\", name={module!r})\n"
            )
        paths.insert(0, str(shim))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "COLUMNS": "80"}
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, cwd=folder, env=env, timeout=600)
    return done.returncode, done.stdout, done.stderr, time.perf_counter() - started


def main() -> None:
    checks: dict[str, bool] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cli = [sys.executable, "-m", "adaptloop"]

        torch_file = folder / "torch.toml"
        torch_file.write_text(EXPERIMENT.replace('base = { kind = "logistic" }\nwindow',
                                                 'base = { kind = "mlp" }\nwindow'))  # fmt: skip
        code, _, err, _ = run([*cli, "run", str(torch_file), "-o", "o1"], folder, hide=("torch",))
        checks["missing_torch_one_line"] = (
            code == 2 and "adaptloop[torch]" in err and len(err.strip().splitlines()) == 1
        )
        print(f"1. missing torch: exit {code}: {err.strip()}")

        wrong = folder / "wrong.toml"
        wrong.write_text(EXPERIMENT.replace("window = 1_000", 'window = "2000"'))
        code, _, err, _ = run([*cli, "run", str(wrong)], folder)
        checks["key_path_exit_2"] = code == 2 and "learners.retrain.window" in err
        print(f'2. window = "2000": exit {code}: {err.strip()}')

        probe = "import sys; from adaptloop.cli import main; sys.argv = ['adaptloop', 'list']\n"
        probe += "try:\n    main()\nexcept SystemExit:\n    pass\n"
        probe += "print('torch' in sys.modules, file=sys.stderr)"
        _, out, err, _ = run([sys.executable, "-c", probe], folder)
        imports_torch = err.strip().endswith("True")
        checks["list_without_torch"] = not imports_torch
        list_seconds = min(run([*cli, "list"], folder)[3] for _ in range(3))
        has_torch = run([sys.executable, "-c", "import torch"], folder)[0] == 0
        torch_runs = [run([sys.executable, "-c", "import torch"], folder)[3] for _ in range(3)]
        torch_seconds = min(torch_runs) if has_torch else None  # a base install has no torch
        print(
            f"3. adaptloop list: {len(out.splitlines())} lines, {list_seconds:.2f} s, imports "
            f"torch: {imports_torch}; `import torch` alone: {torch_seconds} s"
        )

        good = folder / "good.toml"
        good.write_text(EXPERIMENT)
        code, out, err, _ = run(
            ["bash", "-c", f"{sys.executable} -m adaptloop run good.toml -o o2 --no-report | cat"],
            folder,
        )
        summary = json.loads((folder / "o2" / "summary.json").read_text())
        whole = "…" not in out
        for name, values in summary["learners"].items():
            row = next((line for line in out.splitlines() if line.startswith(name + " ")), "")
            whole &= f"{values['accuracy']:.4f}" in row and f"{values['log_loss']:.4f}" in row
        checks["piped_numbers_whole"] = code == 0 and whole
        print(f"4. run | cat: every number whole: {whole}")

        readme = (ROOT / "README.md").read_text()
        snippet = re.search(r"```python\n(.*?)```", readme, re.DOTALL).group(1)
        shown = re.search(r"```text\n(.*?)```", readme, re.DOTALL).group(1)
        printed = io.StringIO()
        sys.path.insert(0, SRC)
        with contextlib.redirect_stdout(printed):
            exec(compile(snippet, "README.md", "exec"), {})
        checks["readme_snippet_as_shown"] = printed.getvalue() == shown
        print(f"5. README snippet prints what the README shows: {printed.getvalue() == shown}")

    result = {
        "list_seconds": round(list_seconds, 3),
        "import_torch_seconds": torch_seconds and round(torch_seconds, 3),
        "list_over_import_torch": torch_seconds and round(list_seconds / torch_seconds, 3),
        "list_imports_torch": imports_torch,
        "readme_lines": len(readme.splitlines()),
        **checks,
        "all_passed": all(checks.values()),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
