"""End-to-end syncs against the sandbox over HTTP: correct to the row."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from tap_pardot_export.spec import SPECS
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


def test_dst_rows_are_converted_with_the_offset_of_their_date(sandbox):
    """A summer row is read at UTC-4, a winter row at UTC-5 (America/New_York)."""
    cfg = sandbox.tap_config(window_days=200, start_date="2024-01-01T00:00:00+00:00")
    cat = select_streams(discover(cfg), ["visitor_activity"])
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    exp = expected_rows(
        sandbox, "visitor_activity", dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2025, 1, 1, tzinfo=UTC)
    )
    got = {r["id"]: r for r in run.records("visitor_activity")}
    months = {dt.datetime.fromisoformat(v["created_at"]).month for v in exp.values()}
    assert {1, 7} <= months
    for rid, v in exp.items():
        if dt.datetime.fromisoformat(v["created_at"]).month in (1, 7):
            assert got[rid]["created_at"] == v["created_at"]


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


def test_state_is_checkpointed_after_each_window_in_ascending_order(sandbox):
    cfg = sandbox.tap_config(window_days=60)
    cat = select_streams(discover(cfg), ["list_membership"])
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0
    marks: list[str] = []
    for st in run.states():
        v = st.get("bookmarks", {}).get("list_membership", {}).get("replication_key_value")
        if v and (not marks or marks[-1] != v):
            marks.append(v)
    assert len(marks) == 7  # 366 days / 60
    assert marks == sorted(marks)
    assert marks[-1] == "2025-01-01T00:00:00+00:00"
    # each record lies inside the window after the last checkpoint emitted before it
    last = "2024-01-01T00:00:00+00:00"
    for m in run.messages:
        if m["type"] == "STATE":
            last = m["value"]["bookmarks"].get("list_membership", {}).get("replication_key_value") or last
        elif m["type"] == "RECORD":
            assert m["record"]["updated_at"] >= last


def test_incremental_run_resumes_from_state_and_loses_nothing(sandbox):
    """Run 1 stops at a cut; run 2 starts from its state; together they are the whole range."""
    obj = sandbox.dataset.objects["prospect"]
    upd = obj.times["updated_at"][0]
    stamps = sorted(upd(i) for i in range(obj.count))
    cut = dt.datetime.fromtimestamp(stamps[len(stamps) // 2], UTC)  # a row sits exactly on the bookmark
    cfg = sandbox.tap_config(window_days=90, end_date=iso(cut), custom_fields=CUSTOM)
    cat = select_streams(discover(cfg), ["prospect"])
    run1 = run_tap(cfg, catalog=cat)
    assert run1.returncode == 0, run1.stderr[-2000:]
    state = run1.final_state
    assert state["bookmarks"]["prospect"]["replication_key_value"] == iso(cut)
    cfg2 = {**cfg, "end_date": "2025-01-01T00:00:00+00:00"}
    run2 = run_tap(cfg2, catalog=cat, state=state)
    assert run2.returncode == 0, run2.stderr[-2000:]
    ids2 = {r["id"] for r in run2.records()}
    assert min(r["updated_at"] for r in run2.records()) >= iso(cut)
    on_cut = [obj.base_id + i for i in range(obj.count) if upd(i) == int(cut.timestamp()) and not obj.is_deleted(i)]
    assert on_cut and set(on_cut) <= ids2, "the row on the bookmark arrives in the next run"
    exp = expected_rows(sandbox, "prospect", dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2025, 1, 1, tzinfo=UTC))
    assert_rows_match(sandbox, "prospect", run1.records() + run2.records(), exp, sandbox.config.data.timezone)


def test_timezone_unset_infers_offset_and_warns_once(fresh_sandbox):
    from pardot_export_sandbox import DataConfig

    sb = fresh_sandbox(
        rows_per_file=100,
        data=DataConfig(
            start=dt.datetime(2024, 1, 1, tzinfo=UTC), end=dt.datetime(2024, 6, 1, tzinfo=UTC), timezone="Asia/Kolkata"
        ),
    )
    cfg = sb.tap_config(window_days=30, infer_timezone=True)  # inference is opt-in
    del cfg["timezone"]
    cat = select_streams(discover(cfg), ["visitor_activity", "list_membership"])
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stderr.count("timezone is not set") == 1
    assert "+5.5 h" in run.stderr
    for stream in ("visitor_activity", "list_membership"):
        exp = expected_rows(sb, stream, dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 6, 1, tzinfo=UTC))
        assert_rows_match(sb, stream, run.records(stream), exp, "Asia/Kolkata")


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


def documented_streams() -> dict[str, str | None]:
    """Each stream's replication key as docs/streams.md's tables give it (the documented contract)."""
    keys: dict[str, str | None] = {}
    header: list[str] = []
    for line in (Path(__file__).parents[1] / "docs" / "streams.md").read_text().splitlines():
        if not line.startswith("|"):
            header = []
            continue
        cells = [c.strip().strip("`") for c in line.strip("|").split("|")]
        if not header:
            header = cells
        elif "stream" in header and "replication key" in header and not set(cells[0]) <= {"-"}:
            key = cells[header.index("replication key")]
            keys[cells[header.index("stream")]] = None if key == "-" else key
    return keys


def test_discover_needs_no_network_and_no_credentials(sandbox):
    run = run_tap({}, args=["--discover"])
    assert run.returncode == 0, run.stderr
    catalog = json.loads(run.stdout)
    documented = documented_streams()
    streams = {s["tap_stream_id"]: s for s in catalog["streams"]}
    assert set(streams) == set(documented) == set(SPECS)
    exports = {name for name in streams if SPECS[name].kind == "export"}
    assert exports == set(sandbox.dataset.objects)
    for name, entry in streams.items():
        assert entry["key_properties"] == ["id"]
        assert entry.get("replication_key") == documented[name], name
        if name in exports:
            times = sandbox.dataset.objects[name].times
            assert SPECS[name].replication_key in times, "the key is a time the API filters on"
    va = streams["visitor_activity"]["schema"]["properties"]
    assert va["id"]["type"] == ["integer"]
    assert va["created_at"]["format"] == "date-time"
    # columns are snake_case in every stream: the API's camelCase names travel as titles
    ea = streams["external_activity"]["schema"]["properties"]
    assert ea["prospect_id"]["title"] == "prospectId" and "prospectId" not in ea


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
