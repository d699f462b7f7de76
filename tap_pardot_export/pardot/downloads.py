"""Downloading a result file to disk: framed, bounded in time, checked as it is written.

A body is read under one of the client's concurrency slots, stopped at ``download_timeout``
however slowly it trickles, and written to disk with every failure of the disk told apart
from the network's (no retry fixes a full disk).
"""

from __future__ import annotations

import errno
import os
import typing as t

import requests

from tap_pardot_export.errors import PardotAPIError, TransientError
from tap_pardot_export.pardot.transport import shut_at
from tap_pardot_export.redact import redact_url

if t.TYPE_CHECKING:
    import threading


def read_body(
    resp: requests.Response, dest: t.BinaryIO, url: str, deadline: float, slots: threading.BoundedSemaphore
) -> int:
    """Read a result file's whole body into ``dest`` under a slot, aborted at ``deadline`` seconds (even a trickle).

    A body with neither ``Content-Length`` nor chunked encoding ends when the connection
    closes, so a cut at a line end would look whole: such a body is refused, not guessed at.
    """
    if not framed(resp):
        resp.close()
        msg = (
            f"Download of {redact_url(url)}: the server sent the file without a length (no Content-Length, "
            "not chunked), so a body cut short could not be told from a whole one. The tap refuses it rather "
            "than risk losing rows; if a proxy between the tap and Pardot strips the framing, fix the proxy."
        )
        raise PardotAPIError(msg)
    dest.seek(0)
    dest.truncate()
    written = 0
    with (
        slots,
        resp,
        shut_at(resp, deadline) as expired,
    ):  # the deadline runs once a slot is held
        try:
            for chunk in resp.iter_content(chunk_size=1 << 16):
                _write(dest, chunk, url)
                written += len(chunk)
        except (requests.RequestException, OSError) as exc:
            if not expired.is_set():
                msg = f"Download of {redact_url(url)} cut off after {written} bytes ({type(exc).__name__})"
                raise TransientError(msg) from None
    if expired.is_set():
        msg = f"download of {redact_url(url)} passed download_timeout ({deadline:g}s) after {written} bytes"
        raise TransientError(msg)
    return written


class DiskError(PardotAPIError):
    """A downloaded file could not be written: the disk is full, or the folder is not writable."""


def _nothing_taken() -> t.NoReturn:
    """A write that took no byte of a chunk: the disk is full."""
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _write(dest: t.BinaryIO, chunk: bytes, url: str) -> None:
    """Write a downloaded chunk; a failure of the disk is not the network's, and no retry fixes it."""
    view = memoryview(chunk)
    try:
        while view:  # an unbuffered file may take part of a chunk (the disk filling up): the rest, or the error
            n = dest.write(view)
            view = view[n if n is not None else len(view) :] if n != 0 else _nothing_taken()
    except OSError as exc:
        msg = (
            f"Download of {redact_url(url)}: writing it to disk failed ({exc.strerror or exc}). Result files are "
            "written to the temporary folder (TMPDIR) before their rows are read: free disk space or point TMPDIR "
            "at a larger disk."
        )
        raise DiskError(msg) from None


def framed(resp: requests.Response) -> bool:
    """True when the body's end can be checked: a ``Content-Length``, or chunked encoding."""
    if resp.headers.get("Content-Length"):
        return True
    return "chunked" in resp.headers.get("Transfer-Encoding", "").lower()
