"""The tap's own record of the exports it created, per business unit, in a local file.

A Singer state carries the exports in flight only when it reaches the runner: under ``meltano
run`` a Ctrl-C stops the target too, and a crash loses what was not written. The record keeps
them whatever happens to the state: ``<record_dir>/<business_unit_id>.json``, replaced whole by
a write-then-rename under a lock file beside it (``<business_unit_id>.lock``), so two processes
of one business unit never lose each other's entries. Each entry holds what the export asked
for (stream, object, procedure, arguments, fields, its range ``after``/``before``), its id,
the ``createdAt`` Pardot wrote and our clock at the create.

A sync reuses a recorded export still live in Pardot for a window of the very same query
(:meth:`ExportRecord.candidates`; the run's planner adopts the recorded range as it adopts
one from state). Entries go once Pardot says the export expired, failed or was canceled, once
they are :data:`MAX_AGE` old, or when the record holds :data:`MAX_ENTRIES` (oldest first).
The record is a cache: a file that cannot be read is ignored with one warning; only a folder
that cannot be written at all stops the run (:meth:`ExportRecord.open`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time
import typing as t

import orjson

from tap_pardot_export.engine.windows import api_time
from tap_pardot_export.errors import PardotConfigError
from tap_pardot_export.locks import LockTimeout, held
from tap_pardot_export.pardot.exports import request_digest

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Container, Iterable
    from pathlib import Path

    from tap_pardot_export.engine.plan import ExportPlan, WindowJob
    from tap_pardot_export.pardot.exports import ExportInfo

FORMAT = 1
#: the entries a record keeps at most (the oldest go first)
MAX_ENTRIES = 500
#: Pardot cancels an export unfinished 7 days after its creation and expires results 7 days after completion
MAX_AGE = 7 * 86_400
#: seconds a write waits for another process of the business unit to finish its own
LOCK_TIMEOUT = 10.0
#: the scope of a recycle-bin pass's exports: the end of the last whole pass (a pass reuses only its own exports)
BIN_SCOPE = "recycle-bin pass after {}"
REQUIRED_TEXT = ("stream", "object", "procedure", "after", "before", "host")
NO_HOME = (
    "record_dir is not set, and its default (~/.local/state/tap-pardot-export) needs a home folder, which this "
    "process has none of (no HOME): set record_dir to a folder the tap may write."
)


def _canonical(value: t.Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def valid_entry(entry: t.Any) -> bool:
    """True when ``entry`` has every key a record entry holds, of the right type."""
    if not isinstance(entry, dict):
        return False
    export_id, clock = entry.get("id"), entry.get("requested_at")
    return (
        isinstance(export_id, int)
        and not isinstance(export_id, bool)
        and export_id > 0
        and all(isinstance(entry.get(k), str) for k in REQUIRED_TEXT)
        and isinstance(entry.get("arguments"), dict)
        and isinstance(entry.get("fields"), list)
        and all(isinstance(f, str) for f in entry["fields"])
        and isinstance(clock, (int, float))
        and not isinstance(clock, bool)
        and math.isfinite(clock)
        and isinstance(entry.get("created_at"), (str, type(None)))
        and isinstance(entry.get("dropped", []), list)
        and isinstance(entry.get("pass"), (str, type(None)))
    )


def entry_body(entry: dict[str, t.Any]) -> dict[str, t.Any]:
    """The create's body a record entry was made of (its query digest is the state's)."""
    return {
        "object": entry["object"],
        "fields": entry["fields"],
        "procedure": {"name": entry["procedure"], "arguments": entry["arguments"]},
    }


class RecordUnreadable(Exception):
    """Internal: the record file is not one the tap wrote for this business unit."""


class ExportRecord:
    """The record of one business unit's exports on this machine."""

    def __init__(self, folder: Path, business_unit_id: str, host: str, logger: logging.Logger) -> None:
        """The record in ``folder`` of ``business_unit_id``'s exports on API host ``host`` (nothing read yet)."""
        self.folder = folder
        self.path = folder / f"{business_unit_id}.json"
        self.lock_path = folder / f"{business_unit_id}.lock"
        self.business_unit_id, self.host, self.logger = business_unit_id, host, logger
        self._mutex = threading.Lock()
        self._warned: set[str] = set()
        #: the ids on file as last read or written (read without a lock: the signal path asks)
        self.held: frozenset[int] = frozenset()
        self._entries: list[dict[str, t.Any]] = []

    @classmethod
    def open(cls, folder: Path | None, business_unit_id: str, host: str, logger: logging.Logger) -> ExportRecord:
        """The record, read; its folder created.

        Raises:
            PardotConfigError: the folder cannot be created or written, or is unknown (naming record_dir).
        """
        if folder is None:
            raise PardotConfigError(NO_HOME)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".{business_unit_id}.probe.{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
            with held(folder / f"{business_unit_id}.lock", LOCK_TIMEOUT):
                pass
        except (OSError, LockTimeout) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            msg = (
                f"record_dir: the folder {folder} cannot be written ({why}). The tap keeps its record of the exports "
                "it created there, so that a rerun reuses them; set record_dir to a folder the tap may write, or "
                "fix this one's permissions."
            )
            raise PardotConfigError(msg) from None
        record = cls(folder, business_unit_id, host, logger)
        record.reload()
        return record

    # -- reading ---------------------------------------------------------------------------

    def reload(self) -> list[dict[str, t.Any]]:
        """Read the file again (it is replaced whole: no lock needed); every entry of the business unit."""
        try:
            entries = self._read()
        except RecordUnreadable as exc:
            self._warn("read", f"The export record {self.path} is ignored: {exc}. It is a cache: the run goes on "
                       "without it and rewrites it at its next export.")  # fmt: skip
            entries = []
        self._entries = entries
        self.held = frozenset(e["id"] for e in entries)
        return list(entries)

    def _read(self) -> list[dict[str, t.Any]]:
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise RecordUnreadable(f"it cannot be read ({exc.strerror or exc})") from None
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            raise RecordUnreadable("it is not valid JSON (cut short, or not written by the tap)") from None
        if not isinstance(data, dict) or not isinstance(data.get("exports"), list):
            raise RecordUnreadable("it is not an export record (no list of exports)")
        if data.get("business_unit_id") != self.business_unit_id:
            owner = str(data.get("business_unit_id"))[:40]
            raise RecordUnreadable(f"it holds business unit {owner}'s exports, not {self.business_unit_id}'s")
        entries = [e for e in data["exports"] if valid_entry(e)]
        if len(entries) < len(data["exports"]):
            self._warn("entries", f"The export record {self.path} has entries the tap did not write; they are "
                       "ignored.")  # fmt: skip
        return entries

    def live(self) -> list[dict[str, t.Any]]:
        """The entries of this API host younger than :data:`MAX_AGE`, oldest first."""
        oldest = time.time() - MAX_AGE
        mine = [e for e in self._entries if e["host"] == self.host and e["requested_at"] > oldest]
        return sorted(mine, key=lambda e: e["requested_at"])

    def holds(self, export_id: int) -> bool:
        """True when the file holds ``export_id`` (no lock: safe on the signal path)."""
        return export_id in self.held

    def candidates(self, plan: ExportPlan, scope: str | None, taken: Container[int]) -> list[dict[str, t.Any]]:
        """Recorded exports of ``plan``'s very queries (any range), as state entries, oldest first.

        ``scope`` tells a recycle-bin pass from the stream's windows; ``taken``: ids this run uses already.
        """
        p = plan.procedure
        groups = [list(g) for g in plan.groups()]
        extra = _canonical(dict(plan.arguments))
        out = []
        for e in self.live():
            if e["id"] in taken or e.get("pass") != scope or e["object"] != plan.api_object:
                continue
            if e["procedure"] != p.name or e["fields"] not in groups:
                continue
            if _canonical({k: v for k, v in e["arguments"].items() if k not in (p.after, p.before)}) != extra:
                continue
            entry = {k: e[k] for k in ("id", "after", "before", "created_at", "requested_at") if e.get(k) is not None}
            entry.update(query=request_digest(entry_body(e)), source="record")
            if e.get("dropped"):
                entry["dropped"] = list(e["dropped"])
            out.append(entry)
        return out

    # -- writing ---------------------------------------------------------------------------

    def add(self, stream: str, job: WindowJob, info: ExportInfo, scope: str | None) -> bool:
        """Record ``info``, the export of ``job`` (created or reused); False when the file could not be written."""
        body = job.body
        entry: dict[str, t.Any] = {
            "id": info.id,
            "host": self.host,
            "stream": stream,
            "object": body["object"],
            "procedure": body["procedure"]["name"],
            "arguments": body["procedure"]["arguments"],
            "fields": body["fields"],
            "after": api_time(job.window.after),
            "before": api_time(job.window.before),
            "created_at": info.created_at,
            "requested_at": round(info.requested_at or time.time(), 3),
        }
        if job.dropped:
            entry["dropped"] = job.dropped
        if scope is not None:
            entry["pass"] = scope
        return self._update(lambda entries: [*(e for e in entries if e["id"] != info.id), entry])

    def drop(self, ids: Iterable[int]) -> None:
        """Forget these exports (Pardot says they expired, failed or were canceled, or they were spoiled)."""
        gone = set(ids)
        if gone & self.held:
            self._update(lambda entries: [e for e in entries if e["id"] not in gone])

    def _update(self, change: t.Callable[[list[dict[str, t.Any]]], list[dict[str, t.Any]]]) -> bool:
        """Read, change and write the file under the lock; False (with one warning) when it failed."""
        with self._mutex:
            try:
                with held(self.lock_path, LOCK_TIMEOUT):
                    try:
                        entries = self._read()
                    except RecordUnreadable:
                        entries = []  # warned about when it was first read; rewritten whole now
                    oldest = time.time() - MAX_AGE
                    entries = sorted(change(entries), key=lambda e: e["requested_at"])
                    entries = [e for e in entries if e["requested_at"] > oldest][-MAX_ENTRIES:]
                    self._write(entries)
            except (OSError, LockTimeout) as exc:
                self._warn("write", f"The export record {self.path} could not be written ({exc}): exports this run "
                           "creates from now on are not recorded, and are canceled on a signal.")  # fmt: skip
                return False
            self._entries = entries
            self.held = frozenset(e["id"] for e in entries)
            return True

    def _write(self, entries: list[dict[str, t.Any]]) -> None:
        data = {"format": FORMAT, "business_unit_id": self.business_unit_id, "exports": entries}
        tmp = self.folder / f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            # no fsync: the rename is atomic for every process (a SIGKILL, a crash, a killed container keep the
            # page cache); after a power cut a cut file is ignored as unreadable, as the cache it is
            tmp.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
            tmp.replace(self.path)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def _warn(self, kind: str, text: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            self.logger.warning("%s", text)


def read_record(folder: Path | None, business_unit_id: str, host: str, logger: logging.Logger) -> ExportRecord:
    """The record as it is on disk, for the operator's commands (nothing is created).

    Raises:
        PardotConfigError: record_dir is not set and there is no home folder for its default.
    """
    if folder is None:
        raise PardotConfigError(NO_HOME)
    record = ExportRecord(folder, business_unit_id, host, logger)
    record.reload()
    return record
