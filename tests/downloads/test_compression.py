"""Compressed bodies: each compressed stream must reach its end, and may not inflate past 100 times its size.

Result files and API answers (status, create, token) sent as ``gzip``, ``x-gzip`` or ``deflate``,
stacked or in several members, are decoded by the tap, which checks each stream's end (a gzip
member's trailer, a deflate stream's final block): one cut at a line end is fetched again like any
cut body. Encodings whose end cannot be checked are refused; a compression bomb is refused as it
is read. Against a fake Pardot on loopback (``tests/fake_pardot.py``), then the decoder as a unit.
"""

from __future__ import annotations

import gzip
import json
import logging
import typing as t
import zlib

import pytest

from tap_pardot_export.errors import PardotAPIError
from tap_pardot_export.pardot.encodings import BodyDecoder, CutStream, Inflated, UnknownEncoding
from tests.fake_pardot import API, STREAM, WHERE, Call, Route, assert_exact, assert_refused, csv_body, many, send
from tests.helpers import client_for, run_with_file_limit

if t.TYPE_CHECKING:
    from pathlib import Path

ROWS, TYPED = many()


# -- result files ----------------------------------------------------------------------------------


def data(c: Call, rows: list[dict[str, str]] = ROWS) -> bytes:
    return csv_body(c.fields, rows)


def cut_at_a_line_end(payload: bytes, wbits: int = 31, lines: int = 150) -> bytes:
    """``payload``'s first ``lines`` lines compressed, flushed so they decode whole, and no end: a stream cut short."""
    head = b"".join(payload.splitlines(keepends=True)[:lines])
    c = zlib.compressobj(wbits=wbits)
    return c.compress(head) + c.flush(zlib.Z_SYNC_FLUSH)


def encoded(encoding: str, payload: bytes) -> tuple[bytes, dict[str, str]]:
    return payload, {"Content-Encoding": encoding}


def test_a_gzip_body_cut_at_a_line_end_is_fetched_again(serve):
    """Found: a gzip stream cut at a line end passed every check: exit 0, 149 of 300 rows, bookmark moved."""

    def body(c: Call) -> tuple[bytes, dict[str, str]]:
        whole = data(c)
        return encoded("gzip", cut_at_a_line_end(whole) if c.attempt == 1 else gzip.compress(whole))

    server, run = serve(body)
    assert_exact(run, TYPED)
    assert server.count("download") == 2


def bad_crc(payload: bytes) -> bytes:
    body = bytearray(gzip.compress(payload))
    body[-6] ^= 0xFF  # in the trailer's CRC-32
    return bytes(body)


CUT: dict[str, tuple[str, t.Callable[[bytes], bytes]]] = {
    "gzip cut at a line end": ("gzip", cut_at_a_line_end),
    "x-gzip cut at a line end": ("x-gzip", cut_at_a_line_end),
    "deflate (zlib) cut at a line end": ("deflate", lambda b: cut_at_a_line_end(b, zlib.MAX_WBITS)),
    "deflate (raw) cut at a line end": ("deflate", lambda b: cut_at_a_line_end(b, -zlib.MAX_WBITS)),
    "gzip, gzip: the inner stream cut": ("gzip, gzip", lambda b: gzip.compress(cut_at_a_line_end(b))),
    "gzip without its last trailer byte": ("gzip", lambda b: gzip.compress(b)[:-1]),
    "a second gzip member cut": ("gzip", lambda b: gzip.compress(b[:1000]) + cut_at_a_line_end(b[1000:])),
    "gzip with a bad CRC": ("gzip", bad_crc),
}


@pytest.mark.parametrize("case", list(CUT))
def test_a_compressed_body_that_does_not_end_whole_is_fetched_again_then_refused(serve, case):
    encoding, make = CUT[case]
    server, run = serve(lambda c: encoded(encoding, make(data(c))))
    assert_refused(run, *WHERE, "is cut", "after 3 tries")
    assert server.count("download") == 3
    assert not run.records(STREAM)


def deflate_raw(payload: bytes) -> bytes:
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return c.compress(payload) + c.flush()


ENCODED: dict[str, tuple[str, t.Callable[[bytes], bytes]]] = {
    "gzip": ("gzip", gzip.compress),
    "x-gzip": ("x-gzip", gzip.compress),
    "GZIP in capitals": ("GZIP", gzip.compress),
    "deflate (zlib)": ("deflate", zlib.compress),
    "deflate (raw)": ("deflate", deflate_raw),
    "gzip, gzip": ("gzip, gzip", lambda b: gzip.compress(gzip.compress(b))),
    "deflate, gzip": ("deflate, gzip", lambda b: gzip.compress(zlib.compress(b))),
    "identity, gzip": ("identity, gzip", gzip.compress),
    "two gzip members": ("gzip", lambda b: gzip.compress(b[:1000]) + gzip.compress(b[1000:])),
}


@pytest.mark.parametrize("case", list(ENCODED))
def test_compressed_bodies_that_end_whole_are_read(serve, case):
    encoding, make = ENCODED[case]
    server, run = serve(lambda c: encoded(encoding, make(data(c))))
    assert_exact(run, TYPED)
    assert server.count("download") == 1


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "gzip, br", "x-unknown", "gzip;q=1"])
def test_an_encoding_the_tap_cannot_verify_is_refused_naming_the_file(serve, encoding):
    """Whatever the bytes (here plain CSV, as a lying server may send), the end of such a body cannot be checked."""
    server, run = serve(lambda c: encoded(encoding, data(c)))
    assert_refused(run, *WHERE, "Content-Encoding", "cannot verify", "uncompressed or as gzip")
    assert server.count("download") == 1
    assert not run.records(STREAM)


def bomb(fields: list[str], mib: int = 512) -> bytes:
    """A CSV header, then ``mib`` MiB of zeros: about half a megabyte as gzip members of 1 MiB each."""
    zeros = gzip.compress(b"\0" * (1 << 20), compresslevel=9)
    return gzip.compress((",".join(fields) + "\r\n").encode()) + zeros * mib


def test_a_compression_bomb_is_refused_as_it_is_read_before_it_fills_the_disk(fake, catalog, tmp_path: Path):
    """Found: a 0.5 MB body inflated to 512 MiB on disk. Here the tap's files may not pass 64 MiB (a small disk)."""
    server = fake(body=lambda c: encoded("gzip", bomb(c.fields)))
    proc, tmp = run_with_file_limit(server.config(max_retries=2), catalog, 64 << 10, tmp_path)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    for needle in (*WHERE, "refused", "inflate to more than 100 times", "before it filled the disk"):
        assert needle in proc.stderr, proc.stderr[-3000:]
    assert "writing it to disk failed" not in proc.stderr
    assert server.count("download") == 1, "a bomb is refused, not fetched again"
    assert not any(p.is_file() for p in tmp.rglob("*"))


def test_the_decoder_bounds_inflation_and_checks_every_end():
    """The units under the sync tests: bounds in memory too, several members, trailing bytes, empty bodies."""
    payload = b"id,x\r\n" + b"".join(b"%d,row\r\n" % i for i in range(5000))
    body = gzip.compress(payload)
    for step in (1, 7, 4096):
        d = BodyDecoder("gzip", ratio=100)
        out = b"".join(d.feed(body[i : i + step]) for i in range(0, len(body), step))
        d.end()
        assert out == payload
    d = BodyDecoder("gzip", ratio=100)
    with pytest.raises(Inflated, match="more than 100 times") as info:
        d.feed(bomb(["id"], mib=8))
    assert info.value.by_ratio and d.size <= 100 * d.received
    with pytest.raises(Inflated, match="larger than 1000 bytes"):
        BodyDecoder("", cap=1000).feed(b"x" * 1001)
    with pytest.raises(CutStream, match="corrupt"):
        BodyDecoder("gzip").feed(gzip.compress(payload) + b"trailing junk")
    with pytest.raises(CutStream, match="follow the end"):
        BodyDecoder("deflate").feed(zlib.compress(payload) + b"x")
    for encoding in ("gzip", "deflate", "gzip, deflate"):
        empty = BodyDecoder(encoding)
        assert empty.feed(b"") == b""
        empty.end()  # no byte at all: nothing was begun, nothing cut (the framing said the body is empty)
    one = BodyDecoder("deflate")
    one.feed(b"\x78")
    with pytest.raises(CutStream, match="stopped before its end"):
        one.end()
    with pytest.raises(UnknownEncoding):
        BodyDecoder("gzip, br")


# -- API answers -----------------------------------------------------------------------------------


def gzip_route(payload: t.Any, *, cut_first: int = 0) -> tuple[Route, list[int]]:
    """A 200 JSON answer as gzip, its first ``cut_first`` answers cut inside trailing spaces (still JSON when cut)."""
    whole = json.dumps(payload).encode() + b" " * 2000
    hits = [0]

    def route(h: Call) -> None:
        hits[0] += 1
        body = gzip.compress(whole)
        if hits[0] <= cut_first:  # the JSON and some spaces, flushed: it decodes to valid JSON, but not to the end
            c = zlib.compressobj(wbits=31)
            body = c.compress(whole[:-1000]) + c.flush(zlib.Z_SYNC_FLUSH)
        send(h, 200, body, {"Content-Type": "application/json", "Content-Encoding": "gzip"})

    return route, hits


def test_a_status_answer_cut_inside_its_gzip_stream_is_read_again(fake, instant_retries, caplog):
    """The cut copy still parses as JSON: only the gzip stream's end tells it is not whole."""
    route, hits = gzip_route({"export": {"id": 1, "state": "Processing"}}, cut_first=1)
    server = fake(read=route)
    client = client_for(server.config(max_retries=2))
    caplog.set_level(logging.WARNING)
    assert client.json("GET", "read/id/1", "read")["export"]["state"] == "Processing"
    assert hits[0] == 2
    assert "was cut short: the gzip stream stopped before its end" in caplog.text


def test_a_token_answer_cut_inside_its_gzip_stream_is_read_again(fake, instant_retries):
    route, hits = gzip_route({"access_token": "00Dgz!token-1", "instance_url": "https://x.example"}, cut_first=2)
    server = fake(token=route)
    client = client_for(server.config(max_retries=2))
    assert client.tokens.token() == "00Dgz!token-1"
    assert hits[0] == 3


def test_an_api_answer_compressed_as_the_tap_cannot_check_is_refused(fake):
    answer = json.dumps({"export": {"id": 1, "state": "Processing"}}).encode()
    server = fake(read=lambda h: send(h, 200, answer, {"Content-Type": "application/json", "Content-Encoding": "br"}))
    with pytest.raises(PardotAPIError, match=r"compressed as the tap cannot check \(Content-Encoding 'br'"):
        client_for(server.config()).json("GET", "read/id/1", "read")
    assert server.hits(API + "read/id/1") == 1
    requests_sent = [r for r in server.requests if r.path == API + "read/id/1"]
    assert requests_sent[0].headers["Accept-Encoding"] == "gzip, deflate"
