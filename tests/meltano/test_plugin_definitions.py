"""The plugin definitions in step with the tap (meltano.yml, the Hub file, the README's settings table); the release.

``scripts/plugin_definitions.py`` writes the first three from the settings schema; these checks
need no Meltano and always run. The release workflow builds the tap (not the sandbox) and
publishes it with trusted publishing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from tap_pardot_export.settings.messages import SECRETS
from tests.helpers import run_tap
from tests.settings_helpers import full_schema

ROOT = Path(__file__).resolve().parents[2]


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


def test_meltano_definitions_declare_every_setting_with_its_kind():
    expected_kinds = {
        "stream_maps": "object",
        "stream_map_config": "object",
        "faker_config": "object",
        "flattening_enabled": "boolean",
        "flattening_max_depth": "integer",
        "batch_config": "object",
        "start_date": "date_iso8601",
        "custom_fields": "object",
        "stream_options": "object",
        "download_hosts": "array",
        "infer_timezone": "boolean",
        "api_version": "integer",  # an integer enum as "options" refuses "4" from the environment
    }
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    hub = yaml.safe_load(
        (ROOT / "meltano-hub" / "extractors" / "tap-pardot-export" / "tap-pardot-export.yml").read_text()
    )
    assert "version" not in project  # deprecated by Meltano 4: every command would warn
    for definitions in (project["plugins"]["extractors"][0]["settings"], hub["settings"]):
        by_name = {s["name"]: s for s in definitions}
        assert set(by_name) == set(full_schema()["properties"])
        for name, kind in expected_kinds.items():
            assert by_name[name]["kind"] == kind, name
        for name in SECRETS:
            assert by_name[name]["sensitive"] is True
            assert by_name[name]["kind"] == "string"  # `kind: password` is deprecated in Meltano 4
    assert hub["pip_url"] == "tap-pardot-export"
    assert "repo" not in hub or hub["repo"].startswith("https://")


def test_release_workflow_builds_the_tap_and_publishes_with_trusted_publishing():
    text = (ROOT / ".github" / "workflows" / "release.yml").read_text()
    flow = yaml.safe_load(text)
    assert flow[True]["push"]["tags"] == ["v*"]  # YAML reads the key `on` as true
    jobs = flow["jobs"]
    publish = next(j for j in jobs.values() if any("pypi-publish" in str(s.get("uses", "")) for s in j["steps"]))
    assert publish["permissions"]["id-token"] == "write"
    assert "password" not in json.dumps(publish)
    build_lines = [line for s in jobs["build"]["steps"] for line in s.get("run", "").splitlines() if "-m build" in line]
    assert build_lines == ["python -m build --outdir dist ."]  # the repository root: the tap, not ./sandbox
    assert "://" not in text  # no host named: the publish action knows where to publish
