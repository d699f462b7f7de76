"""The orchestrated example (examples/business-units/orchestrate/definitions.py): its Dagster job, run in-process.

Each test writes a Meltano project of its own in a temporary folder: the repository's extractor
run from this venv (as ``tests/meltano_helpers.py``'s projects do), one inherited extractor per business unit
(``tap-pardot-export--<name>``), each pointing at a sandbox of its own on loopback with its own
business unit id and data, and one inherited JSON Lines loader per business unit (the tests'
``tests/jsonl_target.py``), joined by one Meltano job per business unit. The definitions file is
loaded with ``MELTANO_PROJECT_ROOT`` naming that folder, and its job runs in this process
(Dagster's in-process executor: the ops one after another, each a ``meltano run``). Nothing is
installed or downloaded. Skipped where Dagster is not installed (the ``orchestrate`` dependency
group's Python marker leaves it out).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
import yaml
from pardot_export_sandbox import DataConfig

from tests.helpers import expected_rows
from tests.meltano_helpers import MELTANO, TAP, needs_meltano

if t.TYPE_CHECKING:
    from pardot_export_sandbox import Sandbox

#: Dagster is a whole program too (imported by the tests that need it, not when the fast tier collects)
pytestmark = pytest.mark.end_to_end


@pytest.fixture(scope="module")
def dagster() -> t.Any:
    """The ``dagster`` module (the test skips where it is not installed)."""
    return pytest.importorskip(
        "dagster", reason="Dagster comes with the orchestrate dependency group (scripts/setup), not for this Python"
    )


ROOT = Path(__file__).resolve().parents[2]
DEFINITIONS = ROOT / "examples" / "business-units" / "orchestrate" / "definitions.py"
UTC = dt.timezone.utc
START, END = dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2025, 1, 1, tzinfo=UTC)
STREAMS = ("prospect", "visitor")
#: each business unit's own id, data and sizes: rows loaded into the wrong one's files would show
UNITS = {
    "africa": ("0Uv5e0000000003AFA", 13, {"prospect": 20, "visitor": 10}),
    "americas": ("0Uv5e0000000002AMA", 12, {"prospect": 55, "visitor": 30}),
    "emea": ("0Uv5e0000000001EMA", 11, {"prospect": 40, "visitor": 25}),
}
#: the business unit whose run fails: its extractor names a business unit its sandbox does not
#: know. Its op sorts first, and the in-process executor runs the ops in that order.
BROKEN = "africa"


def sandbox_for(fresh_sandbox: t.Callable[..., Sandbox], name: str) -> Sandbox:
    bu, seed, rows = UNITS[name]
    return fresh_sandbox(
        business_unit_id=bu, rows_per_file=20, data=DataConfig(seed=seed, start=START, end=END, rows=rows)
    )


def write_project(folder: Path, units: dict[str, Sandbox], broken: str | None = None) -> None:
    """A Meltano project with one extractor, one loader and one job per business unit.

    ``broken``: that business unit's extractor names a business unit its sandbox does not know,
    so its run fails at its first API call.
    """
    target = folder / "target-jsonl"
    target.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{ROOT / "tests" / "jsonl_target.py"}" "$@"\n')
    target.chmod(0o755)
    base = yaml.safe_load((ROOT / "meltano.yml").read_text())["plugins"]["extractors"][0]
    base.pop("pip_url", None)  # run from this venv: nothing to install
    base["executable"] = TAP
    base["select"] = [f"{stream}.*" for stream in STREAMS]
    # fractions: Meltano reads numeric settings from meltano.yml as they are
    base["config"] = {"poll_interval": 0.05, "max_poll_interval": 0.2, "record_dir": str(folder / "records")}
    extractors, jobs = [base], []
    loaders: list[dict[str, t.Any]] = [
        {
            "name": "target-jsonl",
            "namespace": "target_jsonl",
            "executable": str(target),
            "settings": [{"name": "destination_path", "kind": "string"}],
        }
    ]
    for name, sb in units.items():
        cfg = {k: v for k, v in sb.tap_config().items() if k not in ("poll_interval", "max_poll_interval")}
        if name == broken:
            cfg["business_unit_id"] = "0Uv5e0000000009XXX"
        extractors.append({"name": f"tap-pardot-export--{name}", "inherit_from": "tap-pardot-export", "config": cfg})
        loaders.append(
            {
                "name": f"target-jsonl--{name}",
                "inherit_from": "target-jsonl",
                "config": {"destination_path": str(folder / "out" / name)},
            }
        )
        jobs.append({"name": f"pardot-{name}", "tasks": [f"tap-pardot-export--{name} target-jsonl--{name}"]})
    project = {
        "project_id": "tap-pardot-export-orchestrate-tests",
        "send_anonymous_usage_stats": False,
        "default_environment": "dev",
        "environments": [{"name": "dev"}],
        "plugins": {"extractors": extractors, "loaders": loaders},
        "jobs": jobs,
    }
    (folder / "meltano.yml").write_text(yaml.safe_dump(project, sort_keys=False))


def isolated_environment(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """The environment the ops' ``meltano run`` inherit: this project, this venv's meltano, loopback only."""
    for name in list(os.environ):
        if name.startswith(("TAP_PARDOT_EXPORT", "TARGET_JSONL", "MELTANO_", "PARDOT_", "DAGSTER_")):
            monkeypatch.delenv(name)
    assert MELTANO is not None
    monkeypatch.setenv("MELTANO_PROJECT_ROOT", str(folder))
    monkeypatch.setenv("MELTANO_BIN", MELTANO)
    monkeypatch.setenv("MELTANO_SEND_ANONYMOUS_USAGE_STATS", "false")
    # no download may happen: every connection but to loopback goes to a port nothing listens on
    dead = "http://127.0.0.1:9"
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(proxy, dead)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("PIP_NO_INDEX", "1")


def load_definitions(monkeypatch: pytest.MonkeyPatch, folder: Path) -> t.Any:
    """The definitions file as Dagster loads it, reading the project ``MELTANO_PROJECT_ROOT`` names."""
    name = f"business_units_definitions_{folder.name}"
    spec = importlib.util.spec_from_file_location(name, DEFINITIONS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def meltano(folder: Path, *args: str) -> str:
    assert MELTANO is not None
    proc = subprocess.run(
        [MELTANO, *args], cwd=folder, capture_output=True, text=True, timeout=120, check=False, env=dict(os.environ)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def state_ids(folder: Path) -> set[str]:
    return {line.strip() for line in meltano(folder, "state", "list").splitlines() if line.strip()}


def state_id(name: str) -> str:
    return f"dev:tap-pardot-export--{name}-to-target-jsonl--{name}"


def assert_loaded(folder: Path, name: str, sb: Sandbox) -> None:
    """The business unit's rows, exactly, in its own files; its own state in Meltano, with every stream's bookmark."""
    for stream in STREAMS:
        path = folder / "out" / name / f"{stream}.jsonl"
        assert path.exists(), f"{name}: nothing loaded for {stream}"
        records = [json.loads(line) for line in path.read_text().splitlines()]
        expected = expected_rows(sb, stream, START, END)
        assert len(records) == len({r["id"] for r in records}) == len(expected), (name, stream)
        assert {r["id"] for r in records} == set(expected), (name, stream)
        # this business unit's values (each sandbox draws its own), not another's under the same ids
        instant = dt.datetime.fromisoformat
        moved = [r["id"] for r in records if instant(r["updated_at"]) != instant(expected[r["id"]]["updated_at"])]
        assert not moved, (name, stream, moved[:5])
    state = json.loads(meltano(folder, "state", "get", state_id(name)))
    bookmarks = state["singer_state"]["bookmarks"]
    assert set(STREAMS) <= set(bookmarks), (name, sorted(bookmarks))


def step_events(result: t.Any) -> list[tuple[str, str]]:
    return [(e.step_key, e.event_type_value) for e in result.all_events if e.step_key is not None]


@needs_meltano
def test_the_job_syncs_each_business_unit_with_its_own_state(tmp_path, monkeypatch, fresh_sandbox, dagster):
    """Every business unit's rows and state; the one whose run fails runs first and leaves the others running."""
    units = {name: sandbox_for(fresh_sandbox, name) for name in UNITS}
    write_project(tmp_path, units, broken=BROKEN)
    isolated_environment(monkeypatch, tmp_path)
    module = load_definitions(monkeypatch, tmp_path)
    assert [(u.name, u.command) for u in module.business_units(tmp_path)] == [
        (name, ("run", f"pardot-{name}")) for name in UNITS
    ]
    job = module.defs.get_job_def("pardot_business_units")
    assert sorted(node.name for node in job.nodes) == [f"sync_{name}" for name in sorted(UNITS)]
    assert module.business_units_schedule.job_name == job.name
    good = [name for name in UNITS if name != BROKEN]

    result = job.execute_in_process(raise_on_error=False)

    assert not result.success
    assert result.is_node_failed(f"sync_{BROKEN}")
    failures = [e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failures == [f"sync_{BROKEN}"]
    failure = result.failure_data_for_node(f"sync_{BROKEN}")
    assert failure.user_failure_data.description == f"meltano run pardot-{BROKEN} exited 1"
    assert "Pardot does not know business_unit_id" in failure.user_failure_data.metadata["last lines"].text
    events = step_events(result)
    assert all(result.is_node_success(f"sync_{name}") for name in good), failures
    assert all(
        events.index((f"sync_{BROKEN}", "STEP_FAILURE")) < events.index((f"sync_{name}", "STEP_START")) for name in good
    ), "the failing business unit did not run first: this test would not show that it leaves the others running"
    for name in good:
        assert_loaded(tmp_path, name, units[name])
    # each business unit its own state; the failed one's (its bookmarks where they were) does not hold the others'
    assert {state_id(name) for name in good} <= state_ids(tmp_path) <= {state_id(name) for name in UNITS}
    assert not (tmp_path / "out" / BROKEN).exists()


def write_plain_project(folder: Path, jobs: dict[str, str], loaders: list[str]) -> None:
    """A meltano.yml the definitions only read: a base extractor, business units ``a`` and ``b``, jobs and loaders."""
    extractors = [{"name": "tap-pardot-export"}]
    extractors += [{"name": f"tap-pardot-export--{bu}", "inherit_from": "tap-pardot-export"} for bu in ("a", "b")]
    project = {
        "plugins": {"extractors": extractors, "loaders": [{"name": name} for name in loaders]},
        "jobs": [{"name": name, "tasks": [task]} for name, task in jobs.items()],
    }
    (folder / "meltano.yml").write_text(yaml.safe_dump(project, sort_keys=False))


def test_a_business_unit_without_a_job_runs_with_the_projects_loader(tmp_path, monkeypatch, dagster):
    jobs = {
        "all": "tap-pardot-export--a target-x tap-pardot-export--b target-x",
        "nightly-a": "tap-pardot-export--a target-x",
    }
    write_plain_project(tmp_path, jobs, ["target-x"])
    isolated_environment(monkeypatch, tmp_path)
    module = load_definitions(monkeypatch, tmp_path)
    assert [(u.name, u.extractor, u.command) for u in module.business_units(tmp_path)] == [
        ("a", "tap-pardot-export--a", ("run", "nightly-a")),
        ("b", "tap-pardot-export--b", ("run", "tap-pardot-export--b", "target-x")),
    ]
    write_plain_project(tmp_path, {}, ["target-x", "target-y"])
    with pytest.raises(ValueError, match=r"tap-pardot-export--a: no job .* has 2 loaders"):
        module.business_units(tmp_path)
    monkeypatch.setenv("MELTANO_LOADER", "target-y")
    assert module.business_units(tmp_path)[1].command == ("run", "tap-pardot-export--b", "target-y")


def test_the_schedule_skips_a_tick_while_the_jobs_previous_run_is_going(tmp_path, monkeypatch, dagster):
    from dagster._core.test_utils import create_run_for_test

    write_plain_project(tmp_path, {}, ["target-x"])
    isolated_environment(monkeypatch, tmp_path)
    module = load_definitions(monkeypatch, tmp_path)
    schedule = module.business_units_schedule
    assert schedule.cron_schedule == "0 * * * *"
    with dagster.instance_for_test() as instance:
        context = dagster.build_schedule_context(instance=instance)
        assert isinstance(schedule(context), dagster.RunRequest)
        create_run_for_test(instance, job_name="pardot_business_units", status=dagster.DagsterRunStatus.SUCCESS)
        assert isinstance(schedule(context), dagster.RunRequest)
        going = create_run_for_test(instance, job_name="pardot_business_units", status=dagster.DagsterRunStatus.STARTED)
        skipped = schedule(context)
        assert isinstance(skipped, dagster.SkipReason)
        assert going.run_id in skipped.skip_message
