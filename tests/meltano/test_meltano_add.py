"""Adding the extractor to one's own Meltano project from a local path, as the README says.

Nothing is downloaded: the plugin runs the tap already installed in this environment.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import typing as t
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tap_pardot_export.spec import SPECS

ROOT = Path(__file__).resolve().parents[2]
HUB_YML = ROOT / "meltano-hub" / "extractors" / "tap-pardot-export" / "tap-pardot-export.yml"
BIN = Path(sys.executable).parent
MELTANO = shutil.which("meltano", path=str(BIN))
TAP = BIN / "tap-pardot-export"
ADD = ["add", "--plugin-type", "extractor", "tap-pardot-export", "--from-ref"]


def _meltano_in(folder: Path) -> t.Callable[..., subprocess.CompletedProcess[str]]:
    """A function running meltano in ``folder``, offline, its database in the folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_PARDOT_EXPORT_")}
    env |= {
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "MELTANO_DATABASE_URI": f"sqlite:///{folder}/meltano.db",
        # nothing may be downloaded: an install attempt fails instead of reaching a package index
        "PIP_NO_INDEX": "1",
        "UV_OFFLINE": "1",
    }

    def run(*args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        assert MELTANO is not None
        return subprocess.run(
            [MELTANO, *args],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env={**env, **(extra_env or {})},
        )

    return run


@pytest.fixture(scope="module")
def added(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A fresh Meltano project, then ``meltano add ... --from-ref`` in it: done once, copied by each test."""
    if MELTANO is None:
        pytest.skip("meltano is installed by the dev dependency group (scripts/setup)")
    folder = tmp_path_factory.mktemp("meltano-add")
    (folder / "meltano.yml").write_text(
        yaml.safe_dump(
            {
                "project_id": "test-add-tap-pardot-export",
                "default_environment": "dev",
                "environments": [{"name": "dev"}],
                "send_anonymous_usage_stats": False,
            }
        )
    )
    return folder, _meltano_in(folder)(*ADD, str(HUB_YML), "--no-install")


@dataclass
class Project:
    """A project the extractor was added to: ``project(*args)`` runs meltano in it."""

    path: Path  # the project's folder
    added: subprocess.CompletedProcess[str]  # the ``meltano add`` run

    def __call__(self, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return _meltano_in(self.path)(*args, extra_env=extra_env)


@pytest.fixture
def project(tmp_path: Path, added: tuple[Path, subprocess.CompletedProcess[str]]) -> Project:
    """A copy of the project the extractor was added to."""
    folder, proc = added
    shutil.copytree(folder, tmp_path, dirs_exist_ok=True)
    return Project(tmp_path, proc)


def _use_installed_tap(path: Path) -> dict[str, t.Any]:
    """Point the added plugin at this environment's tap: no pip_url, so Meltano never installs it."""
    data = yaml.safe_load((path / "meltano.yml").read_text())
    ext = data["plugins"]["extractors"][0]
    assert ext["pip_url"] == "tap-pardot-export"
    del ext["pip_url"]
    ext["executable"] = str(TAP)
    (path / "meltano.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    return t.cast("dict[str, t.Any]", ext)


def test_the_readme_shows_the_meltano_4_commands():
    readme = (ROOT / "README.md").read_text()
    assert "meltano config tap-pardot-export set" not in readme  # Meltano 3 spelling, refused by Meltano 4
    assert "meltano config set tap-pardot-export business_unit_id" in readme
    assert "meltano " + " ".join(ADD) in readme
    assert "--no-install" in readme


@pytest.mark.end_to_end
def test_add_from_a_local_path_then_set_objects_and_booleans(project):
    added = project.added
    assert added.returncode == 0, added.stderr[-3000:]
    _use_installed_tap(project.path)
    maps = {"prospect": {"email": "__NULL__"}}
    for key, value in (("stream_maps", json.dumps(maps)), ("flattening_enabled", "true"), ("window_days", "45")):
        proc = project("config", "set", "tap-pardot-export", key, value)
        assert proc.returncode == 0, proc.stderr[-2000:]
    config = yaml.safe_load((project.path / "meltano.yml").read_text())["plugins"]["extractors"][0]["config"]
    assert config == {"stream_maps": maps, "flattening_enabled": True, "window_days": 45}
    listed = project("config", "list", "tap-pardot-export", "--all")
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "stream_maps [env: TAP_PARDOT_EXPORT_STREAM_MAPS]" in listed.stdout
    assert "deprecat" not in (listed.stdout + listed.stderr).lower()
    dumped = project("invoke", "--dump=config", "tap-pardot-export")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    assert json.loads(dumped.stdout)["stream_maps"] == maps
    discovered = project("invoke", "tap-pardot-export", "--discover")
    assert discovered.returncode == 0, discovered.stderr[-2000:]
    assert "Installing" not in discovered.stderr
    assert len(json.loads(discovered.stdout)["streams"]) == len(SPECS)


@pytest.mark.end_to_end
def test_stream_maps_set_through_meltano_reach_the_tap(project, fresh_sandbox):
    sb = fresh_sandbox(rows_per_file=500)
    assert project.added.returncode == 0, project.added.stderr[-3000:]
    _use_installed_tap(project.path)
    maps = {"prospect": {"email": "__NULL__"}, "__else__": "__NULL__"}
    assert project("config", "set", "tap-pardot-export", "stream_maps", json.dumps(maps)).returncode == 0
    cfg = sb.tap_config(start_date="2024-03-01T00:00:00+00:00", end_date="2024-04-01T00:00:00+00:00", window_days=31)
    env = {f"TAP_PARDOT_EXPORT_{k.upper()}": str(v) for k, v in cfg.items() if not isinstance(v, float)}
    select = project("config", "set", "tap-pardot-export", "_select", '["prospect.*"]')
    assert select.returncode == 0, select.stderr[-2000:]
    # the sandbox's fast polling (fractions of a second) is allowed on loopback; Meltano's integer kind
    # takes whole numbers from the environment, so they go into meltano.yml
    data = yaml.safe_load((project.path / "meltano.yml").read_text())
    data["plugins"]["extractors"][0]["config"] |= {"poll_interval": 0.05, "max_poll_interval": 0.2}
    (project.path / "meltano.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    proc = project("invoke", "tap-pardot-export", extra_env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [m["record"] for m in map(json.loads, proc.stdout.splitlines()) if m["type"] == "RECORD"]
    assert records
    assert all("email" not in r and "id" in r for r in records)
    assert sb.config.client_secret not in proc.stdout + proc.stderr
    assert dt.datetime.fromisoformat(max(r["updated_at"] for r in records)) < dt.datetime.fromisoformat(cfg["end_date"])
