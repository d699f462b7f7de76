"""A result file's header checked against the fields requested: read by name, in any order and case.

A missing or duplicated column is refused, an extra one dropped with a warning, a body that names
no requested field fetched again; every file of an export has its header checked. Against a fake
Pardot on loopback (``tests/fake_pardot.py``), one export of one window.
"""

from __future__ import annotations

import typing as t

from tap_pardot_export.pardot.results import match_header
from tests.fake_pardot import ROWS, STREAM, WHERE, assert_exact, assert_refused, csv_body

if t.TYPE_CHECKING:
    from tests.fake_pardot import Call


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


# -- the matcher -----------------------------------------------------------------------------------


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
