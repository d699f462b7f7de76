"""The query streams' reads in background threads, beside the exports: page chains spooled to disk.

The query streams do not use Pardot's export queue, so they are read while Pardot processes the
run's exports. At the run's first stream the reader gets every selected query stream's plan, in
the order the streams are synced, and its workers read their tasks (windows, whole objects,
recycle bins) page by page, each into its own spool file: earlier streams first, the windows of
an event stream side by side. Each request holds one of the client's concurrency slots, shared
with the exports' calls and downloads (``max_concurrency`` in all): an export's create, status
read or download waits at most for a page in flight. Nothing is emitted here: each stream takes
its pages in order when the run syncs it
(:meth:`~tap_pardot_export.engine.querytasks.StreamRead.pages`), and its bookmark moves only
over what it emitted.

A task that fails fails its stream only (its later tasks are not read); an error that would end
the run (the daily limit, dead credentials) or the call budget halts every worker.
"""

from __future__ import annotations

import threading
import typing as t
from pathlib import Path

from tap_pardot_export.engine.chains import ChainRead
from tap_pardot_export.engine.querytasks import Mark, StreamRead
from tap_pardot_export.errors import CallBudgetSpent
from tap_pardot_export.pardot.retry import Interrupted
from tap_pardot_export.pardot.v5 import DatesRefused

if t.TYPE_CHECKING:
    import logging

    from tap_pardot_export.engine.querytasks import QueryPlan, Task
    from tap_pardot_export.pardot.v5 import V5Reader


class QueryReader:
    """Worker threads reading the run's query streams ahead of their emission."""

    def __init__(
        self,
        v5: V5Reader,
        spool_dir: str,
        *,
        workers: int,
        halts: tuple[type[BaseException], ...],
        logger: logging.Logger,
    ) -> None:
        """Read through ``v5`` into ``spool_dir`` with ``workers`` threads; ``halts``: errors that end the run."""
        self.v5, self.spool_dir, self.workers = v5, spool_dir, max(1, workers)
        self.halts, self.logger = halts, logger
        self.cond = threading.Condition()
        self.reads: dict[str, StreamRead] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.warned_dates: set[str] = set()

    def add(self, plan: QueryPlan) -> StreamRead:
        """Read ``plan``'s stream (after those added before it)."""
        with self.cond:
            read = self.reads[plan.stream] = StreamRead(plan, self.spool_dir, self.cond)
            self.cond.notify_all()
        return read

    def start(self) -> None:
        """Start the workers."""
        for k in range(self.workers):
            th = threading.Thread(target=self._work, name=f"pardot-query-{k}", daemon=True)
            th.start()
            self._threads.append(th)

    def stop(self) -> None:
        """Stop reading: each worker ends after its page in flight (without waiting for it)."""
        self._stop.set()
        self._halt(Interrupted("the run is stopping: the query streams' reads were stopped"))

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stop.is_set()

    # -- workers -------------------------------------------------------------------------

    def _take(self) -> Task | None:
        with self.cond:
            while not self._stop.is_set():
                for read in self.reads.values():
                    task = read.take()
                    if task is not None:
                        return task
                if all(read.closed for read in self.reads.values()):
                    return None
                self.cond.wait(0.2)
        return None

    def _work(self) -> None:
        while (task := self._take()) is not None:
            self._run(task)

    def _run(self, task: Task) -> None:
        read = task.read
        try:
            while True:
                try:
                    self._read(task)
                    break
                except DatesRefused as exc:
                    if not self._by_id_instead(task, exc):
                        break
        except BaseException as exc:  # noqa: BLE001 - kept for the stream, which raises it in its turn
            task.error = exc
            if isinstance(exc, (CallBudgetSpent, *self.halts)):
                self._halt(exc)
            else:
                with self.cond:
                    read.fail(exc)
        finally:
            with self.cond:
                task.done = True
                self.cond.notify_all()

    def _halt(self, exc: BaseException) -> None:
        """An error every later call would meet too: no more tasks for any stream not read whole yet."""
        with self.cond:
            for read in self.reads.values():
                if not read.complete:
                    read.fail(exc)
            self.cond.notify_all()

    def _by_id_instead(self, task: Task, exc: DatesRefused) -> bool:
        """The object refused its date filter: read it whole by id (filtering on the date), once; True to go on."""
        plan = task.read.plan
        if plan.stream not in self.warned_dates:
            self.warned_dates.add(plan.stream)
            self.logger.warning(
                "%s: Pardot refuses %s's %s filter or sort (%s): it is read whole by id instead, every record's %s "
                "checked against the range (one query, no windows side by side)",
                plan.stream,
                plan.chain.collection,
                plan.chain.date_field,
                exc,
                plan.chain.date_field,
            )
        planner = task.read.planner
        if planner is not None:
            whole = planner.whole()
            if task.span.index != 0:
                return False  # the first window reads the whole range
            task.span = whole
        task.by_id, task.resume = True, None  # refused at its first query: nothing was spooled yet
        return True

    def _read(self, task: Task) -> None:
        """Read ``task``'s pages into its spool file, a mark per page."""
        read, plan = task.read, task.read.plan
        if task.kind == "account":
            self._account(task)
            return
        chain = ChainRead(self.v5, task.chain, task.span, task.resume, by_id=task.by_id)
        rows = 0
        with Path(task.path).open("ab") as fh:
            for records in chain.pages():
                if read.failed:  # another task failed the stream, or the run stops: the stream raises its cause
                    task.error = read.cause
                    return
                lines = [plan.to_line(rec) for rec in records]
                fh.write(b"".join(lines))
                fh.flush()
                rows += len(records)
                ids = [rec["id"] for rec in records] if task.kind == "bin" else None
                deleted = [rec["id"] for rec in records if rec.get("isDeleted") is True]
                last = chain.last if not task.by_id and task.kind == "range" else None
                with self.cond:
                    task.marks.append(Mark(fh.tell(), len(records), last, ids, deleted))
                    self.cond.notify_all()
                if read.planner is not None and last is not None:
                    read.planner.learn(task.span, rows, last[0])
        if read.planner is not None:
            read.planner.finished(task.span)

    def _account(self, task: Task) -> None:
        plan = task.read.plan
        record = self.v5.account(plan.chain.fields, plan.stream)
        line = plan.to_line(record)
        with Path(task.path).open("ab") as fh:
            fh.write(line)
            fh.flush()  # before the mark: the stream reads up to it at once
            with self.cond:
                task.marks.append(Mark(fh.tell(), 1, None))
                self.cond.notify_all()


def chain_count(max_concurrency: int) -> int:
    """How many chains read at once: one per request slot (the exports' calls take their turn for a slot)."""
    return max(1, max_concurrency)
