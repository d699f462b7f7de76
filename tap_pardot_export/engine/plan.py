"""What a stream's sync asks of Pardot: its export plan, the jobs of each window, and what the engine needs of a stream.

An :class:`ExportPlan` is made by the stream from its spec and the settings; the engine
reads nothing else of them. A window's export job is reused from state only for the very
same query (a digest of the create's body), and a stream wider than an export has one job
per field group.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import typing as t

from tap_pardot_export.engine.join import field_groups
from tap_pardot_export.engine.state import entry_window, resume_clock
from tap_pardot_export.engine.windows import Planner, Window, api_time
from tap_pardot_export.pardot.exports import ExportSpec

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Mapping

    from tap_pardot_export.engine.state import StreamState
    from tap_pardot_export.pardot.results import ResultFile
    from tap_pardot_export.spec import Procedure

#: a recycle-bin pass runs one export per year of range
DELETES_WINDOW = dt.timedelta(days=365)


@dataclasses.dataclass(frozen=True)
class RecycleBin:
    """What capture_deletes asks of a stream's recycle-bin pass."""

    #: the procedure argument selecting the recycle bin: "deleted" or "prospect_deleted"
    argument: str
    #: the least time between two passes (deletes_pass_days)
    every: dt.timedelta
    #: start_date: a pass covers start_date .. the run's end
    start: dt.datetime


@dataclasses.dataclass(frozen=True)
class ExportPlan:
    """How one stream is exported: what the engine knows of it."""

    stream: str
    api_object: str
    procedure: Procedure
    arguments: Mapping[str, t.Any]
    replication_key: str
    #: a fixed window length (window_days), or None: windows sized by the data
    window_size: dt.timedelta | None
    rows_per_export: int
    #: the fields to export, id and the replication key included
    fields: tuple[str, ...]
    protected: frozenset[str]
    #: with capture_deletes, the stream's recycle-bin pass
    recycle_bin: RecycleBin | None = None
    #: the replication key's column in the records (default: its API name)
    key_column: str = ""

    @property
    def bookmark_key(self) -> str:
        """The replication key as records and state name it."""
        return self.key_column or self.replication_key

    def groups(self) -> list[list[str]]:
        """The fields in groups an export takes, each with id and the replication key."""
        return field_groups(list(self.fields), ["id", self.replication_key])

    def for_recycle_bin(self) -> ExportPlan:
        """The plan of the recycle-bin pass: the bin's exports, a year each."""
        if self.recycle_bin is None:  # pragma: no cover - callers check
            raise ValueError(self.stream)
        arguments = {**self.arguments, self.recycle_bin.argument: "true"}
        return dataclasses.replace(self, arguments=arguments, window_size=DELETES_WINDOW, recycle_bin=None)


class FileRowsLike(t.Protocol):
    """One result file being read; ``count`` is the rows read so far."""

    count: int


class SyncedStream(t.Protocol):
    """What the engine needs of a stream (the Singer side implements it)."""

    @property
    def name(self) -> str:
        """The stream's name."""

    @property
    def logger(self) -> logging.Logger:
        """The stream's logger."""

    @property
    def selected(self) -> bool:
        """True when the catalog selects the stream."""

    @property
    def incremental(self) -> bool:
        """True when it keeps a bookmark (the catalog may ask for a full table instead)."""

    def plan(self) -> ExportPlan:
        """How it is exported."""

    def sync_state(self) -> StreamState:
        """Its state (the stream's whole state: its exports have no partitions)."""

    def starting_timestamp(self) -> dt.datetime:
        """Its bookmark, or start_date."""

    def begin_windows(self) -> None:
        """Called before its first window (and before a first export created ahead): does its work once."""

    def emit_state(self) -> None:
        """Write a STATE message."""

    def open_file(self, rf: ResultFile, conv: t.Any, deleted_at: str | None = None) -> FileRowsLike:
        """A checked result file's typed rows (``deleted_at``: they are in the recycle bin since then)."""


@dataclasses.dataclass
class WindowJob:
    """One export of a window (one per field group): its query, and the export from state it may reuse."""

    window: Window
    spec: ExportSpec
    query: str
    resume_id: int | None
    #: the resumed export's createdAt (the API user's zone) and our clock at its creation
    resume_clock: tuple[str, float] | None
    #: its field group, of how many (a stream wider than an export has several, joined by id)
    group: int = 0
    groups: int = 1
    #: the fields asked for (the spec's may be fewer: those Pardot refused are left out)
    asked: tuple[str, ...] = ()
    #: the create's body as asked (before the account's refusals shaped it): what the export record keeps
    body: dict[str, t.Any] = dataclasses.field(default_factory=dict)
    #: where the export it may reuse was found: "state" or "the export record"
    source: str = "state"

    @property
    def dropped(self) -> list[str]:
        """The fields asked for that the create left out (Pardot refused them)."""
        return [f for f in self.asked if f not in self.spec.fields]


def make_job(
    plan: ExportPlan,
    w: Window,
    fields: list[str],
    entries: list[dict[str, t.Any]],
    group: tuple[int, int] = (0, 1),
) -> WindowJob:
    """The export job of ``w``'s field group ``group`` (index, count).

    An export in state (or in the export record: ``source`` "record") is reused only for the very same query.
    """
    p = plan.procedure
    arguments = {p.after: api_time(w.after), p.before: api_time(w.before), **plan.arguments}
    label = f"{plan.stream} [{api_time(w.start)} .. {api_time(w.end)})"
    if group[1] > 1:
        label += f" field group {group[0] + 1}/{group[1]}"
    spec = ExportSpec(plan.api_object, fields, p.name, arguments, label, plan.protected)
    body = spec.body()
    query = spec.request
    job = WindowJob(w, spec, query, None, None, *group, tuple(fields), body=copy.deepcopy(body))
    for entry in entries:
        export_id = entry.get("id")
        if entry.get("query") == query and isinstance(export_id, int) and not isinstance(export_id, bool):
            dropped = entry.get("dropped")
            if isinstance(dropped, list):  # created without fields Pardot refused: its files lack them
                keys = ("id", plan.replication_key)
                spec.fields = [f for f in spec.fields if f in keys or f not in dropped]
            job.resume_id, job.resume_clock = export_id, resume_clock(entry)
            job.source = "the export record" if entry.get("source") == "record" else "state"
            break
    return job


def make_planner(
    plan: ExportPlan,
    start: dt.datetime,
    end: dt.datetime,
    state: StreamState,
    logger: logging.Logger | None,
    recorded: list[dict[str, t.Any]] | None = None,
) -> Planner:
    """The stream's window planner from ``start`` (its bookmark, or start_date) to the run's end.

    It adopts the windows of the exports in flight in state, then those of ``recorded`` (exports of
    the export record that a window starting where one of them does may reuse). ``logger``: where the
    plan's line goes (None: nowhere, for a first export created ahead; the stream says it in its turn).
    """
    if start.tzinfo is None:
        start = start.replace(tzinfo=dt.timezone.utc)
    size = plan.window_size
    planner = Planner(
        start,
        end,
        size=size,
        rows_per_export=plan.rows_per_export,
        rows_per_day=state.learned_rate(),
        adopt=[w for w in map(entry_window, [*state.entries(), *(recorded or [])]) if w is not None],
    )
    if logger is None:
        return planner
    logger.info(
        "%s: windows from %s to %s, %s, procedure %s",
        plan.stream,
        api_time(start),
        api_time(end),
        f"{size / dt.timedelta(days=1):g} day(s) each" if size else f"sized for ~{planner.rows_per_export} rows each",
        plan.procedure.name,
    )
    return planner
