"""Deadlines over whole requests, and a cap on an answer's size: a server that trickles cannot hold a run.

Every API call and token request ends within ``request_timeout`` from its first byte sent, every
download within ``download_timeout`` (connect, status line, headers and body), however slowly the
server sends them; then it is retried, or an error names the call. A status, create or token
answer over the cap is refused while it is read.

Each hostile server is the fake Pardot of ``tests/fake_pardot.py`` (a thread on 127.0.0.1 that
records what it received and stops at the end of its test), a call or a path of it answered as
the test needs; every loop in a route is bounded. Clients are built in-process with
``build_client``; retry waits are skipped (the retry policy's pause is replaced), so nothing
sleeps for real.
"""

from __future__ import annotations

import io
import json
import time
import typing as t

import pytest

from tap_pardot_export.errors import PardotAPIError
from tap_pardot_export.pardot import transport
from tests.fake_pardot import TOKEN, Call, FakePardot, Route, assert_clean_failure, send, trickle_head
from tests.helpers import client_for, run_tap

pytestmark = pytest.mark.usefixtures("instant_retries")  # retry waits are computed and logged, but not slept

EXPORT = {"id": 5001, "createdAt": "2024-01-01T00:00:00-05:00"}


# -- downloads -------------------------------------------------------------------------------------


def test_a_trickling_download_hits_download_timeout(fake):
    def trickle(h: Call) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/csv")
        h.send_header("Content-Length", "1000")
        h.end_headers()
        for _ in range(40):  # at most 4 s, then the handler gives up by itself
            h.wfile.write(b"x")
            h.wfile.flush()
            time.sleep(0.1)

    server = fake(paths={"/files/slow.csv": trickle})
    client = client_for(server.config(download_timeout=0.6, max_retries=1, request_timeout=5))
    started = time.monotonic()
    with pytest.raises(
        PardotAPIError, match=r"Giving up on download .*/files/slow\.csv after 2 tries: .*download_timeout"
    ):
        client.download(server.url + "/files/slow.csv", io.BytesIO())
    assert time.monotonic() - started < 3.5
    assert server.hits("/files/slow.csv") == 2


def test_a_download_within_its_deadline_is_read_whole(fake):
    body = b"id,name\n" + b"".join(b"%d,row\n" % i for i in range(2000))
    server = fake(paths={"/files/ok.csv": lambda h: send(h, 200, body)})
    sink = io.BytesIO()
    assert client_for(server.config()).download(server.url + "/files/ok.csv", sink) == len(body)
    assert sink.getvalue() == body


# -- a body that trickles --------------------------------------------------------------------------


def trickle(payload: dict[str, t.Any], pad: int = 400, pause: float = 0.05) -> Route:
    """A 200 answer whose JSON body arrives one byte at a time, each under any read timeout."""
    data = json.dumps(payload).encode() + b" " * pad

    def route(h: Call) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        for i in range(len(data)):
            h.wfile.write(data[i : i + 1])
            h.wfile.flush()
            time.sleep(pause)

    return route


def test_a_status_answer_trickling_a_byte_at_a_time_ends_within_request_timeout(fake, catalog):
    """Each byte comes before the read timeout, so only an overall deadline ends the answer.

    Found: 20 s of a read answer at 20 bytes a second (request_timeout 1, retry_max_time 5,
    export_timeout 5) and the run still waited; with Pardot's 300 s it never ends.
    """
    server = fake(read=trickle({**EXPORT, "state": "Processing"}))
    cfg = server.config(request_timeout=1, retry_max_time=5, export_timeout=5, max_retries=1)
    t0 = time.monotonic()
    run = run_tap(cfg, catalog=catalog, timeout=30)
    assert time.monotonic() - t0 < 15
    assert_clean_failure(run, "request_timeout")


def test_a_token_answer_trickling_a_byte_at_a_time_ends_within_request_timeout(fake, catalog):
    server = fake(token=trickle({"access_token": TOKEN, "instance_url": "https://x.example"}))
    cfg = server.config(request_timeout=1, retry_max_time=5, max_retries=1)
    t0 = time.monotonic()
    run = run_tap(cfg, catalog=catalog, timeout=30)
    assert time.monotonic() - t0 < 15
    assert_clean_failure(run, "request_timeout")


def test_a_huge_status_answer_is_refused_before_it_fills_memory(fake, catalog, monkeypatch):
    """Found: a status, create or token answer is read whole into memory, whatever its size (a
    hostile or broken server can send gigabytes). The cap is lowered here to keep the test small.
    """
    monkeypatch.setattr(transport, "MAX_ANSWER_BYTES", 1 << 20)
    big = json.dumps({**EXPORT, "state": "Processing"}).encode() + b" " * (3 << 20)
    server = fake(read=lambda h: send(h, 200, big))
    run = run_tap(server.config(max_retries=1, export_timeout=2), catalog=catalog, timeout=60)
    assert_clean_failure(run, "larger than")


# -- a status line or headers that trickle ---------------------------------------------------------


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
