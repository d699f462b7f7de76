"""One stream's windows in a run: plan, start exports (some ahead), read them in order, checkpoint.

For each time window of a stream's range one export runs (one per field group for a stream
wider than an export), and its result files are handed to the stream one by one. The
bookmark moves to a window's end only once every file of the window was read; an error
inside a window leaves it where it was. Every export in flight is in state, so a rerun
reuses it. The call budget (``max_api_calls``, or the daily allowance's reserve) is checked
between windows: a window the budget cannot afford is not started, a started window is finished
even past the budget, and under ``max_api_calls`` the run's first window always goes, so reruns
with a small budget still progress.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import math
import typing as t

from tap_pardot_export.engine.join import MAX_FIELDS
from tap_pardot_export.engine.plan import WindowJob, make_job, make_planner
from tap_pardot_export.engine.queue import prefetch_next
from tap_pardot_export.engine.state import export_entry
from tap_pardot_export.engine.wide import read_joined
from tap_pardot_export.engine.windows import api_time
from tap_pardot_export.pardot.cancel import cancel_now

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tap_pardot_export.engine.plan import ExportPlan, FileRowsLike, SyncedStream
    from tap_pardot_export.engine.session import ExportSession
    from tap_pardot_export.engine.state import StreamState
    from tap_pardot_export.pardot.exports import ExportInfo

#: the calls a window costs before the run has measured one: create, a read or two, one file
FIRST_WINDOW_COST = 4
#: an export queued ahead expected to hold more than this many times rows_per_export is replaced
OVERSIZE = 2


@dataclasses.dataclass
class Slot:
    """A window's export that was started (created, reused from state, or created ahead)."""

    job: WindowJob
    info: ExportInfo

    def entry(self) -> dict[str, t.Any]:
        """What state keeps of it."""
        info, job = self.info, self.job
        return export_entry(
            export_id=info.id,
            window=job.window,
            query=job.query,
            dropped=job.dropped,
            created_at=info.created_at,
            requested_at=info.requested_at,
        )


def can_afford(sync: StreamSync, cost: int, start: dt.datetime) -> bool:
    """True when the call budget allows another window.

    The run's first window always goes under ``max_api_calls`` (so reruns with a small budget
    still progress), never past the daily allowance's reserve (the business unit's other
    integrations need those calls today).
    """
    session, logger, name = sync.session, sync.stream.logger, sync.plan.stream
    left = session.calls_left()
    if left is None or left >= cost:
        return True
    budget = session.client.budget
    if session.windows_done == 0 and budget.per_run:
        logger.warning(
            "%s: %s is below what a window costs (~%d calls): finishing one window anyway, "
            "so that each run makes progress.",
            name,
            budget.reason,
            cost,
        )
        return True
    budget.stopped = True
    logger.warning(
        "%s: %s leaves %d call(s), fewer than a window costs (~%d): stopping here "
        "with resumable state (bookmark %s). The next run continues from it.",
        name,
        budget.reason,
        max(left, 0),
        cost,
        api_time(start),
    )
    return False


class StreamSync:
    """One stream's windows in this run, with up to ``queue.max_ahead`` exports created ahead.

    The export of the window at the bookmark is waited on and read while the next windows'
    exports wait in Pardot's queue. A stream wider than an export runs one export per field
    group for each window (in order, so the window at the bookmark always comes first);
    their rows are joined by id on disk before any is emitted, and the window's exports
    stay in state until then.
    """

    def __init__(
        self,
        *,
        stream: SyncedStream,
        plan: ExportPlan,
        session: ExportSession,
        state: StreamState,
        start: dt.datetime,
        deleted_at: str | None = None,
        scope: str | None = None,
    ) -> None:
        """Plan ``plan``'s windows from ``start`` (its bookmark, or start_date) to the run's end.

        ``state`` is where it keeps its progress; ``deleted_at`` stamps every row (a recycle-bin pass);
        ``scope`` marks the exports of a recycle-bin pass in the export record (None: the stream's windows).
        """
        self.stream, self.plan, self.session, self.state = stream, plan, session, state
        self.deleted_at, self.scope = deleted_at, scope
        self.groups = plan.groups()
        recorded = session.recorded(plan, scope) if stream.incremental else []
        self.entries = state.entries() + recorded
        self.planner = make_planner(plan, start, session.run_end, state, stream.logger, recorded)
        self.slots: collections.deque[Slot] = collections.deque()
        #: the exports of windows planned but not started yet (the later field groups of a window)
        self.todo: collections.deque[WindowJob] = collections.deque()
        self.bookmark: dt.datetime | None = None
        self.cost = FIRST_WINDOW_COST * len(self.groups)
        self.planned_all = False
        self.rows = self.exports = 0
        self.waited = 0.0
        if len(self.groups) > 1:
            stream.logger.info(
                "%s: %d fields selected, more than an export takes (%d): %d exports per window (field groups of "
                "%s fields, each with id and %s), joined by id on disk",
                plan.stream,
                len({f for g in self.groups for f in g}),
                MAX_FIELDS,
                len(self.groups),
                "/".join(str(len(g)) for g in self.groups),
                plan.replication_key,
            )

    # -- state -----------------------------------------------------------------------------

    def checkpoint(self) -> None:
        """Record the finished range, the exports in flight and the learned rate; emit STATE."""
        if not self.stream.incremental:
            return
        if self.bookmark is not None:
            self.state.set_bookmark(self.plan.bookmark_key, self.bookmark)
        self.state.record_exports([s.entry() for s in self.slots])
        if self.planner.rows_per_day is not None:
            self.state.set_learned_rate(self.planner.rows_per_day)
        self.stream.emit_state()

    # -- starting exports ------------------------------------------------------------------

    def affordable_ahead(self) -> bool:
        """True when the call budget covers the exports started plus one more."""
        left = self.session.calls_left()
        return left is None or left >= math.ceil(self.cost * (len(self.slots) + 1) / len(self.groups))

    def next_job(self) -> WindowJob | None:
        """The next export to start (not taken off the plan), or None once the range is covered."""
        if not self.todo:
            w = self.planner.next()
            if w is None:
                return None
            n = len(self.groups)
            self.todo.extend(make_job(self.plan, w, g, self.entries, (k, n)) for k, g in enumerate(self.groups))
        return self.todo[0]

    def fill(self, *, ahead: bool, need: int = 1) -> None:
        """Start exports until ``need`` are started; with ``ahead``, more while there is room.

        The first ``need`` exports (the window at the bookmark, group by group) always start;
        exports ahead are created once Pardot works on the one waited on (it is Processing or
        Complete), or once an export of this run was Complete: not while ours would only pile
        up behind other integrations' exports at the start, nor while a create or an export fails.
        """
        session = self.session
        while not self.planned_all:
            must = len(self.slots) < need
            if not must and not (ahead and session.queue.room() and self.affordable_ahead()):
                return
            job = self.next_job()
            if job is None:
                self.planned_all = True
                if ahead and (not self.slots or self.affordable_ahead()):
                    prefetch_next(self.stream.name, session, self.cost)
                return
            created = session.queue.ahead.pop(job.query, None)
            if created is None and not self.slots and not can_afford(self, self.cost, job.window.start):
                self.planned_all = True
                return
            self.todo.popleft()
            if created is not None:
                job.spec = created.spec  # the fields it was created with
            self.start(job, created.info if created is not None else None)

    def start(self, job: WindowJob, info: ExportInfo | None) -> None:
        """Start ``job``'s export (``info``: one created ahead for it) and record it in state."""
        session = self.session
        if job.resume_id is not None and not session.claim(job.resume_id):  # another window of the run has it
            job.resume_id = job.resume_clock = None
        if info is None:
            with session.client.budget.exempt():
                info, new = session.runner.start(job.spec, job.resume_id, job.source)
            if not new:
                session.reused += 1
                if not info.requested_at and job.resume_clock:
                    info.created_at, info.requested_at = job.resume_clock  # read its times in its zone
        session.remember(self.stream.name, job, info, self.scope)
        session.queue.in_flight.add(info.id, job.spec.label)
        self.slots.append(Slot(job, info))
        self.exports += 1
        self.checkpoint()

    # -- reading ---------------------------------------------------------------------------

    def files(self) -> Iterator[FileRowsLike]:
        """Each window's result files in order (joined, for a wide stream), checkpointing after each window."""
        self.fill(ahead=False)
        while self.slots:
            yield from self.read_head()
            self.fill(ahead=False)

    def read_head(self) -> Iterator[FileRowsLike]:
        """Wait for the first window's export(s), yield its files; then move the bookmark over it."""
        budget, groups = self.session.client.budget, self.slots[0].job.groups
        calls0 = budget.spent
        if groups == 1:
            rows = 0
            for part in self.read_export(self.slots[0]):
                yield part
                rows += part.count
        else:
            rows = yield from read_joined(self, groups)
        job = self.slots[0].job
        for _ in range(groups):
            slot = self.slots.popleft()
            self.session.queue.in_flight.discard(slot.info.id)
        self.session.windows_done += 1
        self.rows += rows
        self.cost = max(self.cost, budget.spent - calls0 + groups)  # + its creates
        self.planner.learn(job.window, rows)
        self.bookmark = job.window.end
        self.replan()
        self.checkpoint()

    def read_export(self, slot: Slot) -> Iterator[FileRowsLike]:
        """Wait for ``slot``'s export and yield each of its result files' rows (read by the consumer)."""
        session, job = self.session, slot.job

        def created(new: ExportInfo) -> None:  # created again (it Failed, or was Canceled or expired)
            slot.info = new
            session.remember(self.stream.name, job, new, self.scope)
            self.checkpoint()

        rows, conv = 0, None
        with session.client.budget.exempt():
            if session.runner.poller.last_complete:  # exports work in this run: queue the next behind this one
                self.fill(ahead=True)
            runs = session.runner.run(
                job.spec, started=slot.info, on_created=created, on_working=lambda: self.fill(ahead=True)
            )
            for rf in runs:
                conv = session.zones.converter(rf.export, conv)
                part = self.stream.open_file(rf, conv, self.deleted_at)
                yield part
                rf.export.rows += part.count
                rows += part.count
        info = slot.info
        self.stream.logger.info(
            "%s: export %s done: waited %.1fs, %d file(s), %d row(s)",
            job.spec.label,
            info.id,
            info.waited,
            info.files,
            rows,
        )
        self.waited += info.waited

    def replan(self) -> None:
        """Cancel exports created ahead for windows the rate just learned says are far too large.

        Only for windows sized by the data: an export queued before the rate was known (e.g.
        a year-wide second window) is replaced by narrower ones. Its rows were never read.
        """
        planner, session = self.planner, self.session
        if planner.size is not None or not planner.rows_per_day:
            return
        limit = OVERSIZE * planner.rows_per_export
        windows = [s.job.window for s in self.slots] + [j.window for j in self.todo]
        days = [(w.end - w.start) / dt.timedelta(days=1) for w in windows]
        first = next((k for k, d in enumerate(days) if planner.rows_per_day * d > limit), None)
        if first is None:
            return
        for slot in list(self.slots)[first:]:
            self.slots.pop()
            session.queue.in_flight.discard(slot.info.id)
            session.logger.info(
                "%s: export %s queued ahead would hold ~%d rows at %.1f rows a day; replacing it with narrower ones",
                slot.job.spec.label,
                slot.info.id,
                planner.rows_per_day * ((slot.job.window.end - slot.job.window.start) / dt.timedelta(days=1)),
                planner.rows_per_day,
            )
            with session.client.budget.exempt():
                session.runner.cancel(slot.info.id, slot.job.spec.label)
        self.todo.clear()
        planner.cursor = windows[first].start
        self.planned_all = False

    def abandon(self, *, courtesy: bool, keep_head: bool = True, keep: Callable[[int], bool] | None = None) -> bool:
        """After an error: drop the exports created ahead (not the window being read's: a rerun reuses them).

        With ``courtesy`` they are canceled too (one try each): not after the daily limit, the
        call budget or the credentials ended the run, which a cancel would only run into again,
        nor those ``keep`` names (the export record holds them for the rerun). State is rewritten
        before any cancel, so a signal meanwhile writes it right. Returns True when an export was
        left out for its unreadable file (the caller then writes a last STATE).
        """
        session = self.session
        head = self.slots[0].job.window if self.slots and keep_head else None
        ahead: list[Slot] = []
        while self.slots and self.slots[-1].job.window != head:
            ahead.append(self.slots.pop())
        self.todo.clear()
        spoiled = [s for s in self.slots if s.info.spoiled]
        session.forget(s.info.id for s in spoiled)
        for slot in spoiled:  # its file is malformed as Pardot stores it: a rerun creates it again
            self.slots.remove(slot)
            session.queue.in_flight.discard(slot.info.id)
            self.stream.logger.info(
                "%s: export %s left out of the state: its result file cannot be read, so the next run creates "
                "the export again instead of reusing it",
                slot.job.spec.label,
                slot.info.id,
            )
        if self.stream.incremental:
            if self.slots or spoiled:
                self.state.record_exports([s.entry() for s in self.slots])
            else:  # nothing started: an export from state a rerun may still reuse stays
                self.state.drop_queued()
        for slot in ahead:  # in flight until canceled: a signal meanwhile cancels it too
            kept = keep is not None and keep(slot.info.id)
            if courtesy and not kept and not session.runner.stopping:
                outcome = cancel_now(session.client, slot.info.id, 5.0)  # one try, no retries
                self.stream.logger.info(
                    "%s: export %s, created ahead, is not needed now that the stream stops: %s",
                    slot.job.spec.label,
                    slot.info.id,
                    outcome.says,
                )
                if outcome.canceled:
                    session.forget([slot.info.id])
            session.queue.in_flight.discard(slot.info.id)
        return bool(spoiled) and self.stream.incremental
