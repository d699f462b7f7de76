"""Whole syncs against the sandbox over HTTP: correct to the row.

Every stream over several windows and multi-file exports, rows on the range's and the windows'
edges, every answer shape, an export without result files, the switch of API version on error 89,
deselected fields left out of the request, the SDK's metrics, and a catalog asking for a full
table sync.
"""

from __future__ import annotations

import datetime as dt
import json

from tests.helpers import (
    CUSTOM,
    STREAMS,
    assert_rows_match,
    created_fields,
    deselect_field,
    discover,
    expected_rows,
    iso,
    last_export_id,
    run_tap,
    select_streams,
)

UTC = dt.timezone.utc


def test_full_sync_of_all_streams_matches_the_sandbox(sandbox):
    """Several windows, multi-file exports, a zone with daylight saving: exactly the sandbox's rows."""
    start, end = dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2025, 1, 1, tzinfo=UTC)
    cfg = sandbox.tap_config(window_days=92, custom_fields=CUSTOM)
    before = sandbox.stats()["calls"].get("create", 0)
    run = run_tap(cfg)
    assert run.returncode == 0, run.stderr[-3000:]
    creates = sandbox.stats()["calls"]["create"] - before
    assert creates == len(STREAMS) * 4  # 366 days in 92-day windows: 4 windows per stream
    files = [e["files"] for e in sandbox.stats()["exports"].values()]
    assert max(files) > 1, "the test should exercise multi-file exports"
    for stream in STREAMS:
        exp = expected_rows(sandbox, stream, start, end)
        assert len(exp) > 50
        assert_rows_match(sandbox, stream, run.records(stream), exp, sandbox.config.data.timezone)
    # datetimes are RFC 3339 with an offset, integers are integers, booleans are booleans
    rec = run.records("prospect")[0]
    assert rec["updated_at"].endswith("+00:00")
    assert isinstance(rec["id"], int) and isinstance(rec["opted_out"], bool)


def test_records_on_start_date_window_edges_and_end_date(sandbox):
    """start_date is inclusive, end_date exclusive, a row exactly on a window edge arrives once."""
    obj = sandbox.dataset.objects["visitor_activity"]
    upd = obj.times["updated_at"][0]
    days = sorted({upd(i) for i in range(obj.count) if upd(i) % 86400 == 0})
    assert len(days) >= 3, "the sandbox stamps rows on midnights"
    # the three consecutive such midnights closest together: few one-day windows to run
    k = min(range(len(days) - 2), key=lambda j: days[j + 2] - days[j])
    first, edge, last = (next(i for i in range(obj.count) if upd(i) == day) for day in days[k : k + 3])
    start = dt.datetime.fromtimestamp(upd(first), UTC)
    end = dt.datetime.fromtimestamp(upd(last), UTC)
    assert (dt.datetime.fromtimestamp(upd(edge), UTC) - start).days >= 1
    cfg = sandbox.tap_config(window_days=1, start_date=iso(start), end_date=iso(end))
    cfg["stream_options"] = {"visitor_activity": {"window_days": 1}}
    cat = select_streams(discover(cfg), ["visitor_activity"])
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    ids = [r["id"] for r in run.records()]
    assert obj.base_id + first in ids, "a row stamped exactly on start_date must arrive"
    assert obj.base_id + edge in ids, "a row stamped exactly on a window edge must arrive"
    assert ids.count(obj.base_id + edge) == 1
    assert obj.base_id + last not in ids, "end_date is exclusive"
    assert_rows_match(
        sandbox,
        "visitor_activity",
        run.records(),
        expected_rows(sandbox, "visitor_activity", start, end),
        sandbox.config.data.timezone,
    )


def test_every_answer_shape_and_bom_are_accepted(fresh_sandbox):
    """Wrapped, @attributes and bare answers in rotation; resultRefs as a string and a list; BOMs."""
    sb = fresh_sandbox(response_style="mixed", bom=True, rows_per_file=40)
    cfg = sb.tap_config(window_days=120)
    cat = select_streams(discover(cfg), ["visitor", "external_activity"])
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    for stream in ("visitor", "external_activity"):
        exp = expected_rows(sb, stream, dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2025, 1, 1, tzinfo=UTC))
        assert_rows_match(sb, stream, run.records(stream), exp, sb.config.data.timezone)
    files = [e["files"] for e in sb.stats()["exports"].values()]
    assert 1 in files and max(files) > 1


def test_complete_export_without_result_refs_means_no_rows(sandbox):
    cfg = sandbox.tap_config(start_date="2025-06-01T00:00:00+00:00", end_date="2025-07-01T00:00:00+00:00")
    cat = select_streams(discover(cfg), ["prospect_account"])
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.records() == []
    assert "no result files" in run.stderr
    assert run.final_state["bookmarks"]["prospect_account"]["replication_key_value"] == "2025-07-01T00:00:00+00:00"


def test_version_switch_on_error_89(fresh_sandbox):
    sb = fresh_sandbox(api_version=3)
    cfg = sb.tap_config(api_version=4, window_days=400 // 2)
    cat = select_streams(discover(cfg), ["list_membership"])
    errors = sb.stats()["errors"].get("89", 0)  # discovery's custom field query switches too
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "needs API version 3" in run.stderr
    assert sb.stats()["errors"] == {"89": errors + 1}
    assert len(run.records()) == len(
        expected_rows(sb, "list_membership", dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2025, 1, 1, tzinfo=UTC))
    )


def test_deselected_fields_are_not_requested(sandbox):
    """A deselected field is left out of the export's fields (not requested and dropped)."""
    cfg = sandbox.tap_config(window_days=400 // 2)
    cat = deselect_field(select_streams(discover(cfg), ["visitor"]), "visitor", "hostname")
    since = last_export_id(sandbox)
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    created = created_fields(sandbox, since)
    assert len(created) == 2, "one export per window"
    for fields in created.values():
        assert "hostname" not in fields, "a deselected field was requested"
        assert {"id", "ip_address", "updated_at"} <= set(fields)
    recs = run.records("visitor")
    assert recs and all("hostname" not in r for r in recs)
    assert all("ip_address" in r for r in recs)


def test_the_sdks_metrics_time_every_api_call_and_every_export_wait(sandbox):
    """Meltano users see http_request_duration and job_duration, as for other SDK taps."""
    cfg = sandbox.tap_config(window_days=365, end_date="2024-03-01T00:00:00+00:00")
    run = run_tap(cfg, catalog=select_streams(discover(cfg), ["prospect_account"]))
    assert run.returncode == 0, run.stderr[-2000:]
    points = [json.loads(line.split("METRIC: ", 1)[1]) for line in run.stderr.splitlines() if "METRIC: " in line]
    requests = [p for p in points if p["metric"] == "http_request_duration"]
    assert {p["tags"]["endpoint"] for p in requests} >= {"create", "read", "download"}
    assert all(p["tags"]["http_status_code"] == 200 and p["value"] >= 0 for p in requests)
    waits = [p for p in points if p["metric"] == "job_duration"]
    assert waits, "no export wait was timed"
    assert all(
        p["tags"] == {"stream": "prospect_account", "job_type": "export_wait", "status": "succeeded"} for p in waits
    )


def test_a_catalog_asking_for_a_full_table_sync_reads_the_whole_range_without_bookmarks(sandbox):
    """Found: replication-method FULL_TABLE in the catalog failed with 'no start_date'."""
    start, end = dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2025, 1, 1, tzinfo=UTC)
    cfg = sandbox.tap_config(window_days=200)
    cat = select_streams(discover(cfg), ["list_membership"])
    entry = next(e for e in cat["streams"] if e["tap_stream_id"] == "list_membership")
    entry["replication_method"] = "FULL_TABLE"  # as Meltano's `replication-method` extra writes it
    state = {"bookmarks": {"list_membership": {"replication_key": "updated_at",
                                               "replication_key_value": "2024-06-01T00:00:00+00:00"}}}  # fmt: skip
    run = run_tap(cfg, catalog=cat, state=state)
    assert run.returncode == 0, run.stderr[-3000:]
    exp = expected_rows(sandbox, "list_membership", start, end)
    assert_rows_match(sandbox, "list_membership", run.records("list_membership"), exp, sandbox.config.data.timezone)
