"""SIGINT/SIGTERM: end the run within a bounded time, with the last STATE whole on its own line.

A signal handler runs in the main thread between two bytecodes, wherever that thread is:
inside a write to stdout, a token refresh, a download slot. So the handler takes no lock and
starts no thread; it only:

- records the signal and wakes a watchdog thread (started beforehand) through a pipe;
- if the main thread is in the middle of writing a line to stdout, returns at once: the
  writer finishes its line, then stops the run (:meth:`Shutdown.line`);
- otherwise (stdout is at a line boundary) stops the run itself.

Stopping the run writes the STATE message, waits a few seconds for the watchdog to cancel
the export in flight, logs truthfully whether the state was emitted, and raises
``SystemExit(128 + signum)``. The watchdog cancels the export on a path that takes no lock the
main thread may hold, and ends the process with ``os._exit`` at a hard deadline if the main
thread cannot finish (stdout or stderr blocked, a download that will not return), saying on
stderr, if it has room, that the state was not emitted, or that it was and the cleanup took too long.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import threading
import time
import typing as t

from singer_sdk.contrib.msgspec import MsgSpecWriter
from typing_extensions import override

from tap_pardot_export.entry import say
from tap_pardot_export.errors import StdoutClosed

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Iterator
    from types import FrameType

    from singer_sdk.singerlib import Message


#: seconds from the signal to the forced exit when the state cannot be written (the
#: environment variable is a test hook: tests need not wait 15 s to see the forced exit)
def _deadline(default: float = 15.0) -> float:
    try:
        return min(default, max(1.0, float(os.environ.get("TAP_PARDOT_EXPORT_SIGNAL_DEADLINE") or default)))
    except ValueError:
        return default


HARD_DEADLINE = _deadline()
#: seconds the unwinding may take once the state is out (joining downloads in flight)
GRACE = 3.0
#: seconds the cancel of the export in flight may take
CANCEL_TIMEOUT = 5.0


class RunHooks(t.Protocol):
    """What a run gives the shutdown: how to cancel its work and write its state."""

    @property
    def logger(self) -> logging.Logger:
        """Where the shutdown logs."""

    def cancel_in_flight(self, timeout: float) -> str:
        """Cancel the export in flight (called on the watchdog thread); a line for the log."""

    def emit_state(self) -> bool:
        """Write the STATE message (called in the main thread, at a line boundary); False when there is none yet.

        Before the sync began (during discovery, say) the last state the run was given stands.
        """

    def cleanup(self) -> None:
        """Remove the run's temporary files (called before a forced exit; never raises)."""


class Shutdown:
    """Process-wide: marks stdout writes and turns a signal into a bounded, clean stop."""

    def __init__(self) -> None:
        """Nothing is installed until :meth:`install`."""
        self.writing = 0
        self.signum: int | None = None
        self.stopping = False
        self.state_emitted = False
        self.cancel_note: str | None = None
        self.deadline = float("inf")
        self.run: RunHooks | None = None
        self._wake: tuple[int, int] | None = None
        self._thread: threading.Thread | None = None

    # -- setup --------------------------------------------------------------------------

    def install(self, run: RunHooks) -> bool:
        """Handle SIGINT and SIGTERM for ``run``; False (nothing done) outside the main thread."""
        if threading.current_thread() is not threading.main_thread():
            return False
        self.run = run
        self.signum = None
        self.stopping = self.state_emitted = False
        self.cancel_note = None
        self.deadline = float("inf")
        if self._thread is None:
            self._wake = os.pipe()
            self._thread = threading.Thread(
                target=self._watch, args=(self._wake[0],), name="pardot-shutdown", daemon=True
            )
            self._thread.start()
        for name in ("SIGINT", "SIGTERM"):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), self.handle)
        return True

    # -- the main thread ----------------------------------------------------------------

    @contextlib.contextmanager
    def line(self) -> Iterator[None]:
        """Mark a write of whole lines to stdout; a signal that came meanwhile stops after it.

        Even when the write failed (stdout closed meanwhile): the run still ends as the signal
        asked, saying the state was not emitted, rather than as a failed write.
        """
        self.writing += 1
        try:
            yield
        finally:
            self.writing -= 1
            if self.signum is not None and not self.writing and not self.stopping:
                self.stop()

    def handle(self, signum: int, frame: FrameType | None) -> None:
        """The signal handler: no lock, no thread start, no write into the middle of a line."""
        del frame  # the signal module passes it; nothing here needs it
        if self.signum is not None:
            return  # a second signal: the deadline is already running
        self.signum = signum
        self.deadline = time.monotonic() + HARD_DEADLINE
        if self._wake is not None:
            os.write(self._wake[1], b"!")
        if self.writing or self.stopping:
            return  # the writer finishes its line, then calls stop()
        self.stop()

    def stop(self) -> t.NoReturn:
        """Write the STATE, wait briefly for the cancel, log the truth, exit 128 + signal."""
        self.stopping = True
        signum = self.signum or signal.SIGTERM
        run = self.run
        problem, begun = "", True
        if run is not None:
            try:
                begun = run.emit_state()
                self.state_emitted = begun
            except Exception as exc:  # noqa: BLE001 - whatever failed, the exit below must still happen
                problem = f" ({type(exc).__name__})"
            end = time.monotonic() + CANCEL_TIMEOUT + 1
            while self.cancel_note is None and time.monotonic() < end:
                time.sleep(0.02)
            if not begun:
                emitted = "before the sync began: no state to emit, the last state the run was given stands"
            elif self.state_emitted:
                emitted = "state emitted, rerun to resume"
            else:
                emitted = f"state NOT emitted{problem}"
            run.logger.warning(
                "Interrupted by signal %s: %s; %s", signum, self.cancel_note or "no export canceled", emitted
            )
        self.deadline = min(self.deadline, time.monotonic() + GRACE)
        if self._wake is not None:  # the watchdog waits on the old deadline until woken
            with contextlib.suppress(OSError):
                os.write(self._wake[1], b"!")
        raise SystemExit(128 + signum)

    # -- the watchdog thread ------------------------------------------------------------

    def _watch(self, wake: int) -> None:
        while True:
            timeout = None if self.deadline == float("inf") else max(0.0, self.deadline - time.monotonic())
            ready, _, _ = select.select([wake], [], [], timeout)
            if ready:
                os.read(wake, 64)
                if self.signum is not None and self.cancel_note is None:
                    self._cancel()
                continue
            if self.signum is not None and time.monotonic() >= self.deadline:
                self._force_exit(self.signum)

    def _cancel(self) -> None:
        run = self.run
        note = "no export canceled"
        if run is not None:
            try:
                note = run.cancel_in_flight(CANCEL_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - a failed cancel is reported, never raised in a watchdog
                note = f"canceling the export in flight failed ({type(exc).__name__})"
        self.cancel_note = note

    def _force_exit(self, signum: int) -> t.NoReturn:
        if self.state_emitted:
            text = "state was emitted; exiting without waiting for the work in flight"
        else:
            text = "stdout did not take the output in time: state NOT emitted; rerun from the last STATE"
        say(f"Interrupted by signal {signum}: {text}\n")
        if self.run is not None:
            with contextlib.suppress(Exception):
                self.run.cleanup()
        os._exit(128 + signum)


#: the process's one shutdown (signals and stdout are process-wide)
SHUTDOWN = Shutdown()


class StdoutLines:
    """Writes whole lines to stdout under :meth:`Shutdown.line`."""

    def __init__(self, shutdown: Shutdown = SHUTDOWN) -> None:
        """Write through ``shutdown``'s line marker."""
        self.shutdown = shutdown

    @property
    def closed(self) -> bool:
        """True once the target stopped reading."""
        return STDOUT_CLOSED.is_set()

    def write(self, data: bytes) -> None:
        """Write ``data`` (whole lines) to stdout; a signal meanwhile ends it at the next slice's last line."""
        shutdown = self.shutdown
        with shutdown.line(), stdout_open():
            write_all(data, stop=lambda: shutdown.signum is not None)

    def flush(self) -> None:
        """Flush stdout."""
        with self.shutdown.line(), stdout_open():
            sys.stdout.flush()


#: bytes of whole lines written to stdout at once: after a signal, the run stops once the slice
#: being written is out, so a slow target waits for no more than this before the STATE
SLICE = 16 * 1024


def write_all(data: bytes | bytearray, stop: t.Callable[[], bool] | None = None) -> None:
    """Write ``data`` (whole lines) to stdout, by slices of whole lines; between two, stop if ``stop()``.

    The lines not written then are dropped: their records are past the state the stop writes.
    A signal can cut a buffered write short, so each slice is written in a loop.
    """
    out = sys.stdout.buffer
    with memoryview(data) as whole:  # released even when a write fails: the writer reuses its buffer
        start, size = 0, len(whole)
        while start < size:
            if start and stop is not None and stop():
                return
            newline = data.find(b"\n", start + SLICE - 1) if start + SLICE < size else -1
            end = newline + 1 if newline >= 0 else size
            view = whole[start:end]
            while view:
                n = out.write(view)
                view = view[n if n is not None else len(view) :]
            start = end


#: set once the target stopped reading: nothing more is written to stdout
STDOUT_CLOSED = threading.Event()


@contextlib.contextmanager
def stdout_open() -> Iterator[None]:
    """Turn a stdout that takes no more into one clear error.

    The target exited (``| head``, a crashed loader), or stdout is a file on a full disk, or it was
    never open (``>&-``). stdout is pointed at the null device at once, so nothing the process
    still holds for it (Python's own flush at exit) fails again with "Exception ignored ...".

    Raises:
        StdoutClosed: stdout takes no more.
    """
    if STDOUT_CLOSED.is_set():
        raise StdoutClosed(CLOSED_MESSAGE)
    if sys.stdout is None:
        STDOUT_CLOSED.set()
        raise StdoutClosed(NOT_OPEN_MESSAGE)
    try:
        yield
    except (BrokenPipeError, ConnectionResetError) as exc:
        _to_null()
        raise StdoutClosed(CLOSED_MESSAGE) from exc
    except OSError as exc:
        _to_null()
        raise StdoutClosed(f"stdout could not be written ({exc.strerror or exc}). {FAILED_MESSAGE}") from exc


def _to_null() -> None:
    STDOUT_CLOSED.set()
    with contextlib.suppress(OSError, ValueError, AttributeError):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)


#: what a run whose stdout takes no more leaves behind
FAILED_MESSAGE = (
    "Nothing more can reach the target, state included: the next run resumes from the last state the target "
    "saved, and reuses the exports in the tap's export record (record_dir) while Pardot keeps them; those not "
    "in it were canceled."
)
CLOSED_MESSAGE = f"The target stopped reading: stdout was closed (the loader exited or was stopped). {FAILED_MESSAGE}"
NOT_OPEN_MESSAGE = (
    "stdout is not open: the tap writes its records and state there, so point it at a target (a pipe) or a file"
)


class LineSafeWriter(MsgSpecWriter):
    """The SDK's fast message writer; each line is written whole, under :meth:`Shutdown.line`."""

    @override
    def write_message(self, message: Message) -> None:
        """Write one message line; a signal meanwhile stops the run after it."""
        with SHUTDOWN.line(), stdout_open():
            write_all(self.format_message(message))
            sys.stdout.flush()
