"""The one decision "retry or not": every answer's meaning, as a table."""

from __future__ import annotations

import pytest

from tap_pardot_export.pardot.answers import Body, Verdict, classify, envelope, read_answer

J, E, P, N = Body.JSON, Body.ENVELOPE, Body.OTHER, Body.EMPTY  # P: a page, not JSON
T, F = Verdict.TRANSIENT, Verdict.FATAL

TABLE = [
    # status, Pardot code, body, verdict
    (200, None, J, Verdict.OK),
    (201, None, J, Verdict.OK),
    (401, None, E, Verdict.TOKEN),
    (401, None, P, Verdict.TOKEN),
    (400, 184, E, Verdict.TOKEN),
    (200, 184, E, Verdict.TOKEN),  # the code carries the meaning, whatever the status
    (429, 122, E, Verdict.DAILY_LIMIT),
    (400, 122, E, Verdict.DAILY_LIMIT),
    (200, 122, E, Verdict.DAILY_LIMIT),
    (400, 88, E, Verdict.VERSION),
    (400, 89, E, Verdict.VERSION),
    (400, 66, E, T),
    (200, 66, E, T),
    (429, 202, E, T),  # v5: the minute rate limit
    (400, 214, E, T),  # v5: a request timed out
    (500, None, P, T),
    (502, None, N, T),
    (503, 15, E, T),  # any 5xx
    (200, 503, E, T),  # a gateway's 5xx code in a 200 envelope
    (429, None, P, T),
    (408, None, E, T),
    (200, None, P, T),  # a maintenance page behind a 200: a glitch
    (200, None, N, T),
    (404, None, P, Verdict.NOT_THE_SERVICE),
    (403, None, N, Verdict.NOT_THE_SERVICE),
    (400, 15, E, F),
    (400, 181, E, F),
    (400, 201, E, F),
    (403, 49, E, F),
    (400, None, E, F),
    (200, None, E, F),  # an envelope with no code where data was due
]


@pytest.mark.parametrize(("status", "code", "body", "verdict"), TABLE)
def test_classify(status, code, body, verdict):
    assert classify(status, code, body) is verdict


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"@attributes": {"stat": "fail", "err_code": 66}, "err": "busy"}, (66, "busy")),
        ({"@attributes": {"err_code": "122"}, "err": "limit"}, (122, "limit")),
        ({"code": 51, "message": "Invalid parameter: fields"}, (51, "Invalid parameter: fields")),
        ({"error": "invalid_grant", "error_description": "expired"}, (None, "expired")),
        ([{"errorCode": 7, "message": "x"}], (7, "x")),
        ({"code": True, "message": "a boolean is no code"}, (None, "a boolean is no code")),
        ("plain", (None, "plain")),
    ],
)
def test_envelopes_in_every_shape(body, expected):
    assert envelope(body) == expected


def test_answers_are_read_whatever_the_body():
    assert read_answer(200, b'{"export": {"id": 1}}').body is Body.JSON
    fail = read_answer(200, b'{"@attributes": {"stat": "fail", "err_code": 66}, "err": "busy"}')
    assert (fail.body, fail.code, fail.verdict) == (Body.ENVELOPE, 66, Verdict.TRANSIENT)
    xml = read_answer(400, b'<rsp stat="fail"><err code="15">Login failed</err></rsp>')
    assert (xml.body, xml.code, xml.message) == (Body.ENVELOPE, 15, "Login failed")
    assert read_answer(502, b"<html>Bad gateway</html>").verdict is Verdict.TRANSIENT
    assert read_answer(204, b"").body is Body.EMPTY
    assert read_answer(200, b"[" * 100_000).body is Body.OTHER  # nested past the parser's depth: not JSON
