"""Downloading a result file to disk: framed, decoded whole, bounded in time, checked as it is written.

A body is read as sent, under the request's deadline (``download_timeout`` from its first
byte sent, however slowly it trickles), its ``Content-Encoding`` undone here with each
compressed stream checked to have ended (a cut one is fetched again like any cut body) and
its inflation bounded while it is read (:mod:`~tap_pardot_export.pardot.encodings`). It is
written to disk with every failure of the disk told apart from the network's (no retry fixes
a full disk).
"""

from __future__ import annotations

import errno
import os
import typing as t

import requests
import urllib3

from tap_pardot_export.errors import PardotAPIError, TransientError
from tap_pardot_export.pardot.encodings import MAX_RATIO, BodyDecoder, CutStream, Inflated, UnknownEncoding
from tap_pardot_export.pardot.transport import raw_chunks
from tap_pardot_export.redact import redact_url

if t.TYPE_CHECKING:
    from tap_pardot_export.pardot.deadline import Deadline


class RefusedBody(PardotAPIError):
    """A result file's body the tap will not read: unframed, compressed as it cannot check, or a bomb."""


def file_name(url: str, name: str | None) -> str:
    """A result file for messages: its name (stream, window, export, file) and its link."""
    return f"{name} from {redact_url(url)}" if name else redact_url(url)


def read_body(resp: requests.Response, dest: t.BinaryIO, url: str, deadline: Deadline, name: str | None = None) -> int:
    """Read a result file's whole body into ``dest``, decoded; the bytes written.

    The caller runs the request under ``deadline`` (a download's, from its first byte sent),
    which bounds this reading too. A body with neither ``Content-Length`` nor chunked
    encoding ends when the connection closes, so a cut at a line end would look whole: such
    a body is refused, not guessed at. ``name`` names the file in messages.

    Raises:
        TransientError: the body was cut (a compressed stream that did not end too), or passed the deadline.
        RefusedBody: unframed, compressed as the tap cannot check, or inflating past :data:`MAX_RATIO`.
    """
    what = file_name(url, name)
    try:
        decoder = _decoder(resp, what)
    except RefusedBody:
        resp.close()
        raise
    dest.seek(0)
    dest.truncate()
    written = 0
    with resp:
        try:
            for raw in raw_chunks(resp):
                chunk = decoder.feed(raw)
                _write(dest, chunk, what)
                written += len(chunk)
            decoder.end()
        except Inflated as exc:
            msg = (
                f"Download of {what} refused: {exc}. A body that inflates so much is not a result file (a "
                "compression bomb?); it was stopped before it filled the disk. Report it if the link is Pardot's."
            )
            raise RefusedBody(msg) from None
        except CutStream as exc:
            raise TransientError(f"Download of {what} is cut: {exc}") from None
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            if not deadline.expired:
                msg = f"Download of {what} cut off after {written} bytes ({type(exc).__name__})"
                raise TransientError(msg) from None
    if deadline.expired:  # the end may have been the deadline's shutdown, not the server's
        msg = f"download of {what} passed {deadline.describe()} after {written} bytes"
        raise TransientError(msg)
    return written


def _decoder(resp: requests.Response, what: str) -> BodyDecoder:
    """The decoder of a framed body's encoding; what cannot be read whole is refused."""
    if not framed(resp):
        msg = (
            f"Download of {what}: the server sent the file without a length (no Content-Length, not chunked), "
            "so a body cut short could not be told from a whole one. The tap refuses it rather than risk losing "
            "rows; if a proxy between the tap and Pardot strips the framing, fix the proxy."
        )
        raise RefusedBody(msg)
    try:
        return BodyDecoder(resp.headers.get("Content-Encoding"), ratio=MAX_RATIO)
    except UnknownEncoding as exc:
        msg = (
            f"Download of {what} refused: {exc}, so a body cut short could not be told from a whole one. A proxy "
            "between the tap and Pardot compresses it: have it pass result files uncompressed or as gzip."
        )
        raise RefusedBody(msg) from None


class DiskError(PardotAPIError):
    """A downloaded file could not be written: the disk is full, or the folder is not writable."""


def _nothing_taken() -> t.NoReturn:
    """A write that took no byte of a chunk: the disk is full."""
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _write(dest: t.BinaryIO, chunk: bytes, what: str) -> None:
    """Write a downloaded chunk; a failure of the disk is not the network's, and no retry fixes it."""
    view = memoryview(chunk)
    try:
        while view:  # an unbuffered file may take part of a chunk (the disk filling up): the rest, or the error
            n = dest.write(view)
            view = view[n if n is not None else len(view) :] if n != 0 else _nothing_taken()
    except OSError as exc:
        msg = (
            f"Download of {what}: writing it to disk failed ({exc.strerror or exc}). Result files are "
            "written to the temporary folder (TMPDIR) before their rows are read: free disk space or point TMPDIR "
            "at a larger disk."
        )
        raise DiskError(msg) from None


def framed(resp: requests.Response) -> bool:
    """True when the body's end can be checked: a ``Content-Length``, or chunked encoding."""
    if resp.headers.get("Content-Length"):
        return True
    return "chunked" in resp.headers.get("Transfer-Encoding", "").lower()
