"""A query stream's sync: its pages in order, the bookmark moved over each, the recycle bin's new deletes.

The stream takes the pages its tasks read (:meth:`~tap_pardot_export.engine.querytasks.StreamRead.pages`)
as :class:`PageOut` objects, writes their lines, and calls each one's ``commit`` once its lines
are out (a BATCH file may hold several pages): the state then moves over what was written:

- a time-ordered read: the bookmark to the last record's ``(K, id)`` (``replication_key_value`` and
  ``last_id``), then to its window's end once the window is read whole;
- a dimension's first run (read whole by id): the bookmark to the run's end once read whole;
- the recycle bin of an incremental dimension: only the records not emitted as deleted before
  (``recycle_bin_ids``, replaced by the bin's ids once read whole); a bin larger than
  :data:`MAX_BIN_IDS` is not remembered and is emitted whole each run.

A stream stopped by the call budget (``max_api_calls``, or the daily allowance's reserve) ends
cleanly where its bookmark is when it keeps one (a read of a whole object would be partial: that
raises). Any other stop raises its cause, the
bookmark where the emitted records allow.
"""

from __future__ import annotations

import dataclasses
import functools
import typing as t

import orjson

from tap_pardot_export.engine.windows import api_time
from tap_pardot_export.errors import CallBudgetSpent

if t.TYPE_CHECKING:
    import datetime as dt
    import logging
    from collections.abc import Callable, Iterator

    from tap_pardot_export.engine.querytasks import Mark, StreamRead, Task
    from tap_pardot_export.engine.state import StreamState

#: recycle-bin ids a stream's state remembers, at most
MAX_BIN_IDS = 10_000


class QuerySynced(t.Protocol):
    """What the engine needs of a query stream (the Singer side implements it)."""

    @property
    def name(self) -> str:
        """The stream's name."""

    @property
    def logger(self) -> logging.Logger:
        """The stream's logger."""

    @property
    def incremental(self) -> bool:
        """True when it keeps a bookmark."""

    @property
    def bookmark_key(self) -> str:
        """The replication key as records and state name it ("" for none)."""

    def sync_state(self) -> StreamState:
        """Its state."""

    def emit_state(self) -> None:
        """Write a STATE message."""


@dataclasses.dataclass
class PageOut:
    """A page's JSON lines (without newlines), and what to call once they are written."""

    lines: list[bytes]
    #: moves the state over the page (or, at a read's end, over it; or raises why the read stopped)
    commit: Callable[[], None]


class QuerySync:
    """One query stream's pages, in order, with its state moved between them."""

    def __init__(self, stream: QuerySynced, read: StreamRead) -> None:
        """Emit ``read``'s pages for ``stream``."""
        self.stream, self.read = stream, read
        self.state = stream.sync_state()
        self.known = self.state.bin_ids()
        self.deleted: set[int] = set()  # emitted as deleted in this run
        self.bin_seen: list[int] = []
        #: the bookmark as it stands: it never moves back
        self.mark: dt.datetime | None = self.state.bookmark() if stream.incremental else None
        self.rows = self.pages_written = 0

    def pages(self) -> Iterator[PageOut]:
        """Each page's JSON lines in order; its ``commit`` moves the state once they are written."""
        for task, mark, data in self.read.pages():
            if mark is None:
                yield PageOut([], functools.partial(self._task_end, task))
                continue
            lines = data.splitlines()
            if task.kind == "bin":
                lines = self._new_deletes(mark, lines)
            else:
                self.deleted.update(mark.deleted)
            self.rows += len(lines)
            self.pages_written += 1
            yield PageOut(lines, functools.partial(self._page_done, mark))

    def _page_done(self, mark: Mark) -> None:
        if mark.last is not None and mark.last[0] is not None:
            self._move(mark.last[0], mark.last[1])

    def _new_deletes(self, mark: Mark, lines: list[bytes]) -> list[bytes]:
        """The recycle bin's records not emitted as deleted before (in an earlier run, or by this run's read)."""
        ids = mark.ids or []
        self.bin_seen.extend(ids)
        skip = self.known | self.deleted
        if len(ids) != len(lines):  # pragma: no cover - one id per line, by construction
            ids = [orjson.loads(line)["id"] for line in lines]
        return [line for rid, line in zip(ids, lines, strict=True) if rid not in skip]

    def _move(self, when: dt.datetime, last_id: int | None) -> None:
        """Move the bookmark forward to ``(when, last_id)`` (never back) and write the state."""
        stream = self.stream
        if not stream.incremental or not stream.bookmark_key:
            return
        if self.mark is not None and when <= self.mark:
            held = self.state.last_id()  # at one second: (T, no id) is before (T, any id)
            if when < self.mark or last_id is None or (held is not None and last_id <= held):
                return
        self.mark = when
        self.state.set_keyset(stream.bookmark_key, when, last_id)
        stream.emit_state()

    def _task_end(self, task: Task) -> None:
        """A task ended: move the state over it, or raise why it stopped (a clean stop returns)."""
        if task.error is not None:
            self._stopped(task.error)
            return
        plan = self.read.plan
        if task.kind == "range" and task.span.end is not None:
            self._move(task.span.end, None)
        elif task.kind == "whole" and plan.mode == "incremental":
            self._move(plan.end, None)  # the first run read the dimension whole, its recycle bin included
            if plan.chain.deleted and self.stream.incremental:
                self._keep_bin(self.deleted)
        elif task.kind == "bin" and self.stream.incremental:
            self._keep_bin(self.bin_seen)

    def _keep_bin(self, ids: set[int] | list[int]) -> None:
        """Remember the ids in the recycle bin now: the next run emits only the others it finds there."""
        if len(ids) > MAX_BIN_IDS:
            self.stream.logger.info(
                "%s: %d records in the recycle bin, more than the state keeps (%d): the next run emits them all again",
                self.stream.name,
                len(ids),
                MAX_BIN_IDS,
            )
            self.state.set_bin_ids(None)
        else:
            self.state.set_bin_ids(ids)
        self.stream.emit_state()

    def _stopped(self, exc: BaseException) -> None:
        """The read stopped before its end: a clean stop for the call budget where a bookmark holds, else raise."""
        stream = self.stream
        if isinstance(exc, CallBudgetSpent) and stream.incremental and stream.bookmark_key:
            where = api_time(self.mark) if self.mark is not None else "its last bookmark"
            stream.logger.warning(
                "%s: %s is spent: stopping here with resumable state (bookmark %s). The next run continues from it.",
                stream.name,
                exc.setting,
                where,
            )
            return
        raise exc
