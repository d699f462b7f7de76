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

from tap_pardot_export.engine.convert import LocalDateTimeConverter, infer_offset

if t.TYPE_CHECKING:
    import logging

    from tap_pardot_export.pardot.exports import ExportInfo

UTC = dt.timezone.utc


class ZonePolicy:
    """How the CSVs' local datetimes become UTC: the configured zone, else an inferred offset."""

    def __init__(self, zone: dt.tzinfo | None, logger: logging.Logger) -> None:
        """``zone`` from the timezone setting, or None to infer it per export."""
        self.zone = zone
        self.logger = logger
        self._warned = False
        self._lock = threading.Lock()

    def converter(self, info: ExportInfo, last: LocalDateTimeConverter | None) -> LocalDateTimeConverter:
        """The datetime converter for an export's files (``last`` is reused when it still fits)."""
        if self.zone is not None:
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
