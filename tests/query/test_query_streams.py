"""The 29 query streams against the sandbox's v5 query API, over HTTP: row-exact in one run and across two.

Dimensions are read whole on their first run (whatever start_date), then what changed; the
event-like streams in ``[start_date, end_date)`` on their key; the recycle bin of an incremental
dimension every run, so a record deleted between two runs arrives marked in the second although
a delete does not move its ``updatedAt``.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import subprocess
import sys
import tempfile

import pytest

from tests.helpers import run_tap
from tests.query_helpers import (
    BINNED,
    END,
    EVENTS,
    INCREMENTAL,
    QUERY,
    START,
    UTC,
    WHOLE,
    account_row,
    assert_exact,
    by_id,
    expected,
    run_query_streams,
)
from tests.settings_helpers import config, errors_of


def write_config(sb) -> str:
    path = tempfile.mkstemp(suffix=".json")[1]
    with open(path, "w") as fh:
        json.dump(sb.tap_config(), fh)
    return path


#: the second run's end, a month after the first's; changes between the two are stamped inside it
END2 = dt.datetime(2025, 2, 1, tzinfo=UTC)
AT = dt.datetime(2025, 1, 10, 12, 0, 0, tzinfo=UTC)
STAMP1, STAMP2 = "2025-01-01T00:00:00Z", "2025-02-01T00:00:00Z"


def test_every_query_stream_row_exact_in_one_run(fresh_sandbox):
    """Every query stream: exactly the sandbox's records, typed, columns snake_case, datetimes in UTC.

    The dimensions whole (a campaign last changed before start_date included), the event streams
    in [start_date, end_date) on their own key. The sandbox's zone has daylight saving: the API
    writes datetimes with the API user's offset, the tap emits UTC.
    """
    sb = fresh_sandbox()
    run = run_query_streams(sb, QUERY, start_date="2024-06-01T00:00:00Z")
    assert run.returncode == 0, run.stderr[-3000:]
    for name in QUERY:
        if name == "account":
            (row,) = run.records(name)
            assert {k: v for k, v in row.items() if k != "api_calls_used"} == account_row(sb)
            assert isinstance(row["api_calls_used"], int)
            continue
        start = dt.datetime(2024, 6, 1, tzinfo=UTC)
        assert_exact(name, run.records(name), expected(sb, name, start=start))
    before = [r for r in run.records("campaign") if r["updated_at"] < "2024-06-01"]
    assert before, "a dimension's first run is whole, whatever start_date"
    bookmarks = run.final_state["bookmarks"]
    for name in (*EVENTS, *INCREMENTAL):
        assert bookmarks[name]["replication_key_value"] == END.isoformat(), name
    assert not any(bookmarks.get(n) for n in QUERY if n not in (*EVENTS, *INCREMENTAL)), "whole tables keep none"


def change_between_runs(sb) -> dict[str, set[int]]:
    """New, updated and deleted records of dimensions and events, all stamped between the two runs' ends."""
    changed: dict[str, set[int]] = {}

    def note(name: str, ids) -> None:
        changed.setdefault(name, set()).update(ids)

    note("campaign", (r["id"] for r in sb.v5_add("campaign", 2, at=AT)))
    note("list", (r["id"] for r in sb.v5_update("list", [2003, 2004], {"name": "Renamed"}, at=AT)))
    live_users = list(sb.v5_expected("user", deleted="false"))[:1]
    note("user", sb.v5_delete("user", live_users, at=AT))  # its updatedAt does not move
    note("opportunity", (r["id"] for r in sb.v5_update("opportunity", [80000], {"stage": "Closed Won"}, at=AT)))
    note("email", (r["id"] for r in sb.v5_add("email", 3, at=AT)))
    note("visitor_page_view", (r["id"] for r in sb.v5_add("visitor_page_view", 4, at=AT)))
    note("lifecycle_history", (r["id"] for r in sb.v5_add("lifecycle_history", 2, at=AT)))
    note("visit", (r["id"] for r in sb.v5_update("visit", [70000000, 70000001], at=AT)))
    sb.v5_delete("tagged_object", [9100000])  # untagged: gone for good
    live_forms = list(sb.v5_expected("form", deleted="false"))[:1]
    note("form", sb.v5_delete("form", live_forms, at=AT))
    return changed


def test_two_runs_joined_by_state_bring_exactly_what_changed(fresh_sandbox):
    """The second run brings the changes, the new records and the records moved to the recycle bin.

    Unchanged records of the incremental and event streams are not sent again (at most a few
    percent); whole tables are read again (an untagged object is gone from them); deleted records
    carry _sdc_deleted_at, the run's end (restamped where a whole table is read again).
    """
    sb = fresh_sandbox()
    names = [n for n in QUERY if n != "account"]
    run1 = run_query_streams(sb, names, capture_deletes=True)
    assert run1.returncode == 0, run1.stderr[-3000:]
    changed = change_between_runs(sb)
    run2 = run_query_streams(sb, names, run1.final_state, capture_deletes=True, end_date=END2.isoformat())
    assert run2.returncode == 0, run2.stderr[-3000:]
    resent = total = 0
    for name in names:
        first, second = by_id(run1.records(name)), by_id(run2.records(name))
        want = expected(sb, name, end=END2)
        joined = second if name in WHOLE else first | second  # a whole table is read whole again
        assert_exact(name, [{k: v for k, v in r.items() if k != "_sdc_deleted_at"} for r in joined.values()], want)
        if name in (*EVENTS, *INCREMENTAL):
            assert set(second) >= changed.get(name, set()), f"{name}: a change did not arrive"
            resent += len(set(second) - changed.get(name, set()))
            total += len(want)
    assert resent <= 0.02 * total, f"{resent} unchanged records of {total} sent again"
    assert 9100000 not in by_id(run2.records("tagged_object"))
    (user,) = (r for r in run2.records("user") if r["id"] in changed["user"])
    assert user["is_deleted"] is True and user["_sdc_deleted_at"] == STAMP2
    forms = by_id(run2.records("form"))
    assert all(f["_sdc_deleted_at"] == (STAMP2 if f["is_deleted"] else None) for f in forms.values())


def test_a_record_deleted_between_two_runs_arrives_marked_in_the_second(fresh_sandbox):
    """Each incremental dimension with a recycle bin: a delete (updatedAt unmoved) arrives in the next run.

    Records already in the bin at the first run are not sent again (the state remembers them).
    """
    sb = fresh_sandbox()
    run1 = run_query_streams(sb, BINNED, capture_deletes=True)
    assert run1.returncode == 0, run1.stderr[-3000:]
    deleted = {}
    for name in BINNED:
        live = next(iter(sb.v5_expected(name, deleted="false")))
        deleted[name] = sb.v5_delete(name, [live])[0]
    run2 = run_query_streams(sb, BINNED, run1.final_state, capture_deletes=True)
    assert run2.returncode == 0, run2.stderr[-3000:]
    for name, rid in deleted.items():
        got = by_id(run2.records(name))
        assert set(got) == {rid}, f"{name}: the second run sent {sorted(got)[:5]}, not only the new delete"
        assert got[rid]["is_deleted"] is True and got[rid]["_sdc_deleted_at"] == STAMP1
        assert run2.final_state["bookmarks"][name]["recycle_bin_ids"] == sorted(sb.v5_expected(name, deleted="true"))


def test_capture_deletes_stamps_whole_tables_and_event_streams_have_none(fresh_sandbox):
    sb = fresh_sandbox()
    names = ["form", "tracker_domain", "tag", "email"]
    run = run_query_streams(sb, names, capture_deletes=True)
    assert run.returncode == 0, run.stderr[-3000:]
    for name in ("form", "tracker_domain"):
        assert_exact(name, run.records(name), expected(sb, name), deleted_at=STAMP1)
    schema = {m["stream"]: m["schema"]["properties"] for m in run.messages if m["type"] == "SCHEMA"}
    assert "_sdc_deleted_at" in schema["form"] and "_sdc_deleted_at" not in schema["tag"]
    assert "_sdc_deleted_at" not in schema["email"]


def test_columns_are_snake_case_and_nested_values_are_one_json_column(fresh_sandbox):
    sb = fresh_sandbox()
    run = run_query_streams(sb, ["engagement_studio_program", "landing_page"])
    assert run.returncode == 0, run.stderr[-3000:]
    schema = {m["stream"]: m["schema"]["properties"] for m in run.messages if m["type"] == "SCHEMA"}
    esp = schema["engagement_studio_program"]
    assert esp["business_hours"]["type"] == ["object", "null"] and esp["business_hours"]["title"] == "businessHours"
    assert esp["recipient_list_ids"]["items"] == {"type": ["integer"]}
    assert all(name == name.lower() for props in schema.values() for name in props)
    assert schema["landing_page"]["archive_date"] == {
        "type": ["string", "null"],
        "format": "date",
        "title": "archiveDate",
    }
    assert schema["landing_page"]["id"]["type"] == ["integer"]
    nested = [r["schedule"] for r in run.records("engagement_studio_program") if r["schedule"]]
    assert nested and all(isinstance(v, dict) for v in nested)


@pytest.mark.parametrize("selected", [["tag"], ["campaign", "visit"]])
def test_a_stream_the_account_cannot_read_fails_alone(fresh_sandbox, selected):
    """A query stream failing (here: the account refuses its id) fails alone; fail_fast stops the run."""
    sb = fresh_sandbox(v5_refused_fields={"tag": ["id"]})
    names = ["account", "tag", "tracker_domain", *selected]
    run = run_query_streams(sb, names)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert "1 stream(s) failed: tag." in run.stderr.strip().splitlines()[-1]
    assert "tag: Pardot refused the field(s) id" in run.stderr
    assert run.records("tag") == []
    for name in ("tracker_domain", *(n for n in selected if n != "tag")):
        assert_exact(name, run.records(name), expected(sb, name))
    stopped = run_query_streams(sb, names, fail_fast=True)
    assert stopped.returncode == 1 and not stopped.records("tracker_domain")


def test_a_corrupted_query_state_is_refused_with_a_clear_message(fresh_sandbox):
    sb = fresh_sandbox()
    cfg = sb.tap_config()
    for bad, words in (
        ({"last_id": "x"}, "the last_id of email"),
        ({"recycle_bin_ids": [1, "2"]}, "the recycle_bin_ids of email"),
    ):
        state = {
            "bookmarks": {"email": {"replication_key": "sent_at", "replication_key_value": START.isoformat(), **bad}}
        }
        run = run_tap(cfg, state=state)
        assert run.returncode != 0 and words in run.stderr and "Traceback" not in run.stderr, run.stderr[-2000:]


def test_the_check_reads_one_page_of_each_query_stream(fresh_sandbox):
    """--check: one page of one record per query stream; refusals are reported as a sync would meet them."""
    sb = fresh_sandbox(v5_refused_fields={"form": ["url"], "tag": ["id"]}, waiting_seconds=0.5)
    sb.v5.obj("visit").date_field = None
    proc = subprocess.run(
        [sys.executable, "-m", "tap_pardot_export", "--check", "--config", write_config(sb)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr[-2000:]
    for name in QUERY:
        if name != "tag":
            assert f"OK    {name}: may read (v5 " in out, name
    assert "FAIL  tag: cannot read v5 tags" in out and "Marketing > Tags > View" in out
    assert "NOTE  form: this account refuses field(s) url" in out
    assert "NOTE  visit: Pardot refuses visits's updatedAt filter or sort: syncs read it whole by id" in out
    calls = sb.stats()["calls"]
    collections = [name for name in QUERY if name != "account"]  # the account is one record, read by its own call
    assert calls["query_v5"] == len(collections) + 1  # one each; form again without url
    assert calls["account_v5"] == 1 + 1  # its stream, and the daily allowance


def test_the_user_stream_renamed_by_a_stream_map_alias(fresh_sandbox):
    """`user` is reserved in PostgreSQL: a stream map's __alias__ renames it (the SDK's general path)."""
    sb = fresh_sandbox()
    run = run_query_streams(sb, ["user", "tag"], stream_maps={"user": {"__alias__": "pardot_user"}})
    assert run.returncode == 0, run.stderr[-3000:]
    assert not run.records("user")
    assert_exact("user", run.records("pardot_user"), expected(sb, "user"))
    assert_exact("tag", run.records("tag"), expected(sb, "tag"))
    assert {m["stream"] for m in run.messages if m["type"] == "SCHEMA"} == {"pardot_user", "tag"}


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"stream_options": {"email": {"window_days": 0.001}}}, "stream_options.email.window_days"),
        (
            {"stream_options": {"email": {"procedure": "x"}}},
            "stream_options.email: unknown option 'procedure'; options: window_days",
        ),
        ({"stream_options": {"campaign": {"window_days": 7}}}, "stream_options: unknown stream 'campaign'"),
        ({"custom_fields": {"campaign": ["x"]}}, "custom_fields: unknown stream 'campaign'"),
    ],
)
def test_query_stream_settings_are_checked_with_a_clear_line(changes, words):
    """Only the event-like query streams take an option (window_days); custom_fields are for export streams."""
    errors = errors_of(config(**changes))
    assert any(words in e for e in errors), errors


def test_fixed_windows_of_an_event_stream(fresh_sandbox):
    sb = fresh_sandbox()
    run = run_query_streams(
        sb, ["visitor_page_view", "visit"], stream_options={"visitor_page_view": {"window_days": 30}}
    )
    assert run.returncode == 0, run.stderr[-3000:]
    for name in ("visitor_page_view", "visit"):
        assert_exact(name, run.records(name), expected(sb, name))
    assert "ERROR" not in run.stderr


def test_batch_files_hold_every_record_and_the_bookmark_follows_them(fresh_sandbox, tmp_path):
    """BATCH (jsonl) output: every record once; a STATE never covers records not yet in a BATCH message."""
    sb = fresh_sandbox()
    batches = {"encoding": {"format": "jsonl", "compression": "gzip"}, "storage": {"root": f"file://{tmp_path}"}}
    run = run_query_streams(sb, ["email", "campaign"], batch_config={**batches, "batch_size": 2_500})
    assert run.returncode == 0, run.stderr[-3000:]
    assert not run.records()
    seen: dict[str, list[dict]] = {}
    for m in run.messages:
        if m["type"] == "BATCH":
            for url in m["manifest"]:
                with gzip.open(url.removeprefix("file://"), "rt") as fh:
                    seen.setdefault(m["stream"], []).extend(json.loads(line) for line in fh)
        if m["type"] == "STATE":
            mark = m["value"]["bookmarks"].get("email", {})
            if mark.get("replication_key_value"):
                emitted = {r["id"] for r in seen.get("email", [])}
                owed = {
                    rid
                    for rid, rec in expected(sb, "email").items()
                    if rec["sent_at"] < mark["replication_key_value"]
                    or (rec["sent_at"] == mark["replication_key_value"] and rid <= mark.get("last_id", -1))
                }
                assert owed <= emitted, "a STATE covers records not yet in a BATCH message"
    for name in ("email", "campaign"):
        assert_exact(name, seen[name], expected(sb, name))
        assert len(seen[name]) == len(expected(sb, name))
