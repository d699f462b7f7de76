"""A stream's sync from start to end: its windows, then its recycle-bin pass, then its summary.

:func:`stream_files` yields each result file's rows (joined, for a wide stream), checkpointing
after each window. After an error the exports created ahead are dropped (canceled as a
courtesy, except after the daily limit, the call budget or dead credentials), while the
window being read keeps its exports in state for the rerun.
"""

from __future__ import annotations

import time
import typing as t

from tap_pardot_export.engine.queue import release_ahead
from tap_pardot_export.engine.recyclebin import finish_recycle_bin, recycle_bin_run
from tap_pardot_export.engine.sync import StreamSync
from tap_pardot_export.errors import StdoutClosed
from tap_pardot_export.pardot.runner import MUST_PROPAGATE

if t.TYPE_CHECKING:
    from collections.abc import Iterator

    from tap_pardot_export.engine.plan import FileRowsLike, SyncedStream
    from tap_pardot_export.engine.session import ExportSession


def stream_files(stream: SyncedStream, session: ExportSession) -> Iterator[FileRowsLike]:
    """Run the stream's windows' exports; yield each result file's rows, checkpointing after each window.

    The consumer reads each file (setting its ``count``) before asking for the next.
    """
    session.announce()
    stream.begin_windows()
    budget = session.client.budget
    calls0, t0 = budget.spent, time.monotonic()
    state = stream.sync_state()
    run = StreamSync(stream=stream, plan=stream.plan(), session=session, state=state, start=stream.starting_timestamp())
    current = run
    try:
        yield from run.files()
        bin_run = recycle_bin_run(stream, session)
        if bin_run is not None:
            current = bin_run
            yield from bin_run.files()
            finish_recycle_bin(stream, session, bin_run)
            run.rows, run.exports = run.rows + bin_run.rows, run.exports + bin_run.exports
    except BaseException as exc:
        courtesy = not isinstance(exc, MUST_PROPAGATE)
        # the target is gone: no state can carry the window's exports to a rerun; those the export record
        # holds are kept for the rerun, as on a signal, and the others are canceled
        gone = isinstance(exc, StdoutClosed) or session.out.closed
        stopping = gone or session.runner.stopping or isinstance(exc, (SystemExit, KeyboardInterrupt))
        keep = session.kept if stopping else None
        spoiled = current.abandon(courtesy=courtesy, keep_head=not gone, keep=keep)
        release_ahead(session, failed=True, courtesy=courtesy, keep=keep)
        if spoiled:  # the last STATE, once the exports created ahead are gone from it too
            stream.emit_state()
        raise
    stream.logger.info(
        "%s: summary: %d row(s), %d export(s), %d API call(s), %.1fs waiting on exports, %.1fs; run so far: "
        "%d API call(s) %s",
        stream.name,
        run.rows,
        run.exports,
        budget.spent - calls0,
        run.waited,
        time.monotonic() - t0,
        budget.spent,
        budget.by_kind(),
    )
    if session.queue.after(stream.name) is None:
        release_ahead(session, failed=False)
