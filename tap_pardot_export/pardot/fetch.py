"""Fetching an export's result files: in parallel, to disk, each checked before it is handed over.

Files download in parallel (at most the client's concurrency), into temporary files in the
run's download folder, and are handed over in the order they complete; at most one more file
than there are workers waits on disk. A file that is not the CSV requested, or is cut, is
fetched again under the run's one retry policy (:meth:`PardotClient.download`); on failure no
file is left behind, and the error names stream, export, file and what was received. A file
whose bytes repeat another file of the export (one file under two links that do not look
alike) is read once: Pardot never writes the same rows twice.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import logging
import os
import tempfile
import threading
import typing as t
from pathlib import Path

from tap_pardot_export.errors import DailyLimitReached, ExportError, PardotAPIError, TransientError
from tap_pardot_export.pardot.answers import Verdict, sniff
from tap_pardot_export.pardot.progress import ExportProgress
from tap_pardot_export.pardot.results import CHUNK_BYTES, HEAD_BYTES, BadResultFile, ResultFile
from tap_pardot_export.pardot.retry import RetryPolicy
from tap_pardot_export.redact import redact_url, scrub_answer

if t.TYPE_CHECKING:
    from collections.abc import Iterator

    from tap_pardot_export.pardot.client import PardotClient
    from tap_pardot_export.pardot.exports import ExportInfo

LOGGER = logging.getLogger("tap-pardot-export")


class _Refetch(TransientError):
    """A downloaded body that fetching again may fix (a page, a transient envelope, a cut)."""

    def __init__(self, bad: BadResultFile) -> None:
        super().__init__(str(bad))
        self.bad = bad


def file_digest(path: str) -> str:
    """A digest of a downloaded file's bytes."""
    digest = hashlib.blake2b(digest_size=16)
    with Path(path).open("rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def csv_digest(path: str) -> str | None:
    """A digest of a refused body that is CSV (None for a page, an error envelope or an empty body)."""
    with Path(path).open("rb") as fh:
        if sniff(fh.read(HEAD_BYTES)) is not None:
            return None
    return file_digest(path)


class _Refusals:
    """The digests of the bodies a file's check refused, newest last."""

    def __init__(self) -> None:
        self.digests: list[str | None] = []

    def stored(self, *, retry: bool) -> bool:
        """Whether the file is malformed as Pardot stores it: a CSV no fetch can read, or sent twice the same."""
        last = self.digests[-1] if self.digests else None
        previous = self.digests[-2] if len(self.digests) > 1 else None
        return last is not None and (not retry or previous == last)


def final_error(exc: BadResultFile, fetched: int) -> PardotAPIError:
    """The error ending the run: what was wrong, how often, and what to do."""
    tries = f" (fetched {fetched} times)" if fetched > 1 else ""
    msg = f"{str(exc).rstrip('.')}{tries}. No bookmark moved past this window; rerun later to resume."
    if exc.verdict is Verdict.DAILY_LIMIT:
        return DailyLimitReached(msg, code=exc.code)
    return BadResultFile(msg, code=exc.code)


def _as_completed(futures: list[cf.Future[ResultFile]], progress: ExportProgress) -> Iterator[cf.Future[ResultFile]]:
    """``futures`` as they complete; while none does, a progress line every PROGRESS_SECONDS."""
    pending = set(futures)
    while pending:
        done, pending = cf.wait(pending, timeout=progress.wait_seconds(), return_when=cf.FIRST_COMPLETED)
        progress.tick()
        yield from (f for f in futures if f in done)


class ResultFetcher:
    """Downloads and checks result files for the runner."""

    def __init__(self, client: PardotClient, spool_dir: str | None, logger: logging.Logger | None = None) -> None:
        """Download through ``client`` into ``spool_dir`` (the system's temporary folder by default)."""
        self.client = client
        self.spool_dir = spool_dir
        self.logger = logger or LOGGER
        self._warned: set[tuple[str, tuple[str, ...]]] = set()

    def files(self, info: ExportInfo, refs: list[str], label: str, fields: list[str]) -> Iterator[ResultFile]:
        """Each result file of ``info``, once on disk and checked; removed once the consumer moves on."""
        for url in refs:
            self.client.check_host(url)
        workers = max(1, min(self.client.max_concurrency, len(refs)))
        ahead = threading.Semaphore(workers + 1)  # bounds the files waiting on disk
        cancel = threading.Event()
        progress = ExportProgress(label, info.id, len(refs), self.logger)

        def fetch(k: int, url: str) -> ResultFile:
            ahead.acquire()
            if cancel.is_set():
                ahead.release()
                raise ExportError("canceled")
            rf = ResultFile(export=info, index=k, url=url, path="", label=label, fields=fields, progress=progress)
            try:
                self.fetch_checked(rf, cancel)
            except BaseException:
                ahead.release()
                raise
            progress.file_downloaded(Path(rf.path).stat().st_size)
            return rf

        pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pardot-download")
        futures = [pool.submit(fetch, k, url) for k, url in enumerate(refs)]
        read: dict[str, ResultFile] = {}  # by digest
        try:
            for fut in _as_completed(futures, progress):
                rf = fut.result()
                try:
                    if not self._repeats(rf, read):
                        yield rf
                    progress.file_emitted()
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
                    Path(fut.result().path).unlink(missing_ok=True)

    def fetch_checked(self, rf: ResultFile, cancel: threading.Event) -> None:
        """Download ``rf`` to a temporary file until it is the CSV requested, whole."""
        refusals = _Refusals()
        extra: list[str] = []

        def check() -> None:
            try:
                extra[:] = rf.check()
            except BadResultFile as exc:
                refusals.digests.append(csv_digest(rf.path))
                if exc.retry:
                    raise _Refetch(exc) from None
                raise

        finals: list[Exception] = []

        def give_up(exc: TransientError, tries: int) -> Exception:
            if not isinstance(exc, _Refetch):
                return RetryPolicy.giving_up(f"download of {rf.where}", rf.url)(exc, tries)
            rf.export.spoiled = rf.export.spoiled or refusals.stored(retry=True)
            finals.append(final_error(exc.bad, tries))
            return finals[-1]

        fd, rf.path = tempfile.mkstemp(prefix=f"pardot-{rf.export.id}-{rf.index}-", suffix=".csv", dir=self.spool_dir)
        try:
            with os.fdopen(fd, "wb", buffering=0) as fh:  # unbuffered: no bytes reach the disk at close, unchecked
                self.client.download(rf.url, fh, name=rf.where, check=check, cancel=cancel, give_up=give_up)
        except BadResultFile as exc:
            Path(rf.path).unlink()
            if exc in finals:  # the retries ran out: already the final error
                raise
            rf.export.spoiled = rf.export.spoiled or refusals.stored(retry=False)
            raise final_error(exc, len(refusals.digests)) from None
        except BaseException:
            Path(rf.path).unlink()
            raise
        rf.digest = file_digest(rf.path)
        if extra:
            self._warn_extra(rf, extra)

    def _repeats(self, rf: ResultFile, read: dict[str, ResultFile]) -> bool:
        """True (with a warning) when ``rf``'s bytes repeat a file of the export already read."""
        first = read.setdefault(rf.digest, rf)
        if first is rf:
            return False
        self.logger.warning(
            "%s has the same bytes as result file %d (links %s and %s): read once. Pardot never writes the same "
            "rows to two files, so both links name one file.",
            rf.where,
            first.index + 1,
            redact_url(first.url),
            redact_url(rf.url),
        )
        return True

    def _warn_extra(self, rf: ResultFile, extra: list[str]) -> None:
        key = (rf.label.split(" ", 1)[0], tuple(extra))
        if key not in self._warned:
            self._warned.add(key)
            self.logger.warning(
                "%s has column(s) not requested, dropped: %s. The requested fields are all present and matched "
                "by name, so the records are unaffected.",
                rf.where,
                scrub_answer(str(extra)[:300]),
            )
