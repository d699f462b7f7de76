"""A lock file shared by the processes of one business unit on one machine.

An exclusive ``flock`` on a file beside what it guards: the kernel releases it when the
holder's file is closed, so a process that dies (SIGKILL, a crash) never leaves it held, and a
lock file left on disk holds nothing. The export record's writes hold it for milliseconds; a
token refresh holds its own (``token-<hash>.lock``, one refresh of a refresh token at a time
across the processes that share it: :mod:`~tap_pardot_export.pardot.auth`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
import typing as t

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

#: how often a waiting process tries again
RETRY_EVERY = 0.02


class LockTimeout(OSError):
    """Another process held the lock longer than the caller would wait."""


@contextlib.contextmanager
def held(path: Path, timeout: float = 10.0, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold the exclusive lock on ``path`` (created when missing) for the ``with`` block.

    ``on_wait`` is called once when another process holds it, before waiting.

    Raises:
        LockTimeout: another process held it for ``timeout`` seconds.
        OSError: the lock file cannot be created or opened.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if on_wait is not None:
                    on_wait()
                    on_wait = None
                if time.monotonic() >= deadline:
                    msg = f"{path} stayed locked by another process for {timeout:g}s"
                    raise LockTimeout(msg) from None
                time.sleep(RETRY_EVERY)
        yield
    finally:
        os.close(fd)  # releases the lock
