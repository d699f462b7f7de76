"""Spoiled exports (a result file malformed as Pardot stores it) are left out of the state: the rerun creates them anew.

Each test checks the invariant: exit 0 with exactly the rows in range, or a non-zero exit with a
clear message, no traceback, no bookmark past a row not emitted, every stdout line whole JSON,
and a last STATE that lists no export the rerun cannot use as it is. On the general path and in
BATCH mode, with exports queued ahead, in a recycle-bin pass, in a wide stream's field group,
under SIGTERM; an error envelope answered to a download (the daily limit) is no spoil, nor is a
cut that heals on refetch.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import typing as t
from pathlib import Path

import pytest
from pardot_export_sandbox import DataConfig

from tests.helpers import TapRun, assert_rows_match, discover, expected_rows, iso, run_tap, select_streams
from tests.sandbox_runs import rewrite_stored
from tests.singer_messages import whole_lines
from tests.taps import SIGTERM_EXIT, Tap, until
from tests.wide_helpers import (
    CUSTOM,
    END,
    START,
    STREAM,
    assert_whole,
    exports_of,
    in_flight,
    schema_fields,
    wide_catalog,
)

if t.TYPE_CHECKING:
    from pardot_export_sandbox import Sandbox


LM = "list_membership"
#: Pardot's answer to a download once the daily limit is spent, as a 200 body
DAILY_LIMIT = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<rsp stat="fail" version="1.0"><err code="122">Daily API rate limit met.</err></rsp>\n'
)


def spoil_on_complete(sb: Sandbox, when: t.Callable[[t.Any], bool]) -> None:
    """Each export ``when`` picks is stored with a malformed row after its files' header, as Pardot could store it.

    Its own files, whatever else the tap downloads meanwhile: a fault injected for "the next
    download" once the export is Complete could hit the file of an export read before it.
    """

    def spoil(nth: int, export: t.Any, data: bytes) -> bytes:
        if not when(export):
            return data
        header, _, rest = data.partition(b"\n")
        return header + b"\n" + ",".join(["not-a-number"] * len(export.spec.fields)).encode() + b"\r\n" + rest

    rewrite_stored(sb, spoil)


def heal(sb: Sandbox) -> None:
    """No more faults or hooks: exports created from now on render their files right."""
    sb.state.on_complete.clear()
    sb.state.__dict__.pop("_process", None)  # rewrite_stored's
    with sb.state.lock:
        sb.state.faults.clear()


#: what a sandbox thread (this test's or one being stopped) prints of a request it failed to serve
SERVER_ERROR = re.compile(r"-{40}\nException occurred during processing of request.*?\n-{40}\n", re.DOTALL)


def own_stderr(run: TapRun) -> str:
    """The tap's stderr: an in-process run also captures what the sandbox's server threads print."""
    return SERVER_ERROR.sub("", run.stderr)


def check_failed(sb: Sandbox, run: TapRun, stream: str, *, start: dt.datetime = START) -> dict[str, t.Any]:
    """A failed run: non-zero, no traceback, bookmarks never past a row not emitted, the last STATE usable."""
    assert run.returncode != 0
    assert "Traceback" not in own_stderr(run), run.stderr[-4000:]
    emitted: set[int] = set()
    truth = expected_rows(sb, stream, START, END)
    rk = "updated_at"
    for m in whole_lines(run):
        if m["type"] == "RECORD" and m["stream"] == stream:
            emitted.add(m["record"]["id"])
        if m["type"] == "BATCH" and m["stream"] == stream:
            emitted |= {r["id"] for r in batch_rows(m)}
        if m["type"] == "STATE":
            mark = m["value"]["bookmarks"].get(stream, {}).get("replication_key_value")
            if mark:
                owed = {k for k, v in truth.items() if iso(start) <= v[rk] < mark}
                assert owed <= emitted, f"a STATE at {mark} came before {len(owed - emitted)} of its rows"
    state = run.final_state["bookmarks"].get(stream, {})
    for export_id in in_flight(state) + in_flight(state.get("deletes_pass") or {}):
        assert sb.state.exports[export_id].state != "Canceled", f"the last STATE lists canceled export {export_id}"
    return state


def batch_rows(message: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    """The records of a BATCH message's (uncompressed jsonl) files."""
    lines = [x for url in message["manifest"] for x in Path(url.removeprefix("file://")).read_text().splitlines()]
    return [json.loads(x) for x in lines]


def check_all(sb: Sandbox, runs: list[TapRun], stream: str) -> None:
    got = [r for run in runs for r in run.records(stream)]
    assert_rows_match(sb, stream, got, expected_rows(sb, stream, START, END), sb.config.data.timezone)


def spoiled_ids(run: TapRun) -> list[int]:
    return [
        int(line.split("export ")[1].split()[0]) for line in run.stderr.splitlines() if "left out of the state" in line
    ]


# -- the general path, BATCH, exports queued ahead -------------------------------------------


def test_the_sdk_path_with_stream_maps_drops_the_spoiled_export(fresh_sandbox):
    """Stream maps: records go through get_records; the spoiled export is left out all the same."""
    sb = fresh_sandbox()
    cfg = sb.tap_config(window_days=365, stream_maps={LM: {"twice": "id * 2"}})
    cat = select_streams(discover(cfg), [LM])
    sb.inject("bad_value", op="download")
    run1 = run_tap(cfg, catalog=cat)
    state = check_failed(sb, run1, LM)
    assert spoiled_ids(run1) == [1001]
    assert 1001 not in in_flight(state)
    run2 = run_tap(cfg, catalog=cat, state=run1.final_state)
    assert run2.returncode == 0, run2.stderr[-3000:]
    assert "resuming export 1001" not in run2.stderr
    assert all(r["twice"] == 2 * r["id"] for r in run2.records(LM))
    exp = expected_rows(sb, LM, START, END)
    for v in exp.values():
        v["twice"] = 2 * v["id"]
    assert_rows_match(sb, LM, run2.records(LM), exp, sb.config.data.timezone)


def test_batch_mode_keeps_the_first_window_and_drops_the_second_windows_spoiled_export(fresh_sandbox, tmp_path):
    """BATCH jsonl: the second window's file is malformed; the bookmark stays at the first window's end."""
    sb = fresh_sandbox()
    cfg = sb.tap_config(
        window_days=120,
        max_queued_exports=0,
        batch_config={
            "encoding": {"format": "jsonl", "compression": "none"},
            "storage": {"root": f"file://{tmp_path}", "prefix": "b-"},
            "batch_size": 40,
        },
    )
    cat = select_streams(discover(cfg), [LM])
    spoil_on_complete(sb, lambda e: e.id == 1002)
    run1 = run_tap(cfg, catalog=cat)
    state = check_failed(sb, run1, LM)
    first_end = iso(START + dt.timedelta(days=120))
    assert state["replication_key_value"] == first_end
    assert spoiled_ids(run1) == [1002]
    assert "pending_export" not in state
    heal(sb)
    run2 = run_tap(cfg, catalog=cat, state=run1.final_state)
    assert run2.returncode == 0, run2.stderr[-3000:]
    rows = [r for run in (run1, run2) for m in run.messages if m["type"] == "BATCH" for r in batch_rows(m)]
    assert_rows_match(sb, LM, rows, expected_rows(sb, LM, START, END), sb.config.data.timezone)


@pytest.mark.parametrize("ahead", [0, 1, 3])
def test_exports_queued_ahead_at_the_failure_are_canceled_and_not_in_the_last_state(fresh_sandbox, ahead):
    """The window's export is spoiled while 0..3 exports of later windows wait in Pardot's queue."""
    sb = fresh_sandbox(processing_seconds=0.2)
    cfg = sb.tap_config(window_days=60, max_queued_exports=ahead)
    cat = select_streams(discover(cfg), [LM])
    sb.inject("bad_value", op="download")
    run1 = run_tap(cfg, catalog=cat)
    state = check_failed(sb, run1, LM)
    assert spoiled_ids(run1) == [1001]
    assert in_flight(state) == []
    assert sb.stats()["calls"].get("create", 0) == 1 + ahead
    run2 = run_tap(cfg, catalog=cat, state=run1.final_state)
    assert run2.returncode == 0, run2.stderr[-3000:]
    check_all(sb, [run2], LM)


def test_a_second_window_failing_keeps_the_first_windows_bookmark(fresh_sandbox):
    """The first window was emitted; the second's file is malformed: bookmark at the first window's end."""
    sb = fresh_sandbox(processing_seconds=0.1)
    cfg = sb.tap_config(window_days=90, max_queued_exports=2)
    cat = select_streams(discover(cfg), [LM])
    spoil_on_complete(sb, lambda e: e.id == 1002)
    run1 = run_tap(cfg, catalog=cat)
    state = check_failed(sb, run1, LM)
    assert state["replication_key_value"] == iso(START + dt.timedelta(days=90))
    assert 1002 in spoiled_ids(run1)
    assert 1002 not in in_flight(state)
    heal(sb)
    run2 = run_tap(cfg, catalog=cat, state=run1.final_state)
    assert run2.returncode == 0, run2.stderr[-3000:]
    check_all(sb, [run1, run2], LM)


def test_a_value_bad_in_every_export_fails_every_rerun_the_same_way(fresh_sandbox):
    """Not transient: each run fails with the same message, never loops, never exits 0."""
    sb = fresh_sandbox()
    cfg = sb.tap_config(window_days=365, max_queued_exports=0)
    cat = select_streams(discover(cfg), [LM])
    sb.inject("bad_value", count=1000, op="download")
    state: dict[str, t.Any] | None = None
    for k in range(3):
        run = run_tap(cfg, catalog=cat, state=state)
        check_failed(sb, run, LM)
        assert f"list_membership: export {1001 + k}, result file 1, row 1 (id not-a-number)" in run.stderr
        assert not run.records(LM)
        state = run.final_state
    assert sb.stats()["calls"]["create"] == 3, "one export per run: no loop"


def test_the_recycle_bin_pass_drops_its_spoiled_export_and_keeps_the_streams_bookmark(fresh_sandbox):
    """capture_deletes: the pass's file is malformed; its nested state drops it, the stream's bookmark stays."""
    sb = fresh_sandbox()
    cfg = sb.tap_config(window_days=183, max_queued_exports=1, capture_deletes=True)
    cat = select_streams(discover(cfg), ["prospect"])
    spoil_on_complete(sb, lambda e: e.spec.deleted == "true")
    run1 = run_tap(cfg, catalog=cat)
    state = check_failed(sb, run1, "prospect")
    bin_export = min(e.id for e in sb.state.exports.values() if e.spec.deleted == "true")
    assert bin_export in spoiled_ids(run1)
    assert state["replication_key_value"] == iso(END)
    assert bin_export not in in_flight(state.get("deletes_pass") or {})
    heal(sb)
    run2 = run_tap(cfg, catalog=cat, state=run1.final_state)
    assert run2.returncode == 0, run2.stderr[-3000:]
    assert f"resuming export {bin_export}" not in run2.stderr
    deleted = set(expected_rows(sb, "prospect", START, END, include_deleted=True)) - set(
        expected_rows(sb, "prospect", START, END)
    )
    assert {r["id"] for r in run2.records("prospect") if r["_sdc_deleted_at"]} == deleted
    assert "deletes_pass" not in run2.final_state["bookmarks"]["prospect"]


@pytest.mark.parametrize("group", [0, 2])
def test_a_wide_stream_failing_on_group_1_or_3_keeps_the_other_groups(fresh_sandbox, group):
    """300 custom fields, three groups: the spoiled group's export is created again, the others reused."""
    data = DataConfig(start=START, end=END, custom_fields=CUSTOM, rows={STREAM: 300})
    sb = fresh_sandbox(data=data)
    cfg = sb.tap_config(window_days=365, max_queued_exports=0)
    cat = wide_catalog(cfg)
    spoil_on_complete(sb, lambda e: e.id == 1001 + group)
    run1 = run_tap(cfg, catalog=cat)
    state = check_failed(sb, run1, STREAM)
    assert not run1.records(STREAM)
    assert spoiled_ids(run1) == [1001 + group]
    assert in_flight(state) == [i for i in (1001, 1002, 1003)[: group + 1] if i != 1001 + group]
    heal(sb)
    run2 = run_tap(cfg, catalog=cat, state=run1.final_state)
    assert run2.returncode == 0, run2.stderr[-3000:]
    assert f"resuming export {1001 + group}" not in run2.stderr
    records = run2.records(STREAM)
    assert_whole(records, schema_fields(run2))
    assert_rows_match(sb, STREAM, records, expected_rows(sb, STREAM, START, END), sb.config.data.timezone)
    assert len([e for e in exports_of(sb) if e.spec.after == exports_of(sb)[0].spec.after]) >= 4


# -- findings: each failed before its fix ----------------------------------------------------


def test_sigterm_while_the_failed_run_cancels_its_exports_ahead(fresh_sandbox):
    """SIGTERM while the failure's courtesy cancels wait: exit 143, no traceback, the spoiled export not in state.

    Before the fix the signal's SystemExit was raised inside the stream's generator being closed
    by the failure: Python printed "Exception ignored in: <generator object result_files>" with
    its traceback, the run exited 1, and the signal's STATE still listed the spoiled export
    (its state was rewritten only after the cancels), so the rerun reused it and failed again.
    """
    sb = fresh_sandbox(processing_seconds=0.2)
    cfg = sb.tap_config(window_days=60, max_queued_exports=2)
    cat = select_streams(discover(cfg), [LM])
    sb.inject("bad_value", op="download")
    sb.inject("slow", count=5, op="cancel", seconds=4)
    tap = Tap(cfg, cat)
    until(lambda: sb.stats()["calls"].get("cancel", 0) > 0, "the first courtesy cancel", timeout=60)
    run1, _ = tap.term_and_wait(after=0.2)
    assert run1.returncode == SIGTERM_EXIT, run1.stderr[-3000:]
    assert "Traceback" not in run1.stderr, run1.stderr[-4000:]
    assert "Exception ignored" not in run1.stderr
    last = whole_lines(run1)[-1]
    assert last["type"] == "STATE"
    state = last["value"]["bookmarks"][LM]
    assert 1001 not in in_flight(state), "the spoiled export is not in the signal's STATE"
    heal(sb)
    run2 = run_tap(cfg, catalog=cat, state=last["value"])
    assert run2.returncode == 0, run2.stderr[-3000:]
    assert "resuming export 1001" not in run2.stderr
    check_all(sb, [run2], LM)


def test_the_last_state_of_a_spoiled_run_lists_no_export_canceled_for_the_next_stream(fresh_sandbox):
    """The next stream's export created ahead is canceled at the failure: the failure's STATE must not list it.

    Before the fix the spoiled export's STATE was written before the next stream's export was
    released, so it listed that export as its pending_export, canceled a moment later.
    """
    sb = fresh_sandbox(processing_seconds=0.2)
    sb.hold(lambda e: e.object_name == "prospectAccount")  # Waiting, so cancelable, however slow the machine
    # fail_fast: the run ends at the failure (else prospect_account syncs on, its held export Waiting for ever)
    cfg = sb.tap_config(window_days=365, end_date="2024-07-01T00:00:00Z", fail_fast=True)
    cat = select_streams(discover(cfg), [LM, "prospect_account"])
    spoil_on_complete(sb, lambda e: e.object_name == "listMembership")
    run1 = run_tap(cfg, catalog=cat)
    check_failed(sb, run1, LM)
    assert spoiled_ids(run1) == [1001]
    assert sb.state.exports[1002].object_name == "prospectAccount", "the next stream's export was created ahead"
    assert sb.state.exports[1002].state == "Canceled"
    assert "pending_export" not in run1.final_state["bookmarks"].get("prospect_account", {})


def test_the_daily_limit_answered_to_a_download_keeps_the_export_for_the_rerun(fresh_sandbox):
    """Error 122 as the download's body is Pardot's answer, not the stored file: the export is kept.

    Before the fix any error envelope that a retry would not fix marked the export spoiled: the
    rerun (the next day) created and waited for a new export instead of reusing a good one.
    """
    sb = fresh_sandbox()
    cfg = sb.tap_config(window_days=365, max_queued_exports=0)
    cat = select_streams(discover(cfg), [LM])
    before = rewrite_stored(sb, lambda n, e, data: DAILY_LIMIT if n == 0 else data)
    run1 = run_tap(cfg, catalog=cat)
    state = check_failed(sb, run1, LM)
    assert "error 122: Daily API rate limit met." in run1.stderr
    assert not spoiled_ids(run1)
    assert in_flight(state) == [1001]
    del sb.state._process
    for path, data in before.items():  # the limit is reset: the same export's file downloads right
        Path(path).write_bytes(data)
    run2 = run_tap(cfg, catalog=cat, state=run1.final_state)
    assert run2.returncode == 0, run2.stderr[-3000:]
    assert "resuming export 1001 from state (Complete)" in run2.stderr
    check_all(sb, [run2], LM)


def test_a_file_stored_cut_is_not_reused_after_its_refetches_all_came_the_same(fresh_sandbox, instant_retries):
    """A stored file ending inside a quoted field: fetched again, byte for byte the same each time: spoiled.

    Before the fix a cut looked transient however many identical copies came: the export stayed
    in state, and each rerun reused it, refetched it (minutes of waits) and failed the same way
    until it expired 7 days later.
    """
    sb = fresh_sandbox()
    cfg = sb.tap_config(window_days=365, max_queued_exports=0, max_retries=2)
    cat = select_streams(discover(cfg), [LM])
    rewrite_stored(sb, lambda n, e, data: data + b'1,"unterminated' if n == 0 else data)
    run1 = run_tap(cfg, catalog=cat)
    state = check_failed(sb, run1, LM)
    assert "result file 1 is cut: it ends inside a quoted field (fetched 3 times)" in run1.stderr
    assert spoiled_ids(run1) == [1001]
    assert 1001 not in in_flight(state)
    run2 = run_tap(cfg, catalog=cat, state=run1.final_state)  # only the first export's file was stored cut
    assert run2.returncode == 0, run2.stderr[-3000:]
    assert "resuming export 1001" not in run2.stderr
    check_all(sb, [run2], LM)


def test_a_cut_that_heals_on_refetch_is_no_spoil(fresh_sandbox, instant_retries):
    """A body cut in transit once, whole the next time: read, nothing dropped (the guard above is no blanket)."""
    sb = fresh_sandbox()
    cfg = sb.tap_config(window_days=365, max_queued_exports=0)
    cat = select_streams(discover(cfg), [LM])
    sb.inject("cut", op="download", after_bytes=300)
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stderr.count("download failed (") == 1, "fetched again once"
    assert not spoiled_ids(run)
    check_all(sb, [run], LM)
