"""Findings of a new user's and an attacker's tries, each kept as a test.

The server is the fake Pardot of ``tests/fake_pardot.py`` (loopback, bounded, stopped at the end
of each test), its token, create, read or download answers overridden as each scenario needs.
Retry waits are scaled to zero.
"""

from __future__ import annotations

import json
import time
import typing as t

import pytest

from tap_pardot_export.pardot import transport
from tests.fake_pardot import ROWS, TOKEN, Call, Route, assert_clean_failure, closed_port, csv_body, send
from tests.helpers import run_check, run_tap

pytestmark = pytest.mark.usefixtures("instant_retries")  # retry waits are computed and logged, but not slept

EXPORT = {"id": 5001, "createdAt": "2024-01-01T00:00:00-05:00"}


# -- bounded time ---------------------------------------------------------------------------------------


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


# -- settings and state a new user can get wrong ------------------------------------------------------


@pytest.mark.parametrize("start", ["0001-01-01", "0001-01-01T00:00:00+05:00", "1000-06-01"])
def test_a_start_date_in_antiquity_is_a_setting_error_before_any_call(fake, catalog, start):
    """Found: year 1 went through validation, then the first window's start less one second overflowed."""
    server = fake()
    run = run_tap(server.config(start_date=start), catalog=catalog, timeout=20)
    assert_clean_failure(run, "start_date")
    assert server.requests == []


def test_a_bookmark_in_antiquity_is_a_corrupted_state(fake, catalog):
    server = fake()
    state = {"bookmarks": {"list_membership": {"replication_key": "updated_at", "replication_key_value": "0001-01-01"}}}
    run = run_tap(server.config(), catalog=catalog, state=state)
    assert_clean_failure(run, "The state is corrupted", "list_membership")
    assert server.requests == []


@pytest.mark.parametrize(
    ("option", "text"),
    [("--config", '{"business_unit_id": "0Uv'), ("--config", '{"window_days": NaN}'), ("--catalog", "[1")],
)
def test_a_config_or_catalog_file_that_is_not_json_is_named_without_a_traceback(fake, tmp_path, option, text):
    """Found: a cut config file (or NaN, which Python's json writes) gave simplejson's traceback."""
    server = fake()
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    run = run_tap(server.config(), args=[option, str(bad)])
    assert_clean_failure(run, "not valid JSON", option)
    assert server.requests == []


# -- the first-run check ---------------------------------------------------------------------------------


def test_check_never_says_ok_for_a_business_unit_on_an_api_url_that_refuses_connections(fake, tmp_path):
    """Found: ``--check`` printed "OK business unit ... found on 127.0.0.1" and "OK API version 4"
    for a closed port: the custom field query was sent as a result link (retried, never first
    contact), and its give-up read as "no custom fields".
    """
    login = fake()
    cfg = login.config(max_retries=1)
    cfg["api_url"] = f"http://127.0.0.1:{closed_port()}"
    run = run_check(cfg)
    assert run.returncode != 0
    assert "OK    business unit" not in run.everything, run.everything[-2000:]
    assert "FAIL  business unit" in run.everything
    assert "api_url" in run.everything
    assert "Traceback" not in run.everything


# -- values a result file may hold ------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["99999999999999999999999", "-99999999999999999999999"])
@pytest.mark.parametrize("batch", [False, True])
def test_an_integer_past_64_bits_is_a_message_naming_the_row_not_a_traceback(fake, catalog, tmp_path, value, batch):
    """Found: orjson's "Integer exceeds 64-bit range" traceback while writing the RECORD."""
    server = fake(
        export_id=5001, body=lambda c: csv_body(c.fields, [ROWS[0], {**ROWS[1], "prospect_id": value}, ROWS[2]])
    )
    cfg = server.config(max_retries=1)
    if batch:
        cfg["batch_config"] = {
            "encoding": {"format": "jsonl", "compression": "none"},
            "storage": {"root": f"file://{tmp_path}", "prefix": "b-"},
        }
    run = run_tap(cfg, catalog=catalog)
    assert_clean_failure(run, "prospect_id", "row 2", "export 5001")


# -- bodies whose end cannot be checked -------------------------------------------------------------------


def close_delimited_cut(c: Call) -> tuple[bytes, dict[str, str | None]]:
    """A body with neither Content-Length nor chunked encoding, cut after its first record."""
    lines = c.result().splitlines(keepends=True)
    return b"".join(lines[:2]), {"Content-Length": None, "Connection": "close"}


def test_a_close_delimited_body_cut_at_a_line_end_is_not_taken_for_the_whole_file(fake, catalog):
    """Found: exit 0 with 1 of 3 rows and the bookmark past the window (a silent loss).

    Such a body is refused whole: its end cannot be checked.
    """
    server = fake(body=close_delimited_cut)
    run = run_tap(server.config(max_retries=1), catalog=catalog)
    assert run.returncode != 0
    assert_clean_failure(run)
    assert "without a length" in run.stderr


# -- export answers the sandbox never sends ---------------------------------------------------------------


def test_a_result_link_listed_twice_is_downloaded_once(fake, catalog):
    """Found: each listed copy was downloaded and emitted: every row of the file twice, calls doubled."""
    rows = [{**row, "id": str(k)} for k, row in enumerate(ROWS, 1)]  # ids 1, 2 and 3
    server = fake(rows=rows, read=lambda c: send(c, 200, c.fake.export("Complete", resultRefs=c.fake.links * 3)))
    run = run_tap(server.config(), catalog=catalog)
    assert run.returncode == 0, run.stderr[-2000:]
    assert sorted(r["id"] for r in run.records()) == [1, 2, 3]
    assert server.hits("/dl/1") == 1


def test_a_result_link_that_parsers_read_differently_never_reaches_the_other_host(fake, catalog):
    """Found: ``http://OTHER\\@API/file/0``: the host check (urllib.parse) saw API, requests (urllib3)
    connected to OTHER and sent it the bearer token. A parser differential, the classic SSRF one.
    """

    def read(c: Call) -> None:
        link = f"http://127.0.0.1:{c.fake.elsewhere.port}\\@127.0.0.1:{c.fake.port}/dl/1"
        send(c, 200, c.fake.export("Complete", resultRefs=link))

    server = fake(read=read)
    run = run_tap(server.config(max_retries=1), catalog=catalog)
    other = server.elsewhere
    assert other.requests == [], f"the bearer token went to another host: {other.requests[0].headers}"
    assert_clean_failure(run, "Refusing")


def test_a_huge_status_answer_is_refused_before_it_fills_memory(fake, catalog, monkeypatch):
    """Found: a status, create or token answer is read whole into memory, whatever its size (a
    hostile or broken server can send gigabytes). The cap is lowered here to keep the test small.
    """
    monkeypatch.setattr(transport, "MAX_ANSWER_BYTES", 1 << 20)
    big = json.dumps({**EXPORT, "state": "Processing"}).encode() + b" " * (3 << 20)
    server = fake(read=lambda h: send(h, 200, big))
    run = run_tap(server.config(max_retries=1, export_timeout=2), catalog=catalog, timeout=60)
    assert_clean_failure(run, "larger than")
