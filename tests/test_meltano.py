"""Meltano as users run it: config list, invoke --discover, and ``meltano run`` into a JSONL target.

The Meltano tests use a project of their own in a temporary folder, whose extractor is this
repository's definition (meltano.yml) run from this venv, and whose loader is
``tests/jsonl_target.py`` (an SDK target): nothing is installed or downloaded, no
``meltano install`` runs. The checks on the plugin definitions and the README do not need
Meltano and always run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
import yaml

from tap_pardot_export.settings.schema import settings_schema
from tap_pardot_export.spec import SPECS
from tests.helpers import STREAMS, expected_rows, run_tap

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


UTC = dt.timezone.utc
#: the one warning the tap is known to print; remove when tap_pardot_export imports
#: TypeConformanceLevel from singer_sdk.helpers.conform (issue 9, part 3)
KNOWN_WARNING = "Importing TypeConformanceLevel from singer_sdk.helpers._typing is deprecated"


def about_settings() -> set[str]:
    run = run_tap({}, args=["--about", "--format=json"])
    assert run.returncode == 0, run.stderr
    return set(json.loads(run.stdout)["settings"]["properties"])


def test_plugin_definitions_are_in_step_with_the_config_schema():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "plugin_definitions.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_readme_settings_table_matches_about():
    run = run_tap({}, args=["--about", "--format=markdown"])
    assert run.returncode == 0, run.stderr
    about = run.stdout
    table = about[about.index("| Setting |") :].split("\n\n")[0].strip()
    readme = (ROOT / "README.md").read_text()
    inside = readme.split("<!-- settings:start -->")[1].split("<!-- settings:end -->")[0].strip()
    assert inside == table


# -- Meltano ----------------------------------------------------------------------------------


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


@pytest.fixture(scope="module")
def meltano(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return Project(tmp_path_factory.mktemp("meltano"))


@needs_meltano
def test_config_list_shows_every_setting(meltano):
    proc = meltano("config", "list", "tap-pardot-export", "--all")
    assert proc.returncode == 0, proc.stderr[-2000:]
    listed = {line.split(" ", 1)[0] for line in proc.stdout.splitlines() if "[env: TAP_PARDOT_EXPORT_" in line}
    assert set(settings_schema()["properties"]) <= listed, "a setting of the tap is not declared to Meltano"
    assert listed <= about_settings(), "Meltano declares a setting the tap does not have"


@needs_meltano
def test_invoke_discover_needs_no_credentials(meltano):
    proc = meltano("invoke", "tap-pardot-export", "--discover")
    assert proc.returncode == 0, proc.stderr[-2000:]
    catalog = json.loads(proc.stdout)
    assert sorted(s["tap_stream_id"] for s in catalog["streams"]) == sorted(SPECS)


def tap_env(cfg: dict[str, t.Any]) -> dict[str, str]:
    """The sandbox's settings as Meltano reads them from the environment (api_version is left at its default)."""
    return {f"TAP_PARDOT_EXPORT_{k.upper()}": str(v) for k, v in cfg.items() if k != "api_version"}


@needs_meltano
def test_meltano_run_into_a_jsonl_target_against_the_sandbox(meltano, fresh_sandbox):
    sb = fresh_sandbox(rows_per_file=500)
    cfg = sb.tap_config(window_days=200)  # two windows per stream
    del cfg["poll_interval"], cfg["max_poll_interval"]  # set in the project's meltano.yml
    out = meltano.folder / "out"
    proc = meltano(
        "run", "tap-pardot-export", "target-jsonl", env={**tap_env(cfg), "TARGET_JSONL_DESTINATION_PATH": str(out)}
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    start, end = dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2025, 1, 1, tzinfo=UTC)
    for stream in STREAMS:
        path = out / f"{stream}.jsonl"
        ids = [json.loads(line)["id"] for line in path.read_text().splitlines()] if path.exists() else []
        expected = expected_rows(sb, stream, start, end)
        assert len(ids) == len(set(ids)) == len(expected) and set(ids) == set(expected), stream
    assert sb.config.client_secret not in proc.stdout + proc.stderr
    warned = [line for line in proc.stderr.splitlines() if "Warning" in line and KNOWN_WARNING not in line]
    assert not warned, f"the run printed warnings: {warned[:3]}"


@needs_meltano
def test_meltano_check_command_reports_on_the_account(meltano, fresh_sandbox):
    """`meltano invoke tap-pardot-export:check`: the settings reach the check through the environment."""
    sb = fresh_sandbox()
    cfg = sb.tap_config()
    del cfg["poll_interval"], cfg["max_poll_interval"]  # set in the project's meltano.yml
    proc = meltano("invoke", "tap-pardot-export:check", env=tap_env(cfg))
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = proc.stdout + proc.stderr
    assert "all checks passed" in report
    assert "prospect: may export" in report
    assert sb.config.client_secret not in report
