"""Retries: transient faults retried and nothing lost, bounded by max_retries and retry_max_time, Retry-After honoured.

The sync tests inject faults through the sandbox over HTTP; the others use the fake Pardot of
``tests/fake_pardot.py`` and the retry policy in-process. Retry waits are computed and logged, but
not slept.
"""

from __future__ import annotations

import logging
import re
import time

import pytest

from tap_pardot_export.errors import PardotAPIError, TransientError
from tap_pardot_export.pardot.retry import RetryPolicy
from tests.fake_pardot import TOKEN, TOKEN_PATH, Call, send, token_ok
from tests.helpers import client_for, run_tap
from tests.sandbox_runs import assert_no_secrets, complete, one_stream, small

pytestmark = pytest.mark.usefixtures("instant_retries")  # retry waits are computed and logged, but not slept


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


def test_token_requests_follow_the_same_retry_policy(fake):
    calls = {"n": 0}

    def busy(h: Call) -> None:
        calls["n"] += 1
        if calls["n"] <= 2:
            send(h, 503, {"error": "server_error"}, {"Retry-After": "7"})
        else:
            token_ok(h)

    server = fake(token=busy)
    client = client_for(server.config(max_retries=2))
    assert client.tokens.token() == TOKEN
    assert server.hits(TOKEN_PATH) == 3
    calls["n"] = -10
    client2 = client_for(server.config(max_retries=2))
    with pytest.raises(PardotAPIError, match=r"Giving up on token request .* after 3 tries"):
        client2.tokens.token()


def test_the_retry_policy_honours_retry_after_and_its_bounds(caplog):
    policy = RetryPolicy(max_retries=3, max_time=60)
    tries = {"n": 0}

    def attempt() -> str:
        tries["n"] += 1
        raise TransientError("busy", retry_after=5.0)

    caplog.set_level(logging.WARNING)
    with pytest.raises(PardotAPIError, match="after 4 tries: busy"):
        policy.run(attempt, "read", "http://127.0.0.1/x")
    assert tries["n"] == 4
    waits = [float(w) for w in re.findall(r"retry \d/3 in ([\d.]+)s", caplog.text)]
    assert len(waits) == 3 and all(w >= 5.0 for w in waits)
    delays = policy.delays()
    planned = [next(delays) for _ in range(40)]
    assert all(0 <= w <= policy.cap for w in planned), "exponential with full jitter, capped"


def test_the_retry_policy_stops_at_max_time():
    tries = {"n": 0}

    def slow_failure() -> None:
        tries["n"] += 1
        time.sleep(0.1)
        raise TransientError("slow")

    with pytest.raises(PardotAPIError, match="Giving up on read"):
        RetryPolicy(max_retries=50, max_time=0.35).run(slow_failure, "read", "http://127.0.0.1/x")
    assert 2 <= tries["n"] <= 5
    tries["n"] = 0
    with pytest.raises(PardotAPIError):
        RetryPolicy(max_retries=50, max_time=0.05).run(slow_failure, "read", "http://127.0.0.1/x", extra_time=0.3)
    assert tries["n"] >= 3, "a download's working time extends the bound"
