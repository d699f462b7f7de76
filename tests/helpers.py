"""Test helpers: run the tap as users do (a subprocess), and compute what it should emit."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import typing as t
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from pardot_export_sandbox import Sandbox
from pardot_export_sandbox.data import DATETIME, ObjectData

UTC = dt.timezone.utc
STREAMS = ("prospect", "visitor", "visitor_activity", "list_membership", "prospect_account", "external_activity")
FILTER_FIELD = {
    "prospect": "updated_at",
    "visitor": "updated_at",
    "visitor_activity": "updated_at",
    "list_membership": "updated_at",
    "prospect_account": "updated_at",
    "external_activity": "createdAt",
}


@dataclass
class TapRun:
    returncode: int
    stdout: str
    stderr: str
    messages: list[dict[str, t.Any]] = field(default_factory=list)

    def records(self, stream: str | None = None) -> list[dict[str, t.Any]]:
        return [
            m["record"] for m in self.messages if m["type"] == "RECORD" and (stream is None or m["stream"] == stream)
        ]

    def states(self) -> list[dict[str, t.Any]]:
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    @property
    def final_state(self) -> dict[str, t.Any]:
        states = self.states()
        return states[-1] if states else {}

    @property
    def everything(self) -> str:
        return self.stdout + self.stderr


def run_tap(
    config: dict[str, t.Any],
    *,
    state: dict | None = None,
    catalog: dict | None = None,
    args: t.Sequence[str] = (),
    timeout: float = 300,
    env: dict[str, str] | None = None,
) -> TapRun:
    """Run ``python -m tap_pardot_export`` with files for config, state and catalog."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = os.path.join(tmp, "config.json")
        with open(cfg_path, "w") as fh:
            json.dump(config, fh)
        cmd = [sys.executable, "-m", "tap_pardot_export", "--config", cfg_path, *args]
        if state is not None:
            p = os.path.join(tmp, "state.json")
            with open(p, "w") as fh:
                json.dump(state, fh)
            cmd += ["--state", p]
        if catalog is not None:
            p = os.path.join(tmp, "catalog.json")
            with open(p, "w") as fh:
                json.dump(catalog, fh)
            cmd += ["--catalog", p]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}, check=False
        )
    run = TapRun(proc.returncode, proc.stdout, proc.stderr)
    for line in proc.stdout.splitlines():
        if line.strip() and "--discover" not in args and "--about" not in args:
            run.messages.append(json.loads(line))
    return run


def select_streams(catalog: dict[str, t.Any], streams: t.Iterable[str]) -> dict[str, t.Any]:
    """Mark only ``streams`` selected in a discovered catalog."""
    wanted = set(streams)
    for entry in catalog["streams"]:
        for md in entry["metadata"]:
            if md["breadcrumb"] == []:
                md["metadata"]["selected"] = entry["tap_stream_id"] in wanted
    return catalog


def discover(config: dict[str, t.Any]) -> dict[str, t.Any]:
    run = run_tap(config, args=["--discover"])
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def iso(ts: dt.datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def expected_rows(
    sb: Sandbox,
    stream: str,
    start: dt.datetime,
    end: dt.datetime,
    *,
    field_name: str | None = None,
    include_deleted: bool = False,
) -> dict[int, dict[str, t.Any]]:
    """The sandbox's ground truth: rows of ``stream`` with ``start <= t < end``, typed as the tap emits."""
    obj: ObjectData = sb.dataset.objects[stream]
    fname = field_name or FILTER_FIELD[stream]
    fn = obj.times[fname][0]
    lo, hi = int(start.timestamp()), int(end.timestamp())
    out = {}
    for i in range(obj.count):
        ts = fn(i)
        if not (lo <= ts < hi):
            continue
        if obj.is_deleted is not None and not include_deleted and obj.is_deleted(i):
            continue
        row = obj.typed_row(i)
        out[row["id"]] = {k: (iso(v) if isinstance(v, dt.datetime) else v) for k, v in row.items()}
    return out


def ambiguous_local(value_utc: str, zone: str) -> bool:
    """True when the instant falls in a repeated local hour (clocks going back)."""
    d = dt.datetime.fromisoformat(value_utc).astimezone(ZoneInfo(zone))
    other = d.replace(fold=1 - d.fold)
    return other.utcoffset() != d.utcoffset()


def assert_rows_match(sb: Sandbox, stream: str, got: list[dict], expected: dict[int, dict], zone: str) -> None:
    """Same ids, same values; datetimes in a repeated local hour may be read as their first occurrence."""
    by_id: dict[int, dict] = {}
    for rec in got:
        by_id[rec["id"]] = rec
    missing = sorted(set(expected) - set(by_id))
    extra = sorted(set(by_id) - set(expected))
    assert not missing, f"{stream}: {len(missing)} rows lost, e.g. {missing[:5]}"
    assert not extra, f"{stream}: {len(extra)} rows outside the range, e.g. {extra[:5]}"
    obj = sb.dataset.objects[stream]
    kinds = {f.name: f.kind for f in obj.fields}
    for rid, exp in expected.items():
        rec = by_id[rid]
        for k, v in exp.items():
            if rec.get(k) == v:
                continue
            if kinds.get(k) == DATETIME and v is not None and ambiguous_local(v, zone):
                first = dt.datetime.fromisoformat(v) - dt.timedelta(hours=1)
                if rec.get(k) == iso(first):
                    continue
            raise AssertionError(f"{stream} id {rid} field {k}: tap emitted {rec.get(k)!r}, sandbox has {v!r}")
