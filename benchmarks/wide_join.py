"""Benchmark: prospects wider than an export, joined by id on disk.

    .venv/bin/python benchmarks/wide_join.py                       # 100,000 and 300,000 prospects
    .venv/bin/python benchmarks/wide_join.py --rows 50000 --custom-fields 450

Starts ``pardot-export-sandbox`` with N prospects carrying 300 custom fields (about 350 fields
in all: three field groups), warms its result cache with one untimed sync, then times a full
sync of the prospect stream to /dev/null in one window (``window_days: 365``). Prints, per
size: the tap's wall time and rows/s, the join's own throughput (from the tap's "joined ..."
log line: records joined and emitted per second, after the groups were spooled), the seconds
spent typing and spooling the groups, the disk spool's size, the tap's peak RSS and the API
calls. Two sizes show whether memory stays flat as the export grows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import requests
from bench import catalog_of, run_measured, sandbox_config  # same folder: run as benchmarks/wide_join.py

PY = sys.executable
JOINED = re.compile(
    r"joined (\d+) record\(s\) from (\d+) field groups: spooled in ([\d.]+)s, joined and emitted in ([\d.]+)s "
    r"\((\d+) records/s\), ([\d.]+) MiB of disk spool"
)


def measure(rows: int, custom_fields: int) -> dict[str, object]:
    """One size: start a sandbox, warm its cache, time the tap's sync of the wide prospect stream."""
    names = [f"Custom_Field_{k:03d}" for k in range(custom_fields)]
    cache = tempfile.mkdtemp(prefix="pardot-wide-cache-")
    cmd = [PY, "-m", "pardot_export_sandbox.cli", "--rows", f"prospect={rows}", "--rows-per-file", "100000"]
    cmd += ["--start", "2025-01-01", "--end", "2026-01-01", "--cache-dir", cache]
    for name in names:
        cmd += ["--custom-field", name]
    sandbox = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    tmp: Path | None = None
    try:
        url = sandbox.stdout.readline().strip() if sandbox.stdout is not None else ""
        tmp = Path(tempfile.mkdtemp(prefix="pardot-wide-"))
        (tmp / "config.json").write_text(json.dumps(sandbox_config(url, window_days=365, max_poll_interval=0.5)))
        catalog = catalog_of(tmp / "config.json", {"prospect"})
        fields = len(next(e for e in catalog["streams"] if e["tap_stream_id"] == "prospect")["schema"]["properties"])
        (tmp / "catalog.json").write_text(json.dumps(catalog))
        tap = [PY, "-m", "tap_pardot_export", "--config", str(tmp / "config.json")]
        tap += ["--catalog", str(tmp / "catalog.json")]
        print(f"{rows} prospects, {fields} fields: warming the sandbox's result cache...", file=sys.stderr)
        run_measured(tap)

        def calls() -> int:
            return int(requests.get(url + "/_sandbox/stats", timeout=10).json()["api_calls"])

        c0 = calls()
        seconds, rss, err = run_measured(tap, env={"TMPDIR": str(tmp)})
        joins = [m.groups() for m in JOINED.finditer(err)]
        joined = sum(int(j[0]) for j in joins)
        summary = re.search(r"prospect: summary: (\d+) row\(s\)", err)
        if not joins or summary is None or int(summary.group(1)) != joined:
            sys.exit(f"the tap's joins do not add up to its rows:\n{err[-3000:]}")
        join_s = sum(float(j[3]) for j in joins)
        return {
            "prospects": rows,
            "records": joined,  # the live ones: the sandbox keeps some in the recycle bin
            "fields": fields,
            "field_groups": int(joins[0][1]),
            "tap_seconds": round(seconds, 2),
            "tap_rows_per_s": round(joined / seconds),
            "spool_seconds": round(sum(float(j[2]) for j in joins), 2),
            "join_seconds": round(join_s, 2),
            "join_records_per_s": round(joined / join_s) if join_s else None,
            "spool_mib": round(max(float(j[5]) for j in joins), 1),
            "tap_peak_rss_mib": round(rss, 1),
            "api_calls": calls() - c0,
        }
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=30)
        shutil.rmtree(cache, ignore_errors=True)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    """Run the benchmark at each size and print the results as JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, action="append", help="prospects, repeatable (default 100,000 and 300,000)")
    ap.add_argument("--custom-fields", type=int, default=300, help="custom prospect fields (default 300)")
    args = ap.parse_args()
    results = [measure(rows, args.custom_fields) for rows in args.rows or [100_000, 300_000]]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(json.dumps({"machine": machine, "runs": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
