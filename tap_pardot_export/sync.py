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

import contextlib
import datetime as dt
import hashlib
import math
import time
import typing as t
from dataclasses import dataclass

import orjson

from tap_pardot_export.errors import PardotConfigError, ResultFormatError
from tap_pardot_export.exports import ExportSpec
from tap_pardot_export.windows import Window, api_time, tile

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Iterator

    from singer_sdk.helpers.types import Context

    from tap_pardot_export.client import PardotClient
    from tap_pardot_export.convert import LocalDateTimeConverter
    from tap_pardot_export.exports import ExportInfo, ResultFile
    from tap_pardot_export.session import ExportSession

#: an export takes at most this many fields
MAX_FIELDS = 150
#: the calls a window costs before the run has measured one: create, a read or two, one file
FIRST_WINDOW_COST = 4


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

    def window_size(self) -> dt.timedelta:
        """One window's length."""

    def requested_fields(self) -> list[str]:
        """The fields to export."""

    def get_starting_timestamp(self, context: Context | None) -> dt.datetime | None:
        """The bookmark, or start_date."""

    def get_context_state(self, context: Context | None) -> dict[str, t.Any]:
        """The state dict of ``context`` (mutable)."""

    def begin_windows(self, context: Context | None) -> None:
        """Called once before the first window."""

    def emit_state(self) -> None:
        """Write a STATE message."""

    def open_file(self, rf: ResultFile, conv: LocalDateTimeConverter) -> FileRowsLike:
        """A checked result file's typed rows."""


@dataclass
class WindowJob:
    """One window's export: its query, and the export from state it may reuse."""

    window: Window
    spec: ExportSpec
    query: str
    resume_id: int | None
    #: the resumed export's createdAt (the API user's zone) and our clock at its creation
    resume_clock: tuple[str, float] | None


def check_field_count(stream: str, fields: list[str]) -> None:
    """Refuse an export of more fields than the API takes, naming the stream and the fix."""
    n = len(fields)
    if n > MAX_FIELDS:
        msg = (
            f"stream {stream}: {n} fields are selected, but an export takes at most {MAX_FIELDS}. "
            f"Deselect {n - MAX_FIELDS} field(s) in the catalog (or fewer custom_fields)."
        )
        raise PardotConfigError(msg)


def plan(stream: WindowedStream, session: ExportSession, context: Context | None) -> list[Window]:
    """The windows from the bookmark (or start_date) to the run's end."""
    start = stream.get_starting_timestamp(context)
    if start is None:  # pragma: no cover - start_date is required
        raise ResultFormatError(f"{stream.name}: no start_date")
    if start.tzinfo is None:
        start = start.replace(tzinfo=dt.timezone.utc)
    windows = tile(start, session.run_end, stream.window_size())
    stream.logger.info(
        "%s: %d window(s) from %s to %s, procedure %s",
        stream.name,
        len(windows),
        api_time(start),
        api_time(session.run_end),
        stream.procedure,
    )
    return windows


def make_job(stream: WindowedStream, w: Window, fields: list[str], pending: dict[str, t.Any]) -> WindowJob:
    """The window's export spec; the export in state is reused only for the very same query."""
    after_arg, before_arg = stream.procedure_bounds()
    arguments = {after_arg: api_time(w.after), before_arg: api_time(w.before), **stream.procedure_arguments()}
    label = f"{stream.name} [{api_time(w.start)} .. {api_time(w.end)})"
    spec = ExportSpec(stream.object_name, fields, stream.procedure, arguments, label)
    query = hashlib.sha256(orjson.dumps(spec.body(), option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]
    if pending.get("query") != query or not isinstance(pending.get("id"), int):
        return WindowJob(w, spec, query, None, None)
    return WindowJob(w, spec, query, pending["id"], _resume_clock(pending))


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


def checkpoint(
    stream: WindowedStream, context: Context | None, bookmark: dt.datetime | None, pending: dict[str, t.Any] | None
) -> None:
    """Record progress: the finished range and the export in flight, then emit STATE."""
    if stream.replication_method != "INCREMENTAL":
        return
    state = stream.get_context_state(context)
    if bookmark is not None:
        state["replication_key"] = stream.replication_key
        state["replication_key_value"] = api_time(bookmark)
    state.pop("progress_markers", None)
    if pending:
        state["pending_export"] = pending
    else:
        state.pop("pending_export", None)
    stream.emit_state()


def pending_entry(job: WindowJob, info: ExportInfo) -> dict[str, t.Any]:
    """What state keeps of an export in flight: enough to reuse it and read its times right."""
    w = job.window
    entry: dict[str, t.Any] = {
        "id": info.id,
        "after": api_time(w.after),
        "before": api_time(w.before),
        "query": job.query,
    }
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
    left = session.client.budget_left()
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


def window_files(
    stream: WindowedStream, session: ExportSession, context: Context | None, job: WindowJob
) -> Iterator[FileRowsLike]:
    """Run one window's export; yield its files; checkpoint the window's end once all were read."""
    conv: LocalDateTimeConverter | None = None

    def created(info: ExportInfo) -> None:
        session.in_flight = info.id
        checkpoint(stream, context, None, pending_entry(job, info))

    info: ExportInfo | None = None
    session.in_flight = job.resume_id
    for rf in session.runner.run(job.spec, resume_id=job.resume_id, on_created=created):
        info = rf.export
        if info.id == job.resume_id and not info.requested_at and job.resume_clock:
            info.created_at, info.requested_at = job.resume_clock  # read a resumed export's times in its zone
        conv = session.zones.converter(info, conv)
        part = stream.open_file(rf, conv)
        yield part
        info.rows += part.count
    if info is not None:
        stream.logger.info(
            "%s: export %s done: waited %.1fs, %d file(s), %d row(s)",
            job.spec.label,
            info.id,
            info.waited,
            info.files,
            info.rows,
        )
    session.in_flight = None
    checkpoint(stream, context, job.window.end, None)


def result_files(stream: WindowedStream, session: ExportSession, context: Context | None) -> Iterator[FileRowsLike]:
    """Run the windows' exports; yield each result file's rows, checkpointing after each window.

    The consumer reads each file (setting its ``count``) before asking for the next.
    """
    fields = stream.requested_fields()
    check_field_count(stream.name, fields)
    session.announce()
    stream.begin_windows(context)
    client = session.client
    pending = stream.get_context_state(context).get("pending_export")
    pending = dict(pending) if isinstance(pending, dict) else {}
    calls0, t0, rows, exports = client.api_calls, time.monotonic(), 0, 0
    cost = FIRST_WINDOW_COST
    for w in plan(stream, session, context):
        if not can_afford(stream, session, cost, w):
            break
        job = make_job(stream, w, fields, pending)
        w_calls0 = client.api_calls
        with budget_exempt(client):
            for part in window_files(stream, session, context, job):
                yield part
                rows += part.count
        pending = {}
        exports += 1
        session.windows_done += 1
        cost = max(cost, client.api_calls - w_calls0)
    stream.logger.info(
        "%s: summary: %d row(s), %d export(s), %d API call(s), %.1fs; run so far: %d API call(s) %s",
        stream.name,
        rows,
        exports,
        client.api_calls - calls0,
        time.monotonic() - t0,
        client.api_calls,
        dict(client.calls),
    )
