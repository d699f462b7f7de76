"""The export session of one run: what every stream's sync needs, built once by the tap.

An :class:`ExportSession` holds the run's Pardot client and export runner, the time-zone
policy for the CSVs' datetimes, the run's end, the queue of the run's exports, the stdout
writer and the run's totals. The tap builds it at the first export (discovery builds none)
and hands it to each stream: streams never reach into the tap, nor into each other.
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
import time
import typing as t

from tap_pardot_export.engine.windows import api_time
from tap_pardot_export.pardot.cancel import CancelOutcome, cancel_now
from tap_pardot_export.redact import host_of

if t.TYPE_CHECKING:
    import datetime as dt
    import logging
    from collections.abc import Callable, Iterable

    from tap_pardot_export.engine.plan import ExportPlan, SyncedStream, WindowJob
    from tap_pardot_export.engine.record import ExportRecord
    from tap_pardot_export.engine.zones import ZonePolicy
    from tap_pardot_export.pardot.client import PardotClient
    from tap_pardot_export.pardot.exports import ExportInfo, ExportSpec, InFlight
    from tap_pardot_export.pardot.quota import Allowance
    from tap_pardot_export.pardot.runner import ExportRunner


class LineWriter(t.Protocol):
    """Writes whole lines to stdout (see :class:`~tap_pardot_export.signals.StdoutLines`)."""

    @property
    def closed(self) -> bool:
        """True once the target stopped reading."""

    def write(self, data: bytes) -> None:
        """Write ``data`` (whole lines)."""

    def flush(self) -> None:
        """Flush stdout."""


@dataclasses.dataclass
class AheadExport:
    """An export created ahead for a stream that has not started yet (kept in that stream's state too)."""

    stream: SyncedStream
    info: ExportInfo
    spec: ExportSpec  # as created: the account's refusals healed (its fields are what the files hold)


class ExportQueue:
    """The run's exports in Pardot's queue: how many may be created ahead, and those created for a later stream."""

    def __init__(
        self, in_flight: InFlight, max_ahead: int, next_stream: Callable[[str], SyncedStream | None] | None = None
    ) -> None:
        """``next_stream(name)``: the selected export stream synced after ``name`` (None: it is the last)."""
        self.in_flight = in_flight
        self.max_ahead = max_ahead
        self.next_stream = next_stream
        #: exports created ahead for a stream that has not started yet, by their query
        self.ahead: dict[str, AheadExport] = {}

    def room(self) -> bool:
        """True when another export of ours may be created now (``max_ahead`` beyond the first)."""
        return len(self.in_flight) < 1 + self.max_ahead

    def after(self, name: str) -> SyncedStream | None:
        """The selected export stream synced after ``name``, if any."""
        return self.next_stream(name) if self.next_stream is not None else None


@dataclasses.dataclass
class ExportSession:
    """Everything a stream needs to run its exports, for one run."""

    client: PardotClient
    runner: ExportRunner
    zones: ZonePolicy
    run_end: dt.datetime
    logger: logging.Logger
    queue: ExportQueue
    out: LineWriter
    #: the folder of this run's downloaded result files, removed at exit (even a forced one)
    spool_dir: str | None = None
    #: windows finished in this run, all streams together (the call budget's progress rule)
    windows_done: int = 0
    announced: bool = False
    started: float = dataclasses.field(default_factory=time.monotonic)
    reused: int = 0
    #: the business unit's export record on this machine (None: the run keeps none)
    record: ExportRecord | None = None
    #: the ids of the exports this run's windows use (two windows never share one)
    claimed: set[int] = dataclasses.field(default_factory=set)
    #: the business unit's daily allowance as read at the start (None: the account did not say it)
    allowance: Allowance | None = None
    #: the run's calls spent when the allowance was read (that read included)
    allowance_at: int = 0

    # -- the export record -----------------------------------------------------------------

    def recorded(self, plan: ExportPlan, scope: str | None) -> list[dict[str, t.Any]]:
        """The export record's exports of ``plan``'s queries that no window of the run uses, as state entries."""
        return self.record.candidates(plan, scope, self.claimed) if self.record is not None else []

    def claim(self, export_id: int) -> bool:
        """Take ``export_id`` for one window; False when another window of the run has it."""
        if export_id in self.claimed:
            return False
        self.claimed.add(export_id)
        return True

    def remember(self, stream: str, job: WindowJob, info: ExportInfo, scope: str | None = None) -> None:
        """Record the export a window uses (created or reused) in the export record."""
        if self.record is not None:
            self.record.add(stream, job, info, scope)

    def forget(self, ids: Iterable[int]) -> None:
        """Drop exports that cannot be reused (canceled, spoiled) from the export record."""
        if self.record is not None:
            self.record.drop(ids)

    def kept(self, export_id: int) -> bool:
        """True when the export record holds ``export_id``: a rerun reuses it, so a stop does not cancel it."""
        return self.record is not None and self.record.holds(export_id)

    def calls_left(self) -> int | None:
        """Calls left under the cap (even inside a window finished past it); None without a cap.

        The cap is ``max_api_calls``, or what the daily allowance leaves above its reserve when lower.
        """
        return self.client.budget.left()

    def announce(self) -> None:
        """Log the target once, at the first export of the run."""
        if self.announced:
            return
        self.announced = True
        self.logger.info(
            "Syncing from %s (API version %s, business unit %s), up to %s",
            host_of(self.client.api_url),
            self.client.api_version,
            self.client.business_unit_id,
            api_time(self.run_end),
        )

    def cleanup(self) -> None:
        """Remove the run's result files folder (its files may still be open: unlinking is fine)."""
        if self.spool_dir:
            shutil.rmtree(self.spool_dir, ignore_errors=True)

    def cancel_in_flight(self, timeout: float) -> str:
        """Cancel every export of ours in flight that the export record does not hold; a line for the log.

        Called on the shutdown watchdog thread while the main thread may hold the client's
        slots, token lock or the record's lock: nothing here waits on any of them. The cancels
        run in parallel, so all return within ``timeout``. An export already Complete cannot be
        canceled (nor needs to be); one in the record is kept for the rerun to reuse.
        """
        self.runner.stop()
        todo, complete = self.queue.in_flight.snapshot()
        if not todo and not complete:
            return "no export in flight"
        kept = [i for i in todo + complete if self.kept(i)]
        todo, complete = [i for i in todo if i not in kept], [i for i in complete if i not in kept]
        notes = [f"export {export_id} is Complete (nothing to cancel)" for export_id in complete]
        if kept:
            where = self.record.path if self.record is not None else "the export record"
            notes.append(f"kept export(s) {', '.join(map(str, kept))} for the rerun to reuse (in {where})")
        outcome: dict[int, CancelOutcome] = {}

        def cancel(export_id: int) -> None:
            outcome[export_id] = cancel_now(self.client, export_id, timeout=timeout)

        workers = [threading.Thread(target=cancel, args=(i,), daemon=True) for i in todo]
        for w in workers:
            w.start()
        deadline = time.monotonic() + timeout + 0.5
        for w in workers:
            w.join(max(0.0, deadline - time.monotonic()))
        for export_id in todo:
            done = outcome.get(export_id) or CancelOutcome(False, f"no answer within {timeout:g}s", answered=False)
            if done.canceled:
                notes.append(f"canceling export {export_id}, which this run cannot finish: canceled")
            elif not done.answered:
                notes.append(f"canceling export {export_id}: {done.says} (Pardot ends it on its own)")
            else:
                notes.append(f"canceling export {export_id}: {done.says}")
        return "; ".join(notes)

    def allowance_line(self) -> str | None:
        """The daily allowance at the run's end (None: it was not read).

        The allowance is not read again: its end figure is the start figure plus this run's calls.
        """
        if self.allowance is None:
            return None
        spent = self.client.budget.spent - self.allowance_at
        return (
            f"API calls today at the end of the run: {self.allowance.figures(spent)} (the start figure plus "
            f"this run's {spent:,} call(s) since, not read again: other integrations' calls meanwhile are not in it)"
        )

    def stop_line(self) -> str | None:
        """The run's last line when the call budget stopped it before the end of its range (None: it did not)."""
        budget = self.client.budget
        return budget.stop_line() if budget.stopped else None

    def totals(self) -> str:
        """The run's totals, for its last log line."""
        budget = self.client.budget
        return (
            f"run summary: {self.runner.created} export(s) created, {self.reused} reused, {budget.spent} API "
            f"call(s) {budget.by_kind()}, {self.runner.waited:.1f}s waiting on exports, "
            f"{time.monotonic() - self.started:.1f}s in all"
        )
