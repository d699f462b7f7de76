"""The query streams: one class, one instance per v5 object, its pages read in the background by the engine.

A :class:`QueryStream` is made from its :class:`~tap_pardot_export.spec.StreamSpec` (kind
``query``) and the run's settings: its schema (the spec's fields, typed, under their snake_case
columns; with capture_deletes and a recycle bin, ``_sdc_deleted_at``), and its plan (what the
engine reads: :class:`~tap_pardot_export.engine.querytasks.QueryPlan`). The run's
:class:`~tap_pardot_export.engine.queryread.QueryReader` reads every selected query stream from
the run's first stream on, beside the exports; when the run syncs this stream, it writes the
pages read so far and those still coming, in order, its state moving over each.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
import typing as t

import orjson
from singer_sdk.singerlib import Metadata, MetadataMapping
from typing_extensions import override

from tap_pardot_export.columns import (
    BUSINESS_UNIT,
    Columns,
    business_unit_column,
    rename_properties,
)
from tap_pardot_export.engine.chains import ChainSpec
from tap_pardot_export.engine.jsonrows import Column, RowWriter
from tap_pardot_export.engine.queryrun import QuerySync
from tap_pardot_export.engine.querytasks import QueryPlan
from tap_pardot_export.engine.queue import prefetch_next
from tap_pardot_export.engine.state import StreamState
from tap_pardot_export.engine.sync import FIRST_WINDOW_COST
from tap_pardot_export.errors import PardotConfigError
from tap_pardot_export.records import write_page_batches
from tap_pardot_export.sdk_compat import TypeConformanceLevel, mark_state_flushed
from tap_pardot_export.stream_base import DELETED_AT, PardotStream

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

    from tap_pardot_export.engine.queryrun import PageOut
    from tap_pardot_export.engine.querytasks import StreamRead
    from tap_pardot_export.engine.session import ExportSession
    from tap_pardot_export.sdk_compat import BaseBatchFileEncoding, BatchConfig
    from tap_pardot_export.session import SessionProvider, StreamFailures
    from tap_pardot_export.settings.config import Settings
    from tap_pardot_export.spec import QueryDetails, StreamSpec

#: the column that says a record is in Pardot's recycle bin
IS_DELETED = "is_deleted"


class QueryStream(PardotStream):
    """A stream whose records come from the v5 query API, page by page."""

    is_sorted = False
    #: rows are typed once, from the spec, by the engine's row writer
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(
        self, tap: Tap, spec: StreamSpec, settings: Settings, sessions: SessionProvider, failures: StreamFailures
    ) -> None:
        """The stream of ``spec`` (a query spec); ``sessions`` gives the run's session and its query reader."""
        details = t.cast("QueryDetails", spec.query)
        never_null = frozenset(spec.never_null_fields)
        self.columns = Columns(spec.name)
        unit = business_unit_column(self.columns, on=settings.business_unit_key)
        properties = {**unit, **rename_properties(self.columns, details.properties(never_null))}
        if settings.capture_deletes and details.recycle_bin:
            properties[DELETED_AT] = {"type": ["string", "null"], "format": "date-time"}
        schema = {"type": "object", "properties": properties, "required": [*unit, "id"]}
        super().__init__(tap=tap, schema=schema, name=spec.name)
        self.primary_keys = [*unit, "id"]
        #: set on every record, first (business_unit_key)
        self.constants = {BUSINESS_UNIT: settings.connection.business_unit_id} if unit else {}
        self.replication_key = self.columns.column_of(spec.replication_key) if spec.replication_key else None
        self.spec, self.details, self.settings = spec, details, settings
        self.sessions, self.failures = sessions, failures
        self._out_of_range: set[str] = set()
        self.read: StreamRead | None = None
        sessions.preflights.append(self.check_catalog)

    # -- what the engine needs --------------------------------------------------------------

    @property
    def incremental(self) -> bool:
        """True when it keeps a bookmark (an incremental or event stream the catalog leaves incremental)."""
        return self.replication_key is not None and self.replication_method == "INCREMENTAL"

    @property
    def bookmark_key(self) -> str:
        """Its replication key's column ("" for a stream read whole)."""
        return self.replication_key or ""

    def sync_state(self) -> StreamState:
        """Its state (the whole stream's)."""
        return StreamState(self.get_context_state(None))

    @override
    def emit_state(self) -> None:
        """Write the tap's STATE through its public state writer."""
        self.sessions.write_state(self.tap_state)
        mark_state_flushed(self, flushed=True)

    def plan(self, session: ExportSession, chains: int) -> QueryPlan:
        """How the stream is read in this run: from its spec, its state, the catalog and the run's end."""
        details, settings = self.details, self.settings
        state = self.sync_state()
        bookmark = state.bookmark() if self.incremental else None
        mode = details.mode
        start: dt.datetime | None = None
        resume = None
        if mode == "events":
            start = max(bookmark, settings.start_date) if bookmark and settings.start_date else settings.start_date
            last_id = state.last_id() if bookmark is not None and start == bookmark else None
            resume = (start, last_id) if start is not None and last_id is not None else None
        elif mode == "incremental" and bookmark is not None:
            start, last_id = bookmark, state.last_id()
            resume = (bookmark, last_id) if last_id is not None else None
        whole = mode in ("whole", "singleton") or (mode == "incremental" and start is None)
        chain = self.chain_spec("all" if details.recycle_bin else None)
        bin_chain = self.chain_spec("true") if details.recycle_bin and mode == "incremental" and not whole else None
        window = self.settings.stream_options.get(self.name, {}).get("window_days")
        return QueryPlan(
            stream=self.name,
            chain=chain,
            mode=mode,
            start=start,
            end=session.run_end,
            resume=resume,
            whole=whole,
            window=dt.timedelta(days=float(window)) if window else None,
            chains=chains,
            bin_chain=bin_chain,
            to_line=self.row_writer(session.run_end),
        )

    def chain_spec(self, deleted: str | None) -> ChainSpec:
        """What its chains read: the selected fields as the API names them, id and the date field included."""
        key = self.details.date_field if self.details.mode in ("incremental", "events") else None
        protected = tuple(filter(None, ("id", key)))
        return ChainSpec(self.name, self.details.collection, tuple(self.requested_fields()), key, deleted, protected)

    def requested_fields(self) -> list[str]:
        """The selected fields as the API names them; id, the date field and isDeleted always."""
        selected = set(self.selected_properties())
        local = (DELETED_AT, BUSINESS_UNIT)
        names = [self.columns.api_name(c) for c in self.schema["properties"] if c in selected and c not in local]
        key = self.details.date_field if self.details.mode in ("incremental", "events") else None
        must = [n for n in ("id", key, "isDeleted" if self.details.recycle_bin else None) if n]
        return [*[n for n in must if n not in names], *names]

    def row_writer(self, run_end: dt.datetime) -> RowWriter:
        """An API record as this stream's JSON line: the selected columns, typed."""
        selected = set(self.selected_properties())
        types = dict(self.details.fields)
        never_null = set(self.spec.never_null_fields)
        columns = [
            Column(
                self.columns.api_name(c), c, types[self.columns.api_name(c)], self.columns.api_name(c) not in never_null
            )
            for c in self.schema["properties"]
            if c in selected and c not in (DELETED_AT, BUSINESS_UNIT)
        ]
        stamped = DELETED_AT in self.schema["properties"] and DELETED_AT in selected
        stamp = run_end.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
        return RowWriter(
            self.name,
            columns,
            deleted_column=DELETED_AT if stamped else None,
            deleted_at=stamp,
            out_of_range=self.out_of_range,
            constants=self.constants,
        )

    def out_of_range(self, column: str, value: str) -> None:
        """A datetime outside years 1 to 9999 in UTC was emitted as null (said once per column)."""
        if column not in self._out_of_range:
            self._out_of_range.add(column)
            self.logger.warning(
                "%s: column %r holds %r, whose UTC instant falls outside years 1 to 9999: emitted as null (and so "
                "is every other such value of this column in this run, without another warning)",
                self.name,
                column,
                value[:40],
            )

    # -- the catalog ---------------------------------------------------------------------

    @property
    @override
    def metadata(self) -> MetadataMapping:
        """The SDK's metadata; ``is_deleted`` and ``_sdc_deleted_at`` cannot be deselected (they mark deletes)."""
        md = super().metadata
        for name in (IS_DELETED, DELETED_AT):
            entry = md.get(("properties", name)) if name in self.schema["properties"] else None
            if entry is not None:
                entry.inclusion = Metadata.InclusionType.AUTOMATIC
        return md

    # -- records -------------------------------------------------------------------------

    def _pages(self) -> Iterator[PageOut]:
        """The stream's pages as JSON lines, in order; each page's ``commit`` moves the state once it is out."""
        session = self.sessions.open()
        session.announce()
        if self.read is None:  # pragma: no cover - the reader registers every selected stream
            msg = f"{self.name}: the stream was not read (it was not selected when the run started)"
            raise PardotConfigError(msg)
        with contextlib.suppress(Exception):  # a courtesy: the next export stream's first export queued now
            prefetch_next(self.name, session, FIRST_WINDOW_COST)
        sync, t0 = QuerySync(self, self.read), time.monotonic()
        yield from sync.pages()
        self.logger.info(
            "%s: summary: %d row(s) in %d page(s), %.1fs emitting (read beside the other streams)",
            self.name,
            sync.rows,
            sync.pages_written,
            time.monotonic() - t0,
        )

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        """Typed records (the SDK's general path); a page's state moves once its last record was taken."""
        loads = orjson.loads
        for page in self._pages():
            for line in page.lines:
                yield loads(line)
            page.commit()

    @override
    def write_records_fast(self, context: Context | None) -> None:
        """Write RECORD messages straight from the typed lines, each page's state after it."""
        out = self.sessions.open().out
        prefix = b'{"type":"RECORD","stream":' + orjson.dumps(self.name) + b',"record":'
        with self.get_record_counter() as counter, self.get_sync_timer():
            for page in self._pages():
                if page.lines:
                    stamp = dt.datetime.now(dt.timezone.utc).isoformat()
                    suffix = b',"time_extracted":"' + stamp.encode() + b'"}\n'
                    out.write(b"".join(prefix + line + suffix for line in page.lines))
                    out.flush()
                    counter.increment(len(page.lines))
                    mark_state_flushed(self, flushed=False)
                page.commit()

    @override
    def get_batches(
        self, batch_config: BatchConfig, context: Context | None = None
    ) -> Iterable[tuple[BaseBatchFileEncoding, list[str]]]:
        """JSON Lines batch files written straight from the typed lines; the state moves after their BATCH."""
        if batch_config.encoding.format != "jsonl":
            yield from super().get_batches(batch_config, context)
            return
        yield from write_page_batches(self._pages(), batch_config, f"{self.tap_name}--{self.name}")
