"""Waiting for an export: when to read its status, learned from the run's earlier exports.

Pardot runs a business unit's exports one at a time. Once the run has seen exports finish,
the first status read of the next one comes near when it should be done, and the reads after
it come at a fraction of the typical duration, so Pardot's queue does not sit idle while the
tap sleeps, and few status reads (each an API call) are spent. A long wait is said every
:data:`HEARTBEAT_SECONDS`, with how many exports are ahead of it where the API user may see
the queue (:class:`~tap_pardot_export.pardot.listing.QueueWatch`).
"""

from __future__ import annotations

import collections
import logging
import time
import typing as t
from dataclasses import dataclass

from tap_pardot_export.errors import ExportError

if t.TYPE_CHECKING:
    import threading
    from collections.abc import Callable

    from tap_pardot_export.pardot.exports import ExportInfo

LOGGER = logging.getLogger("tap-pardot-export")
#: during a long wait, a line every this many seconds says which export waits, in which state
HEARTBEAT_SECONDS = 300.0
#: how many of the run's export durations inform the first status read of the next one
DURATIONS_KEPT = 5


@dataclass(frozen=True)
class Polling:
    """The polling settings: the first wait, its cap, and how long an export may take."""

    poll_interval: float
    max_poll_interval: float
    export_timeout: float


class Poller:
    """Polls exports until they leave Waiting/Processing, learning how long Pardot takes."""

    def __init__(self, polling: Polling, stop: threading.Event, logger: logging.Logger | None = None) -> None:
        """``stop`` ends a wait at once (the run is stopping)."""
        self.poll_interval = max(0.0, polling.poll_interval)
        self.max_poll_interval = max(self.poll_interval, polling.max_poll_interval)
        self.export_timeout = polling.export_timeout
        self.stop = stop
        self.logger = logger or LOGGER
        #: this run's: seconds Pardot took per export, and seconds spent waiting
        self.durations: collections.deque[float] = collections.deque(maxlen=DURATIONS_KEPT)
        self.last_complete = 0.0  # monotonic clock when the last export was seen Complete
        self.waited = 0.0
        #: told of each finished wait: (label, seconds, the state it ended in)
        self.on_waited: Callable[[str, float, str], None] | None = None
        #: what a long-wait line says of the queue ahead of an export in a state (listing.QueueWatch)
        self.queue_note: Callable[[ExportInfo, str], str] | None = None

    def expected_ready(self, info: ExportInfo) -> float | None:
        """The earliest (monotonic clock) ``info`` is likely Complete, from this run's exports; None if unknown.

        An export starts once it was created and the one before it was done. Both are known
        only within a poll, so the earliest start and the shortest recent duration are taken: a
        read that comes early costs a call, one that comes late costs the time the queue sits idle.
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

    def learn(self, info: ExportInfo, seen: float, before: float | None) -> None:
        """Record how long Pardot took at most for ``info``: seen Complete at ``seen``, not yet at ``before``."""
        start = max(info.created_mono, self.last_complete)
        if info.created_mono:
            self.durations.append(max(0.0, seen - start))
        self.last_complete = max(start, before or 0.0) if info.created_mono else seen

    def wait(
        self,
        info: ExportInfo,
        label: str,
        read: Callable[[], dict[str, t.Any]],
        on_working: Callable[[], None] | None = None,
    ) -> dict[str, t.Any]:
        """Read ``info``'s status with ``read`` until it leaves Waiting/Processing; its last answer.

        ``on_working`` is called at each read that finds it Processing or Complete. Past
        ``export_timeout`` the caller's ``ExportTimedOut`` handling cancels it.

        Raises:
            ExportTimedOut: the export took longer than ``export_timeout``.
        """
        start = time.monotonic()
        delay, step = self.first_delay(info), self.retry_step()
        last_state, beat, before, state = None, start, None, "Waiting"
        try:
            while True:
                if self.stop.wait(delay):
                    raise ExportError(f"{label}: interrupted while waiting for export {info.id}")
                export = read()  # its state is one of STATES
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
                        self.learn(info, now, before)
                    return export
                before = now
                beat = self._heartbeat(info, label, state, start, beat)
                if now - start > self.export_timeout:
                    raise ExportTimedOut(info.id, state)
                step = min(self.max_poll_interval, max(step * 2, 0.05))
                delay = step
        finally:
            seconds = time.monotonic() - start
            self.waited += seconds
            if self.on_waited is not None:
                self.on_waited(label, seconds, state)

    def _heartbeat(self, info: ExportInfo, label: str, state: str, start: float, beat: float) -> float:
        """Every :data:`HEARTBEAT_SECONDS` of a long wait, a line saying what is waited on."""
        now = time.monotonic()
        if now - beat < HEARTBEAT_SECONDS:
            return beat
        note = "(Pardot runs one export at a time per account; others may be ahead of it)"
        if self.queue_note is not None:
            note = self.queue_note(info, state)
        self.logger.info("%s: still waiting for export %s: %s for %.0fs %s", label, info.id, state, now - start, note)
        return now


class ExportTimedOut(Exception):
    """Internal: an export stayed Waiting/Processing past ``export_timeout``."""

    def __init__(self, export_id: int, state: str) -> None:
        super().__init__(export_id, state)
        self.export_id, self.state = export_id, state
