"""The export job: create, poll, download and read the CSV result files. No Singer here.

An export is created for one time window, polled with a growing interval until it is
``Complete``, and its result files are downloaded in parallel (bounded by the client's
concurrency) into temporary files on disk, each parsed as soon as it is whole.

Each file is checked against the request before any of its rows counts (see
:meth:`ResultFile.check`): an HTML page, an error envelope or an empty body is not the CSV
requested, the header must name each requested field once (in any case), and a body cut
where it shows (inside a quoted field or a character, a short last line) is fetched again,
as is one cut off midway, so no row is emitted twice because of a cut, and none is lost.
Records are keyed by the requested names.
"""

from __future__ import annotations

import codecs
import collections
import concurrent.futures as cf
import csv
import hashlib
import io
import json
import logging
import os
import re
import tempfile
import threading
import time
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from tap_pardot_export.account import MAX_HEALS, CreateHealer
from tap_pardot_export.errors import (
    CallBudgetSpent,
    DailyLimitReached,
    ExportError,
    PardotAPIError,
    PardotAuthError,
    ResultFormatError,
)

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    from tap_pardot_export.client import PardotClient

LOGGER = logging.getLogger("tap-pardot-export")
STATES = ("Waiting", "Processing", "Complete", "Failed", "Canceled")
#: a Failed export is created again this many times (Pardot: "if it fails again, contact support")
MAX_FAILED_RETRIES = 2
#: a Canceled or expired export is created again this many times
MAX_RECREATES = 3
#: error codes in an envelope that a later try may not get (66: too many concurrent calls)
TRANSIENT_CODES = frozenset({66})
#: errors a caller must see, never taken for "this export cannot be used"
MUST_PROPAGATE = (DailyLimitReached, CallBudgetSpent, PardotAuthError)
#: how much of a body's start tells what it is, and how much of its end holds its last record
HEAD_BYTES = 64 * 1024
TAIL_BYTES = 1 << 20
CHUNK_BYTES = 1 << 20
XML_ERROR = re.compile(rb'<err\s+code="(\d+)"\s*>(.*?)</err>', re.DOTALL | re.IGNORECASE)
BEARER = re.compile(r"(?i)(bearer|token|authorization)(\W{1,4})[\w.!/+=-]{8,}")
EXPORT_ID = re.compile(r"[0-9]{1,18}")
#: during a long wait, a line every this many seconds says which export waits, in which state
HEARTBEAT_SECONDS = 300.0
#: how many of the run's export durations inform the first status read of the next one
DURATIONS_KEPT = 5
csv.field_size_limit(1 << 30)


class BadResultFile(ResultFormatError):
    """A downloaded result file that is not the CSV requested, or is cut."""

    def __init__(self, message: str, *, retry: bool = False, code: int | None = None) -> None:
        """Describe the problem.

        Args:
            message: what was received, naming stream, export and file.
            retry: True when fetching the file again may help.
            code: Pardot's error code, when the body is an error envelope.
        """
        super().__init__(message, code=code)
        self.retry = retry


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret, and anything that looks like a bearer token, replaced."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return BEARER.sub(r"\1\2***", text)


def snippet(data: bytes, secrets: Iterable[str], size: int = 120) -> str:
    """The first bytes of a body, fit for a message: decoded, on one line, secrets redacted."""
    text = " ".join(data[: size * 2].decode("utf-8", "replace").split())
    return repr(redact(text, secrets)[:size])


def _json_error(text: bytes) -> tuple[int | None, str]:
    """``(code, message)`` of a JSON error envelope in any of the shapes Pardot and Salesforce use."""
    try:
        body = json.loads(text.decode("utf-8", "replace"))
    except (ValueError, RecursionError):  # cut at HEAD_BYTES, or nested past the parser's depth
        return None, ""
    if isinstance(body, list) and body:
        body = body[0]
    if not isinstance(body, dict):
        return None, ""
    attrs = body.get("@attributes")
    code = attrs.get("err_code") if isinstance(attrs, dict) else None
    for key in ("code", "errorCode", "error_code", "status"):
        code = code if code is not None else body.get(key)
    message = next((body[k] for k in ("err", "message", "error_description", "error") if body.get(k)), "")
    try:
        return (int(code) if code is not None else None), str(message)[:200]
    except (TypeError, ValueError):
        return None, f"{code}: {message}"[:200]


def _transient(code: int | None) -> bool:
    return code is not None and (code in TRANSIENT_CODES or 500 <= code < 600)


def sniff(head: bytes) -> tuple[str, int | None, bool] | None:
    """What a body that is not CSV is: ``(description, error code, a retry may help)``; None for CSV."""
    text = head.removeprefix(codecs.BOM_UTF8).lstrip()
    if not text:
        return "an empty body where a CSV header was expected", None, True
    if text[:1] == b"<":
        m = XML_ERROR.search(text)
        if m is None:
            return "an HTML or XML page", None, True
        code = int(m.group(1))
        message = " ".join(m.group(2).decode("utf-8", "replace").split())[:200]
        return f"an XML error envelope (error {code}: {message})", code, _transient(code)
    if text[:1] in (b"{", b"["):
        json_code, json_message = _json_error(text)
        what = f"error {json_code}: {json_message}" if json_code is not None else json_message or "no error code"
        return f"a JSON body, not CSV ({what})", json_code, _transient(json_code)
    return None


def _incomplete_utf8(data: bytes) -> bool:
    """True when ``data`` ends inside a multi-byte UTF-8 character (a body cut there)."""
    end = data[-4:]
    for back in range(1, len(end) + 1):
        byte = end[-back]
        if byte & 0xC0 != 0x80:  # not a continuation byte: the last character starts here
            need = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4 if byte & 0xF8 == 0xF0 else 1
            return need > back
    return False


def _last_record(tail: bytes) -> list[str] | None:
    """The last record of a file whose last bytes are ``tail``, when it starts there; else None."""
    body = tail.rstrip(b"\r\n")
    pos, quotes = len(body), 0
    while True:  # a record starts after a newline with an even number of quotes after it
        nl = body.rfind(b"\n", 0, pos)
        if nl < 0:
            return None  # the header is the last record, or the record is longer than the tail
        quotes += body.count(b'"', nl + 1, pos)
        if quotes % 2 == 0:
            break
        pos = nl
    rows = list(csv.reader(io.StringIO(body[nl + 1 :].decode("utf-8", "replace"), newline="")))
    return rows[0] if len(rows) == 1 else None


def _csv_digest(path: str) -> str | None:
    """A digest of a refused body that is CSV (None for a page, an error envelope or an empty body)."""
    digest = hashlib.blake2b(digest_size=16)
    with Path(path).open("rb") as fh:
        head = fh.read(HEAD_BYTES)
        if sniff(head) is not None:
            return None
        digest.update(head)
        while chunk := fh.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def match_header(header: Sequence[str], fields: Sequence[str]) -> tuple[list[str | None], list[str], list[str]]:
    """Name each column by the requested field it holds.

    A column matches a field exactly, else case-insensitively with surrounding whitespace
    ignored (unless two fields differ only in case). Returns ``(columns, duplicated,
    extra)``: per column the field name or None, the columns naming a field already
    matched, and the columns naming no requested field.
    """
    exact = set(fields)
    keys = collections.Counter(f.strip().casefold() for f in fields)
    by_key = {f.strip().casefold(): f for f in fields if keys[f.strip().casefold()] == 1}
    columns: list[str | None] = []
    seen: set[str] = set()
    duplicated: list[str] = []
    extra: list[str] = []
    for cell in header:
        name = cell.strip()
        target = name if name in exact else by_key.get(name.casefold())
        if target is None:
            extra.append(cell)
        elif target in seen:
            duplicated.append(cell)
            target = None
        else:
            seen.add(target)
        columns.append(target)
    return columns, duplicated, extra


@dataclass
class ExportSpec:
    """What to export: the API object, fields and procedure with its arguments."""

    object: str
    fields: list[str]
    procedure: str
    arguments: dict[str, t.Any]
    label: str = ""

    def body(self) -> dict[str, t.Any]:
        """The create call's JSON body."""
        return {
            "object": self.object,
            "fields": self.fields,
            "procedure": {"name": self.procedure, "arguments": self.arguments},
        }


@dataclass
class ExportInfo:
    """What a run learned about one export."""

    id: int
    created_at: str | None = None  # as Pardot wrote it, in the API user's zone
    requested_at: float = 0.0  # our clock when the create call was sent
    created_mono: float = 0.0  # the monotonic clock at its creation (or reuse) in this run
    waited: float = 0.0
    files: int = 0
    rows: int = 0
    states: list[str] = field(default_factory=list)
    #: a result file of it cannot be read (a malformed row or header, stored so in Pardot): a rerun must
    #: create the export again rather than reuse it until it expires
    spoiled: bool = False


@dataclass
class ResultFile:
    """One downloaded result file: checked against the request (:meth:`check`), then read row by row."""

    export: ExportInfo
    index: int
    url: str
    path: str
    label: str
    fields: list[str] = field(default_factory=list)  # as requested
    columns: list[str | None] = field(default_factory=list)  # per column: the requested field, or None

    @property
    def where(self) -> str:
        """Stream, window, export and file, for messages."""
        return f"{self.label}: export {self.export.id}, result file {self.index + 1}"

    @property
    def names(self) -> list[str]:
        """The requested fields, in the file's column order."""
        return [c for c in self.columns if c is not None]

    def check(self, secrets: Sequence[str] = ()) -> list[str]:
        """Check the file is the CSV requested, whole; return its extra columns (to be dropped).

        Raises:
            BadResultFile: an HTML page, an error envelope, an empty body, a cut body (these
                with ``retry`` set where fetching again may help), invalid UTF-8, or a header
                that does not hold each requested field exactly once.
        """
        with Path(self.path).open("rb") as fh:
            head = fh.read(HEAD_BYTES)
        other = sniff(head)
        if other is not None:
            what, code, retry = other
            msg = f"{self.where} is not the CSV requested: Pardot sent {what}; first bytes {snippet(head, secrets)}"
            raise BadResultFile(redact(msg, secrets), retry=retry, code=code)
        tail = self._tail()
        if _incomplete_utf8(tail):
            raise BadResultFile(f"{self.where} is cut: it ends inside a UTF-8 character", retry=True)
        if self._odd_quotes() and self._ends_in_quotes():
            raise BadResultFile(f"{self.where} is cut: it ends inside a quoted field", retry=True)
        header = self._header()
        columns, duplicated, extra = match_header(header, self.fields)
        if not any(columns):
            msg = (
                f"{self.where} is not the CSV requested: its first line names none of the fields requested; "
                f"first bytes {snippet(head, secrets)}"
            )
            raise BadResultFile(redact(msg, secrets), retry=True)
        missing = [f for f in self.fields if f not in columns]
        if missing or duplicated:
            problems = [f"missing {missing}" if missing else "", f"duplicated {duplicated}" if duplicated else ""]
            msg = (
                f"{self.where}: the header does not match the fields requested ({'; '.join(p for p in problems if p)}"
                f"; header {redact(str(header)[:300], secrets)}). Its rows cannot be read safely; report it to "
                "Salesforce support if it persists (a missing field other than id and the replication key can "
                "be deselected)."
            )
            raise BadResultFile(msg, retry=b"\n" not in head)  # no line end: the header itself may be cut
        self.columns = columns
        last = _last_record(tail)
        if last is not None and len(last) < len(columns):
            msg = f"{self.where} is cut: its last line has {len(last)} columns where the header has {len(columns)}"
            raise BadResultFile(msg, retry=True)
        return extra

    def _tail(self) -> bytes:
        """The file's last ``TAIL_BYTES``."""
        size = Path(self.path).stat().st_size
        with Path(self.path).open("rb") as fh:
            fh.seek(max(0, size - TAIL_BYTES))
            return fh.read()

    def _header(self) -> list[str]:
        try:
            with Path(self.path).open(encoding="utf-8-sig", newline="") as fh:
                return next(csv.reader(fh), [])
        except UnicodeDecodeError:
            raise self._bad_utf8() from None
        except csv.Error as exc:
            raise BadResultFile(f"{self.where}: the header line is not CSV ({exc})") from None

    def _odd_quotes(self) -> bool:
        """True when the file holds an odd number of quotes: a quoted field may be left open."""
        quotes = 0
        with Path(self.path).open("rb") as fh:
            while chunk := fh.read(CHUNK_BYTES):
                quotes += chunk.count(b'"')
        return quotes % 2 == 1

    def _ends_in_quotes(self) -> bool:
        """True when a strict CSV parse ends inside a quoted field (an odd count may be a stray quote)."""
        try:
            with Path(self.path).open(encoding="utf-8-sig", newline="") as fh:
                for _ in csv.reader(fh, strict=True):
                    pass
        except csv.Error as exc:
            return "unexpected end of data" in str(exc)
        except UnicodeDecodeError:
            raise self._bad_utf8() from None
        return False

    def _bad_utf8(self) -> BadResultFile:
        """The error for a file that is not UTF-8, naming the line and byte of the first bad sequence.

        Only on the error path: the whole file is decoded again to find it.
        """
        decoder = codecs.getincrementaldecoder("utf-8")()
        offset, at = 0, -1
        with Path(self.path).open("rb") as fh:
            while at < 0 and (chunk := fh.read(CHUNK_BYTES)):
                pending = decoder.getstate()[0]
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    at = offset - len(pending) + exc.start
                offset += len(chunk)
            fh.seek(0)
            line = fh.read(max(0, at)).count(b"\n") + 1
        where = f"line {line} (byte {at})" if at >= 0 else "its end"
        msg = (
            f"{self.where}, {where}: the file is not valid UTF-8. The tap cannot read it; report it to "
            "Salesforce support (a field value may hold text in another encoding)."
        )
        return BadResultFile(msg)

    def rows(self) -> Iterator[list[str]]:
        """Yield each record row after the header (checked for its column count), blank lines skipped."""
        width = len(self.columns)
        with Path(self.path).open(encoding="utf-8-sig", newline="") as fh:  # utf-8-sig drops a BOM
            reader = csv.reader(fh, strict=True)
            try:
                next(reader, None)
                for row in reader:
                    if len(row) != width:
                        if not row:
                            continue
                        msg = (
                            f"{self.where}, line {reader.line_num}: {len(row)} columns where the header has "
                            f"{width}. The file is malformed; rerun the sync, and report it to Salesforce "
                            "support if it persists."
                        )
                        raise ResultFormatError(msg)
                    yield row
            except UnicodeDecodeError:
                raise self._bad_utf8() from None
            except csv.Error as exc:
                msg = f"{self.where}, line {reader.line_num}: malformed CSV ({exc})"[:400]
                raise ResultFormatError(msg) from None


def export_id(value: t.Any, what: str) -> int:
    """An export id from an answer: a positive integer (or its decimal string), else ResultFormatError."""
    if isinstance(value, str) and EXPORT_ID.fullmatch(value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        msg = (
            f"{what}: Pardot's answer has an export id that is not a positive integer ({str(value)[:40]!r}). "
            "Pardot may have changed its API; please report this."
        )
        raise ResultFormatError(msg)
    return value


def unwrap_export(body: t.Any, what: str, expect_id: int | None = None) -> dict[str, t.Any]:
    """The export object from any of the answer shapes seen in the wild, its id, state and shape checked.

    Args:
        body: the decoded JSON answer.
        what: the call, for messages.
        expect_id: the export asked about, when the call named one.

    Raises:
        ResultFormatError: no export object, an id that is not a positive integer, an unknown
            state, or another export than the one asked about.
    """
    export = body.get("export", body) if isinstance(body, dict) else None
    if isinstance(export, list) and len(export) == 1:
        export = export[0]
    if not isinstance(export, dict) or "id" not in export or "state" not in export:
        msg = f"{what}: Pardot's answer has no export object with an id and a state: {str(body)[:200]!r}"
        raise ResultFormatError(msg)
    export = {**export, "id": export_id(export["id"], what)}
    if export["state"] not in STATES:
        msg = (
            f"{what}: export {export['id']} is in a state the tap does not know ({str(export['state'])[:40]!r}). "
            "Pardot may have changed its API; please report this."
        )
        raise ResultFormatError(msg)
    if expect_id is not None and export["id"] != expect_id:
        msg = f"{what}: Pardot answered about export {export['id']}, not the one asked for. Please report this."
        raise ResultFormatError(msg)
    if not isinstance(export.get("createdAt"), str):
        export["createdAt"] = None  # an unknown form: the offset is not inferred from it
    return export


def result_refs(export: dict[str, t.Any]) -> list[str]:
    """``resultRefs`` (or the old spelling ``resultsRef``): absent, one URL, or a list."""
    refs = export.get("resultRefs", export.get("resultsRef"))
    if refs is None or refs == "":
        return []
    if isinstance(refs, str):
        return [refs]
    if isinstance(refs, list) and all(isinstance(r, str) for r in refs):
        return list(dict.fromkeys(refs))  # a link listed twice is one file: read once
    msg = f"Export {export.get('id')}: resultRefs is neither a URL nor a list of URLs: {str(refs)[:200]!r}"
    raise ResultFormatError(msg)


def _is_true(value: t.Any) -> bool:
    return value is True or str(value).lower() in ("true", "1")


class ExportRunner:
    """Runs exports to completion and hands their result files over one by one."""

    def __init__(
        self,
        client: PardotClient,
        *,
        poll_interval: float = 1.0,
        max_poll_interval: float = 60.0,
        export_timeout: float = 6 * 3600,
        spool_dir: str | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        """Run exports through ``client``.

        Args:
            client: the HTTP client (auth, retries, concurrency, budget).
            poll_interval: the first wait between reads of a waiting export, in seconds.
            max_poll_interval: the cap the wait grows to.
            export_timeout: how long an export may take before it is canceled.
            spool_dir: where result files are downloaded (the system's temporary directory by default).
            logger: where progress is logged.
        """
        self.client = client
        self.poll_interval = max(0.0, poll_interval)
        self.max_poll_interval = max(self.poll_interval, max_poll_interval)
        self.export_timeout = export_timeout
        self.spool_dir = spool_dir
        self.logger = logger or LOGGER
        self.active: int | None = None  # export id being waited on or downloaded
        self.active_complete = False  # True once the active export is Complete (it cannot be canceled)
        self._stop = threading.Event()
        #: this run's: seconds Pardot took per export, exports created, seconds spent waiting
        self.durations: collections.deque[float] = collections.deque(maxlen=DURATIONS_KEPT)
        self.last_complete = 0.0  # monotonic clock when the last export was seen Complete
        self.created = 0
        self.waited = 0.0
        self._warned: set[tuple[str, tuple[str, ...]]] = set()

    # -- API calls -----------------------------------------------------------------------

    def create(self, spec: ExportSpec) -> ExportInfo:
        """Create the export; a field or argument spelling the account refuses is healed and retried.

        See :class:`tap_pardot_export.account.CreateHealer`: what one create learns shapes
        every later create of the run.
        """
        if not hasattr(self, "healer"):
            self.healer = CreateHealer(self.logger)
        self.healer.apply(spec)
        for _ in range(MAX_HEALS):
            requested = time.time()
            try:
                body = self.client.json("POST", "create", "create", json_body=spec.body())
                break
            except PardotAPIError as exc:
                if not self.healer.heal(spec, exc):
                    raise
        else:
            msg = f"{spec.label}: Pardot refused the export {MAX_HEALS} times, each time for another field"
            raise ExportError(msg)
        export = unwrap_export(body, f"{spec.label}: create")
        info = ExportInfo(
            id=export["id"], created_at=export["createdAt"], requested_at=requested, created_mono=time.monotonic()
        )
        self.created += 1
        self.logger.info(
            "%s: created export %s (%s, %s)",
            spec.label,
            info.id,
            spec.object,
            spec.procedure,
        )
        return info

    def read(self, export_id: int, label: str) -> dict[str, t.Any]:
        """Read an export's status; the answer must be about that export, in a known state."""
        body = self.client.json("GET", f"read/id/{export_id}", "read")
        return unwrap_export(body, f"{label}: read export {export_id}", expect_id=export_id)

    def cancel(self, export_id: int, label: str = "") -> bool:
        """Cancel an export; False when Pardot says it is already finished.

        The daily limit, the call budget and dead credentials propagate, unless the run is
        stopping (:meth:`stop`): then the cancel is a courtesy and the state must still be written.
        """
        try:
            self.client.json("POST", f"cancel/id/{export_id}", "cancel")
        except MUST_PROPAGATE as exc:
            if not self._stop.is_set():
                raise
            self.logger.warning("%s: export %s not canceled: %s", label, export_id, exc)
            return False
        except PardotAPIError as exc:
            self.logger.info("%s: export %s not canceled: %s", label, export_id, exc)
            return False
        self.logger.info("%s: canceled export %s", label, export_id)
        return True

    # -- the job -------------------------------------------------------------------------

    def expected_ready(self, info: ExportInfo) -> float | None:
        """The earliest (monotonic clock) ``info`` is likely Complete, from this run's exports; None if unknown.

        Pardot runs an account's exports one at a time, so an export starts once it was
        created and the one before it was done. Both are known only within a poll, so the
        earliest start and the shortest recent duration are taken: a read that comes early
        costs a call, one that comes late costs the time Pardot's queue sits idle.
        """
        if not self.durations:
            return None
        return max(info.created_mono, self.last_complete) + min(self.durations)

    def first_delay(self, info: ExportInfo) -> float:
        """The wait before the first status read: near the typical duration when one is known."""
        ready = self.expected_ready(info)
        if ready is None:
            return self.poll_interval
        return min(self.max_poll_interval, max(self.poll_interval, ready - time.monotonic()))

    def retry_step(self) -> float:
        """Half the first wait after a read that finds the export not done.

        A sixteenth of the shortest recent duration (a late notice then costs about an eighth
        of it at most), else ``poll_interval``.
        """
        if not self.durations:
            return self.poll_interval
        return min(self.max_poll_interval, max(self.poll_interval, min(self.durations) / 16))

    def _learn_duration(self, info: ExportInfo, seen: float, before: float | None) -> None:
        """Record how long Pardot took at most for ``info``: seen Complete at ``seen``, not yet at ``before``."""
        start = max(info.created_mono, self.last_complete)
        if info.created_mono:
            self.durations.append(max(0.0, seen - start))
        self.last_complete = max(start, before or 0.0) if info.created_mono else seen

    def wait(self, info: ExportInfo, label: str, on_working: t.Callable[[], None] | None = None) -> dict[str, t.Any]:
        """Poll until the export leaves Waiting/Processing.

        The first read comes near when this run's earlier exports took (else after
        ``poll_interval``), later waits double (from :meth:`retry_step`) up to
        ``max_poll_interval``; every :data:`HEARTBEAT_SECONDS` a line says what is waited on.
        ``on_working`` is called at each read that finds it Processing or Complete.
        """
        start = time.monotonic()
        delay, step = self.first_delay(info), self.retry_step()
        last_state, beat, before = None, start, None
        self.active = info.id
        self.active_complete = False
        try:
            while True:
                if self._stop.wait(delay):
                    raise ExportError(f"{label}: interrupted while waiting for export {info.id}")
                export = self.read(info.id, label)  # its state is one of STATES
                state, now = export["state"], time.monotonic()
                if state != last_state:
                    self.logger.info("%s: export %s is %s (after %.1fs)", label, info.id, state, now - start)
                    info.states.append(state)
                    last_state = state
                if on_working is not None and state in ("Processing", "Complete"):
                    on_working()
                if state not in ("Waiting", "Processing"):
                    info.waited += now - start
                    if state == "Complete":
                        self._learn_duration(info, now, before)
                    return export
                before = now
                if now - beat >= HEARTBEAT_SECONDS:
                    beat = now
                    self.logger.info(
                        "%s: still waiting for export %s: %s for %.0fs (Pardot runs one export at a time per "
                        "account; others may be ahead of it)",
                        label,
                        info.id,
                        state,
                        now - start,
                    )
                if now - start > self.export_timeout:
                    self._time_out(info, label, state)
                step = min(self.max_poll_interval, max(step * 2, 0.05))
                delay = step
        finally:
            self.waited += time.monotonic() - start

    def _time_out(self, info: ExportInfo, label: str, state: str) -> t.NoReturn:
        """Cancel an export past ``export_timeout`` and fail with its id."""
        self.cancel(info.id, label)
        msg = (
            f"{label}: export {info.id} did not finish within export_timeout={self.export_timeout:.0f}s "
            f"(last state {state}). It was canceled. Pardot runs one export at a time per account: "
            "other exports may be queued ahead. Raise export_timeout or use smaller windows."
        )
        raise ExportError(msg)

    def start(self, spec: ExportSpec, resume_id: int | None = None) -> tuple[ExportInfo, bool]:
        """The export for ``spec``: the one from state while usable, else a new one; True when new."""
        info = self._resume(resume_id, spec.label) if resume_id is not None else None
        if info is not None:
            if not hasattr(self, "healer"):
                self.healer = CreateHealer(self.logger)
            self.healer.apply(spec)  # the fields it holds, as a create would have sent them
            info.created_mono = time.monotonic()
            return info, False
        return self.create(spec), True

    def run(
        self,
        spec: ExportSpec,
        resume_id: int | None = None,
        on_created: t.Callable[[ExportInfo], None] | None = None,
        started: ExportInfo | None = None,
        on_working: t.Callable[[], None] | None = None,
    ) -> Iterator[ResultFile]:
        """Run ``spec`` to completion, yielding each result file once it is on disk.

        ``started`` is an export already created (or checked) for ``spec``; else ``resume_id``
        reuses an export from an interrupted run while it is still usable. ``on_created`` is
        told of each export this call creates, ``on_working`` of each status read that finds
        Pardot working on it (Processing) or done (Complete).
        """
        failed = 0
        recreated = 0
        info = started or (self._resume(resume_id, spec.label) if resume_id is not None else None)
        while True:
            if info is None:
                info = self.create(spec)
                self.active, self.active_complete = info.id, False  # a signal before the first poll cancels it
                if on_created is not None:
                    on_created(info)
            export = self.wait(info, spec.label, on_working)
            state = export["state"]
            expired = _is_true(export.get("isExpired"))
            if state == "Complete" and not expired:
                self.active_complete = True
                try:
                    yield from self._files(info, result_refs(export), spec.label, spec.fields)
                except PardotAPIError as exc:
                    if exc.code != 178:
                        raise
                    self.logger.warning(
                        "%s: export %s expired while its files were read; creating it again "
                        "(rows already emitted may repeat)",
                        spec.label,
                        info.id,
                    )
                    recreated += 1
                    if recreated > MAX_RECREATES:
                        raise
                    info = None
                    continue
                self.active = None
                return
            if state == "Failed":
                failed += 1
                if failed > MAX_FAILED_RETRIES:
                    msg = (
                        f"{spec.label}: export {info.id} Failed {failed} times in a row. Pardot says to "
                        "contact Salesforce support when an export fails again; give them this export id."
                    )
                    raise ExportError(msg)
                self.logger.warning(
                    "%s: export %s Failed; creating it again (%d/%d)", spec.label, info.id, failed, MAX_FAILED_RETRIES
                )
            else:
                recreated += 1
                if recreated > MAX_RECREATES:
                    msg = (
                        f"{spec.label}: export {info.id} was {state}{' and expired' if expired else ''} "
                        f"{recreated} times. Someone or something keeps canceling this account's exports."
                    )
                    raise ExportError(msg)
                self.logger.warning(
                    "%s: export %s is %s%s; creating it again",
                    spec.label,
                    info.id,
                    state,
                    " and expired" if expired else "",
                )
            info = None

    def _resume(self, resume_id: t.Any, label: str) -> ExportInfo | None:
        """The export from state when it can still be used, else None (a new one is created).

        Errors that end the run (daily limit, call budget, dead credentials) propagate.
        """
        if isinstance(resume_id, bool) or not isinstance(resume_id, int):
            self.logger.info("%s: ignoring a pending export id in state that is not an integer", label)
            return None
        try:
            export = self.read(resume_id, label)
        except MUST_PROPAGATE:
            raise
        except PardotAPIError as exc:
            self.logger.info("%s: export %s from state cannot be reused (%s)", label, resume_id, exc)
            return None
        state, expired = export["state"], _is_true(export.get("isExpired"))
        if state in ("Waiting", "Processing") or (state == "Complete" and not expired):
            self.logger.info("%s: resuming export %s from state (%s)", label, resume_id, state)
            return ExportInfo(id=resume_id, created_at=export["createdAt"])
        self.logger.info(
            "%s: export %s from state is %s%s; creating a new one",
            label,
            resume_id,
            state,
            " and expired" if expired else "",
        )
        return None

    def _files(self, info: ExportInfo, refs: list[str], label: str, fields: list[str]) -> Iterator[ResultFile]:
        info.files = len(refs)
        if not refs:
            self.logger.info("%s: export %s is Complete with no result files: no rows", label, info.id)
            return
        for url in refs:
            self.client.check_host(url)
        workers = max(1, min(self.client.max_concurrency, len(refs)))
        ahead = threading.Semaphore(workers + 1)  # bounds the files waiting on disk
        cancel = threading.Event()

        def fetch(k: int, url: str) -> ResultFile:
            ahead.acquire()
            if cancel.is_set():
                ahead.release()
                raise ExportError("canceled")
            rf = ResultFile(export=info, index=k, url=url, path="", label=label, fields=fields)
            try:
                self._fetch_checked(rf, cancel)
            except BaseException:
                ahead.release()
                raise
            return rf

        pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pardot-download")
        futures = [pool.submit(fetch, k, url) for k, url in enumerate(refs)]
        try:
            for fut in cf.as_completed(futures):
                rf = fut.result()
                try:
                    yield rf
                finally:
                    Path(rf.path).unlink()
                    ahead.release()
        finally:
            cancel.set()
            for fut in futures:
                fut.cancel()
                ahead.release()  # wake workers blocked on the bound so they see the cancel
            pool.shutdown(wait=True)
            for fut in futures:
                if fut.done() and not fut.cancelled() and fut.exception() is None:
                    path = fut.result().path
                    Path(path).unlink(missing_ok=True)

    def _fetch_checked(self, rf: ResultFile, cancel: threading.Event) -> None:
        """Download ``rf`` to a temporary file until it is the CSV requested, whole.

        A body a retry may fix (an HTML page, a transient error envelope, an empty or cut
        body) is fetched again under the run's one retry policy: its waits and its bounds
        (``max_retries``, ``retry_max_time``). On failure no file is left behind, and the
        error names stream, export, file and what was received.
        """
        secrets = self._secrets()
        policy = self.client.transport.policy
        waits = policy.waits()
        next(waits)  # primed, as backoff does
        tries, deadline = policy.max_retries + 1, time.monotonic() + policy.max_time
        last: str | None = None  # the digest of the last body refused, when it was CSV
        for attempt in range(1, tries + 1):
            fd, rf.path = tempfile.mkstemp(
                prefix=f"pardot-{rf.export.id}-{rf.index}-", suffix=".csv", dir=self.spool_dir
            )
            try:
                with os.fdopen(fd, "wb", buffering=0) as fh:  # unbuffered: no bytes reach the disk at close, unchecked
                    self.client.download(rf.url, fh)
                extra = rf.check(secrets)
            except BadResultFile as exc:
                previous, last = last, _csv_digest(rf.path)
                Path(rf.path).unlink()
                if not exc.retry or attempt == tries or time.monotonic() > deadline:
                    # as Pardot stores it: a CSV no fetch can read, or sent byte for byte the same again (not a
                    # page or an error envelope: those are answers to the request, and the export may be fine)
                    stored = last is not None and (not exc.retry or previous == last)
                    rf.export.spoiled = rf.export.spoiled or stored
                    raise self._final(exc, attempt) from None
                delay = waits.send(exc)
                self.logger.warning("%s; fetching it again in %.1fs (%d/%d)", exc, delay, attempt, tries - 1)
                if cancel.wait(delay) or self._stop.is_set():
                    raise ExportError(f"{rf.where}: interrupted") from None
                continue
            except BaseException:
                Path(rf.path).unlink()
                raise
            if extra:
                self._warn_extra(rf, extra)
            return

    @staticmethod
    def _final(exc: BadResultFile, attempt: int) -> PardotAPIError:
        """The error ending the run: what was wrong, how often, and what to do."""
        tries = f" (fetched {attempt} times)" if attempt > 1 else ""
        msg = f"{str(exc).rstrip('.')}{tries}. No bookmark moved past this window; rerun later to resume."
        if exc.code == 122:
            return DailyLimitReached(msg, code=exc.code)
        return BadResultFile(msg, code=exc.code)

    def _warn_extra(self, rf: ResultFile, extra: list[str]) -> None:
        key = (rf.label.split(" ", 1)[0], tuple(extra))
        if key not in self._warned:
            self._warned.add(key)
            self.logger.warning(
                "%s has column(s) not requested, dropped: %s. The requested fields are all present and matched "
                "by name, so the records are unaffected.",
                rf.where,
                redact(str(extra)[:300], self._secrets()),
            )

    def _secrets(self) -> list[str]:
        """Values of the request's headers and credentials, never to be printed."""
        tokens = getattr(self.client, "tokens", None)
        found = list(tokens.secrets()) if tokens is not None and hasattr(tokens, "secrets") else []
        unit = getattr(self.client, "business_unit_id", None)
        return [*found, unit] if isinstance(unit, str) else found

    def stop(self) -> None:
        """Make a waiting job give up at its next poll."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called (the run is shutting down on a signal)."""
        return self._stop.is_set()
