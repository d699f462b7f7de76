"""Streams wider than an export: field groups exported apart, joined by ``id`` on disk.

An export takes at most :data:`MAX_FIELDS` fields. When a stream's selected fields exceed
that, :func:`field_groups` splits them into groups that each fit (each with ``id`` and the
replication key), one export per group runs for the same window, and :class:`JoinSpool`
joins their rows by ``id`` before any record is emitted: every group's typed rows go to a
private SQLite file (memory stays flat whatever the export's size: SQLite pages to disk past
a small cache), then a full outer join over the groups yields whole records.

A record found in one group's export but not in another's (it was updated or deleted in
Pardot between the two exports) is emitted with the fields that are known, never dropped:
an update moved its replication key past the run's end, so the next run brings it whole.
"""

from __future__ import annotations

import math
import shutil
import sqlite3
import tempfile
import time
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from typing_extensions import Self

from tap_pardot_export.errors import PardotAPIError

if t.TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

#: an export takes at most this many fields
MAX_FIELDS = 150
#: rows written to the spool per statement, at most, and their bytes (a wide row of long texts is tens of
#: KiB). Small batches keep the heap small: 4 MiB batches left the tap 45 MiB larger, for no speed.
BATCH_ROWS = 2000
BATCH_BYTES = 256 * 1024
#: SQLite's page cache per spool, in KiB (16 MiB made the join no faster, and the tap 12 MiB larger)
CACHE_KIB = 4 * 1024
#: ids shown in the warning about records some groups lacked
SHOW_IDS = 5


class SpoolError(PardotAPIError):
    """The disk spool of a wide stream's join failed (disk full, a temporary folder not writable)."""


class PartLike(t.Protocol):
    """One group's result file being read: its typed records."""

    def records(self, drop: Sequence[str] = ()) -> Iterator[dict[str, t.Any]]:
        """The file's typed records."""


def field_groups(fields: Sequence[str], keys: Sequence[str], limit: int = MAX_FIELDS) -> list[list[str]]:
    """Split ``fields`` into groups of at most ``limit`` fields, each holding every one of ``keys``.

    One group (``fields`` as they are) when they fit; else as few groups as fit, of even size,
    in the fields' order. ``keys`` are the join key and the replication key.
    """
    fields = list(dict.fromkeys(fields))
    if len(fields) <= limit:
        return [fields]
    keys = [k for k in dict.fromkeys(keys) if k in fields]
    rest = [f for f in fields if f not in keys]
    room = limit - len(keys)
    if room < 1:  # pragma: no cover - two keys always leave room
        msg = f"{len(keys)} key fields leave no room in an export of {limit} fields"
        raise ValueError(msg)
    count = math.ceil(len(rest) / room)
    size, extra = divmod(len(rest), count)
    groups, at = [], 0
    for k in range(count):
        n = size + (k < extra)
        groups.append(keys + rest[at : at + n])
        at += n
    return groups


@dataclass
class JoinStats:
    """What a join found: records whole, records some groups lacked, replication keys that differed."""

    rows: int = 0
    partial: int = 0
    partial_ids: list[t.Any] = field(default_factory=list)
    mixed: int = 0
    #: seconds spent typing and writing the groups' rows to the spool, and joining and emitting them
    spool_seconds: float = 0.0
    join_seconds: float = 0.0
    #: the spool file's size once every group was written
    spool_bytes: int = 0


class JoinSpool:
    """One window's field groups, spooled to a private SQLite file and joined by ``id``.

    Use as a context manager: the file is removed on exit. :meth:`add` takes one group's
    result file at a time; :meth:`records` then yields each id's merged record once per row
    of the first group holding it (a group with the same id twice yields it twice), joined
    to the last row of that id in each later group.
    """

    def __init__(
        self,
        stream: str,
        groups: int,
        *,
        key: str = "id",
        replication_key: str | None = None,
        under: str | None = None,
    ) -> None:
        """A spool for ``groups`` groups of ``stream``, joined on ``key``, in a new folder ``under`` a folder.

        ``under`` is the run's download folder, which a signal's forced exit removes too
        (default: the system's temporary folder, TMPDIR).
        """
        self.stream, self.groups, self.key, self.replication_key = stream, groups, key, replication_key
        self.folder = tempfile.mkdtemp(prefix=f"{stream}-join-", dir=under)
        self.path = str(Path(self.folder) / "join.sqlite")
        #: per group: its field names, in the order each spooled row's values are stored
        self.layouts: list[list[str] | None] = [None] * groups
        #: the names of every group, in order (the joined records' fields)
        self.header: list[str] = []
        self.stats = JoinStats()
        self.indexed = False
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            for pragma in (
                "journal_mode=OFF",
                "synchronous=OFF",
                "locking_mode=EXCLUSIVE",
                "temp_store=FILE",
                f"cache_size=-{CACHE_KIB}",
            ):
                self.db.execute(f"PRAGMA {pragma}")
            for g in range(groups):
                self.db.execute(f"CREATE TABLE g{g} (id INTEGER NOT NULL, data BLOB NOT NULL)")
        except sqlite3.Error as exc:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise self.error(exc) from None

    def __enter__(self) -> Self:
        """The spool."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the spool and remove its file."""
        self.close()

    def close(self) -> None:
        """Close the spool and remove its file (safe to call twice)."""
        db = getattr(self, "db", None)
        if db is not None:
            db.close()
            self.db = None  # type: ignore[assignment]
        shutil.rmtree(self.folder, ignore_errors=True)

    def error(self, exc: BaseException) -> SpoolError:
        """The message for a spool that failed: where it is and what to do."""
        msg = (
            f"{self.stream}: the disk spool joining its field groups ({self.folder}) failed: {exc}. A window of a "
            "stream wider than 150 fields is written to disk once per field group before its records are "
            "emitted: free disk space, point TMPDIR at a larger disk, or make windows smaller (rows_per_export, "
            "window_days)."
        )
        return SpoolError(msg)

    def add(self, group: int, part: PartLike) -> int:
        """Spool one result file of ``group``; return its rows.

        A row's values are stored in the group's layout: the fields of its first record
        (the file's fields, and any set on every record, as capture_deletes' stamp).
        """
        key, dumps, rows, t0 = self.key, orjson.dumps, 0, time.monotonic()
        layout: list[str] = []
        insert = f"INSERT INTO g{group} (id, data) VALUES (?, ?)"  # noqa: S608 - table names are g<int>
        batch: list[tuple[t.Any, bytes]] = []
        held = 0
        in_order = False  # the file's records have the layout's keys in its order (checked on the first)
        try:
            self.db.execute("BEGIN")
            for rec in part.records():
                if rows == 0:
                    layout = self._layout(group, rec)
                    in_order = list(rec) == layout
                same = in_order and len(rec) == len(layout)
                data = dumps(list(rec.values()) if same else [rec.get(n) for n in layout])
                batch.append((rec[key], data))
                rows, held = rows + 1, held + len(data)
                if len(batch) == BATCH_ROWS or held >= BATCH_BYTES:
                    self.db.executemany(insert, batch)
                    batch.clear()
                    held = 0
            if batch:
                self.db.executemany(insert, batch)
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self.error(exc) from None
        self.stats.spool_seconds += time.monotonic() - t0
        return rows

    def reset(self, group: int) -> None:
        """Forget the rows spooled for ``group`` (its export was created again: its files all come anew)."""
        try:
            self.db.execute(f"DELETE FROM g{group}")  # noqa: S608 - table names are g<int>
        except sqlite3.Error as exc:
            raise self.error(exc) from None

    def size(self) -> int:
        """The spool file's size in bytes."""
        try:
            return Path(self.path).stat().st_size
        except OSError:  # pragma: no cover - removed under us
            return 0

    def _layout(self, group: int, rec: dict[str, t.Any]) -> list[str]:
        """The group's layout, set by its first record; a later file must have the same fields."""
        layout = self.layouts[group]
        if layout is None:
            layout = self.layouts[group] = list(rec)
            self.header += [n for n in layout if n not in self.header]
        elif set(layout) != set(rec):  # pragma: no cover - every file of an export has its fields (checked)
            msg = f"{self.stream}: field group {group + 1} has result files with different fields"
            raise SpoolError(msg)
        return layout

    def records(self) -> Iterator[dict[str, t.Any]]:
        """Every id's record, its groups' fields merged; ids some group lacks come with what is known."""
        try:
            if not self.indexed:
                for g in range(self.groups):
                    self.db.execute(f"CREATE INDEX i{g} ON g{g} (id)")
                self.indexed = True
            for g in range(self.groups):
                yield from self._rows_first_in(g)
        except sqlite3.Error as exc:
            raise self.error(exc) from None

    def _rows_first_in(self, first: int) -> Iterator[dict[str, t.Any]]:
        """The records whose id is in group ``first`` and in no group before it, joined to the groups after."""
        later = range(first + 1, self.groups)
        columns = ", ".join([f"g{first}.id", f"g{first}.data", *(f"g{g}.data" for g in later)])
        # one row of each later group per id (its last): an id twice in several groups is not multiplied
        joins = " ".join(
            f"LEFT JOIN g{g} ON g{g}.rowid = (SELECT max(d.rowid) FROM g{g} AS d WHERE d.id = g{first}.id)"  # noqa: S608
            for g in later
        )
        where = " AND ".join(
            f"NOT EXISTS (SELECT 1 FROM g{g} WHERE g{g}.id = g{first}.id)"  # noqa: S608 - table names are g<int>
            for g in range(first)
        )
        # table names are g<int>: no value enters the statement's text
        sql = f"SELECT {columns} FROM g{first} {joins}" + (f" WHERE {where}" if where else "")  # noqa: S608
        layouts = [layout or [] for layout in self.layouts[first:]]
        whole = first == 0
        loads, stats, rkey = orjson.loads, self.stats, self.replication_key
        for row in self.db.execute(sql):
            rec: dict[str, t.Any] = {}
            missing = not whole
            marks: list[t.Any] = []
            for layout, data in zip(layouts, row[1:], strict=True):
                if data is None:
                    missing = True
                    continue
                rec.update(zip(layout, loads(data), strict=True))
                if rkey is not None and rec.get(rkey) is not None:
                    marks.append(rec[rkey])
            if rkey is not None and len(set(marks)) > 1:  # the groups saw different versions: the oldest mark
                stats.mixed += 1
                rec[rkey] = min(marks)
            if missing:
                stats.partial += 1
                if len(stats.partial_ids) < SHOW_IDS:
                    stats.partial_ids.append(row[0])
            stats.rows += 1
            yield rec


@dataclass
class JoinedRows:
    """A window's joined records, read like one result file (see streams.FileRows)."""

    stream: str
    spool: JoinSpool
    count: int = 0

    @property
    def header(self) -> list[str]:
        """The fields of the joined records."""
        return self.spool.header

    def records(self, drop: Sequence[str] = ()) -> Iterator[dict[str, t.Any]]:
        """The joined records, without the ``drop`` fields; ``count`` follows along."""
        for n, rec in enumerate(self.spool.records(), 1):
            for name in drop:
                rec.pop(name, None)
            self.count = n
            yield rec
