"""Ctrl-C under ``meltano run``, then ``meltano run`` again (issue 19.1), and the queue's Meltano commands (19.8).

A Ctrl-C in a terminal sends SIGINT to the whole process group: Meltano, the tap and the
target. The target stops, so no state from the interrupted run may reach Meltano; the rerun
must still create no export for a request the tap's export record holds live. Each test has
a Meltano project of its own (``tests/meltano_helpers.py``'s, so no state is shared), the
repository's ``tests/jsonl_target.py`` as the loader, and nothing is downloaded.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import typing as t

import pytest
from pardot_export_sandbox import DataConfig

from tests.helpers import expected_rows, record_file, recorded_ids
from tests.meltano_helpers import MELTANO_MARKS, Interrupted, Project, assert_tap_clean, live, request, tap_env, until

if t.TYPE_CHECKING:
    from pathlib import Path

    from pardot_export_sandbox import Sandbox

UTC = dt.timezone.utc
START, END = dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2025, 1, 1, tzinfo=UTC)
STREAMS = ("list_membership", "prospect")

pytestmark = MELTANO_MARKS


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.fixture
def project(tmp_path: Path) -> Project:
    folder = tmp_path / "meltano"
    folder.mkdir()
    return Project(folder)


def run_env(sb: Sandbox, project: Project, record: Path) -> dict[str, str]:
    cfg = sb.tap_config(window_days=200)
    return {
        **tap_env(cfg),
        "TAP_PARDOT_EXPORT_RECORD_DIR": str(record),
        "TAP_PARDOT_EXPORT__SELECT": json.dumps([f"{s}.*" for s in STREAMS]),
        "TARGET_JSONL_DESTINATION_PATH": str(project.folder / "out"),
    }


def rerun_reuses_what_the_record_holds(sb: Sandbox, project: Project, env: dict[str, str], record: Path) -> None:
    """``meltano run`` again: no export for a request the record holds live; every row of the range arrives."""
    held = recorded_ids(record, sb)
    assert held, "the interrupted run recorded no export"
    still = live(sb, held)
    assert still, f"no recorded export is live any more: {sb.stats()['exports']}"
    with sb.state.lock:
        before = max(sb.state.exports)
    rerun = project("run", "tap-pardot-export", "target-jsonl", env=env)
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    with sb.state.lock:
        new = [i for i in sb.state.exports if i > before]
        again = {request(sb, i) for i in new} & {request(sb, i) for i in still}
    assert not again, f"the rerun created exports the record held live: {sorted(again)}"
    summary = re.search(r"run summary: (\d+) export\(s\) created, (\d+) reused", rerun.stderr)
    assert summary and int(summary.group(2)) >= 1, rerun.stderr[-4000:]  # the window interrupted, at least
    for stream in STREAMS:  # both runs append to the same files: together they hold every row
        path = project.folder / "out" / f"{stream}.jsonl"
        got = {json.loads(line)["id"] for line in path.read_text().splitlines()}
        assert got == set(expected_rows(sb, stream, START, END)), stream


# -- Ctrl-C ----------------------------------------------------------------------------------------------


def test_ctrl_c_while_an_export_waits(fresh_sandbox, project, tmp_path):
    """Another user's export holds the queue: the tap's first export waits behind it when Ctrl-C comes."""
    sb = fresh_sandbox(rows_per_file=500)
    foreign = sb.add_foreign_exports(1, seconds=None)
    record = tmp_path / "record"
    env = run_env(sb, project, record)
    run = Interrupted(project, env)
    until(lambda: len(recorded_ids(record, sb)) >= 1, "the tap recorded its first export")
    output = run.ctrl_c()
    (mine,) = recorded_ids(record, sb)
    assert sb.stats()["exports"][mine]["state"] == "Waiting", output[-3000:]
    assert_tap_clean(output)
    sb.release_foreign_exports()
    assert foreign
    rerun_reuses_what_the_record_holds(sb, project, env, record)


def test_ctrl_c_mid_download(fresh_sandbox, project, tmp_path):
    sb = fresh_sandbox(rows_per_file=500, processing_seconds=0.3)
    sb.inject("slow", count=1, op="download", seconds=30)
    record = tmp_path / "record"
    env = run_env(sb, project, record)
    run = Interrupted(project, env)
    until(lambda: sb.stats()["calls"].get("download", 0) >= 1, "the first download has begun")
    output = run.ctrl_c()
    assert_tap_clean(output)
    rerun_reuses_what_the_record_holds(sb, project, env, record)


def test_ctrl_c_mid_emit(fresh_sandbox, project, tmp_path):
    """Rows are on their way to the target (it has written some) when Ctrl-C comes."""
    rows = {"list_membership": 30_000, "prospect": 400}
    sb = fresh_sandbox(rows_per_file=5000, data=DataConfig(start=START, end=END, rows=rows), processing_seconds=0.2)
    record = tmp_path / "record"
    env = run_env(sb, project, record)
    out = project.folder / "out" / "list_membership.jsonl"
    run = Interrupted(project, env)
    until(lambda: lines(out) > 0, "the target wrote records")
    output = run.ctrl_c()
    assert_tap_clean(output)
    assert lines(out) < len(expected_rows(sb, "list_membership", START, END)), "interrupted before the end"
    rerun_reuses_what_the_record_holds(sb, project, env, record)


# -- the commands ----------------------------------------------------------------------------------------


def test_meltano_commands_list_and_cancel_exports(fresh_sandbox, project, tmp_path):
    sb = fresh_sandbox()
    foreign = sb.add_foreign_exports(2, seconds=None)
    cfg = sb.tap_config()
    env = {**tap_env(cfg), "TAP_PARDOT_EXPORT_RECORD_DIR": str(tmp_path / "record")}
    listing = project("invoke", "tap-pardot-export:list-exports", env=env)
    assert listing.returncode == 0, listing.stderr[-3000:]
    assert f"{foreign[0]}  Processing" in listing.stdout and f"{foreign[1]}  Waiting" in listing.stdout
    cancel = project("invoke", "tap-pardot-export:cancel-exports", str(foreign[1]), env=env)
    assert cancel.returncode == 0, cancel.stdout + cancel.stderr[-3000:]
    assert "canceled (was Waiting)" in cancel.stdout
    assert sb.stats()["exports"][foreign[1]]["state"] == "Canceled"
    assert not record_file(tmp_path / "record", sb).exists(), "listing and canceling by id record nothing"
    assert sb.config.client_secret not in listing.stdout + listing.stderr + cancel.stdout + cancel.stderr
