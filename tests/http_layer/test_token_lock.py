"""Token refreshes of one refresh token, one at a time across processes (a lock file beside the export record).

Runs side by side of several business units under one connected app and API user share a
refresh token; Salesforce may refuse concurrent refreshes of it. The sandbox's token endpoint
holds each request (``token_delay``) until the test releases it and counts requests that overlap.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import typing as t

import pytest

from tap_pardot_export.errors import PardotAuthError
from tap_pardot_export.locks import held
from tap_pardot_export.pardot import auth
from tap_pardot_export.pardot.auth import Credentials, refresh_lock_path
from tests.helpers import client_for

if t.TYPE_CHECKING:
    from pathlib import Path

    from pardot_export_sandbox import Sandbox

WAITING = "Waiting for another tap process refreshing the same refresh token"
#: generous: the machine is shared; nothing here waits this long unless something is broken
PATIENCE = 120.0


def wait_for(what: str, condition: t.Callable[[], bool]) -> None:
    """Poll ``condition`` until it holds (an event, not a duration: the deadline only stops a broken test)."""
    deadline = time.monotonic() + PATIENCE
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def start_tap(cfg_path: Path, err_path: Path) -> subprocess.Popen[bytes]:
    """A real tap process that needs a token: discovery with credentials reads the account's fields."""
    with err_path.open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "tap_pardot_export", "--config", str(cfg_path), "--discover"],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def test_two_processes_sharing_a_refresh_token_refresh_one_at_a_time(fresh_sandbox, tmp_path):
    sb: Sandbox = fresh_sandbox(token_delay=PATIENCE)
    record = tmp_path / "record"
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(sb.tap_config(record_dir=str(record))))
    first = start_tap(cfg, tmp_path / "first.err")
    second: subprocess.Popen[bytes] | None = None
    try:
        wait_for("the first process's token request", lambda: sb.token_requests_in_flight() == 1)
        second = start_tap(cfg, tmp_path / "second.err")
        # the second either waits on the lock (and says so) or its request reaches the sandbox alongside
        wait_for(
            "the second process to wait on the lock, or to refresh at once",
            lambda: WAITING in (tmp_path / "second.err").read_text() or sb.stats()["token_overlaps"] > 0,
        )
        sb.release_token_requests()
        assert first.wait(PATIENCE) == 0, (tmp_path / "first.err").read_text()[-3000:]
        assert second.wait(PATIENCE) == 0, (tmp_path / "second.err").read_text()[-3000:]
    finally:
        sb.release_token_requests()
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    stats = sb.stats()
    assert stats["token_overlaps"] == 0, "two refreshes of one refresh token were in flight at once"
    assert stats["max_tokens_in_flight"] == 1
    assert stats["calls"]["token"] == 2
    assert WAITING in (tmp_path / "second.err").read_text()
    # the lock file's name reveals no secret
    (lock,) = (p.name for p in record.iterdir() if p.name.startswith("token-"))
    assert re.fullmatch(r"token-[0-9a-f]{16}\.lock", lock)
    for text in (lock, (tmp_path / "first.err").read_text(), (tmp_path / "second.err").read_text()):
        for secret in (sb.config.refresh_token, sb.config.client_secret):
            assert secret not in text


def test_the_lock_is_per_refresh_token_and_names_no_secret(tmp_path):
    one = Credentials("client-a", "secret-a", "refresh-1")
    path = refresh_lock_path(tmp_path, one)
    assert path is not None and path.parent == tmp_path
    assert path == refresh_lock_path(tmp_path, Credentials("client-a", "other-secret", "refresh-1"))
    assert path != refresh_lock_path(tmp_path, Credentials("client-a", "secret-a", "refresh-2"))
    assert path != refresh_lock_path(tmp_path, Credentials("client-b", "secret-a", "refresh-1"))
    assert not any(s in path.name for s in ("client-a", "secret-a", "refresh-1"))
    assert refresh_lock_path(tmp_path, Credentials("client-a", "secret-a", None)) is None  # client credentials


def test_a_lock_held_too_long_stops_with_a_clear_message(fresh_sandbox, tmp_path, monkeypatch):
    sandbox = fresh_sandbox()
    monkeypatch.setattr(auth, "REFRESH_LOCK_WAIT", 0.2)
    client = client_for(sandbox.tap_config(record_dir=str(tmp_path)))
    path = client.tokens.lock_path
    assert path is not None
    with held(path), pytest.raises(PardotAuthError) as caught:  # another process, as far as flock goes
        client.tokens.token()
    message = str(caught.value)
    assert "another tap process refreshing the same refresh token" in message
    assert str(path) in message and sandbox.config.refresh_token not in message
    assert sandbox.stats()["calls"].get("token", 0) == 0, "no token request while another process refreshes"


def test_another_refresh_tokens_lock_does_not_hold_a_refresh_up(sandbox, tmp_path, monkeypatch):
    monkeypatch.setattr(auth, "REFRESH_LOCK_WAIT", 0.2)
    client = client_for(sandbox.tap_config(record_dir=str(tmp_path)))
    other = refresh_lock_path(tmp_path, Credentials("sandbox-client-id", None, "another-refresh-token"))
    assert other is not None and other != client.tokens.lock_path
    with held(other):
        assert client.tokens.token()


def test_an_unusable_record_dir_refreshes_without_the_lock_and_warns_once(sandbox, tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cfg = sandbox.tap_config(record_dir=str(blocker / "record"))
    auth._UNLOCKED_WARNED.clear()
    with caplog.at_level("WARNING", logger="tap-pardot-export"):
        for _ in range(2):
            client = client_for(cfg)
            assert client.tokens.token()
            assert client.tokens.refresh(client.tokens.token())
    warnings = [r.getMessage() for r in caplog.records if "token refresh lock" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "refreshing without it" in warnings[0] and "record_dir" in warnings[0]
