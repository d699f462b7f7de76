"""Retries: transient faults retried and nothing lost, bounded by max_retries and retry_max_time, Retry-After honoured.

The sync tests inject faults through the sandbox over HTTP; the others use the fake Pardot of
``tests/fake_pardot.py`` and the retry policy in-process. Retry waits are computed and logged, but
not slept.
"""

from __future__ import annotations

import re

import pytest

from tests.helpers import run_tap
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
