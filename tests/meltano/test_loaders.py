"""The sandbox's data loaded into PostgreSQL and DuckDB through Meltano, with the loaders users pin (issue 19.4).

A PostgreSQL 15 cluster of the machine's server binaries (Debian's ``postgresql-15``) runs in a
temporary folder on a free loopback port, as the ``postgres`` user when the tests run as root
(``initdb`` refuses root; CI runs as root), and is stopped at the end. The loader is MeltanoLabs
``target-postgres`` 0.8.1, installed by ``scripts/setup`` from the project's ``loaders``
dependency group: the Meltano project built here points its plugin's ``executable`` at it, and
nothing is downloaded. The test checks the rows per stream against the sandbox, the column types
the loader chose (``date-time`` as ``timestamp without time zone``, values in UTC: the README's
trap) and that a datetime is the right UTC instant. DuckDB: ``target-duckdb`` 0.8.0 with
``duckdb<1.2`` (later releases lose the first row of every table through it), the same checks.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

import yaml

from tests.helpers import STREAMS, expected_rows
from tests.meltano_helpers import MELTANO, TAP, Project, loader_project, needs_meltano, tap_env

UTC = dt.timezone.utc
TARGET_DUCKDB = Path(sys.executable).parent / "target-duckdb"
START, END = dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2025, 1, 1, tzinfo=UTC)


@needs_meltano
def test_meltano_run_into_postgres(postgres, fresh_sandbox, tmp_path, record_property):
    assert MELTANO is not None and TAP is not None
    sb = fresh_sandbox(rows_per_file=500)
    project = loader_project(tmp_path, postgres)
    cfg = sb.tap_config(start_date=START.isoformat(), end_date=END.isoformat())
    env = tap_env(cfg)
    t0 = time.monotonic()
    proc = project("run", "tap-pardot-export", "target-postgres", env=env)
    took = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr[-4000:]
    loaded = 0
    for stream in STREAMS:
        expected = expected_rows(sb, stream, START, END)
        ((count, distinct),) = postgres.query(f"select count(*), count(distinct id) from pardot.{stream}")  # noqa: S608
        assert count == distinct == len(expected), stream
        loaded += count
    record_property("postgres rows loaded", f"{loaded} in {took:.1f}s (meltano run, target-postgres 0.8.1)")
    types = dict(
        postgres.query(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'pardot' and table_name = 'prospect'"
        )
    )
    assert types["id"] == "bigint"
    assert types["updated_at"] == "timestamp without time zone"  # the loader drops the offset: values are UTC
    expected = expected_rows(sb, "prospect", START, END)
    some = sorted(expected)[len(expected) // 2]
    ((stored,),) = postgres.query("select updated_at from pardot.prospect where id = %s", some)
    assert stored.tzinfo is None
    assert stored.replace(tzinfo=UTC) == dt.datetime.fromisoformat(expected[some]["updated_at"])


def duckdb_project(folder: Path) -> Project:
    """A Meltano project: this repository's extractor, and target-duckdb 0.8.0 (duckdb<1.2) from scripts/setup."""
    assert TARGET_DUCKDB.exists(), "target-duckdb is installed by scripts/setup (the loaders dependency group)"
    project = Project(folder)
    data = yaml.safe_load((folder / "meltano.yml").read_text())
    data["plugins"]["loaders"] = [
        {
            "name": "target-duckdb",
            "variant": "jwills",
            "namespace": "target_duckdb",
            "executable": str(TARGET_DUCKDB),
            "settings": [{"name": "filepath"}, {"name": "default_target_schema"}],
            "config": {"filepath": str(folder / "load.duckdb"), "default_target_schema": "pardot"},
        }
    ]
    (folder / "meltano.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    return project


@needs_meltano
def test_meltano_run_into_duckdb_keeps_every_first_row(fresh_sandbox, tmp_path, record_property):
    import duckdb  # installed with target-duckdb (the loaders group), pinned below 1.2

    assert tuple(int(x) for x in duckdb.__version__.split(".")[:2]) < (1, 2), duckdb.__version__
    sb = fresh_sandbox(rows_per_file=500)
    project = duckdb_project(tmp_path)
    cfg = sb.tap_config(start_date=START.isoformat(), end_date=END.isoformat())
    env = tap_env(cfg)
    t0 = time.monotonic()
    proc = project("run", "tap-pardot-export", "target-duckdb", env=env)
    took = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr[-4000:]
    with duckdb.connect(str(tmp_path / "load.duckdb"), read_only=True) as con:
        loaded = 0
        for stream in STREAMS:
            expected = expected_rows(sb, stream, START, END)
            ids = {row[0] for row in con.execute(f"select id from pardot.{stream}").fetchall()}  # noqa: S608
            assert ids == set(expected), f"{stream}: {len(set(expected) - ids)} row(s) missing"
            loaded += len(ids)
        some = sorted(expected_rows(sb, "prospect", START, END))[7]
        ((stored,),) = con.execute("select updated_at from pardot.prospect where id = ?", [some]).fetchall()
    record_property(
        "duckdb rows loaded", f"{loaded} in {took:.1f}s (meltano run, target-duckdb 0.8.0, duckdb {duckdb.__version__})"
    )
    want = dt.datetime.fromisoformat(expected_rows(sb, "prospect", START, END)[some]["updated_at"])
    assert stored.tzinfo is None  # TIMESTAMP without a zone, holding UTC, as in PostgreSQL
    assert stored.replace(tzinfo=UTC) == want
