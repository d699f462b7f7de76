"""The recycle-bin pass of capture_deletes: the bin's exports over the whole range, rows stamped deleted.

After its windows, each stream whose procedure selects the recycle bin runs a pass: exports
with ``deleted=true`` (or ``prospect_deleted=true``) from start_date to the run's end, one per
year, each record stamped ``_sdc_deleted_at`` with the run's end. The pass keeps its own
progress in the stream's state (``deletes_pass``) and never moves the stream's bookmark;
``deletes_pass_at`` moves only once every window of the pass was emitted. The export record
marks a pass's exports with the last whole pass's end: a pass reuses only the exports of a pass
that began from the same one (one interrupted before its state reached the runner), never a
finished pass's, whose snapshot of the bin is older than the pass now due.
"""

from __future__ import annotations

import datetime as dt
import typing as t

from tap_pardot_export.engine.record import BIN_SCOPE
from tap_pardot_export.engine.sync import StreamSync
from tap_pardot_export.engine.windows import api_time

if t.TYPE_CHECKING:
    from tap_pardot_export.engine.plan import SyncedStream
    from tap_pardot_export.engine.session import ExportSession


def pass_due(stream: SyncedStream, run_end: dt.datetime) -> bool:
    """True when the stream's recycle-bin pass runs now: one was interrupted, or the last is old enough."""
    state, recycle_bin = stream.sync_state(), stream.plan().recycle_bin
    if recycle_bin is None:
        return False
    if state.pass_in_progress():
        return True
    when = state.last_pass()
    if when is not None and run_end - when < recycle_bin.every:
        stream.logger.info(
            "%s: recycle-bin pass not due: the last ran up to %s (deletes_pass_days)", stream.name, api_time(when)
        )
        return False
    return True


def recycle_bin_run(stream: SyncedStream, session: ExportSession) -> StreamSync | None:
    """The stream's recycle-bin pass over start_date .. run end when capture_deletes wants one now."""
    plan = stream.plan()
    recycle_bin = plan.recycle_bin
    if recycle_bin is None or recycle_bin.start >= session.run_end or not pass_due(stream, session.run_end):
        return None
    stamp = session.run_end.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    stream.logger.info(
        "%s: recycle-bin pass (%s=true), deleted records stamped %s", stream.name, recycle_bin.argument, stamp
    )
    last = stream.sync_state().last_pass()
    state = stream.sync_state().deletes_pass()
    return StreamSync(
        stream=stream,
        plan=plan.for_recycle_bin(),
        session=session,
        state=state,
        start=state.bookmark() or recycle_bin.start,
        deleted_at=stamp,
        scope=BIN_SCOPE.format(api_time(last) if last is not None else "none"),
    )


def finish_recycle_bin(stream: SyncedStream, session: ExportSession, run: StreamSync) -> None:
    """When every row of the pass was emitted: drop its state, keep when it ran (else the next run resumes it)."""
    if run.bookmark is None or run.bookmark < run.planner.end:  # stopped by max_api_calls
        return
    stream.sync_state().pass_done(session.run_end)
    stream.emit_state()
