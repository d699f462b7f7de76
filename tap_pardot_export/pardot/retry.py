"""The one retry loop: API calls, token requests and result-file downloads all go through it.

Exponential waits with full jitter (instances sharing Pardot's limit spread out), at least the
server's ``Retry-After``, at most ``max_retries`` retries and ``max_time`` seconds. Only
:class:`~tap_pardot_export.errors.TransientError` is retried; what is transient is decided by
:func:`~tap_pardot_export.pardot.answers.classify`. A wait ends at once when the run stops
(:meth:`RetryPolicy.stop`, on a signal), so no thread sleeps through a shutdown.
"""

from __future__ import annotations

import logging
import threading
import time
import typing as t

import backoff

from tap_pardot_export.errors import PardotAPIError, TransientError
from tap_pardot_export.redact import redact_url

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator

LOGGER = logging.getLogger("tap-pardot-export")
#: how often a wait looks at a caller's cancel event
CANCEL_POLL = 0.1
T = t.TypeVar("T")


class Interrupted(PardotAPIError):
    """The run is stopping (a signal): a retry wait was cut short."""


class RetryPolicy:
    """The run's retry policy (one per run, shared by every call)."""

    def __init__(self, *, max_retries: int, max_time: float, base: float = 1.0, cap: float = 60.0) -> None:
        """Set the bounds: ``max_retries`` retries after the first try, ``max_time`` seconds in all."""
        self.max_retries = max(0, max_retries)
        self.max_time = max_time
        self.base = base
        self.cap = cap
        self._stop = threading.Event()

    def stop(self) -> None:
        """End every wait now and refuse new ones (the run is shutting down)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stop.is_set()

    def delays(self) -> Iterator[float]:
        """The planned waits before each retry: exponential with full jitter, capped."""
        ceilings = backoff.expo(base=2, factor=self.base, max_value=self.cap)
        next(ceilings)  # backoff's generators are primed with a first, unused value
        for ceiling in ceilings:
            yield backoff.full_jitter(float(ceiling))

    def wait_for(self, exc: TransientError, planned: float) -> float:
        """The wait before retrying after ``exc``: at least the server's Retry-After (bounded)."""
        if exc.retry_after is not None:
            return max(planned, min(float(exc.retry_after), self.cap * 5))
        return planned

    def pause(self, seconds: float, cancel: threading.Event | None = None) -> None:
        """Wait ``seconds``, or less when the run stops or ``cancel`` is set (tests replace it to skip waits).

        Raises:
            Interrupted: the run is stopping, or the caller canceled the work.
        """
        end = time.monotonic() + seconds
        while True:
            if self.stopping or (cancel is not None and cancel.is_set()):
                raise Interrupted("interrupted while waiting to retry: the run is stopping")
            left = end - time.monotonic()
            if left <= 0:
                return
            self._stop.wait(left if cancel is None else min(left, CANCEL_POLL))

    def run(
        self,
        attempt: Callable[[], T],
        what: str,
        url: str,
        *,
        extra_time: float = 0.0,
        give_up: Callable[[TransientError, int], Exception] | None = None,
        cancel: threading.Event | None = None,
    ) -> T:
        """Call ``attempt`` until it returns, retrying :class:`TransientError` within the bounds.

        ``extra_time`` adds to ``max_time`` the time tries may spend working (a download's
        deadline per try), so a long download cut off late is still fetched again.
        ``give_up`` makes the error raised when the tries or the time ran out (default: one
        naming ``what`` and ``url``). ``cancel`` ends a wait early, as a stop does.
        """
        start = time.monotonic()
        delays = self.delays()
        for tries in range(1, self.max_retries + 2):
            try:
                return attempt()
            except TransientError as exc:  # noqa: PERF203 - the retry loop: a try per attempt is the point
                left = self.max_time + extra_time - (time.monotonic() - start)
                if tries > self.max_retries or left <= 0 or self.stopping:
                    raise (give_up or self.giving_up(what, url))(exc, tries) from None
                wait = min(self.wait_for(exc, next(delays)), left)
                LOGGER.warning("%s failed (%s); retry %d/%d in %.1fs", what, exc, tries, self.max_retries, wait)
                self.pause(wait, cancel)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    @staticmethod
    def giving_up(what: str, url: str) -> Callable[[TransientError, int], Exception]:
        """The default error once the tries or the time ran out: names the call and its URL."""

        def error(exc: TransientError, tries: int) -> Exception:
            msg = (
                f"Giving up on {what} {redact_url(url)} after {tries} tries: {exc}. Pardot or the network "
                "is failing; rerun later (state is saved)."
            )
            return PardotAPIError(msg)

        return error
