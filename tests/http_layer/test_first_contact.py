"""First contact: a closed port, a name that does not resolve, a server not Pardot's fail fast, naming the setting.

A service that answered once is retried; the check never says OK for a business unit on an
``api_url`` that refuses connections.

Each hostile server is the fake Pardot of ``tests/fake_pardot.py`` (a thread on 127.0.0.1 that
records what it received and stops at the end of its test), a call or a path of it answered as
the test needs; every loop in a route is bounded. Clients are built in-process with
``build_client``; retry waits are skipped (the retry policy's pause is replaced), so nothing
sleeps for real.
"""

from __future__ import annotations

import datetime as dt
import socket
import time
import typing as t

import pytest
from pardot_export_sandbox import DataConfig
from singer_sdk.exceptions import ConfigValidationError

from tap_pardot_export.errors import FirstContactError, PardotAPIError, PardotAuthError
from tests.fake_pardot import API, TOKEN, TOKEN_PATH, Call, closed_port, config_for, send
from tests.helpers import client_for, run_check

if t.TYPE_CHECKING:
    from tap_pardot_export.pardot.client import PardotClient

pytestmark = pytest.mark.usefixtures("instant_retries")  # retry waits are computed and logged, but not slept


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


def test_an_unknown_business_unit_is_an_api_error_naming_the_setting(fresh_sandbox):
    sb = fresh_sandbox(data=_small_data())
    client = client_for(sb.tap_config(business_unit_id="0Uv000000000999AAA"))
    with pytest.raises(PardotAPIError) as info:
        client.json("GET", "read/id/1", "read")
    assert not isinstance(info.value, ConfigValidationError), "calls were made: not a config validation error"
    assert info.value.code == 201 and "business_unit_id" in str(info.value)


def _small_data() -> DataConfig:
    utc = dt.timezone.utc
    return DataConfig(
        start=dt.datetime(2024, 1, 1, tzinfo=utc), end=dt.datetime(2025, 1, 1, tzinfo=utc), rows={"list_membership": 50}
    )


def test_check_never_says_ok_for_a_business_unit_on_an_api_url_that_refuses_connections(fake, tmp_path):
    """Found: ``--check`` printed "OK business unit ... found on 127.0.0.1" and "OK API version 4"
    for a closed port: the custom field query was sent as a result link (retried, never first
    contact), and its give-up read as "no custom fields".
    """
    login = fake()
    cfg = login.config(max_retries=1)
    cfg["api_url"] = f"http://127.0.0.1:{closed_port()}"
    run = run_check(cfg)
    assert run.returncode != 0
    assert "OK    business unit" not in run.everything, run.everything[-2000:]
    assert "FAIL  business unit" in run.everything
    assert "api_url" in run.everything
    assert "Traceback" not in run.everything
