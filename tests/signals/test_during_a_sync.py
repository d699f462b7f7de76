"""SIGTERM and SIGINT during a sync, tried on real tap processes: the run ends in bounded time, its state out.

Whatever is in flight (a slow status read holding the only slot, a status line or a download
trickling, a slow download, a token refresh that hangs), the run ends within a bound with every
line on stdout whole, the last one a STATE, a log that tells the truth about it, and exit 128 +
signal. The exports the export record holds are kept for the rerun; those it could not record are
canceled.
"""

from __future__ import annotations

import signal
from contextlib import closing

import pytest

from tests.fake_pardot import FakePardot, trickle_head
from tests.helpers import BackgroundTap, block_record, recorded_ids
from tests.sandbox_runs import assert_no_secrets, one_stream, small
from tests.singer_messages import whole_lines
from tests.taps import BOUND, SIGTERM_EXIT, Tap, pending, until

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


# -- an export the record cannot hold --------------------------------------------------------------


def test_sigterm_cancels_the_export_in_flight_the_record_cannot_hold(fresh_sandbox, tmp_path):
    """An export in the export record is kept for the rerun; one it could not take goes.

    The record's own tests: tests/state/test_export_record.py.
    """
    sb = small(fresh_sandbox, waiting_seconds=30)
    cfg, cat = one_stream(sb, "list_membership", record_dir=str(block_record(tmp_path / "record", sb)))
    tap = BackgroundTap(cfg, cat)
    assert tap.read_until(pending)
    tap.proc.send_signal(signal.SIGTERM)
    run = tap.finish()
    assert run.returncode == 128 + signal.SIGTERM
    (eid,) = sb.stats()["exports"]
    assert sb.stats()["exports"][eid]["state"] == "Canceled", run.stderr[-3000:]
    assert "canceling export" in run.stderr
    assert run.messages[-1]["type"] == "STATE"
    assert_no_secrets(run, sb)


# -- a status line or a download that trickles -----------------------------------------------------


def test_sigterm_during_an_api_call_whose_head_trickles_ends_in_bounded_time(fake, catalog):
    """The main thread blocked in a trickling status read still takes the signal: state out, exit 143."""
    server: FakePardot = fake(read=trickle_head(every=0.2, at_most=60))
    with closing(Tap(server.config(request_timeout=300, max_retries=0), catalog)) as tap:
        assert tap.read_until(pending)
        until(lambda: server.count("read") > 0, "the status read began")
        run, took = tap.term_and_wait(after=0.5)
    assert took < BOUND, f"the tap took {took:.1f}s to end after SIGTERM"
    assert run.returncode == SIGTERM_EXIT, run.stderr[-2000:]
    assert whole_lines(run)[-1]["type"] == "STATE"
    assert "state emitted" in run.stderr
    assert "Traceback" not in run.stderr


def test_sigterm_during_a_download_whose_head_trickles_ends_in_bounded_time(fake, catalog):
    server: FakePardot = fake(download=trickle_head(every=0.2, at_most=60))
    with closing(Tap(server.config(download_timeout=3000, max_retries=0), catalog)) as tap:
        until(lambda: server.count("download") > 0, "the download began", timeout=60)
        run, took = tap.term_and_wait(after=0.5)
    assert took < BOUND, f"the tap took {took:.1f}s to end after SIGTERM"
    assert run.returncode == SIGTERM_EXIT, run.stderr[-2000:]
    assert whole_lines(run)[-1]["type"] == "STATE"
    assert "Traceback" not in run.stderr
