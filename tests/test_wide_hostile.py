"""Streams wider than an export against hostile servers, accounts and runs (issue 13).

Each test breaks the field-group join a way a real account or a misbehaving server could,
and checks the invariant: exit 0 with exactly the rows in range, whole and typed; or a
non-zero exit with a clear message, no traceback, no bookmark past a window not emitted,
and no spool file left behind.
"""

from __future__ import annotations

import csv
import datetime as dt
import typing as t
from pathlib import Path

from pardot_export_sandbox import DataConfig
from pardot_export_sandbox.server import Fault

from tap_pardot_export.join import JoinSpool
from tests.helpers import assert_rows_match, expected_rows, run_tap
from tests.test_wide import CUSTOM, END, START, STREAM, Part, assert_whole, schema_fields, wide_catalog

if t.TYPE_CHECKING:
    from pardot_export_sandbox import Sandbox

UTC = dt.timezone.utc
#: a few hundred prospects of ~350 fields: three field groups, fast exports
PROSPECTS = 300


def small_wide(fresh_sandbox: t.Callable[..., Sandbox], start: dt.datetime = START, **kw: t.Any) -> Sandbox:
    data = DataConfig(start=start, end=END, custom_fields=CUSTOM, rows={STREAM: PROSPECTS * (END - start).days // 366})
    return fresh_sandbox(data=data, **kw)


Rewrite = t.Callable[[int, list[str], list[list[str]]], list[list[str]]]


def rewrite_results(sb: Sandbox, fn: Rewrite) -> None:
    """Pass each prospect export's result files through ``fn(nth, header, rows) -> rows`` before it is Complete.

    ``nth`` counts the prospect exports from 0 (with one window and no export ahead: the field group).
    """
    state = sb.state
    original = state._process
    seen: list[int] = []

    def process(e: t.Any) -> tuple[t.Any, t.Any, t.Any]:
        ranges, total, paths = original(e)
        if e.spec.obj.name == STREAM:
            nth = len(seen)
            seen.append(e.id)
            for p in paths:
                with Path(p).open(encoding="utf-8", newline="") as fh:
                    rows = list(csv.reader(fh))
                with Path(p).open("w", encoding="utf-8", newline="") as fh:
                    csv.writer(fh, lineterminator="\r\n").writerows([rows[0], *fn(nth, rows[0], rows[1:])])
        return ranges, total, paths

    state._process = process  # type: ignore[method-assign]


def fault_at_download(sb: Sandbox, nth: int, kind: str) -> None:
    """Make the ``nth`` download request (from 1) of the run meet ``kind``."""
    state = sb.state
    take = state.take_fault
    count = [0]

    def take_fault(op: str, kinds: tuple[str, ...], *, exact: bool = False) -> Fault | None:
        if op == "download":
            count[0] += 1
            if count[0] == nth:
                with state.lock:
                    state.faults.append(Fault(kind, 1, "download"))
        return take(op, kinds, exact=exact)

    state.take_fault = take_fault  # type: ignore[method-assign]


def assert_exact(sb: Sandbox, records: list[dict[str, t.Any]], fields: set[str], start: dt.datetime = START) -> None:
    assert_whole(records, fields)
    assert_rows_match(sb, STREAM, records, expected_rows(sb, STREAM, start, END), sb.config.data.timezone)


def in_flight(state: dict[str, t.Any]) -> list[int]:
    """The export ids a stream's state keeps (pending first)."""
    pending = state.get("pending_export")
    return [*([pending["id"]] if pending else []), *(e["id"] for e in state.get("queued_exports", []))]


# -- findings: each failed before its fix ---------------------------------------------------


def test_a_group_export_expiring_while_its_files_are_read_is_spooled_once(fresh_sandbox):
    """Group 1's export expires after some of its files were spooled: the re-created export replaces them.

    Nothing of the window was emitted yet, so no record may come twice. Before the fix, the
    first files' rows stayed in the spool next to the re-created export's: 69 records twice.
    """
    sb = small_wide(fresh_sandbox, rows_per_file=20)  # 14 files per group's export
    cfg = sb.tap_config(window_days=365, max_queued_exports=0)
    cat = wide_catalog(cfg)
    fault_at_download(sb, 10, "expire_export")  # files of group 1 were read by then
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "field group 1/3: export 1001 expired while its files were read" in run.stderr
    records = run.records(STREAM)
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} record(s) emitted twice"
    assert_exact(sb, records, schema_fields(run))


def test_an_id_twice_in_several_groups_is_not_multiplied():
    """An id a server lists twice in each group yields one record per row of the first group holding it.

    As the join documents. Before the fix the later groups' copies multiplied: 2 x 2 x 2 = 8
    records for id 1, 2 x 2 for id 3.
    """
    g0 = [
        {"id": 1, "updated_at": "t", "a": 1},
        {"id": 1, "updated_at": "t", "a": 2},
        {"id": 2, "updated_at": "t", "a": 3},
    ]
    g1 = [{"id": i, "updated_at": "t", "b": k} for k, i in enumerate((1, 1, 3, 3))]
    g2 = [{"id": i, "updated_at": "t", "c": k} for k, i in enumerate((1, 1, 3))]
    with JoinSpool(STREAM, 3, replication_key="updated_at") as spool:
        for k, group in enumerate((g0, g1, g2)):
            spool.add(k, Part(group))
        got = list(spool.records())
    assert [r["id"] for r in got] == [1, 1, 2, 3, 3]
    assert all(set(r) == {"id", "updated_at", "a", "b", "c"} for r in got if r["id"] == 1)
    assert [r["a"] for r in got if r["id"] == 1] == [1, 2], "each row of the first group once"
    assert {(r["b"], r["c"]) for r in got if r["id"] == 1} == {(1, 1)}, "the later groups' last row"
    assert [r["b"] for r in got if r["id"] == 3] == [2, 3]


def test_duplicate_rows_in_every_group_come_once_per_row_of_the_first(fresh_sandbox):
    """A server repeating rows in each group's file: the window's records come at most twice, whole."""
    sb = small_wide(fresh_sandbox)
    cfg = sb.tap_config(window_days=365, max_queued_exports=0)
    twice: list[str] = []

    def repeat_three(nth: int, header: list[str], rows: list[list[str]]) -> list[list[str]]:
        if nth < 3:  # the first window's three groups
            twice[:] = [r[header.index("id")] for r in rows[:3]]
            return rows + rows[:3]
        return rows

    rewrite_results(sb, repeat_three)
    run = run_tap(cfg, catalog=wide_catalog(cfg))
    assert run.returncode == 0, run.stderr[-3000:]
    records = run.records(STREAM)
    ids = [r["id"] for r in records]
    assert {i: ids.count(i) for i in map(int, twice)} == dict.fromkeys(map(int, twice), 2)
    assert len(ids) == len(set(ids)) + 3
    assert_exact(sb, records, schema_fields(run))
