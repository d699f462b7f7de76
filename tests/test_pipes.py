"""Signals in every phase, and a target that stops reading (issue 18.5), on real tap processes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import discover, recorded_ids, select_streams
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


def unfinished(sb) -> list[tuple[int, str]]:
    """The sandbox's exports Pardot would still work on (Waiting or Processing), with their state."""
    exports = sb.stats()["exports"].items()
    return [(eid, e["state"]) for eid, e in exports if e["state"] in ("Waiting", "Processing")]


@pytest.mark.parametrize("keep", [0, 2], ids=["true", "head-n-2"])
def test_a_target_that_exits_early_gets_one_line_and_no_unknown_export_is_left_queued(sandboxes, keep, record_dir):
    """``| true`` and ``| head -n 2``: stdout closes while the tap writes (and exports wait in Pardot's queue).

    Exports the tap's record holds stay for the rerun; any other is canceled.
    """
    sb = sandboxes(rows={"list_membership": 3000, "prospect": 2000}, processing_seconds=0.3)
    config = sb.tap_config(window_days=60, max_queued_exports=2)
    catalog = select_streams(discover(config), ["list_membership", "prospect"])
    path = tap_files(config, catalog)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tap_pardot_export", "--config", path[0], "--catalog", path[1]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    for _ in range(keep):
        proc.stdout.readline()
    proc.stdout.close()  # the target is gone
    _, err_bytes = proc.communicate(timeout=BOUND * 3)
    err = err_bytes.decode()
    assert proc.returncode not in (0, None)
    assert err.count("The target stopped reading") == 1, err[-3000:]
    assert "Traceback" not in err and "Exception ignored" not in err and "BrokenPipeError" not in err, err[-3000:]
    recorded = recorded_ids(record_dir, sb)

    def unknown() -> list[tuple[int, str]]:
        return [(eid, state) for eid, state in unfinished(sb) if eid not in recorded]

    deadline = time.monotonic() + 10
    while unknown() and time.monotonic() < deadline:  # a cancel may still be landing
        time.sleep(0.1)
    assert unknown() == [], "an export was left in Pardot's queue, unknown to any state or record"
    canceled = {eid for eid, e in sb.stats()["exports"].items() if e["state"] == "Canceled"}
    assert not canceled & recorded, "an export the record holds was canceled"


def tap_files(config: dict, catalog: dict) -> tuple[str, str]:
    import json
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp(prefix="tap-pipe-"))
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "catalog.json").write_text(json.dumps(catalog))
    return str(folder / "config.json"), str(folder / "catalog.json")


def test_sigint_is_handled_like_sigterm_during_discovery(sandboxes):
    sb = sandboxes()
    sb.inject("slow", op="token", seconds=BOUND * 3)
    tap = Tap(sb.tap_config(), catalog=None)
    until(lambda: sb.stats()["calls"].get("token", 0) >= 1, "discovery asked for a token")
    run, _ = tap.term_and_wait(signum=signal.SIGINT)
    assert run.returncode == 128 + signal.SIGINT
    assert "before the sync began" in run.stderr
