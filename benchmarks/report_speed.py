"""How long ``adaptloop report`` takes on a run of 10 million records.

Writes a synthetic prequential results folder (4 learners x 2.5 million records, every column a
run writes, ``adaptloop.report.synthetic``) to a temporary directory, then times:

- ``adaptloop report DIR`` as a user runs it (a fresh process: imports, reading, figures, HTML);
- ``build_report`` in this process;
- the peer: reading the whole ``records.parquet`` with ``pandas.read_parquet`` (what a report that
  loads everything would pay before drawing a single point).

It prints the times and the ratio report / full read; the last line is a JSON object.

    python benchmarks/report_speed.py                  # 10,000,000 records
    python benchmarks/report_speed.py --records 1e6    # smaller
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from adaptloop.report import build_report
from adaptloop.report.synthetic import write_prequential_folder

LEARNERS = ("static", "window_retrain", "adwin_reset", "hoeffding_adaptive_tree")


def timed(function, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=float, default=1e7, help="records in all (1e7)")
    parser.add_argument("--repeat", type=int, default=2, help="best of this many timings")
    args = parser.parse_args()
    per_learner = int(args.records) // len(LEARNERS)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "run"
        start = time.perf_counter()
        write_prequential_folder(folder, LEARNERS, records_per_learner=per_learner, batch_size=1)
        written = time.perf_counter() - start
        size = (folder / "records.parquet").stat().st_size
        records = per_learner * len(LEARNERS)
        print(
            f"synthetic folder: {records:,} records, records.parquet {size / 1e6:.0f} MB "
            f"(written in {written:.1f} s)"
        )
        command = [sys.executable, "-m", "adaptloop", "report", str(folder)]
        cli = timed(lambda: subprocess.run(command, check=True, capture_output=True), args.repeat)
        in_process = timed(lambda: build_report(folder, Path(tmp) / "again.html"), args.repeat)
        full_read = timed(lambda: pd.read_parquet(folder / "records.parquet"), args.repeat)
    print(f"adaptloop report (CLI, fresh process): {cli:.2f} s")
    print(f"build_report (in process):             {in_process:.2f} s")
    print(f"pandas.read_parquet, all columns:      {full_read:.2f} s (peer)")
    print(f"report / full read: {cli / full_read:.2f}")
    print(
        json.dumps(
            {
                "records": records,
                "report_cli_seconds": round(cli, 3),
                "build_report_seconds": round(in_process, 3),
                "pandas_full_read_seconds": round(full_read, 3),
                "report_over_full_read": round(cli / full_read, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
