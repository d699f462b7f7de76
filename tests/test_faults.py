"""Faults, limits, interruptions and bad input, each injected through the sandbox over HTTP."""

from __future__ import annotations

import re
import signal
import sys

import pytest

from tests.helpers import (
    BackgroundTap,
    TapRun,
    block_record,
    created_fields,
    deselect_field,
    expected_rows,
    iso,
    run_tap,
    run_with_file_limit,
)
from tests.sandbox_runs import END, START, assert_no_secrets, complete, one_stream, small
from tests.taps import pending

# -- transient faults ---------------------------------------------------------------------------


def test_transient_faults_are_retried_and_nothing_is_lost(fresh_sandbox, instant_retries):
    sb = small(fresh_sandbox, rows_per_file=40)
    sb.inject("http_503", count=2, op="create")
    sb.inject("http_500", count=1, op="read")
    sb.inject("code_66", count=2, op="download")
    sb.inject("http_502", count=1, op="download")
    sb.inject("not_json", count=1, op="read")
    sb.inject("slow", count=1, op="read", seconds=2.0)
    sb.inject("reset", count=2, op="read")
    cfg, cat = one_stream(sb, "list_membership", window_days=120, request_timeout=1)
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-3000:]
    complete(sb, "list_membership", [run])
    errors = sb.stats()["errors"]
    assert errors.get("66") == 2
    assert run.stderr.count("retry ") >= 9  # 2 + 1 + 2 + 1 + not-JSON + timeout + 2 resets
    timed_out = "ReadTimeout" in run.stderr or "did not answer whole within request_timeout" in run.stderr
    assert timed_out and "not JSON" in run.stderr and "ConnectionError" in run.stderr
    # error 66 comes with Retry-After: 1, and the wait honours it
    waits = re.findall(r"error 66: [^;]*\); retry \d+/\d+ in ([\d.]+)s", run.stderr)
    assert len(waits) == 2 and all(float(w) >= 1.0 for w in waits)
    assert len(instant_retries.slept) >= 9 and sum(w >= 1.0 for w in instant_retries.slept) >= 2
    assert_no_secrets(run, sb)


def test_retries_are_bounded(fresh_sandbox, instant_retries):
    sb = small(fresh_sandbox)
    sb.inject("http_503", count=50, op="create")
    cfg, cat = one_stream(sb, "list_membership", max_retries=2)
    run = run_tap(cfg, catalog=cat)
    assert run.returncode != 0
    assert "Giving up on create" in run.stderr and "after 3 tries" in run.stderr
    assert "Traceback" not in run.stderr
    assert sb.stats()["calls"]["create"] == 3


def test_requests_in_flight_never_exceed_max_concurrency(fresh_sandbox):
    sb = small(fresh_sandbox, rows_per_file=20)
    sb.inject("slow", count=12, op="download", seconds=0.1)  # long enough for downloads to overlap
    cfg, cat = one_stream(sb, "visitor_activity", window_days=400 // 2, max_concurrency=2)
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    assert sb.stats()["max_inflight"] == 2, "downloads run in parallel, two at a time"
    complete(sb, "visitor_activity", [run])


# -- auth -----------------------------------------------------------------------------------------


def test_rejected_token_is_refreshed_once_for_parallel_requests(fresh_sandbox):
    sb = small(fresh_sandbox, rows_per_file=20)
    sb.inject("revoke", op="download")
    sb.inject("slow", count=6, op="download", seconds=0.2)
    cfg, cat = one_stream(sb, "visitor_activity", window_days=400 // 2, max_concurrency=3)
    tokens = sb.stats()["calls"].get("token", 0)  # discovery's own token
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    assert sb.stats()["calls"]["token"] - tokens == 2  # the first token, then exactly one refresh
    assert sb.stats()["errors"].get("184", 0) >= 1
    complete(sb, "visitor_activity", [run])
    assert_no_secrets(run, sb)


def test_plain_access_token_is_refreshed_when_credentials_exist(fresh_sandbox):
    sb = small(fresh_sandbox)
    token = sb.issue_token()
    cfg, cat = one_stream(sb, "list_membership", access_token=token, window_days=400 // 2)
    sb.revoke_tokens()
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    assert sb.stats()["calls"]["token"] == 1
    assert_no_secrets(run, sb)


def test_refused_refresh_ends_the_run_with_a_clear_message(fresh_sandbox):
    sb = small(fresh_sandbox)
    cfg, cat = one_stream(sb, "list_membership", client_secret="not-the-secret-s3cr3t")
    run = run_tap(cfg, catalog=cat)
    assert run.returncode != 0
    assert "invalid_grant" in run.stderr and "credentials must be renewed" in run.stderr
    assert "Traceback" not in run.stderr
    assert "not-the-secret-s3cr3t" not in run.everything
    assert sb.stats()["api_calls"] == 0
    assert_no_secrets(run, sb)


def test_expired_plain_access_token_without_credentials(fresh_sandbox):
    sb = small(fresh_sandbox)
    cfg, cat = one_stream(sb, "list_membership")
    for k in ("client_id", "client_secret", "refresh_token"):
        del cfg[k]
    cfg["access_token"] = "00Dstale!token-that-was-revoked"
    run = run_tap(cfg, catalog=cat)
    assert run.returncode != 0
    assert "rejected the access_token" in run.stderr
    assert "00Dstale!token-that-was-revoked" not in run.everything


# -- limits ---------------------------------------------------------------------------------------


def test_daily_limit_stops_cleanly_and_resumes_after_the_reset(fresh_sandbox):
    # Pardot's own limit (error 122), on an account that does not say its allowance (the reserve would stop first)
    sb = small(fresh_sandbox, daily_limit=14, v5_account_refusal=49)
    cfg, cat = one_stream(sb, "list_membership", window_days=60)
    run1 = run_tap(cfg, catalog=cat)
    assert run1.returncode != 0
    assert "daily API call limit is spent (error 122)" in run1.stderr and "It resets at" in run1.stderr
    assert "Traceback" not in run1.stderr
    assert sb.stats()["errors"] == {"49": 1, "122": 1}, "the tap does not hammer a spent quota"
    bookmark = run1.final_state["bookmarks"]["list_membership"]["replication_key_value"]
    # the run got some windows done, not all: the bookmark lies strictly inside the range
    assert iso(START) < bookmark < iso(END)
    # the state covers only what was emitted: every row before the bookmark has arrived
    before = {k for k, v in expected_rows(sb, "list_membership", START, END).items() if v["updated_at"] < bookmark}
    assert before <= {r["id"] for r in run1.records()}
    sb.clock.advance(86400)
    run2 = run_tap(cfg, catalog=cat, state=run1.final_state)
    assert run2.returncode == 0, run2.stderr[-2000:]
    complete(sb, "list_membership", [run1, run2])


def test_max_api_calls_finishes_cleanly_with_resumable_state(fresh_sandbox):
    sb = small(fresh_sandbox)
    cfg, cat = one_stream(sb, "list_membership", window_days=30, max_api_calls=12)
    run1 = run_tap(cfg, catalog=cat)
    assert run1.returncode == 0, run1.stderr[-2000:]
    assert "max_api_calls=12 leaves" in run1.stderr
    assert sb.stats()["api_calls"] <= 12
    mark = run1.final_state["bookmarks"]["list_membership"]["replication_key_value"]
    assert "2024-01-31" <= mark < "2025-01-01"
    runs = [run1]
    for _ in range(10):
        cfg["max_api_calls"] = 20
        run = run_tap(cfg, catalog=cat, state=runs[-1].final_state)
        assert run.returncode == 0
        runs.append(run)
        if run.final_state["bookmarks"]["list_membership"]["replication_key_value"] == "2025-01-01T00:00:00+00:00":
            break
    complete(sb, "list_membership", runs)


# -- exports --------------------------------------------------------------------------------------


def test_failed_exports_are_created_again_a_bounded_number_of_times(fresh_sandbox):
    sb = small(fresh_sandbox)
    sb.inject("fail_export", count=2)
    cfg, cat = one_stream(sb, "list_membership", window_days=400 // 2)
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stderr.count("Failed; creating it again") == 2
    complete(sb, "list_membership", [run])
    sb2 = small(fresh_sandbox)
    sb2.inject("fail_export", count=3)
    # the next window's export waits for this one's end: the three Failed are all this window's
    run = run_tap(sb2.tap_config(window_days=400 // 2, max_queued_exports=0), catalog=cat)
    assert run.returncode != 0
    failed = [k for k, v in sb2.stats()["exports"].items() if v["state"] == "Failed"]
    assert f"export {failed[-1]} Failed 3 times" in run.stderr and "contact Salesforce support" in run.stderr


def test_canceled_and_expired_exports_are_created_again(fresh_sandbox):
    sb = small(fresh_sandbox, rows_per_file=50)
    sb.inject("cancel_export")
    sb.inject("expire_export", op="download")
    cfg, cat = one_stream(sb, "list_membership", window_days=400 // 2)
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "is Canceled; creating it again" in run.stderr
    assert "expired while its files were read" in run.stderr
    complete(sb, "list_membership", [run])


def test_an_export_that_never_finishes_hits_the_deadline(fresh_sandbox):
    sb = small(fresh_sandbox, waiting_seconds=60)
    cfg, cat = one_stream(sb, "list_membership", export_timeout=1)
    run = run_tap(cfg, catalog=cat)
    assert run.returncode != 0
    (eid,) = sb.stats()["exports"]
    assert f"export {eid} did not finish within export_timeout=1s" in run.stderr
    assert sb.stats()["exports"][eid]["state"] == "Canceled", "the tap cancels what it gives up on"


def test_a_download_cut_off_midway_is_fetched_again_without_repeats(fresh_sandbox, instant_retries):
    sb = small(fresh_sandbox, rows_per_file=100)
    sb.inject("cut", count=2, op="download", after_bytes=3000)
    cfg, cat = one_stream(sb, "visitor_activity", window_days=400 // 2)
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stderr.count("cut off after") == 2
    ids = [r["id"] for r in run.records()]
    assert len(ids) == len(set(ids)), "no row is emitted twice because of a cut"
    complete(sb, "visitor_activity", [run])


# -- interruptions --------------------------------------------------------------------------------


def test_rerun_after_a_crash_reuses_the_export_in_flight(fresh_sandbox):
    sb = small(fresh_sandbox)
    sb.hold()  # the export stays pending until the kill, however slow the machine
    cfg, cat = one_stream(sb, "list_membership", window_days=400 // 2)
    tap = BackgroundTap(cfg, cat)
    assert tap.read_until(pending)
    tap.proc.kill()
    sb.release()  # the rerun need not wait
    crashed = tap.finish()
    state = crashed.final_state
    eid = state["bookmarks"]["list_membership"]["pending_export"]["id"]
    creates = sb.stats()["calls"]["create"]
    run = run_tap(cfg, catalog=cat, state=state)
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"resuming export {eid} from state" in run.stderr
    assert sb.stats()["calls"]["create"] == creates + 1, "only the second window needs a new export"
    assert "pending_export" not in run.final_state["bookmarks"]["list_membership"]
    complete(sb, "list_membership", [crashed, run])


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


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ({"start_date": "last tuesday"}, "start_date 'last tuesday' is not an ISO 8601"),
        ({"end_date": "2023-06-01T00:00:00Z"}, "end_date (2023-06-01T00:00:00Z) must be after start_date"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone 'Mars/Olympus_Mons' is not an IANA time zone"),
        ({"window_days": 400}, "window_days 400 is out of range"),
        ({"stream_options": {"prospects": {}}}, "stream_options: unknown stream 'prospects'"),
        ({"stream_options": {"prospect": {"windows": 3}}}, "stream_options.prospect: unknown option 'windows'"),
        ({"stream_options": {"prospect": {"procedure": "filter_by_magic"}}}, "'filter_by_magic' is not a procedure"),
        ({"stream_options": {"prospect": {"arguments": {"updated_after": "2024-01-01"}}}}, "sets the time bounds"),
        ({"stream_options": {"visitor": {"arguments": {"type": [1]}}}}, "'type' is not an argument of"),
        ({"business_unit_id": "12345"}, "business_unit_id is malformed"),
        ({"client_secret": None, "client_id": None}, "credentials are missing"),
        ({"api_url": "pi.pardot.com"}, "api_url 'pi.pardot.com' is not an http(s) URL"),
    ],
)
def test_bad_settings_fail_before_any_api_call(fresh_sandbox, override, words):
    sb = fresh_sandbox()
    cfg = sb.tap_config()
    for k, v in override.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    run = run_tap(cfg)
    assert run.returncode != 0
    assert words in run.stderr
    assert "Traceback" not in run.stderr
    assert sb.stats()["calls"] == {}


@pytest.mark.parametrize(
    ("kind", "op", "count", "words"),
    [
        ("not_json", "read", 20, "a body that is not JSON"),
        ("weird_state", "read", 1, "in a state the tap does not know ('Exploded')"),
        ("bad_row", "download", 1, "2 columns where the header has 6"),
        ("bad_value", "download", 1, "column 'id': not an integer: 'not-a-number'"),
    ],
)
def test_bad_api_answers_fail_with_context(fresh_sandbox, instant_retries, kind, op, count, words):
    sb = small(fresh_sandbox)
    sb.inject(kind, count=count, op=op)
    cfg, cat = one_stream(sb, "list_membership", window_days=400 // 2, max_retries=1)
    run = run_tap(cfg, catalog=cat)
    assert run.returncode != 0
    assert words in run.stderr
    assert "Traceback" not in run.stderr
    if op == "download":
        eid = min(sb.stats()["exports"])  # the window read; the next one's export was created ahead
        assert re.search(rf"list_membership.*: export {eid}, result file \d+, (line|row) \d+", run.stderr)
    assert_no_secrets(run, sb)


# -- credentials stay home --------------------------------------------------------------------------


def test_result_links_on_another_host_are_refused(fresh_sandbox):
    sb = small(fresh_sandbox)
    port = sb.base_url.rsplit(":", 1)[1]
    sb.config.result_base_url = f"http://localhost:{port}"  # same server, another host name
    cfg, cat = one_stream(sb, "list_membership", window_days=400 // 2)
    run = run_tap(cfg, catalog=cat)
    assert run.returncode != 0
    assert f"Refusing to download http://localhost:{port}/api/export" in run.stderr
    assert sb.stats()["calls"].get("download", 0) == 0
    assert_no_secrets(run, sb)


def test_an_export_in_state_is_not_reused_for_another_query(fresh_sandbox):
    sb = small(fresh_sandbox)
    sb.hold()  # the export stays pending until the kill, however slow the machine
    cfg, cat = one_stream(sb, "list_membership", window_days=400 // 2)
    tap = BackgroundTap(cfg, cat)
    assert tap.read_until(pending)
    tap.proc.kill()
    sb.release()  # the rerun need not wait
    state = tap.finish().final_state
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


# -- the real process ---------------------------------------------------------------------------


def test_the_real_cli_exits_1_with_a_message_and_no_traceback(fresh_sandbox):
    """The other tests run the CLI in-process; here the installed entry point runs as a process."""
    sb = small(fresh_sandbox)
    bad = run_tap({**sb.tap_config(), "window_days": 400}, subprocess=True)
    assert bad.returncode == 1
    assert "window_days 400 is out of range" in bad.stderr
    cfg, cat = one_stream(sb, "list_membership", client_secret="not-the-secret-s3cr3t")
    refused = run_tap(cfg, catalog=cat, subprocess=True)
    assert refused.returncode == 1
    assert "credentials must be renewed" in refused.stderr
    for run in (bad, refused):
        assert "Traceback" not in run.stderr
        assert not run.records()
    assert sb.stats()["api_calls"] == 0


@pytest.mark.skipif(sys.platform != "linux", reason="a file size limit through bash's ulimit")
def test_a_full_disk_under_a_download_stops_at_once_saying_so(fresh_sandbox, tmp_path):
    """A result file that cannot be written (a file size limit below its size): the disk's fault, not the network's."""
    sb = small(fresh_sandbox, rows_per_file=100_000)
    cfg, cat = one_stream(sb, "visitor_activity", window_days=365)
    proc, folder = run_with_file_limit(cfg, cat, 20, tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-6000:]
    assert "free disk space or point TMPDIR at a larger disk" in proc.stderr
    assert "File too large" in proc.stderr
    assert sb.stats()["calls"]["download"] == 1, "no retry: a retry cannot fix a full disk"
    assert '"type":"RECORD"' not in proc.stdout
    assert not list(folder.rglob("*")), "nothing left in TMPDIR"
