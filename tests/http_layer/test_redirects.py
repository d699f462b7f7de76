"""Redirects are never followed: from the token endpoint, an API call or a download, an error naming the host.

Each hostile server is the fake Pardot of ``tests/fake_pardot.py`` (a thread on 127.0.0.1 that
records what it received and stops at the end of its test), a call or a path of it answered as
the test needs; every loop in a route is bounded. Clients are built in-process with
``build_client``; retry waits are skipped (the retry policy's pause is replaced), so nothing
sleeps for real.
"""

from __future__ import annotations

import io

import pytest

from tap_pardot_export.errors import RefusedURLError
from tests.fake_pardot import API, TOKEN_PATH, Call, send
from tests.helpers import client_for

pytestmark = pytest.mark.usefixtures("instant_retries")  # retry waits are computed and logged, but not slept


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
