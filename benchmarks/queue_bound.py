"""Benchmark: a queue-bound sync, where Pardot's export queue, not parsing, sets the wall time.

    .venv/bin/python benchmarks/queue_bound.py                   # 2 s per export, 2,000 rows per object
    .venv/bin/python benchmarks/queue_bound.py --export-seconds 1 --compare
    .venv/bin/python benchmarks/queue_bound.py --queries         # and the twenty query streams, 100 ms a page

Starts ``pardot-export-sandbox`` in its own process, where each export takes a fixed time
to process and exports run one at a time (as Pardot runs an account's queue), with a small
account (2,000 rows of each of the six objects over one year), and runs a full six-stream
sync of the tap to /dev/null with its defaults (windows sized by the data, one export
queued ahead). Prints the exports created, the API calls, the wall time and the lower bound
(exports x per-export time) with their ratio. ``--compare`` also runs the tap as it was
before (30-day windows, one export at a time: ``window_days: 30, max_queued_exports: 0``).

``--queries`` adds the scenario of issue 20: the six export streams and the twenty query streams
(``--page-seconds`` per v5 page, 100 ms by default; ``--page-views N`` makes the query part as
long as the exports) in one sync, against each part run alone
(the exports, then the query streams), with the wall time's ratio to the export lower bound, to
the larger part and to the sum of the parts: the query streams are read while Pardot processes
the exports, so the sync should take about as long as the larger part.
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
import typing as t
from pathlib import Path

from bench import sandbox_config, sandbox_stats, sandbox_url  # same folder: run as benchmarks/queue_bound.py

PY = sys.executable
OBJECTS = ("prospect", "visitor", "visitor_activity", "list_membership", "prospect_account", "external_activity")
#: the twenty query streams of issue 20 (the dimensions and the event-like streams)
QUERIES = (
    "campaign",
    "list",
    "list_email",
    "email_template",
    "user",
    "landing_page",
    "opportunity",
    "form",
    "form_handler",
    "custom_field",
    "custom_redirect",
    "file",
    "lifecycle_stage",
    "tag",
    "tagged_object",
    "folder",
    "email",
    "visit",
    "visitor_page_view",
    "lifecycle_history",
)


def start_sandbox(
    rows: int, seconds: float, page_seconds: float = 0.0, page_views: int | None = None
) -> tuple[subprocess.Popen[str], str]:
    """The sandbox process and its URL."""
    proc = subprocess.Popen(
        [
            PY,
            "-m",
            "pardot_export_sandbox.cli",
            *[arg for name in OBJECTS for arg in ("--rows", f"{name}={rows}")],
            *(["--rows", f"visitor_page_view={page_views}"] if page_views else []),
            "--start",
            "2025-01-01",
            "--end",
            "2026-01-01",
            "--timezone",
            "America/New_York",
            "--processing-seconds",
            str(seconds),
            "--v5-page-latency",
            str(page_seconds),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    return proc, sandbox_url(proc)


def catalog_of(config: Path, names: set[str]) -> dict[str, object]:
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


def sync(url: str, seconds: float, extra: dict[str, object], names: tuple[str, ...] = OBJECTS) -> dict[str, object]:
    """Run one sync of ``names``; return its measures."""
    tmp = Path(tempfile.mkdtemp(prefix="pardot-queue-bench-"))
    cfg = sandbox_config(url, **{"max_poll_interval": 1, **extra})
    (tmp / "config.json").write_text(json.dumps(cfg))
    (tmp / "catalog.json").write_text(json.dumps(catalog_of(tmp / "config.json", set(names))))

    s0 = sandbox_stats(url)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [PY, "-m", "tap_pardot_export", "--config", str(tmp / "config.json"), "--catalog", str(tmp / "catalog.json")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"the tap failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    s1 = sandbox_stats(url)
    exports = len(s1["exports"]) - len(s0["exports"])
    calls = s1["api_calls"] - s0["api_calls"]
    bound = exports * seconds
    sync_s = re.findall(r"run summary: .* ([\d.]+)s in all", proc.stderr)
    return {
        "streams": "exports" if names == OBJECTS else "queries" if names == QUERIES else "exports and queries",
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


def overlap(exports: dict[str, object], queries: dict[str, object], both: dict[str, object]) -> dict[str, object]:
    """How the sync of both compares with its parts run apart."""
    parts = [float(t.cast("float", r["wall_seconds"])) for r in (exports, queries)]
    wall = float(t.cast("float", both["wall_seconds"]))
    return {
        "overlap": "exports and queries in one sync, against the parts run apart",
        "wall_seconds": wall,
        "export_lower_bound_seconds": both["lower_bound_seconds"],
        "ratio_to_export_lower_bound": both["ratio_wall_to_bound"],
        "ratio_to_larger_part": round(wall / max(parts), 2),
        "ratio_to_sum_of_parts": round(wall / sum(parts), 2),
    }


def main() -> int:
    """Run the scenario and print its measures as JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2000, help="rows of each object (default 2,000)")
    ap.add_argument("--export-seconds", type=float, default=2.0, help="processing time of one export (default 2)")
    ap.add_argument("--compare", action="store_true", help="also run with 30-day windows, one export at a time")
    ap.add_argument(
        "--queries", action="store_true", help="also the twenty query streams: alone, then with the exports"
    )
    ap.add_argument("--page-seconds", type=float, default=0.1, help="seconds per v5 page with --queries (default 0.1)")
    ap.add_argument("--page-views", type=int, help="visitor page views (default: the sandbox's 12,000)")
    args = ap.parse_args()
    sandbox, url = start_sandbox(
        args.rows, args.export_seconds, args.page_seconds if args.queries else 0.0, args.page_views
    )
    try:
        results = [sync(url, args.export_seconds, {})]
        if args.compare:
            results.append(sync(url, args.export_seconds, {"window_days": 30, "max_queued_exports": 0}))
        if args.queries:
            results.append(sync(url, args.export_seconds, {}, QUERIES))
            results.append(sync(url, args.export_seconds, {}, OBJECTS + QUERIES))
            results.append(overlap(results[0], results[-2], results[-1]))
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
