"""A stream's failure is that stream's: the other selected streams still sync (issue 18.1).

The failed stream keeps its bookmark where its emitted rows allow and its exports in flight in its
state; the run exits non-zero naming every failed stream in its last line. ``fail_fast: true``
restores stopping at the first failed stream. A failure every stream would meet (the daily limit,
dead credentials) still ends the run at once.
"""

from __future__ import annotations

import datetime as dt

from tests.helpers import assert_rows_match, discover, expected_rows, run_tap, select_streams

UTC = dt.timezone.utc
START, END = dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2025, 1, 1, tzinfo=UTC)
#: the SDK syncs streams in this order
STREAMS = ["list_membership", "prospect_account", "visitor"]


def last_line(stderr: str) -> str:
    return [line for line in stderr.splitlines() if line.strip()][-1]


def assert_synced(sb, run, stream: str) -> None:
    assert_rows_match(sb, stream, run.records(stream), expected_rows(sb, stream, START, END), sb.config.data.timezone)
    assert run.final_state["bookmarks"][stream]["replication_key_value"] == END.isoformat()


def test_a_stream_whose_field_the_account_refuses_fails_alone(fresh_sandbox):
    sb = fresh_sandbox(missing_fields={"prospect_account": ["updated_at"]})  # the replication key: cannot be dropped
    cfg = sb.tap_config(window_days=365)
    run = run_tap(cfg, catalog=select_streams(discover(cfg), STREAMS))
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    line = last_line(run.stderr)
    assert "1 stream(s) failed: prospect_account." in line and "updated_at" in line, line
    assert "prospect_account failed: " in run.stderr and "the other selected streams go on" in run.stderr
    assert run.records("prospect_account") == []
    assert "replication_key_value" not in run.final_state["bookmarks"].get("prospect_account", {})
    for stream in ("list_membership", "visitor"):
        assert_synced(sb, run, stream)


def test_the_first_stream_failing_again_and_again_does_not_stop_the_later_ones(fresh_sandbox):
    sb = fresh_sandbox()
    # list_membership's export Fails three times: it gives up (the other streams' exports do not fail). One export
    # at a time: with the next window's created ahead, the three failures could fall on two windows, neither
    # failing three times (a run on a loaded machine did that, and exited 0)
    sb.inject("fail_export", count=3, op="create", object="listMembership")
    cfg = sb.tap_config(window_days=365, max_queued_exports=0)
    run = run_tap(cfg, catalog=select_streams(discover(cfg), STREAMS))
    assert run.returncode == 1
    assert "1 stream(s) failed: list_membership." in last_line(run.stderr)
    assert "Failed 3 times" in run.stderr
    for stream in ("prospect_account", "visitor"):
        assert_synced(sb, run, stream)


def test_several_failed_streams_are_all_named(fresh_sandbox):
    sb = fresh_sandbox(missing_fields={"prospect_account": ["updated_at"], "visitor": ["id"]})
    cfg = sb.tap_config(window_days=365)
    run = run_tap(cfg, catalog=select_streams(discover(cfg), STREAMS))
    assert run.returncode == 1
    assert "2 stream(s) failed: prospect_account, visitor." in last_line(run.stderr)
    assert_synced(sb, run, "list_membership")


def test_fail_fast_stops_at_the_first_failed_stream(fresh_sandbox):
    sb = fresh_sandbox(missing_fields={"prospect_account": ["updated_at"]})
    cfg = sb.tap_config(window_days=365, fail_fast=True)
    run = run_tap(cfg, catalog=select_streams(discover(cfg), STREAMS))
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert "stream(s) failed" not in run.stderr
    assert_synced(sb, run, "list_membership")
    assert run.records("visitor") == [], "fail_fast: the streams after the failed one are not synced"


def test_a_failure_every_stream_would_meet_ends_the_run_at_once(fresh_sandbox):
    # the token, the refused account read, a create: then error 122 for everyone (the account does not say its
    # allowance, so no reserve stops the run first)
    sb = fresh_sandbox(daily_limit=3, v5_account_refusal=49)
    cfg = sb.tap_config(window_days=365)
    run = run_tap(cfg, catalog=select_streams(discover(cfg), STREAMS))
    assert run.returncode == 1
    assert "daily API call limit" in last_line(run.stderr)
    assert "stream(s) failed" not in run.stderr
    assert run.records("visitor") == []
