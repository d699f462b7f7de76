"""Fixtures: sandboxes over real HTTP on loopback."""

from __future__ import annotations

import threading
import typing as t

import pytest
from hypothesis import settings

from tests.helpers import make_sandbox

if t.TYPE_CHECKING:
    from pardot_export_sandbox import Sandbox

# Property tests run on a shared 2-core machine: a slow example is load, not a defect.
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")


@pytest.fixture(scope="session")
def sandbox() -> t.Iterator[Sandbox]:
    """A shared sandbox in a zone with daylight saving, small files so exports have several."""
    with make_sandbox(rows_per_file=150) as sb:
        yield sb


_stopping: list[threading.Thread] = []


@pytest.fixture
def fresh_sandbox() -> t.Iterator[t.Callable[..., Sandbox]]:
    """A factory for a sandbox of a test's own (faults, clocks and counters untouched by others).

    Each is stopped in the background after its test: stopping waits up to half a second for
    the server loop to notice, which the next test need not wait for.
    """
    made: list[Sandbox] = []

    def factory(**kw: t.Any) -> Sandbox:
        sb = make_sandbox(**kw).start()
        made.append(sb)
        return sb

    yield factory
    for sb in made:
        th = threading.Thread(target=sb.stop, name="sandbox-stop", daemon=True)
        th.start()
        _stopping.append(th)


@pytest.fixture(scope="session", autouse=True)
def _sandboxes_stopped() -> t.Iterator[None]:
    """Wait for the sandboxes stopped in the background before the session ends."""
    yield
    for th in _stopping:
        th.join(timeout=10)


class _RecordedWaits:
    """The retry waits the tap's policy planned (before ``WAIT_SCALE``), none of them slept."""

    def __init__(self) -> None:
        self.slept: list[float] = []


@pytest.fixture
def instant_retries(monkeypatch: pytest.MonkeyPatch) -> _RecordedWaits:
    """The tap's retry waits (backoff, Retry-After) return at once; ``.slept`` lists what they asked for.

    Only for in-process runs: uses the HTTP layer's test hook ``client.WAIT_SCALE``.
    """
    import tap_pardot_export.client as client

    record = _RecordedWaits()
    original = client.RetryPolicy.waits

    def waits(policy: t.Any) -> t.Generator[float, t.Any, None]:
        gen = original(policy)
        value = next(gen)
        while True:
            exc = yield value
            value = gen.send(exc)
            record.slept.append(float(getattr(exc, "planned_wait", value)))

    monkeypatch.setattr(client, "WAIT_SCALE", 0.0)
    monkeypatch.setattr(client.RetryPolicy, "waits", waits)
    return record
