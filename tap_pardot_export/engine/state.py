"""The tap's state format: what each stream's state holds, written and checked in one place.

A stream's state (the SDK's dict for it, written in place) holds, besides the SDK's
``replication_key`` and ``replication_key_value`` (the bookmark):

- ``pending_export``: the export of the window at the bookmark, while it is in flight;
- ``queued_exports``: the exports created ahead for the windows after it;
- ``rows_per_year``: the rate learned from the windows done (an integer: Singer targets may
  read numbers in state as Decimal, which some cannot write back);
- ``deletes_pass``: a recycle-bin pass in progress, itself a stream state of this format;
- ``deletes_pass_at``: the run end of the last whole recycle-bin pass;
- ``last_id`` (a query stream): the id of the last record emitted at the bookmark's second, so a
  resumed read takes the rest of that second after it;
- ``recycle_bin_ids`` (an incremental query stream with a recycle bin): the ids found in the bin
  by the last whole read of it, already emitted as deleted.

Each export entry holds its id, its window's ``after``/``before`` bounds, the digest of its
query, the fields Pardot refused at its create (``dropped``), and its ``createdAt`` with our
clock at its create (to read its times in the right offset on resume). :func:`state_errors`
checks every key a run reads.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import typing as t

from tap_pardot_export.engine.windows import EARLIEST, OVERLAP, Window, api_time, parse_setting_datetime
from tap_pardot_export.errors import PardotConfigError

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

PENDING_KEY = "pending_export"
QUEUED_KEY = "queued_exports"
LEARNED_KEY = "rows_per_year"
DELETES_KEY = "deletes_pass"
DELETES_AT_KEY = "deletes_pass_at"
LAST_ID_KEY = "last_id"
BIN_IDS_KEY = "recycle_bin_ids"
YEAR_DAYS = 365
#: the rows a year a learned rate may hold: fewer is written as one (an empty stream), more is corrupted state
LEARNED_RANGE = (1, 10**10)
#: clocks differ a little; a bookmark further ahead than this was written for a future end_date
CLOCK_SKEW = dt.timedelta(minutes=5)
START_OVER = (
    "To start over from start_date, delete the state file (plain Singer), or with Meltano find the "
    "state id with `meltano state list` and run `meltano state clear <state id>`."
)


class StreamState:
    """One stream's state, read and written in the tap's format."""

    def __init__(self, data: dict[str, t.Any]) -> None:
        """``data``: the stream's state dict (written in place)."""
        self.data = data

    def entries(self) -> list[dict[str, t.Any]]:
        """The exports in flight it records, oldest window first."""
        out = [dict(self.data[PENDING_KEY])] if isinstance(self.data.get(PENDING_KEY), dict) else []
        queued = self.data.get(QUEUED_KEY)
        if isinstance(queued, list):
            out += [dict(e) for e in queued if isinstance(e, dict)]
        return out

    def record_exports(self, entries: list[dict[str, t.Any]]) -> None:
        """Record the exports in flight, oldest window first (none: both keys go)."""
        for key, value in ((PENDING_KEY, entries[0] if entries else None), (QUEUED_KEY, entries[1:])):
            if value:
                self.data[key] = value
            else:
                self.data.pop(key, None)

    def record_prefetched(self, entry: dict[str, t.Any]) -> None:
        """Record an export created ahead for this stream before it started (it has none of its own)."""
        self.data[PENDING_KEY] = entry

    def drop_prefetched(self, export_id: int) -> bool:
        """Forget the export created ahead for this stream; True when it was recorded."""
        pending = self.data.get(PENDING_KEY)
        if isinstance(pending, dict) and pending.get("id") == export_id:
            del self.data[PENDING_KEY]
            return True
        return False

    def drop_queued(self) -> None:
        """Forget the exports created ahead (an export at the bookmark stays, for a rerun to reuse)."""
        self.data.pop(QUEUED_KEY, None)

    def set_bookmark(self, key: str, when: dt.datetime) -> None:
        """Move the bookmark (every row before ``when`` was emitted)."""
        self.data["replication_key"] = key
        self.data["replication_key_value"] = api_time(when)
        self.data.pop("progress_markers", None)

    def set_keyset(self, key: str, when: dt.datetime, last_id: int | None) -> None:
        """Move a query stream's bookmark: records before ``when`` were emitted, and at ``when`` up to ``last_id``."""
        self.set_bookmark(key, when)
        if last_id is None:
            self.data.pop(LAST_ID_KEY, None)
        else:
            self.data[LAST_ID_KEY] = last_id

    def last_id(self) -> int | None:
        """The id of the last record emitted at the bookmark's second (a query stream), if recorded."""
        value = self.data.get(LAST_ID_KEY)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def bin_ids(self) -> set[int]:
        """The ids the last whole read of the recycle bin found (emitted as deleted then)."""
        value = self.data.get(BIN_IDS_KEY)
        return {v for v in value if isinstance(v, int)} if isinstance(value, list) else set()

    def set_bin_ids(self, ids: Iterable[int] | None) -> None:
        """Keep the ids in the recycle bin now (None: forget them: the next read emits the bin whole)."""
        if ids is None:
            self.data.pop(BIN_IDS_KEY, None)
        else:
            self.data[BIN_IDS_KEY] = sorted(set(ids))

    def bookmark(self) -> dt.datetime | None:
        """The bookmark, when it parses."""
        value = self.data.get("replication_key_value")
        try:
            return parse_setting_datetime(str(value)) if value else None
        except ValueError:
            return None

    def learned_rate(self) -> float | None:
        """The rows per day a former run learned (from its rows per year; numbers may be Decimal)."""
        rate = _finite(self.data.get(LEARNED_KEY))
        return rate / YEAR_DAYS if rate is not None and LEARNED_RANGE[0] <= rate <= LEARNED_RANGE[1] else None

    def set_learned_rate(self, rows_per_day: float) -> None:
        """Keep the rate learned for the next run (within :data:`LEARNED_RANGE`)."""
        low, high = LEARNED_RANGE
        self.data[LEARNED_KEY] = min(high, max(low, round(rows_per_day * YEAR_DAYS)))

    # -- the recycle-bin pass -------------------------------------------------------------------

    def deletes_pass(self) -> StreamState:
        """The recycle-bin pass in progress (created empty when there is none)."""
        if not isinstance(self.data.get(DELETES_KEY), dict):
            self.data[DELETES_KEY] = {}
        return StreamState(self.data[DELETES_KEY])

    def pass_in_progress(self) -> bool:
        """True when a recycle-bin pass was interrupted (the next run resumes it)."""
        return bool(self.data.get(DELETES_KEY))

    def last_pass(self) -> dt.datetime | None:
        """The run end of the last whole recycle-bin pass."""
        value = self.data.get(DELETES_AT_KEY)
        try:
            return parse_setting_datetime(str(value)) if value else None
        except ValueError:
            return None

    def pass_done(self, at: dt.datetime) -> None:
        """A whole recycle-bin pass was emitted, up to ``at``."""
        self.data.pop(DELETES_KEY, None)
        self.data[DELETES_AT_KEY] = api_time(at)


def _finite(value: t.Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


# -- export entries -------------------------------------------------------------------------------


def entry_window(entry: dict[str, t.Any]) -> Window | None:
    """The window an export in state was created for, or None when its bounds do not parse."""
    try:
        after = parse_setting_datetime(str(entry["after"]))
        before = parse_setting_datetime(str(entry["before"]))
    except (KeyError, ValueError):
        return None
    return Window(after + OVERLAP, before) if before > after + OVERLAP else None


def resume_clock(entry: dict[str, t.Any]) -> tuple[str, float] | None:
    """The export's createdAt and our clock at its creation, from state (numbers may be Decimal)."""
    created, clock = entry.get("created_at"), _finite(entry.get("requested_at"))
    if not isinstance(created, str) or clock is None:
        return None
    return (created, clock) if clock > 0 else None


def export_entry(
    *,
    export_id: int,
    window: Window,
    query: str,
    dropped: list[str],
    created_at: str | None,
    requested_at: float,
) -> dict[str, t.Any]:
    """What state keeps of an export in flight: enough to reuse it and read its times right."""
    entry: dict[str, t.Any] = {
        "id": export_id,
        "after": api_time(window.after),
        "before": api_time(window.before),
        "query": query,
    }
    if dropped:  # left out of the create (Pardot refused them): a rerun reusing it must not expect them
        entry["dropped"] = dropped
    if created_at and requested_at:
        entry["created_at"] = created_at  # in the API user's zone, as Pardot wrote it
        entry["requested_at"] = round(requested_at, 3)  # our clock (UTC seconds) at the create call
    return entry


# -- checking a state ---------------------------------------------------------------------------


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


def _date_errors(stream: str, what: str, value: object, now: dt.datetime | None) -> Iterable[str]:
    try:
        when = parse_setting_datetime(str(value))
    except ValueError:
        yield f"the {what} of {stream} ({str(value)[:40]!r}) is not a date"
        return
    if when < EARLIEST:
        yield f"the {what} of {stream} ({value}) is before {EARLIEST.date()}"
    if now is not None and when > now + CLOCK_SKEW:
        yield (
            f"the {what} of {stream} ({value}) is later than now: a run with an end_date in the "
            "future wrote it, and the rows between now and then would never be read"
        )


def _export_errors(stream: str, bookmark: dict[str, t.Any]) -> Iterable[str]:
    pending = bookmark.get(PENDING_KEY)
    if pending is not None and not (isinstance(pending, dict) and str(pending.get("id", "")).isdigit()):
        yield f"the export in flight recorded for {stream} has no valid id"
    queued = bookmark.get(QUEUED_KEY)
    if queued is not None and not (
        isinstance(queued, list) and all(isinstance(e, dict) and str(e.get("id", "")).isdigit() for e in queued)
    ):
        yield f"the exports queued ahead recorded for {stream} are not a list of exports with valid ids"


def _bookmark_errors(stream: str, bookmark: object, now: dt.datetime | None, *, nested: bool = False) -> Iterable[str]:
    if not isinstance(bookmark, dict):
        yield f"the bookmark of {stream} is not an object"
        return
    if bookmark.get("replication_key_value") is not None:
        yield from _date_errors(stream, "bookmark", bookmark["replication_key_value"], now)
    yield from _export_errors(stream, bookmark)
    learned = bookmark.get(LEARNED_KEY)
    rate = _finite(learned)
    if learned is not None and (rate is None or not LEARNED_RANGE[0] <= rate <= LEARNED_RANGE[1]):
        yield (
            f"the rows_per_year learned for {stream} ({str(learned)[:40]!r}) is not a number of rows from "
            f"{LEARNED_RANGE[0]} to {LEARNED_RANGE[1]:.0e}"
        )
    last_id = bookmark.get(LAST_ID_KEY)
    if last_id is not None and (not isinstance(last_id, int) or isinstance(last_id, bool) or last_id < 0):
        yield f"the last_id of {stream} ({str(last_id)[:40]!r}) is not a record id"
    ids = bookmark.get(BIN_IDS_KEY)
    if ids is not None and not (
        isinstance(ids, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in ids)
    ):
        yield f"the recycle_bin_ids of {stream} are not a list of record ids"
    if bookmark.get(DELETES_AT_KEY) is not None:
        yield from _date_errors(stream, "last recycle-bin pass (deletes_pass_at)", bookmark[DELETES_AT_KEY], now)
    inner = bookmark.get(DELETES_KEY)
    if inner is not None and not nested:
        yield from _bookmark_errors(f"{stream}'s recycle-bin pass (deletes_pass)", inner, now, nested=True)
    elif inner is not None:
        yield f"the {stream} holds a recycle-bin pass (deletes_pass) of its own, which a pass never has"


def recorded_exports(state: object) -> Iterator[tuple[int, str, str]]:
    """Every export a state records in flight, recycle-bin passes included: ``(id, query, where)``.

    ``where`` names the stream and window for messages; ``query`` is empty when the entry has none.
    """
    bookmarks = state.get("bookmarks") if isinstance(state, dict) else None
    if not isinstance(bookmarks, dict):
        return
    for stream, bookmark in bookmarks.items():
        passes = [(str(stream), bookmark)]
        if isinstance(bookmark, dict) and isinstance(bookmark.get(DELETES_KEY), dict):
            passes.append((f"{stream} recycle-bin pass", bookmark[DELETES_KEY]))
        for name, data in passes:
            if not isinstance(data, dict):
                continue
            for entry in StreamState(data).entries():
                export_id = str(entry.get("id", ""))
                if export_id.isdigit():
                    where = f"{name} [{entry.get('after')} .. {entry.get('before')}]"
                    yield int(export_id), str(entry.get("query") or ""), where


def _duplicate_errors(state: object) -> Iterable[str]:
    """An export recorded for two windows (or groups, or streams): an export answers one query."""
    first: dict[int, str] = {}
    for export_id, _, where in recorded_exports(state):
        if export_id in first:
            yield f"export {export_id} is recorded for two windows ({first[export_id]} and {where})"
        first.setdefault(export_id, where)


def state_errors(state: object, now: dt.datetime | None = None) -> list[str]:
    """What is wrong with a state object, if anything (one line each).

    With ``now``, a bookmark later than now is wrong too.
    """
    if not isinstance(state, dict):
        return [f"the state is {_json_type(state)}, not an object"]
    bookmarks = state.get("bookmarks", {})
    if not isinstance(bookmarks, dict):
        return ["its bookmarks are not an object"]
    errors = [e for stream, b in bookmarks.items() for e in _bookmark_errors(str(stream), b, now)]
    return errors or list(_duplicate_errors(state))


def corrupted(errors: list[str]) -> PardotConfigError:
    """The error for a state the tap cannot use, saying how to start over."""
    return PardotConfigError(f"The state is corrupted: {'; '.join(errors)}. {START_OVER}")


def _no_constant(name: str) -> t.NoReturn:
    msg = f"{name} is not JSON"
    raise ValueError(msg)


def parse_state(text: str) -> dict[str, t.Any]:
    """The state file's content, checked.

    Raises:
        PardotConfigError: the file is not JSON or its bookmarks are malformed; the message says how
            to start over.
    """
    try:
        state = json.loads(text, parse_constant=_no_constant) if text.strip() else {}
    except ValueError as exc:
        msg = f"The state is not valid JSON ({exc}); it was probably cut short. {START_OVER}"
        raise PardotConfigError(msg) from None
    except RecursionError:
        msg = f"The state is not a state the tap writes: it is nested deeper than JSON parsers go. {START_OVER}"
        raise PardotConfigError(msg) from None
    errors = state_errors(state, dt.datetime.now(dt.timezone.utc))
    if errors:
        raise corrupted(errors)
    return t.cast("dict[str, t.Any]", state)
