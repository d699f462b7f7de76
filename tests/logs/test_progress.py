"""Progress lines during long downloads and long emits (issue 19.3), their interval injected.

The interval is the module constant ``PROGRESS_SECONDS`` (10 s), patched here, and the clock an
argument of :class:`ExportProgress`: no test waits ten seconds or races the clock.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import re

import pytest

from tap_pardot_export.pardot import progress
from tap_pardot_export.pardot.progress import ExportProgress
from tests.helpers import discover as discover_catalog
from tests.helpers import run_tap, select_streams

LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*: export (?P<id>\d+): (?P<got>\d+) of (?P<total>\d+) "
    r"result file\(s\) downloaded \((?P<mb>[\d.]+) MB\), (?P<emitted>\d+) emitted, (?P<rows>\d+) row\(s\) so far$"
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_line_every_interval_and_no_more_often(caplog):
    clock = Clock()
    logger = logging.getLogger("test-progress")
    p = ExportProgress("visitor [a .. b)", 7, 60, logger, clock=clock)
    with caplog.at_level(logging.INFO, logger="test-progress"):
        for _second in range(1, 36):  # 35 s of a read: a file every second, rows all along
            clock.now += 1
            p.file_downloaded(1_000_000)
            p.rows_emitted(5000)
            p.tick()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3  # at 10, 20 and 30 s
    assert lines[0] == (
        "visitor [a .. b): export 7: 10 of 60 result file(s) downloaded (10.0 MB), 0 emitted, 50000 row(s) so far"
    )


def test_a_short_read_says_nothing(caplog):
    clock = Clock()
    p = ExportProgress("visitor", 7, 3, logging.getLogger("test-progress"), clock=clock)
    with caplog.at_level(logging.INFO, logger="test-progress"):
        clock.now += 9.9
        p.rows_emitted(10)
        p.tick()
    assert not caplog.records
    assert p.wait_seconds() == pytest.approx(0.1)


def _progress_lines(stderr: str) -> list[re.Match[str]]:
    return [m for m in map(LINE.match, stderr.splitlines()) if m]


def test_a_slow_download_is_not_silent(fresh_sandbox, monkeypatch):
    monkeypatch.setattr(progress, "PROGRESS_SECONDS", 0.2)
    sb = fresh_sandbox(rows_per_file=100)
    sb.inject("slow", count=1, op="download", seconds=1.5)
    cfg = sb.tap_config(window_days=365)
    run = run_tap(cfg, catalog=select_streams(discover_catalog(cfg), ["list_membership"]))
    assert run.returncode == 0, run.stderr[-3000:]
    lines = _progress_lines(run.stderr)
    assert lines, run.stderr[-3000:]
    assert any(int(m["total"]) >= 4 for m in lines)  # ~500 rows in the first window, 100 a file
    assert any(int(m["got"]) < int(m["total"]) for m in lines)  # said while the slow file was downloading
    for export_id in {m["id"] for m in lines}:  # each export's read has its own lines
        stamps = [dt.datetime.strptime(m["time"], "%Y-%m-%d %H:%M:%S,%f") for m in lines if m["id"] == export_id]
        assert all((b - a).total_seconds() >= 0.19 for a, b in itertools.pairwise(stamps))  # never more often


def test_a_long_emit_is_not_silent(fresh_sandbox, monkeypatch):
    monkeypatch.setattr(progress, "PROGRESS_SECONDS", 0.0)  # every look at the clock is due: each 1000 rows
    sb = fresh_sandbox(rows_per_file=5000)
    cfg = sb.tap_config(window_days=365)
    run = run_tap(cfg, catalog=select_streams(discover_catalog(cfg), ["visitor_activity"]))
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [int(m["rows"]) for m in _progress_lines(run.stderr)]
    assert 1000 in rows, run.stderr[-3000:]  # said in the middle of the file's 1200 rows


def test_a_short_sync_says_no_progress_line(fresh_sandbox):
    sb = fresh_sandbox(rows_per_file=100)
    cfg = sb.tap_config(window_days=365)
    run = run_tap(cfg, catalog=select_streams(discover_catalog(cfg), ["list_membership"]))
    assert run.returncode == 0
    assert not _progress_lines(run.stderr)
