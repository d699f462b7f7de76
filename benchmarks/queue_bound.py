"""Benchmark: a queue-bound sync, where Pardot's export queue, not parsing, sets the wall time.

    .venv/bin/python benchmarks/queue_bound.py                   # 2 s per export, 2,000 rows per object
    .venv/bin/python benchmarks/queue_bound.py --export-seconds 1 --compare
    .venv/bin/python benchmarks/queue_bound.py --queries         # and the twenty query streams, 100 ms a page
    .venv/bin/python benchmarks/queue_bound.py --business-units 2 --repeat 3   # two business units side by side

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

``--business-units N`` is the fleet scenario of issue 21: N sandboxes, each its own business
unit (its own id, its own one-export-at-a-time queue, as above), first synced one at a time, then
by N tap processes started at once. It prints the wall time of the N side by side against the
slowest business unit's lower bound (its exports x per-export time) and against the slowest
business unit run alone. The business units share nothing in Pardot, so the N together should
take about as long as the slowest alone. ``--repeat K`` runs it K times and reports the medians.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import typing as t
from pathlib import Path

from bench import (  # same folder: run as benchmarks/queue_bound.py
    catalog_of,
    sandbox_config,
    sandbox_stats,
    sandbox_url,
)

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


def business_unit(k: int) -> str:
    """The id of the fleet's ``k``-th business unit (0: the sandbox's default one)."""
    return f"0Uv5e000000000{k + 1}AAA"


def start_sandbox(
    rows: int, seconds: float, page_seconds: float = 0.0, page_views: int | None = None, unit: int = 0
) -> tuple[subprocess.Popen[str], str]:
    """The sandbox process of business unit ``unit`` and its URL."""
    proc = subprocess.Popen(
        [
            PY,
            "-m",
            "pardot_export_sandbox.cli",
            "--business-unit-id",
            business_unit(unit),
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


def prepare(url: str, extra: dict[str, object], names: tuple[str, ...], unit: int = 0) -> list[str]:
    """The tap's command line for a sync of ``names`` (config, catalog and export record in a folder of its own)."""
    tmp = Path(tempfile.mkdtemp(prefix="pardot-queue-bench-"))
    cfg = sandbox_config(
        url,
        **{"max_poll_interval": 1, "business_unit_id": business_unit(unit), "record_dir": str(tmp / "record"), **extra},
    )
    (tmp / "config.json").write_text(json.dumps(cfg))
    (tmp / "catalog.json").write_text(json.dumps(catalog_of(tmp / "config.json", set(names))))
    return [PY, "-m", "tap_pardot_export", "--config", str(tmp / "config.json"), "--catalog", str(tmp / "catalog.json")]


def stats(url: str) -> dict[str, t.Any]:
    """The sandbox's counters."""
    return dict(sandbox_stats(url))


def measures(
    names: tuple[str, ...],
    extra: dict[str, object],
    seconds: float,
    s0: dict[str, t.Any],
    s1: dict[str, t.Any],
    wall: float,
    stderr: str,
) -> dict[str, object]:
    """One sync's measures, from the sandbox's counters before and after and the tap's log."""
    exports = len(s1["exports"]) - len(s0["exports"])
    calls = int(s1["api_calls"]) - int(s0["api_calls"])
    bound = exports * seconds
    sync_s = re.findall(r"run summary: .* ([\d.]+)s in all", stderr)
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
        "last_log_line": stderr.strip().splitlines()[-1].split("| ")[-1] if stderr.strip() else "",
    }


def sync(
    url: str, seconds: float, extra: dict[str, object], names: tuple[str, ...] = OBJECTS, unit: int = 0
) -> dict[str, object]:
    """Run one sync of ``names``; return its measures."""
    cmd = prepare(url, extra, names, unit)
    s0 = stats(url)
    cpu0 = children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"the tap failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return {
        **measures(names, extra, seconds, s0, stats(url), wall, proc.stderr),
        "tap_cpu_seconds": round(children_cpu() - cpu0, 2),
    }


def children_cpu() -> float:
    """CPU seconds (user and system) of the child processes ended so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return round(usage.ru_utime + usage.ru_stime, 2)


def side_by_side(urls: list[str], seconds: float) -> dict[str, object]:
    """One tap process per business unit, all started at once; the wall time until the last one ends."""
    cmds = [prepare(url, {}, OBJECTS, k) for k, url in enumerate(urls)]
    s0 = [stats(url) for url in urls]
    with contextlib.ExitStack() as stack:
        logs = [stack.enter_context(tempfile.TemporaryFile("w+")) for _ in urls]
        t0 = time.perf_counter()
        procs = [
            subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, text=True)
            for cmd, log in zip(cmds, logs, strict=True)
        ]
        ended: dict[int, float] = {}
        cpu: dict[int, float] = {}
        while len(ended) < len(procs):
            for k, proc in enumerate(procs):
                if k in ended:
                    continue
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    ended[k] = time.perf_counter() - t0
                    cpu[k] = round(usage.ru_utime + usage.ru_stime, 2)
                    proc.returncode = os.waitstatus_to_exitcode(status)
            time.sleep(0.02)
        walls = [ended[k] for k in range(len(procs))]
        wall = max(walls)
        units = []
        for k, (proc, log) in enumerate(zip(procs, logs, strict=True)):
            log.seek(0)
            stderr = log.read()
            if proc.returncode != 0:
                sys.exit(f"the tap of business unit {k} failed ({proc.returncode}):\n{stderr[-3000:]}")
            units.append(
                {**measures(OBJECTS, {}, seconds, s0[k], stats(urls[k]), walls[k], stderr), "tap_cpu_seconds": cpu[k]}
            )
    return {"wall_seconds": round(wall, 2), "business_units": units}


def fleet(urls: list[str], seconds: float) -> dict[str, object]:
    """Each business unit alone, then all side by side: the ratios of issue 21."""
    alone = [sync(url, seconds, {}, OBJECTS, k) for k, url in enumerate(urls)]
    together = side_by_side(urls, seconds)
    units = t.cast("list[dict[str, t.Any]]", together["business_units"])
    slowest_bound = max(float(u["lower_bound_seconds"]) for u in units)
    slowest_alone = max(float(t.cast("float", r["wall_seconds"])) for r in alone)
    wall = float(t.cast("float", together["wall_seconds"]))
    return {
        "alone_wall_seconds": [r["wall_seconds"] for r in alone],
        "alone_exports": [r["exports"] for r in alone],
        "alone_tap_cpu_seconds": [r["tap_cpu_seconds"] for r in alone],
        "side_by_side_wall_seconds": wall,
        "side_by_side_per_unit_wall_seconds": [u["wall_seconds"] for u in units],
        "side_by_side_exports": [u["exports"] for u in units],
        "side_by_side_tap_cpu_seconds": [u["tap_cpu_seconds"] for u in units],
        "slowest_lower_bound_seconds": slowest_bound,
        "slowest_alone_seconds": slowest_alone,
        "ratio_to_slowest_lower_bound": round(wall / slowest_bound, 2),
        "ratio_to_slowest_alone": round(wall / slowest_alone, 2),
    }


def fleet_medians(rounds: list[dict[str, t.Any]]) -> dict[str, object]:
    """The median of each figure over the rounds."""
    keys = (
        "side_by_side_wall_seconds",
        "slowest_alone_seconds",
        "slowest_lower_bound_seconds",
        "ratio_to_slowest_lower_bound",
        "ratio_to_slowest_alone",
    )
    return {f"median_{k}": round(statistics.median(float(r[k]) for r in rounds), 2) for k in keys}


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
    ap.add_argument(
        "--business-units",
        type=int,
        default=1,
        help="N > 1: N business units (sandboxes) alone, then side by side (the fleet scenario; max 9)",
    )
    ap.add_argument("--repeat", type=int, default=1, help="rounds of the fleet scenario; medians reported (default 1)")
    args = ap.parse_args()
    if args.business_units > 1:
        return run_fleet(args.business_units, args.rows, args.export_seconds, args.repeat)
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


def run_fleet(n: int, rows: int, seconds: float, repeat: int) -> int:
    """The fleet scenario: ``n`` business units, alone and side by side, ``repeat`` rounds; print the measures."""
    if not 2 <= n <= 9:
        sys.exit("--business-units takes 2 to 9")
    before = [round(x, 1) for x in os.getloadavg()]
    started = [start_sandbox(rows, seconds, unit=k) for k in range(n)]
    try:
        rounds = [fleet([url for _, url in started], seconds) for _ in range(max(repeat, 1))]
    finally:
        for proc, _ in started:
            proc.terminate()
            proc.wait(timeout=30)
    load = os.getloadavg()
    print(
        json.dumps(
            {
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
                "load_average_before": before,
                "load_average_after": [round(x, 1) for x in load],
                "business_units": n,
                "export_seconds": seconds,
                "rows_per_object": rows,
                **fleet_medians(rounds),
                "rounds": rounds,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
