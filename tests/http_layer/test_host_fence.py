"""Where credentials may go: https to Pardot's hosts (http on loopback only), result links fenced to trusted hosts.

A result link on another host is refused before any byte is sent, also one that URL parsers read
differently (``http://OTHER\\@API/...``); ``download_hosts`` adds hosts. Against a fake Pardot or
a sandbox on loopback, and the fence as a unit.
"""

from __future__ import annotations

import pytest

from tap_pardot_export.errors import RefusedURLError
from tap_pardot_export.pardot import urls
from tests.fake_pardot import TOKEN, Call, assert_clean_failure, config_for, send
from tests.helpers import client_for, run_tap
from tests.sandbox_runs import assert_no_secrets, one_stream, small


@pytest.mark.usefixtures("instant_retries")
@pytest.mark.parametrize(
    ("setting", "url"),
    [("api_url", "http://pi.pardot.com"), ("login_url", "http://login.salesforce.com"), ("api_url", "ftp://x.y")],
)
def test_plain_http_to_a_non_loopback_host_is_refused_before_any_request(fake, setting, url):
    server = fake()
    with pytest.raises(RefusedURLError, match=f"Refusing {setting}"):
        client_for(server.config(**{setting: url}))
    assert server.requests == []


@pytest.mark.usefixtures("instant_retries")
def test_loopback_http_is_accepted():
    for url in ("http://127.0.0.1:1", "http://127.9.9.9:1", "http://[::1]:1", "http://localhost:1"):
        urls.check_url(url, "api_url")
    with pytest.raises(RefusedURLError):
        urls.check_url("http://10.0.0.1", "api_url")


@pytest.mark.usefixtures("instant_retries")
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


@pytest.mark.usefixtures("instant_retries")
def test_result_links_on_the_api_host_are_accepted(fake):
    server = fake()
    client_for(server.config(access_token=TOKEN)).check_host(server.url + "/api/export/x")


def test_result_links_on_another_host_are_refused(fresh_sandbox):
    sb = small(fresh_sandbox)
    port = sb.base_url.rsplit(":", 1)[1]
    sb.config.result_base_url = f"http://localhost:{port}"  # same server, another host name
    cfg, cat = one_stream(sb, "list_membership", window_days=400 // 2)
    run = run_tap(cfg, catalog=cat)
    assert run.returncode != 0
    assert f"Refusing to download http://localhost:{port}/api/export" in run.stderr
    assert sb.stats()["calls"].get("download", 0) == 0
    assert_no_secrets(run, sb)


@pytest.mark.usefixtures("instant_retries")
def test_a_result_link_that_parsers_read_differently_never_reaches_the_other_host(fake, catalog):
    """Found: ``http://OTHER\\@API/file/0``: the host check (urllib.parse) saw API, requests (urllib3)
    connected to OTHER and sent it the bearer token. A parser differential, the classic SSRF one.
    """

    def read(c: Call) -> None:
        link = f"http://127.0.0.1:{c.fake.elsewhere.port}\\@127.0.0.1:{c.fake.port}/dl/1"
        send(c, 200, c.fake.export("Complete", resultRefs=link))

    server = fake(read=read)
    run = run_tap(server.config(max_retries=1), catalog=catalog)
    other = server.elsewhere
    assert other.requests == [], f"the bearer token went to another host: {other.requests[0].headers}"
    assert_clean_failure(run, "Refusing")
