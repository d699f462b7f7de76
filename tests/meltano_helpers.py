"""Meltano projects of the tests' own: this repository's extractor run from this venv, nothing downloaded.

Shared by the Meltano tests (``tests/meltano/``), the README's commands (``tests/docs/``) and the
entry points' refusals under ``meltano invoke`` (``tests/settings/``): the programs, the marks of a
test that runs Meltano, a project whose loader is the tests' JSON Lines target (or target-postgres),
the settings as Meltano passes them, and ``meltano run`` interrupted with Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import pytest
import yaml

if t.TYPE_CHECKING:
    from pardot_export_sandbox import Sandbox

    from tests.helpers import Cluster

#: the repository's root
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MELTANO = shutil.which("meltano", path=str(BIN))
TAP = shutil.which("tap-pardot-export", path=str(BIN))
#: marks of a test that runs Meltano: the end-to-end tier (``scripts/test -m end_to_end``), skipped
#: where Meltano or the tap's script is not installed
MELTANO_MARKS = [
    pytest.mark.end_to_end,
    pytest.mark.skipif(
        MELTANO is None or TAP is None, reason="meltano and the tap's script come with the dev group (scripts/setup)"
    ),
]


def needs_meltano(test: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """A test that runs Meltano (see :data:`MELTANO_MARKS`)."""
    for mark in MELTANO_MARKS:
        test = mark(test)
    return test


def meltano_env() -> dict[str, str]:
    """The environment of a test's Meltano: nothing the caller exported leaks in, and nothing can be downloaded."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAP_PARDOT_EXPORT_", "MELTANO_"))}
    env["MELTANO_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    # every connection but to loopback goes to a port nothing listens on
    dead = "http://127.0.0.1:9"
    env.update(HTTP_PROXY=dead, HTTPS_PROXY=dead, ALL_PROXY=dead, NO_PROXY="127.0.0.1,localhost")
    env.update(http_proxy=dead, https_proxy=dead, all_proxy=dead, no_proxy="127.0.0.1,localhost")
    return env


class Project:
    """A Meltano project in a temporary folder: this repo's extractor, the tests' JSONL loader."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        target = folder / "target-jsonl"
        target.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{ROOT / "tests" / "jsonl_target.py"}" "$@"\n')
        target.chmod(0o755)
        extractor = yaml.safe_load((ROOT / "meltano.yml").read_text())["plugins"]["extractors"][0]
        extractor.pop("pip_url", None)  # run from this venv: nothing to install
        extractor["executable"] = TAP
        # fractions: Meltano reads numeric settings from the environment as integers, from meltano.yml as they are
        extractor["config"] = {"poll_interval": 0.05, "max_poll_interval": 0.2}
        loader = {
            "name": "target-jsonl",
            "namespace": "target_jsonl",
            "executable": str(target),
            "settings": [{"name": "destination_path", "kind": "string"}],
        }
        project = {
            "project_id": "tap-pardot-export-tests",
            "send_anonymous_usage_stats": False,
            "default_environment": "dev",
            "environments": [{"name": "dev"}],
            "plugins": {"extractors": [extractor], "loaders": [loader]},
        }
        (folder / "meltano.yml").write_text(yaml.safe_dump(project, sort_keys=False))
        self.env = meltano_env()

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        assert MELTANO is not None
        return subprocess.run(
            [MELTANO, *args],
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env={**self.env, **(env or {})},
        )


#: settings a test's Meltano project does not take from the environment: the API version stays at its
#: default, and the poll intervals are fractions, set in the project's ``meltano.yml`` (Meltano reads a
#: number from the environment as an integer)
NOT_FROM_ENV = ("api_version", "poll_interval", "max_poll_interval")


def tap_env(cfg: dict[str, t.Any]) -> dict[str, str]:
    """The sandbox's settings as Meltano reads them from the environment (but :data:`NOT_FROM_ENV`)."""
    return {f"TAP_PARDOT_EXPORT_{k.upper()}": str(v) for k, v in cfg.items() if k not in NOT_FROM_ENV}


# -- target-postgres --------------------------------------------------------------------------------

TARGET_POSTGRES = Path(sys.executable).parent / "target-postgres"


def loader_project(folder: Path, cluster: Cluster) -> Project:
    """A Meltano project: this repository's extractor, and target-postgres 0.8.1 as installed by scripts/setup."""
    assert TARGET_POSTGRES.exists(), "target-postgres is installed by scripts/setup (the loaders dependency group)"
    project = Project(folder)
    data = yaml.safe_load((folder / "meltano.yml").read_text())
    data["plugins"]["loaders"] = [
        {
            "name": "target-postgres",
            "variant": "meltanolabs",
            "namespace": "target_postgres",
            "executable": str(TARGET_POSTGRES),
            "settings": [
                *({"name": n} for n in ("host", "port", "user", "database", "default_target_schema")),
                {"name": "password", "kind": "password"},
            ],
            "config": {
                "host": "127.0.0.1",
                "port": cluster.port,
                "user": "postgres",
                "password": "trusted-on-loopback",  # the cluster trusts local connections; the loader wants one
                "database": "postgres",
                "default_target_schema": "pardot",
            },
        }
    ]
    (folder / "meltano.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    return project


# -- Ctrl-C under `meltano run` -------------------------------------------------------------------

#: Meltano, the tap and the target must all be gone this long after the Ctrl-C
BOUND = 60.0


class Interrupted:
    """``meltano run`` in a process group of its own, as a terminal runs it, interrupted with Ctrl-C."""

    def __init__(self, project: Project, env: dict[str, str], target: str = "target-jsonl") -> None:
        assert MELTANO is not None
        self.log = (project.folder / "interrupted.log").open("w+")
        self.proc = subprocess.Popen(
            [MELTANO, "run", "tap-pardot-export", target],
            cwd=project.folder,
            env={**project.env, **env, "PYTHONFAULTHANDLER": "1"},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def ctrl_c(self) -> str:
        """SIGINT to the process group; the run's output once every process of it ended."""
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout=BOUND)
        except subprocess.TimeoutExpired:
            raise AssertionError(self.hung()) from None
        until(lambda: not group_alive(self.proc.pid), "the tap and the target ended with Meltano")
        return self.output()

    def hung(self) -> str:
        """Why the run did not end: its processes, and each one's Python stacks (then all are killed).

        Every process of the run has ``PYTHONFAULTHANDLER`` set, so SIGABRT makes it print its
        threads' stacks: the tap's and the target's reach the log through Meltano, so they go first.
        """
        left = processes(self.proc.pid)
        for pid in sorted(left, key=lambda p: p == self.proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGABRT)
            time.sleep(2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        listing = "\n".join(f"{pid}: {args}" for pid, args in left.items())
        output = self.output()[-12000:]
        return f"meltano run still running {BOUND:.0f}s after the Ctrl-C; its processes:\n{listing}\n{output}"

    def output(self) -> str:
        """What the run printed so far (the log is closed once read)."""
        with self.log:
            self.log.seek(0)
            return self.log.read()


def tap_lines(output: str) -> list[str]:
    """The lines of a ``meltano run``'s output that Meltano tags as the tap's.

    Ctrl-C reaches every process of the run: a target still importing its modules may print its
    own traceback, which says nothing about the tap.
    """
    lines = [line for line in output.splitlines() if "] tap-pardot-export " in line]
    assert lines, output[-3000:]
    return lines


def assert_tap_clean(output: str) -> None:
    """No traceback in the tap's lines (the target's own are the target's)."""
    assert not [line for line in tap_lines(output) if "Traceback" in line], output[-3000:]


def processes(pgid: int) -> dict[int, str]:
    """The processes of group ``pgid``, by pid: the command line, and where in the kernel each thread waits."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:  # after the command's name: state, ppid, pgrp
                args = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                waits = sorted(waiting(task) for task in (stat.parent / "task").iterdir())
                found[int(stat.parent.name)] = f"{args.strip()}\n    threads waiting in: {', '.join(waits)}"
    return found


def waiting(task: Path) -> str:
    """A thread's state and kernel wait channel (``pipe_write``: blocked writing to a full pipe)."""
    with contextlib.suppress(OSError):
        state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
        return f"{state}:{(task / 'wchan').read_text() or '-'}"
    return "?"


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def until(predicate: t.Callable[[], bool], what: str, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, f"not seen within {timeout:.0f}s: {what}"
        time.sleep(0.05)


def request(sb: Sandbox, export_id: int) -> tuple[t.Any, ...]:
    """What an export asked for: the same request twice is the same export twice."""
    s = sb.state.exports[export_id].spec
    return (s.obj.name, s.procedure.name, s.after, s.before, tuple(s.fields), s.deleted, s.prospect_deleted)


def live(sb: Sandbox, ids: set[int]) -> set[int]:
    with sb.state.lock:
        return {
            i
            for i in ids
            if sb.state.exports[i].state in ("Waiting", "Processing")
            or (sb.state.exports[i].state == "Complete" and not sb.state.is_expired(sb.state.exports[i]))
        }
