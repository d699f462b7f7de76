"""Benchmark: the tap against a plain-Python loop over the same sandbox exports.

    .venv/bin/python benchmarks/bench.py                 # one million visitor activities
    .venv/bin/python benchmarks/bench.py --rows 10000000 --skip-baseline
    .venv/bin/python benchmarks/bench.py --batch         # also time BATCH output (jsonl.gz files)
    .venv/bin/python benchmarks/bench.py --business-unit-key   # with business_unit_id in every record and key

Starts ``pardot-export-sandbox`` in its own process with N visitor activity rows (all fields,
several result files, no export wait), runs a full sync of the tap to /dev/null, then the
baseline (benchmarks/baseline.py) over the same windows, and prints rows/s of both, their
ratio, MB/s of CSV, the tap's peak RSS, and the API calls the sync cost. The queue-bound
scenario (few rows, slow exports: what real accounts see) is benchmarks/queue_bound.py.
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
from typing import TYPE_CHECKING, Any, TypedDict, cast

import requests

if TYPE_CHECKING:
    import resource

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def rss_mib_of(pid_rusage: resource.struct_rusage) -> float:
    """Peak RSS in MiB from a child's rusage."""
    return pid_rusage.ru_maxrss / 1024  # Linux reports KiB


def run_measured(
    cmd: list[str], *, stdout: int | None = subprocess.DEVNULL, env: dict[str, str] | None = None
) -> tuple[float, float, str]:
    """Run a command; return (seconds, peak RSS MiB, stderr)."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        environ = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # both sides buffered
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=err, env={**environ, **(env or {})})
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        err.seek(0)
        text = err.read().decode(errors="replace")
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"{cmd[2:4]} failed ({code}):\n{text[-3000:]}")
    return seconds, rss_mib_of(usage), text


class ExportStats(TypedDict):
    """One export in the sandbox's counters."""

    state: str
    object: str
    rows: int
    files: int


class V5Stats(TypedDict):
    """The sandbox's v5 query counters, by object."""

    pages: dict[str, int]
    records: dict[str, int]
    capped: dict[str, int]


class SandboxStats(TypedDict):
    """The sandbox's counters (``/_sandbox/stats``; JSON, so the export ids are strings)."""

    calls: dict[str, int]
    api_calls: int
    errors: dict[str, int]
    max_inflight: int
    exports: dict[str, ExportStats]
    v5: V5Stats


def sandbox_stats(url: str) -> SandboxStats:
    """The counters of the sandbox at ``url``."""
    return cast("SandboxStats", requests.get(url + "/_sandbox/stats", timeout=10).json())


def catalog_of(config: Path, names: set[str]) -> dict[str, Any]:
    """The tap's discovered catalog with only ``names`` selected."""
    out = subprocess.run(
        [PY, "-m", "tap_pardot_export", "--config", str(config), "--discover"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    catalog = json.loads(out)
    for entry in catalog["streams"]:
        for md in entry["metadata"]:
            if md["breadcrumb"] == []:
                md["metadata"]["selected"] = entry["tap_stream_id"] in names
    return catalog


def sandbox_url(proc: subprocess.Popen[str]) -> str:
    """The URL a sandbox started with ``stdout=PIPE`` prints first."""
    if proc.stdout is None:  # pragma: no cover - stdout is a pipe
        sys.exit("the sandbox has no stdout")
    return proc.stdout.readline().strip()


def sandbox_config(url: str, **extra: object) -> dict[str, object]:
    """A tap config for a sandbox at ``url`` (its default credentials), over the year 2025."""
    return {
        "api_url": url,
        "login_url": url,
        "business_unit_id": "0Uv5e0000000001AAA",
        "client_id": "sandbox-client-id",
        "client_secret": "sandbox-client-secret",
        "refresh_token": "sandbox-refresh-token",
        "timezone": "America/New_York",
        "start_date": "2025-01-01T00:00:00+00:00",
        "end_date": "2026-01-01T00:00:00+00:00",
        "poll_interval": 0.05,
        **extra,
    }


def expect_rows(seen: int, rows: int, who: str) -> None:
    """Stop the benchmark when a side did not see every row."""
    if seen != rows:
        sys.exit(f"{who} saw {seen} rows, expected {rows}")


def parse_args() -> argparse.Namespace:
    """The command line."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000, help="visitor activity rows (default 1,000,000)")
    ap.add_argument("--rows-per-file", type=int, default=100_000, help="rows per result file (default 100,000)")
    ap.add_argument("--skip-baseline", action="store_true", help="time the tap only")
    ap.add_argument(
        "--no-cache",
        action="store_true",
        help="no warm-up: the sandbox renders rows while they are downloaded (measures the sandbox too)",
    )
    ap.add_argument("--batch", action="store_true", help="also time BATCH output (jsonl + gzip, local files)")
    ap.add_argument(
        "--business-unit-key", action="store_true", help="the tap with business_unit_key on (the column in every row)"
    )
    return ap.parse_args()


def main() -> int:
    """Run the benchmark and print its results as JSON."""
    args = parse_args()

    sandbox = subprocess.Popen(
        [
            PY,
            "-m",
            "pardot_export_sandbox.cli",
            "--rows",
            f"visitor_activity={args.rows}",
            "--rows-per-file",
            str(args.rows_per_file),
            "--start",
            "2025-01-01",
            "--end",
            "2026-01-01",
            "--timezone",
            "America/New_York",
            *([] if args.no_cache else ["--cache-dir", tempfile.mkdtemp(prefix="pardot-bench-cache-")]),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = sandbox_url(sandbox)
        tmp = Path(tempfile.mkdtemp())
        unit = {"business_unit_key": True} if args.business_unit_key else {}
        cfg = sandbox_config(url, window_days=365, max_poll_interval=0.5, **unit)
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
                    md["metadata"]["selected"] = entry["tap_stream_id"] == "visitor_activity"
        (tmp / "catalog.json").write_text(json.dumps(catalog))

        def calls() -> int:
            return sandbox_stats(url)["api_calls"]

        tap_cmd = [
            PY,
            "-m",
            "tap_pardot_export",
            "--config",
            str(tmp / "config.json"),
            "--catalog",
            str(tmp / "catalog.json"),
        ]
        windows = [
            ["2024-12-31T23:59:59+00:00", "2025-12-31T23:59:59+00:00"],
            ["2025-12-31T23:59:58+00:00", "2026-01-01T00:00:00+00:00"],
        ]
        base_cmd = [
            PY,
            str(ROOT / "benchmarks" / "baseline.py"),
            str(tmp / "config.json"),
            "visitor_activity",
            "visitorActivity",
            "filter_by_updated_at",
            "updated_after",
            "updated_before",
            json.dumps(windows),
        ]
        # Warm-up: the sandbox renders the result files once and serves both timed runs from
        # disk, so neither timing includes the sandbox's own row generation.
        if not args.no_cache:
            print(f"warming the sandbox's result cache ({args.rows} rows)...", file=sys.stderr)
            run_measured(base_cmd)
        c0 = calls()
        tap_s, tap_rss, tap_err = run_measured(tap_cmd)
        tap_calls = calls() - c0
        summary = [line for line in tap_err.splitlines() if "summary:" in line]
        print(summary[-1].split("| ")[-1] if summary else "(no summary line)")
        rows = args.rows
        waited = sum(float(x) for x in re.findall(r"done: waited ([\d.]+)s", tap_err))
        result: dict[str, object] = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "rows": rows,
            "tap_seconds": round(tap_s, 2),
            "tap_rows_per_s": round(rows / tap_s),
            "tap_peak_rss_mib": round(tap_rss, 1),
            "tap_api_calls": tap_calls,
            "tap_export_wait_s": round(waited, 1),
        }
        if not args.skip_baseline:
            base_s, base_rss, base_err = run_measured(base_cmd)
            info = json.loads(base_err.strip().splitlines()[-1])
            expect_rows(info["rows"], rows, "baseline")
            result.update(
                baseline_seconds=round(base_s, 2),
                baseline_rows_per_s=round(rows / base_s),
                ratio_tap_to_baseline=round(base_s / tap_s, 2),
                csv_mb=round(info["bytes"] / 1e6, 1),
                tap_csv_mb_per_s=round(info["bytes"] / 1e6 / tap_s, 1),
                baseline_peak_rss_mib=round(base_rss, 1),
            )
        if args.batch:
            bcfg = {
                **cfg,
                "batch_config": {
                    "encoding": {"format": "jsonl", "compression": "gzip"},
                    "storage": {"root": f"file://{tmp}/batches", "prefix": "va-"},
                },
            }
            (tmp / "batch.json").write_text(json.dumps(bcfg))
            b_s, b_rss, _ = run_measured(
                [
                    PY,
                    "-m",
                    "tap_pardot_export",
                    "--config",
                    str(tmp / "batch.json"),
                    "--catalog",
                    str(tmp / "catalog.json"),
                ]
            )
            result.update(
                batch_seconds=round(b_s, 2), batch_rows_per_s=round(rows / b_s), batch_peak_rss_mib=round(b_rss, 1)
            )
            if "baseline_seconds" in result:
                result["ratio_batch_to_baseline"] = round(cast("float", result["baseline_seconds"]) / b_s, 2)
        print(json.dumps(result, indent=2))
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
