"""Pardot's export queue kept busy: windows sized by the data, exports created ahead, informed polling.

Each test runs against the sandbox, whose exports run one at a time, oldest first, as Pardot's
per-account queue does. In-process unless a process boundary matters (SIGKILL, SIGTERM). The
windows' tiling is checked as a unit too (property-based).
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import signal
import typing as t

from hypothesis import given
from hypothesis import strategies as st
from pardot_export_sandbox import DataConfig

from tap_pardot_export.engine.windows import MAX_WINDOW, OVERLAP, tile
from tap_pardot_export.pardot import polling
from tests.helpers import (
    STREAMS,
    BackgroundTap,
    TapRun,
    assert_rows_match,
    block_record,
    discover,
    expected_rows,
    recorded_ids,
    run_tap,
    select_streams,
)

UTC = dt.timezone.utc
START, END = dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2025, 1, 1, tzinfo=UTC)
TWO_YEARS = DataConfig(start=dt.datetime(2023, 1, 1, tzinfo=UTC), end=END, rows={"visitor_activity": 2400})
DAY = 86400


def one_stream(sb: t.Any, stream: str, **cfg: t.Any) -> tuple[dict[str, t.Any], dict[str, t.Any]]:
    config = sb.tap_config(**cfg)
    return config, select_streams(discover(config), [stream])


def complete(sb: t.Any, stream: str, runs: list[TapRun], start: dt.datetime = START) -> None:
    """The runs together emitted exactly the sandbox's rows of ``stream`` in range (duplicates allowed)."""
    records = [r for run in runs for r in run.records(stream)]
    assert_rows_match(sb, stream, records, expected_rows(sb, stream, start, END), sb.config.data.timezone)


def exports_of(sb: t.Any) -> list[tuple[int, str, int, int, int]]:
    """(id, state, rows, after, before) of every export the sandbox created, in creation order."""
    with sb.state.lock:
        return [
            (e.id, e.state, e.total, e.spec.after, e.spec.before or 0)
            for e in sorted(sb.state.exports.values(), key=lambda e: e.id)
        ]


def log_order(sb: t.Any) -> list[tuple[str, int | None]]:
    """The sandbox's request log as ("create", None) and ("download", export id), in order."""
    out: list[tuple[str, int | None]] = []
    for _, path in list(sb.state.requests_log):
        if path.endswith("/do/create"):
            out.append(("create", None))
        elif m := re.search(r"/downloadResult/id/(\d+)/", path):
            out.append(("download", int(m.group(1))))
    return out


# -- windows sized by the data ----------------------------------------------------------------------


def test_a_small_account_takes_two_exports_per_stream_over_a_leap_year(fresh_sandbox):
    """2024 has 366 days: one export of a year (less the overlap second) and one of the last day."""
    sb = fresh_sandbox(processing_seconds=0.05)
    run = run_tap(sb.tap_config())
    assert run.returncode == 0, run.stderr[-2000:]
    made = exports_of(sb)
    assert len(made) <= 12, f"{len(made)} exports for a small account (78 with 30-day windows)"
    for stream in STREAMS:
        complete(sb, stream, [run])
    assert "run summary: 12 export(s) created" in run.stderr.strip().splitlines()[-1]


def test_windows_narrow_where_an_export_was_large(fresh_sandbox):
    sb = fresh_sandbox(data=TWO_YEARS)
    cfg, cat = one_stream(sb, "visitor_activity", rows_per_export=300, start_date="2023-01-01T00:00:00+00:00")
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    complete(sb, "visitor_activity", [run], start=TWO_YEARS.start)
    made = exports_of(sb)
    # the first export spans a year; the second, queued before the first was read, is replaced
    assert made[0][4] - made[0][3] > 360 * DAY and made[0][2] > 300
    later = made[2:]
    assert later, "no export after the first two: the windows did not narrow"
    for eid, _, rows, after, before in later[:-1]:  # the last one is cut by the range's end
        assert before - after < 200 * DAY, f"export {eid} spans {(before - after) / DAY:.0f} days"
        assert rows <= 2 * 300, f"export {eid} holds {rows} rows for rows_per_export=300"
    read = [int(n) for n in re.findall(r"done: waited [\d.]+s, \d+ file\(s\), (\d+) row\(s\)", run.stderr)]
    assert read[0] > 300 and all(n <= 2 * 300 for n in read[1:]), f"rows per export read: {read}"
    assert "replacing it with narrower ones" in run.stderr  # the year-wide export queued ahead
    rate = run.final_state["bookmarks"]["visitor_activity"]["rows_per_year"]
    assert isinstance(rate, int) and 365 <= rate <= 3650, rate  # 2,400 rows over two years: 1,200 a year


def test_the_learned_size_is_kept_in_state_for_the_next_run(fresh_sandbox):
    sb = fresh_sandbox(data=TWO_YEARS)
    start = "2023-01-01T00:00:00+00:00"
    cfg, cat = one_stream(sb, "visitor_activity", rows_per_export=300, start_date=start, end_date="2023-06-01")
    first = run_tap(cfg, catalog=cat)
    assert first.returncode == 0, first.stderr[-2000:]
    state = first.final_state
    assert state["bookmarks"]["visitor_activity"]["rows_per_year"] > 0
    seen = len(exports_of(sb))
    second = run_tap({**cfg, "end_date": END.isoformat()}, catalog=cat, state=state)
    assert second.returncode == 0, second.stderr[-2000:]
    complete(sb, "visitor_activity", [first, second], start=TWO_YEARS.start)
    new = exports_of(sb)[seen:]
    eid, _, rows, after, before = new[0]
    assert before - after < 200 * DAY, f"the next run's first export {eid} spans {(before - after) / DAY:.0f} days"
    assert rows <= 2 * 300


# -- exports created ahead --------------------------------------------------------------------------


def test_the_next_streams_export_is_queued_while_this_one_downloads(fresh_sandbox):
    sb = fresh_sandbox(processing_seconds=0.3)
    config = sb.tap_config(end_date="2024-12-01T00:00:00+00:00")  # one window per stream
    cat = select_streams(discover(config), ["prospect", "visitor"])
    run = run_tap(config, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    for stream in ("prospect", "visitor"):
        records = run.records(stream)
        exp = expected_rows(sb, stream, START, dt.datetime(2024, 12, 1, tzinfo=UTC))
        assert_rows_match(sb, stream, records, exp, sb.config.data.timezone)
    made = exports_of(sb)
    assert len(made) == 2, f"the second stream did not take the export created ahead for it: {made}"
    assert "run summary: 2 export(s) created, 0 reused" in run.stderr, "taken without a status read"
    order = log_order(sb)
    first_download = order.index(("download", made[0][0]))
    assert order.index(("create", None), 1) < first_download, f"no overlap: {order}"


def test_max_queued_exports_zero_keeps_strict_order(fresh_sandbox):
    sb = fresh_sandbox(processing_seconds=0.05)
    cfg, cat = one_stream(sb, "visitor_activity", window_days=60, max_queued_exports=0)
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    complete(sb, "visitor_activity", [run])
    ids = [e[0] for e in exports_of(sb)]
    order = log_order(sb)
    creates = [k for k, (op, _) in enumerate(order) if op == "create"]
    for n, at in enumerate(creates[1:], 1):
        before = ids[n - 1]
        assert ("download", before) not in order[at:], f"export {ids[n]} was created before {before} was read"


def test_up_to_max_queued_exports_are_created_ahead(fresh_sandbox):
    sb = fresh_sandbox(processing_seconds=0.3)
    cfg, cat = one_stream(sb, "visitor_activity", window_days=60, max_queued_exports=3)
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    complete(sb, "visitor_activity", [run])
    assert len(exports_of(sb)) == 7
    order = [op for op, _ in log_order(sb)]
    assert order[:5] == ["create"] * 4 + ["download"], f"not 3 exports queued behind the first: {order}"


# -- interruptions with several exports in flight ------------------------------------------------------


def two_queued(msg: dict, stream: str = "visitor_activity") -> bool:
    """A STATE with two exports queued behind the one waited on."""
    return msg["type"] == "STATE" and len(msg["value"]["bookmarks"].get(stream, {}).get("queued_exports", [])) == 2


def test_a_rerun_after_sigkill_reuses_every_export_in_flight(fresh_sandbox):
    sb = fresh_sandbox(processing_seconds=1.0)
    cfg, cat = one_stream(sb, "visitor_activity", window_days=100, max_queued_exports=2)
    tap = BackgroundTap(cfg, cat)
    assert tap.read_until(two_queued)
    tap.proc.kill()
    crashed = tap.finish()
    book = crashed.final_state["bookmarks"]["visitor_activity"]
    in_flight = [book["pending_export"]["id"], *(e["id"] for e in book["queued_exports"])]
    creates = sb.stats()["calls"]["create"]
    run = run_tap(cfg, catalog=cat, state=crashed.final_state)
    assert run.returncode == 0, run.stderr[-2000:]
    for eid in in_flight:
        assert f"resuming export {eid} from state" in run.stderr
    assert sb.stats()["calls"]["create"] == creates + 4 - len(in_flight), "only the windows not in flight are new"
    assert "run summary: 1 export(s) created, 3 reused" in run.stderr
    book = run.final_state["bookmarks"]["visitor_activity"]
    assert "pending_export" not in book and "queued_exports" not in book
    complete(sb, "visitor_activity", [crashed, run])


def test_sigterm_keeps_the_recorded_exports_in_flight_for_the_rerun(fresh_sandbox, record_dir):
    """Every export in flight is in the export record: a signal leaves them in Pardot's queue for the rerun."""
    sb = fresh_sandbox(processing_seconds=30)
    cfg, cat = one_stream(sb, "visitor_activity", window_days=100, max_queued_exports=2)
    tap = BackgroundTap(cfg, cat)
    assert tap.read_until(two_queued)
    tap.proc.send_signal(signal.SIGTERM)
    run = tap.finish()
    assert run.returncode == 128 + signal.SIGTERM, run.stderr[-2000:]
    states = {eid: state for eid, state, *_ in exports_of(sb)}
    assert len(states) == 3 and "Canceled" not in states.values(), states
    assert f"kept export(s) {', '.join(map(str, states))} for the rerun to reuse" in run.stderr, run.stderr[-2000:]
    assert recorded_ids(record_dir, sb) == set(states)
    assert run.messages[-1]["type"] == "STATE"


def test_sigterm_cancels_the_exports_the_record_could_not_hold(fresh_sandbox, tmp_path):
    """The record cannot be written (a folder where its file should be): no rerun could find them, so they go."""
    sb = fresh_sandbox(processing_seconds=30)
    folder = block_record(tmp_path / "record", sb)
    cfg, cat = one_stream(sb, "visitor_activity", window_days=100, max_queued_exports=2, record_dir=str(folder))
    tap = BackgroundTap(cfg, cat)
    assert tap.read_until(two_queued)
    tap.proc.send_signal(signal.SIGTERM)
    run = tap.finish()
    assert run.returncode == 128 + signal.SIGTERM, run.stderr[-2000:]
    states = {eid: state for eid, state, *_ in exports_of(sb)}
    assert len(states) == 3 and set(states.values()) == {"Canceled"}, states
    assert run.stderr.count("could not be written") == 1, run.stderr[-3000:]
    assert run.messages[-1]["type"] == "STATE"


def test_an_export_created_ahead_for_a_stream_that_never_uses_it_is_canceled(fresh_sandbox):
    sb = fresh_sandbox(processing_seconds=0.3)
    sb.hold(lambda e: e.object_name == "visitor")  # Waiting, so cancelable, however slow the machine
    sb.inject("bad_value", count=1, op="download")
    config = sb.tap_config(end_date="2024-12-01T00:00:00+00:00", fail_fast=True)  # visitor never starts
    cat = select_streams(discover(config), ["prospect", "visitor"])
    run = run_tap(config, catalog=cat)
    assert run.returncode != 0
    made = exports_of(sb)
    assert len(made) == 2, made
    assert made[1][1] == "Canceled", f"the export created ahead for visitor was left {made[1][1]}"
    sb.release()
    rerun = run_tap(config, catalog=cat, state=run.final_state)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    for stream in ("prospect", "visitor"):
        exp = expected_rows(sb, stream, START, dt.datetime(2024, 12, 1, tzinfo=UTC))
        assert_rows_match(sb, stream, run.records(stream) + rerun.records(stream), exp, sb.config.data.timezone)


# -- polling -------------------------------------------------------------------------------------------


def test_a_long_wait_says_what_it_waits_for(fresh_sandbox, monkeypatch):
    monkeypatch.setattr(polling, "HEARTBEAT_SECONDS", 0.3)
    sb = fresh_sandbox(processing_seconds=1.2)
    cfg, cat = one_stream(sb, "prospect_account", window_days=365, end_date="2024-12-01T00:00:00+00:00")
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    (eid, *_), *_ = exports_of(sb)
    assert re.search(rf"still waiting for export {eid}: Processing for \d+s", run.stderr), run.stderr[-3000:]
    assert re.search(r"prospect_account: summary: .* 1 export\(s\), \d+ API call\(s\), [\d.]+s waiting", run.stderr)
    assert "run summary: 1 export(s) created" in run.stderr.strip().splitlines()[-1]


def test_later_exports_are_first_read_near_the_typical_duration(fresh_sandbox):
    sb = fresh_sandbox(processing_seconds=0.8)
    cfg, cat = one_stream(sb, "prospect_account", window_days=120, max_queued_exports=0, max_poll_interval=5)
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    ids = [e[0] for e in exports_of(sb)]
    reads = [p for _, p in sb.state.requests_log if "/do/read/" in p]
    per_export = [sum(p.endswith(f"/id/{eid}") for p in reads) for eid in ids]
    # the first export is found by doubling from poll_interval; the later ones are read about once
    assert all(n <= 2 for n in per_export[1:]), per_export


# -- the tiling ------------------------------------------------------------------------------------


instants = st.integers(
    min_value=int(dt.datetime(2000, 1, 1, tzinfo=UTC).timestamp()),
    max_value=int(dt.datetime(2035, 1, 1, tzinfo=UTC).timestamp()),
)


@given(start=instants, length=st.integers(1, 5 * 366 * 86400), days=st.floats(0.01, 400))
def test_windows_cover_the_range_in_order_without_gaps(start, length, days):
    a = dt.datetime.fromtimestamp(start, UTC)
    b = a + dt.timedelta(seconds=length)
    ws = tile(a, b, dt.timedelta(days=days))
    assert ws[0].start == a and ws[-1].end == b
    for w, nxt in itertools.pairwise(ws):
        assert w.end == nxt.start
    for w in ws:
        assert w.start < w.end
        assert w.end - w.start <= min(dt.timedelta(days=days), MAX_WINDOW)
        assert w.before - w.after <= dt.timedelta(days=365), "the API's span limit"
        assert w.after == w.start - OVERLAP
