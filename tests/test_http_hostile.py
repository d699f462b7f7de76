"""The HTTP layer against hostile servers on loopback, and small in-process units of it.

Each hostile server is the fake Pardot of ``tests/fake_pardot.py`` (a thread on 127.0.0.1 that
records what it received and stops at the end of its test), a call or a path of it answered as
the test needs; every loop in a route is bounded. Clients are built in-process with
``build_client``; retry waits are skipped (the retry policy's pause is replaced), so nothing
sleeps for real.
"""

from __future__ import annotations

import datetime as dt
import gc
import io
import logging
import re
import socket
import threading
import time
import typing as t

import pytest
from pardot_export_sandbox import DataConfig
from singer_sdk.exceptions import ConfigValidationError

from tap_pardot_export.errors import (
    DailyLimitReached,
    FirstContactError,
    PardotAPIError,
    PardotAuthError,
    RefusedURLError,
    TransientError,
)
from tap_pardot_export.pardot import transport, urls
from tap_pardot_export.pardot.auth import PardotAuthenticator
from tap_pardot_export.pardot.cancel import CancelOutcome, cancel_now
from tap_pardot_export.pardot.retry import RetryPolicy
from tap_pardot_export.redact import REDACTION, install_redaction
from tests.fake_pardot import API, TOKEN, TOKEN_PATH, Call, closed_port, config_for, send, stall, token_ok
from tests.helpers import client_for, discover, run_tap, select_streams

if t.TYPE_CHECKING:
    from tap_pardot_export.pardot.client import PardotClient

pytestmark = pytest.mark.usefixtures("instant_retries")  # retry waits are computed and logged, but not slept


# -- redirects ----------------------------------------------------------------------------------------


def test_token_307_is_refused_and_the_other_host_never_sees_the_secret(fake):
    login = fake(script={"token": ["redirect"]})  # a 307 to the same path on another host
    client = client_for(login.config())
    with pytest.raises(RefusedURLError, match="redirect to localhost refused"):
        client.tokens.token()
    assert login.elsewhere.requests == [], "the secret was re-posted to the redirect's host"
    assert login.hits(TOKEN_PATH) == 1, "a redirect is not retried"


def test_302_on_an_api_call_and_on_a_download_is_a_clear_error(fake):
    def redirect(h: Call) -> None:
        send(h, 302, {}, {"Location": "https://evil.example/steal"})

    server = fake(create=redirect, paths={"/files/1.csv": redirect})
    client = client_for(server.config())
    with pytest.raises(RefusedURLError, match=r"redirect to evil\.example refused"):
        client.json("POST", "create", "create", json_body={})
    with pytest.raises(RefusedURLError, match=r"redirect to evil\.example refused"):
        client.download(server.url + "/files/1.csv", io.BytesIO())
    assert server.hits(API + "create") == 1 and server.hits("/files/1.csv") == 1


# -- credentials stay home ------------------------------------------------------------------------------


def test_netrc_never_replaces_the_bearer_token(fake, tmp_path, monkeypatch):
    server = fake()
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login netrc-user password netrc-password\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(netrc))
    client = client_for(server.config())
    client.json("GET", "read/id/1", "read")
    (sent,) = [r for r in server.requests if r.path == API + "read/id/1"]
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"


def test_proxies_from_the_environment_are_still_honoured(monkeypatch):
    for name in ("https_proxy", "no_proxy", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "pi.internal.example")
    assert urls.env_proxies("https://pi.pardot.com/x").get("https") == "http://proxy.example:3128"
    assert urls.env_proxies("https://pi.internal.example/x") == {}
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/corp.pem")
    session = transport.make_session()
    assert session.verify == "/etc/ssl/corp.pem" and session.trust_env is False


@pytest.mark.parametrize(
    ("setting", "url"),
    [("api_url", "http://pi.pardot.com"), ("login_url", "http://login.salesforce.com"), ("api_url", "ftp://x.y")],
)
def test_plain_http_to_a_non_loopback_host_is_refused_before_any_request(fake, setting, url):
    server = fake()
    with pytest.raises(RefusedURLError, match=f"Refusing {setting}"):
        client_for(server.config(**{setting: url}))
    assert server.requests == []


def test_loopback_http_is_accepted():
    for url in ("http://127.0.0.1:1", "http://127.9.9.9:1", "http://[::1]:1", "http://localhost:1"):
        urls.check_url(url, "api_url")
    with pytest.raises(RefusedURLError):
        urls.check_url("http://10.0.0.1", "api_url")


def test_error_text_that_echoes_the_bearer_token_is_redacted(fake, caplog):
    def echo(h: Call) -> None:
        auth = h.headers.get("Authorization")
        send(h, 400, {"@attributes": {"stat": "fail", "err_code": 999}, "err": f"bad request; you sent {auth}"})

    server = fake(create=echo)
    client = client_for(server.config())
    caplog.set_level(logging.INFO)
    with pytest.raises(PardotAPIError) as info:
        client.json("POST", "create", "create", json_body={})
    logging.getLogger("tap-pardot-export").error("%s", info.value)
    logging.getLogger("singer_sdk.x").warning("issued token %s", client.tokens.token())
    assert "issued token ***" in caplog.text
    assert "you sent Bearer ***" in caplog.text
    assert TOKEN not in caplog.text and TOKEN not in str(info.value)


def test_the_redaction_filter_scrubs_args_numbers_and_user_info(caplog):
    install_redaction(lambda: ["s3cr3t-value", str(98765432109876)])
    caplog.set_level(logging.INFO)
    log = logging.getLogger("tap-pardot-export")
    log.info("secret %s, number %s, url %s", "s3cr3t-value", 98765432109876, "https://bob:pw@host.example/x")
    assert "secret ***, number ***, url https://***@host.example/x" in caplog.text
    assert REDACTION.scrub("token%20s3cr3t-value") == "token%20***"


def test_a_replaced_configured_token_stays_secret_and_finished_clients_are_forgotten(fake, caplog):
    server = fake()
    client = client_for(server.config(access_token="00Dold!configured-token"))
    assert client.tokens.refresh("00Dold!configured-token") == TOKEN
    caplog.set_level(logging.INFO)
    logging.getLogger("tap-pardot-export").info("old %s new %s", "00Dold!configured-token", TOKEN)
    assert "old *** new ***" in caplog.text
    before = len(REDACTION.sources)
    gone = client_for(server.config(client_secret="a-secret-of-a-finished-client"))
    assert len(REDACTION.sources) == before + 1
    del gone
    gc.collect()
    assert "a-secret-of-a-finished-client" not in REDACTION.secrets()


def test_a_numeric_client_secret_is_never_printed(fresh_sandbox):
    secret = 98765432109876
    sb = fresh_sandbox(client_secret=str(secret), data=_small_data())
    cfg = sb.tap_config(client_secret=secret, window_days=200)
    run = run_tap(cfg, catalog=select_streams(discover(sb.tap_config()), ["list_membership"]))
    assert str(secret) not in run.everything
    assert "Traceback" not in run.stderr


def test_user_info_in_api_url_is_never_printed_nor_sent(fresh_sandbox):
    sb = fresh_sandbox(data=_small_data())
    host = sb.base_url.split("://", 1)[1]
    cfg = sb.tap_config(api_url=f"http://bob:hunter2-pass@{host}", window_days=200)
    run = run_tap(cfg, catalog=select_streams(discover(sb.tap_config()), ["list_membership"]))
    assert run.returncode == 0, run.stderr[-2000:]
    assert "hunter2-pass" not in run.everything
    assert run.records("list_membership")


def test_a_token_with_a_newline_fails_at_once(fake):
    server = fake(token=lambda h: send(h, 200, {"access_token": "00Dabc\nX-Evil: 1"}))
    client = client_for(server.config())
    started = time.monotonic()
    with pytest.raises(PardotAuthError, match="holds a newline"):
        client.tokens.token()
    assert time.monotonic() - started < 5 and server.hits(TOKEN_PATH) == 1
    with pytest.raises(PardotAuthError, match="holds a newline"):
        client_for(server.config(access_token="tok\nen"))


# -- first contact ----------------------------------------------------------------------------------------


def _first_call_fails(client: PardotClient, what: str) -> str:
    started = time.monotonic()
    with pytest.raises((FirstContactError, PardotAuthError)) as info:
        if what == "token":
            client.tokens.token()
        else:
            client.json("GET", "read/id/1", "read")
    assert time.monotonic() - started < 5
    return str(info.value)


@pytest.mark.parametrize("setting", ["api_url", "login_url"])
def test_a_closed_port_on_first_contact_fails_fast_naming_the_setting(setting):
    url = f"http://127.0.0.1:{closed_port()}"
    cfg = config_for("http://127.0.0.1:1", **{setting: url}, access_token=TOKEN if setting == "api_url" else None)
    client = client_for(cfg)
    text = _first_call_fails(client, "token" if setting == "login_url" else "api")
    assert f"The {setting} host 127.0.0.1 refuses connections" in text


def test_an_unresolvable_host_on_first_contact_fails_fast_naming_the_setting(monkeypatch):
    real = socket.getaddrinfo

    def resolve(host: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        if str(host).endswith(".invalid"):  # answered here: no query leaves the machine
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    client = client_for(config_for("https://pi.pardot-typo.invalid", access_token=TOKEN))
    text = _first_call_fails(client, "api")
    assert "The api_url host pi.pardot-typo.invalid does not resolve" in text


def test_a_web_server_that_is_not_pardot_fails_fast(fake):
    html = fake(paths={"*": lambda h: send(h, 200, b"<html>Welcome to nginx</html>")})
    text = _first_call_fails(client_for(html.config(access_token=TOKEN)), "api")
    assert "The api_url host 127.0.0.1 does not speak Pardot's Export API" in text
    assert html.hits(API + "read/id/1") == 1


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (lambda h: send(h, 404, b"<html>Not Found</html>"), "HTTP 404 with text/html"),
        (lambda h: send(h, 200, b"<html>hello</html>"), "HTTP 200 with text/html"),
        (lambda h: send(h, 200, [1, 2, 3]), "JSON that is not an object"),
        (lambda h: send(h, 200, {"something": "else"}), "HTTP 200"),
    ],
)
def test_a_login_url_that_is_not_a_token_endpoint_says_so(fake, answer, words):
    server = fake(token=answer)
    text = _first_call_fails(client_for(server.config()), "token")
    assert "is not a Salesforce token endpoint" in text and words in text
    assert "credentials must be renewed" not in text
    assert server.hits(TOKEN_PATH) == 1


def test_invalid_grant_means_dead_credentials(fake):
    server = fake(token=lambda h: send(h, 400, {"error": "invalid_grant", "error_description": "expired"}))
    text = _first_call_fails(client_for(server.config()), "token")
    assert "invalid_grant" in text and "credentials must be renewed" in text


def test_a_service_that_answered_once_is_retried(fake):
    def flaky(h: Call) -> None:
        if h.attempt == 2:
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)  # a reset on the second call only
            return
        send(h, 200, {"export": {"id": 1}})

    server = fake(read=flaky)
    client = client_for(server.config())
    client.json("GET", "read/id/1", "read")
    client.json("GET", "read/id/1", "read")
    assert server.hits(API + "read/id/1") == 3


# -- Pardot's answers -------------------------------------------------------------------------------------


def test_a_200_with_the_122_envelope_is_the_daily_limit(fake):
    envelope = {"@attributes": {"stat": "fail", "version": 1, "err_code": 122}, "err": "Daily API rate limit met."}
    server = fake(create=lambda h: send(h, 200, envelope))
    with pytest.raises(DailyLimitReached, match="daily API call limit is spent"):
        client_for(server.config()).json("POST", "create", "create", json_body={})


def test_an_unknown_business_unit_is_an_api_error_naming_the_setting(fresh_sandbox):
    sb = fresh_sandbox(data=_small_data())
    client = client_for(sb.tap_config(business_unit_id="0Uv000000000999AAA"))
    with pytest.raises(PardotAPIError) as info:
        client.json("GET", "read/id/1", "read")
    assert not isinstance(info.value, ConfigValidationError), "calls were made: not a config validation error"
    assert info.value.code == 201 and "business_unit_id" in str(info.value)


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


# -- downloads ----------------------------------------------------------------------------------------------


def test_a_trickling_download_hits_download_timeout(fake):
    def trickle(h: Call) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/csv")
        h.send_header("Content-Length", "1000")
        h.end_headers()
        for _ in range(40):  # at most 4 s, then the handler gives up by itself
            h.wfile.write(b"x")
            h.wfile.flush()
            time.sleep(0.1)

    server = fake(paths={"/files/slow.csv": trickle})
    client = client_for(server.config(download_timeout=0.6, max_retries=1, request_timeout=5))
    started = time.monotonic()
    with pytest.raises(
        PardotAPIError, match=r"Giving up on download .*/files/slow\.csv after 2 tries: .*download_timeout"
    ):
        client.download(server.url + "/files/slow.csv", io.BytesIO())
    assert time.monotonic() - started < 3.5
    assert server.hits("/files/slow.csv") == 2


def test_a_download_within_its_deadline_is_read_whole(fake):
    body = b"id,name\n" + b"".join(b"%d,row\n" % i for i in range(2000))
    server = fake(paths={"/files/ok.csv": lambda h: send(h, 200, body)})
    sink = io.BytesIO()
    assert client_for(server.config()).download(server.url + "/files/ok.csv", sink) == len(body)
    assert sink.getvalue() == body


@pytest.mark.parametrize(
    ("url", "extra", "ok"),
    [
        ("https://www.pardot.com/api/export/version/4/do/downloadResults/id/1", [], True),
        ("https://pardot.com/x", [], True),
        ("http://www.pardot.com/x", [], False),
        ("https://evil.example/x", [], False),
        ("https://www.pardot.com.evil.example/x", [], False),
        ("https://proxy.example/x", ["proxy.example"], True),
        ("https://PROXY.example./x", ["proxy.example"], True),
        ("https://other.example/x", ["proxy.example"], False),
    ],
)
def test_result_links_are_fenced_to_trusted_hosts(url, extra, ok):
    client = client_for(config_for("https://pi.pardot.com", access_token=TOKEN, download_hosts=extra))
    if ok:
        client.check_host(url)
    else:
        with pytest.raises(RefusedURLError) as info:
            client.check_host(url)
        assert "download_hosts" in str(info.value)


def test_result_links_on_the_api_host_are_accepted(fake):
    server = fake()
    client_for(server.config(access_token=TOKEN)).check_host(server.url + "/api/export/x")


# -- the signal path ----------------------------------------------------------------------------------------


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


def _small_data() -> DataConfig:
    utc = dt.timezone.utc
    return DataConfig(
        start=dt.datetime(2024, 1, 1, tzinfo=utc), end=dt.datetime(2025, 1, 1, tzinfo=utc), rows={"list_membership": 50}
    )
