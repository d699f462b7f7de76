"""Records out of result files: typed rows, RECORD lines straight to stdout, BATCH files.

:class:`FileRows` types one checked result file's rows from the stream's schema (a function
compiled per header, :func:`~tap_pardot_export.engine.convert.row_typer`). When nothing needs
the SDK's per-record machinery (no stream maps, flattening or record limit), the RECORD lines
are written straight to stdout in batches (:func:`write_records`); BATCH files are written
straight from the rows too (:func:`write_batches`). Memory stays bounded by bytes as well as
counts, for wide records.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import gzip
import itertools
import typing as t
import uuid
from dataclasses import dataclass

import orjson

from tap_pardot_export.engine.convert import CellError, row_typer
from tap_pardot_export.errors import ResultFormatError
from tap_pardot_export.pardot.progress import ROWS_PER_TICK

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from tap_pardot_export.engine.session import LineWriter
    from tap_pardot_export.pardot.results import ResultFile
    from tap_pardot_export.sdk_compat import BaseBatchFileEncoding, BatchConfig

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
        cls,
        stream: str,
        file: ResultFile,
        properties: dict[str, t.Any],
        datetime_conv: t.Callable[[str], str],
        out_of_range: t.Callable[[str, str], None] | None = None,
        columns: t.Mapping[str, str] | None = None,
        constants: t.Mapping[str, t.Any] | None = None,
    ) -> FileRows:
        """The rows of a checked result file, keyed by the requested fields' columns (see ``ResultFile.check``).

        ``columns`` maps a requested API name to its column (default: the same name).
        ``out_of_range(column, value)`` is told of each datetime outside years 1 to 9999 in UTC (emitted as null).
        ``constants`` are set on every record, first (business_unit_key's ``business_unit_id``).
        """
        names = columns or {}
        header = [names.get(name, name) if name is not None else None for name in file.columns]
        typer = row_typer(header, properties, datetime_conv, out_of_range, constants)
        return cls(stream, file, [names.get(n, n) for n in file.names], file.rows(), typer)

    def records(self, drop: t.Sequence[str] = ()) -> Iterator[dict[str, t.Any]]:
        """The file's typed records, without the ``drop`` fields; ``count`` follows along."""
        type_row, stamp, progress = self.type_row, self.stamp, self.file.progress
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
                if progress is not None and n % ROWS_PER_TICK == 0:
                    progress.rows_emitted(ROWS_PER_TICK)  # a line every PROGRESS_SECONDS of a long emit
                yield rec
            if progress is not None:
                progress.rows_emitted(self.count % ROWS_PER_TICK)
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


class Counter(t.Protocol):
    """The SDK's record counter."""

    def increment(self, value: int = 1) -> None:
        """Count ``value`` records."""


def write_records(
    name: str, parts: Iterable[FileRows], out: LineWriter, selected: set[str], counter: Counter
) -> Iterator[None]:
    """Write RECORD lines straight from each part's typed rows; yields after each part is out.

    The rows' types are the schema's (they were typed from it), so the SDK's per-record
    conformance is not needed. Lines go out by :data:`WRITE_RECORDS` or :data:`WRITE_BYTES`.
    """
    prefix = b'{"type":"RECORD","stream":' + orjson.dumps(name) + b',"record":'
    dumps = orjson.dumps
    for part in parts:
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
                counter.increment(len(buf))
                buf.clear()
                held = 0
        if buf:
            out.write(b"".join(buf))
            counter.increment(len(buf))
        out.flush()
        yield


def write_batches(
    files: Iterable[FileRows], batch_config: BatchConfig, selected: set[str], prefix: str
) -> Iterator[tuple[BaseBatchFileEncoding, list[str]]]:
    """JSON Lines batch files written straight from the rows, one manifest per file.

    One file is compressed and written in the background while the next is typed. Each
    part's last batch goes out before the next part is asked for, so a window's checkpoint
    (taken when the next part is asked for) follows its last BATCH message.
    """
    encoding, storage = batch_config.encoding, batch_config.storage
    gz = encoding.compression == "gzip"
    root = storage.prefix or ""
    size = max(1, int(batch_config.batch_size or 10_000))
    run_id = uuid.uuid4().hex[:12]
    seq = 0

    def write(filename: str, lines: list[bytes]) -> str:
        data = b"".join(lines)
        with storage.open(filename, "wb") as fh:
            fh.write(gzip.compress(data, compresslevel=1) if gz else data)  # zlib runs without the GIL
        return str(storage.get_url(filename))

    with cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-writer") as pool:
        for part in files:
            records = part.records([name for name in part.header if name not in selected])
            pending: cf.Future[str] | None = None
            while lines := batch_lines(records, size):
                seq += 1
                ext = ".json.gz" if gz else ".json"
                future = pool.submit(write, f"{root}{prefix}-{run_id}-{seq}{ext}", lines)
                if pending is not None:
                    yield encoding, [pending.result()]
                pending = future
            if pending is not None:  # the file's last batch goes out before its window's checkpoint
                yield encoding, [pending.result()]


class CommittedPage(t.Protocol):
    """A page of typed JSON lines and what to call once they are out (a query stream's)."""

    lines: list[bytes]

    def commit(self) -> None:
        """Move the stream's state over the page."""


def write_page_batches(
    pages: Iterable[CommittedPage], batch_config: BatchConfig, prefix: str
) -> Iterator[tuple[BaseBatchFileEncoding, list[str]]]:
    """JSON Lines batch files of ``batch_size`` lines from pages already typed; each page committed once out.

    A page's ``commit`` (which moves the state over it) runs only after the BATCH message of the
    file holding its last line was handed over.
    """
    encoding, storage = batch_config.encoding, batch_config.storage
    gz = encoding.compression == "gzip"
    size = max(1, int(batch_config.batch_size or 10_000))
    run_id, seq = uuid.uuid4().hex[:12], 0
    held: list[bytes] = []
    owed: list[CommittedPage] = []
    nbytes = 0

    def flush() -> tuple[BaseBatchFileEncoding, list[str]]:
        nonlocal seq, nbytes
        seq += 1
        nbytes = 0
        filename = f"{storage.prefix or ''}{prefix}-{run_id}-{seq}{'.json.gz' if gz else '.json'}"
        data = b"".join(line + b"\n" for line in held)
        with storage.open(filename, "wb") as fh:
            fh.write(gzip.compress(data, compresslevel=1) if gz else data)
        held.clear()
        return encoding, [str(storage.get_url(filename))]

    for page in pages:
        held.extend(page.lines)
        owed.append(page)
        nbytes += sum(map(len, page.lines))
        if len(held) >= size or nbytes >= BATCH_FILE_BYTES:
            yield flush()
            for done in owed:
                done.commit()
            owed.clear()
    if held:
        yield flush()
    for done in owed:
        done.commit()
