"""The export job: create, poll, download and read the CSV result files. No Singer here.

An export is created for one time window, polled with a growing interval until it is
``Complete``, and its result files are downloaded in parallel (bounded by the client's
concurrency) into temporary files on disk, each parsed as soon as it is whole. A file cut
off midway is fetched again before any of its rows is read, so no row is emitted twice
because of a cut, and none is lost.
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import logging
import os
import tempfile
import threading
import time
import typing as t
from dataclasses import dataclass, field

from tap_pardot_export.account import MAX_HEALS, CreateHealer
from tap_pardot_export.errors import ExportError, PardotAPIError, ResultFormatError

if t.TYPE_CHECKING:
    from collections.abc import Iterator

    from tap_pardot_export.client import PardotClient

LOGGER = logging.getLogger("tap-pardot-export")
STATES = ("Waiting", "Processing", "Complete", "Failed", "Canceled")
#: a Failed export is created again this many times (Pardot: "if it fails again, contact support")
MAX_FAILED_RETRIES = 2
#: a Canceled or expired export is created again this many times
MAX_RECREATES = 3
csv.field_size_limit(1 << 30)


@dataclass
class ExportSpec:
    """What to export: the API object, fields and procedure with its arguments."""

    object: str
    fields: list[str]
    procedure: str
    arguments: dict[str, t.Any]
    label: str = ""

    def body(self) -> dict[str, t.Any]:
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
    waited: float = 0.0
    files: int = 0
    rows: int = 0
    states: list[str] = field(default_factory=list)


@dataclass
class ResultFile:
    """One downloaded result file, read row by row."""

    export: ExportInfo
    index: int
    url: str
    path: str
    label: str

    def rows(self) -> Iterator[list[str]]:
        """Yield the header row, then each record row (checked for its column count)."""
        with open(self.path, encoding="utf-8-sig", newline="") as fh:  # utf-8-sig drops a BOM
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                return
            yield header
            width = len(header)
            for row in reader:
                if len(row) != width:
                    if not row:  # a blank line
                        continue
                    msg = (
                        f"{self.label}: export {self.export.id}, result file {self.index + 1}, line "
                        f"{reader.line_num}: {len(row)} columns where the header has {width}. The file is "
                        "malformed; rerun the sync, and report it to Salesforce support if it persists."
                    )
                    raise ResultFormatError(msg)
                yield row


def unwrap_export(body: t.Any, what: str) -> dict[str, t.Any]:
    """The export object from any of the answer shapes seen in the wild."""
    export = body.get("export", body) if isinstance(body, dict) else None
    if isinstance(export, list) and len(export) == 1:
        export = export[0]
    if not isinstance(export, dict) or "id" not in export or "state" not in export:
        msg = f"{what}: Pardot's answer has no export object with an id and a state: {str(body)[:200]!r}"
        raise ResultFormatError(msg)
    return export


def result_refs(export: dict[str, t.Any]) -> list[str]:
    """``resultRefs`` (or the old spelling ``resultsRef``): absent, one URL, or a list."""
    refs = export.get("resultRefs", export.get("resultsRef"))
    if refs is None or refs == "":
        return []
    if isinstance(refs, str):
        return [refs]
    if isinstance(refs, list) and all(isinstance(r, str) for r in refs):
        return list(refs)
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
        self.client = client
        self.poll_interval = max(0.0, poll_interval)
        self.max_poll_interval = max(self.poll_interval, max_poll_interval)
        self.export_timeout = export_timeout
        self.spool_dir = spool_dir
        self.logger = logger or LOGGER
        self.active: int | None = None  # export id being waited on or downloaded
        self.active_complete = False  # True once the active export is Complete (it cannot be canceled)
        self._stop = threading.Event()

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
        info = ExportInfo(id=int(export["id"]), created_at=export.get("createdAt"), requested_at=requested)
        # in flight from now on: a signal before the first poll cancels it too
        self.active, self.active_complete = info.id, False
        self.logger.info(
            "%s: created export %s (%s, %s)",
            spec.label,
            info.id,
            spec.object,
            spec.procedure,
        )
        return info

    def read(self, export_id: int, label: str) -> dict[str, t.Any]:
        body = self.client.json("GET", f"read/id/{export_id}", "read")
        return unwrap_export(body, f"{label}: read export {export_id}")

    def cancel(self, export_id: int, label: str = "") -> bool:
        """Cancel an export; False when Pardot says it is already finished."""
        try:
            self.client.json("POST", f"cancel/id/{export_id}", "cancel")
        except PardotAPIError as exc:
            self.logger.info("%s: export %s not canceled: %s", label, export_id, exc)
            return False
        self.logger.info("%s: canceled export %s", label, export_id)
        return True

    # -- the job -------------------------------------------------------------------------

    def wait(self, info: ExportInfo, label: str) -> dict[str, t.Any]:
        """Poll until the export leaves Waiting/Processing; the wait grows to a cap."""
        start = time.monotonic()
        delay = self.poll_interval
        last_state = None
        self.active = info.id
        self.active_complete = False
        while True:
            if self._stop.wait(delay):
                raise ExportError(f"{label}: interrupted while waiting for export {info.id}")
            export = self.read(info.id, label)
            state = export.get("state")
            if state not in STATES:
                msg = (
                    f"{label}: export {info.id} is in a state the tap does not know ({state!r}). "
                    "Pardot may have changed its API; please report this."
                )
                raise ResultFormatError(msg)
            if state != last_state:
                self.logger.info("%s: export %s is %s (after %.1fs)", label, info.id, state, time.monotonic() - start)
                info.states.append(state)
                last_state = state
            if state not in ("Waiting", "Processing"):
                info.waited = time.monotonic() - start
                return export
            if time.monotonic() - start > self.export_timeout:
                self.cancel(info.id, label)
                msg = (
                    f"{label}: export {info.id} did not finish within export_timeout={self.export_timeout:.0f}s "
                    f"(last state {state}). It was canceled. Pardot runs one export at a time per account: "
                    "other exports may be queued ahead. Raise export_timeout or use smaller windows."
                )
                raise ExportError(msg)
            delay = min(self.max_poll_interval, max(delay * 2, 0.05))

    def run(
        self, spec: ExportSpec, resume_id: int | None = None, on_created: t.Callable[[ExportInfo], None] | None = None
    ) -> Iterator[ResultFile]:
        """Run ``spec`` to completion, yielding each result file once it is on disk.

        ``resume_id`` reuses an export from an interrupted run while it is still usable.
        """
        failed = 0
        recreated = 0
        info: ExportInfo | None = None
        if resume_id is not None:
            try:
                export = self.read(resume_id, spec.label)
            except PardotAPIError as exc:
                self.logger.info("%s: export %s from state cannot be reused (%s)", spec.label, resume_id, exc)
            else:
                if export.get("state") in ("Waiting", "Processing") or (
                    export.get("state") == "Complete" and not _is_true(export.get("isExpired"))
                ):
                    info = ExportInfo(id=int(resume_id), created_at=export.get("createdAt"))
                    self.logger.info("%s: resuming export %s from state (%s)", spec.label, resume_id, export["state"])
                else:
                    self.logger.info(
                        "%s: export %s from state is %s%s; creating a new one",
                        spec.label,
                        resume_id,
                        export.get("state"),
                        " and expired" if _is_true(export.get("isExpired")) else "",
                    )
        while True:
            if info is None:
                info = self.create(spec)
                if on_created is not None:
                    on_created(info)
            export = self.wait(info, spec.label)
            state = export["state"]
            expired = _is_true(export.get("isExpired"))
            if state == "Complete" and not expired:
                self.active_complete = True
                try:
                    yield from self._files(info, result_refs(export), spec.label)
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

    def _files(self, info: ExportInfo, refs: list[str], label: str) -> Iterator[ResultFile]:
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
            fd, path = tempfile.mkstemp(prefix=f"pardot-{info.id}-{k}-", suffix=".csv", dir=self.spool_dir)
            try:
                with os.fdopen(fd, "wb") as fh:
                    self.client.download(url, fh)
            except BaseException:
                os.unlink(path)
                ahead.release()
                raise
            return ResultFile(export=info, index=k, url=url, path=path, label=label)

        pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pardot-download")
        futures = [pool.submit(fetch, k, url) for k, url in enumerate(refs)]
        try:
            for fut in cf.as_completed(futures):
                rf = fut.result()
                try:
                    yield rf
                finally:
                    os.unlink(rf.path)
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
                    if os.path.exists(path):
                        os.unlink(path)

    def stop(self) -> None:
        """Make a waiting job give up at its next poll."""
        self._stop.set()
