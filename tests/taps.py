"""Tap processes a test starts and signals: stdout a pipe it reads (or not), stderr a file.

For the tests that need a process boundary: a signal, a stdout nobody reads, a kill. The
conftest closes every :class:`Tap` a test left open (``_taps_closed``).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import termios
import threading
import time
import typing as t
from pathlib import Path

from tests.helpers import TapRun

SIGTERM_EXIT = 128 + signal.SIGTERM
#: no run may still be alive this long after SIGTERM
BOUND = 20.0


#: the taps of the running test not closed yet (:func:`close_all`)
_OPEN: list[Tap] = []


def close_all() -> None:
    """Every tap process still open is killed and its files closed (after each test, by the conftest)."""
    while _OPEN:
        _OPEN.pop().close()


class Tap:
    """A tap process: stdout a pipe the test reads (or not), stderr a file."""

    def __init__(
        self, config: dict, catalog: dict | None, state: dict | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tap-signals-"))
        cmd = [sys.executable, "-m", "tap_pardot_export"]
        for name, obj in (("config", config), ("catalog", catalog), ("state", state)):
            if obj is not None:
                (self.dir / f"{name}.json").write_text(json.dumps(obj))
                cmd += [f"--{name}", str(self.dir / f"{name}.json")]
        self.err = open(self.dir / "stderr", "w+b")  # noqa: SIM115
        _OPEN.append(self)
        self.tmp = self.dir / "tmp"  # the tap's TMPDIR: its downloaded files go there
        self.tmp.mkdir()
        self.left: list[str] = []
        env = {**os.environ, "TMPDIR": str(self.tmp), **(env or {})}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.err, env=env)
        self.out = b""

    def read_until(self, predicate: t.Callable[[dict], bool], timeout: float = 60) -> bool:
        end = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < end:
            line = self.proc.stdout.readline()
            if not line:
                return False
            self.out += line
            if predicate(json.loads(line)):
                return True
        return False

    def wait_until_stdout_is_full(self, timeout: float = 30) -> None:
        """Return once the tap's main thread is blocked writing to stdout, a pipe that holds all it can take.

        The kernel says where the thread waits (``/proc/<pid>/wchan``: ``pipe_write``). How many
        bytes the pipe then holds depends on how the writes fell into its pages, so it is no test.
        """
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            held = int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"), sys.byteorder)
            if held and blocked_writing_a_pipe(self.proc.pid):
                return
            time.sleep(0.02)
        raise AssertionError(f"stdout never filled up in {timeout:.0f}s")

    def term_and_wait(
        self, after: float = 0.0, read_after: float = 0.0, signum: int = signal.SIGTERM
    ) -> tuple[TapRun, float]:
        """Signal after ``after`` s; read stdout again only ``read_after`` s later; the run and its end time."""
        time.sleep(after)
        self.proc.send_signal(signum)
        t0 = time.monotonic()
        time.sleep(read_after)
        stdout = self.proc.stdout
        assert stdout is not None
        box: list[bytes] = []
        reader = threading.Thread(target=lambda: box.append(stdout.read()), daemon=True)
        reader.start()  # stdout.read() drains the reader's buffer too (communicate() would skip it)
        reader.join(BOUND * 2)
        if reader.is_alive():
            self.proc.kill()
            raise AssertionError(f"the tap is still alive {BOUND * 2:.0f}s after SIGTERM")
        self.proc.wait(timeout=10)
        rest = box[0]
        took = time.monotonic() - t0
        self.out += rest
        self.err.seek(0)
        run = TapRun(self.proc.returncode, self.out.decode(), self.err.read().decode(), singer=False)
        self.left = self.leftovers()
        self.close()
        return run, took

    def leftovers(self) -> list[str]:
        """Files the tap left in its TMPDIR."""
        return [str(p.relative_to(self.tmp)) for p in self.tmp.rglob("*") if p.is_file()]

    def stderr(self) -> str:
        self.err.seek(0)
        return self.err.read().decode()

    def close(self) -> None:
        """Kill the process if alive, close the pipe and the stderr file, remove the folder."""
        if self.err.closed:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.err.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def pending(msg: dict, stream: str = "list_membership") -> bool:
    return msg["type"] == "STATE" and "pending_export" in msg["value"]["bookmarks"].get(stream, {})


def blocked_writing_a_pipe(pid: int) -> bool:
    """True while process ``pid``'s main thread waits to write to a full pipe (its kernel wait channel)."""
    return Path(f"/proc/{pid}/wchan").read_text().endswith("pipe_write")


def until(predicate: t.Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Wait (briefly polling) until ``predicate()`` holds: no fixed sleep that load could outrun."""
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, f"not seen within {timeout:.0f}s: {what}"
        time.sleep(0.02)
