"""Benchmark: the rerun after an interrupted sync whose state never reached the runner (issue 19.1).

    .venv/bin/python benchmarks/interrupted_rerun.py                  # 2 s per export, 18 exports
    .venv/bin/python benchmarks/interrupted_rerun.py --export-seconds 1

Starts ``pardot-export-sandbox`` in its own process (each export takes a fixed time, one at a
time, as Pardot runs an account's queue) and runs a six-stream sync in 122-day windows (three
per stream: 18 exports) with its output thrown away, as under ``meltano run`` after a Ctrl-C
that stops the target too: no state reaches anyone. The sync gets SIGINT once most of its
exports are Complete; then the same sync runs again without state, twice over: with the
export record the interrupted run kept, and with no record (its folder blocked, so the
interrupted run cancels its exports on the signal and the rerun finds nothing: the tap as it
was before the record). Prints the exports each rerun created and reused and its wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import sandbox_config, sandbox_stats  # same folder: run as benchmarks/interrupted_rerun.py
from queue_bound import start_sandbox

PY = sys.executable
EXPORTS = 18


def tap(config: Path) -> list[str]:
    """The tap's command line with ``config``."""
    return [PY, "-m", "tap_pardot_export", "--config", str(config)]


def interrupted(url: str, config: Path, complete: int) -> None:
    """A sync, SIGINT once ``complete`` exports of it are Complete."""
    seen = {int(k) for k in sandbox_stats(url)["exports"]}
    proc = subprocess.Popen(tap(config), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None:
        mine = {int(k): v for k, v in sandbox_stats(url)["exports"].items() if int(k) not in seen}
        if sum(e["state"] == "Complete" for e in mine.values()) >= complete:
            proc.send_signal(signal.SIGINT)
            break
        time.sleep(0.1)
    proc.wait(timeout=60)


def rerun(url: str, config: Path) -> dict[str, object]:
    """The sync again, without state; its measures."""
    before = len(sandbox_stats(url)["exports"])
    t0 = time.perf_counter()
    proc = subprocess.run(tap(config), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"the rerun failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    summary = re.search(r"run summary: (\d+) export\(s\) created, (\d+) reused", proc.stderr)
    return {
        "exports_created": len(sandbox_stats(url)["exports"]) - before,
        "exports_reused": int(summary.group(2)) if summary else None,
        "wall_seconds": round(wall, 2),
    }


def scenario(url: str, with_record: bool, complete: int) -> dict[str, object]:  # noqa: FBT001 - a script
    """An interrupted sync and its rerun, with or without the export record."""
    folder = Path(tempfile.mkdtemp(prefix="pardot-rerun-bench-"))
    record = folder / "record"
    if not with_record:  # a folder where the record's file goes: nothing can be recorded
        (record / "0Uv5e0000000001AAA.json" / "in-the-way").mkdir(parents=True)
    config = folder / "config.json"
    config.write_text(json.dumps(sandbox_config(url, window_days=122, max_poll_interval=1, record_dir=str(record))))
    interrupted(url, config, complete)
    return {"record": with_record, **rerun(url, config)}


def main() -> int:
    """Run both scenarios and print their measures as JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--export-seconds", type=float, default=2.0, help="processing time of one export (default 2)")
    ap.add_argument("--complete", type=int, default=15, help="interrupt once this many exports are Complete")
    args = ap.parse_args()
    sandbox, url = start_sandbox(500, args.export_seconds)
    try:
        runs = [scenario(url, with_record, args.complete) for with_record in (True, False)]
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=30)
    print(
        json.dumps(
            {
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
                "export_seconds": args.export_seconds,
                "exports_per_sync": EXPORTS,
                "interrupted_after_complete": args.complete,
                "reruns": runs,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
