"""The HTTP transport: at most max_concurrency requests in flight, proxies from the environment, no netrc.

Against the sandbox (downloads slowed so they overlap) and the fake Pardot of
``tests/fake_pardot.py`` on loopback.
"""

from __future__ import annotations

from tests.helpers import run_tap
from tests.sandbox_runs import complete, one_stream, small


def test_requests_in_flight_never_exceed_max_concurrency(fresh_sandbox):
    sb = small(fresh_sandbox, rows_per_file=20)
    sb.inject("slow", count=12, op="download", seconds=0.1)  # long enough for downloads to overlap
    cfg, cat = one_stream(sb, "visitor_activity", window_days=400 // 2, max_concurrency=2)
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    assert sb.stats()["max_inflight"] == 2, "downloads run in parallel, two at a time"
    complete(sb, "visitor_activity", [run])
