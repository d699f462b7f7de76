"""Streams wider than an export: one export per field group per window, joined by id, whole and exact."""

from __future__ import annotations

import datetime as dt
import gzip
import itertools
import json
import os
import typing as t
from pathlib import Path

import pytest

from tap_pardot_export.engine.join import JoinSpool, field_groups
from tests.helpers import assert_rows_match, discover, expected_rows, iso, run_check, run_tap, select_streams
from tests.singer_messages import read_batches, whole_lines
from tests.taps import SIGTERM_EXIT, Tap, until
from tests.wide_helpers import (
    END,
    START,
    STREAM,
    Part,
    assert_whole,
    exports_of,
    schema_fields,
    wide_catalog,
    wide_sandbox,
)


def jsonl_batches(folder: Path, size: int) -> dict[str, t.Any]:
    """A batch_config writing gzipped JSON Lines files of ``size`` records to ``folder``."""
    return {
        "encoding": {"format": "jsonl", "compression": "gzip"},
        "storage": {"root": f"file://{folder}", "prefix": "b-"},
        "batch_size": size,
    }


# -- the split ------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 150, 151, 298, 299, 300, 346, 1000])
def test_field_groups_fit_an_export_and_each_holds_the_keys(n):
    fields = ["id", "updated_at", *(f"f{k}" for k in range(n - 2))]
    groups = field_groups(fields, ["id", "updated_at"])
    assert all(len(g) <= 150 for g in groups)
    assert all(g[:2] == ["id", "updated_at"] for g in groups)
    assert [f for g in groups for f in g[2:]] == fields[2:], "every other field once, in order"
    assert len(groups) == (1 if n <= 150 else -(-(n - 2) // 148))
    assert max(map(len, groups)) - min(map(len, groups)) <= 1, "groups of even size"


def test_join_keeps_records_one_group_lacks_and_the_oldest_mark():
    """Ids in one group only come with what is known; a differing replication key keeps the oldest."""
    g0 = [{"id": i, "updated_at": "2024-02-01T00:00:00Z", "a": i * 10} for i in (1, 2, 3)]
    g1 = [{"id": i, "updated_at": "2024-02-01T00:00:00Z", "b": f"v{i}"} for i in (2, 3, 4)]
    g1[1]["updated_at"] = "2024-01-15T00:00:00Z"  # id 3: another version in group 2's export
    with JoinSpool("prospect", 2, replication_key="updated_at") as spool:
        assert spool.add(0, Part(g0)) == 3
        assert spool.add(1, Part(g1)) == 3
        got = {r["id"]: r for r in spool.records()}
        folder = spool.folder
        assert os.path.exists(spool.path)
    assert not os.path.exists(folder), "the spool is removed"
    assert got == {
        1: {"id": 1, "updated_at": "2024-02-01T00:00:00Z", "a": 10},
        2: {"id": 2, "updated_at": "2024-02-01T00:00:00Z", "a": 20, "b": "v2"},
        3: {"id": 3, "updated_at": "2024-01-15T00:00:00Z", "a": 30, "b": "v3"},
        4: {"id": 4, "updated_at": "2024-02-01T00:00:00Z", "b": "v4"},
    }
    assert (spool.stats.rows, spool.stats.partial, spool.stats.mixed) == (4, 2, 1)


# -- whole syncs against the sandbox --------------------------------------------------------


def test_300_custom_fields_sync_row_exact_and_whole(fresh_sandbox):
    """A prospect stream of ~350 fields: every record whole, every value right; exports of <= 150 fields.

    The tap's peak memory on this sync is measured by benchmarks/peak_memory.py, not here.
    """
    sb = wide_sandbox(fresh_sandbox)
    cfg = sb.tap_config(window_days=92)
    run = run_tap(cfg, catalog=wide_catalog(cfg))
    assert run.returncode == 0, run.stderr[-3000:]

    fields = schema_fields(run)
    assert len(fields) > 300
    records = run.records(STREAM)
    assert_whole(records, fields)
    truth = expected_rows(sb, STREAM, START, END)
    assert_rows_match(sb, STREAM, records, truth, sb.config.data.timezone)

    exports = exports_of(sb)
    assert len(exports) == 3 * 4, "three field groups for each of four windows (92 days each)"
    for e in exports:
        assert len(e.spec.fields) <= 150
        assert {"id", "updated_at"} <= set(e.spec.fields)
    windows: dict[tuple[t.Any, t.Any], list[str]] = {}
    for e in exports:
        windows.setdefault((e.spec.after, e.spec.before), []).extend(e.spec.fields)
    for asked in windows.values():
        assert set(asked) == fields, "each window's groups ask for every field"
    assert "3 exports per window" in run.stderr

    emitted: set[int] = set()
    for m in run.messages:  # each bookmark comes after every record before it, whole
        if m["type"] == "RECORD":
            emitted.add(m["record"]["id"])
        mark = m["value"]["bookmarks"].get(STREAM, {}).get("replication_key_value") if m["type"] == "STATE" else None
        if mark:
            owed = {k for k, v in truth.items() if v["updated_at"] < mark}
            assert owed <= emitted, f"a STATE at {mark} came before {len(owed - emitted)} of its records"

    state = run.final_state["bookmarks"][STREAM]
    assert state["replication_key_value"] == iso(END)
    assert "pending_export" not in state
    assert "queued_exports" not in state
    again = run_tap(cfg, catalog=wide_catalog(cfg), state=run.final_state)
    assert again.returncode == 0, again.stderr[-2000:]
    assert not again.records(STREAM), "an incremental rerun from that state has nothing left"


def test_record_deleted_between_group_exports_is_emitted_with_what_is_known(fresh_sandbox):
    """A record gone from the second group's export is not dropped: its first group's fields arrive."""
    sb = wide_sandbox(fresh_sandbox)
    cfg = sb.tap_config(window_days=365, max_queued_exports=0)
    cat = wide_catalog(cfg)
    live = expected_rows(sb, STREAM, START, END)
    gone = sorted(k for k, v in live.items() if v["updated_at"] < "2024-12-01")[:3]  # in the first window
    first: list[int] = []

    def delete_after_first_group(export: t.Any) -> None:
        if export.spec.obj.name == STREAM and not first:
            first.append(export.id)
            sb.delete_records(STREAM, gone)

    sb.after_export(delete_after_first_group)
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-3000:]
    group1 = set(exports_of(sb)[0].spec.fields)
    by_id = {r["id"]: r for r in run.records(STREAM)}
    assert set(by_id) == set(live), "no record lost, none added"
    for rid in gone:
        assert set(by_id[rid]) == group1, "the deleted record comes with its first group's fields"
        assert all(by_id[rid][k] == live[rid][k] for k in group1)
    assert_whole([r for rid, r in by_id.items() if rid not in gone], schema_fields(run))
    assert "3 record(s) were in some field groups' exports but not in others" in run.stderr


def test_capture_deletes_marks_a_wide_record_whole(fresh_sandbox):
    """The recycle-bin pass of a wide stream is split and joined too: the deleted record arrives whole and marked."""
    sb = wide_sandbox(fresh_sandbox)
    cfg = sb.tap_config(window_days=365, capture_deletes=True)
    cat = wide_catalog(cfg)
    run1 = run_tap(cfg, catalog=cat)
    assert run1.returncode == 0, run1.stderr[-3000:]
    gone = sorted(r["id"] for r in run1.records(STREAM) if r["_sdc_deleted_at"] is None)[:4]
    sb.delete_records(STREAM, gone)
    cfg2 = {**cfg, "end_date": iso(END + dt.timedelta(days=2))}
    sb.clock.advance(0)
    run2 = run_tap(cfg2, catalog=cat, state=run1.final_state)
    assert run2.returncode == 0, run2.stderr[-3000:]
    fields = schema_fields(run2)
    marked = {r["id"]: r for r in run2.records(STREAM) if r["_sdc_deleted_at"] is not None}
    assert set(gone) <= set(marked)
    assert_whole(list(marked.values()), fields)
    truth = expected_rows(sb, STREAM, START, END, include_deleted=True)
    for rid in gone:
        assert all(marked[rid][k] == v for k, v in truth[rid].items())


def test_a_window_interrupted_between_groups_resumes_its_exports(fresh_sandbox, monkeypatch):
    """A run failing on the second group's malformed file keeps the window's other exports; the rerun reuses them.

    The third group's export, created ahead, is still in Pardot's queue at the failure: it is
    neither canceled nor forgotten. The second's file is malformed as Pardot stores it, so
    reusing that export would fail the same way until it expires (7 days): it is left out of
    the state, and the rerun creates it again.
    """
    sb = wide_sandbox(fresh_sandbox, processing_seconds=0.5)
    cfg = sb.tap_config(window_days=365, max_queued_exports=2)
    cat = wide_catalog(cfg)
    seen: list[int] = []
    process = sb.state._process

    def spoil_the_second_groups_file(export: t.Any) -> t.Any:
        """Its stored file (a fault for "the next download" could hit the first group's file, read later)."""
        ranges, total, paths = process(export)
        seen.append(export.id)
        if len(seen) == 2:
            for path in map(Path, paths):
                header, _, rest = path.read_bytes().partition(b"\n")
                bad = ",".join(["not-a-number"] * len(export.spec.fields)).encode()
                path.write_bytes(header + b"\n" + bad + b"\r\n" + rest)
        return ranges, total, paths

    monkeypatch.setattr(sb.state, "_process", spoil_the_second_groups_file)
    run1 = run_tap(cfg, catalog=cat)
    assert run1.returncode != 0
    assert "Traceback" not in run1.stderr
    assert not run1.records(STREAM), "no record of a window leaves before all its groups are joined"
    state = run1.final_state["bookmarks"][STREAM]
    assert state.get("replication_key_value", iso(START)) == iso(START)
    kept = [state["pending_export"]["id"], *(e["id"] for e in state.get("queued_exports", []))]
    first_window = exports_of(sb)[0].spec.after
    window = [e.id for e in exports_of(sb) if e.spec.after == first_window]
    assert window[:2] == seen[:2]
    assert kept[:2] == [window[0], window[2]], "the window's exports stay in state, but for the spoiled one"
    assert sb.state.exports[window[2]].state != "Canceled", "the window's export ahead is kept for the rerun"

    monkeypatch.setattr(sb.state, "_process", process)
    before = max(e.id for e in exports_of(sb))
    run2 = run_tap(cfg, catalog=cat, state=run1.final_state)
    assert run2.returncode == 0, run2.stderr[-3000:]
    for export_id in (window[0], window[2]):
        assert f"resuming export {export_id} from state" in run2.stderr
    assert f"resuming export {window[1]} from state" not in run2.stderr
    again = [e for e in exports_of(sb, since=before) if e.spec.after == first_window]
    assert [e.spec.fields for e in again] == [sb.state.exports[window[1]].spec.fields], "only the spoiled one"
    records = run2.records(STREAM)
    assert_whole(records, schema_fields(run2))
    assert_rows_match(sb, STREAM, records, expected_rows(sb, STREAM, START, END), sb.config.data.timezone)


def test_a_narrow_streams_malformed_file_is_not_reused_by_the_rerun(fresh_sandbox):
    """A malformed row as Pardot stores it: the failed run's last STATE drops that export, so the rerun heals."""
    sb = fresh_sandbox()
    cfg = sb.tap_config(window_days=365)
    cat = select_streams(discover(cfg), ["list_membership"])
    sb.inject("bad_value", op="download")
    run1 = run_tap(cfg, catalog=cat)
    assert run1.returncode != 0
    assert "Traceback" not in run1.stderr
    spoiled = min(e.id for e in sb.state.exports.values() if e.spec.obj.name == "listMembership")
    assert f"export {spoiled} left out of the state" in run1.stderr
    state = run1.final_state["bookmarks"]["list_membership"]
    assert state.get("pending_export", {}).get("id") != spoiled
    assert state.get("replication_key_value", iso(START)) == iso(START)
    run2 = run_tap(cfg, catalog=cat, state=run1.final_state)
    assert run2.returncode == 0, run2.stderr[-3000:]
    assert f"resuming export {spoiled}" not in run2.stderr
    got = run2.records("list_membership")
    zone = sb.config.data.timezone
    assert_rows_match(sb, "list_membership", got, expected_rows(sb, "list_membership", START, END), zone)


def test_batch_files_hold_whole_records(fresh_sandbox, tmp_path):
    sb = wide_sandbox(fresh_sandbox)
    cfg = sb.tap_config(window_days=183, batch_config=jsonl_batches(tmp_path, 500))
    run = run_tap(cfg, catalog=wide_catalog(cfg))
    assert run.returncode == 0, run.stderr[-3000:]
    assert not run.records()
    records = read_batches(run)[STREAM]
    assert_whole(records, schema_fields(run))
    assert_rows_match(sb, STREAM, records, expected_rows(sb, STREAM, START, END), sb.config.data.timezone)


def test_wide_stream_among_others_with_exports_ahead_and_no_spool_left(fresh_sandbox, tmp_path):
    """Several streams, exports created ahead (groups and the next stream's first): all exact, no file left.

    The streams run in name order: list_membership creates the wide prospect stream's first
    group export ahead, and prospect then visitor's.
    """
    sb = wide_sandbox(fresh_sandbox, processing_seconds=0.2)
    cfg = sb.tap_config(max_queued_exports=2)
    cat = wide_catalog(cfg, "list_membership", STREAM, "visitor")
    run = run_tap(cfg, catalog=cat, subprocess=True, env={"TMPDIR": str(tmp_path)})
    assert run.returncode == 0, run.stderr[-3000:]
    records = run.records(STREAM)
    assert_whole(records, schema_fields(run))
    zone = sb.config.data.timezone
    for other in ("list_membership", "visitor"):
        assert_rows_match(sb, other, run.records(other), expected_rows(sb, other, START, END), zone)
    assert_rows_match(sb, STREAM, records, expected_rows(sb, STREAM, START, END), zone)
    with sb.state.lock:
        lm_done = max(e.completed or 0 for e in sb.state.exports.values() if e.spec.obj.name == "listMembership")
    exports = exports_of(sb)
    assert exports[0].created < lm_done, "the wide stream's first group export was created ahead"
    assert len(exports[0].spec.fields) <= 150
    ahead = [b.id for a, b in itertools.pairwise(exports) if a.completed is not None and b.created < a.completed]
    assert ahead, "exports of the next field groups were created while the one before was in Pardot's queue"
    assert not list(tmp_path.iterdir()), "the join's spool files are removed"


def test_sigterm_between_field_groups_keeps_the_windows_exports_and_the_rerun_is_whole(fresh_sandbox):
    """SIGTERM while the second group's file downloads: state keeps the window's exports, the spool is removed."""
    sb = wide_sandbox(fresh_sandbox)
    cfg = sb.tap_config(window_days=365)
    cat = wide_catalog(cfg)
    done: list[int] = []

    def slow_second_download(export: t.Any) -> None:
        done.append(export.id)
        if len(done) == 2:
            sb.inject("slow", op="download", seconds=30, export=export.id)  # its download, not the first one's

    sb.after_export(slow_second_download)
    tap = Tap(cfg, cat)
    until(lambda: sb.stats()["calls"].get("download", 0) >= 2, "the second group's download has begun", timeout=60)
    run, _ = tap.term_and_wait()
    assert run.returncode == SIGTERM_EXIT, run.stderr[-3000:]
    assert not tap.left, f"files left behind: {tap.left}"
    last = whole_lines(run)[-1]
    assert last["type"] == "STATE"
    state = last["value"]["bookmarks"][STREAM]
    assert state.get("replication_key_value", iso(START)) == iso(START)
    kept = [state["pending_export"]["id"], *(e["id"] for e in state.get("queued_exports", []))]
    assert kept[:2] == done[:2], "the window's first two exports, the one read and the one being read, stay in state"
    assert not [m for m in whole_lines(run) if m["type"] == "RECORD"], "no record before the window is joined"

    sb.state.on_complete.clear()
    sb.state.faults.clear()
    run2 = run_tap(cfg, catalog=cat, state=last["value"])
    assert run2.returncode == 0, run2.stderr[-3000:]
    assert f"resuming export {done[0]} from state (Complete)" in run2.stderr
    records = run2.records(STREAM)
    assert_whole(records, schema_fields(run2))
    assert_rows_match(sb, STREAM, records, expected_rows(sb, STREAM, START, END), sb.config.data.timezone)


def test_the_check_says_a_wide_prospect_stream_costs_more_exports(fresh_sandbox):

    sb = wide_sandbox(fresh_sandbox)
    sb.hold()  # the check's exports stay Waiting, so its cancels find them
    proc = run_check(sb.tap_config())
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    assert "OK    custom fields: 300 found" in proc.stdout
    assert (
        "NOTE  prospect: 346 fields with the custom ones, more than an export takes (150): each window runs 3 exports"
        in proc.stdout
    )


def test_a_batch_file_is_cut_by_bytes_as_well_as_by_batch_size(fresh_sandbox, tmp_path, monkeypatch):
    """Wide records make big files: a BATCH file also ends once it holds BATCH_FILE_BYTES of JSON."""
    from tap_pardot_export import records

    monkeypatch.setattr(records, "BATCH_FILE_BYTES", 200_000)
    sb = wide_sandbox(fresh_sandbox)
    cfg = sb.tap_config(window_days=365, batch_config=jsonl_batches(tmp_path, 100_000))
    run = run_tap(cfg, catalog=wide_catalog(cfg))
    assert run.returncode == 0, run.stderr[-3000:]
    sizes: list[int] = []
    batched: list[dict[str, t.Any]] = []
    for m in run.messages:
        if m["type"] == "BATCH":
            for url in m["manifest"]:
                with gzip.open(Path(url.removeprefix("file://")), "rb") as fh:
                    data = fh.read()
                sizes.append(len(data))
                batched.extend(json.loads(line) for line in data.splitlines())
    assert len(sizes) > 2, "more files than batch_size alone would make (one per window)"
    assert max(sizes) < 200_000 + 60_000, "a file ends at the first record past the bytes bound"
    assert_rows_match(sb, STREAM, batched, expected_rows(sb, STREAM, START, END), sb.config.data.timezone)
