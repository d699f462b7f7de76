"""The export record (issue 19.1): a rerun reuses the exports a run created, even when no state reached it.

Each test's record folder is its own (``record_dir`` fixture, conftest). A rerun without
state is what ``meltano run`` does after a Ctrl-C that stopped the target too, and what a
plain Singer runner does after a crash before its state file was written. The Meltano runs
themselves are in ``tests/meltano/test_export_record.py``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import subprocess
import sys
import time
import typing as t

import pytest

from tap_pardot_export.engine import record as record_module
from tap_pardot_export.engine.plan import WindowJob
from tap_pardot_export.engine.record import ExportRecord
from tap_pardot_export.engine.windows import Window
from tap_pardot_export.pardot.exports import ExportInfo, ExportSpec
from tests.helpers import (
    BackgroundTap,
    TapRun,
    assert_rows_match,
    discover,
    expected_rows,
    record_file,
    recorded_ids,
    run_tap,
    select_streams,
)

if t.TYPE_CHECKING:
    from pathlib import Path

    from pardot_export_sandbox import Sandbox

LOGGER = logging.getLogger("tap-pardot-export")
UTC = dt.timezone.utc
START, END = dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2025, 1, 1, tzinfo=UTC)
VA = "visitor_activity"
EXPIRY = 7 * 86_400


def one_stream(sb: Sandbox, stream: str = VA, **cfg: t.Any) -> tuple[dict[str, t.Any], dict[str, t.Any]]:
    config = sb.tap_config(**cfg)
    return config, select_streams(discover(config), [stream])


def two_queued(msg: dict[str, t.Any]) -> bool:
    """A STATE with two exports queued behind the one waited on."""
    return msg["type"] == "STATE" and len(msg["value"]["bookmarks"].get(VA, {}).get("queued_exports", [])) == 2


def killed_with_three_in_flight(sb: Sandbox) -> tuple[dict[str, t.Any], dict[str, t.Any], TapRun]:
    """A run of 4 windows SIGKILLed with 3 exports in flight (one waited on, two queued behind it)."""
    cfg, cat = one_stream(sb, window_days=100, max_queued_exports=2)
    tap = BackgroundTap(cfg, cat)
    assert tap.read_until(two_queued)
    tap.proc.kill()
    return cfg, cat, tap.finish()


def complete(sb: Sandbox, runs: list[TapRun], stream: str = VA) -> None:
    records = [r for run in runs for r in run.records(stream)]
    assert_rows_match(sb, stream, records, expected_rows(sb, stream, START, END), sb.config.data.timezone)


def until(predicate: t.Callable[[], bool], what: str, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, f"not seen within {timeout:.0f}s: {what}"
        time.sleep(0.02)


def all_complete(sb: Sandbox) -> bool:
    with sb.state.lock:
        return all(e.state == "Complete" for e in sb.state.exports.values())


def creates(sb: Sandbox) -> int:
    return int(sb.stats()["calls"].get("create", 0))


# -- reuse -------------------------------------------------------------------------------------------


def test_a_rerun_without_state_after_sigkill_reuses_every_recorded_export(fresh_sandbox, record_dir):
    """The crashed run's state never reached the runner: the record alone carries its 3 exports in flight."""
    sb = fresh_sandbox(processing_seconds=1.0)
    cfg, cat, crashed = killed_with_three_in_flight(sb)
    live = recorded_ids(record_dir, sb)
    assert len(live) == 3, crashed.stderr[-2000:]
    before = creates(sb)
    run = run_tap(cfg, catalog=cat)  # no state
    assert run.returncode == 0, run.stderr[-2000:]
    for eid in live:
        assert f"resuming export {eid} from the export record" in run.stderr, run.stderr[-3000:]
    assert creates(sb) == before + 1, "only the window no export was created for is new"
    assert "run summary: 1 export(s) created, 3 reused" in run.stderr
    complete(sb, [run])


def test_a_rerun_after_the_target_stopped_reading_reuses_the_recorded_exports(fresh_sandbox, record_dir, tmp_path):
    """``| head -n 1``: no state can reach anyone; the exports in flight stay in the record for the rerun."""
    sb = fresh_sandbox(processing_seconds=1.0)
    cfg, cat = one_stream(sb, window_days=100, max_queued_exports=2)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "catalog.json").write_text(json.dumps(cat))
    command = [sys.executable, "-m", "tap_pardot_export", "--config", str(tmp_path / "config.json")]
    proc = subprocess.Popen(
        [*command, "--catalog", str(tmp_path / "catalog.json")], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None
    proc.stdout.readline()
    proc.stdout.close()  # the target is gone
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and b"The target stopped reading" in err, err[-2000:]
    held = recorded_ids(record_dir, sb)
    with sb.state.lock:
        assert held and all(sb.state.exports[i].state != "Canceled" for i in held)
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"run summary: {4 - len(held)} export(s) created, {len(held)} reused" in run.stderr, run.stderr[-3000:]
    complete(sb, [run])


def test_the_record_holds_what_each_export_asked_for(fresh_sandbox, record_dir):
    sb = fresh_sandbox()
    cfg, cat = one_stream(sb, window_days=200)
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    data = json.loads(record_file(record_dir, sb).read_text())
    assert data["business_unit_id"] == sb.config.business_unit_id
    entries = data["exports"]
    assert [e["id"] for e in entries] == sorted(sb.stats()["exports"])
    first = entries[0]
    assert first["stream"] == VA and first["object"] == "visitorActivity"
    assert first["procedure"] == "filter_by_updated_at"
    assert first["after"] == "2023-12-31T23:59:59+00:00" and first["before"] == "2024-07-19T00:00:00+00:00"
    assert first["arguments"] == {"updated_after": first["after"], "updated_before": first["before"]}
    assert "id" in first["fields"] and "updated_at" in first["fields"]
    assert isinstance(first["created_at"], str) and abs(first["requested_at"] - time.time()) < 600
    assert first["host"] == sb.base_url
    assert not list(record_dir.glob("*.tmp")), "a write left its temporary file"


def test_recorded_exports_pardot_ended_are_dropped_and_created_again(fresh_sandbox, record_dir):
    """Failed, Canceled, and Complete but expired: each is dropped from the record and its window exported anew."""
    sb = fresh_sandbox(processing_seconds=0.3)
    cfg, cat, _ = killed_with_three_in_flight(sb)
    until(lambda: all_complete(sb), "the crashed run's exports are Complete")
    first, second, third = sorted(recorded_ids(record_dir, sb))
    with sb.state.lock:
        sb.state.exports[first].state = "Failed"
        sb.state.exports[second].state = "Canceled"
        sb.state.exports[third].completed -= EXPIRY + 60
    before = creates(sb)
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    for eid, what in ((first, "Failed"), (second, "Canceled"), (third, "Complete and expired")):
        assert f"export {eid} from the export record is {what}; creating a new one" in run.stderr, run.stderr[-3000:]
    assert creates(sb) == before + 4
    assert recorded_ids(record_dir, sb).isdisjoint({first, second, third})
    assert "run summary: 4 export(s) created, 0 reused" in run.stderr
    complete(sb, [run])


def test_a_record_entry_older_than_seven_days_is_not_even_read(fresh_sandbox, record_dir):
    sb = fresh_sandbox(processing_seconds=0.3)
    cfg, cat, _ = killed_with_three_in_flight(sb)
    old = recorded_ids(record_dir, sb)
    path = record_file(record_dir, sb)
    data = json.loads(path.read_text())
    for entry in data["exports"]:
        entry["requested_at"] -= EXPIRY + 60
    path.write_text(json.dumps(data))
    seen = len(sb.state.requests_log)
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    reads = [p for _, p in list(sb.state.requests_log)[seen:] if "/do/read/id/" in p]
    assert not [p for p in reads if int(p.rsplit("/", 1)[1]) in old], "a stale entry was read"
    assert "run summary: 4 export(s) created, 0 reused" in run.stderr
    assert recorded_ids(record_dir, sb).isdisjoint(old), "stale entries are dropped at the next write"
    complete(sb, [run])


def test_two_windows_never_share_one_recorded_export(fresh_sandbox, record_dir):
    """A record naming one export for two windows (edited by hand, say): one window reuses it, the other creates."""
    sb = fresh_sandbox(processing_seconds=0.3)
    cfg, cat, _ = killed_with_three_in_flight(sb)
    path = record_file(record_dir, sb)
    data = json.loads(path.read_text())
    first, second = sorted(data["exports"], key=lambda e: e["id"])[:2]
    second["id"] = first["id"]  # the second window's query, under the first window's export
    path.write_text(json.dumps(data))
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stderr.count(f"resuming export {first['id']} from") == 1, run.stderr[-3000:]
    complete(sb, [run])  # the second window's rows are its own, not the first's


def test_a_recycle_bin_pass_reuses_only_the_exports_of_the_same_pass(fresh_sandbox, record_dir):
    """State lost after a whole run: everything is reused. State kept: the next pass reads the bin afresh."""
    sb = fresh_sandbox()
    cfg, cat = one_stream(sb, "prospect", window_days=200, capture_deletes=True, deletes_pass_days=0)
    first = run_tap(cfg, catalog=cat)
    assert first.returncode == 0, first.stderr[-2000:]
    made = len(sb.stats()["exports"])
    with sb.state.lock:
        passes = sum(e.spec.deleted == "true" for e in sb.state.exports.values())
    assert made == 2 + passes and passes > 0
    lost = run_tap(cfg, catalog=cat)
    assert f"run summary: 0 export(s) created, {made} reused" in lost.stderr, lost.stderr[-3000:]
    kept = run_tap(cfg, catalog=cat, state=first.final_state)
    assert kept.returncode == 0, kept.stderr[-2000:]
    assert f"run summary: {passes} export(s) created, 0 reused" in kept.stderr, "the pass after a whole pass is new"


# -- a record the tap cannot use -------------------------------------------------------------------------


def rewrite(path: Path, case: str, bu: str) -> None:
    if case == "cut short":
        path.write_bytes(path.read_bytes()[:100])
    elif case == "another business unit":
        data = json.loads(path.read_text())
        data["business_unit_id"] = bu[:-3] + "ZZZ"
        path.write_text(json.dumps(data))
    elif case == "not a record":
        path.write_text('["an", "array"]')
    else:
        data = json.loads(path.read_text())
        data["exports"] = [{"id": "x"}, *data["exports"][1:]]
        path.write_text(json.dumps(data))


@pytest.mark.parametrize("case", ["cut short", "another business unit", "not a record", "a bad entry"])
def test_a_record_the_tap_did_not_write_is_ignored_with_one_warning(fresh_sandbox, record_dir, case):
    sb = fresh_sandbox(processing_seconds=0.3)
    cfg, cat, _ = killed_with_three_in_flight(sb)
    path = record_file(record_dir, sb)
    rewrite(path, case, sb.config.business_unit_id)
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stderr.count(f"The export record {path}") == 1, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    reused = 2 if case == "a bad entry" else 0  # the other entries stand
    assert f"run summary: {4 - reused} export(s) created, {reused} reused" in run.stderr
    data = json.loads(path.read_text())  # rewritten whole
    assert data["business_unit_id"] == sb.config.business_unit_id
    complete(sb, [run])


def test_records_of_another_business_unit_or_host_are_never_reused(fresh_sandbox, record_dir):
    sb = fresh_sandbox(processing_seconds=0.3)
    cfg, cat, _ = killed_with_three_in_flight(sb)
    theirs = record_dir / "0Uv5e0000000002AAA.json"
    theirs.write_bytes(record_file(record_dir, sb).read_bytes().replace(b"0001AAA", b"0002AAA"))
    other = fresh_sandbox(business_unit_id="0Uv5e0000000002AAA")
    cfg2, cat2 = one_stream(other, window_days=100)
    run = run_tap(cfg2, catalog=cat2)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "run summary: 4 export(s) created, 0 reused" in run.stderr, "the other sandbox's ids are another host's"
    mine = run_tap(cfg, catalog=cat)
    assert "run summary: 1 export(s) created, 3 reused" in mine.stderr, mine.stderr[-3000:]


def test_a_record_dir_that_cannot_be_written_is_a_clear_error(fresh_sandbox, tmp_path):
    sb = fresh_sandbox()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cfg, cat = one_stream(sb, record_dir=str(blocker / "record"))
    run = run_tap(cfg, catalog=cat, subprocess=True)
    assert run.returncode == 1
    assert f"record_dir: the folder {blocker / 'record'} cannot be written" in run.stderr, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert creates(sb) == 0


# -- the file ------------------------------------------------------------------------------------------


WRITER = """
import logging, sys, time
from pathlib import Path
from tap_pardot_export.engine.plan import WindowJob
from tap_pardot_export.engine.record import ExportRecord
from tap_pardot_export.engine.windows import Window, parse_setting_datetime
from tap_pardot_export.pardot.exports import ExportInfo, ExportSpec
record = ExportRecord.open(Path(sys.argv[1]), "0Uv5e0000000001AAA", "http://127.0.0.1:1", logging.getLogger())
spec = ExportSpec("prospect", ["id", "updated_at"], "filter_by_updated_at", {"updated_after": "x"})
window = Window(parse_setting_datetime("2024-01-01"), parse_setting_datetime("2025-01-01"))
job = WindowJob(window, spec, "q", None, None, body=spec.body())
for k in range(40):
    assert record.add("s", job, ExportInfo(id=int(sys.argv[2]) + k, requested_at=time.time()), None)
"""


def fake_job(export_id: int) -> tuple[WindowJob, ExportInfo]:
    """A window's job and an export of it, for the record alone."""
    spec = ExportSpec("prospect", ["id", "updated_at"], "filter_by_updated_at", {"updated_after": "x"})
    job = WindowJob(Window(START, END), spec, "q", None, None, body=spec.body())
    return job, ExportInfo(id=export_id, created_at="2024-01-01 00:00:00", requested_at=time.time())


def test_two_processes_of_one_business_unit_keep_each_others_entries(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(base)]) for base in (1000, 2000, 3000)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    record = ExportRecord.open(tmp_path, "0Uv5e0000000001AAA", "http://127.0.0.1:1", LOGGER)
    assert record.held == {base + k for base in (1000, 2000, 3000) for k in range(40)}


def test_the_record_keeps_its_newest_entries(tmp_path, monkeypatch):
    monkeypatch.setattr(record_module, "MAX_ENTRIES", 5)
    record = ExportRecord.open(tmp_path, "0Uv5e0000000001AAA", "http://127.0.0.1:1", LOGGER)
    for k in range(8):
        assert record.add("s", *fake_job(100 + k), None)
    assert record.held == {103, 104, 105, 106, 107}
