"""Answers whose bytes are fine but whose meaning is not (issue 18, section 3), against hostile servers on loopback.

Three classes: compressed bodies (each compressed stream must have ended, and may not inflate
past 100 times its size), answers inconsistent over time (an export id answering for two
requests, a ``Complete`` whose links come later, one file under several links) and whole-request
deadlines (a server trickling its status line or headers). The server is the fake Pardot of
``tests/fake_pardot.py`` (one export, its answers overridden per call); every sync test asserts the
invariant: exit 0 with exactly the rows served, or a non-zero exit with a clear message and no
bookmark past a row not emitted.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import logging
import time
import typing as t
import zlib
from contextlib import closing

import pytest

from tap_pardot_export.engine.state import state_errors
from tap_pardot_export.errors import PardotAPIError
from tap_pardot_export.pardot.encodings import BodyDecoder, CutStream, Inflated, UnknownEncoding
from tap_pardot_export.pardot.exports import result_refs
from tap_pardot_export.pardot.urls import link_key, remove_dot_segments
from tests.fake_pardot import (
    API,
    END,
    START,
    STREAM,
    WHERE,
    Call,
    FakePardot,
    Route,
    assert_clean_failure,
    assert_exact,
    assert_no_secret,
    assert_refused,
    bookmarks,
    csv_body,
    many,
    send,
    trickle_head,
)
from tests.helpers import client_for, run_tap, run_with_file_limit
from tests.singer_messages import whole_lines
from tests.taps import BOUND, SIGTERM_EXIT, Tap, pending

if t.TYPE_CHECKING:
    from pathlib import Path

UTC = dt.timezone.utc


ROWS, TYPED = many()


def data(c: Call, rows: list[dict[str, str]] = ROWS) -> bytes:
    return csv_body(c.fields, rows)


# -- 1. compressed downloads -------------------------------------------------------------------------------


def deflate_raw(payload: bytes) -> bytes:
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return c.compress(payload) + c.flush()


def cut_at_a_line_end(payload: bytes, wbits: int = 31, lines: int = 150) -> bytes:
    """``payload``'s first ``lines`` lines compressed, flushed so they decode whole, and no end: a stream cut short."""
    head = b"".join(payload.splitlines(keepends=True)[:lines])
    c = zlib.compressobj(wbits=wbits)
    return c.compress(head) + c.flush(zlib.Z_SYNC_FLUSH)


def bad_crc(payload: bytes) -> bytes:
    body = bytearray(gzip.compress(payload))
    body[-6] ^= 0xFF  # in the trailer's CRC-32
    return bytes(body)


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


@pytest.mark.parametrize("case", list(CUT))
def test_a_compressed_body_that_does_not_end_whole_is_fetched_again_then_refused(serve, case):
    encoding, make = CUT[case]
    server, run = serve(lambda c: encoded(encoding, make(data(c))))
    assert_refused(run, *WHERE, "is cut", "after 3 tries")
    assert server.count("download") == 3
    assert not run.records(STREAM)


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


# -- 1. compressed API answers ----------------------------------------------------------------------------


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


# -- 2. answers inconsistent over time --------------------------------------------------------------------

ABSENT = object()
QUARTER = dt.timedelta(hours=6)  # window_days 0.25: four windows in the day


def complete_with(refs: t.Callable[[Call], t.Any]) -> Route:
    """A read answering the export Complete with ``refs(call)`` as its ``resultRefs`` (ABSENT: none)."""

    def read(c: Call) -> None:
        answer = c.fake.export("Complete", resultRefs=refs(c))
        if answer["export"]["resultRefs"] is ABSENT:
            del answer["export"]["resultRefs"]
        send(c, 200, answer)

    return read


def in_window(rows: list[dict[str, str]], start: dt.datetime, end: dt.datetime) -> list[dict[str, str]]:
    """The rows whose updated_at (New York's wall clock) falls in ``[start, end)``."""

    def utc(row: dict[str, str]) -> dt.datetime:
        local = dt.datetime.strptime(row["updated_at"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        return local + dt.timedelta(hours=5)

    return [r for r in rows if start <= utc(r) < end]


def first_window_file(c: Call) -> bytes:
    """Export 1's file: the rows of the window its first create asked for (every create answers export 1)."""
    return data(c, in_window(ROWS, START, START + QUARTER))


@pytest.mark.parametrize("ahead", [0, 1], ids=["one at a time", "created ahead"])
def test_an_export_id_answering_for_another_window_is_refused(serve, ahead):
    """Found: every create answered export 1: window 1's file was read four times, 225 of 300 rows lost, exit 0."""
    server, run = serve(first_window_file, config={"window_days": 0.25, "max_queued_exports": ahead})
    assert run.returncode != 0 and "Traceback" not in run.stderr, run.stderr[-3000:]
    assert "export 1, which this run already reads for another request" in run.stderr, run.stderr[-3000:]
    assert "list_membership [2024-01-01T06:00:00+00:00 .. 2024-01-01T12:00:00+00:00)" in run.stderr
    assert_no_secret(run)
    ids = [r["id"] for r in run.records(STREAM)]
    assert len(ids) == len(set(ids)), "a file was read twice"
    assert set(ids) <= {int(r["id"]) for r in in_window(ROWS, START, START + QUARTER)}
    marks = [dt.datetime.fromisoformat(m) for m in bookmarks(run)]
    assert all(m <= START + QUARTER for m in marks), marks
    assert server.count("download") <= 1


def test_an_export_id_a_state_records_for_another_request_is_never_read_for_this_one(serve):
    """A state's export (here of a query this run no longer asks: other fields) is bound before any call."""
    entry = {"id": 1, "after": "2023-12-31T23:59:59+00:00", "before": "2024-01-02T00:00:00+00:00", "query": "0" * 16}
    state = {"bookmarks": {STREAM: {"replication_key": "updated_at", "pending_export": entry}}}
    server, run = serve(data, state=state)
    assert_refused(run, "export 1, which this run already reads for another request", "from state")
    assert server.count("download") == 0 and not run.records(STREAM)


def test_a_state_naming_one_export_for_two_windows_is_corrupted(serve):
    entry = {"after": "2023-12-31T23:59:59+00:00", "before": "2024-01-01T12:00:00+00:00", "query": "a" * 16}
    later = {**entry, "after": "2024-01-01T11:59:59+00:00", "before": "2024-01-02T00:00:00+00:00", "query": "b" * 16}
    state = {"bookmarks": {STREAM: {"pending_export": {**entry, "id": 7}, "queued_exports": [{**later, "id": 7}]}}}
    server, run = serve(data, state=state)
    assert_refused(run, "The state is corrupted", "export 7 is recorded for two windows", "meltano state clear")
    assert server.count("create") == 0 and server.count("download") == 0
    other = {
        "bookmarks": {STREAM: {"pending_export": {**entry, "id": 7}}, "visitor": {"pending_export": {**later, "id": 7}}}
    }
    assert state_errors(other) == [
        "export 7 is recorded for two windows (list_membership [2023-12-31T23:59:59+00:00 .. "
        "2024-01-01T12:00:00+00:00] and visitor [2024-01-01T11:59:59+00:00 .. 2024-01-02T00:00:00+00:00])"
    ]


@pytest.mark.parametrize("empty", [ABSENT, "", [], [""]], ids=["absent", "empty string", "empty list", "[''"])
def test_a_complete_export_whose_links_come_in_a_later_read_is_read_whole(serve, empty):
    """Found: the first Complete listed no link, the next did: 0 of 300 rows, bookmark moved."""
    server, run = serve(data, read=complete_with(lambda c: empty if c.attempt == 1 else c.fake.links))
    assert_exact(run, TYPED)
    assert server.count("read") == 2 and server.count("download") == 1


def test_a_complete_export_without_links_twice_is_an_empty_window(serve):
    server, run = serve(data, read=complete_with(lambda c: ABSENT))
    assert run.returncode == 0, run.stderr[-3000:]
    assert not run.records(STREAM)
    assert bookmarks(run)[-1] == END.isoformat()
    assert server.count("read") == 2, "read once more, not more"
    assert "Complete without result files; reading it once more" in run.stderr


def spellings(c: Call) -> list[str]:
    """One file's link in spellings RFC 3986 makes equivalent."""
    base = c.fake.url
    return [
        f"{base}/dl/1",
        f"{base}/dl/1#part-2",
        f"HTTP://127.0.0.1:{c.fake.port}/dl/1",
        f"{base}/dl/x/../1",
        f"{base}/dl/./1",
        f"{base}/%64l/%31",
    ]


def test_one_file_under_equivalent_spellings_of_its_link_is_downloaded_once(serve):
    """Found: the same file under three spellings of its link: every row emitted three times."""
    server, run = serve(data, read=complete_with(spellings))
    assert_exact(run, TYPED)
    assert server.count("download") == 1


def test_one_file_under_links_that_differ_is_read_once_by_its_content(serve):
    """``//`` is not an RFC 3986 equivalence (nor ``/dl/2``): both are fetched, and the repeat is read once."""
    links = complete_with(lambda c: [f"{c.fake.url}/dl/1", f"{c.fake.url}//dl/1", f"{c.fake.url}/dl/2"])
    server, run = serve(data, read=links)
    assert_exact(run, TYPED)
    assert server.count("download") == 3
    assert run.stderr.count("has the same bytes as result file") == 2


def test_links_that_differ_in_their_query_are_other_files(serve):
    """``?x=1`` may name another file: both are downloaded and read, each its own rows."""
    half = len(ROWS) // 2

    def body(c: Call) -> bytes:
        return data(c, ROWS[half:] if "x=1" in c.path else ROWS[:half])

    server, run = serve(body, read=complete_with(lambda c: [f"{c.fake.url}/dl/1", f"{c.fake.url}/dl/1?x=1"]))
    assert_exact(run, TYPED)
    assert server.count("download") == 2


def test_link_keys_follow_rfc_3986():
    base = "https://pi.pardot.com/dl/1"
    same = [
        "https://pi.pardot.com/dl/1#frag",
        "HTTPS://PI.Pardot.COM:443/dl/1",
        "https://pi.pardot.com/x/../dl/1",
        "https://pi.pardot.com/dl/./1",
        "https://pi.pardot.com/%64l/%31",
        "https://pi.pardot.com/dl/%2E/1",
        " https://pi.pardot.com/dl/1",
    ]
    other = [
        "https://pi.pardot.com/dl/1?x=1",
        "https://pi.pardot.com//dl/1",
        "https://pi.pardot.com:8443/dl/1",
        "http://pi.pardot.com/dl/1",
        "https://pi.pardot.com/dl/1/",
        "https://pi.pardot.com/DL/1",
        "https://pi.pardot.com/dl/1%2F",
    ]
    assert {link_key(u) for u in same} == {link_key(base)}
    assert all(link_key(u) != link_key(base) for u in other)
    assert link_key("http://h/a%2fb?q=%7e") == "http://h/a%2Fb?q=~"
    assert link_key("HTTP://[::1]:80") == "http://[::1]/"
    assert remove_dot_segments("/a/b/c/./../../g") == "/a/g" and remove_dot_segments("mid/content=5/../6") == "mid/6"
    refs = result_refs({"id": 1, "resultRefs": [base, "", "https://pi.pardot.com:443/dl/1", base + "?x=1"]})
    assert refs == [base, base + "?x=1"], "the first spelling, as given"


# -- 3. whole-request deadlines -------------------------------------------------------------------------------


def timed(run: t.Callable[[], t.Any]) -> tuple[t.Any, float]:
    t0 = time.monotonic()
    out = run()
    return out, time.monotonic() - t0


def bound(deadline: float, tries: int) -> float:
    """An upper bound a loaded 2-core machine meets: three times the deadlines, plus 5 s."""
    return 3 * deadline * tries + 5


@pytest.mark.parametrize(
    ("call", "status_line"),
    [("read", False), ("read", True), ("create", False), ("token", False), ("token", True)],
)
def test_an_api_call_whose_head_trickles_ends_within_request_timeout(fake, catalog, instant_retries, call, status_line):
    """Found: a status line, then a header byte every half second: the run hung forever."""
    server: FakePardot = fake(**{call: trickle_head(status_line=status_line)})
    cfg = server.config(request_timeout=1, max_retries=1, export_timeout=60)
    run, took = timed(lambda: run_tap(cfg, catalog=catalog, timeout=bound(1, 2) + 30))
    assert took < bound(1, 2), f"the run took {took:.1f}s"
    assert_clean_failure(run, "request_timeout (1s)", "after 2 tries")


@pytest.mark.parametrize("status_line", [False, True])
def test_a_download_whose_head_trickles_ends_within_download_timeout(fake, catalog, instant_retries, status_line):
    server: FakePardot = fake(download=trickle_head(status_line=status_line), export_id=5001)
    cfg = server.config(request_timeout=5, download_timeout=1.5, max_retries=1)
    run, took = timed(lambda: run_tap(cfg, catalog=catalog, timeout=bound(1.5, 2) + 30))
    assert took < bound(1.5, 2), f"the run took {took:.1f}s"
    assert_clean_failure(run, "download_timeout (1.5s)", "after 2 tries", "export 5001, result file 1")


def test_a_call_past_its_deadline_is_retried_and_a_later_answer_used(fake, instant_retries):
    """The deadline ends one try; the next try is a request of its own, with a deadline of its own."""
    calls = [0]
    slow = trickle_head(at_most=5)

    def read(h: Call) -> None:
        calls[0] += 1
        if calls[0] == 1:
            slow(h)
        else:
            send(h, 200, {"export": {"id": 1, "state": "Waiting"}})

    server = fake(read=read)
    client = client_for(server.config(request_timeout=0.5, max_retries=2))
    answer, took = timed(lambda: client.json("GET", "read/id/1", "read"))
    assert answer["export"]["state"] == "Waiting"
    assert calls[0] == 2 and took < bound(0.5, 2)


def test_sigterm_during_an_api_call_whose_head_trickles_ends_in_bounded_time(fake, catalog):
    """The main thread blocked in a trickling status read still takes the signal: state out, exit 143."""
    server: FakePardot = fake(read=trickle_head(every=0.2, at_most=60))
    with closing(Tap(server.config(request_timeout=300, max_retries=0), catalog)) as tap:
        assert tap.read_until(pending)
        deadline = time.monotonic() + 30
        while not server.count("read"):
            assert time.monotonic() < deadline, "the status read never began"
            time.sleep(0.02)
        run, took = tap.term_and_wait(after=0.5)
    assert took < BOUND, f"the tap took {took:.1f}s to end after SIGTERM"
    assert run.returncode == SIGTERM_EXIT, run.stderr[-2000:]
    assert whole_lines(run)[-1]["type"] == "STATE"
    assert "state emitted" in run.stderr
    assert "Traceback" not in run.stderr


def test_sigterm_during_a_download_whose_head_trickles_ends_in_bounded_time(fake, catalog):
    server: FakePardot = fake(download=trickle_head(every=0.2, at_most=60))
    with closing(Tap(server.config(download_timeout=3000, max_retries=0), catalog)) as tap:
        deadline = time.monotonic() + 60
        while not server.count("download"):
            assert time.monotonic() < deadline, "the download never began"
            time.sleep(0.02)
        run, took = tap.term_and_wait(after=0.5)
    assert took < BOUND, f"the tap took {took:.1f}s to end after SIGTERM"
    assert run.returncode == SIGTERM_EXIT, run.stderr[-2000:]
    assert whole_lines(run)[-1]["type"] == "STATE"
    assert "Traceback" not in run.stderr
