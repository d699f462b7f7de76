"""Values read exactly, or refused naming the row and column: empty cells, booleans, integers, datetimes.

An empty cell is null unless a source says the field is never null; booleans are ``true``/``false``
or ``1``/``0`` in any case; an integer is an optional minus and ASCII digits (past 64 bits: a
message, not a traceback); a local datetime past years 1 to 9999 in UTC is null with one warning.
Against a fake Pardot on loopback (``tests/fake_pardot.py``); then the row typers as units, the
compiled and the general one against an oracle written out by hand (property-based).
"""

from __future__ import annotations

import datetime as dt
import typing as t
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tap_pardot_export.engine.convert import CellError, LocalDateTimeConverter, _general_row_typer, row_typer, to_bool
from tests.fake_pardot import ROWS, TYPED, WHERE, assert_clean_failure, assert_exact, assert_refused, csv_body
from tests.helpers import run_tap

UTC = dt.timezone.utc

PROPS: dict[str, dict[str, t.Any]] = {
    "id": {"type": ["integer"]},
    "flag": {"type": ["boolean", "null"]},
    "at": {"type": ["string", "null"], "format": "date-time"},
    "name": {"type": ["string", "null"]},
    "score": {"type": ["number", "null"]},
}

cells = st.one_of(
    st.just(""),
    st.text(max_size=6),
    st.sampled_from(
        [
            "1",
            "0",
            "true",
            "false",
            "TRUE",
            "5.0",
            "-3",
            "2024-03-10 02:30:00",
            "2024-11-03 01:30:00",
            "1E100",
            "-9223372036854775809",
            "1_000",
            " 5",
            "+5",
            "\u0661\u0662",
            "1e3",
            "9007199254740993.0",
            "--5",
        ]
    ),
)


# -- cells -----------------------------------------------------------------------------------------


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


# -- calendar edges --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "sentinel"),
    [("America/New_York", "9999-12-31 23:30:00"), ("Asia/Tokyo", "0001-01-01 00:30:00")],
)
def test_a_sentinel_date_past_the_calendar_in_utc_is_null_with_one_warning(serve, zone, sentinel):
    rows = [{**ROWS[0], "created_at": sentinel}, {**ROWS[1], "created_at": sentinel}, ROWS[2]]
    _, run = serve(lambda c: csv_body(c.fields, rows), config={"timezone": zone})
    assert run.returncode == 0, run.stderr[-3000:]
    got = {r["id"]: r for r in run.records("list_membership")}
    assert got[11]["created_at"] is None and got[12]["created_at"] is None
    warnings = [line for line in run.stderr.splitlines() if "outside years 1 to 9999" in line]
    assert len(warnings) == 1, warnings
    assert "list_membership" in warnings[0] and "'created_at'" in warnings[0] and sentinel in warnings[0]
    assert "Traceback" not in run.stderr


def test_a_sentinel_date_in_a_never_null_column_is_the_per_row_error(serve):
    rows = [ROWS[0], {**ROWS[1], "updated_at": "9999-12-31 23:30:00"}]
    _, run = serve(lambda c: csv_body(c.fields, rows))
    assert_refused(run, *WHERE, "row 2", "(id 12)", "column 'updated_at'", "outside years 1 to 9999")


def test_every_datetime_written_has_a_four_digit_year(serve):
    rows = [{**ROWS[0], "created_at": "0999-06-01 12:00:00"}, ROWS[1], ROWS[2]]
    _, run = serve(lambda c: csv_body(c.fields, rows), config={"timezone": "UTC"})
    assert run.returncode == 0, run.stderr[-3000:]
    got = {r["id"]: r for r in run.records("list_membership")}
    assert got[11]["created_at"] == "0999-06-01T12:00:00+00:00"


# -- integers --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cell", ["1_000", "1e3", "+5", " 5", "5.0", "9007199254740993.0", "\u0661\u0662", "--5", "0x1F"]
)
def test_an_integer_is_an_optional_minus_and_ascii_digits(serve, cell):
    rows = [ROWS[0], {**ROWS[1], "list_id": cell}, ROWS[2]]
    _, run = serve(lambda c: csv_body(c.fields, rows))
    assert_refused(run, *WHERE, "row 2", "(id 12)", "column 'list_id': not an integer")


def test_negative_and_leading_zero_integers_are_read(serve):
    rows = [{**ROWS[0], "list_id": "-7"}, {**ROWS[1], "list_id": "007"}, ROWS[2]]
    _, run = serve(lambda c: csv_body(c.fields, rows))
    assert_exact(run, {**TYPED, 11: {**TYPED[11], "list_id": -7}, 12: {**TYPED[12], "list_id": 7}})


@pytest.mark.usefixtures("instant_retries")
@pytest.mark.parametrize("value", ["99999999999999999999999", "-99999999999999999999999"])
@pytest.mark.parametrize("batch", [False, True])
def test_an_integer_past_64_bits_is_a_message_naming_the_row_not_a_traceback(fake, catalog, tmp_path, value, batch):
    """Found: orjson's "Integer exceeds 64-bit range" traceback while writing the RECORD."""
    server = fake(
        export_id=5001, body=lambda c: csv_body(c.fields, [ROWS[0], {**ROWS[1], "prospect_id": value}, ROWS[2]])
    )
    cfg = server.config(max_retries=1)
    if batch:
        cfg["batch_config"] = {
            "encoding": {"format": "jsonl", "compression": "none"},
            "storage": {"root": f"file://{tmp_path}", "prefix": "b-"},
        }
    run = run_tap(cfg, catalog=catalog)
    assert_clean_failure(run, "prospect_id", "row 2", "export 5001")


# -- the row typers --------------------------------------------------------------------------------


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


def oracle_row(row: list[str], conv: LocalDateTimeConverter) -> dict:
    """PROPS typing written out cell by cell, independent of both typers: the record, or the error text."""
    out: dict = {}
    for name, cell in zip(PROPS, row, strict=True):
        kind = PROPS[name]
        if cell == "" and "null" not in kind["type"]:  # a never-null field: empty is false or an error
            if kind["type"][0] != "boolean":
                raise CellError(f"column {name!r} is empty, but the field is never null")
            out[name] = False
        elif cell == "":
            out[name] = None
        elif kind["type"][0] == "integer":
            # as Pardot writes an integer: an optional minus and ASCII digits, nothing else
            if not cell or not all(c in "0123456789" for c in cell.removeprefix("-")) or cell == "-":
                raise CellError(f"column {name!r}: not an integer: {cell[:40]!r}")
            out[name] = int(cell)
            if not -(2**63) <= out[name] < 2**64:  # what a JSON writer takes
                raise CellError(f"column {name!r}: an integer past 64 bits: {cell!r}")
        elif kind["type"][0] == "boolean":
            if cell.lower() not in ("true", "1", "false", "0"):
                raise CellError(f"column {name!r}: not a boolean (true/false/1/0): {cell!r}")
            out[name] = cell.lower() in ("true", "1")
        elif kind["type"][0] == "number":
            try:
                out[name] = float(cell.replace(",", ""))
            except ValueError:
                raise CellError(f"column {name!r}: not a number: {cell!r}") from None
        elif kind.get("format") == "date-time":
            try:
                conv(cell)
            except CellError as exc:
                raise CellError(f"column {name!r}: {exc}") from None
            local = dt.datetime.strptime(cell, "%Y-%m-%d %H:%M:%S" if len(cell) > 10 else "%Y-%m-%d")
            out[name] = local.replace(tzinfo=conv.zone).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
        else:
            out[name] = cell
    return out


@given(row=st.lists(cells, min_size=5, max_size=5))
def test_compiled_and_general_typers_agree_with_an_oracle(row):
    """Both typers (the compiled one falls back on the general one) against typing written out by hand."""
    conv = LocalDateTimeConverter(ZoneInfo("America/New_York"))
    header = list(PROPS)
    fast, general = row_typer(header, PROPS, conv), _general_row_typer(header, PROPS, conv)
    try:
        expected = oracle_row(row, conv)
    except CellError as exc:
        for typer in (fast, general):
            with pytest.raises(CellError) as got:
                typer(row)
            assert str(got.value) == str(exc)
    else:
        assert fast(row) == expected
        assert general(row) == expected


def test_typer_names_the_column():
    typer = row_typer(["id", "flag"], PROPS, LocalDateTimeConverter(UTC))
    assert typer(["7", "true"]) == {"id": 7, "flag": True}
    assert typer(["7", ""]) == {"id": 7, "flag": None}
    with pytest.raises(CellError, match="column 'id' is empty"):  # id is never null
        typer(["", ""])
    with pytest.raises(CellError, match="column 'flag': not a boolean"):
        typer(["7", "maybe"])
