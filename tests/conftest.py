"""Fixtures: sandboxes and fake Pardots over real HTTP on loopback."""

from __future__ import annotations

import gc
import ipaddress
import os
import socket
import sys
import threading
import typing as t

# Bytecode is cached even where the environment says not to (PYTHONDONTWRITEBYTECODE, common in
# containers): pytest rewrites the asserts of the tests and of its plugins' packages (singer-sdk,
# hypothesis: some 240 modules) in every worker, and caches the result only where bytecode may be
# written; the tap's own processes compile their modules at each start otherwise. Both went into
# the suite's time. The caches go to __pycache__ folders, ignored by git.
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

import pytest  # noqa: E402 - after the bytecode switch above, which must come first
from hypothesis import settings  # noqa: E402

from tests.fake_pardot import STREAM, FakePardot  # noqa: E402
from tests.helpers import (  # noqa: E402
    Cluster,
    RecordedWaits,
    TapRun,
    discover,
    make_sandbox,
    postgres_bindir,
    run_tap,
    select_streams,
    skip_retry_waits,
)

if t.TYPE_CHECKING:
    from pathlib import Path

    from pardot_export_sandbox import Sandbox

# Hypothesis profiles. Property tests run on a shared 2-core machine: a slow example is load, not a
# defect (no deadline). "ci", the default: a bounded number of examples, the same ones each run
# (derandomized, no example database), so a run's time and outcome repeat. "dev": new random
# examples each run, failures remembered in .hypothesis/ (`scripts/test --hypothesis-profile=dev`).
# A test that sets max_examples itself (each example a whole tap run) keeps its own, smaller count.
settings.register_profile("ci", max_examples=300, deadline=None, derandomize=True, database=None)
settings.register_profile("dev", max_examples=300, deadline=None)
settings.load_profile("ci")  # pytest's --hypothesis-profile option, when given, loads another after this

# The garbage collector in a worker. The tap runs in-process over a heap a real tap process never
# has (pytest, every test module, the sandboxes' data): each full collection scanned all of it,
# and collections took some 8 s of CPU per worker. What is loaded by the end of collection stays
# for the session and is left out of every scan (``gc.freeze``, below); young objects are
# collected less often. Reference counting still frees what is not in a cycle at once.
gc.set_threshold(100_000, 20, 50)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Everything loaded so far lives as long as the worker: the collector need not scan it again."""
    del session
    gc.collect()
    gc.freeze()


@pytest.fixture(scope="session")
def sandbox() -> t.Iterator[Sandbox]:
    """A shared sandbox in a zone with daylight saving, small files so exports have several."""
    with make_sandbox(rows_per_file=150) as sb:
        yield sb


_stopping: list[threading.Thread] = []
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


@pytest.fixture(scope="session", autouse=True)
def _offline() -> t.Iterator[None]:
    """Names other than loopback do not resolve in this process, at once, as on a machine offline.

    The tap built with default URLs (``pi.pardot.com``, ``login.salesforce.com``) looks them up
    when it reads the account at discovery; a real lookup may wait 5 s for a resolver timeout,
    and no test may reach anything but loopback. IP literals pass through unchanged.
    """
    real = socket.getaddrinfo

    def getaddrinfo(host: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name is None or name.lower() in _LOOPBACK_NAMES:
            return real(host, *args, **kwargs)
        try:
            ipaddress.ip_address(name.split("%", 1)[0])
        except ValueError:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (the tests are offline)") from None
        return real(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    try:
        yield
    finally:
        socket.getaddrinfo = real


@pytest.fixture(autouse=True)
def record_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's taps keep their export record in a folder of the test's own (the default folder is per user).

    Every sandbox has the same business unit and export ids, so a record shared between tests would
    hand one test's exports to another's runs. Tests about the record set ``record_dir`` themselves.
    """
    folder = tmp_path_factory.mktemp("state") / "state-home"
    monkeypatch.setenv("XDG_STATE_HOME", str(folder))
    return folder / "tap-pardot-export"


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


@pytest.fixture
def instant_retries(monkeypatch: pytest.MonkeyPatch) -> RecordedWaits:
    """The tap's retry waits (backoff, Retry-After) return at once; ``.slept`` lists what they asked for.

    Only for in-process runs: replaces the retry policy's pause.
    """
    return skip_retry_waits(monkeypatch)


@pytest.fixture(scope="module")
def postgres() -> t.Iterator[Cluster]:
    """A PostgreSQL 15 cluster on loopback for the module's tests (skipped without the server binaries)."""
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL's server binaries are not on this machine (Debian: apt-get install postgresql-15)")
    cluster = Cluster(bindir).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def fake() -> t.Iterator[t.Callable[..., FakePardot]]:
    """``fake(**kw)``: a started :class:`~tests.fake_pardot.FakePardot` (``kw`` as it takes), stopped afterwards."""
    made: list[FakePardot] = []

    def factory(**kw: t.Any) -> FakePardot:
        made.append(FakePardot(**kw).start())
        return made[-1]

    yield factory
    for server in made:
        server.stop()


@pytest.fixture(scope="session")
def catalog() -> dict[str, t.Any]:
    """The catalog discovered from a fake Pardot (its custom field query and describe), list_membership selected."""
    with FakePardot() as server:
        return select_streams(discover(server.config()), [STREAM])


@pytest.fixture
def serve(
    fake: t.Callable[..., FakePardot], catalog: dict[str, t.Any], instant_retries: RecordedWaits
) -> t.Callable[..., tuple[FakePardot, TapRun]]:
    """``serve(body, config=..., state=..., **fake_kw)``: a fake Pardot and a sync of ``catalog`` against it.

    ``body(call)`` answers each download (the fake's rows by default); ``config`` adds to the
    fake's settings. Retries wait no time (``instant_retries``) and are bounded by
    ``max_retries: 2``: a body that stays wrong is fetched 3 times.
    """

    def run(
        body: t.Any = None,
        *,
        config: dict[str, t.Any] | None = None,
        state: dict[str, t.Any] | None = None,
        **kw: t.Any,
    ) -> tuple[FakePardot, TapRun]:
        server = fake(body=body, **kw)
        return server, run_tap(server.config(**(config or {})), catalog=catalog, state=state, timeout=120)

    return run


# -- tap processes and small sandboxes of a test's own ------------------------------------------------
# What test modules once borrowed from each other. The helper modules that hold it have their asserts
# reported as a test module's are (registered before anything imports them).
pytest.register_assert_rewrite(
    "tests.taps",
    "tests.singer_messages",
    "tests.sandbox_runs",
    "tests.wide_helpers",
    "tests.meltano_helpers",
    "tests.settings_helpers",
)

import datetime as dt  # noqa: E402

from pardot_export_sandbox import DataConfig, Sandbox, SandboxConfig  # noqa: E402

from tests.helpers import small_v5  # noqa: E402
from tests.taps import close_all  # noqa: E402


@pytest.fixture(autouse=True)
def _taps_closed() -> t.Iterator[None]:
    """Every tap process of a test (:class:`tests.taps.Tap`) is gone and its files closed afterwards, failed or not."""
    yield
    close_all()


@pytest.fixture
def sandboxes() -> t.Iterator[t.Callable[..., Sandbox]]:
    """``sandboxes(rows=..., zone=..., **kw)``: a started sandbox of the test's own over 2024 (stopped afterwards).

    300 list memberships by default, in New York's zone, small v5 objects; ``kw`` as the sandbox's
    config takes (faults, processing times, files). Modules with sandboxes of their own override it.
    """
    made: list[Sandbox] = []

    def make(rows: dict[str, int] | None = None, zone: str = "America/New_York", **kw: t.Any) -> Sandbox:
        utc = dt.timezone.utc
        start, end = dt.datetime(2024, 1, 1, tzinfo=utc), dt.datetime(2025, 1, 1, tzinfo=utc)
        data = DataConfig(start=start, end=end, rows=rows or {"list_membership": 300}, timezone=zone)
        sb = Sandbox(SandboxConfig(data=small_v5(data), **kw)).start()
        made.append(sb)
        return sb

    yield make
    for sb in made:
        sb.stop()
