"""Pardot's daily limit and max_api_calls: a run stops cleanly with a state the next run resumes from.

Error 122 stops the run without hammering a spent quota, and the run after the reset completes;
``max_api_calls`` ends a run with resumable state, also when it is less than one window costs.
Against the sandbox over loopback. The business unit's own allowance and its reserve are in
``test_daily_allowance.py``.
"""

from __future__ import annotations

import pytest

from tests.helpers import TapRun, assert_rows_match, expected_rows, run_tap
from tests.sandbox_runs import END, START, one_stream


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
