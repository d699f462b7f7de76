"""The run's export session, opened at the first export (discovery opens none), and its metrics.

:class:`SessionProvider` builds the :class:`~tap_pardot_export.engine.session.ExportSession`
from the settings: the Pardot client, the export runner, the time-zone policy, the queue,
the download folder (removed at exit, even a forced one), the business unit's export record,
and the business unit's daily API allowance (one call: the run's calls are capped above
``api_call_reserve``).
Before it opens, every stream's preflight check runs, so a run that cannot finish fails before
any API call. The client's
requests and the runner's waits are reported as the SDK's own metrics
(``http_request_duration``, ``job_duration``), as Meltano users see them for other taps.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import typing as t

from singer_sdk import metrics

from tap_pardot_export.engine.record import ExportRecord
from tap_pardot_export.engine.session import ExportQueue, ExportSession
from tap_pardot_export.engine.state import recorded_exports
from tap_pardot_export.engine.zones import ZonePolicy
from tap_pardot_export.errors import (
    CallBudgetSpent,
    DailyLimitReached,
    FirstContactError,
    PardotAuthError,
    PardotConfigError,
    RefusedURLError,
    StdoutClosed,
    StreamsFailed,
)
from tap_pardot_export.pardot.client import build_client
from tap_pardot_export.pardot.exports import InFlight
from tap_pardot_export.pardot.quota import apply_allowance
from tap_pardot_export.pardot.runner import ExportRunner
from tap_pardot_export.redact import host_of
from tap_pardot_export.signals import StdoutLines
from tap_pardot_export.spec import SPELLINGS

if t.TYPE_CHECKING:
    import datetime as dt
    import logging
    from collections.abc import Callable

    from tap_pardot_export.engine.plan import SyncedStream
    from tap_pardot_export.settings.config import Settings


def request_metric(kind: str, seconds: float, status: int | None) -> None:
    """One API call's duration, as the SDK's ``http_request_duration`` timer."""
    failed = status is None or status >= 400
    tags: dict[str, t.Any] = {
        metrics.Tag.ENDPOINT: kind,
        metrics.Tag.HTTP_STATUS_CODE: status,
        metrics.Tag.STATUS: metrics.Status.FAILED if failed else metrics.Status.SUCCEEDED,
    }
    metrics.log(
        metrics.get_metrics_logger(), metrics.Point("timer", metrics.Metric.HTTP_REQUEST_DURATION, seconds, tags)
    )


def wait_metric(label: str, seconds: float, state: str) -> None:
    """One export's wait in Pardot's queue, as the SDK's ``job_duration`` timer."""
    tags: dict[str, t.Any] = {
        metrics.Tag.STREAM: label.split(" ", 1)[0],
        metrics.Tag.JOB_TYPE: "export_wait",
        metrics.Tag.STATUS: metrics.Status.SUCCEEDED if state == "Complete" else metrics.Status.FAILED,
    }
    metrics.log(metrics.get_metrics_logger(), metrics.Point("timer", metrics.Metric.JOB_DURATION, seconds, tags))


def open_session(
    settings: Settings,
    *,
    run_end: dt.datetime,
    logger: logging.Logger,
    next_stream: Callable[[str], SyncedStream | None],
    state: object = None,
) -> ExportSession:
    """The run's export session, from its settings; the exports ``state`` records are bound to their queries."""
    client = build_client(settings.connection, logger)
    client.tokens.purpose = " for the sync"
    client.on_request = request_metric
    spool = tempfile.mkdtemp(prefix="tap-pardot-export-")
    atexit.register(shutil.rmtree, spool, ignore_errors=True)
    in_flight = InFlight()
    runner = ExportRunner(
        client, polling=settings.polling, in_flight=in_flight, spellings=SPELLINGS, spool_dir=spool, logger=logger
    )
    runner.poller.on_waited = wait_metric
    for export_id, query, where in recorded_exports(state):  # before any create: none may answer with them
        runner.bindings.bind(export_id, query or f"state: {where}", f"{where}, from state")
    record = ExportRecord.open(settings.record_dir, client.business_unit_id, host_of(client.api_url), logger)
    session = ExportSession(
        client=client,
        runner=runner,
        zones=ZonePolicy(settings.timezone, logger),
        run_end=run_end,
        logger=logger,
        queue=ExportQueue(in_flight, settings.max_queued_exports, next_stream),
        out=StdoutLines(),
        spool_dir=spool,
        record=record,
    )
    runner.on_gone = lambda export_id: session.forget([export_id])
    session.allowance = apply_allowance(client, settings.api_call_reserve, logger)
    session.allowance_at = client.budget.spent
    return session


class SessionProvider:
    """Opens the run's export session at its first export: discovery needs none.

    Before it opens, every stream's preflight check runs (e.g. its catalog against
    capture_deletes), so that a run that cannot finish fails before any API call.
    """

    def __init__(self, open_session: Callable[[], ExportSession], write_state: Callable[[t.Any], None]) -> None:
        """``open_session`` builds the session; ``write_state`` writes the tap's STATE (when it changed)."""
        self._open = open_session
        self._write_state = write_state
        self._session: ExportSession | None = None
        self.preflights: list[Callable[[], None]] = []

    def open(self) -> ExportSession:
        """The run's session, built at the first call, after every preflight check passed."""
        if self._session is None:
            for check in self.preflights:
                check()
            self._session = self._open()
        return self._session

    def write_state(self, state: t.Any) -> None:
        """Write the tap's STATE message (when it changed)."""
        self._write_state(state)

    @property
    def current(self) -> ExportSession | None:
        """The session if one was opened."""
        return self._session


#: failures that end the whole run: every other stream would meet them too (the daily limit, the call
#: budget, dead credentials, a wrong setting or host), or nothing can reach the target any more
ENDS_THE_RUN = (
    DailyLimitReached,
    CallBudgetSpent,
    PardotAuthError,
    PardotConfigError,
    FirstContactError,
    RefusedURLError,
    StdoutClosed,
)


class StreamFailures:
    """The streams that failed in this run while the others went on (see the fail_fast setting)."""

    def __init__(self) -> None:
        """No stream failed yet."""
        self.causes: dict[str, str] = {}

    def add(self, stream: str, exc: BaseException, logger: logging.Logger) -> None:
        """Record ``stream``'s failure and say that the run goes on."""
        cause = (str(exc).split("\n", 1)[0] or type(exc).__name__).removeprefix(f"{stream}: ").rstrip(".")
        self.causes[stream] = cause
        logger.error(
            "%s failed: %s. Its bookmark stays where its emitted rows allow and its exports in flight stay in its "
            "state for the next run; the other selected streams go on (fail_fast: true stops at the first failure).",
            stream,
            cause,
        )

    def raise_if_any(self) -> None:
        """Once every stream ran: fail the run, naming every failed stream.

        Raises:
            StreamsFailed: some streams failed.
        """
        if not self.causes:
            return
        names = ", ".join(self.causes)
        msg = (
            f"{len(self.causes)} stream(s) failed: {names}. The other streams synced; rerun to retry the failed ones "
            f"from their state. Causes: {'; '.join(f'{n}: {c[:300]}' for n, c in self.causes.items())}"
        )
        raise StreamsFailed(msg)
