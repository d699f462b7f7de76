"""The export session of one run: what every stream needs, built once by the tap.

An :class:`ExportSession` holds the run's HTTP client and export runner, the time-zone policy
for the CSVs' datetimes, the run's end, the stdout writer and the tap's state writer. The tap
creates it and hands it to each stream: streams never reach into the tap.
"""

from __future__ import annotations

import datetime as dt
import shutil
import threading
import time
import typing as t
import urllib.parse
from dataclasses import dataclass, field

from tap_pardot_export.convert import LocalDateTimeConverter, infer_offset
from tap_pardot_export.signals import StdoutLines
from tap_pardot_export.windows import api_time

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Mapping

    from singer_sdk.helpers.types import TapState

    from tap_pardot_export.client import PardotClient
    from tap_pardot_export.exports import ExportInfo, ExportRunner, ExportSpec

UTC = dt.timezone.utc


class StateWriterLike(t.Protocol):
    """The tap's state writer (``Tap.state_writer``)."""

    def write_state(self, state: TapState) -> None:
        """Write a STATE message when the state changed."""


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


@dataclass
class ExportSession:
    """Everything a stream needs to run its exports, for one run."""

    client: PardotClient
    runner: ExportRunner
    zones: ZonePolicy
    run_end: dt.datetime
    state_writer: StateWriterLike
    logger: logging.Logger
    #: the folder of this run's downloaded result files, removed at exit (even a forced one)
    spool_dir: str | None = None
    custom_fields: Mapping[str, list[str]] = field(default_factory=dict)
    out: StdoutLines = field(default_factory=StdoutLines)
    #: windows finished in this run, all streams together (the call budget's progress rule)
    windows_done: int = 0
    announced: bool = False
    #: our exports in flight (created or reused, not yet read to the end): id -> label
    in_flight: dict[int, str] = field(default_factory=dict)
    #: how many of our exports may be created ahead of the one being waited on or read
    max_ahead: int = 1
    #: exports created ahead for a stream that has not started yet, by their query
    ahead: dict[str, AheadExport] = field(default_factory=dict)
    #: the selected stream synced after the named one (None: it is the last)
    next_stream: t.Callable[[str], t.Any] | None = None
    started: float = field(default_factory=time.monotonic)
    reused: int = 0

    def __post_init__(self) -> None:
        """Keep the call budget: windows started run exempt from it (``sync.budget_exempt``)."""
        self.max_api_calls: int | None = self.client.max_api_calls

    def calls_left(self) -> int | None:
        """Calls left under ``max_api_calls`` (even inside an exempt window); None without a budget."""
        return None if self.max_api_calls is None else self.max_api_calls - self.client.api_calls

    def room(self) -> bool:
        """True when another export of ours may be created now (``max_ahead`` beyond the first)."""
        return len(self.in_flight) < 1 + self.max_ahead

    def announce(self) -> None:
        """Log the target once, at the first export of the run."""
        if self.announced:
            return
        self.announced = True
        self.logger.info(
            "Syncing from %s (API version %s, business unit %s), up to %s",
            safe_host(self.client.api_url),
            self.client.api_version,
            self.client.business_unit_id,
            api_time(self.run_end),
        )

    def cleanup(self) -> None:
        """Remove the run's result files folder (its files may still be open: unlinking is fine)."""
        if self.spool_dir:
            shutil.rmtree(self.spool_dir, ignore_errors=True)

    def cancel_in_flight(self, timeout: float) -> str:
        """Cancel every export of ours in flight, without any lock or slot; a line for the log.

        Called on the shutdown watchdog thread while the main thread may hold the client's
        slots or token lock. The cancels run in parallel, so all return within ``timeout``.
        An export already Complete cannot be canceled (nor needs to be).
        """
        runner = self.runner
        runner.stop()
        ids = list(dict.fromkeys([*self.in_flight, *([runner.active] if runner.active is not None else [])]))
        if not ids:
            return "no export in flight"
        notes: list[str] = []
        todo = []
        for export_id in ids:
            if runner.active == export_id and runner.active_complete:
                notes.append(f"export {export_id} is Complete (nothing to cancel)")
            else:
                todo.append(export_id)
        outcome: dict[int, bool] = {}

        def cancel(export_id: int) -> None:
            outcome[export_id] = self.client.cancel_now(export_id, timeout=timeout)

        workers = [threading.Thread(target=cancel, args=(i,), daemon=True) for i in todo]
        for w in workers:
            w.start()
        deadline = time.monotonic() + timeout + 0.5
        for w in workers:
            w.join(max(0.0, deadline - time.monotonic()))
        for export_id in todo:
            if outcome.get(export_id):
                notes.append(f"canceling export {export_id}, which this run cannot finish: canceled")
            else:
                notes.append(f"canceling export {export_id}: no answer within {timeout:g}s (Pardot ends it on its own)")
        return "; ".join(notes)

    def totals(self) -> str:
        """The run's totals, for its last log line."""
        client = self.client
        return (
            f"run summary: {self.runner.created} export(s) created, {self.reused} reused, {client.api_calls} API "
            f"call(s) {dict(client.calls)}, {self.runner.waited:.1f}s waiting on exports, "
            f"{time.monotonic() - self.started:.1f}s in all"
        )


@dataclass
class AheadExport:
    """An export created ahead for a stream that has not started yet (kept in that stream's state too)."""

    stream: t.Any
    info: ExportInfo
    spec: ExportSpec  # as created: the account's refusals healed (its fields are what the files hold)


class SessionProvider:
    """Opens the run's :class:`ExportSession` at its first export: discovery needs none.

    Before it opens, every stream's preflight check runs (e.g. its export's field count), so
    that a run that cannot finish fails before any API call.
    """

    def __init__(self, open_session: t.Callable[[], ExportSession]) -> None:
        """``open_session`` builds the session (the tap's client, runner and policies)."""
        self._open = open_session
        self._session: ExportSession | None = None
        self.preflights: list[t.Callable[[], None]] = []

    def open(self) -> ExportSession:
        """The run's session, built at the first call, after every preflight check passed."""
        if self._session is None:
            for check in self.preflights:
                check()
            self._session = self._open()
        return self._session

    @property
    def current(self) -> ExportSession | None:
        """The session if one was opened."""
        return self._session


def safe_host(url: str) -> str:
    """``scheme://host[:port]`` of a URL, without any ``user:password@``."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}"
