"""Each message says what happened, once (issue 19.5): ``--test``'s record limit, no line said twice.

A successful ``--test`` logs no ERROR line (the SDK stops each stream at its record limit with an
exception: the tap says what it is, once per stream); and no line of a sync's or a ``--test``'s
log repeats another without new information. What a cancel's answer came to is in
``tests/export_queue/test_cancels.py``.
"""

from __future__ import annotations

import re

from tap_pardot_export.spec import SPECS
from tests.helpers import run_tap

#: a log line without its time stamp
_STAMP = re.compile(r"^\d{4}-\d\d-\d\d[ T][\d:,.]+Z?\s*\|?\s*")


def _lines(stderr: str) -> list[str]:
    """The log's lines without time stamps; the SDK's metrics (figures that differ each time) left out."""
    return [_STAMP.sub("", line) for line in stderr.splitlines() if line.strip() and "METRIC" not in line]


def _repeated(lines: list[str]) -> list[str]:
    seen: set[str] = set()
    repeated: list[str] = []
    for line in lines:
        if line in seen:
            repeated.append(line)
        seen.add(line)
    return repeated


def test_a_successful_test_run_logs_no_error(fresh_sandbox):
    sb = fresh_sandbox(rows_per_file=500)
    run = run_tap(sb.tap_config(), args=["--test"])
    assert run.returncode == 0, run.stderr[-3000:]
    lines = _lines(run.stderr)
    assert not [line for line in lines if "ERROR" in line or "WARNING" in line], run.stderr[-3000:]
    assert "unhandled error" not in run.stderr
    assert "AbortedSync" not in run.stderr
    records = [m for m in run.messages if m["type"] == "RECORD"]
    streams = sorted({m["stream"] for m in records})
    assert len(records) == len(streams) == len(SPECS)
    for stream in streams:
        said = sum(f" {stream}: stopped after 1 record(s), the record limit of --test" in f" {line}" for line in lines)
        # once per stream (the account stream's one row ends it before the limit does)
        assert said == (0 if stream == "account" else 1), stream
    assert not _repeated(lines), _repeated(lines)


def test_a_sync_logs_no_line_twice(fresh_sandbox):
    sb = fresh_sandbox(rows_per_file=500)
    run = run_tap(sb.tap_config(window_days=200))
    assert run.returncode == 0, run.stderr[-3000:]
    lines = _lines(run.stderr)
    assert not _repeated(lines), _repeated(lines)
    assert sum("Starting incremental sync of 'prospect'" in line for line in lines) == 1
    assert sum("prospect: windows from" in line for line in lines) == 1
