"""Meltano as users run it: config list, invoke --discover, ``meltano run`` into a JSONL target, the check command.

The Meltano tests use a project of their own in a temporary folder (``tests/meltano_helpers.py``),
whose extractor is this repository's definition (meltano.yml) run from this venv, and whose loader
is ``tests/jsonl_target.py`` (an SDK target): nothing is installed or downloaded, no ``meltano
install`` runs.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tap_pardot_export.settings.schema import settings_schema
from tap_pardot_export.spec import SPECS
from tests.helpers import STREAMS, expected_rows, run_tap
from tests.meltano_helpers import Project, needs_meltano, tap_env

UTC = dt.timezone.utc
#: the one warning the tap is known to print; remove when tap_pardot_export imports
#: TypeConformanceLevel from singer_sdk.helpers.conform (issue 9, part 3)
KNOWN_WARNING = "Importing TypeConformanceLevel from singer_sdk.helpers._typing is deprecated"


def about_settings() -> set[str]:
    run = run_tap({}, args=["--about", "--format=json"])
    assert run.returncode == 0, run.stderr
    return set(json.loads(run.stdout)["settings"]["properties"])


# -- Meltano ----------------------------------------------------------------------------------


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


@needs_meltano
def test_meltano_run_into_a_jsonl_target_against_the_sandbox(meltano, fresh_sandbox):
    sb = fresh_sandbox(rows_per_file=500)
    cfg = sb.tap_config(window_days=200)  # two windows per stream
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
    proc = meltano("invoke", "tap-pardot-export:check", env=tap_env(cfg))
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = proc.stdout + proc.stderr
    assert "all checks passed" in report
    assert "prospect: may export" in report
    assert sb.config.client_secret not in report
