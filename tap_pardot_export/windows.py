"""Tiling a time range into export windows.

The API's bounds are exclusive (``after < t < before``). Window ``[start, end)`` is asked for
as ``after = start - 1s`` and ``before = end``: a record stamped exactly on ``start`` (the
configured start date, a window edge, or the last run's bookmark) is inside, and the next
window starts at ``end``, so nothing falls between two windows. A record stamped within the
one-second overlap may arrive twice; Singer targets deduplicate on the primary key.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

UTC = dt.timezone.utc
OVERLAP = dt.timedelta(seconds=1)
#: the API refuses spans over one year; the overlap second counts too
MAX_WINDOW = dt.timedelta(days=365) - OVERLAP


@dataclass(frozen=True)
class Window:
    """A half-open window ``[start, end)`` in UTC."""

    start: dt.datetime
    end: dt.datetime

    @property
    def after(self) -> dt.datetime:
        return self.start - OVERLAP

    @property
    def before(self) -> dt.datetime:
        return self.end


def tile(start: dt.datetime, end: dt.datetime, size: dt.timedelta) -> list[Window]:
    """Windows of at most ``size`` (and at most a year) covering ``[start, end)``, ascending."""
    if start.tzinfo is None or end.tzinfo is None:
        msg = "window bounds must be timezone-aware"
        raise ValueError(msg)
    size = min(size, MAX_WINDOW)
    if size <= dt.timedelta(0):
        msg = "window size must be positive"
        raise ValueError(msg)
    out: list[Window] = []
    cur = start
    while cur < end:
        nxt = min(cur + size, end)
        out.append(Window(cur, nxt))
        cur = nxt
    return out


def api_time(value: dt.datetime) -> str:
    """A bound as the API gets it: ISO 8601 in UTC with an explicit offset."""
    return value.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def parse_setting_datetime(value: str) -> dt.datetime:
    """A date or datetime setting; naive values are UTC. Raises ValueError."""
    v = value.strip()
    if v.endswith("Z"):
        v = v[:-1] + "+00:00"
    d = dt.datetime.fromisoformat(v)
    return d if d.tzinfo else d.replace(tzinfo=UTC)
