"""The orchestration of a stream's windows: plan, budget, resume, checkpoint. No HTTP here.

For each time window of a stream's range, one export is run (by
:class:`~tap_pardot_export.exports.ExportRunner`: create, poll, download) and its result
files are handed to the stream one by one. The bookmark moves to a window's end only once
every file of the window was read; an error inside a window leaves it where it was. The
export in flight is recorded in state (``pending_export``) with what a rerun needs to reuse
it and to read its datetimes in the right zone.

The call budget (``max_api_calls``) is checked between windows: a window the budget cannot
afford is not started (the run ends with exit 0 and resumable state), a started window is
finished even past the budget, and the run's first window always goes, so reruns with a
budget below one window's cost still progress.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import hashlib
import math
import time
import typing as t
from dataclasses import dataclass

import orjson

from tap_pardot_export.errors import ResultFormatError
from tap_pardot_export.exports import MUST_PROPAGATE, ExportSpec
from tap_pardot_export.join import MAX_FIELDS, JoinedRows, JoinSpool, JoinStats, field_groups
from tap_pardot_export.session import AheadExport
from tap_pardot_export.windows import OVERLAP, Planner, Window, api_time, parse_setting_datetime

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Iterator

    from singer_sdk.helpers.types import Context

    from tap_pardot_export.client import PardotClient
    from tap_pardot_export.convert import LocalDateTimeConverter
    from tap_pardot_export.exports import ExportInfo, ResultFile
    from tap_pardot_export.session import ExportSession

#: the calls a window costs before the run has measured one: create, a read or two, one file
FIRST_WINDOW_COST = 4
#: state keys next to ``pending_export`` (the export of the window at the bookmark): the exports
#: created ahead for the windows after it, and the rows per day learned from the windows done
QUEUED_KEY = "queued_exports"
#: (an integer: Singer targets may read numbers in state as Decimal, which some cannot write back)
LEARNED_KEY = "rows_per_year"
YEAR_DAYS = 365
#: an export queued ahead expected to hold more than this many times rows_per_export is replaced
OVERSIZE = 2


class FileRowsLike(t.Protocol):
    """One result file being read; ``count`` is the rows read so far."""

    count: int


class WindowedStream(t.Protocol):
    """What the orchestration needs of a stream (see streams.PardotExportStream)."""

    @property
    def name(self) -> str:
        """The stream's name."""

    @property
    def object_name(self) -> str:
        """The Export API object."""

    @property
    def replication_key(self) -> str | None:
        """The bookmark's field."""

    @property
    def replication_method(self) -> str:
        """INCREMENTAL or FULL_TABLE."""

    @property
    def logger(self) -> logging.Logger:
        """The stream's logger."""

    @property
    def procedure(self) -> str:
        """The export procedure."""

    def procedure_bounds(self) -> tuple[str, str]:
        """The procedure's (after, before) argument names."""

    def procedure_arguments(self) -> dict[str, t.Any]:
        """The user's extra procedure arguments."""

    def window_size(self) -> dt.timedelta | None:
        """One window's fixed length, or None to size windows by the data."""

    def rows_per_export(self) -> int:
        """The rows an export should hold when windows are sized by the data."""

    def requested_fields(self) -> list[str]:
        """The fields to export."""

    def get_starting_timestamp(self, context: Context | None) -> dt.datetime | None:
        """The bookmark, or start_date."""

    def get_context_state(self, context: Context | None) -> dict[str, t.Any]:
        """The state dict of ``context`` (mutable)."""

    @property
    def selected(self) -> bool:
        """True when the catalog selects the stream."""

    def begin_windows(self, context: Context | None) -> None:
        """Called once before the first window."""

    def emit_state(self) -> None:
        """Write a STATE message."""

    def open_file(self, rf: ResultFile, conv: LocalDateTimeConverter, deleted_at: str | None = None) -> FileRowsLike:
        """A checked result file's typed rows (``deleted_at``: they are in the recycle bin since then)."""

    def recycle_bin(self) -> RecycleBin | None:
        """What the recycle-bin pass needs (capture_deletes), or None: no pass for this stream."""


@dataclass(frozen=True)
class RecycleBin:
    """What capture_deletes asks of a stream's recycle-bin pass."""

    #: the procedure argument selecting the recycle bin: "deleted" or "prospect_deleted"
    argument: str
    #: the least time between two passes (deletes_pass_days)
    every: dt.timedelta
    #: start_date: a pass covers start_date .. the run's end
    start: dt.datetime


@dataclass
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


def stream_groups(stream: WindowedStream) -> list[list[str]]:
    """The stream's requested fields in groups an export takes, each with id and the replication key."""
    keys = ["id", *([stream.replication_key] if stream.replication_key else [])]
    return field_groups(stream.requested_fields(), keys)


def make_job(
    stream: WindowedStream,
    w: Window,
    fields: list[str],
    entries: list[dict[str, t.Any]],
    group: tuple[int, int] = (0, 1),
) -> WindowJob:
    """The export spec of ``w``'s field group ``group`` (index, count).

    An export in state is reused only for the very same query.
    """
    after_arg, before_arg = stream.procedure_bounds()
    arguments = {after_arg: api_time(w.after), before_arg: api_time(w.before), **stream.procedure_arguments()}
    label = f"{stream.name} [{api_time(w.start)} .. {api_time(w.end)})"
    if group[1] > 1:
        label += f" field group {group[0] + 1}/{group[1]}"
    spec = ExportSpec(stream.object_name, fields, stream.procedure, arguments, label)
    query = hashlib.sha256(orjson.dumps(spec.body(), option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]
    for entry in entries:
        export_id = entry.get("id")
        if entry.get("query") == query and isinstance(export_id, int) and not isinstance(export_id, bool):
            dropped = entry.get("dropped")
            if isinstance(dropped, list):  # created without fields Pardot refused: its files lack them
                keys = ("id", stream.replication_key)
                spec.fields = [f for f in spec.fields if f in keys or f not in dropped]
            return WindowJob(w, spec, query, export_id, _resume_clock(entry), *group, tuple(fields))
    return WindowJob(w, spec, query, None, None, *group, tuple(fields))


def pending_entries(state: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    """The exports in flight recorded in a stream's state, oldest window first."""
    out = [dict(state["pending_export"])] if isinstance(state.get("pending_export"), dict) else []
    queued = state.get(QUEUED_KEY)
    if isinstance(queued, list):
        out += [dict(e) for e in queued if isinstance(e, dict)]
    return out


def entry_window(entry: dict[str, t.Any]) -> Window | None:
    """The window an export in state was created for, or None when its bounds do not parse."""
    try:
        after = parse_setting_datetime(str(entry["after"]))
        before = parse_setting_datetime(str(entry["before"]))
    except (KeyError, ValueError):
        return None
    return Window(after + OVERLAP, before) if before > after + OVERLAP else None


def learned_rate(state: dict[str, t.Any]) -> float | None:
    """The rows per day a former run learned, from its rows per year in state (numbers may be Decimal)."""
    value = state.get(LEARNED_KEY)
    if value is None or isinstance(value, bool):
        return None
    try:
        rate = float(value)
    except (TypeError, ValueError):
        return None
    return rate / YEAR_DAYS if math.isfinite(rate) and rate >= 0 else None


def make_planner(
    stream: WindowedStream, session: ExportSession, context: Context | None, entries: list[dict[str, t.Any]]
) -> Planner:
    """The stream's window planner from its bookmark (or start_date) to the run's end."""
    start = stream.get_starting_timestamp(context)
    if start is None:  # pragma: no cover - start_date is required
        raise ResultFormatError(f"{stream.name}: no start_date")
    if start.tzinfo is None:
        start = start.replace(tzinfo=dt.timezone.utc)
    size = stream.window_size()
    planner = Planner(
        start,
        session.run_end,
        size=size,
        rows_per_export=stream.rows_per_export(),
        rows_per_day=learned_rate(stream.get_context_state(context)),
        adopt=[w for w in map(entry_window, entries) if w is not None],
    )
    stream.logger.info(
        "%s: windows from %s to %s, %s, procedure %s",
        stream.name,
        api_time(start),
        api_time(session.run_end),
        f"{size / dt.timedelta(days=1):g} day(s) each" if size else f"sized for ~{planner.rows_per_export} rows each",
        stream.procedure,
    )
    return planner


def _resume_clock(pending: dict[str, t.Any]) -> tuple[str, float] | None:
    """The export's createdAt and our clock at its creation, from state (numbers may be Decimal)."""
    created, requested = pending.get("created_at"), pending.get("requested_at")
    if not isinstance(created, str) or requested is None or isinstance(requested, bool):
        return None
    try:
        clock = float(requested)
    except (TypeError, ValueError):
        return None
    return (created, clock) if math.isfinite(clock) and clock > 0 else None


def pending_entry(job: WindowJob, info: ExportInfo) -> dict[str, t.Any]:
    """What state keeps of an export in flight: enough to reuse it and read its times right."""
    w = job.window
    entry: dict[str, t.Any] = {
        "id": info.id,
        "after": api_time(w.after),
        "before": api_time(w.before),
        "query": job.query,
    }
    dropped = [f for f in job.asked if f not in job.spec.fields]
    if dropped:  # left out of the create (Pardot refused them): a rerun reusing it must not expect them
        entry["dropped"] = dropped
    if info.created_at and info.requested_at:
        entry["created_at"] = info.created_at  # in the API user's zone, as Pardot wrote it
        entry["requested_at"] = round(info.requested_at, 3)  # our clock (UTC seconds) at the create call
    return entry


@contextlib.contextmanager
def budget_exempt(client: PardotClient) -> Iterator[None]:
    """Let a started window finish past ``max_api_calls``: it is never left half done."""
    cap = client.max_api_calls
    client.max_api_calls = None
    try:
        yield
    finally:
        client.max_api_calls = cap


def can_afford(stream: WindowedStream, session: ExportSession, cost: int, w: Window) -> bool:
    """True when the call budget allows another window (the run's first window always goes)."""
    left = session.calls_left()
    if left is None or left >= cost:
        return True
    if session.windows_done == 0:
        stream.logger.warning(
            "%s: max_api_calls=%s is below what a window costs (~%d calls): finishing one window anyway, "
            "so that each run makes progress.",
            stream.name,
            session.client.max_api_calls,
            cost,
        )
        return True
    stream.logger.warning(
        "%s: max_api_calls=%s leaves %d call(s), fewer than a window costs (~%d): stopping here "
        "with resumable state (bookmark %s). The next run continues from it.",
        stream.name,
        session.client.max_api_calls,
        max(left, 0),
        cost,
        api_time(w.start),
    )
    return False


@dataclass
class Slot:
    """A window whose export was started (created, reused from state, or created ahead)."""

    job: WindowJob
    info: ExportInfo


class StreamSync:
    """One stream's windows in this run: up to ``session.max_ahead`` exports created ahead.

    The export of the window at the bookmark is waited on and read while the next windows'
    exports wait in Pardot's queue. Every export in flight is in state (``pending_export``,
    then ``queued_exports``), the bookmark moves only over windows whose rows were all read.

    A stream wider than an export runs one export per field group for each window (in
    order, so the window at the bookmark always comes first); their rows are joined by id
    on disk before any is emitted, and the window's exports stay in state until then.
    """

    def __init__(self, stream: WindowedStream, session: ExportSession, context: Context | None) -> None:
        """Plan ``stream``'s windows from its state."""
        self.stream, self.session, self.context = stream, session, context
        self.groups = stream_groups(stream)
        state = stream.get_context_state(context)
        self.entries = pending_entries(state)
        self.planner = make_planner(stream, session, context, self.entries)
        self.slots: collections.deque[Slot] = collections.deque()
        #: the exports of windows planned but not started yet (the later field groups of a window)
        self.todo: collections.deque[WindowJob] = collections.deque()
        self.bookmark: dt.datetime | None = None
        self.cost = FIRST_WINDOW_COST * len(self.groups)
        self.planned_all = False
        self.rows = self.exports = 0
        self.waited = 0.0
        if len(self.groups) > 1:
            stream.logger.info(
                "%s: %d fields selected, more than an export takes (%d): %d exports per window (field groups of "
                "%s fields, each with id and %s), joined by id on disk",
                stream.name,
                len({f for g in self.groups for f in g}),
                MAX_FIELDS,
                len(self.groups),
                "/".join(str(len(g)) for g in self.groups),
                stream.replication_key,
            )

    # -- state -----------------------------------------------------------------------------

    def checkpoint(self) -> None:
        """Record the finished range, the exports in flight and the learned rate; emit STATE."""
        stream = self.stream
        if stream.replication_method != "INCREMENTAL":
            return
        state = stream.get_context_state(self.context)
        if self.bookmark is not None:
            state["replication_key"] = stream.replication_key
            state["replication_key_value"] = api_time(self.bookmark)
        state.pop("progress_markers", None)
        self.record_slots(state)
        if self.planner.rows_per_day is not None:
            state[LEARNED_KEY] = round(self.planner.rows_per_day * YEAR_DAYS)
        stream.emit_state()

    def record_slots(self, state: dict[str, t.Any]) -> None:
        """Write the exports started (read or not, of windows not done) to ``state``."""
        entries = [pending_entry(s.job, s.info) for s in self.slots]
        for key, value in (("pending_export", entries[0] if entries else None), (QUEUED_KEY, entries[1:])):
            if value:
                state[key] = value
            else:
                state.pop(key, None)

    # -- starting exports ------------------------------------------------------------------

    def affordable_ahead(self) -> bool:
        """True when the call budget covers the exports started plus one more."""
        left = self.session.calls_left()
        return left is None or left >= math.ceil(self.cost * (len(self.slots) + 1) / len(self.groups))

    def next_job(self) -> WindowJob | None:
        """The next export to start (not taken off the plan), or None once the range is covered."""
        if not self.todo:
            w = self.planner.next()
            if w is None:
                return None
            n = len(self.groups)
            self.todo.extend(make_job(self.stream, w, g, self.entries, (k, n)) for k, g in enumerate(self.groups))
        return self.todo[0]

    def fill(self, *, ahead: bool, need: int = 1) -> None:
        """Start exports until ``need`` are started; with ``ahead``, more while there is room.

        The first ``need`` exports (the window at the bookmark, group by group) always start;
        exports ahead are created once Pardot works on the one waited on (it is Processing or
        Complete), or once an export of this run was Complete: not while ours would only pile
        up behind other integrations' exports at the start, nor while a create or an export fails.
        """
        session = self.session
        while not self.planned_all:
            must = len(self.slots) < need
            if not must and not (ahead and session.room() and self.affordable_ahead()):
                return
            job = self.next_job()
            if job is None:
                self.planned_all = True
                if ahead and (not self.slots or self.affordable_ahead()):
                    prefetch_next(self.stream, session, self.cost)
                return
            created = session.ahead.pop(job.query, None)
            if created is None and not self.slots and not can_afford(self.stream, session, self.cost, job.window):
                self.planned_all = True
                return
            self.todo.popleft()
            if created is not None:
                job.spec = created.spec  # the fields it was created with
            self.start(job, created.info if created is not None else None)

    def start(self, job: WindowJob, info: ExportInfo | None) -> None:
        """Start ``job``'s export (``info``: one created ahead for it) and record it in state."""
        session = self.session
        if info is None:
            with budget_exempt(session.client):
                info, new = session.runner.start(job.spec, job.resume_id)
            if not new:
                session.reused += 1
                if not info.requested_at and job.resume_clock:
                    info.created_at, info.requested_at = job.resume_clock  # read its times in its zone
        session.in_flight[info.id] = job.spec.label
        self.slots.append(Slot(job, info))
        self.exports += 1
        self.checkpoint()

    # -- reading ---------------------------------------------------------------------------

    def files(self) -> Iterator[FileRowsLike]:
        """Each window's result files in order (joined, for a wide stream), checkpointing after each window."""
        self.fill(ahead=False)
        while self.slots:
            yield from self.read_head()
            self.fill(ahead=False)

    def read_head(self) -> Iterator[FileRowsLike]:
        """Wait for the first window's export(s), yield its files; then move the bookmark over it."""
        client, groups = self.session.client, self.slots[0].job.groups
        calls0 = client.api_calls
        if groups == 1:
            rows = 0
            for part in self.read_export(self.slots[0]):
                yield part
                rows += part.count
        else:
            rows = yield from self.read_joined(groups)
        job = self.slots[0].job
        for _ in range(groups):
            slot = self.slots.popleft()
            self.session.in_flight.pop(slot.info.id, None)
        self.session.windows_done += 1
        self.rows += rows
        self.cost = max(self.cost, client.api_calls - calls0 + groups)  # + its creates
        self.planner.learn(job.window, rows)
        self.bookmark = job.window.end
        self.replan()
        self.checkpoint()

    def read_joined(self, groups: int) -> t.Generator[FileRowsLike, None, int]:
        """Spool the head window's field groups one export at a time, then yield their records joined by id."""
        stream = self.stream
        under = self.session.spool_dir
        with JoinSpool(stream.name, groups, replication_key=stream.replication_key, under=under) as spool:
            for k in range(groups):
                with budget_exempt(self.session.client):
                    self.fill(ahead=False, need=k + 1)  # the window's next group, if not created ahead
                slot = self.slots[k]
                export_id = slot.info.id
                for part in self.read_export(slot):
                    if slot.info.id != export_id:  # created again (it expired while read): its files come anew
                        spool.reset(k)
                        export_id = slot.info.id
                    spool.add(k, t.cast("t.Any", part))
                self.session.in_flight.pop(slot.info.id, None)  # done in Pardot; kept in state until joined
            joined = JoinedRows(stream.name, spool)
            t0 = time.monotonic()
            yield joined
            spool.stats.join_seconds = time.monotonic() - t0
            spool.stats.spool_bytes = spool.size()
        self.report_join(spool.stats, groups)
        return joined.count

    def report_join(self, stats: JoinStats, groups: int) -> None:
        """Log what a window's join did, and warn of records some group lacked."""
        stream, label = self.stream, self.slots[0].job.spec.label.rsplit(" field group", 1)[0]
        stream.logger.info(
            "%s: joined %d record(s) from %d field groups: spooled in %.1fs, joined and emitted in %.1fs "
            "(%.0f records/s), %.1f MiB of disk spool",
            label,
            stats.rows,
            groups,
            stats.spool_seconds,
            stats.join_seconds,
            stats.rows / stats.join_seconds if stats.join_seconds > 0 else 0.0,
            stats.spool_bytes / 2**20,
        )
        if stream.procedure == "filter_by_updated_at":
            again = "an updated record comes whole with the next run"
        else:  # the window filters on a time an update does not move: the record is not exported again
            again = (
                f"{stream.procedure} does not export them again after an update: a sync with filter_by_updated_at "
                "(or a full resync) brings them whole"
            )
        if stats.partial:
            stream.logger.warning(
                "%s: %d record(s) were in some field groups' exports but not in others (e.g. id %s): updated or "
                "deleted in Pardot while the window's exports ran. They were emitted with the fields known; %s.",
                label,
                stats.partial,
                ", ".join(map(str, stats.partial_ids)),
                again,
            )
        if stats.mixed:
            stream.logger.warning(
                "%s: %d record(s) had different %s values in different field groups' exports (Pardot answered "
                "them from different versions): each was emitted with the oldest, its fields from both versions; %s.",
                label,
                stats.mixed,
                stream.replication_key,
                again if stream.procedure != "filter_by_updated_at" else "it comes whole again when next updated",
            )

    def read_export(self, slot: Slot) -> Iterator[FileRowsLike]:
        """Wait for ``slot``'s export and yield each of its result files' rows (read by the consumer)."""
        session, job = self.session, slot.job

        def created(new: ExportInfo) -> None:  # created again (it Failed, or was Canceled or expired)
            session.in_flight.pop(slot.info.id, None)
            session.in_flight[new.id] = job.spec.label
            slot.info = new
            self.checkpoint()

        rows, conv = 0, None
        with budget_exempt(session.client):
            if session.runner.last_complete:  # exports work in this run: queue the next behind this one now
                self.fill(ahead=True)
            runs = session.runner.run(
                job.spec, on_created=created, started=slot.info, on_working=lambda: self.fill(ahead=True)
            )
            for rf in runs:
                conv = session.zones.converter(rf.export, conv)
                part = self.stream.open_file(rf, conv)
                yield part
                rf.export.rows += part.count
                rows += part.count
        info = slot.info
        self.stream.logger.info(
            "%s: export %s done: waited %.1fs, %d file(s), %d row(s)",
            job.spec.label,
            info.id,
            info.waited,
            info.files,
            rows,
        )
        self.waited += info.waited

    def replan(self) -> None:
        """Cancel exports created ahead for windows the rate just learned says are far too large.

        Only for windows sized by the data: an export queued before the rate was known (e.g.
        a year-wide second window) is replaced by narrower ones. Its rows were never read.
        """
        planner, session = self.planner, self.session
        if planner.size is not None or not planner.rows_per_day:
            return
        limit = OVERSIZE * planner.rows_per_export
        windows = [s.job.window for s in self.slots] + [j.window for j in self.todo]
        days = [(w.end - w.start) / dt.timedelta(days=1) for w in windows]
        first = next((k for k, d in enumerate(days) if planner.rows_per_day * d > limit), None)
        if first is None:
            return
        drop = list(self.slots)[first:]
        for slot in drop:
            self.slots.pop()
            session.in_flight.pop(slot.info.id, None)
            session.logger.info(
                "%s: export %s queued ahead would hold ~%d rows at %.1f rows a day; replacing it with narrower ones",
                slot.job.spec.label,
                slot.info.id,
                planner.rows_per_day * ((slot.job.window.end - slot.job.window.start) / dt.timedelta(days=1)),
                planner.rows_per_day,
            )
            with budget_exempt(session.client):
                session.runner.cancel(slot.info.id, slot.job.spec.label)
        self.todo.clear()
        planner.cursor = windows[first].start
        self.planned_all = False

    def abandon(self, *, courtesy: bool) -> bool:
        """After an error: drop the exports created ahead (not the window being read's: a rerun reuses them).

        With ``courtesy`` they are canceled too (one try each): not after the daily limit, the
        call budget or the credentials ended the run, which a cancel would only run into again.
        State is rewritten before any cancel, so a signal meanwhile writes it right. Returns True
        when an export was left out for its unreadable file (the caller then writes a last STATE).
        """
        session = self.session
        head = self.slots[0].job.window if self.slots else None
        ahead: list[Slot] = []
        while self.slots and self.slots[-1].job.window != head:
            ahead.append(self.slots.pop())
        self.todo.clear()
        spoiled = [s for s in self.slots if s.info.spoiled]
        for slot in spoiled:  # its file is malformed as Pardot stores it: a rerun creates it again
            self.slots.remove(slot)
            session.in_flight.pop(slot.info.id, None)
            self.stream.logger.info(
                "%s: export %s left out of the state: its result file cannot be read, so the next run creates "
                "the export again instead of reusing it",
                slot.job.spec.label,
                slot.info.id,
            )
        if self.stream.replication_method == "INCREMENTAL":
            state = self.stream.get_context_state(self.context)
            if self.slots or spoiled:
                self.record_slots(state)
            else:  # nothing started: an export from state a rerun may still reuse stays
                state.pop(QUEUED_KEY, None)
        for slot in ahead:  # in flight until canceled: a signal meanwhile cancels it too
            if courtesy and not session.runner.stopping:
                session.client.cancel_now(slot.info.id, timeout=5.0)
            session.in_flight.pop(slot.info.id, None)
        return bool(spoiled) and self.stream.replication_method == "INCREMENTAL"


def prefetch_next(stream: WindowedStream, session: ExportSession, cost: int) -> None:
    """Create the first export of the next selected stream, so Pardot has it queued meanwhile.

    Only for a stream with no export in flight in its state (it resumes its own). The export
    is recorded in that stream's state and in ``session.ahead`` by its query: that stream
    takes it when its first window asks for the very same query; else it is canceled at
    the end of the run (:func:`release_ahead`).
    """
    nxt = session.next_stream(stream.name) if session.next_stream is not None else None
    if nxt is None or not session.room() or nxt.replication_method != "INCREMENTAL":
        return
    left = session.calls_left()
    if left is not None and left < 2 * cost:
        return
    state = nxt.get_context_state(None)
    if pending_entries(state):
        return
    nxt.begin_windows(None)
    groups = stream_groups(nxt)
    w = make_planner(nxt, session, None, []).next()
    if w is None:
        return
    job = make_job(nxt, w, groups[0], [], (0, len(groups)))
    with budget_exempt(session.client):
        info = session.runner.create(job.spec)
    session.in_flight[info.id] = job.spec.label
    session.ahead[job.query] = AheadExport(nxt, info, job.spec)
    state["pending_export"] = pending_entry(job, info)
    nxt.emit_state()


def release_ahead(session: ExportSession, *, failed: bool, courtesy: bool = True) -> None:
    """Cancel the exports created ahead that no stream took, and drop them from state.

    After an error (``failed``) each gets one try without retries, none without ``courtesy``.
    """
    for query, ahead in list(session.ahead.items()):
        del session.ahead[query]
        state = ahead.stream.get_context_state(None)
        pending = state.get("pending_export")
        mine = isinstance(pending, dict) and pending.get("id") == ahead.info.id
        if mine:  # before the cancel: a signal meanwhile writes the state without it
            state.pop("pending_export")
        session.in_flight.pop(ahead.info.id, None)
        if session.runner.stopping or not courtesy:
            continue
        if failed:
            session.client.cancel_now(ahead.info.id, timeout=5.0)
        else:
            try:
                with budget_exempt(session.client):
                    session.runner.cancel(ahead.info.id, ahead.spec.label)
            except Exception as exc:  # noqa: BLE001 - a courtesy: the run's rows are all out
                session.logger.warning(
                    "%s: export %s created ahead not canceled: %s", ahead.spec.label, ahead.info.id, exc
                )
        if mine and not failed:
            ahead.stream.emit_state()


#: state keys of the recycle-bin pass: the pass in progress (its own bookmark and exports in flight, as
#: a nested stream state: the stream's bookmark is never touched), and the run end of the last whole pass
DELETES_KEY = "deletes_pass"
DELETES_AT_KEY = "deletes_pass_at"
#: a recycle-bin pass runs one export per year of range
DELETES_WINDOW = dt.timedelta(days=365)


class RecycleBinView:
    """``stream`` as its recycle-bin pass sees it: the bin's exports, its own state, rows stamped deleted."""

    def __init__(self, stream: WindowedStream, recycle_bin: RecycleBin, stamp: str) -> None:
        """``stamp``: the ``_sdc_deleted_at`` of every row of this pass (the run's end)."""
        self.stream, self.bin, self.stamp = stream, recycle_bin, stamp
        self.name, self.object_name = stream.name, stream.object_name
        self.replication_key, self.replication_method = stream.replication_key, stream.replication_method
        self.logger, self.procedure = stream.logger, stream.procedure

    @property
    def selected(self) -> bool:
        """True when the catalog selects the stream."""
        return self.stream.selected

    def procedure_bounds(self) -> tuple[str, str]:
        """The stream's procedure's (after, before) argument names."""
        return self.stream.procedure_bounds()

    def procedure_arguments(self) -> dict[str, t.Any]:
        """The stream's arguments, asking for the recycle bin only."""
        return {**self.stream.procedure_arguments(), self.bin.argument: "true"}

    def window_size(self) -> dt.timedelta | None:
        """A year: the widest window an export takes (the recycle bin is small)."""
        return DELETES_WINDOW

    def rows_per_export(self) -> int:
        """The stream's (unused: the windows are fixed)."""
        return self.stream.rows_per_export()

    def requested_fields(self) -> list[str]:
        """The stream's fields."""
        return self.stream.requested_fields()

    def get_starting_timestamp(self, context: Context | None) -> dt.datetime | None:
        """Where an interrupted pass stopped, else start_date."""
        value = self.get_context_state(context).get("replication_key_value")
        try:
            return parse_setting_datetime(str(value)) if value else self.bin.start
        except ValueError:
            return self.bin.start

    def get_context_state(self, context: Context | None) -> dict[str, t.Any]:
        """The pass's own state, nested in the stream's."""
        outer = self.stream.get_context_state(context)
        if not isinstance(outer.get(DELETES_KEY), dict):
            outer[DELETES_KEY] = {}
        return t.cast("dict[str, t.Any]", outer[DELETES_KEY])

    def begin_windows(self, context: Context | None) -> None:
        """Nothing: the stream's starting bookmark was recorded by its own windows."""

    def emit_state(self) -> None:
        """The stream's STATE message."""
        self.stream.emit_state()

    def open_file(self, rf: ResultFile, conv: LocalDateTimeConverter, deleted_at: str | None = None) -> FileRowsLike:
        """The file's rows, stamped deleted at the pass's time."""
        return self.stream.open_file(rf, conv, deleted_at or self.stamp)

    def recycle_bin(self) -> RecycleBin | None:
        """None: a pass has no pass of its own."""
        return None


def pass_due(stream: WindowedStream, context: Context | None, recycle_bin: RecycleBin, run_end: dt.datetime) -> bool:
    """True when the stream's recycle-bin pass runs now: one was interrupted, or the last is old enough."""
    state = stream.get_context_state(context)
    if state.get(DELETES_KEY):
        return True
    last = state.get(DELETES_AT_KEY)
    try:
        when = parse_setting_datetime(str(last)) if last else None
    except ValueError:
        when = None
    if when is not None and run_end - when < recycle_bin.every:
        stream.logger.info(
            "%s: recycle-bin pass not due: the last ran up to %s (deletes_pass_days)", stream.name, api_time(when)
        )
        return False
    return True


def recycle_bin_run(stream: WindowedStream, session: ExportSession, context: Context | None) -> StreamSync | None:
    """The stream's recycle-bin pass over start_date .. run end when capture_deletes wants one now."""
    recycle_bin = stream.recycle_bin()
    if recycle_bin is None or recycle_bin.start >= session.run_end:
        return None
    if not pass_due(stream, context, recycle_bin, session.run_end):
        return None
    stamp = session.run_end.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    stream.logger.info(
        "%s: recycle-bin pass (%s=true), deleted records stamped %s", stream.name, recycle_bin.argument, stamp
    )
    return StreamSync(RecycleBinView(stream, recycle_bin, stamp), session, context)


def finish_recycle_bin(
    stream: WindowedStream, session: ExportSession, context: Context | None, run: StreamSync
) -> None:
    """When every row of the pass was emitted: drop its state, keep when it ran (else the next run resumes it)."""
    if run.bookmark is None or run.bookmark < run.planner.end:  # stopped by max_api_calls
        return
    state = stream.get_context_state(context)
    state.pop(DELETES_KEY, None)
    state[DELETES_AT_KEY] = api_time(session.run_end)
    stream.emit_state()


def result_files(stream: WindowedStream, session: ExportSession, context: Context | None) -> Iterator[FileRowsLike]:
    """Run the windows' exports; yield each result file's rows, checkpointing after each window.

    The consumer reads each file (setting its ``count``) before asking for the next.
    """
    session.announce()
    stream.begin_windows(context)
    client = session.client
    calls0, t0 = client.api_calls, time.monotonic()
    run = StreamSync(stream, session, context)
    current = run
    try:
        yield from run.files()
        bin_run = recycle_bin_run(stream, session, context)
        if bin_run is not None:
            current = bin_run
            yield from bin_run.files()
            finish_recycle_bin(stream, session, context, bin_run)
            run.rows, run.exports = run.rows + bin_run.rows, run.exports + bin_run.exports
    except BaseException as exc:
        courtesy = not isinstance(exc, MUST_PROPAGATE)
        spoiled = current.abandon(courtesy=courtesy)
        release_ahead(session, failed=True, courtesy=courtesy)
        if spoiled:  # the last STATE, once the exports created ahead are gone from it too
            stream.emit_state()
        raise
    stream.logger.info(
        "%s: summary: %d row(s), %d export(s), %d API call(s), %.1fs waiting on exports, %.1fs; run so far: "
        "%d API call(s) %s",
        stream.name,
        run.rows,
        run.exports,
        client.api_calls - calls0,
        run.waited,
        time.monotonic() - t0,
        client.api_calls,
        dict(client.calls),
    )
    if session.next_stream is None or session.next_stream(stream.name) is None:
        release_ahead(session, failed=False)
