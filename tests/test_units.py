"""Pure logic: window tiling, local-time conversion, cell typing (property-based where inputs are wide)."""

from __future__ import annotations

import datetime as dt
import itertools
import typing as t
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tap_pardot_export.engine.convert import (
    CellError,
    LocalDateTimeConverter,
    _general_row_typer,
    infer_offset,
    row_typer,
)
from tap_pardot_export.engine.windows import MAX_WINDOW, OVERLAP, api_time, tile
from tap_pardot_export.pardot.exports import result_refs, unwrap_export

UTC = dt.timezone.utc
ZONES = [
    "UTC",
    "America/New_York",
    "Europe/Paris",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "America/St_Johns",
    "Pacific/Chatham",
    "America/Sao_Paulo",
]
instants = st.integers(
    min_value=int(dt.datetime(2000, 1, 1, tzinfo=UTC).timestamp()),
    max_value=int(dt.datetime(2035, 1, 1, tzinfo=UTC).timestamp()),
)


@given(start=instants, length=st.integers(1, 5 * 366 * 86400), days=st.floats(0.01, 400))
def test_windows_cover_the_range_in_order_without_gaps(start, length, days):
    a = dt.datetime.fromtimestamp(start, UTC)
    b = a + dt.timedelta(seconds=length)
    ws = tile(a, b, dt.timedelta(days=days))
    assert ws[0].start == a and ws[-1].end == b
    for w, nxt in itertools.pairwise(ws):
        assert w.end == nxt.start
    for w in ws:
        assert w.start < w.end
        assert w.end - w.start <= min(dt.timedelta(days=days), MAX_WINDOW)
        assert w.before - w.after <= dt.timedelta(days=365), "the API's span limit"
        assert w.after == w.start - OVERLAP


def test_api_time_has_an_explicit_offset():
    assert api_time(dt.datetime(2024, 3, 10, 2, 30, tzinfo=ZoneInfo("Europe/Paris"))) == "2024-03-10T01:30:00+00:00"


@given(ts=instants, zone=st.sampled_from(ZONES))
def test_local_rendering_converts_back_to_the_instant(ts, zone):
    z = ZoneInfo(zone)
    local = dt.datetime.fromtimestamp(ts, z)
    text = local.strftime("%Y-%m-%d %H:%M:%S")
    conv = LocalDateTimeConverter(z)
    for _ in range(2):  # the second call takes the cached path
        got = dt.datetime.fromisoformat(conv(text))
        if local.replace(fold=1 - local.fold).utcoffset() == local.utcoffset():
            assert got.timestamp() == ts
        else:  # a repeated local hour: the first occurrence is taken
            assert got == local.replace(fold=0).astimezone(UTC)


def test_bad_datetimes_are_refused():
    conv = LocalDateTimeConverter(UTC)
    for bad in ("2024-13-01 00:00:00", "yesterday", "2024-01-01T00:00:00", ""):
        with pytest.raises(CellError):
            conv(bad)


def test_infer_offset_rounds_to_quarter_hours():
    now = dt.datetime(2024, 7, 1, 12, 0, 3, tzinfo=UTC).timestamp()
    assert infer_offset("2024-07-01 17:30:00", now) == dt.timedelta(hours=5, minutes=30)
    assert infer_offset("2024-07-01 08:00:01", now) == dt.timedelta(hours=-4)


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


@pytest.mark.parametrize(
    ("body", "refs"),
    [
        ({"export": {"id": 1, "state": "Complete"}}, []),
        (
            {"@attributes": {"stat": "ok"}, "export": {"id": 1, "state": "Complete", "resultRefs": "http://h/a"}},
            ["http://h/a"],
        ),
        ({"id": 1, "state": "Complete", "resultRefs": ["http://h/a", "http://h/b"]}, ["http://h/a", "http://h/b"]),
        ({"export": [{"id": 1, "state": "Complete", "resultsRef": "http://h/c"}]}, ["http://h/c"]),
    ],
)
def test_every_export_shape(body, refs):
    export = unwrap_export(body, "test")
    assert export["id"] == 1 and result_refs(export) == refs


def test_answers_without_an_export_are_refused():
    from tap_pardot_export.errors import ResultFormatError

    bodies: tuple[object, ...] = ({"result": {"total_results": 0}}, [], {"export": {"state": "Complete"}})
    for body in bodies:
        with pytest.raises(ResultFormatError):
            unwrap_export(body, "read")
