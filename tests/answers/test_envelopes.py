"""Bodies that are not the CSV asked for: HTML pages, error envelopes with HTTP 200, empty bodies.

Each is judged by what it is, not by its status: fetched again where that can help, the daily
limit (error 122) stops the run, an expired export is created again. The sync tests run against a
fake Pardot on loopback (``tests/fake_pardot.py``) serving one export of one window whose result
file is the body under test; each asserts exit 0 with exactly the rows served, or a non-zero exit
with a clear message, no traceback, no secret, and no bookmark past the window's start.
"""

from __future__ import annotations

import codecs
import json

import pytest

from tap_pardot_export.errors import DailyLimitReached
from tap_pardot_export.pardot.answers import Verdict, sniff
from tests.fake_pardot import STREAM, TOKEN, WHERE, assert_exact, assert_refused, send
from tests.helpers import client_for


def test_html_maintenance_page_is_fetched_again_then_refused(serve):
    page = f"<!DOCTYPE html><html><body>Down for maintenance. Authorization: Bearer {TOKEN}</body></html>".encode()
    server, run = serve(lambda c: page)
    assert_refused(run, *WHERE, "is not the CSV requested", "HTML", "fetched 3 times")
    assert server.count("download") == 3
    assert not run.records(STREAM)


def test_html_page_once_then_the_csv(serve):
    server, run = serve(lambda c: b"<html><body>Maintenance</body></html>" if c.attempt == 1 else c.result())
    assert_exact(run)
    assert server.count("download") == 2


@pytest.mark.parametrize(
    ("envelope", "downloads", "needle"),
    [
        ({"@attributes": {"stat": "fail", "err_code": 15}, "err": "Login failed"}, 1, "error 15: Login failed"),
        ({"@attributes": {"stat": "fail", "err_code": 66}, "err": "Too many concurrent calls"}, 3, "error 66"),
        ([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}], 1, "INVALID_SESSION_ID"),
        ({"@attributes": {"stat": "fail", "err_code": 122}, "err": "Daily API rate limit met"}, 1, "error 122"),
    ],
)
def test_json_error_envelope_with_200_is_refused(serve, envelope, downloads, needle):
    server, run = serve(lambda c: json.dumps(envelope).encode())
    assert_refused(run, *WHERE, "is not the CSV requested", needle)
    assert server.count("download") == downloads  # a transient code is fetched again, others are not
    assert not run.records(STREAM)


def test_xml_envelope_with_a_transient_code_then_the_csv(serve):
    xml = b'<?xml version="1.0"?>\n<rsp stat="fail" version="1.0"><err code="66">Too many</err></rsp>'
    server, run = serve(lambda c: xml if c.attempt == 1 else c.result())
    assert_exact(run)
    assert server.count("download") == 2


def test_empty_body_is_fetched_again_then_refused(serve):
    server, run = serve(lambda c: b"")
    assert_refused(run, *WHERE, "empty body")
    assert server.count("download") == 3


def test_an_expired_export_envelope_creates_the_export_again(serve):
    expired = b'{"@attributes": {"stat": "fail", "err_code": 178}, "err": "Export has expired"}'
    server, run = serve(lambda c: expired if c.attempt == 1 else c.result())
    assert_exact(run)
    assert server.count("create") == 2 and server.count("download") == 2


@pytest.mark.usefixtures("instant_retries")
def test_a_200_with_the_122_envelope_is_the_daily_limit(fake):
    envelope = {"@attributes": {"stat": "fail", "version": 1, "err_code": 122}, "err": "Daily API rate limit met."}
    server = fake(create=lambda h: send(h, 200, envelope))
    with pytest.raises(DailyLimitReached, match="daily API call limit is spent"):
        client_for(server.config()).json("POST", "create", "create", json_body={})


# -- the sniffer -----------------------------------------------------------------------------------


def test_sniff():
    assert sniff(b"id,updated_at\r\n1,2") is None
    assert sniff(codecs.BOM_UTF8 + b"id\r\n") is None

    def seen(body: bytes) -> tuple[str, int | None, Verdict]:
        found = sniff(body)
        assert found is not None
        return found[0], found[1].code, found[1].verdict

    assert seen(b"") == ("an empty body where a CSV header was expected", None, Verdict.TRANSIENT)
    assert sniff(codecs.BOM_UTF8 + b"  \r\n") is not None
    assert seen(b"\n <!doctype html><p>x") == ("an HTML or XML page", None, Verdict.TRANSIENT)
    assert seen(b'{"@attributes":{"err_code":"66"},"err":"busy"}') == (
        "a JSON body, not CSV (error 66: busy)",
        66,
        Verdict.TRANSIENT,
    )
    assert seen(b'{"status": 503}')[2] is Verdict.TRANSIENT
    assert seen(b'{"@attributes":{"err_code":15},"err":"no"}')[2] is Verdict.FATAL
    assert seen(b'{"@attributes":{"err_code":122},"err":"limit"}')[2] is Verdict.DAILY_LIMIT
    assert seen(b'<rsp><err code="178">expired</err></rsp>') == (
        "an XML error envelope (error 178: expired)",
        178,
        Verdict.FATAL,
    )
