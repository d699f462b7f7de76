"""Benchmark: a queue-bound sync, where Pardot's export queue, not parsing, sets the wall time.

    .venv/bin/python benchmarks/queue_bound.py                   # 2 s per export, 2,000 rows per object
    .venv/bin/python benchmarks/queue_bound.py --export-seconds 1 --compare

Starts ``pardot-export-sandbox`` in its own process, where each export takes a fixed time
to process and exports run one at a time (as Pardot runs an account's queue), with a small
account (2,000 rows of each of the six objects over one year), and runs a full six-stream
sync of the tap to /dev/null with its defaults (windows sized by the data, one export
queued ahead). Prints the exports created, the API calls, the wall time and the lower bound
(exports x per-export time) with their ratio. ``--compare`` also runs the tap as it was
before (30-day windows, one export at a time: ``window_days: 30, max_queued_exports: 0``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from bench import sandbox_config  # same folder: run as benchmarks/queue_bound.py

PY = sys.executable
OBJECTS = ("prospect", "visitor", "visitor_activity", "list_membership", "prospect_account", "external_activity")


def start_sandbox(rows: int, seconds: float) -> tuple[subprocess.Popen[str], str]:
    """The sandbox process and its URL."""
    proc = subprocess.Popen(
        [
            PY,
            "-m",
            "pardot_export_sandbox.cli",
            *[arg for name in OBJECTS for arg in ("--rows", f"{name}={rows}")],
            "--start",
            "2025-01-01",
            "--end",
            "2026-01-01",
            "--timezone",
            "America/New_York",
            "--processing-seconds",
            str(seconds),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    if proc.stdout is None:  # pragma: no cover - stdout is a pipe
        sys.exit("the sandbox has no stdout")
    return proc, proc.stdout.readline().strip()


def sync(url: str, seconds: float, extra: dict[str, object]) -> dict[str, object]:
    """Run one full sync; return its measures."""
    tmp = Path(tempfile.mkdtemp(prefix="pardot-queue-bench-"))
    cfg = sandbox_config(url, **{"max_poll_interval": 1, **extra})
    (tmp / "config.json").write_text(json.dumps(cfg))

    def stats() -> dict[str, object]:
        return requests.get(url + "/_sandbox/stats", timeout=10).json()

    s0 = stats()
    t0 = time.perf_counter()
    proc = subprocess.run(
        [PY, "-m", "tap_pardot_export", "--config", str(tmp / "config.json")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"the tap failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    s1 = stats()
    exports = len(s1["exports"]) - len(s0["exports"])  # type: ignore[arg-type]
    calls = int(s1["api_calls"]) - int(s0["api_calls"])  # type: ignore[call-overload]
    bound = exports * seconds
    sync_s = re.findall(r"run summary: .* ([\d.]+)s in all", proc.stderr)
    return {
        "settings": extra or "defaults",
        "exports": exports,
        "api_calls": calls,
        "wall_seconds": round(wall, 2),
        "sync_seconds": float(sync_s[-1]) if sync_s else None,
        "lower_bound_seconds": round(bound, 2),
        "ratio_wall_to_bound": round(wall / bound, 2) if bound else None,
        "ratio_sync_to_bound": round(float(sync_s[-1]) / bound, 2) if sync_s and bound else None,
        "last_log_line": proc.stderr.strip().splitlines()[-1].split("| ")[-1] if proc.stderr.strip() else "",
    }


def main() -> int:
    """Run the scenario and print its measures as JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2000, help="rows of each object (default 2,000)")
    ap.add_argument("--export-seconds", type=float, default=2.0, help="processing time of one export (default 2)")
    ap.add_argument("--compare", action="store_true", help="also run with 30-day windows, one export at a time")
    args = ap.parse_args()
    sandbox, url = start_sandbox(args.rows, args.export_seconds)
    try:
        results = [sync(url, args.export_seconds, {})]
        if args.compare:
            results.append(sync(url, args.export_seconds, {"window_days": 30, "max_queued_exports": 0}))
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=30)
    print(
        json.dumps(
            {
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
                "export_seconds": args.export_seconds,
                "rows_per_object": args.rows,
                "runs": results,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
