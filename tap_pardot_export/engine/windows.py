"""Tiling a time range into export windows.

The API's bounds are exclusive (``after < t < before``). Window ``[start, end)`` is asked for
as ``after = start - 1s`` and ``before = end``: a record stamped exactly on ``start`` (the
configured start date, a window edge, or the last run's bookmark) is inside, and the next
window starts at ``end``, so nothing falls between two windows. A record stamped within the
one-second overlap may arrive twice; Singer targets deduplicate on the primary key.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

UTC = dt.timezone.utc
OVERLAP = dt.timedelta(seconds=1)
#: no start_date or bookmark is earlier (a year-1 date would overflow a window's start less one second)
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=UTC)
#: the API refuses spans over one year; the overlap second counts too
MAX_WINDOW = dt.timedelta(days=365) - OVERLAP


@dataclass(frozen=True)
class Window:
    """A half-open window ``[start, end)`` in UTC."""

    start: dt.datetime
    end: dt.datetime

    @property
    def after(self) -> dt.datetime:
        """The export's exclusive lower bound: one second before the window's start."""
        return self.start - OVERLAP

    @property
    def before(self) -> dt.datetime:
        """The export's exclusive upper bound: the window's end."""
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


#: the date and time forms settings and state take: RFC 3339 (``T`` or a space, an offset or ``Z``),
#: a date-time without an offset (UTC), or a date (midnight UTC)
SETTING_DATETIME = re.compile(
    r"(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})"
    r"(?:[Tt ](?P<h>\d{2}):(?P<mi>\d{2}):(?P<s>\d{2})(?:\.(?P<f>\d{1,9}))?"
    r"(?P<offset>[Zz]|(?P<sign>[+-])(?P<oh>\d{2}):(?P<om>\d{2}))?)?"
)
DATETIME_FORMS = (
    "a date (2024-01-01, midnight UTC), an RFC 3339 date-time (2024-01-01T00:00:00Z, 2024-01-01 00:00:00+02:00) "
    "or a date-time without an offset (2024-01-01T00:00:00, read as UTC)"
)


def parse_setting_datetime(value: str) -> dt.datetime:
    """A date or datetime setting or bookmark in one of :data:`DATETIME_FORMS`; naive values are UTC.

    Raises:
        ValueError: any other form (a date with an offset but no time, another separator, a day
            that does not exist, ...).
    """
    m = SETTING_DATETIME.fullmatch(value.strip())
    if m is None:
        msg = f"{value[:40]!r} is not {DATETIME_FORMS}"
        raise ValueError(msg)
    zone = UTC
    if m.group("sign"):
        minutes = int(m.group("oh")) * 60 + int(m.group("om"))
        zone = dt.timezone(dt.timedelta(minutes=minutes if m.group("sign") == "+" else -minutes))
    micro = int((m.group("f") or "0")[:6].ljust(6, "0"))
    y, mo, d, h, mi, sec = (int(m.group(k) or 0) for k in ("y", "mo", "d", "h", "mi", "s"))
    return dt.datetime(y, mo, d, h, mi, sec, micro, tzinfo=zone)  # ValueError for a day that does not exist


#: the narrowest window the data can ask for (a denser hour is one large export)
MIN_ADAPTIVE_WINDOW = dt.timedelta(hours=1)
#: a window shorter than this teaches the rate only in proportion to its length
LEARN_SPAN = dt.timedelta(days=1)
DAY = dt.timedelta(days=1)


def learn_rate(prior: float | None, rows: int, span: dt.timedelta) -> float:
    """Rows per day after a window of ``span`` held ``rows``, blended with ``prior`` for short windows.

    A window of a day or more sets the rate alone (the latest data decides); a shorter one
    (a run's last few minutes) moves it only in proportion to its length, so one busy minute
    does not shrink the next run's windows to an hour.
    """
    days = max(span / DAY, 1e-6)
    weight = min(1.0, span / LEARN_SPAN)
    if prior is None:
        return rows / max(days, LEARN_SPAN / DAY)
    return weight * (rows / days) + (1 - weight) * prior


class Planner:
    """The windows of one stream's range, one at a time (lazily), each sized when it is asked for.

    With a fixed ``size`` (``window_days``) every window has that length. Without one, a
    window spans ``rows_per_export / rows_per_day`` days, between an hour and
    :data:`MAX_WINDOW`, where ``rows_per_day`` is learned from the windows done
    (:meth:`learn`) and starts from the last run's. Windows of exports already in flight
    (``adopt``, from state) are taken as they are when the range reaches their start, so a
    rerun asks for the very same queries and reuses those exports.
    """

    def __init__(
        self,
        start: dt.datetime,
        end: dt.datetime,
        *,
        size: dt.timedelta | None,
        rows_per_export: int,
        rows_per_day: float | None = None,
        adopt: list[Window] | None = None,
    ) -> None:
        """Plan ``[start, end)``; see the class docstring for the other arguments."""
        if start.tzinfo is None or end.tzinfo is None:
            msg = "window bounds must be timezone-aware"
            raise ValueError(msg)
        if size is not None and size <= dt.timedelta(0):
            msg = "window size must be positive"
            raise ValueError(msg)
        self.cursor = start
        self.end = end
        self.size = size
        self.rows_per_export = max(1, rows_per_export)
        self.rows_per_day = rows_per_day if rows_per_day is not None and rows_per_day >= 0 else None
        self.adopt = sorted(adopt or [], key=lambda w: w.start)

    def next_size(self) -> dt.timedelta:
        """The length the next window gets (before the range's end cuts it)."""
        if self.size is not None:
            return min(self.size, MAX_WINDOW)
        if not self.rows_per_day:
            return MAX_WINDOW
        size = DAY * (self.rows_per_export / self.rows_per_day)
        return max(MIN_ADAPTIVE_WINDOW, min(MAX_WINDOW, size))

    def next(self) -> Window | None:
        """The next window, or None once the range is covered."""
        if self.cursor >= self.end:
            return None
        while self.adopt and self.adopt[0].start < self.cursor:
            self.adopt.pop(0)
        if self.adopt and self.adopt[0].start == self.cursor:
            w = self.adopt.pop(0)
            if self.cursor < w.end <= self.end and w.end - w.start <= MAX_WINDOW:
                self.cursor = w.end
                return w
        w = Window(self.cursor, min(self.cursor + self.next_size(), self.end))
        self.cursor = w.end
        return w

    def learn(self, w: Window, rows: int) -> None:
        """Take in how many rows window ``w`` held."""
        self.rows_per_day = learn_rate(self.rows_per_day, rows, w.end - w.start)
