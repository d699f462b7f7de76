"""Test helpers: run the tap as users do, and compute what it should emit.

:func:`run_tap` runs the tap's real command line (``TapPardotExport.cli``: argument parsing,
config validation, logging set-up, the excepthook that turns errors into messages) either in
this process, which is the default and saves a Python start per run, or in a subprocess for
the tests about the process itself (exit codes of the real CLI). Both give the same
:class:`TapRun`: exit code, stdout, stderr and the parsed messages.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import glob
import io
import json
import logging
import os
import shutil
import socket
import subprocess as sp
import sys
import tempfile
import threading
import time
import typing as t
import warnings
from dataclasses import dataclass, field, replace
from http.server import ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

from pardot_export_sandbox import DataConfig, Sandbox, SandboxConfig
from pardot_export_sandbox.data import DATETIME, V5_OBJECTS, ObjectData
from pardot_export_sandbox.v5data import snake

from tap_pardot_export.pardot.client import PardotClient, build_client
from tap_pardot_export.pardot.retry import Interrupted, RetryPolicy
from tap_pardot_export.redact import REDACTION
from tap_pardot_export.settings.checks import validate
from tap_pardot_export.settings.config import connection
from tap_pardot_export.settings.schema import settings_schema
from tap_pardot_export.spec import SPECS
from tap_pardot_export.tap import TapPardotExport

UTC = dt.timezone.utc
#: every export stream of the tap, in its order (the query streams: tests/query/)
STREAMS: tuple[str, ...] = tuple(name for name, spec in SPECS.items() if spec.kind == "export")
#: the field each export stream's windows filter on (its replication key)
FILTER_FIELD: dict[str, str] = {name: str(SPECS[name].replication_key) for name in STREAMS}
#: custom fields the sandbox's prospects carry
CUSTOM = {"prospect": ["Favorite_Color", "Lead_Notes"]}


class LoopbackServer(ThreadingHTTPServer):
    """A test server on loopback whose client hanging up is no error.

    The tap hangs up on answers it refuses; the default ``handle_error`` would print that
    connection's traceback on the stderr of the process that the in-process tap runs share.
    Any other error in a handler still prints.
    """

    daemon_threads = True

    def __init__(self, handler: type, host: str = "127.0.0.1") -> None:
        super().__init__((host, 0), handler)

    def handle_error(self, request: t.Any, client_address: t.Any) -> None:
        """Ignore a client that went away; report anything else."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class RecordedWaits:
    """The retry waits the tap's policy planned, none of them slept."""

    def __init__(self) -> None:
        self.slept: list[float] = []


def skip_retry_waits(monkeypatch: t.Any) -> RecordedWaits:
    """Make the retry policy's waits return at once (a stop still interrupts); record what they asked for."""
    record = RecordedWaits()

    def pause(policy: RetryPolicy, seconds: float, cancel: threading.Event | None = None) -> None:
        record.slept.append(float(seconds))
        if policy.stopping or (cancel is not None and cancel.is_set()):
            raise Interrupted("interrupted while waiting to retry: the run is stopping")

    monkeypatch.setattr(RetryPolicy, "pause", pause)
    return record


def with_defaults(config: dict[str, t.Any]) -> dict[str, t.Any]:
    """``config`` with every setting's default filled in, as the tap's validation does."""
    filled = dict(config)
    validate(filled, settings_schema())
    return filled


def client_for(config: dict[str, t.Any]) -> PardotClient:
    """A Pardot client built from tap settings (defaults filled in), as a run builds it."""
    return build_client(connection(with_defaults(config)))


#: Every v5 object at a few dozen records. A sync without a catalog reads every query stream
#: whole, and at the sandbox's default sizes (some 25,000 records) that was most of a test's
#: time. Tests about the query API's volume (page-token chains, mass updates) size their own.
SMALL_V5 = {name: min(size, 30) for name, (_, _, size) in V5_OBJECTS.items()}


def small_v5(data: DataConfig) -> DataConfig:
    """``data`` with :data:`SMALL_V5` for every v5 object its ``rows`` do not size."""
    return replace(data, rows={**SMALL_V5, **data.rows})


def full_v5(data: DataConfig | None = None) -> DataConfig:
    """``data`` (2024 by default) with the sandbox's default size for every v5 object its ``rows`` do not size."""
    data = data or DataConfig(start=dt.datetime(2024, 1, 1, tzinfo=UTC), end=dt.datetime(2025, 1, 1, tzinfo=UTC))
    return replace(data, rows={**{name: size for name, (_, _, size) in V5_OBJECTS.items()}, **data.rows})


def make_sandbox(**kw: t.Any) -> Sandbox:
    """A sandbox (not started) over 2024 in its default zone, with ``kw`` as SandboxConfig fields.

    The v5 objects are :data:`SMALL_V5` unless ``data`` sizes them.
    """
    data = kw.pop("data", None) or DataConfig(
        start=dt.datetime(2024, 1, 1, tzinfo=UTC), end=dt.datetime(2025, 1, 1, tzinfo=UTC)
    )
    return Sandbox(SandboxConfig(data=small_v5(data), **kw))


@dataclass
class TapRun:
    """What one tap run left behind: exit code, output, and the Singer messages it wrote."""

    returncode: int
    stdout: str
    stderr: str
    #: whether stdout is Singer messages, one per line (not a report, a catalog, or a killed run's last words)
    singer: bool = True
    _messages: list[dict[str, t.Any]] | None = field(default=None, repr=False)

    @property
    def messages(self) -> list[dict[str, t.Any]]:
        """The Singer messages of stdout, parsed when first asked for (most tests read a few runs' only)."""
        if self._messages is None:
            lines = self.stdout.splitlines() if self.singer else []
            self._messages = [json.loads(line) for line in lines if line.strip()]
        return self._messages

    def records(self, stream: str | None = None) -> list[dict[str, t.Any]]:
        return [
            m["record"] for m in self.messages if m["type"] == "RECORD" and (stream is None or m["stream"] == stream)
        ]

    def states(self) -> list[dict[str, t.Any]]:
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    @property
    def final_state(self) -> dict[str, t.Any]:
        states = self.states()
        return states[-1] if states else {}

    @property
    def everything(self) -> str:
        return self.stdout + self.stderr


def run_tap(
    config: dict[str, t.Any],
    *,
    state: dict | None = None,
    catalog: dict | None = None,
    args: t.Sequence[str] = (),
    timeout: float = 300,
    env: dict[str, str] | None = None,
    subprocess: bool = False,
) -> TapRun:
    """Run the tap's CLI with files for config, state and catalog.

    In this process by default; ``subprocess=True`` runs ``python -m tap_pardot_export``
    instead, for tests about the real process (its exit code, its stderr as a whole).
    (The tap's peak memory is measured by benchmarks/peak_memory.py, not by the tests.)
    """
    with tempfile.TemporaryDirectory(prefix="tap-run-") as tmp:
        argv = ["--config", _dump(tmp, "config", config), *args]
        if state is not None:
            argv += ["--state", _dump(tmp, "state", state)]
        if catalog is not None:
            argv += ["--catalog", _dump(tmp, "catalog", catalog)]
        if subprocess:
            proc = sp.run(
                [sys.executable, "-m", "tap_pardot_export", *argv],
                capture_output=True,
                text=True,
                timeout=timeout,
                env={**os.environ, **(env or {})},
                check=False,
            )
            run = TapRun(proc.returncode, proc.stdout, proc.stderr)
        else:
            run = _run_in_process(argv, timeout=timeout, env=env or {})
    run.singer = not REPORTS.intersection(args)
    return run


#: the options whose output is a report or a catalog, not Singer messages
REPORTS = frozenset({"--discover", "--about", "--check", "--list-exports", "--cancel-exports"})


def run_command(config: dict[str, t.Any], *args: str, env: dict[str, str] | None = None) -> TapRun:
    """``tap-pardot-export --config FILE ARGS`` (``--check``, ``--list-exports``, ...) in this process."""
    return run_tap(config, args=args, env=env, timeout=120)


def run_check(config: dict[str, t.Any]) -> TapRun:
    """``tap-pardot-export --check``: the first-run check's report, in this process."""
    return run_command(config, "--check")


class BackgroundTap:
    """A tap process whose stdout is read line by line, so a test can kill it at a chosen point."""

    def __init__(
        self, config: dict[str, t.Any], catalog: dict[str, t.Any], state: dict[str, t.Any] | None = None
    ) -> None:
        self.tmp = tempfile.mkdtemp()
        paths = {}
        for name, obj in (("config", config), ("catalog", catalog), ("state", state)):
            if obj is not None:
                paths[name] = os.path.join(self.tmp, f"{name}.json")
                with open(paths[name], "w") as fh:
                    json.dump(obj, fh)
        cmd = [sys.executable, "-m", "tap_pardot_export", "--config", paths["config"], "--catalog", paths["catalog"]]
        if "state" in paths:
            cmd += ["--state", paths["state"]]
        self.err = open(os.path.join(self.tmp, "stderr"), "w+")  # noqa: SIM115
        self.proc = sp.Popen(cmd, stdout=sp.PIPE, stderr=self.err, text=True)
        self.lines: list[str] = []

    def read_until(self, predicate: t.Callable[[dict[str, t.Any]], bool], timeout: float = 60) -> bool:
        """Read stdout until a message satisfies ``predicate``; False when stdout ended first."""
        assert self.proc.stdout is not None
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            line = self.proc.stdout.readline()
            if not line:
                return False
            self.lines.append(line)
            if predicate(json.loads(line)):
                return True
        return False

    def finish(self) -> TapRun:
        """The run once the process ended (killed, or done), every stdout line included."""
        out = drain(self.proc)  # not communicate(): it would skip the lines readline() buffered
        self.lines.extend(out.splitlines(keepends=True))
        self.err.seek(0)
        run = TapRun(self.proc.returncode, "".join(self.lines), self.err.read())
        self.err.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        return run


def run_with_file_limit(
    config: dict[str, t.Any], catalog: dict[str, t.Any], kib: int, folder: Path
) -> tuple[sp.CompletedProcess[str], Path]:
    """The tap in a process whose files may not grow past ``kib`` KiB (bash's ``ulimit -f``): a full disk.

    Config and catalog are written to ``folder``; the tap's TMPDIR is ``folder / "tmp"``
    (returned, to check that nothing is left in it). Linux only.
    """
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "catalog.json").write_text(json.dumps(catalog))
    tmp = folder / "tmp"
    tmp.mkdir()
    command = (
        f"ulimit -f {kib}; exec {sys.executable} -m tap_pardot_export "
        f"--config {folder / 'config.json'} --catalog {folder / 'catalog.json'}"
    )
    bash = shutil.which("bash") or "/bin/bash"
    env = {**os.environ, "TMPDIR": str(tmp)}
    proc = sp.run([bash, "-c", command], capture_output=True, text=True, env=env, timeout=120, check=False)
    return proc, tmp


def drain(proc: sp.Popen[str], timeout: float = 120) -> str:
    """The rest of a tap process's stdout (what ``readline`` buffered included), once it ended.

    ``communicate(timeout=...)`` reads the raw pipe and would skip the lines the text wrapper
    already holds after ``readline`` calls: rows emitted would look lost. A process still
    running after ``timeout`` is killed.
    """
    stdout = proc.stdout
    assert stdout is not None
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(stdout.read()), daemon=True)
    reader.start()
    reader.join(timeout)
    if reader.is_alive():
        proc.kill()
        reader.join(10)
    proc.wait(timeout=10)
    stdout.close()
    return box[0] if box else ""


def _dump(folder: str, name: str, obj: t.Any) -> str:
    path = os.path.join(folder, f"{name}.json")
    with open(path, "w") as fh:
        fh.write(json.dumps(obj))  # one C-encoded string: json.dump encodes a catalog in Python, piece by piece
    return path


_IN_PROCESS = threading.Lock()


def _run_in_process(argv: list[str], *, timeout: float, env: dict[str, str]) -> TapRun:
    """The CLI as ``python -m tap_pardot_export`` runs it, in a thread of this process.

    stdout and stderr are swapped for buffers (the tap writes bytes to ``sys.stdout.buffer``),
    logging is set up by the CLI itself and undone afterwards, and the exit code follows the
    interpreter's rules: ``SystemExit``'s code, or 1 after ``sys.excepthook`` for an error.
    Warnings the tap raises are replayed afterwards under pytest's filters, so a warning that
    is an error in pyproject.toml fails the test here too. The thread keeps the SDK from
    installing its SIGINT/SIGTERM handlers in the test process (it does so in the main thread
    only); tests about signals use a subprocess.
    """
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
    result: dict[str, int] = {}

    def main() -> None:
        hook = sys.excepthook
        try:
            # the CLI entry point: logging set-up, then the click command
            TapPardotExport.cli.main(args=argv, prog_name=TapPardotExport.name, standalone_mode=True)
        except SystemExit as exc:
            result["code"] = _exit_code(exc.code, err)
        except BaseException:
            (sys.excepthook if sys.excepthook is not hook else sys.__excepthook__)(*sys.exc_info())
            result["code"] = 1
        else:
            result["code"] = 0

    root = logging.getLogger()
    saved = (sys.stdout, sys.stderr, sys.excepthook, list(root.handlers), root.level, dict(os.environ))
    with _IN_PROCESS, warnings.catch_warnings(record=True) as caught, _no_capture_warnings(), _loggers_kept():
        sys.stdout, sys.stderr = out, err
        os.environ.update(env)
        try:
            worker = threading.Thread(target=main, name="tap-in-process", daemon=True)
            worker.start()
            worker.join(timeout)
        finally:
            sys.stdout, sys.stderr, sys.excepthook = saved[0], saved[1], saved[2]
            for handler in root.handlers[:]:
                if handler not in saved[3]:
                    root.removeHandler(handler)
            root.setLevel(saved[4])
            os.environ.clear()
            os.environ.update(saved[5])
            # as in a new process: this run's secrets are not the next run's to scrub (a finished
            # tap's sources die only when the garbage collector gets to it, and every line of
            # later runs would be scanned for every token issued so far)
            if not worker.is_alive():
                REDACTION.sources.clear()
    if worker.is_alive():
        msg = f"the tap did not finish within {timeout}s: {argv}"
        raise TimeoutError(msg)
    for w in caught:  # under pytest's filters again: "error" raises here
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    return TapRun(result["code"], _text(out), _text(err))


@contextlib.contextmanager
def _loggers_kept() -> t.Iterator[None]:
    """Every named logger's level, handlers and propagation as they were (a command quiets the tap's logger);
    a logger first made during the run is left at NOTSET."""

    def named() -> list[logging.Logger]:
        return [lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)]

    kept = {lg.name: (lg, lg.level, list(lg.handlers), lg.propagate, lg.disabled) for lg in named()}
    try:
        yield
    finally:
        for lg in named():
            _, level, handlers, propagate, disabled = kept.get(lg.name, (lg, logging.NOTSET, [], True, False))
            lg.setLevel(level)
            lg.handlers[:] = handlers
            lg.propagate, lg.disabled = propagate, disabled


@contextlib.contextmanager
def _no_capture_warnings() -> t.Iterator[None]:
    """Keep the SDK's CLI from routing warnings into logging, so they can be replayed."""
    real = logging.captureWarnings
    logging.captureWarnings = lambda capture: None
    try:
        yield
    finally:
        logging.captureWarnings = real


def _exit_code(code: object, err: t.TextIO) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=err)
    return 1


def _text(stream: io.TextIOWrapper) -> str:
    stream.flush()
    buffer = stream.buffer
    assert isinstance(buffer, io.BytesIO)
    return buffer.getvalue().decode("utf-8")


def select_streams(catalog: dict[str, t.Any], streams: t.Iterable[str]) -> dict[str, t.Any]:
    """A catalog of ``streams`` alone, each marked selected, from a discovered ``catalog`` (left as it was).

    The other entries are left out, as in a catalog written by hand: the SDK takes a stream
    missing from a catalog for one not selected. Reading and mapping the 35 entries of a whole
    catalog was a third of a small run's time; runs with a whole catalog are Meltano's (the
    end-to-end tier) and the tests that pass ``discover``'s answer as it is.
    """
    wanted = set(streams)
    kept = [copy.deepcopy(entry) for entry in catalog["streams"] if entry["tap_stream_id"] in wanted]
    for entry in kept:
        for md in entry["metadata"]:
            if md["breadcrumb"] == []:
                md["metadata"]["selected"] = True
    return {**catalog, "streams": kept}


def deselect_field(catalog: dict[str, t.Any], stream: str, name: str) -> dict[str, t.Any]:
    """Mark one field of ``stream`` not selected in a discovered catalog."""
    for entry in catalog["streams"]:
        if entry["tap_stream_id"] == stream:
            for md in entry["metadata"]:
                if md["breadcrumb"] == ["properties", name]:
                    md["metadata"]["selected"] = False
    return catalog


#: settings that let discovery read the account (without them it is offline: the catalog depends on the config only)
_CREDENTIALS = ("access_token", "client_id", "client_secret", "refresh_token")
#: offline catalogs by config, shared by the tests of a session (each gets its own copy)
_OFFLINE_CATALOGS: dict[str, str] = {}


def discover(config: dict[str, t.Any]) -> dict[str, t.Any]:
    """The catalog ``--discover`` writes for ``config``; an offline one is computed once per session."""
    offline = not any(config.get(k) for k in _CREDENTIALS)
    key = json.dumps(config, sort_keys=True, default=str) if offline else None
    if key is None or key not in _OFFLINE_CATALOGS:
        run = run_tap(config, args=["--discover"])
        assert run.returncode == 0, run.stderr
        if key is None:
            return t.cast("dict[str, t.Any]", json.loads(run.stdout))
        _OFFLINE_CATALOGS[key] = run.stdout
    return t.cast("dict[str, t.Any]", json.loads(_OFFLINE_CATALOGS[key]))


def created_fields(sb: Sandbox, since: int = 0) -> dict[int, list[str]]:
    """The ``fields`` of each export the sandbox created with an id above ``since``, as it received them."""
    with sb.state.lock:
        return {eid: list(e.spec.fields) for eid, e in sb.state.exports.items() if eid > since}


def last_export_id(sb: Sandbox) -> int:
    with sb.state.lock:
        return max(sb.state.exports, default=0)


def record_file(folder: Path, sb: Sandbox) -> Path:
    """The export record of ``sb``'s business unit in ``folder``."""
    return folder / f"{sb.config.business_unit_id}.json"


def recorded_ids(folder: Path, sb: Sandbox) -> set[int]:
    """The export ids the record of ``sb``'s business unit in ``folder`` holds."""
    path = record_file(folder, sb)
    return {e["id"] for e in json.loads(path.read_text())["exports"]} if path.exists() else set()


def block_record(folder: Path, sb: Sandbox) -> Path:
    """A record folder whose file cannot be written: a folder (not empty) stands where it goes. Root too fails."""
    (record_file(folder, sb) / "in-the-way").mkdir(parents=True)
    return folder


def iso(ts: dt.datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def expected_rows(
    sb: Sandbox,
    stream: str,
    start: dt.datetime,
    end: dt.datetime,
    *,
    field_name: str | None = None,
    include_deleted: bool = False,
) -> dict[int, dict[str, t.Any]]:
    """The sandbox's ground truth: rows of ``stream`` with ``start <= t < end``, typed as the tap emits."""
    obj: ObjectData = sb.dataset.objects[stream]
    fname = field_name or FILTER_FIELD[stream]
    fn = obj.times[fname][0]
    lo, hi = int(start.timestamp()), int(end.timestamp())
    out = {}
    for i in range(obj.count):
        ts = fn(i)
        if not (lo <= ts < hi):
            continue
        if obj.is_deleted is not None and not include_deleted and obj.is_deleted(i):
            continue
        row = obj.typed_row(i)  # columns are the API's names in snake_case (the sandbox's own rule)
        out[row["id"]] = {snake(k): (iso(v) if isinstance(v, dt.datetime) else v) for k, v in row.items()}
    return out


def ambiguous_local(value_utc: str, zone: str) -> bool:
    """True when the instant falls in a repeated local hour (clocks going back)."""
    d = dt.datetime.fromisoformat(value_utc).astimezone(ZoneInfo(zone))
    other = d.replace(fold=1 - d.fold)
    return other.utcoffset() != d.utcoffset()


def assert_rows_match(sb: Sandbox, stream: str, got: list[dict], expected: dict[int, dict], zone: str) -> None:
    """Same ids, same values; datetimes in a repeated local hour may be read as their first occurrence."""
    by_id: dict[int, dict] = {}
    for rec in got:
        by_id[rec["id"]] = rec
    missing = sorted(set(expected) - set(by_id))
    extra = sorted(set(by_id) - set(expected))
    assert not missing, f"{stream}: {len(missing)} rows lost, e.g. {missing[:5]}"
    assert not extra, f"{stream}: {len(extra)} rows outside the range, e.g. {extra[:5]}"
    obj = sb.dataset.objects[stream]
    kinds = {snake(f.name): f.kind for f in obj.fields}
    for rid, exp in expected.items():
        rec = by_id[rid]
        for k, v in exp.items():
            if rec.get(k) == v:
                continue
            if kinds.get(k) == DATETIME and v is not None and ambiguous_local(v, zone):
                first = dt.datetime.fromisoformat(v) - dt.timedelta(hours=1)
                if rec.get(k) == iso(first):
                    continue
            raise AssertionError(f"{stream} id {rid} field {k}: tap emitted {rec.get(k)!r}, sandbox has {v!r}")


# -- PostgreSQL: a throwaway cluster for the loaders' tests ------------------------------------


def postgres_bindir() -> Path | None:
    """The folder of the machine's PostgreSQL server binaries (initdb, pg_ctl), if installed."""
    found = shutil.which("pg_config")
    if found:
        with contextlib.suppress(OSError, sp.SubprocessError):
            out = sp.run([found, "--bindir"], capture_output=True, text=True, check=True, timeout=30)
            folder = Path(out.stdout.strip())
            if (folder / "initdb").exists():
                return folder
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(candidates[-1]).parent if candidates else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """A throwaway PostgreSQL cluster on loopback, owned by ``postgres`` when run as root."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = os.geteuid() == 0
        self.folder = Path(tempfile.mkdtemp(prefix="tap-pardot-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        if self.root:
            shutil.chown(self.folder, "postgres", "postgres")
            self.folder.chmod(0o700)

    def _run(self, *argv: str) -> sp.CompletedProcess[str]:
        command = [str(self.bindir / argv[0]), *argv[1:]]
        if self.root:
            command = ["runuser", "-u", "postgres", "--", *command]
        proc = sp.run(command, capture_output=True, text=True, timeout=120, check=False, cwd=self.folder)
        assert proc.returncode == 0, f"{argv[0]} failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        return proc

    def start(self) -> Cluster:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"), "-w", "start")
        return self

    def stop(self) -> None:
        with contextlib.suppress(AssertionError, sp.SubprocessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)

    def query(self, sql: str, *params: t.Any) -> list[tuple[t.Any, ...]]:
        import psycopg  # installed with target-postgres (the loaders group)

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres") as conn:
            return list(conn.execute(sql, params).fetchall())
