"""Every answer checked against what was asked (issues 10 and 11.4), against a fake Pardot on loopback.

The fake (tests/fake_pardot.py) serves one export of one window whose result file is the body
under test. Each sync test asserts the invariant: exit 0 with exactly the rows served, typed;
or a non-zero exit with a clear message, no traceback, no secret, and no bookmark past the
window's start.
"""

from __future__ import annotations

import codecs
import datetime as dt
import json
import typing as t
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tap_pardot_export.engine.convert import CellError, LocalDateTimeConverter, infer_offset, row_typer, to_bool
from tap_pardot_export.errors import (
    CallBudgetSpent,
    DailyLimitReached,
    PardotAPIError,
    PardotAuthError,
    ResultFormatError,
)
from tap_pardot_export.pardot.answers import Verdict, sniff
from tap_pardot_export.pardot.exports import ExportInfo, ExportSpec, InFlight, export_id, unwrap_export
from tap_pardot_export.pardot.polling import Polling
from tap_pardot_export.pardot.results import BadResultFile, ResultFile, _incomplete_utf8, match_header
from tap_pardot_export.pardot.retry import RetryPolicy
from tap_pardot_export.pardot.runner import ExportRunner
from tap_pardot_export.redact import install_redaction, scrub_answer
from tests.fake_pardot import ROWS, STREAM, TOKEN, TYPED, WHERE, assert_exact, assert_refused, csv_body

if t.TYPE_CHECKING:
    from tests.fake_pardot import Call

UTC = dt.timezone.utc


# -- bodies that are not the CSV requested ---------------------------------------------------------


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


# -- the header against the fields requested ----------------------------------------------------------


def test_header_in_other_case_and_spacing_is_matched_to_the_requested_names(serve):
    def body(c: Call) -> bytes:
        return csv_body(c.fields, header=[f" {f.upper()} " if k % 2 else f.title() for k, f in enumerate(c.fields)])

    _, run = serve(body)
    assert_exact(run)


def test_columns_in_another_order_are_read_by_name(serve):
    _, run = serve(lambda c: csv_body(list(reversed(c.fields))))
    assert_exact(run)


def test_missing_column_is_refused(serve):
    _, run = serve(lambda c: csv_body([f for f in c.fields if f != "updated_at"]))
    assert_refused(run, *WHERE, "missing ['updated_at']")
    assert not run.records(STREAM)


def test_duplicated_id_column_is_refused(serve):
    def body(c: Call) -> bytes:
        fields = [*c.fields, "id"]
        rows = [{**r, "id": r["id"]} for r in ROWS]
        return csv_body(fields, rows, header=[*c.fields, "ID"])

    _, run = serve(body)
    assert_refused(run, *WHERE, "duplicated ['ID']")
    assert not run.records(STREAM)


def test_extra_column_is_dropped_with_a_warning(serve):
    def body(c: Call) -> bytes:
        rows = [{**r, "surprise": "x"} for r in ROWS]
        return csv_body([*c.fields[:2], "surprise", *c.fields[2:]], rows)

    _, run = serve(body)
    assert_exact(run)
    assert "not requested, dropped: ['surprise']" in run.stderr


def test_a_body_naming_no_requested_field_is_fetched_again_then_refused(serve):
    server, run = serve(lambda c: b"Service Temporarily Unavailable\r\n")
    assert_refused(run, *WHERE, "names none of the fields requested", "Service Temporarily Unavailable")
    assert server.count("download") == 3


def test_every_file_of_an_export_has_its_header_checked(serve):
    def body(c: Call) -> bytes:
        fields = c.fields if c.file == 1 else [f for f in c.fields if f != "updated_at"]
        return csv_body(fields, [ROWS[c.file - 1]])

    server, run = serve(body, files=2)
    assert_refused(run, "list_membership", "export 1", "result file 2", "missing ['updated_at']")
    assert server.count("download") == 2


def test_several_files_in_other_orders_and_cases(serve):
    def body(c: Call) -> bytes:
        fields = c.fields if c.file == 1 else list(reversed(c.fields))
        header = fields if c.file == 1 else [f.upper() for f in fields]
        return csv_body(fields, ROWS[:2] if c.file == 1 else ROWS[2:], header=header)

    _, run = serve(body, files=2)
    assert_exact(run)


# -- values -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("column", ["id", "updated_at"])
def test_empty_cell_in_a_never_null_column_is_refused(serve, column):
    rows = [ROWS[0], {**ROWS[1], column: ""}, ROWS[2]]
    _, run = serve(lambda c: csv_body(c.fields, rows))
    ident = "?" if column == "id" else "12"
    assert_refused(run, *WHERE, "row 2", f"(id {ident})", f"column '{column}' is empty")


@pytest.mark.parametrize("column", ["list_id", "prospect_id", "opted_out", "created_at"])
def test_an_empty_cell_where_no_source_says_never_null_is_null(serve, column):
    """Nullability from evidence: only id and the replication key (and the seed's 'Nullable: No') are never null."""
    rows = [ROWS[0], {**ROWS[1], column: ""}, ROWS[2]]
    _, run = serve(lambda c: csv_body(c.fields, rows))
    assert_exact(run, {**TYPED, 12: {**TYPED[12], column: None}})


@pytest.mark.parametrize(
    "bad", ["2024-01-01 10:99:99", "2024-01-01 10:15:60", "2024-13-01 00:00:00", "2024-1-01 10:1:0"]
)
def test_impossible_datetimes_are_refused_even_after_their_hour_is_cached(serve, bad):
    rows = [ROWS[2], {**ROWS[0], "updated_at": bad}]  # the first row caches the hour 2024-01-01 10
    _, run = serve(lambda c: csv_body(c.fields, rows))
    assert_refused(run, *WHERE, "row 2", "(id 11)", "column 'updated_at'", repr(bad))


def test_booleans_as_1_0_in_any_case_and_empty(serve):
    spellings = ["1", "0", "TRUE", "False", ""]
    rows = [{**ROWS[0], "id": str(20 + k), "opted_out": v} for k, v in enumerate(spellings)]
    _, run = serve(lambda c: csv_body(c.fields, rows))
    expected = [True, False, True, False, None]  # no source says opted_out is never null: empty is null
    typed = {20 + k: {**TYPED[11], "id": 20 + k, "opted_out": v} for k, v in enumerate(expected)}
    assert_exact(run, typed)


def test_a_boolean_in_another_spelling_is_refused(serve):
    rows = [{**ROWS[0], "opted_out": "yes"}]
    _, run = serve(lambda c: csv_body(c.fields, rows))
    assert_refused(run, *WHERE, "column 'opted_out': not a boolean")


# -- encodings, line ends, cut bodies -------------------------------------------------------------------


def test_invalid_utf8_is_refused_naming_the_line(serve):
    def body(c: Call) -> bytes:
        data = csv_body(c.fields)
        lines = data.split(b"\r\n")
        lines[2] = lines[2].replace(b",5,", b",5\xff\xfe,")
        return b"\r\n".join(lines)

    server, run = serve(body)
    assert_refused(run, *WHERE, "line 3", "not valid UTF-8")
    assert server.count("download") == 1
    assert not run.records(STREAM)


def test_invalid_utf8_deep_in_a_file_is_refused_naming_the_line(serve):
    """Far past the header the bad bytes are met while rows are read: still a message, no bookmark."""
    rows = [{**ROWS[0], "id": str(100 + k)} for k in range(400)]

    def body(c: Call) -> bytes:
        lines = csv_body(c.fields, rows).split(b"\r\n")
        lines[351] = lines[351].replace(b",5,", b",5\xc3\x28,")
        return b"\r\n".join(lines)

    server, run = serve(body)
    assert_refused(run, *WHERE, "line 352", "not valid UTF-8")
    assert server.count("download") == 1
    assert len(run.records(STREAM)) < 350


@pytest.mark.parametrize(("bom", "eol"), [(True, "\r\n"), (True, "\n"), (False, "\n")])
def test_bom_and_line_ends_are_accepted(serve, bom, eol):
    _, run = serve(lambda c: csv_body(c.fields, bom=bom, eol=eol))
    assert_exact(run)


def cut_in_quotes(c: Call) -> bytes:
    """A file cut inside a quoted field: the last record is a quote left open."""
    fields = c.fields
    rows = [*ROWS, {**ROWS[0], "id": "14"}]
    data = csv_body(fields, rows)
    last = ",".join(rows[-1].get(f, "") for f in fields[:-1]) + ',"2024-01-01 0'
    return data[: data.rindex(b"14,")] + last.encode()


def test_unterminated_quote_at_the_end_is_fetched_again_then_refused(serve):
    server, run = serve(cut_in_quotes)
    assert_refused(run, *WHERE, "is cut", "quoted field", "fetched 3 times")
    assert server.count("download") == 3
    assert not run.records(STREAM)


def test_cut_body_once_then_whole(serve):
    server, run = serve(lambda c: cut_in_quotes(c) if c.attempt == 1 else c.result())
    assert_exact(run)
    assert server.count("download") == 2


def test_last_line_with_fewer_columns_is_fetched_again_then_refused(serve):
    def body(c: Call) -> bytes:
        data = csv_body(c.fields)
        return data[: data.rindex(b",")]  # the last line loses its last column

    server, run = serve(body)
    assert_refused(run, *WHERE, "is cut", "columns where the header has 6")
    assert server.count("download") == 3
    assert not run.records(STREAM)


def test_body_shorter_than_content_length_is_fetched_again(serve):
    """The client (urllib3 enforces Content-Length) retries a body cut short of its announced length."""

    def body(c: Call) -> bytes | tuple[bytes, dict[str, str]]:
        data = c.result()
        if c.attempt == 1:  # cut at a line end: only the announced length tells it is short
            return data[: data.index(b"\r\n", data.index(b"\r\n") + 2) + 2], {"Content-Length": str(len(data))}
        return data

    server, run = serve(body)
    assert_exact(run)
    assert server.count("download") == 2


# -- export answers -------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_id", ["abc", 1.5, None, -3, True])
def test_an_export_id_that_is_not_an_integer_is_refused(serve, bad_id):
    server, run = serve(export_id=bad_id)
    assert_refused(run, "list_membership", "create", "export id that is not a positive integer")
    assert server.count("download") == 0


def test_an_export_id_as_a_decimal_string_is_used(serve):
    _, run = serve(export_id="1")
    assert_exact(run)


@pytest.mark.parametrize("created_at", ["2024-01-01T19:00:05-05:00", "Tuesday", 1704153605, None])
def test_created_at_in_another_form_never_tracebacks(serve, created_at):
    """Without timezone the offset is inferred from createdAt where it can be parsed, else unknown."""
    _, run = serve(created_at=created_at, config={"timezone": None, "infer_timezone": True})
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    if isinstance(created_at, str) and created_at.endswith("-05:00"):
        assert_exact(run)  # the offset it carries is New York's in January
    elif run.returncode == 0:
        assert len(run.records(STREAM)) == len(ROWS)


# -- pure units -----------------------------------------------------------------------------------------


def test_cached_datetimes_check_minutes_and_seconds():
    conv = LocalDateTimeConverter(ZoneInfo("America/New_York"))
    assert conv("2024-01-01 10:15:00") == "2024-01-01T15:15:00+00:00"
    assert conv("2024-01-01 10:59:59") == "2024-01-01T15:59:59+00:00"  # the cached path
    for bad in ("2024-01-01 10:99:99", "2024-01-01 10:60:00", "2024-01-01 10:15:6x", "2024-01-01 10:15:00Z"):
        with pytest.raises(CellError):
            conv(bad)
    for bad in ("2024-13-01 00:00:00", "2024-02-30 00:00:00", "2024-1-01 10:00:00", " 2024-01-01 10:00:00"):
        with pytest.raises(CellError):
            conv(bad)


def test_booleans():
    for s in ("true", "TRUE", "True", "tRuE", "1"):
        assert to_bool(s) is True
    for s in ("false", "FALSE", "False", "0"):
        assert to_bool(s) is False
    for s in ("yes", "t", "2", " true"):
        with pytest.raises(CellError):
            to_bool(s)
    props = {"flag": {"type": ["boolean", "null"]}, "must": {"type": ["boolean"]}}
    typer = row_typer(["flag", "must"], props, LocalDateTimeConverter(UTC))
    assert typer(["", ""]) == {"flag": None, "must": False}
    assert typer(["tRUE", "0"]) == {"flag": True, "must": False}


def test_typer_skips_columns_named_none_and_refuses_empty_never_null_cells():
    props = {"id": {"type": ["integer"]}, "name": {"type": ["string"]}, "note": {"type": ["string", "null"]}}
    typer = row_typer(["note", None, "id", "name"], props, LocalDateTimeConverter(UTC))
    assert typer(["", "junk", "7", "n"]) == {"note": None, "id": 7, "name": "n"}
    with pytest.raises(CellError, match="column 'name' is empty"):
        typer(["x", "junk", "7", ""])
    with pytest.raises(CellError, match="3 columns where the header has 4"):
        typer(["x", "junk", "7"])


def test_infer_offset_parses_what_it_can():
    now = dt.datetime(2024, 7, 1, 12, 0, 3, tzinfo=UTC).timestamp()
    assert infer_offset("2024-07-01 08:00:01", now) == dt.timedelta(hours=-4)
    assert infer_offset("2024-07-01T08:00:01-04:00", now) == dt.timedelta(hours=-4)
    assert infer_offset("2024-07-01T12:00:01Z", now) == dt.timedelta(0)
    for unknown in ("Monday", "", None, 1719835201, "2024-07-09 08:00:01"):  # the last: 8 days off
        assert infer_offset(unknown, now) is None


def test_match_header():
    fields = ["id", "updated_at", "Favorite_Color"]
    assert match_header([" ID", "UPDATED_AT ", "favorite_color"], fields) == (fields, [], [])
    assert match_header(["id", "x", "updated_at", "Favorite_Color"], fields) == (
        ["id", None, "updated_at", "Favorite_Color"],
        [],
        ["x"],
    )
    assert match_header(["id", "Id", "updated_at"], fields)[1] == ["Id"]
    # two fields differing only in case are matched exactly
    assert match_header(["a", "A"], ["a", "A"]) == (["a", "A"], [], [])


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


def test_redact():
    install_redaction(lambda: [TOKEN])
    text = f"Authorization: Bearer {TOKEN} and bu 0Uv000000000001AAA and access_token={TOKEN}"
    out = scrub_answer(text)
    assert TOKEN not in out
    assert "Bearer abcdefgh1234" not in scrub_answer("Bearer abcdefgh1234")


def test_export_answers_are_validated():
    assert export_id(7, "x") == 7 and export_id(" 7 ", "x") == 7
    for bad in ("abc", 1.5, 7.0, None, True, 0, -1, "1e3", [1]):
        with pytest.raises(ResultFormatError, match=r"create: .*not a positive integer"):
            export_id(bad, "create")
    with pytest.raises(ResultFormatError, match="state the tap does not know"):
        unwrap_export({"export": {"id": 1, "state": "Sleeping"}}, "read")
    with pytest.raises(ResultFormatError, match="not the one asked for"):
        unwrap_export({"export": {"id": 2, "state": "Complete"}}, "read", expect_id=1)
    assert unwrap_export({"export": {"id": "3", "state": "Waiting", "createdAt": 5}}, "c") == {
        "id": 3,
        "state": "Waiting",
        "createdAt": None,
    }


def result_file(tmp_path: t.Any, data: bytes, fields: list[str]) -> ResultFile:
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    return ResultFile(export=ExportInfo(id=9), index=0, url="u", path=str(path), label="s [a .. b)", fields=fields)


def test_quoted_fields_with_newlines_commas_and_quotes_are_read_whole(tmp_path):
    rf = result_file(tmp_path, b'id,note\r\n1,"a\r\nb ""q"""\r\n2,"x,\ny"\r\n', ["id", "note"])
    assert rf.check() == []
    assert list(rf.rows()) == [["1", 'a\r\nb "q"'], ["2", "x,\ny"]]


def test_a_stray_quote_in_an_unquoted_field_is_not_a_cut(tmp_path):
    rf = result_file(tmp_path, b'id,note\r\n1,5" screen\r\n', ["id", "note"])
    assert rf.check() == []
    assert list(rf.rows()) == [["1", '5" screen']]


@pytest.mark.parametrize(
    ("data", "cut"),
    [
        (b'id,note,n\r\n1,"a\nb",3\r\n', False),
        (b'id,note,n\r\n1,"a\nb",3', False),
        (b'id,note,n\r\n1,"a\nb"', True),  # the last record lost a column
        (b'id,note,n\r\n1,"a\r\nb', True),  # cut inside a quoted field spanning lines
        ("id,note,n\r\n1,x,caf\u00e9".encode()[:-1], True),  # cut inside a UTF-8 character
        (b"id,note,n\r\n", False),  # a header and no rows
    ],
)
def test_cut_bodies_are_detected_before_any_row(tmp_path, data, cut):
    rf = result_file(tmp_path, data, ["id", "note", "n"])
    if cut:
        with pytest.raises(BadResultFile, match="is cut") as exc:
            rf.check()
        assert exc.value.retry
    else:
        rf.check()


class RefusingClient:
    """A client whose every call raises ``error`` (for the runner's cancel and resume paths)."""

    max_concurrency = 1

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls: list[str] = []
        self.transport = type("Transport", (), {"policy": RetryPolicy(max_retries=0, max_time=0)})()

    def json(self, method: str, op: str, kind: str, **kw: t.Any) -> t.Any:
        self.calls.append(kind)
        raise self.error


def refusing_runner(client: RefusingClient) -> ExportRunner:
    polling = Polling(poll_interval=0, max_poll_interval=0, export_timeout=60)
    return ExportRunner(client, polling=polling, in_flight=InFlight(), spellings={})  # type: ignore[arg-type]  # a stand-in client


@pytest.mark.parametrize(
    "error",
    [
        DailyLimitReached("daily limit", code=122),
        CallBudgetSpent("budget spent"),
        PardotAuthError("credentials dead", code=184),
    ],
)
def test_limit_budget_and_auth_errors_are_not_swallowed_by_cancel_or_resume(error):
    client = RefusingClient(error)
    runner = refusing_runner(client)
    with pytest.raises(type(error)):
        runner.cancel(5, "x")
    spec = ExportSpec("listMembership", ["id"], "filter_by_updated_at", {}, "x")
    with pytest.raises(type(error)):
        runner.start(spec, resume_id=5)
    assert client.calls == ["cancel", "read"]
    runner.stop()  # on a signal the cancel is a courtesy: the handler must still write the state
    assert runner.cancel(5, "x") is False


def test_other_refusals_of_cancel_and_resume_are_logged_and_passed_over():
    client = RefusingClient(PardotAPIError("export 5 is finished", code=60))
    runner = refusing_runner(client)
    assert runner.cancel(5, "x") is False
    assert runner._resume(5, "x") is None
    assert runner._resume("abc", "x") is None  # a pending id in state that is not an integer
    assert client.calls == ["cancel", "read"]


def test_incomplete_utf8_at_the_end():
    text = "a,caf\u00e9,\u20ac,\U0001f600".encode()
    assert not _incomplete_utf8(text) and not _incomplete_utf8(b"") and not _incomplete_utf8(b"abc")
    for cut in (1, 2, 3):
        assert _incomplete_utf8(text[:-cut])  # inside the 4-byte emoji
    assert _incomplete_utf8("\u20ac".encode()[:-1]) and _incomplete_utf8("\u00e9".encode()[:-1])


csvish = st.lists(
    st.sampled_from(["id", "note", "ID", ",", '"', '""', "\r\n", "\n", "x", "\u00e9", "\ufeff", "<html>", "{", " "]),
    max_size=40,
).map(lambda parts: "".join(parts).encode())


@given(
    data=st.one_of(
        st.binary(max_size=200),
        csvish,
        csvish.map(lambda b: b[:-1]),
        st.binary(max_size=60).map(lambda b: b"id,note\r\n" + b"1,x\r\n" * 2000 + b),  # past the first read
    )
)
def test_any_body_gives_rows_or_a_result_format_error(tmp_path_factory, data):
    """Whatever the body, the check and the reader end in rows or in a ResultFormatError, never another error."""
    rf = result_file(tmp_path_factory.mktemp("body"), data, ["id", "note"])
    try:
        rf.check()
        rows = list(rf.rows())
    except ResultFormatError:
        return
    assert all(len(row) == len(rf.columns) for row in rows)
    assert rf.names == ["id", "note"] or sorted(rf.names) == ["id", "note"]
