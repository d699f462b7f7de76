"""A stdout nobody reads, or that closes: the line being written is finished, and no export is left unknown.

SIGTERM while stdout is blocked finishes the line, then writes the STATE; if stdout stays blocked
past the deadline the run exits anyway and says the state was NOT emitted. A target that exits
early (``| true``, ``| head -n 2``) gets one line saying so, no traceback; exports the export
record holds stay for the rerun, the others are canceled (issue 18.5). Real tap processes against
the sandbox.
"""

from __future__ import annotations

import signal
import time
import typing as t

from tests.sandbox_runs import one_stream
from tests.singer_messages import whole_lines
from tests.taps import BOUND, SIGTERM_EXIT, Tap

if t.TYPE_CHECKING:
    from pardot_export_sandbox import Sandbox


def big(sandboxes) -> tuple[Sandbox, dict, dict]:
    sb = sandboxes(rows={"visitor_activity": 5_000}, rows_per_file=5_000)
    cfg, cat = one_stream(sb, "visitor_activity", window_days=365)
    return sb, cfg, cat


def test_sigterm_while_stdout_is_blocked_finishes_the_line_then_writes_state(sandboxes):
    """Nobody reads stdout for a while: the handler must not write into the middle of a line."""
    _, cfg, cat = big(sandboxes)
    tap = Tap(cfg, cat)
    assert tap.read_until(lambda m: m["type"] == "RECORD")
    tap.wait_until_stdout_is_full()  # the tap blocks in a write
    run, took = tap.term_and_wait(read_after=0.5)
    assert took < BOUND
    assert run.returncode == SIGTERM_EXIT, run.stderr[-2000:]
    messages = whole_lines(run)
    assert messages[-1]["type"] == "STATE", "the last line is the final STATE"
    assert sum(m["type"] == "RECORD" for m in messages) < 5_000, "the run was interrupted"
    assert "state emitted" in run.stderr


def test_stdout_never_read_the_log_does_not_claim_state(sandboxes):
    """stdout stays blocked past the deadline: exit anyway, and say the state was NOT emitted."""
    _, cfg, cat = big(sandboxes)
    tap = Tap(cfg, cat, env={"TAP_PARDOT_EXPORT_SIGNAL_DEADLINE": "2"})
    assert tap.read_until(lambda m: m["type"] == "RECORD")
    tap.wait_until_stdout_is_full()
    tap.proc.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    assert tap.proc.wait(timeout=BOUND) == SIGTERM_EXIT  # nobody has read stdout meanwhile
    assert time.monotonic() - t0 < BOUND
    err = tap.stderr()
    assert tap.leftovers() == [], "the forced exit removes the run's downloaded files"
    tap.close()
    assert "state NOT emitted" in err
    assert "state emitted" not in err.replace("state NOT emitted", "")
