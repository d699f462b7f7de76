"""Bookmarks and resumed runs: a checkpoint after each window, and reruns from a state that lose nothing.

The state is checkpointed after each window in ascending order and never moves past an error
inside a window; a run resumed from state brings the rest, the row on the bookmark included; an
export in flight in the state is reused (after a crash, a kill -9 at several points), read in
the API user's zone, and never for another query. Against the sandbox over loopback.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import typing as t

import pytest

from tests.helpers import (
    CUSTOM,
    BackgroundTap,
    TapRun,
    assert_rows_match,
    created_fields,
    deselect_field,
    discover,
    expected_rows,
    iso,
    run_tap,
    select_streams,
)
from tests.sandbox_runs import END, START, complete, one_stream, small
from tests.taps import Tap, pending

if t.TYPE_CHECKING:
    from pardot_export_sandbox import Sandbox

UTC = dt.timezone.utc


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


def test_an_error_inside_a_window_does_not_move_the_bookmark(sandboxes):
    sb = sandboxes(rows_per_file=50)
    cfg, cat = one_stream(sb, "list_membership", window_days=100)
    first = run_tap({**cfg, "end_date": "2024-04-10T00:00:00+00:00"}, catalog=cat)
    assert first.returncode == 0, first.stderr[-2000:]
    mark = first.final_state["bookmarks"]["list_membership"]["replication_key_value"]
    sb.inject("bad_value", count=1, op="download")
    run = run_tap(cfg, catalog=cat, state=first.final_state)
    assert run.returncode != 0
    assert run.final_state["bookmarks"]["list_membership"]["replication_key_value"] == mark


# -- exports in flight resumed from state ----------------------------------------------------------


def killed_with_an_export_pending(sb: Sandbox) -> tuple[dict, dict, TapRun]:
    """A list_membership run killed while its first export is pending: its settings, catalog and run."""
    sb.hold()  # the export stays pending until the kill, however slow the machine
    cfg, cat = one_stream(sb, "list_membership", window_days=400 // 2)
    tap = BackgroundTap(cfg, cat)
    assert tap.read_until(pending)
    tap.proc.kill()
    sb.release()  # the rerun need not wait
    return cfg, cat, tap.finish()


def test_rerun_after_a_crash_reuses_the_export_in_flight(fresh_sandbox):
    sb = small(fresh_sandbox)
    cfg, cat, crashed = killed_with_an_export_pending(sb)
    state = crashed.final_state
    eid = state["bookmarks"]["list_membership"]["pending_export"]["id"]
    creates = sb.stats()["calls"]["create"]
    run = run_tap(cfg, catalog=cat, state=state)
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"resuming export {eid} from state" in run.stderr
    assert sb.stats()["calls"]["create"] == creates + 1, "only the second window needs a new export"
    assert "pending_export" not in run.final_state["bookmarks"]["list_membership"]
    complete(sb, "list_membership", [crashed, run])


@pytest.mark.parametrize("kill_points", [("pending", 5, "state", 150)])
def test_sigkill_at_several_points_then_rerun_loses_nothing(fresh_sandbox, kill_points):
    """Kill -9 after an export is created, mid-window, after a checkpoint, mid-records; rerun each time."""
    sb = small(fresh_sandbox, rows_per_file=30, processing_seconds=0.2)
    cfg, cat = one_stream(sb, "list_membership", window_days=45)
    runs: list[TapRun] = []
    state = None
    predicates = {
        "pending": pending,
        "state": lambda m: (
            m["type"] == "STATE" and "replication_key_value" in m["value"]["bookmarks"].get("list_membership", {})
        ),
    }
    for point in kill_points:
        tap = BackgroundTap(cfg, cat, state)
        if isinstance(point, int):
            count = [0]

            def nth(m, count=count, n=point):
                count[0] += m["type"] == "RECORD"
                return count[0] >= n

            reached = tap.read_until(nth)
        else:
            reached = tap.read_until(predicates[point])
        assert reached, f"the tap finished before kill point {point}"
        tap.proc.kill()
        sb.config.processing_seconds = 0  # it kept the first export pending until the first kill
        run = tap.finish()
        runs.append(run)
        states = run.states()
        state = states[-1] if states else state
    final = run_tap(cfg, catalog=cat, state=state)
    assert final.returncode == 0, final.stderr[-2000:]
    runs.append(final)
    complete(sb, "list_membership", runs)
    assert len(runs[-1].records()) < len(expected_rows(sb, "list_membership", START, END))


def test_a_resumed_export_reads_its_times_in_the_api_users_zone(sandboxes):
    """No timezone setting: the offset of an export reused from state is not taken for UTC."""
    # UTC-5 all year; the export is held pending until the kill
    sb = sandboxes(zone="America/Bogota")
    sb.hold()
    cfg, cat = one_stream(sb, "list_membership", window_days=200)
    del cfg["timezone"]
    cfg["infer_timezone"] = True  # the opt-in to infer the offset (COMMON settings)
    tap = Tap(cfg, cat)
    assert tap.read_until(pending)
    tap.close()
    sb.release()  # the rerun need not wait
    crashed = [json.loads(x) for x in tap.out.decode().splitlines()]
    state = [m["value"] for m in crashed if m["type"] == "STATE"][-1]
    eid = state["bookmarks"]["list_membership"]["pending_export"]["id"]
    run = run_tap(cfg, catalog=cat, state=state)
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"resuming export {eid} from state" in run.stderr, run.stderr[-3000:]
    expected = expected_rows(sb, "list_membership", START, END)
    assert_rows_match(sb, "list_membership", run.records("list_membership"), expected, "America/Bogota")


def test_an_export_in_state_is_not_reused_for_another_query(fresh_sandbox):
    sb = small(fresh_sandbox)
    cfg, cat, crashed = killed_with_an_export_pending(sb)
    state = crashed.final_state
    old = state["bookmarks"]["list_membership"]["pending_export"]["id"]
    deselect_field(cat, "list_membership", "opted_out")  # the user deselects a field before the rerun
    run = run_tap(cfg, catalog=cat, state=state)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "resuming export" not in run.stderr
    assert all("opted_out" not in r for r in run.records())
    # the old export is neither read nor downloaded; the new ones do not ask for the field
    paths = [path for _, path in sb.state.requests_log]
    assert not [p for p in paths if re.search(rf"/(read|downloadResult)/id/{old}\b", p)], "the old export was reused"
    created = created_fields(sb, old)
    assert created and all("opted_out" not in fields for fields in created.values())
    assert {r["id"] for r in run.records()} == set(expected_rows(sb, "list_membership", START, END))
