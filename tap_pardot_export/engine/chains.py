"""One range of a v5 object read as page-token chains: keyset order, the chain cap, bursts, expired tokens.

Records come in keyset order: by ``(K, id)`` for a range of the date field ``K``, or by ``id``
for a read of the whole object. A chain of page tokens stops after 100,000 records
(``Pardot-Warning: 203``, no token), and its tokens expire after 4 hours (error 210/211): either
way the read goes on with a new query from the last key read, never stopping silently. Thousands
of records may share one second of ``K`` (a list email's sends share ``sentAt``; a mass update
gives thousands of records one ``updatedAt``): a re-query that starts after that second would
lose the rest of it, one that starts at it would loop. So the rest of the second is read by id
(``KAfterOrEqualTo=T & KBeforeOrEqualTo=T & idGreaterThan=X``), then the range after it
(``KAfter=T``). A resumed read starts the same way from its bookmark's ``(T, id)``.

A range's end may move earlier while it is read (:class:`Span`: the planner cuts the first
window once the data's density is known); records at or after the end are left for the window
that starts there.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import typing as t

from tap_pardot_export.engine.windows import api_time
from tap_pardot_export.errors import ResultFormatError
from tap_pardot_export.pardot.v5 import Query, TokenExpired

if t.TYPE_CHECKING:
    from collections.abc import Iterator

    from tap_pardot_export.pardot.v5 import Page, V5Reader

UTC = dt.timezone.utc
#: a key: the date field's instant (None in a read by id) and the id
Key = tuple[dt.datetime | None, int]


class Span:
    """A window ``[start, end)`` of the date field whose end the planner may move earlier while it is read."""

    def __init__(self, index: int, start: dt.datetime | None, end: dt.datetime | None) -> None:
        """Window number ``index`` of its stream (None bounds: unbounded)."""
        self.index = index
        self.start = start
        self._end = end
        self._lock = threading.Lock()

    @property
    def end(self) -> dt.datetime | None:
        """The exclusive end, as it is now."""
        with self._lock:
            return self._end

    def cut(self, at: dt.datetime, floor: dt.datetime | None) -> dt.datetime | None:
        """End the span at ``at``, never before ``floor`` (past what was read); the end it keeps."""
        with self._lock:
            end = max(at, floor) if floor is not None else at
            if self._end is None or end < self._end:
                self._end = end
            return self._end


@dataclasses.dataclass(frozen=True)
class ChainSpec:
    """What a chain reads: the object, its fields, its date field and its recycle-bin selection."""

    stream: str
    collection: str
    fields: tuple[str, ...]
    #: the date field keyed on; None: by id
    date_field: str | None
    deleted: str | None = None
    protected: tuple[str, ...] = ("id",)


def instant(value: t.Any, stream: str, field: str, rid: t.Any) -> dt.datetime:
    """A record's date field as an aware UTC datetime (ISO 8601 with an offset, as the API writes it)."""
    if isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value)
        except ValueError:
            when = None
        if when is not None and when.tzinfo is not None:
            return when.astimezone(UTC)
    msg = (
        f"{stream}: record {str(rid)[:40]} has {field} {str(value)[:60]!r}, not a datetime with an offset: the "
        "read cannot place it. Report it to Salesforce support if it persists."
    )
    raise ResultFormatError(msg)


class ChainRead:
    """The records of one span of one object, page by page, in keyset order (see the module docstring)."""

    def __init__(
        self, reader: V5Reader, spec: ChainSpec, span: Span, resume: Key | None = None, *, by_id: bool = False
    ) -> None:
        """Read ``span`` of ``spec`` from after ``resume`` (or from the span's start); ``by_id``: the whole object."""
        self.reader, self.spec, self.span = reader, spec, span
        self.by_id = by_id or spec.date_field is None
        self.resume = resume
        #: the key of the last record read
        self.last: Key | None = resume
        #: chains re-queried after the cap or an expired token, and bursts read by id
        self.requeried = 0

    # -- pages -----------------------------------------------------------------------------

    def pages(self) -> Iterator[list[dict[str, t.Any]]]:
        """Each page's records in the span, in keyset order (an empty list: a page wholly past the end)."""
        if self.by_id:
            yield from self._by_id()
            return
        key = t.cast("str", self.spec.date_field)
        burst = self.resume if self.resume is not None and self.resume[0] is not None else None
        lower = (f"{key}AfterOrEqualTo", self.span.start)
        while True:
            if burst is not None:
                when = t.cast("dt.datetime", burst[0])
                yield from self._burst(when, burst[1])
                lower, burst = (f"{key}After", when), None
            query = self._range_query(key, lower)
            if query is None:
                return
            ended = yield from self._chain(query)
            if ended:
                return
            self.requeried += 1
            burst = self.last

    def _range_query(self, key: str, lower: tuple[str, dt.datetime | None]) -> Query | None:
        end = self.span.end
        if end is not None and lower[1] is not None and lower[1] >= end:
            return None
        filters = [(lower[0], api_time(lower[1]))] if lower[1] is not None else []
        if end is not None:
            filters.append((f"{key}Before", api_time(end)))
        return self._query(tuple(filters), f"{key} asc,id asc")

    def _burst(self, when: dt.datetime, after_id: int) -> Iterator[list[dict[str, t.Any]]]:
        """The rest of second ``when``: its records after id ``after_id``, by id."""
        key, stamp = t.cast("str", self.spec.date_field), api_time(when)
        while True:
            last = self.last[1] if self.last is not None and self.last[0] == when else after_id
            filters = ((f"{key}AfterOrEqualTo", stamp), (f"{key}BeforeOrEqualTo", stamp), ("idGreaterThan", str(last)))
            self.requeried += 1
            if (yield from self._chain(self._query(filters, None))):
                return

    def _by_id(self) -> Iterator[list[dict[str, t.Any]]]:
        while True:
            after = self.last[1] if self.last is not None else None
            filters = (("idGreaterThan", str(after)),) if after is not None else ()
            if (yield from self._chain(self._query(filters, None))):
                return
            self.requeried += 1

    def _query(self, filters: tuple[tuple[str, str], ...], order_by: str | None) -> Query:
        spec = self.spec
        return Query(spec.collection, spec.fields, filters, order_by, spec.deleted)

    def _chain(self, query: Query) -> t.Generator[list[dict[str, t.Any]], None, bool]:
        """One chain's pages; True when it ended (or reached the span's end), False when it must be re-queried."""
        token: str | None = None
        while True:
            try:
                page = self.reader.page(query, token, self.spec.stream, self.spec.protected)
            except TokenExpired:
                if self.last is None:
                    raise
                return False  # re-queried from the last key read
            records, past_end = self._accept(page)
            yield records
            if past_end or (page.token is None and not page.capped):
                return True
            if page.token is None:  # the cap: no token, more records match
                if not page.records:
                    msg = f"{self.spec.stream}: the chain of {self.spec.collection} stopped at its cap on an empty page"
                    raise ResultFormatError(msg)
                return False
            token = page.token

    def _accept(self, page: Page) -> tuple[list[dict[str, t.Any]], bool]:
        """The page's records in the span, and whether one was at or past its end (keyset order).

        In keyset order only the last record's date needs reading unless the page reaches the
        end. A read by id of a span with bounds (an object that refused its date filter) keeps
        the records whose date field falls in the span, and goes on to the last id.
        """
        records = page.records
        if not records:
            return [], False
        for rec in (records[0], records[-1]):
            self._id(rec)
        if self.by_id:
            return self._accept_by_id(records), False
        key, end = t.cast("str", self.spec.date_field), self.span.end
        last = self._when(records[-1], key)
        if end is None or last < end:
            self.last = (last, records[-1]["id"])
            return records, False
        out: list[dict[str, t.Any]] = []
        for rec in records:
            when = self._when(rec, key)
            if when >= end:
                return out, True
            out.append(rec)
            self.last = (when, self._id(rec))
        return out, True  # pragma: no cover - the last record is at or past the end

    def _accept_by_id(self, records: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
        start, end, key = self.span.start, self.span.end, self.spec.date_field
        self.last = (None, self._id(records[-1]))
        if key is None or (start is None and end is None):
            return records
        out = []
        for rec in records:
            when = self._when(rec, key)
            if (start is None or when >= start) and (end is None or when < end):
                out.append(rec)
        return out

    def _when(self, rec: dict[str, t.Any], key: str) -> dt.datetime:
        return instant(rec.get(key), self.spec.stream, key, rec.get("id"))

    def _id(self, rec: dict[str, t.Any]) -> int:
        rid = rec.get("id")
        if not isinstance(rid, int) or isinstance(rid, bool):
            msg = f"{self.spec.stream}: a record of {self.spec.collection} has no integer id: {str(rec)[:200]!r}"
            raise ResultFormatError(msg)
        return rid
