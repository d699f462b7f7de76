"""An event stream's range as windows read side by side, one page chain each, sized by the data.

A page of 1000 records takes Pardot a second or more, so a large event stream read one page
after another takes hours; its range is read as several windows at once instead, each a chain
of its own, up to the run's concurrency. The records' density is unknown until a page is read,
so the first window is the whole range; once its first page shows how many records a second
holds, it is cut (:meth:`~tap_pardot_export.engine.chains.Span.cut`) and the rest of the range is
handed out in windows of about ``remaining / (2 x chains)`` records (between ``min_rows`` and
``max_rows``), smaller towards the end so the chains finish together. With a fixed window
length (``stream_options.<stream>.window_days``) the windows are that long from the start.
Windows are emitted in order (the bookmark moves over the first window still being read).
"""

from __future__ import annotations

import datetime as dt
import threading

from tap_pardot_export.engine.chains import Span

#: one second: the date fields' precision
SECOND = dt.timedelta(seconds=1)
#: records a window aims at, at least and at most (a page is 1000)
MIN_ROWS = 3_000
MAX_ROWS = 25_000


def whole_second(when: dt.datetime) -> dt.datetime:
    """``when`` rounded up to a whole second: windows meet where the API's filters can (they take seconds)."""
    return when if not when.microsecond else when.replace(microsecond=0) + SECOND


class Wait:
    """The planner cannot size the next window yet: the first window's first page is not read."""


WAIT = Wait()


class SpanPlanner:
    """The windows of ``[start, end)``, one at a time, for chains read side by side."""

    def __init__(
        self,
        start: dt.datetime,
        end: dt.datetime,
        *,
        chains: int,
        size: dt.timedelta | None = None,
        min_rows: int = MIN_ROWS,
        max_rows: int = MAX_ROWS,
    ) -> None:
        """Plan ``[start, end)`` for ``chains`` chains; ``size``: a fixed window length."""
        self.start, self.end = start, end
        self.chains = max(1, chains)
        self.size = size
        self.min_rows, self.max_rows = max(1, min_rows), max(min_rows, max_rows)
        self.cursor = start
        self.spans: list[Span] = []
        #: records per second, once a page told
        self.density: float | None = None
        #: no more windows after the first (the object refused its date filter: one read by id)
        self.single = False
        self._lock = threading.Lock()

    def next(self) -> Span | Wait | None:
        """The next window, :data:`WAIT` until one can be sized, or None once the range is handed out."""
        with self._lock:
            if self.single and self.spans:
                return None
            if self.size is None and self.spans and self.density is None:
                return WAIT  # the first window covers the range until its first page sizes the rest
            if self.cursor >= self.end:
                return None
            if self.size is not None:
                stop = min(whole_second(self.cursor + self.size), self.end)
            elif not self.spans:
                stop = self.end  # cut once its first page is read
            else:
                stop = min(self.end, whole_second(self.cursor + self._length()))
            span = Span(len(self.spans), self.cursor, stop)
            self.spans.append(span)
            self.cursor = stop
            return span

    def _length(self, start: dt.datetime | None = None) -> dt.timedelta:
        """The next window's length: about ``remaining / (2 x chains)`` records at the density learned."""
        start = start or self.cursor
        density = self.density or 0.0
        if density <= 0:
            return self.end - start
        remaining = density * (self.end - start).total_seconds()
        rows = min(self.max_rows, max(self.min_rows, remaining / (2 * self.chains)))
        return max(SECOND, dt.timedelta(seconds=rows / density))

    def learn(self, span: Span, rows: int, last: dt.datetime | None) -> None:
        """Window ``span`` read ``rows`` records so far, the last at ``last``: size the windows after the first."""
        if self.size is not None or self.single or last is None or span.start is None:
            return
        seconds = (last - span.start).total_seconds()
        with self._lock:
            if self.density is not None or span.index != 0 or seconds <= 0:
                return
            self.density = rows / seconds
            kept = span.cut(min(self.end, whole_second(span.start + self._length(span.start))), last + SECOND)
            self.cursor = kept if kept is not None else self.end

    def finished(self, span: Span) -> None:
        """Window ``span`` was read to its end (the first, before any cut: the whole range was)."""
        with self._lock:
            if span.index == 0 and self.density is None and self.size is None:
                self.density = 0.0
                self.cursor = self.end

    def whole(self) -> Span:
        """After the object refused its date filter: the first window becomes the whole range, read by id."""
        with self._lock:
            self.single = True
            self.cursor = self.end
            first = self.spans[0] if self.spans else Span(0, self.start, self.end)
            return Span(first.index, self.start, self.end)
