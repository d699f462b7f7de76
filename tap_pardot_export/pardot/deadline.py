"""A whole request's deadline: from its first byte sent to its body's last byte, whatever the peer does.

requests' timeout bounds each socket operation, not the request: a server sending its status
line and then a header byte every half second never trips it. A :class:`Deadline` is entered
around a whole request (connect, status line, headers, body); the connections the request
takes from a pool while it is entered are its own, and at the deadline a watcher thread
shuts their sockets down, which ends any read or write at once, with an error the caller
reads as "past the deadline" (:attr:`Deadline.expired`). The watcher keeps shutting down
what the request opens until the request ends, so a socket connected just after the
deadline is shut too.

The pools learn of the deadline through :class:`DeadlineAdapter` (mounted by the run's
session): the thread entering a deadline is the thread making the request, so the pool finds
it in a thread-local. A connection handed back to the pool and taken by another request is no
longer this request's: ownership moves under one lock, and the watcher shuts only what its
request still owns.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
import typing as t
import weakref

from requests.adapters import HTTPAdapter
from typing_extensions import Self, override

if t.TYPE_CHECKING:
    from types import TracebackType

    from urllib3 import PoolManager
    from urllib3.connectionpool import HTTPConnectionPool

#: after the deadline, how often the watcher shuts what the request opened since
SHUT_EVERY = 0.05
_LOCK = threading.Lock()
_OWNERS: weakref.WeakKeyDictionary[t.Any, Deadline] = weakref.WeakKeyDictionary()
_LOCAL = threading.local()


def current() -> Deadline | None:
    """The deadline this thread's request runs under, if any."""
    deadline: Deadline | None = getattr(_LOCAL, "deadline", None)
    return deadline


class Deadline:
    """The deadline of one request, ``seconds`` from when it is entered (None: no deadline).

    ``setting`` names the setting that sets it, for messages (``request_timeout``, ...).
    """

    def __init__(self, seconds: float | None, setting: str) -> None:
        """Not running until entered."""
        self.seconds = seconds if seconds and seconds > 0 else None
        self.setting = setting
        self._done = threading.Event()
        self._expired = threading.Event()
        self._conns: list[t.Any] = []
        self._outer: Deadline | None = None

    def __enter__(self) -> Self:
        self._outer = current()
        _LOCAL.deadline = self
        if self.seconds is not None:
            watcher = threading.Thread(target=self._watch, name="pardot-deadline", daemon=True)
            watcher.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._done.set()
        _LOCAL.deadline = self._outer

    @property
    def expired(self) -> bool:
        """True once the deadline passed (or :meth:`expire` was called)."""
        return self._expired.is_set()

    def describe(self) -> str:
        """The deadline for messages: ``request_timeout (300s)``."""
        return f"{self.setting} ({self.seconds:g}s)" if self.seconds is not None else self.setting

    def attach(self, conn: object) -> None:
        """``conn`` serves this request now: its socket is shut at the deadline."""
        if conn is None:
            return
        with _LOCK:
            _OWNERS[conn] = self
            self._conns.append(conn)
        if self.expired:
            self._shut()

    def expire(self) -> None:
        """End the request now, as the deadline would."""
        self._expired.set()
        self._shut()

    def _watch(self) -> None:
        if self._done.wait(self.seconds):
            return
        self._expired.set()
        while True:
            self._shut()
            if self._done.wait(SHUT_EVERY):
                return

    def _shut(self) -> None:
        with _LOCK:
            for conn in self._conns:
                if _OWNERS.get(conn) is self:
                    sock = getattr(conn, "sock", None)
                    if sock is not None:
                        with contextlib.suppress(OSError):
                            sock.shutdown(socket.SHUT_RDWR)


if t.TYPE_CHECKING:
    _PoolBase = HTTPConnectionPool
else:
    _PoolBase = object


class _DeadlinePool(_PoolBase):
    """A pool whose connections are attached to the deadline of the thread taking them."""

    @override
    def _get_conn(self, timeout: float | None = None) -> t.Any:
        conn = super()._get_conn(timeout)
        deadline = current()
        if deadline is not None:
            deadline.attach(conn)
        return conn


@functools.cache
def _with_deadline(pool: type[HTTPConnectionPool]) -> type[HTTPConnectionPool]:
    """``pool`` whose connections are attached to the taking thread's deadline."""
    if issubclass(pool, _DeadlinePool):
        return pool
    return t.cast("type[HTTPConnectionPool]", type(f"Deadline{pool.__name__}", (_DeadlinePool, pool), {}))


def _fence(manager: PoolManager) -> None:
    manager.pool_classes_by_scheme = {s: _with_deadline(p) for s, p in manager.pool_classes_by_scheme.items()}


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter whose pools (proxied ones too) attach their connections to the request's deadline."""

    @override
    def init_poolmanager(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _fence(self.poolmanager)

    @override
    def proxy_manager_for(self, proxy: str, **proxy_kwargs: t.Any) -> t.Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        _fence(manager)
        return manager
