"""Typing the v5 query API's JSON records: the tap's columns, UTC datetimes, one JSON line each.

The API answers JSON values: integers, numbers, booleans, strings, datetimes in ISO 8601 with
the API user's offset (``2024-05-16T11:27:08-07:00``), dates (``YYYY-MM-DD``) and, for a few
fields, nested objects and arrays. A record becomes a line of JSON keyed by the stream's
columns (snake_case), its datetimes in UTC RFC 3339 as the export streams write them
(``2024-05-16T18:27:08+00:00``), every other value as its type says. Values in a near spelling
are taken (``"true"``, ``"12"``: the 2021 documentation printed booleans as strings); anything
else is an error naming the stream, the record and the field. A nested value is kept as the
API sent it (one column holding the JSON value). A datetime whose UTC instant falls outside
years 1 to 9999 is null, with one warning per column.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import typing as t

import orjson

from tap_pardot_export.errors import ResultFormatError

if t.TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

UTC = dt.timezone.utc
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
TRUE, FALSE = frozenset({"true", "1"}), frozenset({"false", "0"})


class ValueError_(ValueError):  # noqa: N801 - a ValueError of this module
    """A value that does not fit its field's type."""


class OutOfRange(ValueError_):
    """A datetime whose UTC instant falls outside years 1 to 9999."""


def to_int(v: t.Any) -> int:
    """An integer, or a string or number holding one."""
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str) and re.fullmatch(r"-?[0-9]+", v.strip()):
        return int(v)
    raise ValueError_(f"not an integer: {str(v)[:40]!r}")


def to_number(v: t.Any) -> int | float:
    """A number, or a string holding one."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            pass
    raise ValueError_(f"not a number: {str(v)[:40]!r}")


def to_bool(v: t.Any) -> bool:
    """A boolean, or ``true``/``false``/``1``/``0`` in a string or a number."""
    if isinstance(v, bool):
        return v
    text = str(v).strip().lower() if isinstance(v, (str, int)) else ""
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise ValueError_(f"not a boolean: {str(v)[:40]!r}")


def to_str(v: t.Any) -> str:
    """A string; a number or a boolean as JSON writes it."""
    if isinstance(v, str):
        return v
    if isinstance(v, (int, float, bool)):
        return orjson.dumps(v).decode()
    raise ValueError_(f"not a string: {str(v)[:40]!r}")


def to_datetime(v: t.Any) -> str:
    """An ISO 8601 datetime with an offset, as UTC RFC 3339 (``+00:00``; a fraction of a second kept)."""
    if isinstance(v, str):
        try:
            when = dt.datetime.fromisoformat(v)
        except ValueError:
            when = None
        if when is not None and when.tzinfo is not None:
            try:
                utc = when.astimezone(UTC)
            except OverflowError:
                raise OutOfRange(f"{v[:40]!r} falls outside years 1 to 9999 in UTC") from None
            fraction = f".{utc.microsecond:06d}" if utc.microsecond else ""
            return (
                f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}"
                f"{fraction}+00:00"
            )
    raise ValueError_(f"not a datetime with an offset: {str(v)[:40]!r}")


def to_date(v: t.Any) -> str:
    """A date, ``YYYY-MM-DD`` (a time part is dropped)."""
    if isinstance(v, str) and _DATE.match(v):
        try:
            return dt.date.fromisoformat(v[:10]).isoformat()
        except ValueError:
            pass
    raise ValueError_(f"not a date (YYYY-MM-DD): {str(v)[:40]!r}")


def to_object(v: t.Any) -> dict[str, t.Any]:
    """A JSON object, as sent."""
    if isinstance(v, dict):
        return v
    raise ValueError_(f"not an object: {str(v)[:40]!r}")


def to_ints(v: t.Any) -> list[int]:
    """An array of integers."""
    if isinstance(v, list):
        return [to_int(x) for x in v]
    raise ValueError_(f"not an array: {str(v)[:40]!r}")


#: every valid ``:MM:SS`` of a datetime: a cached hour is reused only with a valid tail
_TAILS = frozenset(f":{m:02d}:{s:02d}" for m in range(60) for s in range(60))


class DatetimeCache:
    """:func:`to_datetime`, with the UTC hour of each local hour and whole-hour offset cached.

    ``2024-05-16T11:27:08-04:00`` -> the UTC of ``2024-05-16T11`` at ``-04:00`` (computed once)
    plus ``:27:08+00:00``: a dictionary lookup per value in the usual shape.
    """

    def __init__(self) -> None:
        """An empty cache."""
        self.hours: dict[str, str] = {}

    def __call__(self, v: t.Any) -> str:
        """``v`` in UTC RFC 3339."""
        if v.__class__ is str and len(v) == 25 and v[10] == "T" and v[-2:] == "00" and v[13:19] in _TAILS:
            key = v[:13] + v[19:]
            prefix = self.hours.get(key)
            if prefix is None:
                prefix = to_datetime(f"{v[:13]}:00:00{v[19:]}")[:13]
                if len(self.hours) < 100_000:
                    self.hours[key] = prefix
            return f"{prefix}{v[13:19]}+00:00"
        return to_datetime(v)


CONVERTERS: dict[str, Callable[[t.Any], t.Any]] = {
    "i": to_int,
    "n": to_number,
    "s": to_str,
    "b": to_bool,
    "dt": to_datetime,
    "date": to_date,
    "obj": to_object,
    "ints": to_ints,
}


@dataclasses.dataclass(frozen=True)
class Column:
    """One selected column: the field it comes from, its type and whether it may be null."""

    api_name: str
    column: str
    code: str
    nullable: bool


class RowWriter:
    """Turns an API record into the stream's JSON line."""

    def __init__(
        self,
        stream: str,
        columns: Sequence[Column],
        *,
        deleted_column: str | None = None,
        deleted_at: str | None = None,
        out_of_range: Callable[[str, str], None] | None = None,
        constants: Mapping[str, t.Any] | None = None,
    ) -> None:
        """Write ``columns``; with ``deleted_column``, a record with ``isDeleted`` true gets ``deleted_at`` there.

        ``constants`` come first in every line (business_unit_key's ``business_unit_id``).
        """
        self.stream = stream
        self.constants = dict(constants or {})
        self.columns = [(c.api_name, c.column, CONVERTERS[c.code], c.nullable) for c in columns]
        self.deleted_column, self.deleted_at = deleted_column, deleted_at
        self.out_of_range = out_of_range
        self.fast = self._compile(columns)

    def __call__(self, raw: dict[str, t.Any]) -> bytes:
        """The record's JSON line (newline included)."""
        try:
            return self.fast(raw)
        except Exception:  # noqa: BLE001 - the general path types it again, naming the field at fault
            return self.general(raw)

    def _compile(self, columns: Sequence[Column]) -> Callable[[dict[str, t.Any]], bytes]:
        """A function typing a record whose values have their types (or null where allowed); else it raises.

        Field names enter the source only as ``repr`` literals.
        """
        plain = {"i": "int", "n": None, "s": "str", "b": "bool"}
        lines, items = [], [f"{name!r}: _k{i}" for i, name in enumerate(self.constants)]
        for k, c in enumerate(columns):
            lines.append(f"    v{k} = r.get({c.api_name!r})")
            kind = plain.get(c.code, "")
            if c.code == "dt":
                lines.append(f"    if v{k} is not None: v{k} = _dt(v{k})")
            elif kind:
                lines.append(f"    if v{k} is not None and v{k}.__class__ is not {kind}: raise _Bad")
            else:
                lines.append(f"    if v{k} is not None: v{k} = _conv[{k}](v{k})")
            if not c.nullable:
                lines.append(f"    if v{k} is None: raise _Bad")
            items.append(f"{c.column!r}: v{k}")
        if self.deleted_column is not None:
            items.append(f"{self.deleted_column!r}: _stamp if r.get('isDeleted') is True else None")
        bound = "".join(f", _k{i}=_k{i}" for i in range(len(self.constants)))  # locals: no lookup per record
        source = f"def fast(r{bound}):\n" + "\n".join(lines) + f"\n    return _dumps({{{', '.join(items)}}}) + b'\\n'\n"
        scope: dict[str, t.Any] = {
            "_dt": DatetimeCache(),
            "_Bad": ValueError_,
            "_conv": [CONVERTERS[c.code] for c in columns],
            "_dumps": orjson.dumps,
            "_stamp": self.deleted_at,
            **{f"_k{i}": value for i, value in enumerate(self.constants.values())},
        }
        exec(compile(source, "<row_writer>", "exec"), scope)  # noqa: S102 - names enter as repr() literals
        return t.cast("Callable[[dict[str, t.Any]], bytes]", scope["fast"])

    def general(self, raw: dict[str, t.Any]) -> bytes:
        """The record's JSON line, each value converted in turn (a bad one raises naming its field)."""
        out: dict[str, t.Any] = dict(self.constants)
        for api_name, column, convert, nullable in self.columns:
            v = raw.get(api_name)
            if v is not None:
                try:
                    v = convert(v)
                except OutOfRange as exc:
                    if not nullable or self.out_of_range is None:
                        raise self.error(raw, api_name, exc) from None
                    self.out_of_range(column, str(raw.get(api_name)))
                    v = None
                except ValueError_ as exc:
                    raise self.error(raw, api_name, exc) from None
            elif not nullable:
                raise self.error(raw, api_name, ValueError_("null, but the field is never null"))
            out[column] = v
        if self.deleted_column is not None:
            out[self.deleted_column] = self.deleted_at if raw.get("isDeleted") is True else None
        return orjson.dumps(out) + b"\n"

    def error(self, raw: dict[str, t.Any], field: str, exc: Exception) -> ResultFormatError:
        """The message for a value that does not fit: stream, record, field."""
        msg = (
            f"{self.stream}: record {str(raw.get('id'))[:40]}, field {field}: {exc}. Pardot sent a value the field's "
            "type does not allow; rerun, and report it to Salesforce support if it persists (a field other than "
            "id and the replication key can be deselected)."
        )
        return ResultFormatError(msg)
