"""Benchmark: a large event stream through the v5 query API, its windows read side by side.

    .venv/bin/python benchmarks/query_pages.py                         # 300,000 page views, 200 ms a page, 4 chains
    .venv/bin/python benchmarks/query_pages.py --rows 100000 --latency 0 --concurrency 2

Starts ``pardot-export-sandbox`` in its own process with ``--rows visitor_page_view=N`` over
2025 and ``--v5-page-latency`` (Pardot's pages take a second or more; 200 ms here), and runs the
tap on ``visitor_page_view`` alone (a catalog from its own discovery) to /dev/null with
``max_concurrency``. Prints the rows, pages and API calls, the wall time, the rows per second
and calls per 1,000 rows, and the bound ``ceil(rows / 1000) x latency / concurrency`` (every
page a full one, every chain busy all the time) with the ratio to it. ``--ideal`` also times a
plain client against the same sandbox (threads of requests and orjson, no typing, no state:
twelve equal windows, one chain each, ``concurrency`` at a time): on a small machine the sandbox's
own work per page (it computes each record) counts too, and the plain client shows that floor.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import typing as t
import urllib.parse
from pathlib import Path

import orjson
import requests
from bench import catalog_of, sandbox_config, sandbox_stats  # same folder: run as benchmarks/query_pages.py

PY = sys.executable
STREAM = "visitor_page_view"


def start_sandbox(rows: int, latency: float) -> tuple[subprocess.Popen[str], str]:
    """The sandbox process and its URL."""
    proc = subprocess.Popen(
        [
            PY,
            "-m",
            "pardot_export_sandbox.cli",
            "--rows",
            f"{STREAM}={rows}",
            "--start",
            "2025-01-01",
            "--end",
            "2026-01-01",
            "--timezone",
            "America/New_York",
            "--v5-page-latency",
            str(latency),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    if proc.stdout is None:  # pragma: no cover - stdout is a pipe
        sys.exit("the sandbox has no stdout")
    return proc, proc.stdout.readline().strip()


def sync(url: str, rows: int, latency: float, concurrency: int) -> dict[str, object]:
    """One sync of the page views; its measures."""
    tmp = Path(tempfile.mkdtemp(prefix="pardot-query-bench-"))
    (tmp / "config.json").write_text(json.dumps(sandbox_config(url, max_concurrency=concurrency)))
    (tmp / "catalog.json").write_text(json.dumps(catalog_of(tmp / "config.json", {STREAM})))

    s0 = sandbox_stats(url)
    t0 = time.perf_counter()
    with (tmp / "out.jsonl").open("wb") as out:  # a file: reading a pipe here would take the cores measured
        proc = subprocess.run(
            [
                PY,
                "-m",
                "tap_pardot_export",
                "--config",
                str(tmp / "config.json"),
                "--catalog",
                str(tmp / "catalog.json"),
            ],
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"the tap failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    with (tmp / "out.jsonl").open("rb") as fh:
        emitted = sum(1 for line in fh if line.startswith(b'{"type":"RECORD"'))
    if emitted != rows:
        sys.exit(f"the tap emitted {emitted} records, not {rows}")
    s1 = sandbox_stats(url)
    calls = s1["api_calls"] - s0["api_calls"]
    pages = s1["v5"]["pages"].get(STREAM, 0) - s0["v5"]["pages"].get(STREAM, 0)
    bound = math.ceil(rows / 1000) * latency / concurrency
    return {
        "rows": rows,
        "pages": pages,
        "api_calls": calls,
        "calls_per_1000_rows": round(calls / rows * 1000, 2),
        "wall_seconds": round(wall, 2),
        "rows_per_second": round(rows / wall),
        "bound_seconds": round(bound, 2),
        "ratio_wall_to_bound": round(wall / bound, 2) if bound else None,
    }


def ideal(url: str, rows: int, latency: float, concurrency: int) -> dict[str, object]:
    """A plain client's time for the same pages: the floor this sandbox and machine allow."""
    token = requests.post(
        url + "/services/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "client_id": "sandbox-client-id",
            "client_secret": "sandbox-client-secret",
            "refresh_token": "sandbox-refresh-token",
        },
        timeout=30,
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}", "Pardot-Business-Unit-Id": "0Uv5e0000000001AAA"}
    fields = "id,url,title,visitorId,visitId,campaignId,durationInSeconds,salesforceId,createdAt"
    start, end = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc), dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    edges = [start + (end - start) * k / 12 for k in range(13)]
    windows = list(itertools.pairwise(edges))
    lock, seen = threading.Lock(), [0, 0]

    def stamp(when: dt.datetime) -> str:
        return when.strftime("%Y-%m-%dT%H:%M:%S+00:00")

    def work() -> None:
        session = requests.Session()
        while True:
            with lock:
                if not windows:
                    return
                a, b = windows.pop(0)
            page: str | None = None
            while True:
                params = {"fields": fields}
                if page:
                    params["nextPageToken"] = page
                else:
                    params.update(
                        limit="1000",
                        orderBy="createdAt asc,id asc",
                        createdAtAfterOrEqualTo=stamp(a),
                        createdAtBefore=stamp(b),
                    )
                query = urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
                resp = session.get(f"{url}/api/v5/objects/visitor-page-views?{query}", headers=headers, timeout=60)
                body = orjson.loads(resp.content)
                with lock:
                    seen[0] += len(body["values"])
                    seen[1] += 1
                page = body["nextPageToken"]
                if not page:
                    break

    t0 = time.perf_counter()
    threads = [threading.Thread(target=work) for _ in range(concurrency)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    if seen[0] != rows:
        sys.exit(f"the plain client saw {seen[0]} records, not {rows}")
    bound = math.ceil(rows / 1000) * latency / concurrency
    return {
        "pages": seen[1],
        "wall_seconds": round(wall, 2),
        "ratio_wall_to_bound": round(wall / bound, 2) if bound else None,
    }


def main() -> int:
    """Run the scenario and print its measures as JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=300_000, help="visitor page views (default 300,000)")
    ap.add_argument("--latency", type=float, default=0.2, help="seconds per page (default 0.2)")
    ap.add_argument("--concurrency", type=int, default=4, help="max_concurrency (default 4)")
    ap.add_argument("--ideal", action="store_true", help="also time a plain client against the same sandbox")
    args = ap.parse_args()
    sandbox, url = start_sandbox(args.rows, args.latency)
    try:
        result = sync(url, args.rows, args.latency, args.concurrency)
        if args.ideal:
            plain = ideal(url, args.rows, args.latency, args.concurrency)
            result["plain_client"] = plain
            result["ratio_tap_to_plain_client"] = round(
                t.cast("float", result["wall_seconds"]) / t.cast("float", plain["wall_seconds"]), 2
            )
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=30)
    print(
        json.dumps(
            {
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
                "latency_seconds": args.latency,
                "max_concurrency": args.concurrency,
                **result,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
