"""Typing CSV cells: integers, booleans, numbers, and local datetimes to UTC RFC 3339.

Pardot writes datetimes as ``YYYY-MM-DD HH:MM:SS`` in the zone the API user had when the
export was created, with no offset. The converter turns them into UTC with an explicit
offset, caching the zone's offset per local hour so a row costs a dictionary lookup per
datetime. In the repeated hour when clocks go back, a local time names two instants; the
first (daylight time) is taken, as there is nothing in the file to tell them apart.
"""

from __future__ import annotations

import datetime as dt
import re
import typing as t

UTC = dt.timezone.utc
#: the spellings of a boolean Pardot writes, in any case (issue 11.4); empty is null
TRUE = frozenset({"true", "1"})
FALSE = frozenset({"false", "0"})
#: the compiled typer's lookup: common spellings; any other case falls back to :func:`to_bool`
BOOLS = dict.fromkeys(("true", "1", "TRUE", "True"), True) | dict.fromkeys(("false", "0", "FALSE", "False"), False)
#: every valid ``:MM:SS`` tail of a datetime, so the cached path checks minutes and seconds in one lookup
MINUTES_SECONDS = frozenset(f":{m:02d}:{s:02d}" for m in range(60) for s in range(60))
PARDOT_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?: [0-9]{2}:[0-9]{2}:[0-9]{2})?")
#: a UTC offset beyond these is no offset any zone has: the inference failed
MAX_OFFSET = dt.timedelta(hours=14)
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[ T].*)?$")


class CellError(ValueError):
    """A cell that does not fit its column's type."""


class OutOfRange(CellError):
    """A local datetime whose UTC instant falls outside years 1 to 9999 (a sentinel date such as 9999-12-31)."""


def _rfc3339(utc: dt.datetime) -> str:
    """A UTC instant as RFC 3339, its year on four digits (``strftime`` may not pad years before 1000)."""
    return f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}+00:00"


class LocalDateTimeConverter:
    """``'2024-03-10 01:59:59'`` in ``zone`` -> ``'2024-03-10T06:59:59+00:00'``."""

    def __init__(self, zone: dt.tzinfo) -> None:
        """Convert local times of ``zone``.

        Args:
            zone: the zone Pardot wrote the times in.
        """
        self.zone = zone
        self._hours: dict[str, str | None] = {}
        hour_of, valid, slow = self._hours.get, MINUTES_SECONDS, self._slow

        def convert(s: str) -> str:
            prefix = hour_of(s[:13])
            if prefix and len(s) == 19:
                tail = s[13:]
                if tail in valid:  # minutes and seconds checked in one lookup
                    return prefix + tail + "+00:00"
            return slow(s)

        #: the conversion as a plain function: what the compiled row typer calls
        self.convert = convert

    def __call__(self, s: str) -> str:
        """Convert one cell; raises :class:`CellError` when it is not a Pardot datetime."""
        return self.convert(s)

    def _slow(self, s: str) -> str:
        if PARDOT_DATETIME.fullmatch(s) is None:
            raise CellError(f"not a Pardot datetime (YYYY-MM-DD HH:MM:SS): {s[:40]!r}")
        fmt = "%Y-%m-%d" if len(s) == 10 else "%Y-%m-%d %H:%M:%S"
        try:
            local = dt.datetime.strptime(s, fmt).replace(tzinfo=self.zone)
        except ValueError:
            raise CellError(f"not a valid date and time: {s!r}") from None
        try:
            utc = local.astimezone(UTC)
        except OverflowError:
            raise OutOfRange(f"{s!r} in {self.zone} falls outside years 1 to 9999 in UTC") from None
        text = _rfc3339(utc)
        if len(s) == 19 and len(self._hours) < 200_000:
            off = local.utcoffset()
            whole = off is not None and off.total_seconds() % 3600 == 0
            self._hours[s[:13]] = text[:13] if whole else None
        return text


#: JSON writers (orjson) take integers of at most 64 bits
INT_RANGE = (-(1 << 63), (1 << 64) - 1)
#: how Pardot writes an integer: an optional minus and ASCII digits
INTEGER = re.compile(r"-?[0-9]+")


def to_int(s: str) -> int:
    """An integer cell as Pardot writes it (an optional ``-`` and ASCII digits) that fits 64 bits.

    Raises:
        CellError: anything else (``1_000``, ``1e3``, ``5.0``, ``+5``, spaces, other digits).
    """
    if INTEGER.fullmatch(s) is None:
        raise CellError(f"not an integer: {s[:40]!r}")
    value = int(s)
    if not INT_RANGE[0] <= value <= INT_RANGE[1]:
        raise CellError(f"an integer past 64 bits: {s[:40]!r}")
    return value


def to_float(s: str) -> float:
    """A number cell (thousands separators dropped); raises :class:`CellError` otherwise."""
    try:
        return float(s.replace(",", "")) if "," in s else float(s)
    except ValueError:
        raise CellError(f"not a number: {s[:40]!r}") from None


def to_bool(s: str) -> bool:
    """``true``/``false``/``1``/``0`` in any case; raises :class:`CellError` otherwise."""
    low = s.lower()
    if low in TRUE:
        return True
    if low in FALSE:
        return False
    raise CellError(f"not a boolean (true/false/1/0): {s[:40]!r}")


def nullable(schema: dict[str, t.Any]) -> bool:
    """True when the field's schema allows null (a field not in the schema does)."""
    types = schema.get("type", ["string", "null"])
    return "null" in ([types] if isinstance(types, str) else types)


def to_date(s: str) -> str:
    """A custom Date field's cell as an ISO date: ``YYYY-MM-DD`` (a time part is dropped)."""
    if _ISO_DATE.match(s):
        return s[:10]
    raise CellError(f"not a date (YYYY-MM-DD): {s!r}")


def caster_for(schema: dict[str, t.Any], datetime_conv: t.Callable[[str], str]) -> t.Callable[[str], t.Any] | None:
    """The function typing one column, or None for strings (kept as they are)."""
    types = schema.get("type", "string")
    types = [types] if isinstance(types, str) else list(types)
    if "integer" in types:
        return to_int
    if "number" in types:
        return to_float
    if "boolean" in types:
        return to_bool
    if schema.get("format") == "date-time":
        return datetime_conv
    if schema.get("format") == "date":
        return to_date
    return None


def _empty() -> t.NoReturn:
    raise CellError("empty")


def _cell_source(k: int, cast: t.Callable[[str], t.Any] | None, *, required: bool, is_dt: bool) -> str:
    """The compiled expression typing cell ``k``; any failure falls back to the general typer."""
    cell = f"c[{k}]"
    if cast is None:
        return f"({cell} or _empty())" if required else f"({cell} or None)"
    if cast is to_bool:  # other spellings fall back to general; a never-null empty boolean is false
        return f"(_bools[{cell}] if {cell} else {'False' if required else 'None'})"
    # ASCII digits under 19 characters are an integer that fits 64 bits; anything else goes through to_int,
    # which refuses what int() would take and Pardot never writes ("1_000", " 5", "+5", other scripts' digits)
    fn = "_int" if cast is to_int else "_dt" if is_dt else f"_casts[{k}]"
    if cast is to_int:
        plain = f"{cell}.isdigit() and {cell}.isascii() and len({cell}) < 19"
        value = f"(_int({cell}) if {plain} else _casts[{k}]({cell}))"
        return value if required else f"({value} if {cell} else None)"
    return f"{fn}({cell})" if required else f"({fn}({cell}) if {cell} else None)"


def row_typer(
    header: t.Sequence[str | None],
    properties: dict[str, dict[str, t.Any]],
    datetime_conv: t.Callable[[str], str],
    out_of_range: t.Callable[[str, str], None] | None = None,
    constants: t.Mapping[str, t.Any] | None = None,
) -> t.Callable[[list[str]], dict[str, t.Any]]:
    """Build ``type_row(cells) -> record`` for a result file's header.

    ``header`` names each column's field; a column named None is skipped. Empty cells
    become None, except in a field whose schema has no null: there an empty cell is a
    :class:`CellError` (an empty never-null boolean is false, as Pardot writes false as
    empty in some renderings). Raises :class:`CellError` naming the column on a bad cell.

    The function is compiled for the header: one dict display with a conditional per column,
    which is several times faster than a loop over the columns. Column names enter the
    generated source only as ``repr`` string literals. On any failure the general version
    re-types the row to name the column at fault. ``constants`` (business_unit_key's column) come
    first in every record, bound as the function's locals: per row, one more entry of the dict display.
    """
    fixed = dict(constants or {})
    general = _general_row_typer(header, properties, datetime_conv, out_of_range, fixed)
    casts = [caster_for(properties.get(name, {}), datetime_conv) if name else None for name in header]
    items = _record_items(header, properties, casts, datetime_conv, fixed)
    bound = "".join(f", _k{i}=_k{i}" for i in range(len(fixed)))  # locals of the function: no lookup per row
    source = (
        "def type_row(c, _int=int, _dt=_dt, _bools=_bools, _casts=_casts, _general=_general, _width=_width, "
        f"_empty=_empty{bound}):\n"
        "    if len(c) != _width:\n"
        "        return _general(c)\n"
        "    try:\n"
        f"        return {{{', '.join(items)}}}\n"
        "    except Exception:\n"
        "        return _general(c)\n"
    )
    scope: dict[str, t.Any] = {
        "_dt": getattr(datetime_conv, "convert", datetime_conv),
        "_bools": BOOLS,
        "_casts": casts,
        "_general": general,
        "_width": len(header),
        "_empty": _empty,
        **{f"_k{i}": value for i, value in enumerate(fixed.values())},
    }
    exec(compile(source, "<row_typer>", "exec"), scope)  # noqa: S102 - names enter as repr() literals
    return t.cast("t.Callable[[list[str]], dict[str, t.Any]]", scope["type_row"])


def _record_items(
    header: t.Sequence[str | None],
    properties: dict[str, dict[str, t.Any]],
    casts: list[t.Callable[[str], t.Any] | None],
    datetime_conv: t.Callable[[str], str],
    fixed: dict[str, t.Any],
) -> list[str]:
    """The entries of the record's dict display: the constants' (``_k0``...), then one per named column."""
    items = [f"{name!r}: _k{i}" for i, name in enumerate(fixed)]
    for k, name in enumerate(header):
        if name is None:
            continue
        required = not nullable(properties.get(name, {}))
        cast = casts[k]
        items.append(f"{name!r}: {_cell_source(k, cast, required=required, is_dt=cast is datetime_conv)}")
    return items


def _general_row_typer(
    header: t.Sequence[str | None],
    properties: dict[str, dict[str, t.Any]],
    datetime_conv: t.Callable[[str], str],
    out_of_range: t.Callable[[str, str], None] | None = None,
    constants: t.Mapping[str, t.Any] | None = None,
) -> t.Callable[[list[str]], dict[str, t.Any]]:
    fixed = dict(constants or {})
    columns = [
        (k, name, caster_for(properties.get(name, {}), datetime_conv), not nullable(properties.get(name, {})))
        for k, name in enumerate(header)
        if name is not None
    ]
    width = len(header)

    def type_row(cells: list[str]) -> dict[str, t.Any]:
        if len(cells) != width:
            raise CellError(f"{len(cells)} columns where the header has {width}")
        rec: dict[str, t.Any] = dict(fixed)
        for k, name, cast, required in columns:
            v = cells[k]
            if not v:
                if required and cast is not to_bool:
                    raise CellError(f"column {name!r} is empty, but the field is never null")
                rec[name] = False if required else None
            elif cast is None:
                rec[name] = v
            else:
                try:
                    rec[name] = cast(v)
                except OutOfRange as exc:
                    if required or out_of_range is None:
                        raise CellError(f"column {name!r}: {exc}") from None
                    out_of_range(name, v)  # a sentinel date: null, said once per stream and column
                    rec[name] = None
                except CellError as exc:
                    raise CellError(f"column {name!r}: {exc}") from None
        return rec

    return type_row


def implied_offset(created_at: t.Any, requested_at: float) -> tuple[dt.timedelta, bool] | None:
    """The UTC offset an export's ``createdAt`` implies against our clock at its create, and whether it is exact.

    ``createdAt`` is usually local time without an offset: the offset is its distance from our
    clock when the export was requested (network delay and clock skew included: not exact).
    When it carries an offset, that offset is the answer (exact). Any other form, or an offset
    no zone has, gives None.
    """
    if not isinstance(created_at, str):
        return None
    text = created_at.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        local = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if local.tzinfo is not None:
        offset, exact = local.utcoffset(), True
    else:
        utc_naive = dt.datetime.fromtimestamp(requested_at, UTC).replace(tzinfo=None)
        offset, exact = local - utc_naive, False
    if offset is None or abs(offset) > MAX_OFFSET + dt.timedelta(minutes=30):
        return None
    return offset, exact


def infer_offset(created_at: t.Any, requested_at: float) -> dt.timedelta | None:
    """The API user's UTC offset, from an export's ``createdAt`` and our clock; None if unknown.

    The distance :func:`implied_offset` gives is rounded to 15 minutes (every zone's offset is a
    multiple of 15 minutes), which absorbs network delay and clock skew.
    """
    found = implied_offset(created_at, requested_at)
    if found is None:
        return None
    offset, exact = found
    if not exact:
        offset = dt.timedelta(minutes=round(offset.total_seconds() / 60 / 15) * 15)
    return offset if abs(offset) <= MAX_OFFSET else None
