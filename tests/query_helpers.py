"""Helpers of the query streams' tests: what the sandbox (the oracle) says a correct run emits."""

from __future__ import annotations

import datetime as dt
import typing as t

from pardot_export_sandbox.v5data import account_record, snake

from tap_pardot_export.spec import SPECS
from tests.helpers import discover, run_tap, select_streams

if t.TYPE_CHECKING:
    from pardot_export_sandbox import Sandbox

    from tests.helpers import TapRun

UTC = dt.timezone.utc
START, END = dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2025, 1, 1, tzinfo=UTC)
#: every query stream, in the order the run syncs them
QUERY = tuple(name for name, spec in SPECS.items() if spec.kind == "query")
MODES = {name: t.cast("t.Any", SPECS[name].query).mode for name in QUERY}
EVENTS = tuple(n for n in QUERY if MODES[n] == "events")
INCREMENTAL = tuple(n for n in QUERY if MODES[n] == "incremental")
WHOLE = tuple(n for n in QUERY if MODES[n] == "whole")
#: the incremental dimensions with a recycle bin
BINNED = tuple(n for n in INCREMENTAL if t.cast("t.Any", SPECS[n].query).recycle_bin)


def api_fields(name: str) -> list[str]:
    """The fields the tap reads of ``name``, as the API names them (the spec's list)."""
    return [f for f, _ in t.cast("t.Any", SPECS[name].query).fields]


def key_of(name: str) -> str | None:
    """The date field an event or incremental stream is keyed on, as the API names it."""
    return t.cast("t.Any", SPECS[name].query).date_field


def expected(
    sb: Sandbox, name: str, start: dt.datetime | None = START, end: dt.datetime | None = END, **kw: t.Any
) -> dict[int, dict[str, t.Any]]:
    """The records a correct run emits for ``name``: an event stream's in ``[start, end)``, a dimension's whole."""
    bounds = {"start": start, "end": end, "key": key_of(name)} if MODES[name] == "events" else {}
    return sb.v5_expected(name, fields=api_fields(name), snake_case=True, iso=True, **bounds, **kw)


def by_id(records: list[dict[str, t.Any]]) -> dict[int, dict[str, t.Any]]:
    """Records by id, the last of an id winning (as a target that merges on the key)."""
    return {rec["id"]: rec for rec in records}


def assert_exact(
    name: str, got: list[dict[str, t.Any]], want: dict[int, dict[str, t.Any]], *, deleted_at: str | None = None
) -> None:
    """Exactly ``want``'s records, each value equal; ``deleted_at``: the stamp of deleted records (capture_deletes)."""
    have = by_id(got)
    missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
    assert not missing, f"{name}: {len(missing)} record(s) lost, e.g. {missing[:5]}"
    assert not extra, f"{name}: {len(extra)} record(s) not expected, e.g. {extra[:5]}"
    for rid, exp in want.items():
        rec = dict(have[rid])
        if deleted_at is not None:
            stamp = rec.pop("_sdc_deleted_at")
            assert stamp == (deleted_at if exp.get("is_deleted") else None), (name, rid, stamp)
        assert rec == exp, f"{name} id {rid}: tap emitted {rec}, sandbox has {exp}"


def run_query_streams(
    sb: Sandbox, names: t.Iterable[str], state: dict[str, t.Any] | None = None, **settings: t.Any
) -> TapRun:
    """Sync ``names`` (query or export streams) against ``sb``."""
    cfg = sb.tap_config(**settings)
    return run_tap(cfg, catalog=select_streams(discover(cfg), names), state=state)


def account_row(sb: Sandbox) -> dict[str, t.Any]:
    """The account record as the tap emits it, less ``api_calls_used`` (it counts the run's own calls)."""

    rec = account_record(sb.v5, sb.config.daily_limit, 0)
    out = {snake(k): v for k, v in rec.items()}
    for k in ("created_at", "updated_at"):
        out[k] = dt.datetime.fromtimestamp(out[k], UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    out.pop("api_calls_used")
    return out
