"""Result files cut short in transit: told from whole ones, fetched again, and refused when they stay cut.

A body ending inside a quoted field, a last line short of columns, a body shorter than its
Content-Length, one without a length whose end cannot be checked; a cut in the middle of a download
is fetched again without a row emitted twice.
"""

from __future__ import annotations

import pytest

from tests.fake_pardot import ROWS, STREAM, WHERE, Call, assert_clean_failure, assert_exact, assert_refused, csv_body
from tests.helpers import run_tap
from tests.sandbox_runs import complete, one_stream, small


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


def close_delimited_cut(c: Call) -> tuple[bytes, dict[str, str | None]]:
    """A body with neither Content-Length nor chunked encoding, cut after its first record."""
    lines = c.result().splitlines(keepends=True)
    return b"".join(lines[:2]), {"Content-Length": None, "Connection": "close"}


@pytest.mark.usefixtures("instant_retries")
def test_a_close_delimited_body_cut_at_a_line_end_is_not_taken_for_the_whole_file(fake, catalog):
    """Found: exit 0 with 1 of 3 rows and the bookmark past the window (a silent loss).

    Such a body is refused whole: its end cannot be checked.
    """
    server = fake(body=close_delimited_cut)
    run = run_tap(server.config(max_retries=1), catalog=catalog)
    assert run.returncode != 0
    assert_clean_failure(run)
    assert "without a length" in run.stderr


def test_a_download_cut_off_midway_is_fetched_again_without_repeats(fresh_sandbox, instant_retries):
    sb = small(fresh_sandbox, rows_per_file=100)
    sb.inject("cut", count=2, op="download", after_bytes=3000)
    cfg, cat = one_stream(sb, "visitor_activity", window_days=400 // 2)
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stderr.count("cut off after") == 2
    ids = [r["id"] for r in run.records()]
    assert len(ids) == len(set(ids)), "no row is emitted twice because of a cut"
    complete(sb, "visitor_activity", [run])
