"""The export streams: one class, one instance per export spec, its rows from the engine.

An :class:`ExportStream` is made from its :class:`~tap_pardot_export.spec.StreamSpec` and the
run's settings: its schema (``schemas/<name>.json``, plus the configured custom fields and,
with capture_deletes, ``_sdc_deleted_at``), its export plan, and the engine's hooks. Records
are written straight from the typed rows when nothing needs the SDK's per-record machinery
(:mod:`~tap_pardot_export.records`); otherwise the SDK's general path takes them.
"""

from __future__ import annotations

import contextlib
import functools
import json
import typing as t
from importlib import resources

from singer_sdk.singerlib import Metadata, MetadataMapping
from typing_extensions import override

from tap_pardot_export.columns import (
    BUSINESS_UNIT,
    Columns,
    add_api_fields,
    api_name_of,
    business_unit_column,
    rename_properties,
)
from tap_pardot_export.engine.plan import ExportPlan, RecycleBin
from tap_pardot_export.engine.run import stream_files
from tap_pardot_export.engine.state import StreamState
from tap_pardot_export.errors import PardotConfigError
from tap_pardot_export.records import FileRows, write_batches, write_records
from tap_pardot_export.sdk_compat import (
    TypeConformanceLevel,
    mark_state_flushed,
    write_starting_replication_value,
)
from tap_pardot_export.stream_base import DELETED_AT, PardotStream

if t.TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterable

    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

    from tap_pardot_export.engine.convert import LocalDateTimeConverter
    from tap_pardot_export.pardot.results import ResultFile
    from tap_pardot_export.sdk_compat import BaseBatchFileEncoding, BatchConfig
    from tap_pardot_export.session import SessionProvider, StreamFailures
    from tap_pardot_export.settings.config import Settings
    from tap_pardot_export.spec import StreamSpec


def load_schema(name: str) -> dict[str, t.Any]:
    """The stream's JSON schema, from the package's schemas/ folder (a new copy each time: callers extend it)."""
    return t.cast("dict[str, t.Any]", json.loads(_schema_text(name)))


@functools.cache
def _schema_text(name: str) -> str:
    return (resources.files("tap_pardot_export") / "schemas" / f"{name}.json").read_text()


class ExportStream(PardotStream):
    """A stream whose rows come from Export API exports, one per time window."""

    is_sorted = False
    #: rows are typed once, from the schema, by the engine's row typer
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(
        self, tap: Tap, spec: StreamSpec, settings: Settings, sessions: SessionProvider, failures: StreamFailures
    ) -> None:
        """The stream of ``spec``; ``sessions`` opens the run's exports at its first, ``failures`` keeps its failure.

        Its columns are the API's field names in snake_case (:mod:`~tap_pardot_export.columns`); with
        business_unit_key, ``business_unit_id`` comes first and leads the key.
        """
        schema = load_schema(spec.name)
        self.columns = Columns(spec.name)
        unit = business_unit_column(self.columns, on=settings.business_unit_key)
        schema["properties"] = {**unit, **rename_properties(self.columns, schema["properties"])}
        schema["required"] = [*unit, *schema.get("required", ())]
        self.builtin = frozenset(self.columns.column)
        custom = [(name, {"type": ["string", "null"]}) for name in settings.custom_fields.get(spec.name, ())]
        add_api_fields(self.columns, schema["properties"], custom, tap.logger)
        if settings.capture_deletes and spec.captures_deletes:
            schema["properties"][DELETED_AT] = {"type": ["string", "null"], "format": "date-time"}
        super().__init__(tap=tap, schema=schema, name=spec.name)
        self.primary_keys = [*unit, "id"]
        #: set on every record, first (business_unit_key)
        self.constants = {BUSINESS_UNIT: settings.connection.business_unit_id} if unit else {}
        self.replication_key = self.columns.column_of(spec.replication_key or "")
        self.spec, self.settings, self.sessions, self.failures = spec, settings, sessions, failures
        self._out_of_range: set[str] = set()
        sessions.preflights.append(self.check_catalog)

    # -- what the engine needs (engine.plan.SyncedStream) ------------------------------------

    @property
    def incremental(self) -> bool:
        """True when it keeps a bookmark (the catalog may ask for a full table instead)."""
        return self.replication_method == "INCREMENTAL"

    def plan(self) -> ExportPlan:
        """How the stream is exported, from its spec, its options and the catalog."""
        spec, settings = self.spec, self.settings
        options = settings.options(spec)
        procedure = spec.procedure(options.procedure)
        recycle_bin = None
        if settings.capture_deletes and procedure.deletes_argument and settings.start_date is not None:
            recycle_bin = RecycleBin(procedure.deletes_argument, settings.deletes_pass_every, settings.start_date)
        return ExportPlan(
            stream=spec.name,
            api_object=spec.api_object,
            procedure=procedure,
            arguments=options.arguments,
            replication_key=spec.replication_key or "",
            key_column=self.replication_key or "",
            window_size=settings.window_size(spec),
            rows_per_export=settings.rows_per_export,
            fields=tuple(self.requested_fields()),
            protected=spec.protected_fields,
            recycle_bin=recycle_bin,
        )

    def sync_state(self) -> StreamState:
        """Its state (the whole stream's: exports have no partitions)."""
        return StreamState(self.get_context_state(None))

    def starting_timestamp(self) -> dt.datetime:
        """Its bookmark, or start_date (a full-table sync, which the catalog may ask for, starts there)."""
        start = self.get_starting_timestamp(None) if self.incremental else None
        start = start or self.settings.start_date
        if start is None:  # pragma: no cover - the settings check requires start_date to sync
            raise PardotConfigError(f"{self.name}: start_date is required to sync")
        return start

    def begin_windows(self) -> None:
        """Record the starting bookmark (the fast path and BATCH mode skip the SDK's own call); once a run."""
        write_starting_replication_value(self, None)

    @override
    def emit_state(self) -> None:
        """Write the tap's STATE through its public state writer."""
        self.sessions.write_state(self.tap_state)
        mark_state_flushed(self, flushed=True)

    def open_file(self, rf: ResultFile, conv: LocalDateTimeConverter, deleted_at: str | None = None) -> FileRows:
        """A checked result file's rows, keyed by the requested names and typed from the schema.

        With capture_deletes, each record gets ``_sdc_deleted_at``: ``deleted_at`` (a recycle-bin
        pass's rows), else null.
        """
        part = FileRows.of(
            self.name, rf, self.schema["properties"], conv, self.out_of_range, self.columns.column, self.constants
        )
        if DELETED_AT in self.schema["properties"] and self.mask.get(("properties", DELETED_AT), True):
            part.stamp = {DELETED_AT: deleted_at}
        return part

    def out_of_range(self, column: str, value: str) -> None:
        """A datetime outside years 1 to 9999 in UTC (a sentinel such as 9999-12-31) was emitted as null."""
        if column in self._out_of_range:
            return
        self._out_of_range.add(column)
        self.logger.warning(
            "%s: column %r holds %r, a local time whose UTC instant falls outside years 1 to 9999: emitted as "
            "null (and so is every other such value of this column in this run, without another warning)",
            self.name,
            column,
            value[:40],
        )

    # -- the catalog ---------------------------------------------------------------------

    @property
    @override
    def metadata(self) -> MetadataMapping:
        """The SDK's metadata; with capture_deletes, ``_sdc_deleted_at`` is included automatically.

        A catalog that leaves it out (``meltano select`` of other fields) would load deleted records as
        live ones without a word: the column that says a row is deleted cannot be deselected.
        """
        md = super().metadata
        entry = md.get(("properties", DELETED_AT)) if DELETED_AT in self.schema["properties"] else None
        if entry is not None:
            entry.inclusion = Metadata.InclusionType.AUTOMATIC
        return md

    def requested_fields(self) -> list[str]:
        """The selected properties as the API names them, id and the replication key always included."""
        fields = [name for name in self.selected_properties() if name not in (DELETED_AT, BUSINESS_UNIT)]
        for must in ("id", self.replication_key):
            if must and must not in fields:
                fields.insert(0, must)
        return [self.columns.api_name(name) for name in fields]

    def add_account_fields(self, fields: dict[str, dict[str, t.Any]]) -> list[str]:
        """Add the account's own fields (``{API name: schema}``) under their columns; the columns added.

        A built-in field keeps its schema; a field custom_fields lists takes the account's type.
        """
        props, added = self.schema["properties"], []
        for api_name, schema in fields.items():
            if api_name in self.builtin:
                continue
            known = self.columns.column.get(api_name)
            if known is not None:
                props[known] = {**schema, **({"title": api_name} if known != api_name else {})}
                added.append(known)
            else:
                added += add_api_fields(self.columns, props, [(api_name, schema)], self.logger)
        return added

    def add_catalog_properties(self, properties: dict[str, dict[str, t.Any]]) -> None:
        """Add the properties a catalog lists that the stream lacks (their API name is their title, if any)."""
        props = self.schema["properties"]
        for column, schema in properties.items():
            if column not in props and self.columns.add(api_name_of(column, schema), column=column) is not None:
                props[column] = schema

    # -- records -------------------------------------------------------------------------

    def _files(self) -> t.Generator[FileRows, None, None]:
        """The result files' rows, to be closed explicitly (``contextlib.closing``).

        Its cleanup after an error then runs in the reader's frame, where a signal's SystemExit
        propagates, not in a generator collected while the error unwinds (Python ignores it there).
        """
        return t.cast("t.Generator[FileRows, None, None]", stream_files(self, self.sessions.open()))

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        """Typed records of every result file of every window (the SDK's general path)."""
        with contextlib.closing(self._files()) as files:
            for part in files:
                yield from part.records()

    @override
    def write_records_fast(self, context: Context | None) -> None:
        """Write RECORD messages straight from the typed rows (their types are the schema's)."""
        out = self.sessions.open().out
        selected = set(self.selected_properties())
        with self.get_record_counter() as counter, self.get_sync_timer(), contextlib.closing(self._files()) as files:
            for _ in write_records(self.name, files, out, selected, counter):
                mark_state_flushed(self, flushed=False)

    @override
    def get_batches(
        self, batch_config: BatchConfig, context: Context | None = None
    ) -> Iterable[tuple[BaseBatchFileEncoding, list[str]]]:
        """JSON Lines batch files written straight from the CSV rows, one manifest per file.

        Bookmarks stay right: the window's checkpoint is emitted after its last BATCH message,
        as the engine checkpoints only once every file of the window was handed over.
        """
        if batch_config.encoding.format != "jsonl":
            yield from super().get_batches(batch_config, context)
            return
        selected = set(self.selected_properties())
        with contextlib.closing(self._files()) as files:
            yield from write_batches(files, batch_config, selected, f"{self.tap_name}--{self.name}")
