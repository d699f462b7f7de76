"""What a query stream reads in a run: its plan, its tasks (page chains spooled to disk), and their pages in order.

A :class:`QueryPlan` is made by the stream from its spec, its state and the catalog. Its reads
are :class:`Task` objects: a window of an event stream, a dimension's changes, a whole object, a
recycle bin, the account. Workers (:mod:`~tap_pardot_export.engine.queryread`) read a task's pages
into its own spool file; :meth:`StreamRead.pages` hands them to the stream in order, each with
the keyset position after it (the bookmark's), as they arrive.
"""

from __future__ import annotations

import dataclasses
import typing as t
from pathlib import Path

from tap_pardot_export.engine.chains import Span
from tap_pardot_export.engine.spans import WAIT, SpanPlanner

if t.TYPE_CHECKING:
    import datetime as dt
    import threading
    from collections.abc import Callable, Iterator

    from tap_pardot_export.engine.chains import ChainSpec, Key

#: how a task reads: a time-ordered range, the whole object by id, its recycle bin by id, the account
TaskKind = t.Literal["range", "whole", "bin", "account"]


@dataclasses.dataclass(frozen=True)
class QueryPlan:
    """How one query stream is read in this run: what the engine knows of it."""

    stream: str
    chain: ChainSpec
    #: ``incremental``, ``whole``, ``events`` or ``singleton``
    mode: str
    #: the range of the date field read (a whole read: none); a bookmark's read starts after ``resume``
    start: dt.datetime | None
    #: the run's end (a whole read is not bounded by it, but an incremental one's bookmark moves to it)
    end: dt.datetime
    resume: Key | None
    #: read the whole object by id (a dimension's first run, a whole-table stream)
    whole: bool
    #: events: a fixed window length (None: sized by the data); the chains read side by side
    window: dt.timedelta | None
    chains: int
    #: after the range, the recycle bin read whole by id (an incremental dimension with one)
    bin_chain: ChainSpec | None
    #: an API record as the stream's JSON line
    to_line: Callable[[dict[str, t.Any]], bytes]


@dataclasses.dataclass
class Mark:
    """One page spooled: where its lines end in the task's file, and where the read stands after it."""

    end: int
    count: int
    #: the keyset position after the page (a time-ordered read), else None
    last: Key | None
    #: per line, its record's id (recycle-bin reads: the stream skips ids it emitted before)
    ids: list[int] | None = None
    #: the ids of the page's records that are in the recycle bin
    deleted: list[int] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Task:
    """One read of a stream (see :data:`TaskKind`), spooled to its own file."""

    read: StreamRead
    index: int
    kind: TaskKind
    span: Span
    resume: Key | None
    path: str
    chain: ChainSpec
    by_id: bool = False
    started: bool = False
    done: bool = False
    #: why it stopped before its end (its own error, the stream's, the call budget, a stop)
    error: BaseException | None = None
    marks: list[Mark] = dataclasses.field(default_factory=list)


class StreamRead:
    """One stream's tasks in this run, in emission order, and the pages read so far."""

    def __init__(self, plan: QueryPlan, spool_dir: str, cond: threading.Condition) -> None:
        """The tasks of ``plan``; ``cond`` is the reader's (guards every task's progress)."""
        self.plan, self.spool_dir, self.cond = plan, spool_dir, cond
        self.tasks: list[Task] = []
        self.failed = False
        #: why the stream's read stopped before its end (the first error), if it did
        self.cause: BaseException | None = None
        self.planner: SpanPlanner | None = None
        if plan.mode == "events" and not plan.whole and plan.start is not None and plan.end is not None:
            self.planner = SpanPlanner(plan.start, plan.end, chains=plan.chains, size=plan.window)
        else:
            self._fixed()
        self.more = self.planner is not None

    def _fixed(self) -> None:
        plan = self.plan
        kind: TaskKind = "account" if plan.mode == "singleton" else "whole" if plan.whole else "range"
        span = Span(0, None, None) if plan.whole else Span(0, plan.start, plan.end)
        self._add(kind, span, plan.chain, plan.resume, by_id=plan.whole)
        if plan.bin_chain is not None:
            self._add("bin", Span(1, None, None), plan.bin_chain, None, by_id=True)

    def _add(self, kind: TaskKind, span: Span, chain: ChainSpec, resume: Key | None, *, by_id: bool) -> Task:
        path = str(Path(self.spool_dir) / f"{self.plan.stream}-{len(self.tasks)}.jsonl")
        task = Task(self, len(self.tasks), kind, span, resume, path, chain, by_id=by_id)
        self.tasks.append(task)
        return task

    # -- the workers' side (under ``cond``) --------------------------------------------------

    def fail(self, exc: BaseException) -> None:
        """Stop the stream's read: no task starts, those running stop; ``exc`` is why (the first kept)."""
        if self.cause is None:
            self.cause = exc
        self.failed = True

    @property
    def complete(self) -> bool:
        """True when every task was read to its end and none is left."""
        return not self.more and all(x.done and x.error is None for x in self.tasks) and not self.failed

    @property
    def closed(self) -> bool:
        """True when no task of the stream is left to start."""
        return self.failed or (not self.more and all(task.started for task in self.tasks))

    def take(self) -> Task | None:
        """The next task to read (started), or None for now."""
        if self.failed:
            return None
        task = next((x for x in self.tasks if not x.started), None)
        if task is None and self.planner is not None and self.more:
            span = self.planner.next()
            if span is None:
                self.more = False
            elif span is not WAIT:
                resume = self.plan.resume if not self.tasks else None
                task = self._add("range", t.cast("Span", span), self.plan.chain, resume, by_id=self.planner.single)
        if task is not None:
            task.started = True
        return task

    # -- the stream's side -----------------------------------------------------------------

    def _task(self, k: int) -> Task | None:
        with self.cond:
            while k >= len(self.tasks) and not self.closed:
                self.cond.wait(0.5)
            return self.tasks[k] if k < len(self.tasks) else None

    def pages(self) -> Iterator[tuple[Task, Mark | None, bytes]]:
        """Each task's pages in order, as they are read: ``(task, mark, lines)``; ``(task, None, b"")`` at its end.

        Stops after a task that stopped before its end (the caller raises its ``error``); raises the
        stream's cause when the read stopped before a task was started.
        """
        k = 0
        while (task := self._task(k)) is not None:
            offset = 0
            with Path(task.path).open("a+b") as fh:
                i = 0
                while True:
                    with self.cond:
                        while i >= len(task.marks) and not task.done:
                            self.cond.wait(0.5)
                        mark = task.marks[i] if i < len(task.marks) else None
                    if mark is None:
                        break
                    fh.seek(offset)
                    data = fh.read(mark.end - offset)
                    offset, i = mark.end, i + 1
                    yield task, mark, data
            Path(task.path).unlink(missing_ok=True)
            yield task, None, b""
            if task.error is not None:
                return
            k += 1
        if self.cause is not None:
            raise self.cause
