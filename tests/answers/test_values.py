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

from tap_pardot_export.engine.convert import CellError, LocalDateTimeConverter, _general_row_typer, row_typer

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


# -- the row typers --------------------------------------------------------------------------------


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
