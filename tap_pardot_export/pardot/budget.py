"""The run's API calls: counted by kind, and capped by ``max_api_calls`` or the daily allowance's reserve.

Pardot counts every create, read, query, cancel and download against a business unit's daily
allowance (token requests do not count). A started window is finished even past the cap, so
the window's calls run inside :meth:`CallBudget.exempt`. The cap is ``max_api_calls`` until
:meth:`CallBudget.limit` lowers it to what the business unit's allowance leaves above
``api_call_reserve`` (:mod:`~tap_pardot_export.pardot.quota`): the lower of the two holds.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import typing as t

from tap_pardot_export.errors import CallBudgetSpent

if t.TYPE_CHECKING:
    from collections.abc import Iterator

#: calls that Pardot does not count against the daily allowance
FREE_KINDS = frozenset({"token"})
#: the setting behind the cap until :meth:`CallBudget.limit` lowers it
PER_RUN = "max_api_calls"


class CallBudget:
    """Counts the run's calls and refuses calls past the cap (outside :meth:`exempt`)."""

    def __init__(self, cap: int | None) -> None:
        """``cap``: the most API calls the run may spend (``max_api_calls``), None for no cap."""
        self.cap = cap
        #: the setting that sets the cap, and the cap in words for messages
        self.setting = PER_RUN
        self.reason = f"{PER_RUN}={cap}"
        #: what to do to spend more (the end of a message saying the cap stopped the run)
        self.advice = f"Raise {PER_RUN} to do more per run."
        #: the cap refused a window or a call: the run stopped before the end of its range
        self.stopped = False
        self.calls: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._exempt = 0

    def limit(self, calls: int, setting: str, reason: str, advice: str) -> bool:
        """Cap the run at ``calls`` more calls from now when that is below the cap; True when it is.

        ``setting`` is then the one that stops the run; ``reason`` says the cap in words and
        ``advice`` what to do to spend more.
        """
        with self._lock:
            cap = sum(v for k, v in self.calls.items() if k not in FREE_KINDS) + max(calls, 0)
            if self.cap is not None and self.cap <= cap:
                return False
            self.cap, self.setting, self.reason, self.advice = cap, setting, reason, advice
            return True

    @property
    def per_run(self) -> bool:
        """True when ``max_api_calls`` sets the cap (a run then always finishes one window, to progress)."""
        return self.setting == PER_RUN

    def stop_line(self) -> str:
        """The run's last line when the cap stopped it."""
        return (
            f"The run stopped before the end of its range: {self.reason} allows no more API calls in this run. "
            f"State is saved; the next run resumes from it. {self.advice}"
        )

    def count(self, kind: str) -> None:
        """Count one call of ``kind`` (create, read, download, token, ...)."""
        with self._lock:
            self.calls[kind] += 1

    def count_unlocked(self, kind: str) -> None:
        """Count one call without the lock: for the signal path, whose thread may find it held."""
        self.calls[kind] += 1

    @property
    def spent(self) -> int:
        """API calls spent (token requests excluded: they do not count against Pardot's limit)."""
        with self._lock:
            return sum(v for k, v in self.calls.items() if k not in FREE_KINDS)

    def by_kind(self) -> dict[str, int]:
        """The calls spent so far, by kind."""
        with self._lock:
            return dict(self.calls)

    def left(self) -> int | None:
        """Calls left under the cap (even inside :meth:`exempt`); None without a cap."""
        return None if self.cap is None else self.cap - self.spent

    @contextlib.contextmanager
    def exempt(self) -> Iterator[None]:
        """Calls made meanwhile (from any thread) pass the cap: a started window is finished."""
        with self._lock:
            self._exempt += 1
        try:
            yield
        finally:
            with self._lock:
                self._exempt -= 1

    def check(self) -> None:
        """Refuse a call past the cap, unless a window is being finished.

        Raises:
            CallBudgetSpent: the cap is reached.
        """
        left = self.left()
        if left is None or left > 0:
            return
        with self._lock:
            if self._exempt:
                return
            self.stopped = True
        msg = f"The run's API call budget ({self.reason}) is spent. State is saved; the next run resumes from it. "
        raise CallBudgetSpent(msg + self.advice, setting=self.setting)
