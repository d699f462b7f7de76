"""The six export streams: declarative classes over one export-driven base."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import datetime as dt
import gzip
import itertools
import json
import typing as t
import uuid
from dataclasses import dataclass
from importlib import resources

import orjson
from singer_sdk.mapper import SameRecordTransform
from typing_extensions import override

from tap_pardot_export.convert import CellError, LocalDateTimeConverter, row_typer
from tap_pardot_export.errors import PardotConfigError, ResultFormatError
from tap_pardot_export.sdk_compat import ExportStreamHooks, TypeConformanceLevel, write_starting_replication_value
from tap_pardot_export.sync import RecycleBin, result_files
from tap_pardot_export.windows import parse_setting_datetime

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

    from tap_pardot_export.exports import ResultFile
    from tap_pardot_export.sdk_compat import BaseBatchFileEncoding, BatchConfig
    from tap_pardot_export.session import SessionProvider

#: procedure name -> (after argument, before argument, the record field it filters on)
Procedures = dict[str, tuple[str, str, str | None]]
BY_UPDATED = ("updated_after", "updated_before", "updated_at")
BY_CREATED = ("created_after", "created_before", "created_at")
#: filters on the linked prospect's updated_at, which the rows do not carry
BY_PROSPECT_UPDATED = ("prospect_updated_after", "prospect_updated_before", None)
#: the rows an export aims at when window_days is not set
DEFAULT_ROWS_PER_EXPORT = 500_000
#: when capture_deletes is on: when the record was seen in Pardot's recycle bin (null: live)
DELETED_AT = "_sdc_deleted_at"
#: the streams whose export procedures take deleted / prospect_deleted (see capture_deletes)
DELETES_STREAMS = ("prospect", "visitor", "list_membership", "prospect_account")
DELETED_ONLY: dict[str, tuple[str, ...]] = {"filter_by_updated_at": ("deleted",), "filter_by_created_at": ("deleted",)}
#: RECORD lines written to stdout at once: this many, or fewer when they hold this many bytes (wide records)
WRITE_RECORDS = 1000
WRITE_BYTES = 2**20
#: a BATCH file holds batch_size records, or fewer when they hold this many bytes of JSON (wide records)
BATCH_FILE_BYTES = 64 * 2**20


def batch_lines(records: Iterator[dict[str, t.Any]], size: int) -> list[bytes]:
    """The next BATCH file's JSON lines: ``size`` records, or fewer once they hold BATCH_FILE_BYTES."""
    lines: list[bytes] = []
    held = 0
    dumps = orjson.dumps
    for rec in itertools.islice(records, size):
        line = dumps(rec) + b"\n"
        lines.append(line)
        held += len(line)
        if held >= BATCH_FILE_BYTES:
            break
    return lines


def load_schema(name: str) -> dict[str, t.Any]:
    """The stream's JSON schema, from the package's schemas/ folder."""
    text = (resources.files("tap_pardot_export") / "schemas" / f"{name}.json").read_text()
    return t.cast("dict[str, t.Any]", json.loads(text))


@dataclass
class FileRows:
    """One result file being read: its rows, the function typing them, and how many were read."""

    stream: str
    file: ResultFile
    header: list[str]  # the requested fields, in the file's column order
    rows: Iterator[list[str]]
    type_row: t.Callable[[list[str]], dict[str, t.Any]]
    count: int = 0
    #: fields set on every record (capture_deletes: ``_sdc_deleted_at``)
    stamp: dict[str, t.Any] | None = None

    @classmethod
    def of(
        cls, stream: str, file: ResultFile, properties: dict[str, t.Any], datetime_conv: t.Callable[[str], str]
    ) -> FileRows:
        """The rows of a checked result file, keyed by the requested field names (see ``ResultFile.check``)."""
        return cls(stream, file, file.names, file.rows(), row_typer(file.columns, properties, datetime_conv))

    def records(self, drop: t.Sequence[str] = ()) -> Iterator[dict[str, t.Any]]:
        """The file's typed records, without the ``drop`` fields; ``count`` follows along."""
        type_row, stamp = self.type_row, self.stamp
        try:
            for n, cells in enumerate(self.rows, 1):
                try:
                    rec = type_row(cells)
                except CellError as exc:
                    raise self.error(n, cells, exc) from None
                for name in drop:
                    rec.pop(name, None)
                if stamp:
                    rec.update(stamp)
                self.count = n
                yield rec
        except ResultFormatError:
            self.file.export.spoiled = True  # as stored in Pardot: reusing the export would fail the same way
            raise

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


class PardotExportStream(ExportStreamHooks):
    """A stream whose rows come from Export API exports, one per time window."""

    object_name: t.ClassVar[str]
    default_procedure: t.ClassVar[str] = "filter_by_updated_at"
    procedures: t.ClassVar[Procedures]
    #: extra procedure arguments a user may set, per procedure
    extra_arguments: t.ClassVar[dict[str, tuple[str, ...]]] = {}
    primary_keys: t.ClassVar[list[str]] = ["id"]
    replication_key = "updated_at"
    is_sorted = False
    #: rows are typed once, from the schema, by convert.row_typer
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(self, tap: Tap, sessions: SessionProvider) -> None:
        """The stream's schema with the configured custom fields; ``sessions`` opens the run's exports."""
        schema = load_schema(self.name)
        for name in (tap.config.get("custom_fields") or {}).get(self.name) or []:
            schema["properties"].setdefault(str(name), {"type": ["string", "null"]})
        if tap.config.get("capture_deletes") and self.name in DELETES_STREAMS:
            schema["properties"][DELETED_AT] = {"type": ["string", "null"], "format": "date-time"}
        super().__init__(tap=tap, schema=schema, name=self.name)
        self.sessions = sessions
        sessions.preflights.append(self.check_export)

    # -- settings ------------------------------------------------------------------------

    @property
    def options(self) -> dict[str, t.Any]:
        """This stream's stream_options."""
        return dict((self.config.get("stream_options") or {}).get(self.name) or {})

    @property
    def procedure(self) -> str:
        """The export procedure (stream_options, else the stream's default)."""
        return str(self.options.get("procedure") or self.default_procedure)

    def procedure_bounds(self) -> tuple[str, str]:
        """The procedure's time-bound argument names: (after, before)."""
        after, before, _ = self.procedures[self.procedure]
        return after, before

    def procedure_arguments(self) -> dict[str, t.Any]:
        """The user's extra procedure arguments."""
        return dict(self.options.get("arguments") or {})

    def window_size(self) -> dt.timedelta | None:
        """The fixed length of one export's window (window_days), or None: sized by the data."""
        days = self.options.get("window_days", self.config.get("window_days"))
        return None if days is None else dt.timedelta(days=float(days))

    def rows_per_export(self) -> int:
        """The rows an export aims at when windows are sized by the data (rows_per_export)."""
        return int(self.config.get("rows_per_export", DEFAULT_ROWS_PER_EXPORT))

    def requested_fields(self) -> list[str]:
        """The selected properties, id and the replication key always included."""
        fields = [name for name in self.mask_selected_properties() if name != DELETED_AT]
        for must in (*self.primary_keys, self.replication_key):
            if must and must not in fields:
                fields.insert(0, must)
        return fields

    def mask_selected_properties(self) -> list[str]:
        """Properties selected in the catalog."""
        mask = self.mask
        return [name for name in self.schema["properties"] if mask.get(("properties", name), True)]

    def check_export(self) -> None:
        """Before the run's first export: refuse a catalog the run cannot honour."""
        if self.selected:
            self.check_deletes_catalog()

    def check_deletes_catalog(self) -> None:
        """Refuse capture_deletes with a catalog made without it: the target would not know the deletes."""
        if DELETED_AT in self.schema["properties"] and DELETED_AT not in self.effective_schema.get("properties", {}):
            msg = (
                f"stream {self.name}: capture_deletes is on but the catalog has no {DELETED_AT} property, so the "
                "target could not tell deleted records from live ones: run discovery again (--discover) and use "
                "the new catalog, or turn capture_deletes off."
            )
            raise PardotConfigError(msg)

    # -- hooks of the window orchestration (sync.py) ----------------------------------------

    def begin_windows(self, context: Context | None) -> None:
        """Record the starting bookmark (BATCH mode skips the SDK's own call)."""
        write_starting_replication_value(self, context)

    @override
    def emit_state(self) -> None:
        """Write the tap's STATE through its public state writer."""
        self.sessions.open().state_writer.write_state(self.tap_state)
        self.state_manager.is_flushed = True

    def open_file(self, rf: ResultFile, conv: LocalDateTimeConverter, deleted_at: str | None = None) -> FileRows:
        """A checked result file's rows, keyed by the requested names and typed from the schema.

        With capture_deletes, each record gets ``_sdc_deleted_at``: ``deleted_at`` (a recycle-bin
        pass's rows), else null.
        """
        part = FileRows.of(self.name, rf, self.schema["properties"], conv)
        if DELETED_AT in self.schema["properties"] and self.mask.get(("properties", DELETED_AT), True):
            part.stamp = {DELETED_AT: deleted_at}
        return part

    def recycle_bin(self) -> RecycleBin | None:
        """With capture_deletes, the argument selecting this stream's recycle bin and the pass's range."""
        takes = self.extra_arguments.get(self.procedure, ())
        argument = next((name for name in ("deleted", "prospect_deleted") if name in takes), None)
        if not self.config.get("capture_deletes") or self.name not in DELETES_STREAMS or argument is None:
            return None
        every = dt.timedelta(days=float(self.config.get("deletes_pass_days", 1)))
        return RecycleBin(argument, every, parse_setting_datetime(str(self.config["start_date"])))

    def _files(self, context: Context | None) -> t.Generator[FileRows, None, None]:
        """The result files' rows, to be closed explicitly (``contextlib.closing``).

        Its cleanup after an error then runs in the reader's frame, where a signal's SystemExit
        propagates, not in a generator collected while the error unwinds (Python ignores it there).
        """
        return t.cast("t.Generator[FileRows, None, None]", result_files(self, self.sessions.open(), context))

    # -- records -------------------------------------------------------------------------

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        """Typed records of every result file of every window (the SDK's general path)."""
        with contextlib.closing(self._files(context)) as files:
            for part in files:
                yield from part.records()

    @override
    def fast_path_ok(self, write_messages: bool) -> bool:
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
            and not (self.replication_method == "FULL_TABLE" and self.emit_activate_version_messages)
        )

    @override
    def write_records_fast(self, context: Context | None) -> None:
        """Write RECORD messages straight from the typed rows (their types are the schema's)."""
        record_counter = self.get_record_counter()
        timer = self.get_sync_timer()
        out = self.sessions.open().out
        prefix = b'{"type":"RECORD","stream":' + orjson.dumps(self.name) + b',"record":'
        selected = set(self.mask_selected_properties())
        dumps = orjson.dumps
        with record_counter, timer, contextlib.closing(self._files(context)) as files:
            for part in files:
                stamp = dt.datetime.now(dt.timezone.utc).isoformat()
                suffix = b',"time_extracted":"' + stamp.encode() + b'"}\n'
                buf: list[bytes] = []
                held = 0
                for rec in part.records([name for name in part.header if name not in selected]):
                    line = prefix + dumps(rec) + suffix
                    buf.append(line)
                    held += len(line)
                    if len(buf) == WRITE_RECORDS or held >= WRITE_BYTES:
                        out.write(b"".join(buf))
                        record_counter.increment(len(buf))
                        buf.clear()
                        held = 0
                if buf:
                    out.write(b"".join(buf))
                    record_counter.increment(len(buf))
                out.flush()
                self.state_manager.is_flushed = False

    @override
    def get_batches(
        self, batch_config: BatchConfig, context: Context | None = None
    ) -> Iterable[tuple[BaseBatchFileEncoding, list[str]]]:
        """JSON Lines batch files written straight from the CSV rows, one manifest per file.

        Bookmarks stay right: the window's checkpoint is emitted after its last BATCH message,
        as the orchestration checkpoints only once every file of the window was handed over.
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

        def write(filename: str, lines: list[bytes]) -> str:
            data = b"".join(lines)
            with storage.open(filename, "wb") as fh:
                fh.write(gzip.compress(data, compresslevel=1) if gz else data)  # zlib runs without the GIL
            return str(storage.get_url(filename))

        # one file is compressed and written in the background while the next is typed
        with (
            cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-writer") as pool,
            contextlib.closing(self._files(context)) as files,
        ):
            for part in files:
                records = part.records([name for name in part.header if name not in selected])
                pending: cf.Future[str] | None = None
                while True:
                    lines = batch_lines(records, size)
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


class ProspectStream(PardotExportStream):
    """Prospects."""

    name = "prospect"
    object_name = "prospect"
    procedures: t.ClassVar[Procedures] = {
        "filter_by_updated_at": BY_UPDATED,
        "filter_by_created_at": BY_CREATED,
    }
    extra_arguments: t.ClassVar[dict[str, tuple[str, ...]]] = DELETED_ONLY


class VisitorStream(PardotExportStream):
    """Visitors."""

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
    """Visitor activities (the largest object)."""

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
    """List memberships."""

    name = "list_membership"
    object_name = "listMembership"
    procedures: t.ClassVar[Procedures] = {
        "filter_by_updated_at": BY_UPDATED,
        "filter_by_created_at": BY_CREATED,
    }
    extra_arguments: t.ClassVar[dict[str, tuple[str, ...]]] = DELETED_ONLY


class ProspectAccountStream(PardotExportStream):
    """Prospect accounts."""

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
    """External activities, by creation or activity date."""

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
