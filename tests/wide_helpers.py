"""What the tests of streams wider than an export share: a sandbox of 300 custom prospect fields and its checks.

One export holds at most 150 fields, so the prospect stream of such an account is read as
several field groups per window, joined by id (``tests/wide/``; also the business unit key's
and the spoiled exports' tests of a wide stream).
"""

from __future__ import annotations

import datetime as dt
import typing as t

from pardot_export_sandbox import DataConfig

from tests.helpers import discover, select_streams

if t.TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from pardot_export_sandbox import Sandbox

UTC = dt.timezone.utc
START, END = dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2025, 1, 1, tzinfo=UTC)
STREAM = "prospect"
#: 300 custom prospect fields, as the account's custom field query lists them (lower case: their columns are their ids)
CUSTOM = tuple(f"custom_field_{k:03d}" for k in range(300))


def wide_sandbox(fresh_sandbox: t.Callable[..., Sandbox], prospects: int = 400, **kw: t.Any) -> Sandbox:
    data = DataConfig(start=START, end=END, custom_fields=CUSTOM, rows={STREAM: prospects})
    return fresh_sandbox(data=data, **kw)


def wide_catalog(cfg: dict[str, t.Any], *streams: str) -> dict[str, t.Any]:
    """The catalog discovery makes with credentials: every custom field of the account, all selected."""
    cat = select_streams(discover(cfg), streams or [STREAM])
    props = next(s for s in cat["streams"] if s["tap_stream_id"] == STREAM)["schema"]["properties"]
    assert set(CUSTOM) <= set(props), "discovery lists the account's custom fields"
    return cat


def exports_of(sb: Sandbox, since: int = 0) -> list[t.Any]:
    with sb.state.lock:
        return [e for eid, e in sorted(sb.state.exports.items()) if eid > since and e.spec.obj.name == STREAM]


def assert_whole(records: list[dict[str, t.Any]], fields: set[str]) -> None:
    """Every record holds every field: none is partial."""
    for rec in records:
        missing = fields - set(rec)
        assert not missing, f"record {rec['id']} lacks {len(missing)} field(s), e.g. {sorted(missing)[:3]}"


def schema_fields(run: t.Any) -> set[str]:
    return set(next(m for m in run.messages if m["type"] == "SCHEMA" and m["stream"] == STREAM)["schema"]["properties"])


class Part:
    """One group's result file as the join reads it: typed records."""

    def __init__(self, rows: Sequence[dict[str, t.Any]]) -> None:
        self.rows = rows

    def records(self, drop: Sequence[str] = ()) -> Iterator[dict[str, t.Any]]:
        yield from (dict(r) for r in self.rows)


def in_flight(state: dict[str, t.Any]) -> list[int]:
    """The export ids a stream's state keeps (pending first)."""
    pending = state.get("pending_export")
    return [*([pending["id"]] if pending else []), *(e["id"] for e in state.get("queued_exports", []))]
