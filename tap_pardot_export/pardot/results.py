"""A result file: checked against the request before any row counts, then read row by row.

An HTML page, an error envelope or an empty body is not the CSV requested; the header must
name each requested field once (in any case); a body cut where it shows (inside a quoted
field or a character, a short last line) is fetched again. Records are keyed by the
requested names.
"""

from __future__ import annotations

import codecs
import collections
import csv
import io
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from tap_pardot_export.errors import ResultFormatError
from tap_pardot_export.pardot.answers import Verdict, sniff
from tap_pardot_export.redact import scrub_answer

if t.TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from tap_pardot_export.pardot.exports import ExportInfo
    from tap_pardot_export.pardot.progress import ExportProgress

#: how much of a body's start tells what it is, and how much of its end holds its last record
HEAD_BYTES = 64 * 1024
TAIL_BYTES = 1 << 20
CHUNK_BYTES = 1 << 20
csv.field_size_limit(1 << 30)


class BadResultFile(ResultFormatError):
    """A downloaded result file that is not the CSV requested, or is cut."""

    def __init__(self, message: str, *, verdict: Verdict = Verdict.FATAL, code: int | None = None) -> None:
        """Describe the problem.

        Args:
            message: what was received, naming stream, export and file.
            verdict: what the answer means (TRANSIENT: fetching the file again may help).
            code: Pardot's error code, when the body is an error envelope.
        """
        super().__init__(message, code=code)
        self.verdict = verdict

    @property
    def retry(self) -> bool:
        """True when fetching the file again may help."""
        return self.verdict is Verdict.TRANSIENT


def snippet(data: bytes, size: int = 120) -> str:
    """The first bytes of a body, fit for a message: decoded, on one line, secrets redacted."""
    text = " ".join(data[: size * 2].decode("utf-8", "replace").split())
    return repr(scrub_answer(text)[:size])


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
class ResultFile:
    """One downloaded result file: checked against the request (:meth:`check`), then read row by row."""

    export: ExportInfo
    index: int
    url: str
    path: str
    label: str
    fields: list[str] = field(default_factory=list)  # as requested
    columns: list[str | None] = field(default_factory=list)  # per column: the requested field, or None
    digest: str = ""  # of its bytes, once checked
    #: the progress of its export's read (told of the rows emitted), if any
    progress: ExportProgress | None = None

    @property
    def where(self) -> str:
        """Stream, window, export and file, for messages."""
        return f"{self.label}: export {self.export.id}, result file {self.index + 1}"

    @property
    def names(self) -> list[str]:
        """The requested fields, in the file's column order."""
        return [c for c in self.columns if c is not None]

    def check(self) -> list[str]:
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
            what, answer = other
            msg = f"{self.where} is not the CSV requested: Pardot sent {what}; first bytes {snippet(head)}"
            raise BadResultFile(scrub_answer(msg), verdict=answer.verdict, code=answer.code)
        tail = self._tail()
        if _incomplete_utf8(tail):
            raise BadResultFile(f"{self.where} is cut: it ends inside a UTF-8 character", verdict=Verdict.TRANSIENT)
        if self._odd_quotes() and self._ends_in_quotes():
            raise BadResultFile(f"{self.where} is cut: it ends inside a quoted field", verdict=Verdict.TRANSIENT)
        header = self._header()
        columns, duplicated, extra = match_header(header, self.fields)
        if not any(columns):
            msg = (
                f"{self.where} is not the CSV requested: its first line names none of the fields requested; "
                f"first bytes {snippet(head)}"
            )
            raise BadResultFile(scrub_answer(msg), verdict=Verdict.TRANSIENT)
        missing = [f for f in self.fields if f not in columns]
        if missing or duplicated:
            problems = [f"missing {missing}" if missing else "", f"duplicated {duplicated}" if duplicated else ""]
            msg = (
                f"{self.where}: the header does not match the fields requested ({'; '.join(p for p in problems if p)}"
                f"; header {scrub_answer(str(header)[:300])}). Its rows cannot be read safely; report it to "
                "Salesforce support if it persists (a missing field other than id and the replication key can "
                "be deselected)."
            )
            raise BadResultFile(
                msg, verdict=Verdict.TRANSIENT if b"\n" not in head else Verdict.FATAL
            )  # no line end: the header itself may be cut
        self.columns = columns
        last = _last_record(tail)
        if last is not None and len(last) < len(columns):
            msg = f"{self.where} is cut: its last line has {len(last)} columns where the header has {len(columns)}"
            raise BadResultFile(msg, verdict=Verdict.TRANSIENT)
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
