"""A signal at either end of a run: while the tap starts, and while it exits after the first signal.

While the tap imports singer-sdk (about a second; ``meltano run`` starts it for discovery and for
the sync, so a Ctrl-C often lands there), Python's defaults would print a ``KeyboardInterrupt``
traceback or die of SIGTERM without a word. While it exits, Python puts the default handlers back
and a second signal (Meltano sends SIGTERM right after the Ctrl-C reached the whole group) would
turn the exit status into "killed". Real tap processes against the sandbox.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.sandbox_runs import one_stream
from tests.taps import BOUND, Tap, until


def catches(pid: int, signum: int) -> bool:
    """True once process ``pid`` has a handler for ``signum`` (its ``SigCgt`` mask in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_the_tap_starts_ends_it_with_one_line(sandboxes, signum):
    """Found by an adversarial run: SIGINT gave a KeyboardInterrupt traceback from an import, SIGTERM a silent death.

    The signal is sent as soon as the program handles SIGTERM (Python's default does not): that is
    its first step, before the second or so of imports.
    """
    sb = sandboxes()
    cfg, cat = one_stream(sb, "list_membership")
    tap = Tap(cfg, cat)
    until(lambda: catches(tap.proc.pid, signal.SIGTERM), "the tap handles SIGTERM", timeout=BOUND)
    run, took = tap.term_and_wait(signum=signum)
    assert run.returncode == 128 + signum, run.stderr[-2000:]
    assert took < BOUND
    assert "while the tap was starting: nothing was done; the last state the run was given stands" in run.stderr
    assert "Traceback" not in run.stderr, run.stderr[-2000:]
    assert run.stdout == "", "nothing was written, no STATE above all"


def test_sigint_then_sigterm_over_and_over_exits_as_the_sigint_asked(sandboxes):
    """Meltano's Ctrl-C: SIGINT to the group, then SIGTERM to the tap; here SIGTERM every 10 ms until the tap is gone.

    Found by an adversarial run: a SIGTERM while the interpreter tore itself down (default
    handlers back) killed the tap, exit -15 instead of 130, after all its output was out.
    """
    sb = sandboxes(processing_seconds=600)
    cfg, cat = one_stream(sb, "list_membership", window_days=365)
    tap = Tap(cfg, cat)
    assert tap.read_until(lambda m: m["type"] == "STATE")  # the sync began
    tap.proc.send_signal(signal.SIGINT)
    end = time.monotonic() + BOUND
    while tap.proc.poll() is None and time.monotonic() < end:
        time.sleep(0.01)
        if tap.proc.poll() is None:
            tap.proc.send_signal(signal.SIGTERM)
    run, _ = tap.term_and_wait(signum=0)  # signal 0 sends nothing: this collects the run
    assert run.returncode == 128 + signal.SIGINT, run.stderr[-2000:]
    assert "Interrupted by signal 2" in run.stderr and "state emitted" in run.stderr
    assert "Traceback" not in run.stderr
