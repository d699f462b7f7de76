"""A fake Pardot on loopback for the tests that need answers the sandbox never gives.

:class:`FakePardot` implements just enough of the Export API to serve one export of one window:
the OAuth token, export create, read and cancel, the result files (under any spelling of their
links), and the custom field query and prospect account describe discovery may make. Its
default answers are correct; every call can be answered otherwise, three ways:

- by operation: ``FakePardot(read=route)`` answers every read with ``route(call)``
  (:data:`OPS` names the operations; ``body=`` is a shortcut for the download's bytes);
- by exact path: ``paths={"/x": route}``, with ``"*"`` for every path not named; a path
  route replaces the fake for the paths it covers;
- by a script: ``script={"read": ["http_503", "reset"]}`` serves those faults, in order, to
  the first reads, then the answer above. Faults every call may meet are here (:data:`FAULTS`);
  a test names its own as ``faults={"name": route}``.

The fake records every request (:attr:`FakePardot.requests`), counts them by operation and by
path, and gives the settings of a tap that talks to it (:meth:`FakePardot.config`). It serves a
scenario of its own by default (:data:`STREAM` over one day, its :data:`ROWS`): the helpers at
the end check a run against it.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import json
import re
import socket
import struct
import threading
import time
import typing as t
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from tests.helpers import LoopbackServer, TapRun, free_port

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from typing_extensions import Self

#: an answer to one call, given the call (it answers through ``send`` and the helpers below)
Route = t.Callable[["Call"], None]
#: a result file's bytes, with headers of its own if need be (a None value leaves a header out)
Answer: t.TypeAlias = "bytes | tuple[bytes, Mapping[str, str | None]]"

# -- the fake's credentials and the paths it serves ---------------------------------------------------

BU = "0Uv000000000001AAA"
CLIENT_ID = "fake-client-id"
SECRET = "fake-client-secret-4242"
REFRESH = "fake-refresh-token-77c3aa"
#: the token the fake issues, shaped as Salesforce's are (the org id, "!", the rest)
TOKEN = "00Dfake!tok-0123456789abcdef"
#: what no output of the tap may hold
SECRETS = (SECRET, REFRESH, TOKEN)
TOKEN_PATH = "/services/oauth2/token"
#: the Export API's operations, in the version the tap starts with
API = "/api/export/version/4/do/"

# -- the scenario it serves by default ------------------------------------------------------------------

UTC = dt.timezone.utc
START = dt.datetime(2024, 1, 1, tzinfo=UTC)
END = dt.datetime(2024, 1, 2, tzinfo=UTC)
STREAM = "list_membership"
#: the export's createdAt (New York's wall clock, as Pardot writes it)
CREATED_AT = "2024-01-02 00:00:05"
#: the rows the result files hold (list_membership's fields, as Pardot writes them)
ROWS = [
    {"id": "11", "list_id": "5", "prospect_id": "701", "opted_out": "false", "created_at": "2024-01-01 01:00:00",
     "updated_at": "2024-01-01 02:30:00"},
    {"id": "12", "list_id": "5", "prospect_id": "702", "opted_out": "true", "created_at": "2024-01-01 02:00:00",
     "updated_at": "2024-01-01 02:45:10"},
    {"id": "13", "list_id": "6", "prospect_id": "703", "opted_out": "false", "created_at": "2023-12-31 23:59:59",
     "updated_at": "2024-01-01 10:15:00"},
]  # fmt: skip
#: the same rows as the tap must emit them (America/New_York is UTC-5 in January)
TYPED = {
    11: {"id": 11, "list_id": 5, "prospect_id": 701, "opted_out": False, "created_at": "2024-01-01T06:00:00+00:00",
         "updated_at": "2024-01-01T07:30:00+00:00"},
    12: {"id": 12, "list_id": 5, "prospect_id": 702, "opted_out": True, "created_at": "2024-01-01T07:00:00+00:00",
         "updated_at": "2024-01-01T07:45:10+00:00"},
    13: {"id": 13, "list_id": 6, "prospect_id": 703, "opted_out": False, "created_at": "2024-01-01T04:59:59+00:00",
         "updated_at": "2024-01-01T15:15:00+00:00"},
}  # fmt: skip
#: what a message about the default export's only result file names
WHERE = (STREAM, "export 1", "result file 1")

# -- which call a request is ---------------------------------------------------------------------------

#: the operations the fake tells apart ("other": any other path, answered 404)
OPS = ("token", "create", "read", "cancel", "download", "custom_field", "describe", "other")
_OP_PATHS = (
    ("token", re.compile(r"/services/oauth2/token/?")),
    ("create", re.compile(r"/api/export/version/\d+/do/create/?")),
    ("read", re.compile(r"/api/export/version/\d+/do/read/id/[^/]+/?")),
    ("cancel", re.compile(r"/api/export/version/\d+/do/cancel/id/[^/]+/?")),
    ("custom_field", re.compile(r"/api/customField/version/\d+/do/query/?")),
    ("describe", re.compile(r"/api/prospectAccount/version/\d+/do/describe/?")),
)
#: a result link in any spelling (dot segments, percent-encoding, doubled slashes): ``/dl/<file>``
_DOWNLOAD = re.compile(r"/dl/(?:.*/)?(\d+)/?$")
_HTTP_FAULT = re.compile(r"http_(\d{3})")
#: the faults any call may meet, by name; and ``http_NNN``, any status NNN with an HTML page
FAULTS = ("reset", "html_200", "redirect")
MAINTENANCE = b"<!DOCTYPE html><html><body>Down for maintenance</body></html>"
UNAVAILABLE = b"<html><body>Service Unavailable</body></html>"
_OK = {"stat": "ok", "version": 1}


def operation(path: str) -> tuple[str, int]:
    """The operation a request path (without its query) asks for, and the result file's number (else 0)."""
    plain = urllib.parse.unquote(path)
    for op, pattern in _OP_PATHS:
        if pattern.fullmatch(plain):
            return op, 0
    link = _DOWNLOAD.search(plain)
    return ("download", int(link.group(1))) if link else ("other", 0)


@dataclass(frozen=True)
class Request:
    """One request the fake received, and what it made of it."""

    method: str
    #: the path as sent, without the query
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    op: str
    #: the how-manieth call of its operation (1 for the first)
    attempt: int
    #: the result file's number for a download (its link's last number), else 0
    file: int
    #: the scripted fault it was answered with, if any
    fault: str | None


class Call(BaseHTTPRequestHandler):
    """One call to the fake: the handler a route answers through, and what the fake made of the request."""

    protocol_version = "HTTP/1.1"
    server: _Server
    request_record: Request

    def log_message(self, format: str, *args: t.Any) -> None:
        """Quiet: the tests read the fake's records, not its log."""

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.request_record = self.fake._record(self, body)
        with contextlib.suppress(OSError):  # the client hung up: nobody is left to answer
            self.fake._answer(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    @property
    def fake(self) -> FakePardot:
        return self.server.fake

    @property
    def op(self) -> str:
        return self.request_record.op

    @property
    def attempt(self) -> int:
        return self.request_record.attempt

    @property
    def file(self) -> int:
        return self.request_record.file

    @property
    def fields(self) -> list[str]:
        """The fields the last export created asked for."""
        return self.fake.fields

    def result(self) -> bytes:
        """The result file this download gets by default: its share of the fake's rows as CSV of :attr:`fields`."""
        fake = self.fake
        return csv_body(self.fields, fake.rows[(self.file - 1) % fake.files :: fake.files])


class _Server(LoopbackServer):
    def __init__(self, fake: FakePardot) -> None:
        super().__init__(Call)
        self.fake = fake


class FakePardot:
    """A fake Pardot on 127.0.0.1 (see the module's docstring); ``start()`` it, ``stop()`` it, or use ``with``.

    Args:
        paths: Routes by exact path (without the query); ``"*"`` for every other path.
        script: Fault names by operation, served in order before the answer.
        faults: Routes of the test's own faults, by the name the script gives them.
        body: The download's answer for each call (bytes, or bytes and headers), as CSV.
        rows: The rows the result files hold by default (file k of n: every n-th row from the k-th).
        files: How many result files the export has (links ``/dl/1`` to ``/dl/<files>``).
        export_id: The id create, read and cancel answer (any JSON value).
        created_at: The export's createdAt (any JSON value).
        ops: Routes by operation (:data:`OPS`).
    """

    def __init__(
        self,
        *,
        paths: Mapping[str, Route] | None = None,
        script: Mapping[str, Sequence[str]] | None = None,
        faults: Mapping[str, Route] | None = None,
        body: Callable[[Call], Answer] | None = None,
        rows: Sequence[Mapping[str, str]] = ROWS,
        files: int = 1,
        export_id: t.Any = 1,
        created_at: t.Any = CREATED_AT,
        **ops: Route,
    ) -> None:
        unknown = sorted(set(ops) - set(OPS))
        if unknown:
            raise TypeError(f"no such operation: {unknown}; the fake knows {OPS}")
        if body is not None:
            ops.setdefault("download", csv_answer(body))
        self.ops = ops
        self.paths = dict(paths or {})
        self.faults = dict(faults or {})
        self.rows, self.files, self.export_id, self.created_at = list(rows), files, export_id, created_at
        self.requests: list[Request] = []
        #: set when the fake stops: routes waiting on it (:func:`stall`) let go
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._script = {op: collections.deque(names) for op, names in (script or {}).items()}
        self._check_script()
        self._elsewhere: FakePardot | None = None
        self.httpd = _Server(self)
        self.port = int(self.httpd.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    # -- running ------------------------------------------------------------------------------------

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (stalled routes let go) and close the socket; the other host too."""
        self.stopping.set()
        if self._thread.is_alive():
            self.httpd.shutdown()
            self._thread.join(5)
        self.httpd.server_close()
        if self._elsewhere is not None:
            self._elsewhere.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def elsewhere(self) -> FakePardot:
        """Another host, where the ``redirect`` fault points (started when first needed, stopped with this one).

        It is a fake Pardot too, answering whatever it is sent as Pardot would: a request it
        records is a request the tap should never have made.
        """
        with self._lock:
            if self._elsewhere is None:
                self._elsewhere = FakePardot().start()
            return self._elsewhere

    # -- what it received ---------------------------------------------------------------------------

    def count(self, op: str) -> int:
        """How many calls of ``op`` the fake received."""
        with self._lock:
            return sum(1 for r in self.requests if r.op == op)

    def hits(self, path: str) -> int:
        """How many requests for exactly ``path`` (without the query) the fake received."""
        with self._lock:
            return sum(1 for r in self.requests if r.path == path)

    @property
    def log(self) -> list[str]:
        """Each call as ``op:fault`` (``op:ok`` when no fault answered it), in order: for failure messages."""
        with self._lock:
            return [f"{r.op}:{r.fault or 'ok'}" for r in self.requests]

    @property
    def fields(self) -> list[str]:
        """The ``fields`` of the last create request (none before one)."""
        with self._lock:
            creates = [r for r in self.requests if r.op == "create"]
        try:
            return list(json.loads(creates[-1].body)["fields"]) if creates else []
        except (ValueError, KeyError, TypeError):
            return []

    # -- what it answers ----------------------------------------------------------------------------

    @property
    def links(self) -> list[str]:
        """The result links a Complete export lists: ``/dl/1`` to ``/dl/<files>``."""
        return [f"{self.url}/dl/{k}" for k in range(1, self.files + 1)]

    def export(self, state: str, **fields: t.Any) -> dict[str, t.Any]:
        """The export in ``state`` as create, read and cancel answer it, ``fields`` added or replacing.

        A Complete export lists :attr:`links` as its ``resultRefs``.
        """
        out = {"id": self.export_id, "state": state, "isExpired": False, "createdAt": self.created_at}
        if state == "Complete":
            out["resultRefs"] = self.links
        return {"export": {**out, **fields}}

    def config(self, **extra: t.Any) -> dict[str, t.Any]:
        """Settings of a tap syncing the fake's scenario from it; ``extra`` added or replacing (None: left out)."""
        return config_for(self.url, **extra)

    def _check_script(self) -> None:
        """Every operation and fault the script names is one the fake knows (a typo fails at once)."""
        for op, names in self._script.items():
            if op not in OPS:
                raise ValueError(f"no such operation: {op!r}")
            for name in names:
                if name not in self.faults and name not in FAULTS and not _HTTP_FAULT.fullmatch(name):
                    known = [*FAULTS, "http_NNN", *self.faults]
                    raise ValueError(f"no such fault: {name!r} (known: {known})")

    def _record(self, call: Call, body: bytes) -> Request:
        path, _, query = call.path.partition("?")
        op, file = operation(path)
        with self._lock:
            attempt = 1 + sum(1 for r in self.requests if r.op == op)
            queue = self._script.get(op)
            fault = queue.popleft() if queue else None
            request = Request(call.command, path, query, dict(call.headers), body, op, attempt, file, fault)
            self.requests.append(request)
        return request

    def _answer(self, call: Call) -> None:
        request = call.request_record
        route = self.paths.get(request.path) or self.paths.get("*")
        if request.fault is not None:
            self._fault(call, request.fault)
        elif route is not None:
            route(call)
        elif request.op in self.ops:
            self.ops[request.op](call)
        else:
            self._default(call)

    def _fault(self, call: Call, name: str) -> None:
        status = _HTTP_FAULT.fullmatch(name)
        if name in self.faults:
            self.faults[name](call)
        elif name == "reset":
            reset(call)
        elif name == "html_200":
            send(call, 200, MAINTENANCE)
        elif name == "redirect":
            location = f"http://localhost:{self.elsewhere.port}{call.path}"
            send(
                call, 307 if call.command == "POST" else 302, b"", {"Content-Type": "text/plain", "Location": location}
            )
        elif status is not None:
            send(call, int(status.group(1)), UNAVAILABLE, {"Retry-After": "0"})

    def _default(self, call: Call) -> None:
        op = call.op
        if op == "token":
            token_ok(call)
        elif op in ("create", "read", "cancel"):
            send(call, 200, self.export({"create": "Waiting", "read": "Complete", "cancel": "Canceled"}[op]))
        elif op == "download":
            send(call, 200, call.result(), {"Content-Type": "text/csv"})
        elif op == "custom_field":
            send(call, 200, {"@attributes": _OK, "result": {"total_results": 0}})
        elif op == "describe":
            send(call, 200, {"@attributes": _OK, "result": {"field": []}})
        else:
            send(call, 404, {"@attributes": {"stat": "fail", "err_code": 2}, "err": "Invalid action"})


def config_for(base: str, **extra: t.Any) -> dict[str, t.Any]:
    """Settings of a tap with the fake's credentials at ``base``, syncing its scenario; ``extra`` added or replacing.

    A None value leaves the setting out. Retries are bounded by ``max_retries: 2``: an answer
    that stays wrong is asked for 3 times.
    """
    cfg = {
        "api_url": base,
        "login_url": base,
        "business_unit_id": BU,
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "refresh_token": REFRESH,
        "timezone": "America/New_York",
        "start_date": START.isoformat(),
        "end_date": END.isoformat(),
        "poll_interval": 0.05,
        "max_poll_interval": 0.2,
        "max_retries": 2,
        **extra,
    }
    return {k: v for k, v in cfg.items() if v is not None}


# -- answering ------------------------------------------------------------------------------------------


def send(h: BaseHTTPRequestHandler, status: int, body: t.Any, headers: Mapping[str, str | None] | None = None) -> None:
    """Answer ``body`` with ``status``: bytes as they are (as text/html), anything else as JSON.

    ``headers`` add to or replace Content-Type and Content-Length (None: left out). A body
    shorter than its Content-Length, or without one, ends its connection after it: the client
    sees it cut short, or sees its end.
    """
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    kind = "text/html" if isinstance(body, bytes) else "application/json"
    fields = {"Content-Type": kind, "Content-Length": str(len(data)), **(headers or {})}
    h.send_response(status)
    for name, value in fields.items():
        if value is not None:
            h.send_header(name, value)
    h.end_headers()
    h.wfile.write(data)
    if fields["Content-Length"] != str(len(data)):
        h.close_connection = True


def csv_answer(body: Callable[[Call], Answer]) -> Route:
    """A route answering 200 with ``body(call)`` as text/csv (its headers, if it gives any, added)."""

    def route(call: Call) -> None:
        answer = body(call)
        payload, headers = answer if isinstance(answer, tuple) else (answer, {})
        send(call, 200, payload, {"Content-Type": "text/csv", **headers})

    return route


def token_ok(h: BaseHTTPRequestHandler, token: str = TOKEN) -> None:
    """The token endpoint's answer, issuing ``token``."""
    send(h, 200, {"access_token": token, "instance_url": "https://fake.my.salesforce.com", "token_type": "Bearer"})


def reset(h: BaseHTTPRequestHandler) -> None:
    """Reset the connection (RST, no answer): the client sees its connection reset."""
    h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    h.close_connection = True
    h.connection.close()


def stall(call: Call, seconds: float) -> None:
    """Answer nothing for ``seconds``, or until the fake stops."""
    call.fake.stopping.wait(seconds)


def closed_port() -> int:
    """A loopback port nothing listens on."""
    return free_port()


# -- the default scenario's result files, and runs checked against it -------------------------------


def csv_body(
    fields: Sequence[str],
    rows: Iterable[Mapping[str, str]] = ROWS,
    *,
    header: Sequence[str] | None = None,
    eol: str = "\r\n",
    bom: bool = False,
) -> bytes:
    """A result file for ``fields`` (``header`` overrides the header line only)."""
    lines = [",".join(header if header is not None else fields)]
    lines += [",".join(row.get(f, "") for f in fields) for row in rows]
    return (("\ufeff" if bom else "") + eol.join(lines) + eol).encode()


def bookmarks(run: TapRun) -> list[str]:
    """Every replication_key_value in every STATE the run emitted."""
    found: list[str] = []

    def walk(node: t.Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "replication_key_value" and isinstance(v, str):
                    found.append(v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for state in run.states():
        walk(state)
    return found


def assert_no_secret(run: TapRun) -> None:
    for secret in SECRETS:
        assert secret not in run.everything, "a secret leaked into the tap's output"


def assert_exact(run: TapRun, typed: dict[int, dict[str, t.Any]] = TYPED) -> None:
    """Exit 0 with exactly the rows served, typed; the bookmark at the window's end."""
    assert run.returncode == 0, run.stderr[-3000:]
    got = {r["id"]: r for r in run.records(STREAM)}
    assert len(run.records(STREAM)) == len(typed)
    assert got == typed
    assert bookmarks(run)[-1] == END.isoformat()
    assert_no_secret(run)


def assert_refused(run: TapRun, *needles: str) -> None:
    """A non-zero exit, one clear message naming what is wrong, no bookmark past the window's start."""
    assert run.returncode != 0, "the run should have failed"
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    for needle in needles:
        assert needle in run.stderr, f"{needle!r} not in: {run.stderr[-2000:]}"
    for mark in bookmarks(run):
        assert dt.datetime.fromisoformat(mark) <= START, f"bookmark {mark} moved past the window"
    assert_no_secret(run)


def assert_clean_failure(run: TapRun, *needles: str) -> None:
    """Non-zero, a message naming what is wrong, no traceback, no secret, no bookmark."""
    assert run.returncode != 0, run.stderr[-2000:]
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    for needle in needles:
        assert needle in run.stderr, run.stderr[-2000:]
    for secret in SECRETS:
        assert secret not in run.everything
    for state in run.states():
        for bookmark in state.get("bookmarks", {}).values():
            assert "replication_key_value" not in bookmark, state


# -- more of the fake's scenario, and a route that trickles ------------------------------------------


def many(n: int = 300, first: int = 1000) -> tuple[list[dict[str, str]], dict[int, dict[str, t.Any]]]:
    """``n`` list memberships updated through the day, as Pardot writes them (New York time), as the tap emits them."""
    rows, typed = [], {}
    for k in range(n):
        rid = first + k
        utc = START + dt.timedelta(seconds=5 + k * (86_000 // n))
        rows.append(
            {
                "id": str(rid),
                "list_id": str(5 + k % 3),
                "prospect_id": str(700 + k),
                "opted_out": "true" if k % 4 == 0 else "false",
                "created_at": "2023-12-31 22:00:00",
                "updated_at": f"{utc - dt.timedelta(hours=5):%Y-%m-%d %H:%M:%S}",  # New York's wall clock
            }
        )
        typed[rid] = {
            "id": rid,
            "list_id": 5 + k % 3,
            "prospect_id": 700 + k,
            "opted_out": k % 4 == 0,
            "created_at": "2024-01-01T03:00:00+00:00",
            "updated_at": f"{utc:%Y-%m-%dT%H:%M:%S}+00:00",
        }
    return rows, typed


def trickle_head(*, status_line: bool = False, every: float = 0.25, at_most: float = 60.0) -> Route:
    """An answer whose status line (or, with ``status_line``, even that) and headers come a byte at a time.

    Each byte comes well before any per-read timeout, so only a deadline over the whole request ends
    it; the handler gives up by itself after ``at_most`` seconds (or once the client hung up).
    """

    def route(h: Call) -> None:
        h.close_connection = True
        head = b"HTTP/1.1 200 OK\r\n"
        if not status_line:
            h.wfile.write(head)
            h.wfile.flush()
            head = b""
        end = time.monotonic() + at_most
        for byte in head + b"X-Slow: " + b"a" * 100_000:
            if time.monotonic() > end:
                return
            h.wfile.write(bytes([byte]))
            h.wfile.flush()
            time.sleep(every)

    return route
