"""What an answer means: the one place that decides "retry or not".

:func:`classify` takes an answer's HTTP status, Pardot's error code (when the body is an
error envelope) and what kind of body it is, and says what the caller does with it. It is
pure and unit-tested as a table. The parsers here read Pardot's error envelopes in every
shape seen (the v3/v4 JSON ``@attributes`` envelope, its XML twin, the v5 ``{"code",
"message"}`` body, Salesforce's OAuth errors) and tell a CSV body from a page or an envelope.
"""

from __future__ import annotations

import codecs
import enum
import json
import re
import typing as t
from dataclasses import dataclass

#: HTTP statuses that say "come back later" when no Pardot code says otherwise
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
#: Pardot codes that ask the client to come back later: 66 too many concurrent requests; in the v5 API,
#: 202 the minute rate limit met (or a query timed out) and 214 a request timed out (their statuses are
#: not documented; no v3/v4 error uses either code)
RETRY_CODES = frozenset({66, 202, 214})
#: the access token is invalid or expired
TOKEN_CODES = frozenset({184})
#: Pardot's daily API call limit is spent
DAILY_LIMIT_CODE = 122
#: the business unit needs the other Export API version: code -> the version to use
VERSION_CODES = {88: 4, 89: 3}
XML_ERROR = re.compile(r'<err\s+code="(\d+)"\s*>(.*?)</err>', re.DOTALL | re.IGNORECASE)


class Verdict(enum.Enum):
    """What the caller does with an answer."""

    OK = "ok"
    #: a retry may fix it: retried within the run's retry policy
    TRANSIENT = "transient"
    #: the access token was rejected: refresh it once, then try again
    TOKEN = "token"  # noqa: S105 - a verdict, not a password
    #: the business unit needs the other API version: switch once, then try again
    VERSION = "version"
    #: the daily API call limit is spent: stop the run cleanly, never retry
    DAILY_LIMIT = "daily_limit"
    #: not an answer of the service asked (a page or nothing where JSON was due): a wrong host, or a glitch
    NOT_THE_SERVICE = "not_the_service"
    #: the request is wrong or refused: a retry cannot fix it
    FATAL = "fatal"


class Body(enum.Enum):
    """What kind of body an answer has."""

    #: JSON that is not an error envelope (the answer asked for)
    JSON = "json"
    #: an error envelope (JSON or XML), whatever the status
    ENVELOPE = "envelope"
    #: something else: an HTML page, plain text, JSON where CSV was due
    OTHER = "other"
    EMPTY = "empty"


def classify(status: int, code: int | None, body: Body) -> Verdict:  # noqa: PLR0911 - a decision table
    """What an answer means, from its status, Pardot's error code and its kind of body.

    Pardot's code carries the meaning (the same code comes with different statuses); the
    status decides only where there is no code.
    """
    if body is Body.JSON and 200 <= status < 300:
        return Verdict.OK
    if status == 401 or code in TOKEN_CODES:
        return Verdict.TOKEN
    if code == DAILY_LIMIT_CODE:
        return Verdict.DAILY_LIMIT
    if code in VERSION_CODES:
        return Verdict.VERSION
    if code in RETRY_CODES or status >= 500 or (code is not None and 500 <= code < 600):
        return Verdict.TRANSIENT
    if code is None and status in TRANSIENT_STATUS:
        return Verdict.TRANSIENT
    if code is None and body in (Body.OTHER, Body.EMPTY):
        # a page where JSON was due: a glitch behind a 2xx, else a host that is not the service
        return Verdict.TRANSIENT if 200 <= status < 300 else Verdict.NOT_THE_SERVICE
    return Verdict.FATAL


# -- envelopes --------------------------------------------------------------------------------


def _int_or_none(value: t.Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def envelope(body: t.Any) -> tuple[int | None, str]:
    """``(code, message)`` of a decoded JSON error body in any shape Pardot or Salesforce uses.

    ``{"@attributes": {"err_code": 66, ...}, "err": "..."}`` (v3/v4), ``{"code": 51,
    "message": "..."}`` (v5), ``{"error": "...", "error_description": "..."}`` (OAuth), or a
    list of one of them. The code is None when there is none.
    """
    if isinstance(body, list) and body:
        body = body[0]
    if not isinstance(body, dict):
        return None, str(body)[:200]
    attrs = body.get("@attributes")
    code = _int_or_none(attrs.get("err_code")) if isinstance(attrs, dict) else None
    for key in ("code", "errorCode", "error_code", "status"):
        if code is None:
            code = _int_or_none(body.get(key))
    message = next((body[k] for k in ("err", "message", "error_description", "error") if body.get(k)), "")
    return code, str(message)[:500]


def is_error_envelope(body: t.Any) -> bool:
    """Whether a JSON body is an error envelope (``stat: fail``, an ``err_code``), whatever the status."""
    if not isinstance(body, dict):
        return False
    attrs = body.get("@attributes")
    return isinstance(attrs, dict) and (attrs.get("stat") == "fail" or "err_code" in attrs)


def xml_envelope(text: str) -> tuple[int, str] | None:
    """``(code, message)`` of an XML error envelope (the API answers XML without ``format=json``)."""
    m = XML_ERROR.search(text)
    if m is None:
        return None
    return int(m.group(1)), " ".join(m.group(2).split())[:500]


@dataclass(frozen=True)
class Answer:
    """An answer as :func:`classify` needs it, with the message for errors."""

    status: int
    code: int | None
    body: Body
    message: str
    data: t.Any = None

    @property
    def verdict(self) -> Verdict:
        """What the caller does with it."""
        return classify(self.status, self.code, self.body)


def read_answer(status: int, content: bytes, reason: str = "") -> Answer:
    """An API answer (JSON expected) from its status and body."""
    text = content.decode("utf-8", "replace")
    if not text.strip():
        return Answer(status, None, Body.EMPTY, reason or "an empty body")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        xml = xml_envelope(text[:2000])
        if xml is not None:
            return Answer(status, xml[0], Body.ENVELOPE, xml[1])
        return Answer(status, None, Body.OTHER, " ".join(text[:200].split()) or reason)
    if 200 <= status < 300 and not is_error_envelope(data):
        return Answer(status, None, Body.JSON, "", data)
    code, message = envelope(data)
    kind = Body.ENVELOPE if isinstance(data, (dict, list)) else Body.OTHER
    return Answer(status, code, kind, message, data)


def sniff(head: bytes) -> tuple[str, Answer] | None:
    """What a body that should be CSV is instead: ``(description, answer as if HTTP 200)``; None for CSV."""
    text = head.removeprefix(codecs.BOM_UTF8).lstrip()
    if not text:
        return "an empty body where a CSV header was expected", Answer(200, None, Body.EMPTY, "")
    if text[:1] == b"<":
        xml = xml_envelope(text.decode("utf-8", "replace"))
        if xml is None:
            return "an HTML or XML page", Answer(200, None, Body.OTHER, "")
        return f"an XML error envelope (error {xml[0]}: {xml[1][:200]})", Answer(200, xml[0], Body.ENVELOPE, xml[1])
    if text[:1] in (b"{", b"["):
        try:
            data = json.loads(text.decode("utf-8", "replace"))
        except (ValueError, RecursionError):  # cut at the head's size, or nested past the parser's depth
            data = None
        code, message = envelope(data) if data is not None else (None, "")
        what = f"error {code}: {message[:200]}" if code is not None else message[:200] or "no error code"
        return f"a JSON body, not CSV ({what})", Answer(200, code, Body.ENVELOPE, message)
    return None
