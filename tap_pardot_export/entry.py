"""The program's entry point (``tap-pardot-export``, ``python -m tap_pardot_export``).

A signal can come before the tap has set up its own handling (:mod:`tap_pardot_export.signals`):
importing singer-sdk and its dependencies takes about a second, and ``meltano run`` starts the tap
for discovery and for the sync, so a Ctrl-C often lands there. Python's defaults would print a
``KeyboardInterrupt`` traceback from inside an import, or die of SIGTERM without a word. So this
module imports nothing heavy, and handles both signals first: nothing has been done yet, so the
run ends at once with 128 + signal and one line saying the state the run was given stands.

Once the run is over, interrupted or not, both signals are ignored: Python puts its own handlers
back to the defaults while it tears the interpreter down, and a second signal then (Meltano sends
SIGTERM right after the Ctrl-C reached the whole group) would turn the exit status into "killed"
after all the output was out.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import typing as t

if t.TYPE_CHECKING:
    from types import FrameType

SIGNALS = ("SIGINT", "SIGTERM")


def say(text: str, wait: float = 0.5) -> None:
    """Write ``text`` to stderr if it goes through within ``wait`` seconds, else give up on it.

    stderr may be a pipe nobody reads, and this is said on the way out: a blocking write would
    hold the exit for good. The write runs on a thread of its own (``os._exit`` ends it), so
    stderr's blocking mode, shared with whatever else writes there (a terminal, a shell), stays.
    """

    def write() -> None:
        with contextlib.suppress(OSError):
            os.write(2, text.encode())

    writer = threading.Thread(target=write, name="pardot-last-words", daemon=True)
    writer.start()
    writer.join(wait)


def _while_starting(signum: int, frame: FrameType | None) -> None:
    del frame  # the signal module passes it
    say(
        f"Interrupted by signal {signum} while the tap was starting: nothing was done; "
        "the last state the run was given stands\n"
    )
    os._exit(128 + signum)


def _handle(handler: t.Any) -> None:
    for name in SIGNALS:
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), handler)


def main() -> None:
    """Run the tap's command line, with signals handled from the first moment to the last."""
    _handle(_while_starting)
    try:
        from tap_pardot_export.tap import TapPardotExport  # noqa: PLC0415 - after the handlers, on purpose

        TapPardotExport.cli()
    finally:
        _handle(signal.SIG_IGN)
