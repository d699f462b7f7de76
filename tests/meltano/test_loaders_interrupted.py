"""Ctrl-C under ``meltano run`` into a real PostgreSQL, then ``meltano run`` again (issue 19.1).

The loader is MeltanoLabs ``target-postgres`` 0.8.1 (the ``loaders`` dependency group), the
cluster the one of ``tests/meltano/test_loaders.py``. Another user's export holds Pardot's queue, so the
tap's first export is still waiting when the Ctrl-C reaches Meltano, the tap and the loader: no
state reaches Meltano. The rerun must create no export for a request the tap's record holds
live, and the tables must hold every row of the range once.
"""

from __future__ import annotations

import datetime as dt
import json
import re

from tests.helpers import expected_rows, recorded_ids
from tests.meltano_helpers import (
    Interrupted,
    assert_tap_clean,
    live,
    loader_project,
    needs_meltano,
    request,
    tap_env,
    until,
)

UTC = dt.timezone.utc
START, END = dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2025, 1, 1, tzinfo=UTC)
STREAMS = ("list_membership", "prospect")


@needs_meltano
def test_ctrl_c_under_meltano_run_into_postgres_then_the_rerun_reuses_the_export(postgres, fresh_sandbox, tmp_path):
    sb = fresh_sandbox(rows_per_file=500)
    foreign = sb.add_foreign_exports(1, seconds=None)
    project = loader_project(tmp_path, postgres)
    record = tmp_path / "record"
    cfg = sb.tap_config(window_days=200, start_date=START.isoformat(), end_date=END.isoformat())
    env = {
        **tap_env(cfg),
        "TAP_PARDOT_EXPORT_RECORD_DIR": str(record),
        "TAP_PARDOT_EXPORT__SELECT": json.dumps([f"{s}.*" for s in STREAMS]),
    }
    run = Interrupted(project, env, target="target-postgres")
    until(lambda: len(recorded_ids(record, sb)) >= 1, "the tap recorded its first export")
    output = run.ctrl_c()
    assert_tap_clean(output)  # the loader's own traceback, if any, is the loader's
    (mine,) = recorded_ids(record, sb)
    assert sb.stats()["exports"][mine]["state"] == "Waiting", output[-3000:]
    sb.release_foreign_exports()
    assert foreign
    still = live(sb, {mine})
    with sb.state.lock:
        before = max(sb.state.exports)
    rerun = project("run", "tap-pardot-export", "target-postgres", env=env)
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    with sb.state.lock:
        created = {request(sb, i) for i in sb.state.exports if i > before}
    assert not created & {request(sb, i) for i in still}, "the rerun created an export the record held live"
    summary = re.search(r"run summary: (\d+) export\(s\) created, (\d+) reused", rerun.stderr)
    assert summary and int(summary.group(2)) >= 1, rerun.stderr[-4000:]
    for stream in STREAMS:
        expected = expected_rows(sb, stream, START, END)
        ((count, distinct),) = postgres.query(f"select count(*), count(distinct id) from pardot.{stream}")  # noqa: S608
        assert count == distinct == len(expected), stream
