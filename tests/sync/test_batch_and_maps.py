"""BATCH output straight from the CSV stream, with correct bookmarks; the SDK path for stream maps."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

from tests.helpers import assert_rows_match, discover, expected_rows, run_tap, select_streams
from tests.singer_messages import read_batches

UTC = dt.timezone.utc
START, END = dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2025, 1, 1, tzinfo=UTC)


def test_batch_messages_hold_every_row_and_bookmarks_follow_them(sandbox, tmp_path):
    cfg = sandbox.tap_config(
        window_days=90,
        batch_config={
            "encoding": {"format": "jsonl", "compression": "gzip"},
            "storage": {"root": f"file://{tmp_path}", "prefix": "b-"},
            "batch_size": 70,
        },
    )
    cat = select_streams(discover(cfg), ["visitor_activity", "external_activity"])
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    assert not run.records(), "BATCH mode writes no RECORD messages"
    batches = read_batches(run)
    for stream in ("visitor_activity", "external_activity"):
        exp = expected_rows(sandbox, stream, START, END)
        assert_rows_match(sandbox, stream, batches[stream], exp, sandbox.config.data.timezone)
    # every bookmark is emitted after the batches that hold the rows before it
    seen: list[dict] = []
    for m in run.messages:
        if m["type"] == "BATCH" and m["stream"] == "visitor_activity":
            for url in m["manifest"]:
                with gzip.open(Path(url.removeprefix("file://")), "rt") as fh:
                    seen.extend(json.loads(line) for line in fh)
        if m["type"] == "STATE":
            mark = m["value"]["bookmarks"].get("visitor_activity", {}).get("replication_key_value")
            if mark:
                ids = {r["id"] for r in seen}
                owed = {
                    k
                    for k, v in expected_rows(sandbox, "visitor_activity", START, END).items()
                    if v["updated_at"] < mark
                }
                assert owed <= ids, f"state at {mark} covers rows not yet in a BATCH"
    marks = {
        m["value"]["bookmarks"]["visitor_activity"].get("replication_key_value")
        for m in run.messages
        if m["type"] == "STATE" and "visitor_activity" in m["value"]["bookmarks"]
    }
    assert len(marks - {None}) == 5  # 366 days in 90-day windows
    assert run.final_state["bookmarks"]["visitor_activity"]["replication_key_value"] == "2025-01-01T00:00:00+00:00"

    # an incremental rerun from that state has nothing left to send
    again = run_tap(cfg, catalog=cat, state=run.final_state)
    assert again.returncode == 0
    assert not read_batches(again)


def test_stream_maps_take_the_sdk_path_and_stay_correct(sandbox):
    cfg = sandbox.tap_config(
        window_days=200,
        stream_maps={"visitor": {"views_doubled": "page_view_count * 2", "hostname": None}},
    )
    cat = select_streams(discover(cfg), ["visitor"])
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    recs = run.records("visitor")
    assert recs and all(r["views_doubled"] == 2 * r["page_view_count"] for r in recs)
    assert all("hostname" not in r for r in recs)
    exp = expected_rows(sandbox, "visitor", START, END)
    for v in exp.values():
        v.pop("hostname")
        v["views_doubled"] = 2 * v["page_view_count"]
    assert_rows_match(sandbox, "visitor", recs, exp, sandbox.config.data.timezone)
