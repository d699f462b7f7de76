"""A body's ``Content-Encoding`` undone here, each compressed stream's end verified, its inflation bounded.

The tap reads bodies as sent and decodes them itself: a decoder that stops at the last byte
received, as urllib3's does, takes a gzip stream cut at a line end for a whole, shorter file.
Here every encoding is verified to have ended: a gzip member by its trailer (CRC-32 and
length, checked by zlib), a deflate stream by its final block (and, wrapped in zlib as HTTP
means it, its Adler-32). Stacked encodings (``gzip, gzip``) are undone last one first. What
cannot be verified (``br``, ``zstd``, ``compress``, any unknown name) is refused, never passed
on. The tap asks only for :data:`ACCEPT_ENCODING`; a proxy may still send anything.

Inflation is bounded while the body is read: each stage may put out at most ``ratio`` times
the compressed bytes received so far (and at most ``cap`` bytes in all), and zlib is never
asked for more than that, so a small body that would inflate to gigabytes stops at the bound,
in memory and on disk.
"""

from __future__ import annotations

import zlib

#: what the tap asks for: the encodings whose end it can verify
ACCEPT_ENCODING = "gzip, deflate"
#: the most a result file may inflate (real CSV compresses 5 to 10 times)
MAX_RATIO = 100
_GZIP = 16 + zlib.MAX_WBITS
_NAMES = {"gzip": "gzip", "x-gzip": "gzip", "deflate": "deflate"}


class EncodingProblem(Exception):
    """A body's encoding cannot be decoded whole; the message says why (for the caller's own)."""


class UnknownEncoding(EncodingProblem):
    """An encoding the tap cannot verify (``br``, ``zstd``, ``compress``, an unknown name): refused."""


class CutStream(EncodingProblem):
    """A compressed stream that did not end, or is corrupt: fetching the body again may help."""


class Inflated(EncodingProblem):
    """A body inflating past its bound (``ratio`` times its compressed size, or ``cap`` bytes)."""

    def __init__(self, message: str, *, by_ratio: bool) -> None:
        """``by_ratio``: the ratio was the bound passed (else the cap)."""
        super().__init__(message)
        self.by_ratio = by_ratio


class _Past(Exception):
    """Internal: a stage's output passed the bound it was given."""


def codings(header: str | None) -> list[str]:
    """The encodings of a ``Content-Encoding`` header in the order applied (``identity`` left out).

    Raises:
        UnknownEncoding: one of them is not gzip (or x-gzip) nor deflate.
    """
    names = [c.strip().lower() for c in (header or "").split(",")]
    out = []
    for name in names:
        if name in ("", "identity"):
            continue
        if name not in _NAMES:
            msg = (
                f"Content-Encoding {(header or '').strip()[:60]!r}: the tap cannot verify that a {name[:20]!r} "
                f"body ended (it asks for {ACCEPT_ENCODING} only)"
            )
            raise UnknownEncoding(msg)
        out.append(_NAMES[name])
    return out


class _Stage:
    """Undoing one encoding: gzip (one member or several, each checked) or deflate (zlib-wrapped or raw)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.produced = 0
        self._inflater: zlib._Decompress | None = None
        self._head = b""  # deflate: the first two bytes tell zlib-wrapped from raw

    @property
    def ended(self) -> bool:
        """True when no stream was begun, or the last one begun reached its verified end."""
        return not self._head and (self._inflater is None or self._inflater.eof)

    def _next(self, data: bytes) -> tuple[zlib._Decompress | None, bytes]:
        """The inflater for ``data`` (a new gzip member after one ended), or None while deflate waits for 2 bytes."""
        if self._inflater is not None and not self._inflater.eof:
            return self._inflater, data
        if self._inflater is not None and self.name == "deflate":
            raise CutStream(f"bytes follow the end of the deflate stream ({len(data)} or more)")
        if self.name == "gzip":
            return zlib.decompressobj(_GZIP), data
        self._head += data
        if len(self._head) < 2:
            return None, b""
        data, self._head = self._head, b""
        zlib_wrapped = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
        return zlib.decompressobj(zlib.MAX_WBITS if zlib_wrapped else -zlib.MAX_WBITS), data

    def feed(self, data: bytes, limit: int) -> bytes:
        """Inflate ``data``; past ``limit`` bytes out in all, :class:`_Past` (nothing more is inflated)."""
        out = bytearray()
        while data:
            inflater, data = self._next(data)
            if inflater is None:
                break
            self._inflater = inflater
            room = max(0, limit - self.produced - len(out))
            try:
                piece = inflater.decompress(data, room + 1)  # never more than the bound allows (0 would be no bound)
            except zlib.error as exc:
                raise CutStream(f"the {self.name} stream is corrupt ({exc})") from None
            out += piece
            if len(piece) > room:
                self.produced += len(out)
                raise _Past
            data = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
        self.produced += len(out)
        return bytes(out)


class BodyDecoder:
    """Undoes a body's ``Content-Encoding`` chunk by chunk; :meth:`end` verifies every stream ended.

    ``ratio`` bounds each stage's output by that many times the bytes received, ``cap`` in
    bytes; either may be None (no such bound).
    """

    def __init__(self, header: str | None, *, ratio: int | None = None, cap: int | None = None) -> None:
        """Raises :class:`UnknownEncoding` for an encoding that cannot be verified."""
        self.stages = [_Stage(name) for name in reversed(codings(header))]
        self.ratio, self.cap = ratio, cap
        self.received = 0
        self.size = 0

    @property
    def encoded(self) -> bool:
        """True when the body is compressed (at least one encoding to undo)."""
        return bool(self.stages)

    def _limit(self) -> int | None:
        bounds = [b for b in (self.ratio * self.received if self.ratio else None, self.cap) if b is not None]
        return min(bounds) if bounds else None

    def feed(self, chunk: bytes) -> bytes:
        """The decoded bytes of ``chunk`` (the next bytes received).

        Raises:
            CutStream: a stream is corrupt.
            Inflated: the output passed its bound.
        """
        self.received += len(chunk)
        limit = self._limit()
        data = chunk
        try:
            for stage in self.stages:
                data = stage.feed(data, limit if limit is not None else 1 << 62)
        except _Past:
            raise self._inflated() from None
        self.size += len(data)
        if not self.stages and limit is not None and self.size > limit:
            raise self._inflated()
        return data

    def _inflated(self) -> Inflated:
        """The error once an output passed the bound: the ratio's, or the cap's."""
        if self.ratio is not None and self.stages and (self.cap is None or self.ratio * self.received <= self.cap):
            msg = (
                f"its first {self.received} compressed bytes inflate to more than {self.ratio} times their size "
                "(real CSV compresses 5 to 10 times)"
            )
            return Inflated(msg, by_ratio=True)
        return Inflated(f"it is larger than {self.cap} bytes", by_ratio=False)

    def end(self) -> None:
        """Check that every compressed stream reached its end (the body as received is whole).

        Raises:
            CutStream: a stream stopped before its end (a gzip member without its trailer, a
                deflate stream without its final block).
        """
        for stage in self.stages:
            if not stage.ended:
                msg = f"the {stage.name} stream stopped before its end ({self.received} bytes received)"
                raise CutStream(msg)
