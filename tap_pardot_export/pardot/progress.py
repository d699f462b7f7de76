"""Progress lines while an export's result files download and their rows are emitted.

A large export's files take tens of seconds to download and emit; without a line the run looks
stuck. :class:`ExportProgress` says where one export's read is (files downloaded of the total,
megabytes, files and rows emitted) at most once every :data:`PROGRESS_SECONDS`, and says
nothing for a read shorter than that. The downloads tell it of each file done (worker threads),
the reader of its rows (the main thread), and the fetcher's wait for the next file ticks it.
"""

from __future__ import annotations

import threading
import time
import typing as t

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Callable

#: the least time between two progress lines of one export's read (tests patch it)
PROGRESS_SECONDS = 10.0
#: rows emitted between two looks at the clock
ROWS_PER_TICK = 1000


class ExportProgress:
    """How far one export's result files are: downloaded, emitted; a line every :data:`PROGRESS_SECONDS`."""

    def __init__(
        self,
        label: str,
        export_id: int,
        total_files: int,
        logger: logging.Logger,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """For ``total_files`` files of export ``export_id`` of ``label`` (stream and window); ``clock`` in seconds."""
        self.label, self.export_id, self.total = label, export_id, total_files
        self.logger, self.clock = logger, clock
        self.downloaded = 0
        self.bytes = 0
        self.emitted_files = 0
        self.rows = 0
        self.lines = 0
        self.last = clock()
        self._lock = threading.Lock()

    def file_downloaded(self, size: int) -> None:
        """A file is on disk and checked (any thread)."""
        with self._lock:
            self.downloaded += 1
            self.bytes += size

    def rows_emitted(self, rows: int) -> None:
        """``rows`` more rows were emitted (the reader's thread)."""
        self.rows += rows
        self.tick()

    def file_emitted(self) -> None:
        """A file's last row was emitted."""
        self.emitted_files += 1

    def tick(self) -> None:
        """Log where the read is when :data:`PROGRESS_SECONDS` passed since the start or the last line."""
        now = self.clock()
        if now - self.last < PROGRESS_SECONDS:
            return
        self.last = now
        self.lines += 1
        with self._lock:
            downloaded, size = self.downloaded, self.bytes
        self.logger.info(
            "%s: export %s: %d of %d result file(s) downloaded (%.1f MB), %d emitted, %d row(s) so far",
            self.label,
            self.export_id,
            downloaded,
            self.total,
            size / 1e6,
            self.emitted_files,
            self.rows,
        )

    def wait_seconds(self) -> float:
        """How long until the next line may be due (the fetcher's wait for a file wakes then to tick)."""
        return max(0.01, PROGRESS_SECONDS - (self.clock() - self.last))
