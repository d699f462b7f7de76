"""What a real account does to page chains, and the query streams surviving it, over HTTP against the sandbox.

The token chain cap (Pardot-Warning 203, no token), bursts of records sharing one second, tokens
expiring, strict parameters (refused fields, a refused date filter), limits shared with the
exports (concurrency, the daily limit, max_api_calls), windows read side by side, and a run
killed mid-stream resumed without loss.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import signal
from dataclasses import replace

import pytest
from pardot_export_sandbox import DataConfig

from tests.helpers import BackgroundTap, discover, drain, full_v5, select_streams
from tests.query_helpers import END, START, UTC, assert_exact, by_id, expected, run_query_streams
from tests.singer_messages import whole_lines
from tests.taps import BOUND, SIGTERM_EXIT, Tap


@pytest.fixture
def fresh_sandbox(fresh_sandbox):
    """This module's sandboxes keep the v5 objects at the sandbox's sizes: bursts and chains past the caps."""

    def factory(rows=None, **kw):
        data = full_v5(kw.pop("data", None))
        return fresh_sandbox(data=replace(data, rows={**data.rows, **(rows or {})}), **kw)

    return factory


#: for tests about answers, not volume: two pages of emails
FEW_EMAILS = {"email": 1_500}


def served(sb, name: str) -> tuple[int, int, int]:
    """Pages served, records served and chains stopped at their cap, for ``name``."""
    v5 = sb.stats()["v5"]
    return v5["pages"].get(name, 0), v5["records"].get(name, 0), v5["capped"].get(name, 0)


@pytest.mark.parametrize(
    ("name", "cap"),
    [
        ("email", 700),  # the cap falls inside sends of 2,000 emails sharing one sentAt
        ("visit", 300),  # and inside a mass update of 500 visits sharing one updatedAt
        ("visitor_page_view", 2_500),
        ("campaign", 7),  # a dimension's whole first read, by id
        ("folder_content", 40),  # a whole table
    ],
)
def test_the_chain_cap_is_requeried_from_the_last_key_without_loss_or_loop(fresh_sandbox, name, cap):
    sb = fresh_sandbox(v5_chain_cap=cap)
    bursts = [b for b in sb.v5.bursts(name) if b["size"] > cap]
    assert bursts or name not in ("email", "visit"), "the cap must fall inside a burst"
    run = run_query_streams(sb, [name], max_concurrency=1)
    assert run.returncode == 0, run.stderr[-3000:]
    want = expected(sb, name)
    assert_exact(name, run.records(name), want)
    _, records, capped = served(sb, name)
    assert capped >= len(want) // cap - 1 >= 1, "chains stopped at the cap"
    assert records <= len(want) + 2 * capped, "a re-query starts at the last key read, not before"
    assert len(run.records(name)) == len(want), "no record twice"


def test_an_incremental_read_over_a_burst_resumes_within_its_second(fresh_sandbox):
    """A dimension's changes read (by updatedAt) with a mass update larger than the cap: all of it, once."""
    sb = fresh_sandbox(v5_chain_cap=150)
    run1 = run_query_streams(sb, ["opportunity"])
    assert run1.returncode == 0, run1.stderr[-3000:]
    at = dt.datetime(2025, 1, 5, tzinfo=UTC)
    ids = list(range(80_000, 80_400))
    sb.v5_update("opportunity", ids, {"stage": "Negotiation"}, at=at)  # a mass update: 400 share one second
    run2 = run_query_streams(sb, ["opportunity"], run1.final_state, end_date="2025-02-01T00:00:00Z")
    assert run2.returncode == 0, run2.stderr[-3000:]
    assert sorted(r["id"] for r in run2.records("opportunity")) == ids
    assert served(sb, "opportunity")[2] >= 2
    want = expected(sb, "opportunity")
    assert_exact(
        "opportunity", list((by_id(run1.records("opportunity")) | by_id(run2.records("opportunity"))).values()), want
    )


def test_expired_page_tokens_are_requeried_from_the_last_key(fresh_sandbox):
    """Every token expires at once (a TTL of 0 s on the sandbox's clock): each next page is a new query."""
    sb = fresh_sandbox(v5_token_ttl=0)
    names = ["email", "visitor_page_view", "folder_content"]
    run = run_query_streams(sb, names, max_concurrency=1)
    assert run.returncode == 0, run.stderr[-3000:]
    for name in names:
        assert_exact(name, run.records(name), expected(sb, name))
    assert sb.state.errors[210] >= 10


def test_a_field_the_account_refuses_is_dropped_with_one_warning(fresh_sandbox):
    sb = fresh_sandbox(
        v5_refused_fields={"form": ["salesforceCmsId", "url"], "email": ["salesforceCmsId"]}, rows=FEW_EMAILS
    )
    run = run_query_streams(sb, ["form", "email"])
    assert run.returncode == 0, run.stderr[-3000:]
    for name, refused in (("form", ["salesforce_cms_id", "url"]), ("email", ["salesforce_cms_id"])):
        want = expected(sb, name)
        for rec in want.values():
            rec.update(dict.fromkeys(refused, None))
        assert_exact(name, run.records(name), want)
    assert run.stderr.count("this account refuses the field 'salesforceCmsId'") == 2
    assert run.stderr.count("this account refuses the field 'url'") == 1


@pytest.mark.parametrize("name", ["campaign", "email"])
def test_an_object_refusing_its_date_filter_is_read_whole_by_id_with_one_warning(fresh_sandbox, name):
    """Read whole by id, each record's date checked against the range: the same records, one warning a run."""
    sb = fresh_sandbox(rows=FEW_EMAILS)
    sb.v5.obj(name).date_field = None  # this account's object takes id filters only, and sorts on id only
    run1 = run_query_streams(sb, [name], start_date="2024-03-01T00:00:00Z")
    assert run1.returncode == 0, run1.stderr[-3000:]
    assert_exact(name, run1.records(name), expected(sb, name, start=dt.datetime(2024, 3, 1, tzinfo=UTC)))
    added = [r["id"] for r in sb.v5_add(name, 2, at=dt.datetime(2025, 1, 10, tzinfo=UTC))]
    run2 = run_query_streams(sb, [name], run1.final_state, end_date="2025-02-01T00:00:00Z")
    assert run2.returncode == 0, run2.stderr[-3000:]
    assert sorted(r["id"] for r in run2.records(name)) == added, "the range read, not the whole object, is emitted"
    for run in (run1, run2) if name == "email" else (run2,):  # a dimension's first run is whole anyway
        assert run.stderr.count("is read whole by id instead") == 1, run.stderr[-2000:]


@pytest.mark.parametrize("kind", ["http_504", "code_202", "code_214", "code_66", "http_503"])
def test_answers_a_retry_fixes_are_retried(fresh_sandbox, instant_retries, kind):
    sb = fresh_sandbox(rows=FEW_EMAILS)
    sb.inject(kind, count=3, op="query_v5")
    sb.inject(kind, count=2, op="account_v5")  # the daily allowance's read, then the account stream's
    run = run_query_streams(sb, ["account", "tag", "email"])
    assert run.returncode == 0, run.stderr[-3000:]
    for name in ("tag", "email"):
        assert_exact(name, run.records(name), expected(sb, name))
    assert len(run.records("account")) == 1
    assert len(instant_retries.slept) >= 5
    assert "allowance could not be read" not in run.stderr, "a retried read is read"


def test_requests_stay_within_max_concurrency_with_exports_and_windows_side_by_side(fresh_sandbox):
    """Exports' calls, downloads and query pages together never pass max_concurrency (no error 66)."""
    sb = fresh_sandbox(
        max_concurrent=3,
        v5_page_latency=0.1,
        processing_seconds=0.2,
        rows_per_file=40,
        rows={"email": 1_500, "visitor_page_view": 3_000},
    )
    names = ["visitor_page_view", "email", "prospect", "visitor", "visitor_activity", "list_membership"]
    run = run_query_streams(sb, names, max_concurrency=3, window_days=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert sb.state.errors[66] == 0
    assert sb.state.max_inflight_seen <= 3
    for name in ("visitor_page_view", "email"):
        assert_exact(name, run.records(name), expected(sb, name))


def test_event_windows_are_read_side_by_side_and_emitted_in_order(fresh_sandbox):
    data = DataConfig(start=START, end=END, rows={"visitor_page_view": 20_000})
    sb = fresh_sandbox(v5_page_latency=0.05, data=data)
    run = run_query_streams(sb, ["visitor_page_view"], max_concurrency=4)
    assert run.returncode == 0, run.stderr[-3000:]
    records = run.records("visitor_page_view")
    assert_exact("visitor_page_view", records, expected(sb, "visitor_page_view"))
    assert sb.state.max_inflight_seen >= 3, "several chains at once"
    keys = [r["created_at"] for r in records]
    assert keys == sorted(keys), "windows are emitted in order"
    values = [s["bookmarks"]["visitor_page_view"].get("replication_key_value") for s in run.states()]
    moved = [v for v in values if v]
    assert moved == sorted(moved) and len(set(moved)) > 5, "the bookmark moves over each page, forward only"


def test_the_daily_limit_stops_the_run_cleanly_and_a_rerun_resumes(fresh_sandbox):
    # discovery's two calls, the allowance's read (refused: the account does not say it, so no reserve stops the
    # run before Pardot's limit), then three pages of emails
    sb = fresh_sandbox(daily_limit=6, v5_account_refusal=49)
    run1 = run_query_streams(sb, ["email"], max_concurrency=1)
    assert run1.returncode != 0 and "daily API call limit is spent (error 122)" in run1.stderr
    assert "Traceback" not in run1.stderr
    first = run1.records("email")
    state = run1.final_state["bookmarks"]["email"]
    assert 0 < len(first) < 6_000 and state["replication_key_value"] > START.isoformat()
    assert max(r["sent_at"] for r in first) >= state["replication_key_value"], "no bookmark past a record not emitted"
    sb.state.daily_calls = -10_000  # the next day
    run2 = run_query_streams(sb, ["email"], run1.final_state)
    assert run2.returncode == 0, run2.stderr[-3000:]
    assert_exact("email", first + run2.records("email"), expected(sb, "email"))
    assert len(first) + len(run2.records("email")) == 6_000, "nothing emitted twice"


def test_max_api_calls_counts_query_pages_and_stops_with_resumable_state(fresh_sandbox):
    sb = fresh_sandbox()
    records, state, runs = [], None, 0
    while runs < 10:
        runs += 1
        calls0 = sb.stats()["api_calls"]
        run = run_query_streams(sb, ["visitor_page_view"], state, max_api_calls=10, max_concurrency=1)
        assert run.returncode == 0, run.stderr[-3000:]
        assert sb.stats()["api_calls"] - calls0 <= 12
        records += run.records("visitor_page_view")
        state = run.final_state
        if state["bookmarks"]["visitor_page_view"]["replication_key_value"] == END.isoformat():
            break
        assert "max_api_calls is spent: stopping here with resumable state" in run.stderr
    assert runs >= 2
    assert_exact("visitor_page_view", records, expected(sb, "visitor_page_view"))
    assert len(records) == len(expected(sb, "visitor_page_view")), "nothing emitted twice"


def test_a_run_killed_mid_stream_resumes_without_loss_losing_at_most_a_page_chain(fresh_sandbox):
    sb = fresh_sandbox(v5_page_latency=0.05)
    cfg = sb.tap_config(max_concurrency=1)
    cat = select_streams(discover(cfg), ["email"])
    tap = BackgroundTap(cfg, cat)
    count = [0]

    def enough(msg) -> bool:
        count[0] += msg["type"] == "RECORD"
        return count[0] >= 2_500  # inside the second send's burst of 2,000 emails sharing one sentAt

    assert tap.read_until(enough)
    tap.proc.send_signal(signal.SIGKILL)
    rest = drain(tap.proc)
    tap.err.close()
    lines = [*tap.lines, *rest.splitlines(keepends=True)]
    messages = [json.loads(line) for line in lines if line.endswith("\n")]  # a kill may cut the last line
    first = [m["record"] for m in messages if m["type"] == "RECORD"]
    state = [m["value"] for m in messages if m["type"] == "STATE"][-1]
    assert state["bookmarks"]["email"].get("last_id"), "the bookmark holds the last id within its second"
    run2 = run_query_streams(sb, ["email"], state)
    assert run2.returncode == 0, run2.stderr[-3000:]
    assert_exact("email", first + run2.records("email"), expected(sb, "email"))
    again = set(by_id(first)) & set(by_id(run2.records("email")))
    assert len(again) <= 1_000, f"{len(again)} records sent again: more than a page"


def test_query_pages_are_read_while_pardot_processes_the_exports(fresh_sandbox):
    """The query streams' pages are served between export completions: the reads overlap the export queue."""
    sb = fresh_sandbox(processing_seconds=0.5, v5_page_latency=0.05, rows_per_file=500)
    seen: list[int] = []
    sb.after_export(lambda export: seen.append(sb.stats()["calls"].get("query_v5", 0)))
    names = ["prospect", "visitor", "visitor_activity", "email", "visitor_page_view", "campaign"]
    run = run_query_streams(sb, names, window_days=200)
    assert run.returncode == 0, run.stderr[-3000:]
    total = sb.stats()["calls"]["query_v5"]
    assert seen and any(0 < a < b for a, b in itertools.pairwise(seen)), (seen, total)
    for name in ("email", "visitor_page_view", "campaign"):
        assert_exact(name, run.records(name), expected(sb, name))


def test_sigterm_mid_stream_writes_the_state_whole_and_a_rerun_resumes(fresh_sandbox):
    """SIGTERM while query pages are read in the background: the workers stop, the last STATE is whole."""
    sb = fresh_sandbox(v5_page_latency=0.05)
    cfg = sb.tap_config(max_concurrency=2)
    names = ["email", "visitor_page_view"]
    tap = Tap(cfg, select_streams(discover(cfg), names))
    count = [0]

    def enough(msg) -> bool:
        count[0] += msg["type"] == "RECORD"
        return count[0] >= 3_000

    assert tap.read_until(enough)
    run, took = tap.term_and_wait()
    assert took < BOUND and run.returncode == SIGTERM_EXIT, run.stderr[-2000:]
    messages = whole_lines(run)
    assert messages[-1]["type"] == "STATE" and "Traceback" not in run.stderr
    first = [m for m in messages if m["type"] == "RECORD"]
    assert tap.left == [], "no spool file is left behind"
    run2 = run_query_streams(sb, names, messages[-1]["value"])
    assert run2.returncode == 0, run2.stderr[-3000:]
    for name in names:
        got = [m["record"] for m in first if m["stream"] == name] + run2.records(name)
        assert_exact(name, got, expected(sb, name))
