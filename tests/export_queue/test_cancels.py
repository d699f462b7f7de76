"""Canceling exports: what a cancel's answer came to, a signal's cancel that never waits, refusals passed over.

``cancel_now`` (a signal's cancels) returns at its timeout, without a slot or the token lock, and
never raises; a cancel refused because the export is already Complete says so, not "no answer"
(issue 19.5). The runner's cancel and resume let limit, budget and auth errors through and log
other refusals. Against the fake Pardot of ``tests/fake_pardot.py`` and stand-in clients.
"""

from __future__ import annotations

import threading
import time
import typing as t

import pytest

from tap_pardot_export.errors import CallBudgetSpent, DailyLimitReached, PardotAPIError, PardotAuthError
from tap_pardot_export.pardot.cancel import CancelOutcome, cancel_now, read_cancel_answer
from tap_pardot_export.pardot.exports import ExportSpec, InFlight
from tap_pardot_export.pardot.polling import Polling
from tap_pardot_export.pardot.retry import RetryPolicy
from tap_pardot_export.pardot.runner import ExportRunner
from tests.fake_pardot import API, TOKEN, Call, closed_port, config_for, send, stall
from tests.helpers import client_for

if t.TYPE_CHECKING:
    from tests.fake_pardot import FakePardot


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


@pytest.mark.usefixtures("instant_retries")
def test_cancel_now_returns_promptly_with_the_slots_and_the_token_lock_held(fake):
    ok = {"@attributes": {"stat": "ok"}, "export": {"id": 42, "state": "Canceled"}}
    server = fake(cancel=lambda h: send(h, 200, ok))
    client = client_for(server.config(max_concurrency=2))
    client.tokens.token()
    for _ in range(client.max_concurrency):
        client.slots.acquire()
    result: list[CancelOutcome] = []
    with client.tokens._lock:
        worker = threading.Thread(target=lambda: result.append(cancel_now(client, 42, timeout=2.0)), daemon=True)
        worker.start()
        worker.join(4)
        assert not worker.is_alive(), "cancel_now waited on a lock or slot the main thread holds"
    assert [r.canceled for r in result] == [True]
    (sent,) = [r for r in server.requests if r.path == API + "cancel/id/42"]
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"


@pytest.mark.usefixtures("instant_retries")
def test_cancel_now_gives_up_at_its_timeout_and_never_raises(fake):
    server = fake(cancel=lambda h: stall(h, 3))  # bounded; the client must not wait this long
    client = client_for(server.config())
    client.tokens.token()
    started = time.monotonic()
    assert cancel_now(client, 7, timeout=0.5).says == "no answer within 0.5s"
    assert time.monotonic() - started < 2.5, "gave up at its timeout, not after the 3 s the server hangs"
    no_token = client_for(server.config())
    assert cancel_now(no_token, 7, timeout=0.5).canceled is False  # no token yet: no request, no refresh
    closed = client_for(config_for(f"http://127.0.0.1:{closed_port()}", access_token=TOKEN))
    assert cancel_now(closed, 7, timeout=0.5).canceled is False


class RefusingClient:
    """A client whose every call raises ``error`` (for the runner's cancel and resume paths)."""

    max_concurrency = 1

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls: list[str] = []
        self.transport = type("Transport", (), {"policy": RetryPolicy(max_retries=0, max_time=0)})()

    def json(self, method: str, op: str, kind: str, **kw: t.Any) -> t.Any:
        self.calls.append(kind)
        raise self.error


def refusing_runner(client: RefusingClient) -> ExportRunner:
    polling = Polling(poll_interval=0, max_poll_interval=0, export_timeout=60)
    return ExportRunner(client, polling=polling, in_flight=InFlight(), spellings={})  # type: ignore[arg-type]  # a stand-in client


@pytest.mark.parametrize(
    "error",
    [
        DailyLimitReached("daily limit", code=122),
        CallBudgetSpent("budget spent"),
        PardotAuthError("credentials dead", code=184),
    ],
)
def test_limit_budget_and_auth_errors_are_not_swallowed_by_cancel_or_resume(error):
    client = RefusingClient(error)
    runner = refusing_runner(client)
    with pytest.raises(type(error)):
        runner.cancel(5, "x")
    spec = ExportSpec("listMembership", ["id"], "filter_by_updated_at", {}, "x")
    with pytest.raises(type(error)):
        runner.start(spec, resume_id=5)
    assert client.calls == ["cancel", "read"]
    runner.stop()  # on a signal the cancel is a courtesy: the handler must still write the state
    assert runner.cancel(5, "x") is False


def test_other_refusals_of_cancel_and_resume_are_logged_and_passed_over():
    client = RefusingClient(PardotAPIError("export 5 is finished", code=60))
    runner = refusing_runner(client)
    assert runner.cancel(5, "x") is False
    assert runner._resume(5, "x") is None
    assert runner._resume("abc", "x") is None  # a pending id in state that is not an integer
    assert client.calls == ["cancel", "read"]
