"""examples/business-units run as a user runs it: two business units side by side into one PostgreSQL schema.

The example project is copied into a folder of the test's own; what differs from a user's
machine, and only that: its plugins run the programs installed in this environment (their
``pip_url`` becomes an ``executable``, so ``meltano install`` installs nothing), each business unit's
extractor points at a sandbox of its own on loopback (``api_url``, ``login_url``, fast polling,
the sandbox's year as the range), and the secrets and PostgreSQL's address come from the
environment variables the example names. The two sandboxes serve the example's two business unit
ids with data of overlapping ids. As the example's README says, one job runs alone first (over a
day: it creates the tables), then both jobs run at once; then every table holds each business
unit's rows exactly, the key (business_unit_id, id) is unique, and Meltano keeps one state per
business unit.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import typing as t
from pathlib import Path

import yaml
from pardot_export_sandbox import DataConfig

from tap_pardot_export.settings.schema import settings_schema
from tap_pardot_export.spec import SPECS
from tests.helpers import STREAMS, expected_rows
from tests.meltano_helpers import MELTANO, TAP, TARGET_POSTGRES, meltano_env, needs_meltano
from tests.query_helpers import account_row, expected

if t.TYPE_CHECKING:
    from pardot_export_sandbox import Sandbox

    from tests.helpers import Cluster

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "business-units"
UTC = dt.timezone.utc
START, END = dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2025, 1, 1, tzinfo=UTC)
#: each business unit's job and extractor in the example
JOBS = {"emea": "pardot-bu-emea", "americas": "pardot-bu-americas"}


def example() -> dict[str, t.Any]:
    return t.cast("dict[str, t.Any]", yaml.safe_load((EXAMPLE / "meltano.yml").read_text()))


def extractors() -> dict[str, dict[str, t.Any]]:
    return {e["name"]: e for e in example()["plugins"]["extractors"]}


def test_the_example_names_only_settings_the_tap_has_and_no_secret():
    known = set(settings_schema()["properties"])
    base = extractors()["tap-pardot-export"]
    assert {s["name"] for s in base["settings"]} <= known
    for plugin in extractors().values():
        assert set(plugin.get("config", {})) <= known, plugin["name"]
    assert base["config"]["business_unit_key"] is True
    for name in ("client_id", "client_secret", "refresh_token"):
        assert str(base["config"][name]).startswith("${"), f"{name} must come from the environment"
    units = {bu: extractors()[f"tap-pardot-export--bu-{bu}"] for bu in JOBS}
    assert all(u["inherit_from"] == "tap-pardot-export" for u in units.values())
    assert len({u["config"]["business_unit_id"] for u in units.values()}) == 2
    jobs = {j["name"]: j["tasks"] for j in example()["jobs"]}
    assert jobs == {job: [f"tap-pardot-export--bu-{bu} target-postgres"] for bu, job in JOBS.items()}
    assert {s["job"] for s in example()["schedules"]} == set(JOBS.values())
    (loader,) = example()["plugins"]["loaders"]
    readme = (ROOT / "README.md").read_text()
    assert f"pip_url: {loader['pip_url']}" in readme, "the loader's pin is the README's"


class Example:
    """The example copied to a folder: its plugins on this environment's programs, its units on the sandboxes."""

    def __init__(self, folder: Path, units: dict[str, Sandbox], cluster: Cluster) -> None:
        shutil.copytree(EXAMPLE, folder)
        self.folder = folder
        data = yaml.safe_load((folder / "meltano.yml").read_text())
        for plugin in data["plugins"]["extractors"]:
            if plugin["name"] == "tap-pardot-export":
                del plugin["pip_url"]
                plugin["executable"] = TAP
                plugin["settings"].append({"name": "end_date", "kind": "date_iso8601"})
                plugin["config"].update(poll_interval=0.05, max_poll_interval=0.2, end_date=END.isoformat())
            for bu, sb in units.items():
                if plugin["name"] == f"tap-pardot-export--bu-{bu}":
                    plugin["config"].update(api_url=sb.base_url, login_url=sb.base_url)
        (loader,) = data["plugins"]["loaders"]
        del loader["pip_url"]
        loader["executable"] = str(TARGET_POSTGRES)
        (folder / "meltano.yml").write_text(yaml.safe_dump(data, sort_keys=False))
        some = next(iter(units.values()))
        self.env = meltano_env()
        self.env.update(
            PARDOT_CLIENT_ID=some.config.client_id,
            PARDOT_CLIENT_SECRET=some.config.client_secret,
            PARDOT_REFRESH_TOKEN=some.config.refresh_token,
            PG_HOST="127.0.0.1",
            PG_PORT=str(cluster.port),
            PG_USER="postgres",
            PG_PASSWORD="trusted-on-loopback",  # the cluster trusts local connections; the loader wants one
            PG_DATABASE="postgres",
        )

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        assert MELTANO is not None
        return subprocess.Popen(
            [MELTANO, *args],
            cwd=self.folder,
            env={**self.env, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        proc = self.start(*args, env=env)
        out, err = proc.communicate(timeout=900)
        return proc.returncode, out, err


def want_ids(sb: Sandbox, name: str) -> set[int]:
    """The ids a correct run of ``name`` loads from ``sb``."""
    if name in STREAMS:
        return set(expected_rows(sb, name, START, END))
    if name == "account":
        return {account_row(sb)["id"]}
    return set(expected(sb, name))


@needs_meltano
def test_two_business_units_side_by_side_into_one_schema(postgres, fresh_sandbox, tmp_path):
    assert MELTANO is not None and TAP is not None and TARGET_POSTGRES.exists()
    ids = {bu: extractors()[f"tap-pardot-export--bu-{bu}"]["config"]["business_unit_id"] for bu in JOBS}
    units = {
        "emea": fresh_sandbox(business_unit_id=ids["emea"], rows_per_file=500),
        "americas": fresh_sandbox(
            business_unit_id=ids["americas"],
            rows_per_file=500,
            data=DataConfig(start=START, end=END, seed=7, rows={"prospect": 250, "visitor_activity": 900}),
        ),
    }
    project = Example(tmp_path / "project", units, postgres)
    code, _, err = project("install")
    assert code == 0, err[-3000:]
    # target-postgres creates a table by "check, then create": two loads creating one table at the same
    # moment may fail. As the example's README says, one job runs alone first (here over a day: it
    # creates every table), then the business units run side by side.
    first_day = {"TAP_PARDOT_EXPORT__BU_EMEA_END_DATE": (START + dt.timedelta(days=1)).isoformat()}
    code, _, err = project("run", JOBS["emea"], env=first_day)
    assert code == 0, err[-3000:]
    code, got, err = project("state", "get", "prod:tap-pardot-export--bu-emea-to-target-postgres")
    assert code == 0, err[-2000:]
    mark = json.loads(got)["singer_state"]["bookmarks"]["prospect"]["replication_key_value"]
    assert mark == first_day["TAP_PARDOT_EXPORT__BU_EMEA_END_DATE"]
    runs = {bu: project.start("run", job) for bu, job in JOBS.items()}  # side by side
    for bu, proc in runs.items():
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, f"{bu}: {err[-4000:]}"

    overlapping = want_ids(units["emea"], "prospect") & want_ids(units["americas"], "prospect")
    assert overlapping, "the two business units' prospects share ids: only the composite key keeps them apart"
    for name in SPECS:
        rows = postgres.query(
            f'select business_unit_id, count(*), count(distinct id) from pardot."{name}" group by 1'  # noqa: S608
        )
        loaded = {bu: (count, distinct) for bu, count, distinct in rows}
        for bu, sb in units.items():
            want = len(want_ids(sb, name))
            assert loaded.get(ids[bu]) == (want, want), f"{name}, {bu}: loaded {loaded.get(ids[bu])}, want {want}"
        assert set(loaded) == set(ids.values()), name
        ((total, keys),) = postgres.query(
            f'select count(*), count(distinct (business_unit_id, id)) from pardot."{name}"'  # noqa: S608
        )
        assert total == keys, f"{name}: the key (business_unit_id, id) is not unique"

    code, listed, err = project("state", "list")
    assert code == 0, err[-2000:]
    state_ids = {f"prod:tap-pardot-export--bu-{bu}-to-target-postgres" for bu in JOBS}
    assert state_ids <= set(listed.split()), listed
    for state_id in state_ids:
        code, got, err = project("state", "get", state_id)
        assert code == 0, err[-2000:]
        bookmarks = json.loads(got)["singer_state"]["bookmarks"]
        assert set(STREAMS) <= set(bookmarks), state_id
        assert bookmarks["prospect"]["replication_key_value"] == END.isoformat(), state_id
