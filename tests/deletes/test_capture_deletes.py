"""capture_deletes: records in Pardot's recycle bin arrive with _sdc_deleted_at, at the pass cadence, state exact."""

from __future__ import annotations

import datetime as dt
import typing as t

import pytest

from tap_pardot_export.errors import ResultFormatError
from tap_pardot_export.streams import ExportStream
from tests.helpers import discover, expected_rows, iso, run_tap, select_streams

if t.TYPE_CHECKING:
    from pardot_export_sandbox import Sandbox

UTC = dt.timezone.utc
START = dt.datetime(2024, 1, 1, tzinfo=UTC)
END = dt.datetime(2025, 1, 1, tzinfo=UTC)
STREAM = "prospect"


def config(sb: Sandbox, **extra: t.Any) -> dict[str, t.Any]:
    """A quick config: one window a quarter, one export after another, capture_deletes on."""
    return sb.tap_config(window_days=92, max_queued_exports=0, capture_deletes=True, **extra)


def catalog(cfg: dict[str, t.Any], stream: str = STREAM) -> dict[str, t.Any]:
    return select_streams(discover(cfg), [stream])


def bin_exports(sb: Sandbox) -> list[int]:
    """The ids of the exports that read a recycle bin (deleted or prospect_deleted true)."""
    return sorted(e.id for e in sb.state.exports.values() if "true" in (e.spec.deleted, e.spec.prospect_deleted))


def deleted_ids(sb: Sandbox, stream: str, start: dt.datetime, end: dt.datetime) -> set[int]:
    """The sandbox's recycle bin: ids of the deleted records of ``stream`` updated in [start, end)."""
    every = expected_rows(sb, stream, start, end, include_deleted=True)
    return set(every) - set(expected_rows(sb, stream, start, end))


def marked(records: list[dict[str, t.Any]]) -> dict[int, str]:
    return {r["id"]: r["_sdc_deleted_at"] for r in records if r["_sdc_deleted_at"] is not None}


def test_record_deleted_between_runs_arrives_marked_and_live_ones_never(fresh_sandbox):
    """Run 1 syncs a record live; it is deleted (updated_at unchanged); run 2 marks it with the pass's time."""
    sb = fresh_sandbox()
    cut = dt.datetime(2024, 7, 1, tzinfo=UTC)
    cfg = config(sb, end_date=iso(cut))
    cat = catalog(cfg)
    run1 = run_tap(cfg, catalog=cat)
    assert run1.returncode == 0, run1.stderr[-2000:]
    schema = next(m["schema"] for m in run1.messages if m["type"] == "SCHEMA" and m["stream"] == STREAM)
    assert schema["properties"]["_sdc_deleted_at"] == {"type": ["string", "null"], "format": "date-time"}
    recs1 = run1.records(STREAM)
    assert all("_sdc_deleted_at" in r for r in recs1)
    assert set(marked(recs1)) == deleted_ids(sb, STREAM, START, cut)
    assert set(marked(recs1).values()) == {"2024-07-01T00:00:00Z"}
    live1 = {r["id"] for r in recs1 if r["_sdc_deleted_at"] is None}
    assert live1 == set(expected_rows(sb, STREAM, START, cut))

    gone = sorted(live1)[:5]
    sb.delete_records(STREAM, gone)
    run2 = run_tap({**cfg, "end_date": iso(END)}, catalog=cat, state=run1.final_state)
    assert run2.returncode == 0, run2.stderr[-2000:]
    recs2 = run2.records(STREAM)
    got = marked(recs2)
    assert set(gone) <= set(got), "a record deleted after it was synced arrives marked"
    assert set(got) == deleted_ids(sb, STREAM, START, END)
    assert set(got.values()) == {"2025-01-01T00:00:00Z"}
    live = set(expected_rows(sb, STREAM, START, END))
    assert not live & set(got), "a live record is never marked"
    assert {r["id"] for r in recs2 if r["_sdc_deleted_at"] is None} <= live


def test_prospect_deleted_procedure_marks_visitors_of_deleted_prospects(fresh_sandbox):
    """filter_by_prospect_updated_at: the pass asks prospect_deleted=true, not deleted."""
    sb = fresh_sandbox()
    cfg = config(sb, stream_options={"visitor": {"procedure": "filter_by_prospect_updated_at"}})
    run = run_tap(cfg, catalog=catalog(cfg, "visitor"))
    assert run.returncode == 0, run.stderr[-2000:]
    ids = bin_exports(sb)
    assert ids and all(sb.state.exports[i].spec.prospect_deleted == "true" for i in ids)
    assert all(sb.state.exports[i].spec.deleted == "false" for i in ids)
    got = marked(run.records("visitor"))
    assert got, "visitors of deleted prospects arrive marked"


def test_setting_off_changes_nothing(fresh_sandbox):
    """Without capture_deletes: no _sdc_deleted_at in schema or records, no recycle-bin export."""
    sb = fresh_sandbox()
    cfg = config(sb)
    del cfg["capture_deletes"]
    run = run_tap(cfg, catalog=catalog(cfg))
    assert run.returncode == 0, run.stderr[-2000:]
    schema = next(m["schema"] for m in run.messages if m["type"] == "SCHEMA" and m["stream"] == STREAM)
    assert "_sdc_deleted_at" not in schema["properties"]
    assert not any("_sdc_deleted_at" in r for r in run.records(STREAM))
    assert bin_exports(sb) == []
    assert "deletes_pass_at" not in run.final_state["bookmarks"][STREAM]
    assert {r["id"] for r in run.records(STREAM)} == set(expected_rows(sb, STREAM, START, END))


def test_pass_cadence_is_honoured(fresh_sandbox):
    """A second run within deletes_pass_days makes no recycle-bin export; with 0 it makes one."""
    sb = fresh_sandbox()
    cfg = config(sb)
    cat = catalog(cfg)
    run1 = run_tap(cfg, catalog=cat)
    assert run1.returncode == 0, run1.stderr[-2000:]
    first = bin_exports(sb)
    assert len(first) == 2, "one export per year of range: 2024 is 366 days"
    assert run1.final_state["bookmarks"][STREAM]["deletes_pass_at"] == iso(END)
    run2 = run_tap({**cfg, "end_date": "2025-01-01T12:00:00+00:00"}, catalog=cat, state=run1.final_state)
    assert run2.returncode == 0, run2.stderr[-2000:]
    assert bin_exports(sb) == first, "within a day of the last pass: no recycle-bin export"
    assert not marked(run2.records(STREAM))
    run3 = run_tap({**cfg, "deletes_pass_days": 0}, catalog=cat, state=run2.final_state)
    assert run3.returncode == 0, run3.stderr[-2000:]
    assert len(bin_exports(sb)) == len(first) + 2


def test_pass_does_not_move_the_bookmark(fresh_sandbox):
    """Every STATE of the pass keeps the stream's bookmark where its own windows left it."""
    sb = fresh_sandbox()
    cut = dt.datetime(2024, 7, 1, tzinfo=UTC)
    cfg = config(sb, end_date=iso(cut))
    run = run_tap(cfg, catalog=catalog(cfg))
    assert run.returncode == 0, run.stderr[-2000:]
    states = [s["bookmarks"][STREAM] for s in run.states() if STREAM in s.get("bookmarks", {})]
    in_pass = [s for s in states if "deletes_pass" in s]
    assert in_pass, "the pass checkpoints its own progress"
    assert all(s["replication_key_value"] == iso(cut) for s in in_pass)
    assert all(s["deletes_pass"].get("replication_key_value", "") <= iso(cut) for s in in_pass)
    final = run.final_state["bookmarks"][STREAM]
    assert final["replication_key_value"] == iso(cut)
    assert "deletes_pass" not in final
    assert final["deletes_pass_at"] == iso(cut)


def test_interrupted_pass_is_finished_by_the_next_run(fresh_sandbox, monkeypatch):
    """A pass that fails half way keeps its marker unmoved; the next run finishes it even within the cadence."""
    sb = fresh_sandbox()
    early = dt.datetime(2024, 12, 20, tzinfo=UTC)
    cfg = config(sb, start_date="2023-01-01T00:00:00+00:00", end_date=iso(early))  # the pass: 2 windows
    cat = catalog(cfg)
    run0 = run_tap(cfg, catalog=cat)
    assert run0.returncode == 0, run0.stderr[-2000:]
    assert run0.final_state["bookmarks"][STREAM]["deletes_pass_at"] == iso(early)

    real = ExportStream.open_file

    def failing(self: ExportStream, rf: t.Any, conv: t.Any, deleted_at: str | None = None) -> t.Any:
        if deleted_at is None:  # the stream's own windows
            return real(self, rf, conv, deleted_at)
        msg = "pass interrupted on purpose"  # at the pass's first file: 2023 has no rows, so its window is done
        raise ResultFormatError(msg)

    monkeypatch.setattr(ExportStream, "open_file", failing)
    cfg_a = {**cfg, "end_date": iso(END)}
    run_a = run_tap(cfg_a, catalog=cat, state=run0.final_state)
    assert run_a.returncode != 0
    assert "pass interrupted on purpose" in run_a.everything
    state_a = run_a.final_state["bookmarks"][STREAM]
    assert state_a["deletes_pass_at"] == iso(early), "the marker moves only once the whole pass was emitted"
    assert state_a["replication_key_value"] == iso(END)
    assert state_a["deletes_pass"]["replication_key_value"] >= "2023-12-31", "its first window is done"
    monkeypatch.setattr(ExportStream, "open_file", real)

    before = bin_exports(sb)
    run_b = run_tap({**cfg_a, "deletes_pass_days": 30}, catalog=cat, state=run_a.final_state)
    assert run_b.returncode == 0, run_b.stderr[-2000:]
    assert len(bin_exports(sb)) > len(before), "the interrupted pass runs again though within deletes_pass_days"
    got = set(marked(run_a.records(STREAM))) | set(marked(run_b.records(STREAM)))
    assert got == deleted_ids(sb, STREAM, START, END)
    final = run_b.final_state["bookmarks"][STREAM]
    assert final["deletes_pass_at"] == iso(END)
    assert "deletes_pass" not in final


@pytest.mark.parametrize(
    ("argument", "procedure"), [("deleted", None), ("prospect_deleted", "filter_by_prospect_updated_at")]
)
def test_deleted_argument_contradicts_capture_deletes(sandbox, argument, procedure):
    """A user's own deleted argument with capture_deletes on is refused, naming both."""
    options: dict[str, t.Any] = {"arguments": {argument: "all"}}
    if procedure:
        options["procedure"] = procedure
    cfg = config(sandbox, stream_options={"visitor": options})
    run = run_tap(cfg, catalog=catalog(config(sandbox), "visitor"))  # discovery refuses the contradiction too
    assert run.returncode != 0
    assert f"stream_options.visitor.arguments.{argument} contradicts capture_deletes" in run.everything
    assert "Traceback" not in run.everything


def test_pass_stopped_by_the_call_budget_is_not_marked_done(fresh_sandbox):
    """max_api_calls ends the run inside the pass (exit 0): its marker stays unset until the next run finishes it."""
    sb = fresh_sandbox()
    cfg = config(sb, start_date="2019-01-01T00:00:00+00:00")  # the pass: 7 windows of a year
    cat = catalog(cfg)
    plain = {k: v for k, v in cfg.items() if k != "capture_deletes"}
    run0 = run_tap(plain, catalog=cat)
    assert run0.returncode == 0, run0.stderr[-2000:]
    run1 = run_tap({**cfg, "max_api_calls": 10}, catalog=cat, state=run0.final_state)
    assert run1.returncode == 0, run1.stderr[-2000:]
    first = len(bin_exports(sb))
    assert 1 <= first < 7, "the budget stops the pass after a few windows"
    state1 = run1.final_state["bookmarks"][STREAM]
    assert "deletes_pass_at" not in state1, "a pass stopped by the budget is not done"
    assert state1["replication_key_value"] == iso(END)
    run2 = run_tap(cfg, catalog=cat, state=run1.final_state)
    assert run2.returncode == 0, run2.stderr[-2000:]
    assert len(bin_exports(sb)) == 7, "the next run resumes the pass where it stopped"
    got = set(marked(run1.records(STREAM))) | set(marked(run2.records(STREAM)))
    assert got == deleted_ids(sb, STREAM, START, END)
    assert run2.final_state["bookmarks"][STREAM]["deletes_pass_at"] == iso(END)


def test_catalog_without_the_deleted_column_is_refused(sandbox):
    """capture_deletes with a catalog discovered without it: a clear error before any API call."""
    cfg = config(sandbox)
    old = catalog({k: v for k, v in cfg.items() if k != "capture_deletes"})
    calls = sandbox.stats()
    run = run_tap(cfg, catalog=old)
    assert run.returncode != 0
    assert "capture_deletes is on but the catalog has no _sdc_deleted_at" in run.everything
    assert "Traceback" not in run.everything
    assert sandbox.stats() == calls, "refused before any API call"


def only_fields(
    cat: dict[str, t.Any], stream: str, keep: set[str], *, inclusion: str | None = None
) -> dict[str, t.Any]:
    """As ``meltano select tap prospect id email updated_at`` leaves a catalog: every other field deselected.

    ``inclusion`` rewrites ``_sdc_deleted_at``'s inclusion too (a hand-edited catalog).
    """
    for entry in cat["streams"]:
        if entry["tap_stream_id"] != stream:
            continue
        for md in entry["metadata"]:
            crumb = md["breadcrumb"]
            if len(crumb) == 2 and crumb[1] not in keep:
                md["metadata"]["selected"] = False
                if inclusion and crumb[1] == "_sdc_deleted_at":
                    md["metadata"]["inclusion"] = inclusion
    return cat


@pytest.mark.parametrize("inclusion", [None, "available"])
def test_the_deleted_marker_cannot_be_deselected_while_capture_deletes_is_on(fresh_sandbox, inclusion):
    """Found: selecting fields (id email updated_at) left out _sdc_deleted_at: deleted prospects loaded as live."""
    sb = fresh_sandbox()
    cfg = config(sb, end_date=iso(dt.datetime(2024, 7, 1, tzinfo=UTC)))
    discovered = catalog(cfg)
    md = next(e for e in discovered["streams"] if e["tap_stream_id"] == STREAM)["metadata"]
    entry = next(m["metadata"] for m in md if m["breadcrumb"] == ["properties", "_sdc_deleted_at"])
    assert entry["inclusion"] == "automatic"
    cat = only_fields(discovered, STREAM, {"id", "email", "updated_at"}, inclusion=inclusion)
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    records = run.records(STREAM)
    assert records and all(set(r) == {"id", "email", "updated_at", "_sdc_deleted_at"} for r in records)
    assert set(marked(records)) == deleted_ids(sb, STREAM, START, dt.datetime(2024, 7, 1, tzinfo=UTC))
