"""The HTTP transport: at most max_concurrency requests in flight, proxies from the environment, no netrc.

Against the sandbox (downloads slowed so they overlap) and the fake Pardot of
``tests/fake_pardot.py`` on loopback.
"""

from __future__ import annotations

import pytest

from tap_pardot_export.pardot import transport, urls
from tests.fake_pardot import API, TOKEN
from tests.helpers import client_for, run_tap
from tests.sandbox_runs import complete, one_stream, small


def test_requests_in_flight_never_exceed_max_concurrency(fresh_sandbox):
    sb = small(fresh_sandbox, rows_per_file=20)
    sb.inject("slow", count=12, op="download", seconds=0.1)  # long enough for downloads to overlap
    cfg, cat = one_stream(sb, "visitor_activity", window_days=400 // 2, max_concurrency=2)
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    assert sb.stats()["max_inflight"] == 2, "downloads run in parallel, two at a time"
    complete(sb, "visitor_activity", [run])


@pytest.mark.usefixtures("instant_retries")
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


@pytest.mark.usefixtures("instant_retries")
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
