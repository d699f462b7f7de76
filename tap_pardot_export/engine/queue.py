"""Keeping Pardot's queue busy across streams: the next stream's first export, created ahead.

When a stream has planned all its windows, the first export of the next selected export
stream is created, so Pardot processes it while this stream's last files download. It is
recorded in that stream's own state (through its :class:`~tap_pardot_export.engine.state.StreamState`)
and in the queue by its query: that stream takes it when its first window asks for the very
same query; else it is canceled at the end of the run (:func:`release_ahead`).
"""

from __future__ import annotations

import typing as t

from tap_pardot_export.engine.plan import make_job, make_planner
from tap_pardot_export.engine.session import AheadExport
from tap_pardot_export.engine.state import export_entry
from tap_pardot_export.errors import PardotAPIError
from tap_pardot_export.pardot.cancel import cancel_now
from tap_pardot_export.pardot.runner import MUST_PROPAGATE

if t.TYPE_CHECKING:
    from collections.abc import Callable

    from tap_pardot_export.engine.session import ExportSession


def prefetch_next(name: str, session: ExportSession, cost: int) -> None:
    """Create the first export of the stream synced after ``name``, if it has none in flight of its own."""
    queue = session.queue
    nxt = queue.after(name)
    if nxt is None or not queue.room() or not nxt.incremental:
        return
    left = session.calls_left()
    if left is not None and left < 2 * cost:
        return
    state = nxt.sync_state()
    if state.entries():  # it resumes its own
        return
    nxt.begin_windows()
    plan = nxt.plan()
    groups = plan.groups()
    recorded = session.recorded(plan, None)
    w = make_planner(plan, nxt.starting_timestamp(), session.run_end, state, None, recorded).next()
    if w is None:
        return
    job = make_job(plan, w, groups[0], recorded, (0, len(groups)))
    if job.resume_id is not None:  # the export record holds its export: it is reused in its turn
        return
    try:
        with session.client.budget.exempt():
            info = session.runner.create(job.spec)
    except MUST_PROPAGATE:
        raise
    except PardotAPIError as exc:  # a courtesy: that stream meets the refusal on its own turn, not this one
        nxt.logger.info("%s: its first export was not created ahead (%s); it is created in its turn", nxt.name, exc)
        return
    queue.ahead[job.query] = AheadExport(nxt, info, job.spec)
    session.remember(nxt.name, job, info)
    state.record_prefetched(
        export_entry(
            export_id=info.id,
            window=w,
            query=job.query,
            dropped=job.dropped,
            created_at=info.created_at,
            requested_at=info.requested_at,
        )
    )
    nxt.emit_state()


def release_ahead(
    session: ExportSession, *, failed: bool, courtesy: bool = True, keep: Callable[[int], bool] | None = None
) -> None:
    """Cancel the exports created ahead that no stream took, and drop them from their stream's state.

    After an error (``failed``) each gets one try without retries, none without ``courtesy``,
    nor those ``keep`` names (the export record holds them for the rerun).
    """
    queue = session.queue
    for query, ahead in list(queue.ahead.items()):
        del queue.ahead[query]
        mine = ahead.stream.sync_state().drop_prefetched(ahead.info.id)  # first: a signal meanwhile writes it
        queue.in_flight.discard(ahead.info.id)
        if session.runner.stopping or not courtesy or (keep is not None and keep(ahead.info.id)):
            continue
        if failed:
            outcome = cancel_now(session.client, ahead.info.id, timeout=5.0)
            session.logger.info(
                "%s: export %s, created ahead for it, is not needed now that the run stops: %s",
                ahead.spec.label,
                ahead.info.id,
                outcome.says,
            )
            if outcome.canceled:
                session.forget([ahead.info.id])
        else:
            try:
                with session.client.budget.exempt():
                    session.runner.cancel(ahead.info.id, ahead.spec.label)
            except Exception as exc:  # noqa: BLE001 - a courtesy: the run's rows are all out
                session.logger.warning(
                    "%s: export %s created ahead not canceled: %s", ahead.spec.label, ahead.info.id, exc
                )
        if mine and not failed:
            ahead.stream.emit_state()
