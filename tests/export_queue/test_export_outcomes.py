"""Exports Pardot fails, cancels, expires or never finishes: created again a bounded number of times, or given up on.

Against the sandbox over loopback: a Failed export is created again, twice at most, then an error
names it; a Canceled one and one that expired while its files were read are created again; one
that never finishes hits ``export_timeout`` and is canceled.
"""

from __future__ import annotations

from tests.helpers import run_tap
from tests.sandbox_runs import complete, one_stream, small


def test_failed_exports_are_created_again_a_bounded_number_of_times(fresh_sandbox):
    sb = small(fresh_sandbox)
    sb.inject("fail_export", count=2)
    cfg, cat = one_stream(sb, "list_membership", window_days=400 // 2)
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stderr.count("Failed; creating it again") == 2
    complete(sb, "list_membership", [run])
    sb2 = small(fresh_sandbox)
    sb2.inject("fail_export", count=3)
    # the next window's export waits for this one's end: the three Failed are all this window's
    run = run_tap(sb2.tap_config(window_days=400 // 2, max_queued_exports=0), catalog=cat)
    assert run.returncode != 0
    failed = [k for k, v in sb2.stats()["exports"].items() if v["state"] == "Failed"]
    assert f"export {failed[-1]} Failed 3 times" in run.stderr and "contact Salesforce support" in run.stderr


def test_canceled_and_expired_exports_are_created_again(fresh_sandbox):
    sb = small(fresh_sandbox, rows_per_file=50)
    sb.inject("cancel_export")
    sb.inject("expire_export", op="download")
    cfg, cat = one_stream(sb, "list_membership", window_days=400 // 2)
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "is Canceled; creating it again" in run.stderr
    assert "expired while its files were read" in run.stderr
    complete(sb, "list_membership", [run])


def test_an_export_that_never_finishes_hits_the_deadline(fresh_sandbox):
    sb = small(fresh_sandbox, waiting_seconds=60)
    cfg, cat = one_stream(sb, "list_membership", export_timeout=1)
    run = run_tap(cfg, catalog=cat)
    assert run.returncode != 0
    (eid,) = sb.stats()["exports"]
    assert f"export {eid} did not finish within export_timeout=1s" in run.stderr
    assert sb.stats()["exports"][eid]["state"] == "Canceled", "the tap cancels what it gives up on"
