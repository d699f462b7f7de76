"""Benchmark: the tap's peak memory on the tests' scenarios, measured here rather than in the tests.

    .venv/bin/python benchmarks/peak_memory.py
    .venv/bin/python benchmarks/peak_memory.py --prospects 5000

Measures the sync that ``tests/wide/test_wide_streams.py::test_300_custom_fields_sync_row_exact_and_whole``
checks for correctness (the tests judge rows, not memory): ``pardot-export-sandbox`` with 1,200
prospects carrying 300 custom fields (about 350 fields: three field groups) over 2024, and the
tap's full sync of the prospect stream in 92-day windows (four windows, twelve exports). Also a
narrow sync of every stream of the sandbox's default data set, for comparison. Prints, per
scenario, the tap's wall time, records and peak RSS (VmHWM, the high-water mark of the tap's own
process: ``ru_maxrss`` would count the memory of the process it was forked from too).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import sandbox_config  # same folder: run as benchmarks/peak_memory.py

PY = sys.executable
MARK = "\npeak_rss_kib="
#: ``python -m tap_pardot_export`` that writes its peak RSS (KiB) as stderr's last line at exit
TAP = (
    "import atexit, runpy, sys\n"
    "def peak():\n"
    "    with open('/proc/self/status') as fh:\n"
    "        kib = next(line.split()[1] for line in fh if line.startswith('VmHWM:'))\n"
    f"    sys.stderr.write({MARK!r} + kib)\n"
    "atexit.register(peak)\n"
    "sys.argv[0] = 'tap-pardot-export'\n"
    "runpy.run_module('tap_pardot_export', run_name='__main__', alter_sys=True)\n"
)
YEAR = ("2024-01-01T00:00:00+00:00", "2025-01-01T00:00:00+00:00")


def measure(name: str, sandbox_args: list[str], streams: list[str] | None, **settings: object) -> dict[str, object]:
    """Start a sandbox with ``sandbox_args``, sync ``streams`` (all when None) and measure the tap."""
    cmd = [PY, "-m", "pardot_export_sandbox.cli", "--start", YEAR[0], "--end", YEAR[1], *sandbox_args]
    sandbox = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    tmp = Path(tempfile.mkdtemp(prefix="pardot-peak-"))
    try:
        url = sandbox.stdout.readline().strip() if sandbox.stdout is not None else ""
        cfg = sandbox_config(url, start_date=YEAR[0], end_date=YEAR[1], max_poll_interval=0.2, **settings)
        (tmp / "config.json").write_text(json.dumps(cfg))
        catalog = json.loads(
            subprocess.run(
                [PY, "-m", "tap_pardot_export", "--config", str(tmp / "config.json"), "--discover"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for entry in catalog["streams"]:
            for md in entry["metadata"]:
                if md["breadcrumb"] == []:
                    md["metadata"]["selected"] = streams is None or entry["tap_stream_id"] in streams
        (tmp / "catalog.json").write_text(json.dumps(catalog))
        t0 = time.perf_counter()
        proc = subprocess.run(
            [PY, "-c", TAP, "--config", str(tmp / "config.json"), "--catalog", str(tmp / "catalog.json")],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "TMPDIR": str(tmp)},
        )
        seconds = time.perf_counter() - t0
        err, _, peak = proc.stderr.rpartition(MARK)
        if proc.returncode != 0 or not peak:
            sys.exit(f"{name}: the tap failed ({proc.returncode}):\n{err[-3000:]}")
        records = sum(1 for line in proc.stdout.splitlines() if line.startswith('{"type":"RECORD"'))
        return {
            "scenario": name,
            "records": records,
            "tap_seconds": round(seconds, 2),
            "tap_peak_rss_mib": round(int(peak) / 1024, 1),
        }
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    """Run each scenario and print the results as JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prospects", type=int, default=1200, help="prospects of the wide scenario (default 1,200)")
    args = ap.parse_args()
    custom = [arg for k in range(300) for arg in ("--custom-field", f"Custom_Field_{k:03d}")]
    runs = [
        measure(
            f"{args.prospects} prospects, 300 custom fields, 92-day windows",
            ["--rows", f"prospect={args.prospects}", *custom],
            ["prospect"],
            window_days=92,
        ),
        measure("every stream of the default data set, 92-day windows", [], None, window_days=92),
    ]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(json.dumps({"machine": machine, "runs": runs}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
