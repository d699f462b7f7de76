"""Findings of a new user's and an attacker's tries, each kept as a test.

Hostile servers are the ones of ``tests/test_http_hostile.py`` (loopback, bounded, stopped at
the end of each test); a small fake Pardot on top of them answers the token, create, read and
download calls with what each scenario needs. Retry waits are scaled to zero.
"""

from __future__ import annotations

import json
import time
import typing as t
from http.server import BaseHTTPRequestHandler

import pytest

from tap_pardot_export.pardot import transport
from tests.helpers import TapRun, discover, run_check, run_tap, select_streams, skip_retry_waits
from tests.test_http_hostile import API, BU, SECRET, TOKEN, TOKEN_PATH, Hostile, closed_port, config, send

START, END = "2024-01-01T00:00:00Z", "2024-01-10T00:00:00Z"
EXPORT = {"id": 5001, "createdAt": "2024-01-01T00:00:00-05:00"}
Route = t.Callable[[BaseHTTPRequestHandler], None]


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retry waits are computed and logged, but not slept."""
    skip_retry_waits(monkeypatch)


@pytest.fixture(scope="module")
def catalog() -> dict[str, t.Any]:
    """The offline catalog with list_membership selected (few fields)."""
    return select_streams(discover({"business_unit_id": BU, "start_date": START}), ["list_membership"])


def csv_rows(fields: list[str], n: int) -> bytes:
    """A result file of ``n`` well-formed list memberships in the order of ``fields``."""

    def cell(name: str, i: int) -> str:
        if name == "id":
            return str(i + 1)
        if name in ("list_id", "prospect_id"):
            return "7"
        if name == "opted_out":
            return "false"
        return "2024-01-02 10:00:00" if name.endswith("_at") else "x"

    lines = [",".join(fields)] + [",".join(cell(f, i) for f in fields) for i in range(n)]
    return ("\n".join(lines) + "\n").encode()


class FakePardot:
    """Token, create, read and download on a loopback :class:`Hostile`, each overridable."""

    def __init__(self, **routes: Route) -> None:
        self.fields: list[str] = []
        self.rows = 3
        table: dict[str, Route] = {
            TOKEN_PATH: routes.get("token", self.token),
            API + "create": routes.get("create", self.create),
            "*": self.other,
        }
        self.read_route = routes.get("read", self.read)
        self.file_route = routes.get("file", self.file)
        self.server = Hostile(table)
        self.server.start()
        self.url = self.server.url

    def token(self, h: BaseHTTPRequestHandler) -> None:
        send(h, 200, {"access_token": TOKEN, "instance_url": "https://x.example", "token_type": "Bearer"})

    def create(self, h: BaseHTTPRequestHandler) -> None:
        self.fields = json.loads(self.server.requests[-1]["body"])["fields"]
        send(h, 200, {**EXPORT, "state": "Waiting"})

    def read(self, h: BaseHTTPRequestHandler) -> None:
        send(h, 200, {**EXPORT, "state": "Complete", "isExpired": False, "resultRefs": [f"{self.url}/file/0"]})

    def file(self, h: BaseHTTPRequestHandler) -> None:
        send(h, 200, csv_rows(self.fields, self.rows), {"Content-Type": "text/csv"})

    def other(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?", 1)[0]
        if path.startswith(API + "read/id/"):
            self.read_route(h)
        elif path.startswith("/file/"):
            self.file_route(h)
        elif path.startswith(API + "cancel/id/"):
            send(h, 200, {**EXPORT, "state": "Canceled"})
        else:
            send(h, 404, {"error": "no route"})

    def config(self, **extra: t.Any) -> dict[str, t.Any]:
        base = {
            "start_date": START,
            "end_date": END,
            "timezone": "America/New_York",
            "poll_interval": 0.05,
            "max_poll_interval": 0.2,
        }
        return config(self.url, **{**base, **extra})


@pytest.fixture
def fake() -> t.Iterator[t.Callable[..., FakePardot]]:
    made: list[FakePardot] = []

    def factory(**routes: Route) -> FakePardot:
        made.append(FakePardot(**routes))
        return made[-1]

    yield factory
    for f in made:
        f.server.stop()


def assert_clean_failure(run: TapRun, *needles: str) -> None:
    """Non-zero, a message naming what is wrong, no traceback, no secret, no bookmark."""
    assert run.returncode != 0, run.stderr[-2000:]
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    for needle in needles:
        assert needle in run.stderr, run.stderr[-2000:]
    for secret in (SECRET, TOKEN, "hostile-refresh-token"):
        assert secret not in run.everything
    for state in run.states():
        for bookmark in state.get("bookmarks", {}).values():
            assert "replication_key_value" not in bookmark, state


# -- bounded time ---------------------------------------------------------------------------------------


def trickle(payload: dict[str, t.Any], pad: int = 400, pause: float = 0.05) -> Route:
    """A 200 answer whose JSON body arrives one byte at a time, each under any read timeout."""
    data = json.dumps(payload).encode() + b" " * pad

    def route(h: BaseHTTPRequestHandler) -> None:
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
    assert server.server.requests == []


def test_a_bookmark_in_antiquity_is_a_corrupted_state(fake, catalog):
    server = fake()
    state = {"bookmarks": {"list_membership": {"replication_key": "updated_at", "replication_key_value": "0001-01-01"}}}
    run = run_tap(server.config(), catalog=catalog, state=state)
    assert_clean_failure(run, "The state is corrupted", "list_membership")
    assert server.server.requests == []


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
    assert server.server.requests == []


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


def with_cell(name: str, value: str, row: int = 1) -> t.Callable[[FakePardot], Route]:
    """A file route whose ``row``-th record has ``value`` in column ``name``."""

    def make(server: FakePardot) -> Route:
        def route(h: BaseHTTPRequestHandler) -> None:
            lines = csv_rows(server.fields, 3).decode().splitlines()
            cells = lines[row + 1].split(",")
            cells[server.fields.index(name)] = value
            lines[row + 1] = ",".join(cells)
            send(h, 200, ("\n".join(lines) + "\n").encode(), {"Content-Type": "text/csv"})

        return route

    return make


@pytest.mark.parametrize("value", ["99999999999999999999999", "-99999999999999999999999"])
@pytest.mark.parametrize("batch", [False, True])
def test_an_integer_past_64_bits_is_a_message_naming_the_row_not_a_traceback(fake, catalog, tmp_path, value, batch):
    """Found: orjson's "Integer exceeds 64-bit range" traceback while writing the RECORD."""
    server = fake()
    server.file_route = with_cell("prospect_id", value)(server)
    cfg = server.config(max_retries=1)
    if batch:
        cfg["batch_config"] = {
            "encoding": {"format": "jsonl", "compression": "none"},
            "storage": {"root": f"file://{tmp_path}", "prefix": "b-"},
        }
    run = run_tap(cfg, catalog=catalog)
    assert_clean_failure(run, "prospect_id", "row 2", "export 5001")


# -- bodies whose end cannot be checked -------------------------------------------------------------------


def close_delimited_cut(server: FakePardot) -> Route:
    """A body with neither Content-Length nor chunked encoding, cut after its first record."""

    def route(h: BaseHTTPRequestHandler) -> None:
        lines = csv_rows(server.fields, 3).splitlines(keepends=True)
        h.send_response(200)
        h.send_header("Content-Type", "text/csv")
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(b"".join(lines[:2]))
        h.wfile.flush()
        h.close_connection = True

    return route


def test_a_close_delimited_body_cut_at_a_line_end_is_not_taken_for_the_whole_file(fake, catalog):
    """Found: exit 0 with 1 of 3 rows and the bookmark past the window (a silent loss).

    Such a body is refused whole: its end cannot be checked.
    """
    server = fake()
    server.file_route = close_delimited_cut(server)
    run = run_tap(server.config(max_retries=1), catalog=catalog)
    assert run.returncode != 0
    assert_clean_failure(run)
    assert "without a length" in run.stderr


# -- export answers the sandbox never sends ---------------------------------------------------------------


def test_a_result_link_listed_twice_is_downloaded_once(fake, catalog):
    """Found: each listed copy was downloaded and emitted: every row of the file twice, calls doubled."""
    server = fake()

    def read(h: BaseHTTPRequestHandler) -> None:
        link = f"{server.url}/file/0"
        send(h, 200, {**EXPORT, "state": "Complete", "isExpired": False, "resultRefs": [link, link, link]})

    server.read_route = read
    run = run_tap(server.config(), catalog=catalog)
    assert run.returncode == 0, run.stderr[-2000:]
    assert sorted(r["id"] for r in run.records()) == [1, 2, 3]
    assert server.server.hits("/file/0") == 1


def test_a_result_link_that_parsers_read_differently_never_reaches_the_other_host(fake, catalog):
    """Found: ``http://OTHER\\@API/file/0``: the host check (urllib.parse) saw API, requests (urllib3)
    connected to OTHER and sent it the bearer token. A parser differential, the classic SSRF one.
    """
    other = Hostile({"*": lambda h: send(h, 200, b"id\n1\n", {"Content-Type": "text/csv"})}).start()
    try:
        server = fake()

        def read(h: BaseHTTPRequestHandler) -> None:
            link = f"http://127.0.0.1:{other.port}\\@127.0.0.1:{server.server.port}/file/0"
            send(h, 200, {**EXPORT, "state": "Complete", "isExpired": False, "resultRefs": link})

        server.read_route = read
        run = run_tap(server.config(max_retries=1), catalog=catalog)
        assert other.requests == [], f"the bearer token went to another host: {other.requests[0]['headers']}"
        assert_clean_failure(run, "Refusing")
    finally:
        other.stop()


def test_a_huge_status_answer_is_refused_before_it_fills_memory(fake, catalog, monkeypatch):
    """Found: a status, create or token answer is read whole into memory, whatever its size (a
    hostile or broken server can send gigabytes). The cap is lowered here to keep the test small.
    """
    monkeypatch.setattr(transport, "MAX_ANSWER_BYTES", 1 << 20)
    big = json.dumps({**EXPORT, "state": "Processing"}).encode() + b" " * (3 << 20)
    server = fake(read=lambda h: send(h, 200, big))
    run = run_tap(server.config(max_retries=1, export_timeout=2), catalog=catalog, timeout=60)
    assert_clean_failure(run, "larger than")
