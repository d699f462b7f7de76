"""Access tokens: refreshed once however many calls it rejects, named by their real cause when refused.

A token answer that is an OAuth error under HTTP 200, empty, not a string, oversized or holding a
newline is named as what it is and never retried; refused credentials end the run with a clear
message; a plain ``access_token`` is refreshed when credentials exist. Against the sandbox and the
fake Pardot of ``tests/fake_pardot.py`` on loopback.
"""

from __future__ import annotations

import threading
import time

import pytest

from tap_pardot_export.errors import PardotAuthError
from tap_pardot_export.pardot.auth import PardotAuthenticator
from tests.fake_pardot import TOKEN_PATH, Call, send
from tests.helpers import client_for, run_tap
from tests.sandbox_runs import assert_no_secrets, complete, one_stream, small


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


@pytest.mark.usefixtures("instant_retries")
def test_parallel_rejections_refresh_the_token_once(fake):
    def token(h: Call) -> None:
        send(h, 200, {"access_token": f"00Dtok!{h.attempt:08d}"})

    def read(h: Call) -> None:
        if h.headers.get("Authorization") == "Bearer 00Dtok!00000001":
            time.sleep(0.1)
            send(h, 401, {"@attributes": {"stat": "fail", "err_code": 184}, "err": "expired"})
        else:
            send(h, 200, {"export": {"id": 1}})

    server = fake(token=token, read=read)
    client = client_for(server.config(max_concurrency=4))
    client.tokens.token()
    threads = [threading.Thread(target=client.json, args=("GET", "read/id/1", "read")) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(10)
    assert server.hits(TOKEN_PATH) == 2, "one first token, then exactly one refresh"
    assert isinstance(client.tokens, PardotAuthenticator)


@pytest.mark.usefixtures("instant_retries")
def test_a_token_with_a_newline_fails_at_once(fake):
    server = fake(token=lambda h: send(h, 200, {"access_token": "00Dabc\nX-Evil: 1"}))
    client = client_for(server.config())
    started = time.monotonic()
    with pytest.raises(PardotAuthError, match="holds a newline"):
        client.tokens.token()
    assert time.monotonic() - started < 5 and server.hits(TOKEN_PATH) == 1
    with pytest.raises(PardotAuthError, match="holds a newline"):
        client_for(server.config(access_token="tok\nen"))


@pytest.mark.usefixtures("instant_retries")
@pytest.mark.parametrize(
    ("answer", "words"),
    [
        ((200, {"error": "invalid_grant", "error_description": "expired access/refresh token"}), "refused the OAuth"),
        ((200, {"access_token": "", "token_type": "Bearer"}), "is empty"),
        ((200, {"access_token": "x" * 200_000}), "200000 characters long, more than an HTTP header takes"),
        ((200, {"access_token": 12345}), "not a string"),
        ((200, {"token_type": "Bearer"}), "JSON without an access_token"),
        ((200, ["not", "an", "object"]), "JSON that is not an object"),
    ],
)
def test_a_token_answer_is_named_by_its_real_cause(fake, answer, words):
    status, body = answer
    server = fake(token=lambda h: send(h, status, body))
    with pytest.raises(PardotAuthError) as info:
        client_for(server.config()).tokens.token()
    assert words in str(info.value)
    assert server.hits(TOKEN_PATH) == 1, "a dead answer is not retried"
