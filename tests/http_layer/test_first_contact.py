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

import pytest

from tests.fake_pardot import closed_port
from tests.helpers import run_check

pytestmark = pytest.mark.usefixtures("instant_retries")  # retry waits are computed and logged, but not slept


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
