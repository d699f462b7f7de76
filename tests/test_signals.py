"""Signals, the call budget and resumed exports, tried on real tap processes against the sandbox.

SIGTERM must end the run within a bounded time whatever is in flight (a slow status read
holding the only slot, a slow download, a stdout nobody reads), with every line on stdout
whole, the last one a STATE, and a log that tells the truth about it; exit 128 + signal.
"""

from __future__ import annotations

import json
import signal
import time
import typing as t

import pytest

from tests.helpers import (
    TapRun,
    assert_rows_match,
    block_record,
    expected_rows,
    recorded_ids,
    run_tap,
)
from tests.sandbox_runs import END, START, one_stream
from tests.singer_messages import whole_lines
from tests.taps import BOUND, SIGTERM_EXIT, Tap, pending, until

if t.TYPE_CHECKING:
    from pardot_export_sandbox import Sandbox


# -- signals ---------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_a_slow_status_read_holding_the_only_slot(sandboxes, signum, tmp_path):
    """The cancel must not wait for the slot the interrupted main thread holds.

    The export record cannot be written here, so the export in flight is one a signal cancels.
    """
    sb = sandboxes(processing_seconds=60)
    sb.inject("slow", count=1, op="read", seconds=30)
    folder = block_record(tmp_path / "record", sb)
    cfg, cat = one_stream(sb, "list_membership", max_concurrency=1, record_dir=str(folder))
    tap = Tap(cfg, cat)
    assert tap.read_until(pending)
    until(lambda: sb.stats()["calls"].get("read", 0) > 0, "the status read has begun")
    run, took = tap.term_and_wait(after=0.1, signum=signum)
    assert took < BOUND, f"the tap took {took:.1f}s to end after signal {signum}"
    assert run.returncode == 128 + signum, run.stderr[-2000:]
    (eid,) = sb.stats()["exports"]
    assert sb.stats()["exports"][eid]["state"] == "Canceled"
    messages = whole_lines(run)
    assert messages[-1]["type"] == "STATE"
    assert messages[-1]["value"]["bookmarks"]["list_membership"]["pending_export"]["id"] == eid
    assert f"canceling export {eid}, which this run cannot finish: canceled; state emitted" in run.stderr


def test_a_signal_after_the_export_completed_says_so_not_no_answer(sandboxes, tmp_path):
    """Issue 19.5: Pardot refused the cancel because the export was already Complete; the log said "no answer"."""
    sb = sandboxes(processing_seconds=0.5)
    sb.inject("slow", count=1, op="read", seconds=30)  # the tap's view stays Waiting while Pardot completes it
    folder = block_record(tmp_path / "record", sb)
    cfg, cat = one_stream(sb, "list_membership", max_concurrency=1, record_dir=str(folder))
    tap = Tap(cfg, cat)
    assert tap.read_until(pending)
    until(lambda: sb.stats()["calls"].get("read", 0) > 0, "the status read has begun")
    (eid,) = sb.stats()["exports"]
    until(lambda: sb.stats()["exports"][eid]["state"] == "Complete", "the export is Complete on the server")
    run, took = tap.term_and_wait(after=0.0, signum=signal.SIGINT)
    assert took < BOUND
    assert run.returncode == 128 + signal.SIGINT, run.stderr[-2000:]
    assert sb.stats()["calls"].get("cancel", 0) == 1
    assert f"canceling export {eid}: already Complete: nothing to cancel" in run.stderr, run.stderr[-2000:]
    assert "no answer" not in run.stderr
    assert "Cancel of export" not in run.stderr  # the note says it once


def test_a_signal_keeps_the_recorded_export_in_flight(sandboxes, record_dir):
    """The export record holds the export waited on: the signal leaves it to the rerun, within the same bound."""
    sb = sandboxes(processing_seconds=60)
    sb.inject("slow", count=1, op="read", seconds=30)
    cfg, cat = one_stream(sb, "list_membership", max_concurrency=1)
    tap = Tap(cfg, cat)
    assert tap.read_until(pending)
    until(lambda: sb.stats()["calls"].get("read", 0) > 0, "the status read has begun")
    run, took = tap.term_and_wait(after=0.1, signum=signal.SIGINT)
    assert took < BOUND, f"the tap took {took:.1f}s to end after SIGINT"
    assert run.returncode == 128 + signal.SIGINT, run.stderr[-2000:]
    (eid,) = sb.stats()["exports"]
    assert sb.stats()["exports"][eid]["state"] == "Processing"
    assert recorded_ids(record_dir, sb) == {eid}
    assert f"kept export(s) {eid} for the rerun to reuse" in run.stderr, run.stderr[-2000:]
    assert "state emitted" in run.stderr
    assert sb.stats()["calls"].get("cancel", 0) == 0


def test_sigterm_during_a_slow_download_ends_in_bounded_time(sandboxes):
    sb = sandboxes()
    sb.inject("slow", count=1, op="download", seconds=30)
    cfg, cat = one_stream(sb, "list_membership", max_concurrency=1, window_days=200)
    # the forced exit comes at the hard deadline: the test hook shortens it from 15 s to 2 s
    tap = Tap(cfg, cat, env={"TAP_PARDOT_EXPORT_SIGNAL_DEADLINE": "2"})
    assert tap.read_until(pending)
    until(lambda: sb.stats()["calls"].get("download", 0) > 0, "the download has begun")
    run, took = tap.term_and_wait()
    assert took < BOUND, f"the tap took {took:.1f}s to end after SIGTERM"
    assert run.returncode == SIGTERM_EXIT, run.stderr[-2000:]
    messages = whole_lines(run)
    assert messages[-1]["type"] == "STATE"
    assert "state emitted" in run.stderr
    assert "exiting without waiting for the work in flight" in run.stderr, "the download was still in flight"
    assert tap.left == [], "the forced exit removes the run's downloaded files"
    assert "Traceback" not in run.stderr


def test_once_the_state_is_out_the_forced_exit_comes_after_the_grace_not_the_hard_deadline(sandboxes):
    """The hard deadline (15 s) is for a stuck stdout; with the state written, a few seconds suffice."""
    sb = sandboxes()
    sb.inject("slow", count=1, op="download", seconds=30)
    cfg, cat = one_stream(sb, "list_membership", max_concurrency=1, window_days=200)
    tap = Tap(cfg, cat)
    assert tap.read_until(pending)
    until(lambda: sb.stats()["calls"].get("download", 0) > 0, "the download has begun")
    run, took = tap.term_and_wait()
    assert run.returncode == SIGTERM_EXIT, run.stderr[-2000:]
    assert "state was emitted; exiting without waiting" in run.stderr
    assert took < 9, f"the tap took {took:.1f}s: the grace after the state did not shorten the wait"


def test_sigterm_during_a_slow_token_refresh_ends_in_bounded_time(sandboxes):
    """The main thread holds the token lock (a refresh that hangs): nothing may wait on it."""
    sb = sandboxes(processing_seconds=60)
    cfg, cat = one_stream(sb, "list_membership", max_concurrency=1)
    tap = Tap(cfg, cat)
    assert tap.read_until(pending)
    tokens = sb.stats()["calls"]["token"]  # discovery and the run's first token
    sb.inject("slow", count=1, op="token", seconds=30)
    sb.revoke_tokens()
    # the next status read gets a 401 and the refresh hangs
    until(lambda: sb.stats()["calls"]["token"] > tokens, "the token refresh has begun")
    run, took = tap.term_and_wait()
    assert took < BOUND, f"the tap took {took:.1f}s to end after SIGTERM"
    assert run.returncode == SIGTERM_EXIT, run.stderr[-2000:]
    assert whole_lines(run)[-1]["type"] == "STATE"
    assert "state emitted" in run.stderr
    assert sb.stats()["calls"]["token"] == tokens + 1, "the refresh was in flight"


def big(sandboxes) -> tuple[Sandbox, dict, dict]:
    sb = sandboxes(rows={"visitor_activity": 5_000}, rows_per_file=5_000)
    cfg, cat = one_stream(sb, "visitor_activity", window_days=365)
    return sb, cfg, cat


def test_sigterm_while_stdout_is_blocked_finishes_the_line_then_writes_state(sandboxes):
    """Nobody reads stdout for a while: the handler must not write into the middle of a line."""
    _, cfg, cat = big(sandboxes)
    tap = Tap(cfg, cat)
    assert tap.read_until(lambda m: m["type"] == "RECORD")
    tap.wait_until_stdout_is_full()  # the tap blocks in a write
    run, took = tap.term_and_wait(read_after=0.5)
    assert took < BOUND
    assert run.returncode == SIGTERM_EXIT, run.stderr[-2000:]
    messages = whole_lines(run)
    assert messages[-1]["type"] == "STATE", "the last line is the final STATE"
    assert sum(m["type"] == "RECORD" for m in messages) < 5_000, "the run was interrupted"
    assert "state emitted" in run.stderr


def test_stdout_never_read_the_log_does_not_claim_state(sandboxes):
    """stdout stays blocked past the deadline: exit anyway, and say the state was NOT emitted."""
    _, cfg, cat = big(sandboxes)
    tap = Tap(cfg, cat, env={"TAP_PARDOT_EXPORT_SIGNAL_DEADLINE": "2"})
    assert tap.read_until(lambda m: m["type"] == "RECORD")
    tap.wait_until_stdout_is_full()
    tap.proc.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    assert tap.proc.wait(timeout=BOUND) == SIGTERM_EXIT  # nobody has read stdout meanwhile
    assert time.monotonic() - t0 < BOUND
    err = tap.stderr()
    assert tap.leftovers() == [], "the forced exit removes the run's downloaded files"
    tap.close()
    assert "state NOT emitted" in err
    assert "state emitted" not in err.replace("state NOT emitted", "")


# -- the call budget ---------------------------------------------------------------------------


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


# -- resumed exports -------------------------------------------------------------------------


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
