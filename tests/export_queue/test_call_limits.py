"""Pardot's daily limit and max_api_calls: a run stops cleanly with a state the next run resumes from.

Error 122 stops the run without hammering a spent quota, and the run after the reset completes;
``max_api_calls`` ends a run with resumable state, also when it is less than one window costs.
Against the sandbox over loopback. The business unit's own allowance and its reserve are in
``test_daily_allowance.py``.
"""

from __future__ import annotations

import pytest

from tests.helpers import TapRun, assert_rows_match, expected_rows, iso, run_tap
from tests.sandbox_runs import END, START, complete, one_stream, small


def test_daily_limit_stops_cleanly_and_resumes_after_the_reset(fresh_sandbox):
    # Pardot's own limit (error 122), on an account that does not say its allowance (the reserve would stop first)
    sb = small(fresh_sandbox, daily_limit=14, v5_account_refusal=49)
    cfg, cat = one_stream(sb, "list_membership", window_days=60)
    run1 = run_tap(cfg, catalog=cat)
    assert run1.returncode != 0
    assert "daily API call limit is spent (error 122)" in run1.stderr and "It resets at" in run1.stderr
    assert "Traceback" not in run1.stderr
    assert sb.stats()["errors"] == {"49": 1, "122": 1}, "the tap does not hammer a spent quota"
    bookmark = run1.final_state["bookmarks"]["list_membership"]["replication_key_value"]
    # the run got some windows done, not all: the bookmark lies strictly inside the range
    assert iso(START) < bookmark < iso(END)
    # the state covers only what was emitted: every row before the bookmark has arrived
    before = {k for k, v in expected_rows(sb, "list_membership", START, END).items() if v["updated_at"] < bookmark}
    assert before <= {r["id"] for r in run1.records()}
    sb.clock.advance(86400)
    run2 = run_tap(cfg, catalog=cat, state=run1.final_state)
    assert run2.returncode == 0, run2.stderr[-2000:]
    complete(sb, "list_membership", [run1, run2])


def test_max_api_calls_finishes_cleanly_with_resumable_state(fresh_sandbox):
    sb = small(fresh_sandbox)
    cfg, cat = one_stream(sb, "list_membership", window_days=30, max_api_calls=12)
    run1 = run_tap(cfg, catalog=cat)
    assert run1.returncode == 0, run1.stderr[-2000:]
    assert "max_api_calls=12 leaves" in run1.stderr
    assert sb.stats()["api_calls"] <= 12
    mark = run1.final_state["bookmarks"]["list_membership"]["replication_key_value"]
    assert "2024-01-31" <= mark < "2025-01-01"
    runs = [run1]
    for _ in range(10):
        cfg["max_api_calls"] = 20
        run = run_tap(cfg, catalog=cat, state=runs[-1].final_state)
        assert run.returncode == 0
        runs.append(run)
        if run.final_state["bookmarks"]["list_membership"]["replication_key_value"] == "2025-01-01T00:00:00+00:00":
            break
    complete(sb, "list_membership", runs)


def test_a_budget_below_one_window_still_reaches_the_end(sandboxes):
    """max_api_calls=10 (the least allowed) is less than a window of ~11 files costs: each run still finishes one."""
    sb = sandboxes(rows_per_file=4)
    cfg, cat = one_stream(sb, "list_membership", window_days=60, max_api_calls=10)
    runs: list[TapRun] = []
    state = None
    for _ in range(10):
        run = run_tap(cfg, catalog=cat, state=state)
        assert run.returncode == 0, run.stderr[-2000:]
        runs.append(run)
        state = run.final_state
        if state["bookmarks"]["list_membership"]["replication_key_value"] == "2025-01-01T00:00:00+00:00":
            break
    else:
        pytest.fail("10 runs with a small budget did not reach the end of the range")
    assert len(runs) <= 8, "each run finishes at least one of the 7 windows"
    calls = sb.stats()["calls"]
    per_window = (calls["create"] + calls["read"] + calls["download"]) / calls["create"]
    assert per_window > 10, f"a window costs {per_window:.1f} calls: more than the budget, as the test means"
    records = [r for run in runs for r in run.records("list_membership")]
    expected = expected_rows(sb, "list_membership", START, END)
    assert_rows_match(sb, "list_membership", records, expected, sb.config.data.timezone)
