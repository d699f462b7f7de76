"""Every entry point refuses a bad setting the same way: its lines, exit 1, never a traceback (issue 19.2).

Each class of bad setting (type, range, enum, pattern, format, cross-field, zone name, a file or a
value that is not JSON, a secret given as a number) is given to each entry point (discover, sync,
check, test, list-exports, cancel-exports, about with a config), in this process (the real
command line), and the zone typo and two others under ``meltano invoke`` for discovery and a sync.
What is missing (credentials, business_unit_id, start_date, timezone) matters only where it is
needed: discovery and ``--about`` go on without it.
"""

from __future__ import annotations

import json
import logging
import tempfile
import typing as t

import pytest
import yaml

from tests.helpers import TapRun, _dump, _run_in_process
from tests.meltano_helpers import Project, needs_meltano

#: a config every entry point takes; nothing listens on its hosts (the runs stop before any call)
GOOD: dict[str, t.Any] = {
    "business_unit_id": "0Uv5e0000000001AAA",
    "client_id": "entry-client-id",
    "client_secret": "entry-client-secret-1f9a",
    "refresh_token": "entry-refresh-token",
    "api_url": "http://127.0.0.1:9",
    "login_url": "http://127.0.0.1:9",
    "start_date": "2024-01-01",
    "timezone": "America/New_York",
}

#: class of bad setting -> (settings changed, a word the error line must hold)
BAD: dict[str, tuple[dict[str, t.Any], str]] = {
    "type": ({"max_concurrency": "two"}, "max_concurrency must be a whole number"),
    "range": ({"max_concurrency": 9}, "max_concurrency 9 is out of range"),
    "enum": ({"api_version": 5}, "api_version 5 is not allowed"),
    "pattern": ({"business_unit_id": "12345"}, "business_unit_id is malformed"),
    "format": ({"start_date": "2024-13-45"}, "start_date '2024-13-45' is not an ISO 8601 date"),
    "cross-field": ({"end_date": "2023-06-01"}, "end_date (2023-06-01) must be after start_date"),
    "zone name": ({"timezone": "America/New_Yrok"}, "timezone 'America/New_Yrok' is not an IANA time zone name"),
    "value not JSON": ({"stream_options": '{"prospect": '}, "stream_options must be an object, not a string"),
    "secret as a number": ({"client_secret": 1234}, "client_secret must be a string, not a number (value not shown)"),
}

ENTRY_POINTS: dict[str, list[str]] = {
    "discover": ["--discover"],
    "sync": [],
    "check": ["--check"],
    "test": ["--test"],
    "list-exports": ["--list-exports"],
    "cancel-exports": ["--cancel-exports"],
    "about": ["--about"],
}


@pytest.fixture(autouse=True)
def _log_level_restored() -> t.Iterator[None]:
    """--check and the queue's commands quiet the tap's logger (a process of their own); this process goes on."""
    logger = logging.getLogger("tap-pardot-export")
    level = logger.level
    yield
    logger.setLevel(level)


def run_tap(config: dict[str, t.Any], args: list[str], env: dict[str, str] | None = None) -> TapRun:
    """The tap's real command line in this process; its output is not parsed (a refusal writes no message)."""
    with tempfile.TemporaryDirectory(prefix="tap-entry-") as tmp:
        return _run_in_process(["--config", _dump(tmp, "config", config), *args], timeout=120, env=env or {})


def assert_refused(run: t.Any, expected: str) -> None:
    text = run.stdout + run.stderr
    assert run.returncode == 1, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    assert expected in text, text[-3000:]
    assert "entry-client-secret-1f9a" not in text


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("kind", BAD)
def test_each_entry_point_refuses_each_class_of_bad_setting(entry, kind):
    changed, expected = BAD[kind]
    run = run_tap({**GOOD, **changed}, args=ENTRY_POINTS[entry])
    assert_refused(run, expected)
    if entry != "check":  # the check prints its report (FAIL settings: ...); the others, the verdict
        assert "Config validation failed: fix the setting(s) named above" in run.stderr


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_a_config_file_that_is_not_json_is_named(entry, tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"timezone": "UTC",')
    run = run_tap({}, args=[*ENTRY_POINTS[entry], "--config", str(path)])
    text = run.stdout + run.stderr
    assert run.returncode != 0, text
    assert "Traceback" not in text
    assert "is not valid JSON" in text


@pytest.mark.parametrize("entry", ["check", "list-exports", "cancel-exports"])
def test_a_setting_from_the_environment_that_is_not_json_is_named(entry):
    """Meltano's plugin commands read their settings from the environment (``--config ENV``)."""
    env = {f"TAP_PARDOT_EXPORT_{k.upper()}": str(v) for k, v in GOOD.items()}
    env["TAP_PARDOT_EXPORT_STREAM_OPTIONS"] = '{"prospect": '
    run = run_tap({}, args=[*ENTRY_POINTS[entry], "--config", "ENV"], env=env)
    assert_refused(run, "stream_options must be an object, not a string")


@pytest.mark.parametrize("entry", ["discover", "about"])
def test_what_is_missing_matters_only_where_it_is_needed(entry):
    run = run_tap({"window_days": 30}, args=ENTRY_POINTS[entry])
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Config validation failed" not in run.stderr


@pytest.mark.parametrize("entry", ["sync", "test"])
def test_a_sync_still_needs_what_is_missing(entry):
    run = run_tap({"window_days": 30}, args=ENTRY_POINTS[entry])
    assert_refused(run, "business_unit_id is required")
    assert "start_date is required" in run.stderr


MELTANO_BAD = ("zone name", "range", "secret as a number")


@needs_meltano
@pytest.mark.parametrize("kind", MELTANO_BAD)
@pytest.mark.parametrize("invoke", [["--discover"], []], ids=["discover", "sync"])
def test_meltano_invoke_refuses_a_bad_setting_in_a_few_lines(kind, invoke, tmp_path):
    """The issue's case: a zone typo in meltano.yml was a 166-line traceback in Meltano's discovery step."""
    project = Project(tmp_path)
    data = yaml.safe_load((tmp_path / "meltano.yml").read_text())
    changed, expected = BAD[kind]
    data["plugins"]["extractors"][0]["config"] |= {**GOOD, **changed}
    (tmp_path / "meltano.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    proc = project("invoke", "tap-pardot-export", *invoke)
    text = proc.stderr if invoke else proc.stdout + proc.stderr
    assert "Traceback" not in text, text[-3000:]
    assert expected in text, text[-3000:]
    assert "entry-client-secret-1f9a" not in text
    # the error, the verdict and Meltano's own lines about the invocation: no page of frames
    assert len(proc.stderr.splitlines()) < 25, proc.stderr
    if invoke:
        # Meltano's own discovery: the lines, then the built-in catalog (a failed discovery is Meltano's traceback)
        assert "Meltano's discovery step goes on with the built-in catalog" in proc.stderr
        assert len(json.loads(proc.stdout)["streams"]) >= 6
    else:
        # its discovery step said it, the sync refuses it: exit 1
        assert proc.returncode == 1, text[-3000:]
        assert text.count(expected) == 2, text[-3000:]
        assert "Config validation failed: fix the setting(s) named above" in text


def test_the_good_config_is_good():
    """The base config of these tests is refused for nothing but its change."""
    run = run_tap(GOOD, args=["--about", "--format=json"])
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["name"] == "tap-pardot-export"
