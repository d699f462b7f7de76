"""How the CSVs' local datetimes become UTC: in the configured zone, or with an offset inferred per export.

Pardot writes export datetimes in the API user's zone without an offset. With ``timezone``
set, each value is converted in that zone (daylight saving included). Without it (and
``infer_timezone`` on), the offset is inferred from each export's ``createdAt`` against our
clock at its create, and a warning says so once per run.
"""

from __future__ import annotations

import datetime as dt
import threading
import typing as t

from tap_pardot_export.engine.convert import LocalDateTimeConverter, implied_offset, infer_offset
from tap_pardot_export.errors import PardotConfigError

if t.TYPE_CHECKING:
    import logging

    from tap_pardot_export.pardot.exports import ExportInfo

UTC = dt.timezone.utc
#: zones' offsets differ by multiples of 15 minutes: a distance above this is another zone
TOLERANCE = dt.timedelta(minutes=7)


def utc_offset(offset: dt.timedelta) -> str:
    """``UTC+05:30`` for an offset."""
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


class ZonePolicy:
    """How the CSVs' local datetimes become UTC: the configured zone, else an inferred offset."""

    def __init__(self, zone: dt.tzinfo | None, logger: logging.Logger) -> None:
        """``zone`` from the timezone setting, or None to infer it per export."""
        self.zone = zone
        self.logger = logger
        self._warned = False
        self._lock = threading.Lock()

    def converter(self, info: ExportInfo, last: LocalDateTimeConverter | None) -> LocalDateTimeConverter:
        """The datetime converter for an export's files (``last`` is reused when it still fits).

        Raises:
            PardotConfigError: the configured zone is not the one Pardot writes this export's times in.
        """
        if self.zone is not None:
            self.check(info)
            return last if last is not None else LocalDateTimeConverter(self.zone)
        if info.created_at and info.requested_at:
            offset = infer_offset(info.created_at, info.requested_at)
            self.warn(offset)
            offset = dt.timedelta(0) if offset is None else offset  # unknown: read as UTC, as warned
            if last is None or last.zone.utcoffset(None) != offset:
                return LocalDateTimeConverter(dt.timezone(offset))
            return last
        if last is None:
            self.warn(None)
            return LocalDateTimeConverter(UTC)
        return last

    def check(self, info: ExportInfo) -> None:
        """Refuse to read an export whose ``createdAt`` shows Pardot writing times at another offset than ``timezone``.

        Zones differ by multiples of 15 minutes: more than 7 minutes between the offset the
        export's ``createdAt`` implies (against our clock at its create) and the configured
        zone's offset at that instant is another zone. One whose offset is the same at that
        instant (UTC for a London user in winter) cannot be told apart: ``--check`` remains the
        full check.
        """
        if self.zone is None or not info.created_at or not info.requested_at:
            return
        found = implied_offset(info.created_at, info.requested_at)
        if found is None:
            return
        seen, _ = found
        at = dt.datetime.fromtimestamp(info.requested_at, UTC)
        mine = self.zone.utcoffset(at.astimezone(self.zone).replace(tzinfo=None)) or dt.timedelta(0)
        if abs(seen - mine) <= TOLERANCE:
            return
        writes = infer_offset(info.created_at, info.requested_at) or seen
        msg = (
            f"timezone {self.zone} is {utc_offset(mine)} at export {info.id}'s creation, but Pardot wrote its "
            f"createdAt ({info.created_at}) at {utc_offset(writes)}: the API user's time zone is not "
            f"{self.zone}, and every time in the files would be read wrong. No bookmark moved past rows read in "
            "the wrong zone. Set timezone to the API user's IANA zone (Salesforce user settings > Time Zone); "
            "`--check` says which offset Pardot writes in."
        )
        raise PardotConfigError(msg)

    def warn(self, offset: dt.timedelta | None) -> None:
        """Say once per run that the zone is inferred (or unknown)."""
        with self._lock:
            if self._warned:
                return
            self._warned = True
        if offset is None:
            self.logger.warning(
                "timezone is not set and could not be inferred: CSV datetimes are read as UTC. Set timezone "
                "to the Pardot API user's time zone."
            )
            return
        self.logger.warning(
            "timezone is not set: inferred the API user's UTC offset as %+g h from the export's createdAt. "
            "Set timezone (an IANA name) so daylight-saving changes inside the range are handled.",
            offset.total_seconds() / 3600,
        )
