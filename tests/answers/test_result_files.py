"""A result file read as CSV: UTF-8 checked line by line, byte order marks and line ends, quoted fields whole.

Invalid UTF-8 is refused naming the line, however deep in the file; a quoted field may hold
newlines, commas and quotes; a stray quote in an unquoted field is no cut; a body cut short is
told before any row. Whatever the body, the reader ends in rows or in a ResultFormatError
(property-based).
"""

from __future__ import annotations

import typing as t

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tap_pardot_export.errors import ResultFormatError
from tap_pardot_export.pardot.exports import ExportInfo
from tap_pardot_export.pardot.results import BadResultFile, ResultFile, _incomplete_utf8
from tests.fake_pardot import ROWS, STREAM, WHERE, assert_exact, assert_refused, csv_body

if t.TYPE_CHECKING:
    from tests.fake_pardot import Call

csvish = st.lists(
    st.sampled_from(["id", "note", "ID", ",", '"', '""', "\r\n", "\n", "x", "\u00e9", "\ufeff", "<html>", "{", " "]),
    max_size=40,
).map(lambda parts: "".join(parts).encode())


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


# -- the reader ------------------------------------------------------------------------------------


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


def test_incomplete_utf8_at_the_end():
    text = "a,caf\u00e9,\u20ac,\U0001f600".encode()
    assert not _incomplete_utf8(text) and not _incomplete_utf8(b"") and not _incomplete_utf8(b"abc")
    for cut in (1, 2, 3):
        assert _incomplete_utf8(text[:-cut])  # inside the 4-byte emoji
    assert _incomplete_utf8("\u20ac".encode()[:-1]) and _incomplete_utf8("\u00e9".encode()[:-1])


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
