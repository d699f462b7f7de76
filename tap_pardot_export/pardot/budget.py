"""The run's API calls: counted by kind, and capped by ``max_api_calls``.

Pardot counts every create, read, query, cancel and download against a business unit's daily
allowance (token requests do not count). A started window is finished even past the cap, so
the window's calls run inside :meth:`CallBudget.exempt`.
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


class CallBudget:
    """Counts the run's calls and refuses calls past the cap (outside :meth:`exempt`)."""

    def __init__(self, cap: int | None) -> None:
        """``cap``: the most API calls the run may spend (``max_api_calls``), None for no cap."""
        self.cap = cap
        self.calls: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._exempt = 0

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
        msg = (
            f"The run's API call budget (max_api_calls={self.cap}) is spent. State is saved; the next run "
            "resumes from it. Raise max_api_calls to do more per run."
        )
        raise CallBudgetSpent(msg)
