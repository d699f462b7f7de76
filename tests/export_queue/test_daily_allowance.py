"""The business unit's daily API allowance: read at the start of a sync, a reserve left for other integrations.

Every test runs the tap against a sandbox over loopback HTTP; the sandbox's account object
reports its daily limit and the calls used today, those spent by "other integrations"
(``api_calls_used_before``, ``Sandbox.state.daily``) included.
"""

from __future__ import annotations

import typing as t

from pardot_export_sandbox import DataConfig

from tests.helpers import discover, expected_rows, full_v5, iso, run_check, run_tap, select_streams
from tests.query_helpers import assert_exact, expected, run_query_streams
from tests.sandbox_runs import END, START, complete

STREAM = "list_membership"
#: the reserve's last line, as the run's last line says it
STOPPED = "The run stopped before the end of its range: api_call_reserve=0.1"


def small(fresh_sandbox: t.Any, **kw: t.Any) -> t.Any:
    data = DataConfig(start=START, end=END, rows={STREAM: 300})
    return fresh_sandbox(data=data, **kw)


def one_stream(sb: t.Any, **cfg: t.Any) -> tuple[dict[str, t.Any], dict[str, t.Any]]:
    config = sb.tap_config(window_days=30, **cfg)
    return config, select_streams(discover(config), [STREAM])


def last_line(stderr: str) -> str:
    return stderr.rstrip().splitlines()[-1]


def past_midnight(sb: t.Any) -> None:
    """Move the sandbox clock a day on, past the account's next midnight: its daily count starts again.

    A whole day: the export times the sandbox writes keep the offset the tap checks them against.
    """
    reset = sb.state.next_reset()
    sb.clock.advance(86_400)
    assert sb.clock.now() > reset


def test_the_reserve_stops_a_run_cleanly_and_the_run_after_the_reset_completes(fresh_sandbox):
    """Other integrations spent 880 of 1,000 calls: the reserve (100) leaves this run about 20."""
    sb = small(fresh_sandbox, daily_limit=1_000, api_calls_used_before=880)
    cfg, cat = one_stream(sb)
    run1 = run_tap(cfg, catalog=cat)
    assert run1.returncode == 0, run1.stderr[-2000:]  # as max_api_calls stops a run
    assert "Traceback" not in run1.stderr
    assert "API calls today: used 8" in run1.stderr and "of 1,000" in run1.stderr
    assert "reserve 100 (api_call_reserve=0.1)" in run1.stderr
    assert "api_call_reserve=0.1 (the business unit's daily allowance keeps 100 of its 1,000 calls" in run1.stderr
    last = last_line(run1.stderr)
    assert STOPPED in last and "State is saved" in last and "lower api_call_reserve" in last, last
    assert "API calls today at the end of the run: used " in run1.stderr
    assert sb.state.daily_calls <= 900, "the calls left never drop under the reserve"
    bookmark = run1.final_state["bookmarks"][STREAM]["replication_key_value"]
    assert iso(START) < bookmark < iso(END), "some windows done, not all"
    before = {k for k, v in expected_rows(sb, STREAM, START, END).items() if v["updated_at"] < bookmark}
    assert before <= {r["id"] for r in run1.records()}, "no bookmark past a row not emitted"
    again = run_tap(cfg, catalog=cat, state=run1.final_state)
    assert again.returncode == 0 and STOPPED in last_line(again.stderr)
    assert again.final_state["bookmarks"][STREAM]["replication_key_value"] == bookmark, "no room: no window"
    assert not again.records(), "a run without room starts nothing"
    past_midnight(sb)
    run2 = run_tap(cfg, catalog=cat, state=run1.final_state)
    assert run2.returncode == 0, run2.stderr[-2000:]
    assert "The run stopped" not in run2.stderr
    assert run2.final_state["bookmarks"][STREAM]["replication_key_value"] == iso(END)
    complete(sb, STREAM, [run1, run2])


def test_the_reserve_stops_query_pages_with_resumable_state(fresh_sandbox):
    """A query stream's pages are counted one by one: it stops at its bookmark, the next day's run completes."""
    sb = fresh_sandbox(daily_limit=1_000, data=full_v5())  # 14 pages of page views
    sb.state.daily({"used": 893})  # room for a few pages of the 14 this stream takes
    run1 = run_query_streams(sb, ["visitor_page_view"], max_concurrency=1)
    assert run1.returncode == 0, run1.stderr[-3000:]
    assert "visitor_page_view: api_call_reserve is spent: stopping here with resumable state" in run1.stderr
    assert STOPPED in last_line(run1.stderr)
    first = run1.records("visitor_page_view")
    mark = run1.final_state["bookmarks"]["visitor_page_view"]["replication_key_value"]
    assert first and mark < END.isoformat()
    assert max(r["created_at"] for r in first) >= mark, "no bookmark past a record not emitted"
    assert sb.state.daily_calls <= 900
    past_midnight(sb)
    run2 = run_query_streams(sb, ["visitor_page_view"], run1.final_state, max_concurrency=1)
    assert run2.returncode == 0, run2.stderr[-3000:]
    records = first + run2.records("visitor_page_view")
    assert_exact("visitor_page_view", records, expected(sb, "visitor_page_view"))
    assert len(records) == len(expected(sb, "visitor_page_view")), "nothing emitted twice"


def test_an_account_object_refused_only_warns(fresh_sandbox):
    sb = small(fresh_sandbox, v5_account_refusal=49, daily_limit=1_000, api_calls_used_before=990)
    sb.config.daily_limit = 100_000  # the account cannot say it; Pardot's limit is far away
    cfg, cat = one_stream(sb)
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    warned = [line for line in run.stderr.splitlines() if "allowance could not be read" in line]
    assert len(warned) == 1, warned
    assert "Admin > Account Settings > View" in warned[0] and "only max_api_calls caps it" in warned[0]
    assert "API calls today" not in run.stderr
    complete(sb, STREAM, [run])


def test_default_reserve_with_a_fresh_allowance_changes_nothing(fresh_sandbox):
    """A day's allowance of 100,000: the run completes as before, and max_api_calls still caps it (the lower holds)."""
    sb = small(fresh_sandbox)
    cfg, cat = one_stream(sb)
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "reserve 10,000 (api_call_reserve=0.1); this run's cap: api_call_reserve: 8" in run.stderr
    assert "The run stopped" not in run.stderr
    complete(sb, STREAM, [run])
    capped = run_tap({**cfg, "max_api_calls": 12}, catalog=cat)
    assert capped.returncode == 0, capped.stderr[-2000:]
    assert "this run's cap: max_api_calls=12" in capped.stderr
    assert "max_api_calls=12 leaves" in capped.stderr
    assert "The run stopped before the end of its range: max_api_calls=12" in last_line(capped.stderr)


def test_check_reports_the_allowance_and_whether_the_reserve_leaves_room(fresh_sandbox, tmp_path):
    sb = small(fresh_sandbox, daily_limit=50_000)
    cfg = sb.tap_config()
    fresh = run_check(cfg)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr[-2000:]
    line = next(x for x in fresh.stdout.splitlines() if "API calls today" in x)
    assert line.strip().startswith("OK")
    assert "of 50,000" in line and "reserve 5,000 (api_call_reserve=0.1)" in line
    assert "a sync may spend 44,9" in line
    sb.state.daily({"used": 45_500})
    spent = run_check(cfg)
    assert spent.returncode == 1
    line = next(x for x in spent.stdout.splitlines() if "API calls today" in x)
    assert line.strip().startswith("FAIL") and "the reserve leaves no room" in line and "lower api_call_reserve" in line
    sb.config.v5_account_refusal = 49
    blind = run_check(cfg)
    assert "NOTE  API allowance: the v5 account object did not say it (Pardot refused it with error 49" in blind.stdout
    failed = [x for x in blind.stdout.splitlines() if x.strip().startswith("FAIL")]
    assert len(failed) == 1 and "account: cannot read v5 account" in failed[0], "only the account stream's own line"


def test_a_reserve_out_of_range_is_refused_naming_the_setting(fresh_sandbox):
    sb = small(fresh_sandbox)
    cfg, cat = one_stream(sb)
    run = run_tap({**cfg, "api_call_reserve": 10}, catalog=cat)
    assert run.returncode != 0
    assert "api_call_reserve 10 is out of range" in run.stderr, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert "account_v5" not in sb.stats()["calls"]
