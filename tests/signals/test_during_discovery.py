"""SIGTERM and SIGINT during discovery (a sync without ``--catalog``): exit 128 + signal, no STATE.

The state the run was given stands: a STATE written before the sync began would overwrite it.
Real tap processes against the sandbox.
"""

from __future__ import annotations

import signal

from tests.taps import BOUND, SIGTERM_EXIT, Tap, until


def test_a_signal_during_discovery_keeps_the_given_state_and_fails(sandboxes):
    """Found: SIGTERM while a sync without --catalog discovered went to the SDK's handler: exit 0, STATE {}."""
    sb = sandboxes()
    sb.inject("slow", op="token", seconds=BOUND * 3)  # discovery's first call: the account's custom fields
    config = sb.tap_config()
    state = {"bookmarks": {"list_membership": {"replication_key": "updated_at",
                                                "replication_key_value": "2024-06-01T00:00:00+00:00"}}}  # fmt: skip
    tap = Tap(config, catalog=None, state=state)
    until(lambda: sb.stats()["calls"].get("token", 0) >= 1, "discovery asked for a token")
    run, took = tap.term_and_wait()
    assert run.returncode == SIGTERM_EXIT
    assert took < BOUND
    assert '"type":"STATE"' not in run.stdout.replace(" ", ""), "a STATE before the sync began overwrites the given one"
    assert "before the sync began" in run.stderr
    assert "Traceback" not in run.stderr


def test_sigint_is_handled_like_sigterm_during_discovery(sandboxes):
    sb = sandboxes()
    sb.inject("slow", op="token", seconds=BOUND * 3)
    tap = Tap(sb.tap_config(), catalog=None)
    until(lambda: sb.stats()["calls"].get("token", 0) >= 1, "discovery asked for a token")
    run, _ = tap.term_and_wait(signum=signal.SIGINT)
    assert run.returncode == 128 + signal.SIGINT
    assert "before the sync began" in run.stderr
