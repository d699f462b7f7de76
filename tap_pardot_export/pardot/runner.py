"""Running an export to completion: create, wait, read its result files; create it again when needed.

A ``Failed`` export is created again (twice at most: Pardot says to contact support when it
fails again), as is one ``Canceled`` by someone else or expired before its files were read.
Every export the runner creates is in the run's :class:`InFlight` record until its files are
read, so a signal cancels it, even before its first status read.
"""

from __future__ import annotations

import logging
import threading
import time
import typing as t

from tap_pardot_export.errors import CallBudgetSpent, DailyLimitReached, ExportError, PardotAPIError, PardotAuthError
from tap_pardot_export.pardot.exports import Bindings, ExportInfo, InFlight, is_true, result_refs, unwrap_export
from tap_pardot_export.pardot.fetch import ResultFetcher
from tap_pardot_export.pardot.healer import MAX_HEALS, CreateHealer
from tap_pardot_export.pardot.listing import QueueWatch
from tap_pardot_export.pardot.polling import ExportTimedOut, Poller

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from tap_pardot_export.pardot.client import PardotClient
    from tap_pardot_export.pardot.exports import ExportSpec
    from tap_pardot_export.pardot.polling import Polling
    from tap_pardot_export.pardot.results import ResultFile

LOGGER = logging.getLogger("tap-pardot-export")
#: a Failed export is created again this many times (Pardot: "if it fails again, contact support")
MAX_FAILED_RETRIES = 2
#: a Canceled or expired export is created again this many times
MAX_RECREATES = 3
#: errors a caller must see, never taken for "this export cannot be used"
MUST_PROPAGATE = (DailyLimitReached, CallBudgetSpent, PardotAuthError)
#: Pardot's code for a call the export's state forbids (its results expired)
EXPIRED_CODE = 178


class _Recreates:
    """How often one request's export was created again, and the error once it is too often."""

    def __init__(self, label: str, logger: logging.Logger) -> None:
        self.label, self.logger = label, logger
        self.failed = self.recreated = 0

    def after(self, info: ExportInfo, state: str, *, expired: bool) -> None:
        """An export ended ``Failed``, ``Canceled`` or expired: it is created again, or the run fails."""
        if state == "Failed":
            self.failed += 1
            if self.failed > MAX_FAILED_RETRIES:
                msg = (
                    f"{self.label}: export {info.id} Failed {self.failed} times in a row. Pardot says to contact "
                    "Salesforce support when an export fails again; give them this export id."
                )
                raise ExportError(msg)
            self.logger.warning(
                "%s: export %s Failed; creating it again (%d/%d)", self.label, info.id, self.failed, MAX_FAILED_RETRIES
            )
            return
        self.recreated += 1
        gone = f"{state}{' and expired' if expired else ''}"
        if self.recreated > MAX_RECREATES:
            msg = (
                f"{self.label}: export {info.id} was {gone} {self.recreated} times. Someone or something keeps "
                "canceling this account's exports."
            )
            raise ExportError(msg)
        self.logger.warning("%s: export %s is %s; creating it again", self.label, info.id, gone)

    def expired_while_read(self, info: ExportInfo, exc: PardotAPIError) -> None:
        """The export's results expired while its files were read: it is created again, or ``exc`` stands."""
        self.logger.warning(
            "%s: export %s expired while its files were read; creating it again (rows already emitted may repeat)",
            self.label,
            info.id,
        )
        self.recreated += 1
        if self.recreated > MAX_RECREATES:
            raise exc


class ExportRunner:
    """Runs exports to completion and hands their result files over one by one."""

    def __init__(
        self,
        client: PardotClient,
        *,
        polling: Polling,
        in_flight: InFlight,
        spellings: Mapping[str, str],
        spool_dir: str | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        """Run exports through ``client``; downloads go to ``spool_dir``, progress to ``logger``."""
        self.client = client
        self.logger = logger or LOGGER
        self.in_flight = in_flight
        self._stop = threading.Event()
        self.poller = Poller(polling, self._stop, self.logger)
        self.poller.queue_note = QueueWatch(client).note
        self.fetcher = ResultFetcher(client, spool_dir, self.logger)
        self.healer = CreateHealer(spellings, self.logger)
        #: each export id of the run bound to the one request it answers (those in state too)
        self.bindings = Bindings()
        self.created = 0
        #: told of each export that can no longer be reused: canceled, Failed, Canceled or expired, unreadable
        self.on_gone: Callable[[int], None] | None = None

    def _gone(self, export_id: int) -> None:
        if self.on_gone is not None:
            self.on_gone(export_id)

    # -- API calls -----------------------------------------------------------------------

    def create(self, spec: ExportSpec) -> ExportInfo:
        """Create the export; a field or argument spelling the account refuses is healed and retried."""
        self.healer.apply(spec)
        for _ in range(MAX_HEALS):
            requested = time.time()
            try:
                body = self.client.json("POST", "create", "create", json_body=spec.body())
                break
            except PardotAPIError as exc:
                if not self.healer.heal(spec, exc):
                    raise
        else:
            msg = f"{spec.label}: Pardot refused the export {MAX_HEALS} times, each time for another field"
            raise ExportError(msg)
        export = unwrap_export(body, f"{spec.label}: create")
        self.bindings.bind(export["id"], spec.request, spec.label)  # before anything records or reads it
        info = ExportInfo(
            id=export["id"], created_at=export["createdAt"], requested_at=requested, created_mono=time.monotonic()
        )
        self.created += 1
        self.in_flight.add(info.id, spec.label)  # a signal from now on cancels it
        self.logger.info("%s: created export %s (%s, %s)", spec.label, info.id, spec.object, spec.procedure)
        return info

    def read(self, export_id: int, label: str) -> dict[str, t.Any]:
        """Read an export's status; the answer must be about that export, in a known state."""
        body = self.client.json("GET", f"read/id/{export_id}", "read")
        return unwrap_export(body, f"{label}: read export {export_id}", expect_id=export_id)

    def cancel(self, export_id: int, label: str = "") -> bool:
        """Cancel an export; False when Pardot says it is already finished.

        The daily limit, the call budget and dead credentials propagate, unless the run is
        stopping (:meth:`stop`): then the cancel is a courtesy and the state must still be written.
        """
        try:
            self.client.json("POST", f"cancel/id/{export_id}", "cancel")
        except MUST_PROPAGATE as exc:
            if not self.stopping:
                raise
            self.logger.warning("%s: export %s not canceled: %s", label, export_id, exc)
            return False
        except PardotAPIError as exc:
            self.logger.info("%s: export %s not canceled: %s", label, export_id, exc)
            return False
        finally:
            self.in_flight.discard(export_id)
        self._gone(export_id)
        self.logger.info("%s: canceled export %s", label, export_id)
        return True

    # -- the job -------------------------------------------------------------------------

    def start(self, spec: ExportSpec, resume_id: int | None = None, source: str = "state") -> tuple[ExportInfo, bool]:
        """The export for ``spec``: the one from ``source`` (state, the export record) while usable, else a new one.

        True when new.
        """
        info = self._resume(resume_id, spec.label, spec.request, source) if resume_id is not None else None
        if info is not None:
            self.healer.apply(spec)  # the fields it holds, as a create would have sent them
            info.created_mono = time.monotonic()
            self.in_flight.add(info.id, spec.label)
            return info, False
        return self.create(spec), True

    def wait(self, info: ExportInfo, label: str, on_working: Callable[[], None] | None = None) -> dict[str, t.Any]:
        """Poll until the export leaves Waiting/Processing; past ``export_timeout`` cancel it and fail."""
        try:
            return self.poller.wait(info, label, lambda: self.read(info.id, label), on_working)
        except ExportTimedOut as late:
            self.cancel(info.id, label)
            msg = (
                f"{label}: export {info.id} did not finish within export_timeout="
                f"{self.poller.export_timeout:.0f}s (last state {late.state}). It was canceled. Pardot runs one "
                "export at a time per account: other exports may be queued ahead. Raise export_timeout or use "
                "smaller windows."
            )
            raise ExportError(msg) from None

    def run(
        self,
        spec: ExportSpec,
        *,
        started: ExportInfo | None = None,
        on_created: Callable[[ExportInfo], None] | None = None,
        on_working: Callable[[], None] | None = None,
    ) -> Iterator[ResultFile]:
        """Run ``spec`` to completion, yielding each result file once it is on disk.

        ``started`` is an export already created (or checked) for ``spec``. ``on_created`` is
        told of each export this call creates again, ``on_working`` of each status read that
        finds Pardot working on it (Processing) or done (Complete).
        """
        recreates = _Recreates(spec.label, self.logger)
        info = started
        while True:
            if info is None:
                info = self.create(spec)
                if on_created is not None:
                    on_created(info)
            export = self.wait(info, spec.label, on_working)
            if export["state"] == "Complete" and not result_refs(export):
                export = self._complete_again(info, spec.label)
            state, expired = export["state"], is_true(export.get("isExpired"))
            if state == "Complete" and not expired:
                self.in_flight.complete(info.id)
                try:
                    yield from self._files(info, export, spec)
                except PardotAPIError as exc:
                    if exc.code != EXPIRED_CODE:
                        raise
                    recreates.expired_while_read(info, exc)
                    self._gone(info.id)
                    self.in_flight.discard(info.id)
                    info = None
                    continue
                self.in_flight.discard(info.id)
                return
            self.in_flight.discard(info.id)
            self._gone(info.id)
            recreates.after(info, state, expired=expired)
            info = None

    def _complete_again(self, info: ExportInfo, label: str) -> dict[str, t.Any]:
        """A ``Complete`` export listed no result file: its answer read once more, a poll interval later.

        Pardot has been seen to list the links only in a later read: taken at its first word,
        the window would count as empty and its rows be lost.
        """
        wait = self.poller.poll_interval
        self.logger.info(
            "%s: export %s is Complete without result files; reading it once more in %.1fs to be sure",
            label,
            info.id,
            wait,
        )
        if self._stop.wait(wait):
            raise ExportError(f"{label}: interrupted while waiting for export {info.id}")
        return self.read(info.id, label)

    def _files(self, info: ExportInfo, export: dict[str, t.Any], spec: ExportSpec) -> Iterator[ResultFile]:
        refs = result_refs(export)
        info.files = len(refs)
        if not refs:
            self.logger.info("%s: export %s is Complete with no result files: no rows", spec.label, info.id)
            return
        yield from self.fetcher.files(info, refs, spec.label, spec.fields)

    def _resume(self, resume_id: t.Any, label: str, request: str = "", source: str = "state") -> ExportInfo | None:
        """The export from ``source`` (state, the export record) when it can still be used for ``request``, else None.

        Errors that end the run (daily limit, call budget, dead credentials) propagate.
        """
        if isinstance(resume_id, bool) or not isinstance(resume_id, int):
            self.logger.info("%s: ignoring a pending export id in %s that is not an integer", label, source)
            return None
        other = self.bindings.other(resume_id, request)
        if other is not None:
            self.logger.warning(
                "%s: export %s from %s is the export of another request of this run (%s); creating a new one",
                label,
                resume_id,
                source,
                other,
            )
            return None
        try:
            export = self.read(resume_id, label)
        except MUST_PROPAGATE:
            raise
        except PardotAPIError as exc:
            self.logger.info("%s: export %s from %s cannot be reused (%s)", label, resume_id, source, exc)
            self._gone(resume_id)
            return None
        state, expired = export["state"], is_true(export.get("isExpired"))
        if state in ("Waiting", "Processing") or (state == "Complete" and not expired):
            self.logger.info("%s: resuming export %s from %s (%s)", label, resume_id, source, state)
            self.bindings.bind(resume_id, request, label)
            return ExportInfo(id=resume_id, created_at=export["createdAt"])
        self._gone(resume_id)
        self.logger.info(
            "%s: export %s from %s is %s%s; creating a new one",
            label,
            resume_id,
            source,
            state,
            " and expired" if expired else "",
        )
        return None

    # -- stopping ------------------------------------------------------------------------

    def stop(self) -> None:
        """Make a waiting job give up at its next poll, and every retry wait end now."""
        self._stop.set()
        self.client.transport.policy.stop()

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called (the run is shutting down on a signal)."""
        return self._stop.is_set()

    @property
    def waited(self) -> float:
        """Seconds this run spent waiting on exports."""
        return self.poller.waited
