"""Where credentials may go: https to Pardot's hosts (http on loopback only), result links fenced to trusted hosts.

A result link on another host is refused before any byte is sent, also one that URL parsers read
differently (``http://OTHER\\@API/...``); ``download_hosts`` adds hosts. Against a fake Pardot or
a sandbox on loopback, and the fence as a unit.
"""

from __future__ import annotations

import pytest

from tests.fake_pardot import Call, assert_clean_failure, send
from tests.helpers import run_tap
from tests.sandbox_runs import assert_no_secrets, one_stream, small


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
