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
TRUE = frozenset({"true", "1", "yes", "t", "y"})
FALSE = frozenset({"false", "0", "no", "f", "n"})
BOOLS = {"true": True, "false": False, "1": True, "0": False}
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[ T].*)?$")


class CellError(ValueError):
    """A cell that does not fit its column's type."""


class LocalDateTimeConverter:
    """``'2024-03-10 01:59:59'`` in ``zone`` -> ``'2024-03-10T06:59:59+00:00'``."""

    def __init__(self, zone: dt.tzinfo) -> None:
        self.zone = zone
        self._hours: dict[str, str | None] = {}

    def __call__(self, s: str) -> str:
        hour = s[:13]
        prefix = self._hours.get(hour) or ""
        if prefix and len(s) == 19 and s[13] == ":" and s[16] == ":":
            return prefix + s[13:] + "+00:00"
        return self._slow(s)

    def _slow(self, s: str) -> str:
        try:
            if len(s) == 10:
                local = dt.datetime.strptime(s, "%Y-%m-%d")
            else:
                local = dt.datetime.strptime(s, "%Y-%m-%d %H:%M:%S")
        except ValueError:
            raise CellError(f"not a Pardot datetime (YYYY-MM-DD HH:MM:SS): {s!r}") from None
        utc = local.replace(tzinfo=self.zone).astimezone(UTC)
        if len(s) == 19 and len(self._hours) < 200_000:
            off = local.replace(tzinfo=self.zone).utcoffset()
            whole = off is not None and off.total_seconds() % 3600 == 0
            self._hours[s[:13]] = utc.strftime("%Y-%m-%dT%H") if whole else None
        return utc.strftime("%Y-%m-%dT%H:%M:%S+00:00")


def to_int(s: str) -> int:
    try:
        return int(s)
    except ValueError:
        try:
            f = float(s)
        except ValueError:
            raise CellError(f"not an integer: {s!r}") from None
        if f.is_integer():
            return int(f)
        raise CellError(f"not an integer: {s!r}") from None


def to_float(s: str) -> float:
    try:
        return float(s.replace(",", "")) if "," in s else float(s)
    except ValueError:
        raise CellError(f"not a number: {s!r}") from None


def to_bool(s: str) -> bool:
    low = s.lower()
    if low in TRUE:
        return True
    if low in FALSE:
        return False
    raise CellError(f"not a boolean (true/false): {s!r}")


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


def row_typer(
    header: list[str], properties: dict[str, dict[str, t.Any]], datetime_conv: t.Callable[[str], str]
) -> t.Callable[[list[str]], dict[str, t.Any]]:
    """Build ``type_row(cells) -> record`` for a result file's header.

    Empty cells become None. Raises :class:`CellError` naming the column on a bad cell.

    The function is compiled for the header: one dict display with a conditional per column,
    which is several times faster than a loop over the columns. Column names enter the
    generated source only as ``repr`` string literals. On any failure the general version
    re-types the row to name the column at fault.
    """
    general = _general_row_typer(header, properties, datetime_conv)
    items = []
    for k, name in enumerate(header):
        cast = caster_for(properties.get(name, {}), datetime_conv)
        cell = f"c[{k}]"
        if cast is None:
            value = f"({cell} or None)"
        elif cast is to_int:
            value = f"(_int({cell}) if {cell} else None)"  # "5.0" and the like fall back to general
        elif cast is to_bool:
            value = f"(_bools[{cell}] if {cell} else None)"  # other spellings fall back to general
        elif cast is datetime_conv:
            value = f"(_dt({cell}) if {cell} else None)"
        else:
            value = f"(_casts[{k}]({cell}) if {cell} else None)"
        items.append(f"{name!r}: {value}")
    casts = [caster_for(properties.get(name, {}), datetime_conv) for name in header]
    source = (
        "def type_row(c, _int=int, _dt=_dt, _bools=_bools, _casts=_casts, _general=_general, _width=_width):\n"
        "    if len(c) != _width:\n"
        "        return _general(c)\n"
        "    try:\n"
        f"        return {{{', '.join(items)}}}\n"
        "    except Exception:\n"
        "        return _general(c)\n"
    )
    scope: dict[str, t.Any] = {
        "_dt": datetime_conv,
        "_bools": BOOLS,
        "_casts": casts,
        "_general": general,
        "_width": len(header),
    }
    exec(compile(source, "<row_typer>", "exec"), scope)  # noqa: S102 - names enter as repr() literals
    return scope["type_row"]


def _general_row_typer(
    header: list[str], properties: dict[str, dict[str, t.Any]], datetime_conv: t.Callable[[str], str]
) -> t.Callable[[list[str]], dict[str, t.Any]]:
    casts = [caster_for(properties.get(name, {}), datetime_conv) for name in header]
    plain = [k for k, c in enumerate(casts) if c is None]
    typed = [(k, header[k], c) for k, c in enumerate(casts) if c is not None]
    names = header

    def type_row(cells: list[str]) -> dict[str, t.Any]:
        rec: dict[str, t.Any] = dict(zip(names, cells, strict=False))
        for k in plain:
            if not cells[k]:
                rec[names[k]] = None
        for k, name, cast in typed:
            v = cells[k]
            if v:
                try:
                    rec[name] = cast(v)
                except CellError as exc:
                    raise CellError(f"column {name!r}: {exc}") from None
            else:
                rec[name] = None
        return rec

    return type_row


def infer_offset(created_at: str, requested_at: float) -> dt.timedelta:
    """The API user's UTC offset, from an export's local ``createdAt`` and our clock.

    Rounded to 15 minutes, which absorbs network delay and clock skew.
    """
    local = dt.datetime.strptime(created_at, "%Y-%m-%d %H:%M:%S")
    utc_naive = dt.datetime.fromtimestamp(requested_at, UTC).replace(tzinfo=None)
    minutes = (local - utc_naive).total_seconds() / 60
    quarter = round(minutes / 15) * 15
    return dt.timedelta(minutes=quarter)
