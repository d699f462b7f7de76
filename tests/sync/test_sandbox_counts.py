"""The sandbox's commands agree with the tap: ``counts`` is what a sync loads, and ``records`` changes reach it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pardot_export_sandbox.changes import default_procedure

from tap_pardot_export.spec import SPECS
from tests.helpers import STREAMS, discover, run_tap, select_streams

SANDBOX = str(Path(sys.executable).parent / "pardot-export-sandbox")


def sandbox_command(*argv: str) -> str:
    proc = subprocess.run([SANDBOX, *argv], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_the_sandbox_counts_by_the_taps_default_procedure(sandbox):
    for name, spec in SPECS.items():
        if spec.kind != "export":
            continue
        assert default_procedure(sandbox.dataset.objects[name]).name == spec.default_procedure, name


def test_counts_are_what_a_sync_loads_after_records_changed(fresh_sandbox):
    sb = fresh_sandbox(rows_per_file=500)
    url = sb.base_url
    added = sandbox_command("records", "--url", url, "add", "prospect", "--count", "2", "--at", "2024-06-01T12:00:00Z")
    new_ids = [int(x) for x in added.split(":")[-1].split()]
    sandbox_command("records", "--url", url, "delete", "prospect", str(new_ids[1]))
    sandbox_command("records", "--url", url, "add", "visitor", "--at", "2025-02-01")  # after the range: not loaded
    window = ("--start", "2024-01-01", "--end", "2025-01-01T00:00:00+00:00")
    counted = {
        c["object"]: c["count"]
        for c in json.loads(sandbox_command("counts", "--url", url, "--json", *window))["counts"]
    }
    cfg = sb.tap_config(start_date="2024-01-01", end_date="2025-01-01T00:00:00Z")
    run = run_tap(cfg, catalog=select_streams(discover(cfg), STREAMS))
    assert run.returncode == 0, run.stderr[-3000:]
    loaded = {stream: len(run.records(stream)) for stream in STREAMS}
    assert loaded == counted
    ids = {r["id"] for r in run.records("prospect")}
    assert new_ids[0] in ids
    assert new_ids[1] not in ids
