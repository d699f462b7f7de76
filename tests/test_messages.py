"""Each message says what happened (issue 19.5): cancel outcomes, ``--test``'s record limit, no line said twice.

A cancel refused because the export is already Complete is "already Complete", not "no answer";
a successful ``--test`` logs no ERROR line (the SDK stops each stream at its record limit with an
exception: the tap says what it is, once per stream); and no line of a sync's or a ``--test``'s
log repeats another without new information.
"""

from __future__ import annotations

import re
import time
import typing as t

import pytest

from tap_pardot_export.pardot.cancel import cancel_now, read_cancel_answer
from tap_pardot_export.spec import SPECS
from tests.fake_pardot import send, stall
from tests.helpers import client_for, run_tap

if t.TYPE_CHECKING:
    from tests.fake_pardot import Call, FakePardot

#: a log line without its time stamp
_STAMP = re.compile(r"^\d{4}-\d\d-\d\d[ T][\d:,.]+Z?\s*\|?\s*")


@pytest.mark.parametrize(
    ("status", "body", "says", "canceled"),
    [
        (200, '{"export": {"id": 7, "state": "Canceled"}}', "canceled", True),
        (
            400,
            '{"@attributes": {"stat": "fail", "err_code": 178}, "err": "Export 7 is Complete and cannot be canceled"}',
            "already Complete: nothing to cancel",
            False,
        ),
        (
            400,
            '<?xml version="1.0"?><rsp stat="fail"><err code="178">Export 7 is Failed and cannot be canceled</err>'
            "</rsp>",
            "already Failed: nothing to cancel",
            False,
        ),
        (400, '{"@attributes": {"stat": "fail", "err_code": 178}, "err": "Invalid state"}', "already ended", False),
        (
            403,
            '{"@attributes": {"stat": "fail", "err_code": 49}, "err": "Access denied"}',
            "refused (HTTP 403, error 49: Access denied)",
            False,
        ),
        (502, "Bad Gateway", "refused (HTTP 502, Bad Gateway)", False),
    ],
    ids=["canceled", "complete", "failed-xml", "state-forbids", "refused", "not-json"],
)
def test_a_cancel_answer_says_what_it_came_to(status, body, says, canceled):
    outcome = read_cancel_answer(status, body)
    assert outcome.says.startswith(says)
    assert outcome.canceled is canceled
    assert outcome.answered


def _client(server: FakePardot) -> t.Any:
    return client_for(
        {
            "access_token": "cancel-token",
            "api_url": server.url,
            "login_url": server.url,
            "business_unit_id": "0Uv5e0000000001AAA",
        }
    )


def test_cancel_now_tells_a_complete_export_from_no_answer(fake):
    complete = {"@attributes": {"stat": "fail", "err_code": 178}, "err": "Export 9 is Complete and cannot be canceled"}
    outcome = cancel_now(_client(fake(cancel=lambda c: send(c, 400, complete))), 9, timeout=10)
    assert (outcome.canceled, outcome.says, outcome.answered) == (False, "already Complete: nothing to cancel", True)

    def silence(c: Call) -> None:
        stall(c, 30)  # let go when the fake stops
        send(c, 200, {})

    silent = fake(cancel=silence)
    t0 = time.monotonic()
    outcome = cancel_now(_client(silent), 9, timeout=0.3)
    assert time.monotonic() - t0 < 10
    assert (outcome.canceled, outcome.says, outcome.answered) == (False, "no answer within 0.3s", False)


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
