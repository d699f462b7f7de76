"""The six export streams: declarative classes over one export-driven base."""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import gzip
import hashlib
import itertools
import json
import sys
import time
import typing as t
import uuid
from dataclasses import dataclass
from importlib import resources

import orjson
from singer_sdk import Stream
from singer_sdk.helpers._typing import TypeConformanceLevel
from singer_sdk.mapper import SameRecordTransform
from typing_extensions import override

from tap_pardot_export.convert import CellError, LocalDateTimeConverter, infer_offset, row_typer
from tap_pardot_export.errors import ResultFormatError
from tap_pardot_export.exports import ExportInfo, ExportSpec
from tap_pardot_export.windows import api_time, tile

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from singer_sdk.helpers._batch import BaseBatchFileEncoding, BatchConfig
    from singer_sdk.helpers.types import Context

    from tap_pardot_export.exports import ResultFile
    from tap_pardot_export.tap import TapPardotExport

#: procedure name -> (after argument, before argument, the record field it filters on)
Procedures = dict[str, tuple[str, str, str | None]]
BY_UPDATED = ("updated_after", "updated_before", "updated_at")
BY_CREATED = ("created_after", "created_before", "created_at")
#: filters on the linked prospect's updated_at, which the rows do not carry
BY_PROSPECT_UPDATED = ("prospect_updated_after", "prospect_updated_before", None)
DELETED_ONLY: dict[str, tuple[str, ...]] = {"filter_by_updated_at": ("deleted",), "filter_by_created_at": ("deleted",)}


def load_schema(name: str) -> dict[str, t.Any]:
    text = (resources.files("tap_pardot_export") / "schemas" / f"{name}.json").read_text()
    return json.loads(text)


@dataclass
class FileRows:
    """One result file being read: its rows, the function typing them, and how many were read."""

    stream: str
    file: ResultFile
    header: list[str]  # the requested fields, in the file's column order
    rows: Iterator[list[str]]
    type_row: t.Callable[[list[str]], dict[str, t.Any]]
    count: int = 0

    @classmethod
    def of(
        cls, stream: str, file: ResultFile, properties: dict[str, t.Any], datetime_conv: t.Callable[[str], str]
    ) -> FileRows:
        """The rows of a checked result file, keyed by the requested field names (see ``ResultFile.check``)."""
        return cls(stream, file, file.names, file.rows(), row_typer(file.columns, properties, datetime_conv))

    def records(self, drop: t.Sequence[str] = ()) -> Iterator[dict[str, t.Any]]:
        """The file's typed records, without the ``drop`` fields; ``count`` follows along."""
        type_row = self.type_row
        for n, cells in enumerate(self.rows, 1):
            try:
                rec = type_row(cells)
            except CellError as exc:
                raise self.error(n, cells, exc) from None
            for name in drop:
                rec.pop(name, None)
            self.count = n
            yield rec

    def error(self, n: int, cells: list[str], exc: Exception) -> ResultFormatError:
        """The message for a cell that does not fit: stream, export, file, row, id and column."""
        columns = self.file.columns
        k = columns.index("id") if "id" in columns else -1
        rid = cells[k][:40] if 0 <= k < len(cells) and cells[k] else "?"
        msg = (
            f"{self.stream}: export {self.file.export.id}, result file {self.file.index + 1}, row {n} "
            f"(id {rid}): {exc}. Pardot sent a value the field's type does not allow; rerun, and report it "
            "to Salesforce support if it persists (a field other than id and the replication key can be "
            "deselected)."
        )
        return ResultFormatError(msg)


class PardotExportStream(Stream):
    """A stream whose rows come from Export API exports, one per time window."""

    object_name: t.ClassVar[str]
    default_procedure: t.ClassVar[str] = "filter_by_updated_at"
    procedures: t.ClassVar[Procedures]
    #: extra procedure arguments a user may set, per procedure
    extra_arguments: t.ClassVar[dict[str, tuple[str, ...]]] = {}
    primary_keys: t.ClassVar[list[str]] = ["id"]  # type: ignore[misc]
    replication_key = "updated_at"
    is_sorted = False
    #: rows are typed once, from the schema, by convert.row_typer
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(self, tap: TapPardotExport) -> None:
        schema = load_schema(self.name)
        for name in tap.custom_fields_for(self.name):
            schema["properties"].setdefault(name, {"type": ["string", "null"]})
        super().__init__(tap=tap, schema=schema, name=self.name)
        self.ptap = tap

    # -- settings ------------------------------------------------------------------------

    @property
    def options(self) -> dict[str, t.Any]:
        return dict((self.config.get("stream_options") or {}).get(self.name) or {})

    @property
    def procedure(self) -> str:
        return str(self.options.get("procedure") or self.default_procedure)

    def window_size(self) -> dt.timedelta:
        days = self.options.get("window_days", self.config.get("window_days", 30))
        return dt.timedelta(days=float(days))

    def requested_fields(self) -> list[str]:
        """The selected properties, id and the replication key always included."""
        mask = self.mask
        fields = [name for name in self.schema["properties"] if mask.get(("properties", name), True)]
        for must in (*self.primary_keys, self.replication_key):
            if must and must not in fields:
                fields.insert(0, must)
        return fields

    # -- state ---------------------------------------------------------------------------

    def _checkpoint(self, context: Context | None, bookmark: dt.datetime | None, pending: dict | None) -> None:
        """Record progress: the finished range and the export in flight, then emit STATE."""
        if self.replication_method != "INCREMENTAL":
            return
        state = self.get_context_state(context)
        if bookmark is not None:
            state["replication_key"] = self.replication_key
            state["replication_key_value"] = api_time(bookmark)
        state.pop("progress_markers", None)
        if pending:
            state["pending_export"] = pending
        else:
            state.pop("pending_export", None)
        self.state_manager.is_flushed = False
        self._write_state_message()

    @override
    def _increment_stream_state(self, latest_record: dict, *, context: Context | None = None) -> None:
        """Bookmarks move per finished window (see :meth:`_checkpoint`), not per record:
        rows inside an export come in no order."""

    # -- records -------------------------------------------------------------------------

    def _converter(self, info: ExportInfo, last: list[LocalDateTimeConverter | None]) -> LocalDateTimeConverter:
        """The datetime converter for an export's files: the configured zone, else inferred."""
        conv = last[0]
        zone = self.ptap.zone
        if zone is not None:
            if conv is None:
                conv = LocalDateTimeConverter(zone)
        elif info.created_at and info.requested_at:
            offset = infer_offset(info.created_at, info.requested_at)
            self.ptap.warn_no_timezone(offset)
            offset = dt.timedelta(0) if offset is None else offset  # unknown: read as UTC, as warned
            if conv is None or conv.zone.utcoffset(None) != offset:
                conv = LocalDateTimeConverter(dt.timezone(offset))
        elif conv is None:
            self.ptap.warn_no_timezone(None)
            conv = LocalDateTimeConverter(dt.timezone.utc)
        last[0] = conv
        return conv

    def get_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        """Typed records of every result file of every window (the SDK's general path)."""
        for part in self._result_files(context):
            yield from part.records()

    def _fast_path_ok(self, write_messages: bool) -> bool:
        """True when records can be written straight from the typed rows.

        That is: no stream maps or flattening, no record limit (as in ``--test``), no
        ACTIVATE_VERSION stamping. Otherwise the SDK's general path runs.
        """
        maps = self.stream_maps
        return (
            write_messages
            and self.selected
            and self.ABORT_AT_RECORD_COUNT is None
            and len(maps) == 1
            and type(maps[0]) is SameRecordTransform
            and maps[0].stream_alias == self.name
            and not self.config.get("flattening_enabled")
            and not getattr(self, "_stream_version", None)
        )

    @override
    def _sync_records(
        self, context: Context | None = None, *, write_messages: bool = True
    ) -> t.Generator[dict, t.Any, t.Any]:
        """Write RECORD messages straight from the typed rows when nothing needs the SDK's
        per-record machinery (the types are already those of the schema: see row_typer)."""
        if not self._fast_path_ok(write_messages):
            yield from super()._sync_records(context, write_messages=write_messages)
            return
        record_counter = self.get_record_counter()
        timer = self.get_sync_timer()
        out = sys.stdout.buffer
        prefix = b'{"type":"RECORD","stream":' + orjson.dumps(self.name) + b',"record":'
        selected = set(self.mask_selected_properties())
        with record_counter, timer:
            for part in self._result_files(context):
                stamp = dt.datetime.now(dt.timezone.utc).isoformat()
                suffix = b',"time_extracted":"' + stamp.encode() + b'"}\n'
                drop = [name for name in part.header if name not in selected]
                dumps = orjson.dumps
                buf: list[bytes] = []
                for rec in part.records(drop):
                    buf.append(prefix + dumps(rec) + suffix)
                    if len(buf) == 1000:
                        out.write(b"".join(buf))
                        buf.clear()
                        record_counter.increment(1000)
                if buf:
                    out.write(b"".join(buf))
                    record_counter.increment(len(buf))
                out.flush()
                self.state_manager.is_flushed = False
        if not context:
            self._finalize_state(self.stream_state)
        self._write_state_message()

    @override
    def get_batches(
        self, batch_config: BatchConfig, context: Context | None = None
    ) -> Iterable[tuple[BaseBatchFileEncoding, list[str]]]:
        """JSON Lines batch files written straight from the CSV rows, one manifest per file.

        Bookmarks stay right: the window's checkpoint is emitted after its last BATCH message,
        as :meth:`_result_files` checkpoints only once every file of the window was handed over.
        """
        encoding = batch_config.encoding
        if encoding.format != "jsonl":
            yield from super().get_batches(batch_config, context)
            return
        gz = encoding.compression == "gzip"
        storage = batch_config.storage
        prefix = storage.prefix or ""
        size = max(1, int(batch_config.batch_size or 10_000))
        selected = set(self.mask_selected_properties())
        run_id = uuid.uuid4().hex[:12]
        seq = 0
        dumps = orjson.dumps

        def write(filename: str, lines: list[bytes]) -> str:
            data = b"".join(lines)
            with storage.open(filename, "wb") as fh:
                fh.write(gzip.compress(data, compresslevel=1) if gz else data)  # zlib runs without the GIL
            return storage.get_url(filename)

        # one file is compressed and written in the background while the next is typed
        with cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-writer") as pool:
            for part in self._result_files(context):
                drop = [name for name in part.header if name not in selected]
                records = part.records(drop)
                pending: cf.Future[str] | None = None
                while True:
                    lines = [dumps(rec) + b"\n" for rec in itertools.islice(records, size)]
                    if not lines:
                        break
                    seq += 1
                    ext = ".json.gz" if gz else ".json"
                    future = pool.submit(write, f"{prefix}{self.tap_name}--{self.name}-{run_id}-{seq}{ext}", lines)
                    if pending is not None:
                        yield encoding, [pending.result()]
                    pending = future
                if pending is not None:  # the file's last batch goes out before its window's checkpoint
                    yield encoding, [pending.result()]

    def mask_selected_properties(self) -> list[str]:
        """Properties selected in the catalog."""
        mask = self.mask
        return [name for name in self.schema["properties"] if mask.get(("properties", name), True)]

    def _result_files(self, context: Context | None) -> Iterator[FileRows]:
        """Run the windows' exports; yield each result file's rows, checkpointing after each window.

        The consumer sets ``count`` on each :class:`FileRows` once it has read it.
        """
        tap = self.ptap
        after_arg, before_arg, _ = self.procedures[self.procedure]
        self._write_starting_replication_value(context)  # BATCH mode skips the SDK's own call
        start = self.get_starting_timestamp(context)
        if start is None:  # pragma: no cover - start_date is required
            raise ResultFormatError(f"{self.name}: no start_date")
        if start.tzinfo is None:
            start = start.replace(tzinfo=dt.timezone.utc)
        end = tap.run_end
        windows = tile(start, end, self.window_size())
        state = self.get_context_state(context)
        pending = state.get("pending_export") or {}
        runner = tap.runner
        fields = self.requested_fields()
        props = self.schema["properties"]
        extra = dict(self.options.get("arguments") or {})
        conv: list[LocalDateTimeConverter | None] = [None]
        calls0 = tap.client.api_calls
        t0 = time.monotonic()
        exports = rows = 0
        self.logger.info(
            "%s: %d window(s) from %s to %s, procedure %s",
            self.name,
            len(windows),
            api_time(start),
            api_time(end),
            self.procedure,
        )
        window_cost = 4  # create, a couple of reads, one file: refined by each finished window
        for w in windows:
            left = tap.client.budget_left()
            if left is not None and left < window_cost:
                self.logger.warning(
                    "%s: max_api_calls=%s leaves %d call(s), fewer than a window costs (~%d): stopping here "
                    "with resumable state (bookmark %s). The next run continues from it.",
                    self.name,
                    tap.client.max_api_calls,
                    left,
                    window_cost,
                    api_time(w.start),
                )
                break
            w_calls0 = tap.client.api_calls
            arguments = {after_arg: api_time(w.after), before_arg: api_time(w.before), **extra}
            label = f"{self.name} [{api_time(w.start)} .. {api_time(w.end)})"
            spec = ExportSpec(self.object_name, fields, self.procedure, arguments, label)
            resume = None
            # an export from an interrupted run is reused only for the very same query
            query = hashlib.sha256(orjson.dumps(spec.body(), option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]
            if pending.get("query") == query:
                resume = pending.get("id")

            def created(info: ExportInfo, w_args: dict = arguments, query: str = query) -> None:
                self._checkpoint(
                    context,
                    None,
                    {"id": info.id, "after": w_args[after_arg], "before": w_args[before_arg], "query": query},
                )

            w_rows = 0
            info: ExportInfo | None = None
            for rf in runner.run(spec, resume_id=resume, on_created=created):
                info = rf.export
                part = FileRows.of(self.name, rf, props, self._converter(info, conv))
                yield part
                info.rows += part.count
                w_rows += part.count
            exports += 1
            rows += w_rows
            if info is not None:
                self.logger.info(
                    "%s: export %s done: waited %.1fs, %d file(s), %d row(s)",
                    label,
                    info.id,
                    info.waited,
                    info.files,
                    info.rows,
                )
            self._checkpoint(context, w.end, None)
            pending = {}
            window_cost = max(window_cost, tap.client.api_calls - w_calls0)
        self.logger.info(
            "%s: summary: %d row(s), %d export(s), %d API call(s), %.1fs; run so far: %d API call(s) %s",
            self.name,
            rows,
            exports,
            tap.client.api_calls - calls0,
            time.monotonic() - t0,
            tap.client.api_calls,
            dict(tap.client.calls),
        )


class ProspectStream(PardotExportStream):
    name = "prospect"
    object_name = "prospect"
    procedures: t.ClassVar[Procedures] = {
        "filter_by_updated_at": BY_UPDATED,
        "filter_by_created_at": BY_CREATED,
    }
    extra_arguments: t.ClassVar[dict[str, tuple[str, ...]]] = DELETED_ONLY


class VisitorStream(PardotExportStream):
    name = "visitor"
    object_name = "visitor"
    procedures: t.ClassVar[Procedures] = {
        "filter_by_updated_at": BY_UPDATED,
        "filter_by_prospect_updated_at": BY_PROSPECT_UPDATED,
    }
    extra_arguments: t.ClassVar[dict[str, tuple[str, ...]]] = {
        "filter_by_updated_at": ("deleted",),
        "filter_by_prospect_updated_at": ("prospect_deleted",),
    }


class VisitorActivityStream(PardotExportStream):
    name = "visitor_activity"
    object_name = "visitorActivity"
    procedures: t.ClassVar[Procedures] = {
        "filter_by_updated_at": BY_UPDATED,
        "filter_by_created_at": BY_CREATED,
    }
    extra_arguments: t.ClassVar[dict[str, tuple[str, ...]]] = {
        "filter_by_updated_at": ("type", "prospectOnly"),
        "filter_by_created_at": ("type", "prospect_only"),
    }


class ListMembershipStream(PardotExportStream):
    name = "list_membership"
    object_name = "listMembership"
    procedures: t.ClassVar[Procedures] = {
        "filter_by_updated_at": BY_UPDATED,
        "filter_by_created_at": BY_CREATED,
    }
    extra_arguments: t.ClassVar[dict[str, tuple[str, ...]]] = DELETED_ONLY


class ProspectAccountStream(PardotExportStream):
    name = "prospect_account"
    object_name = "prospectAccount"
    procedures: t.ClassVar[Procedures] = {
        "filter_by_updated_at": BY_UPDATED,
        "filter_by_prospect_updated_at": BY_PROSPECT_UPDATED,
    }
    extra_arguments: t.ClassVar[dict[str, tuple[str, ...]]] = {
        "filter_by_updated_at": ("deleted",),
        "filter_by_prospect_updated_at": ("prospect_deleted",),
    }


class ExternalActivityStream(PardotExportStream):
    name = "external_activity"
    object_name = "externalActivity"
    replication_key = "createdAt"
    default_procedure = "filter_by_created_at"
    procedures: t.ClassVar[Procedures] = {
        "filter_by_created_at": ("created_after", "created_before", "createdAt"),
        "filter_by_activity_date": ("activity_after", "activity_before", "activityDate"),
    }


STREAM_TYPES: tuple[type[PardotExportStream], ...] = (
    ProspectStream,
    VisitorStream,
    VisitorActivityStream,
    ListMembershipStream,
    ProspectAccountStream,
    ExternalActivityStream,
)
