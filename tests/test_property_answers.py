"""Property: whatever sequence of answers Pardot (or something posing as it) gives, the tap either
exits 0 with exactly the truth, or exits non-zero with a clear message and no bookmark past a row it
did not emit; no secret is printed or sent to a host that is not configured.

A scripted server on loopback answers each call (token, create, read, download) from a sequence
drawn by hypothesis, then answers correctly. A second server plays "another host": redirects point
there, and it must never receive a credential.
"""

from __future__ import annotations

import csv
import io
import json
import socket
import threading
import typing as t
from http.server import BaseHTTPRequestHandler

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.helpers import LoopbackServer, RecordedWaits, discover, run_tap, select_streams

SECRET = "s3cr3t-client-secret"
REFRESH = "r3fr3sh-token-value"
TOKEN = "acc3ss-token-value"
BU = "0Uv000000000001AAA"
START, END = "2024-01-01T00:00:00+00:00", "2024-02-01T00:00:00+00:00"

# the truth: 24 list memberships, stamped in January (New York is UTC-5 then)
TRUTH: list[dict[str, t.Any]] = [
    {
        "id": 1000 + i,
        "list_id": 7 + i % 3,
        "prospect_id": 500 + i,
        "opted_out": i % 4 == 0,
        "created_at": (f"2024-01-{1 + i:02d} 0{i % 10}:15:00", f"2024-01-{1 + i:02d}T{5 + i % 10:02d}:15:00+00:00"),
        "updated_at": (f"2024-01-{2 + i:02d} 1{i % 8}:30:45", f"2024-01-{2 + i:02d}T{15 + i % 8:02d}:30:45+00:00"),
    }
    for i in range(24)
]

TOKEN_ANSWERS = ["http_500", "redirect", "html_200", "reset", "not_object", "invalid_grant"]
CREATE_ANSWERS = ["http_503", "code_66", "html_200", "code_122_at_200", "redirect", "reset", "bad_id"]
READ_ANSWERS = ["waiting", "http_500", "reset", "html_200", "weird_state", "failed", "expired"]
DOWNLOAD_ANSWERS = [
    "html_200",
    "envelope_200",
    "redirect",
    "cut",
    "other_case_header",
    "short_row",
    "open_quote",
    "reset",
    "http_503",
    "missing_column",
    "bad_datetime",
    "bom_crlf",
]


def csv_body(fields: list[str], rows: list[dict[str, t.Any]], *, header_case: str = "same") -> bytes:
    """The rows as Pardot writes them: local datetimes, booleans as true/false, LF line ends."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow([f.upper() if header_case == "upper" else f for f in fields])
    for r in rows:
        cells = []
        for f in fields:
            v = r.get(f)
            if isinstance(v, tuple):
                v = v[0]
            elif isinstance(v, bool):
                v = "true" if v else "false"
            cells.append("" if v is None else str(v))
        w.writerow(cells)
    return out.getvalue().encode()


class Script:
    """What the scripted server answers: per operation, a list of faults served before the good answer."""

    def __init__(self, faults: dict[str, list[str]], other_port: int) -> None:
        self.faults = {k: list(v) for k, v in faults.items()}
        self.other_port = other_port
        self.fields: list[str] = []
        self.lock = threading.Lock()
        self.log: list[str] = []

    def next(self, op: str) -> str:
        with self.lock:
            queue = self.faults.get(op) or []
            kind = queue.pop(0) if queue else "ok"
            self.log.append(f"{op}:{kind}")
            return kind


class ScriptedHandler(BaseHTTPRequestHandler):
    """Answers the tap's calls from the script."""

    protocol_version = "HTTP/1.1"
    server: ScriptedServer

    def log_message(self, format: str, *args: t.Any) -> None:
        pass

    @property
    def script(self) -> Script:
        return self.server.script

    def _send(self, status: int, body: bytes | str | dict, ctype: str = "application/json", **headers: str) -> None:
        if isinstance(body, dict):
            body = json.dumps(body)
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k.replace("_", "-"), v)
        self.end_headers()
        self.wfile.write(data)

    def _reset(self) -> None:
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        self.close_connection = True
        self.connection.close()

    def _common(self, kind: str) -> bool:
        """Answer the faults every call shares; False when ``kind`` is not one of them."""
        other = f"http://127.0.0.1:{self.script.other_port}{self.path}"
        if kind == "reset":
            self._reset()
        elif kind.startswith("http_"):
            self._send(int(kind[5:]), "<html><body>Service Unavailable</body></html>", "text/html", Retry_After="0")
        elif kind == "html_200":
            self._send(200, "<!DOCTYPE html><html><body>Down for maintenance</body></html>", "text/html")
        elif kind == "redirect":
            self._send(307 if self.command == "POST" else 302, "", "text/plain", Location=other)
        elif kind == "code_66":
            self._send(400, {"@attributes": {"stat": "fail", "err_code": 66}, "err": "concurrent limit"})
        elif kind == "code_122_at_200":
            self._send(200, {"@attributes": {"stat": "fail", "err_code": 122}, "err": "daily limit"})
        else:
            return False
        return True

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.path.startswith("/services/oauth2/token"):
            self._token(self.script.next("token"))
        elif "/do/create" in self.path:
            self.script.fields = list(json.loads(body)["fields"])
            self._create(self.script.next("create"))
        elif "/do/cancel/" in self.path:
            self._send(200, {"export": {"id": 1, "state": "Canceled"}})
        else:
            self._send(404, {"@attributes": {"stat": "fail", "err_code": 15}, "err": "not found"})

    def do_GET(self) -> None:
        if "/do/read/id/" in self.path:
            self._read(self.script.next("read"))
        elif self.path.startswith("/dl/"):
            self._download(self.script.next("download"), int(self.path.rsplit("/", 1)[1].split("?")[0]))
        else:
            self._send(404, {"@attributes": {"stat": "fail", "err_code": 15}, "err": "not found"})

    def _token(self, kind: str) -> None:
        if self._common(kind):
            return
        if kind == "not_object":
            self._send(200, "[1, 2]")
        elif kind == "invalid_grant":
            self._send(400, {"error": "invalid_grant", "error_description": "expired access/refresh token"})
        else:
            self._send(200, {"access_token": TOKEN, "instance_url": "x", "token_type": "Bearer"})

    def _create(self, kind: str) -> None:
        if self._common(kind):
            return
        export_id: t.Any = "abc" if kind == "bad_id" else 1
        self._send(200, {"export": {"id": export_id, "state": "Waiting", "createdAt": "2024-03-01 10:00:00"}})

    def _read(self, kind: str) -> None:
        if self._common(kind):
            return
        port = self.server.server_address[1]
        export: dict[str, t.Any] = {"id": 1, "state": "Complete", "isExpired": False}
        export["resultRefs"] = [f"http://127.0.0.1:{port}/dl/0", f"http://127.0.0.1:{port}/dl/1"]
        if kind == "waiting":
            export = {"id": 1, "state": "Waiting"}
        elif kind == "weird_state":
            export = {"id": 1, "state": "Paused"}
        elif kind == "failed":
            export = {"id": 1, "state": "Failed"}
        elif kind == "expired":
            export = {"id": 1, "state": "Complete", "isExpired": True}
        self._send(200, {"export": export})

    def _download(self, kind: str, k: int) -> None:
        if self._common(kind):
            return
        fields = self.script.fields
        rows = TRUTH[k::2]
        if kind == "envelope_200":
            self._send(200, {"@attributes": {"stat": "fail", "err_code": 178}, "err": "export expired"})
            return
        body = csv_body(fields, rows, header_case="upper" if kind == "other_case_header" else "same")
        if kind == "cut":
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self._reset()
            return
        if kind == "short_row":
            body += b"1,2\n"
        elif kind == "open_quote":
            body += b'9999,"unterminated'
        elif kind == "missing_column":
            body = csv_body([f for f in fields if f != "updated_at"], rows)
        elif kind == "bad_datetime":
            body = body.replace(b":15:00", b":99:99", 1)
        elif kind == "bom_crlf":
            body = b"\xef\xbb\xbf" + body.replace(b"\n", b"\r\n")
        self._send(200, body, "text/csv")


class OtherHost(BaseHTTPRequestHandler):
    """Another host: whatever it receives is recorded; it must never see a credential."""

    server: OtherServer

    def log_message(self, format: str, *args: t.Any) -> None:
        pass

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.server.seen.append(str(self.headers) + self.rfile.read(length).decode("latin-1"))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = _any


class ScriptedServer(LoopbackServer):
    """The scripted Pardot: its handlers answer from ``script``."""

    def __init__(self, script: Script) -> None:
        super().__init__(ScriptedHandler)
        self.script = script


class OtherServer(LoopbackServer):
    """The other host: ``seen`` holds every request it received."""

    def __init__(self) -> None:
        super().__init__(OtherHost)
        self.seen: list[str] = []


class Servers:
    """The scripted Pardot and the other host, on loopback for the whole module."""

    def __init__(self) -> None:
        self.other = OtherServer()
        self.main = ScriptedServer(Script({}, self.other.server_address[1]))
        self.threads = [
            threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            for s in (self.main, self.other)
        ]
        for th in self.threads:
            th.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.main.server_address[1]}"

    def stop(self) -> None:
        for s in (self.main, self.other):
            s.shutdown()
            s.server_close()


@pytest.fixture(scope="module")
def servers() -> t.Iterator[Servers]:
    s = Servers()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def catalog() -> dict[str, t.Any]:
    """The offline catalog (no credentials: discovery makes no call), list memberships selected."""
    return select_streams(discover({}), ["list_membership"])


def tap_config(url: str) -> dict[str, t.Any]:
    return {
        "api_url": url,
        "login_url": url,
        "business_unit_id": BU,
        "client_id": "client-id-value",
        "client_secret": SECRET,
        "refresh_token": REFRESH,
        "timezone": "America/New_York",
        "start_date": START,
        "end_date": END,
        "poll_interval": 0.05,
        "max_poll_interval": 0.2,
        "max_retries": 3,
        "request_timeout": 2,
        "download_timeout": 5,
    }


def faults_of(kinds: list[str], max_size: int, clean: int) -> st.SearchStrategy[list[str]]:
    """Fault lists, empty ``clean`` times in ``clean + 1``: faults on first contact end most runs at once."""
    return st.one_of(*[st.just([])] * clean, st.lists(st.sampled_from(kinds), min_size=1, max_size=max_size))


answers = st.fixed_dictionaries(
    {
        "token": faults_of(TOKEN_ANSWERS, 2, 3),
        "create": faults_of(CREATE_ANSWERS, 2, 2),
        "read": faults_of(READ_ANSWERS, 3, 1),
        "download": faults_of(DOWNLOAD_ANSWERS, 3, 0),
    }
)


def expected_records() -> dict[int, dict[str, t.Any]]:
    return {r["id"]: {k: (v[1] if isinstance(v, tuple) else v) for k, v in r.items()} for r in TRUTH}


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(faults=answers)
def test_any_sequence_of_answers_ends_in_the_truth_or_a_clear_failure(
    servers: Servers, catalog: dict[str, t.Any], instant_retries: RecordedWaits, faults: dict[str, list[str]]
) -> None:
    servers.main.script = Script(faults, servers.other.server_address[1])
    servers.other.seen.clear()
    run = run_tap(tap_config(servers.url), catalog=catalog, timeout=60)
    script = servers.main.script
    text = run.everything
    for secret in (SECRET, REFRESH, TOKEN):
        assert secret not in text, f"a secret was printed ({script.log})"
    assert servers.other.seen == [], f"a request reached a host that is not configured ({script.log})"
    assert "Traceback" not in run.stderr, f"{script.log}: {run.stderr[-1500:]}"
    event(f"exit {run.returncode}")
    if run.returncode == 0:
        records, truth = run.records("list_membership"), expected_records()
        assert {r["id"] for r in records} == set(truth), f"exit 0 without every row ({script.log})"
        wrong = [r for r in records if r != truth[r["id"]]]
        assert not wrong, f"exit 0 with wrong values, e.g. {wrong[:1]} ({script.log})"
        bookmark = run.final_state["bookmarks"]["list_membership"]["replication_key_value"]
        assert bookmark == END
    else:
        assert " ERROR " in run.stderr or "| ERROR" in run.stderr, f"no error message ({script.log})"
        bookmarks = run.final_state.get("bookmarks", {}).get("list_membership", {})
        value = bookmarks.get("replication_key_value")
        emitted = {r["id"] for r in run.records("list_membership") if r == expected_records()[r["id"]]}
        behind = {rid for rid, r in expected_records().items() if value is not None and r["updated_at"] < value}
        assert behind <= emitted, f"bookmark {value} moved past rows not emitted ({script.log})"
