"""Meltano as users run it: config list, invoke --discover, and the demo's meltano run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tap_pardot_export.settings import settings_schema
from tap_pardot_export.tap import TapPardotExport

ROOT = Path(__file__).resolve().parent.parent
MELTANO = shutil.which("meltano", path=str(Path(sys.executable).parent)) or shutil.which("meltano")
pytestmark = pytest.mark.skipif(MELTANO is None, reason="meltano is installed by the dev extra (scripts/setup)")


def meltano(*args: str, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MELTANO, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false", **env},
    )


@pytest.fixture(scope="module")
def melt_env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("meltano")
    env = {"MELTANO_DATABASE_URI": f"sqlite:///{tmp}/meltano.db"}
    # strip any TAP_PARDOT_EXPORT_* the caller may have exported
    for k in list(os.environ):
        if k.startswith("TAP_PARDOT_EXPORT_"):
            env[k] = ""
    proc = meltano("install", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return env, tmp


def test_plugin_definitions_are_in_step_with_the_config_schema():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "plugin_definitions.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_config_list_shows_every_setting(melt_env):
    env, _ = melt_env
    proc = meltano("config", "list", "tap-pardot-export", "--all", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    listed = {line.split(" ", 1)[0] for line in proc.stdout.splitlines() if "[env: TAP_PARDOT_EXPORT_" in line}
    schema = settings_schema()
    TapPardotExport.append_builtin_config(schema)  # stream_maps, flattening_*, batch_config, ...
    assert listed == set(schema["properties"])


def test_invoke_discover_needs_no_credentials(melt_env):
    env, _ = melt_env
    proc = meltano("invoke", "tap-pardot-export", "--discover", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    catalog = json.loads(proc.stdout)
    assert len(catalog["streams"]) == 6


def test_meltano_run_into_target_jsonl_against_the_sandbox(melt_env, fresh_sandbox):
    env, tmp = melt_env
    sb = fresh_sandbox(rows_per_file=500)
    cfg = sb.tap_config(window_days=120)
    out = tmp / "out"
    run_env = {**env, "TARGET_JSONL_DESTINATION_PATH": str(out)}
    for key in (
        "api_url",
        "login_url",
        "business_unit_id",
        "client_id",
        "client_secret",
        "refresh_token",
        "timezone",
        "start_date",
        "end_date",
        "window_days",
    ):
        run_env[f"TAP_PARDOT_EXPORT_{key.upper()}"] = str(cfg[key])
    out.mkdir()
    proc = meltano("run", "tap-pardot-export", "target-jsonl", env=run_env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    counts = {p.stem: sum(1 for _ in p.open()) for p in out.glob("*.jsonl")}
    import datetime as dt

    from helpers import expected_rows

    utc = dt.timezone.utc
    for stream in (
        "prospect",
        "visitor",
        "visitor_activity",
        "list_membership",
        "prospect_account",
        "external_activity",
    ):
        exp = expected_rows(sb, stream, dt.datetime(2024, 1, 1, tzinfo=utc), dt.datetime(2025, 1, 1, tzinfo=utc))
        assert counts.get(stream) == len(exp), (stream, counts)
    assert sb.config.client_secret not in proc.stdout + proc.stderr


def test_readme_settings_table_matches_about():
    about = subprocess.run(
        [sys.executable, "-m", "tap_pardot_export", "--about", "--format=markdown"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    table = about[about.index("| Setting |") :].split("\n\n")[0].strip()
    readme = (ROOT / "README.md").read_text()
    inside = readme.split("<!-- settings:start -->")[1].split("<!-- settings:end -->")[0].strip()
    assert inside == table
