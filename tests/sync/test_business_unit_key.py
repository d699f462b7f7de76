"""business_unit_key: every record of every stream carries its business unit, which leads every stream's key.

Off (the default) nothing changes: no column, keys ``["id"]``. On, the catalog and the SCHEMA
messages key every stream on ``["business_unit_id", "id"]``, and every record (the fast write
path, the SDK's general path, BATCH files, recycle-bin rows of export and query streams) holds
``business_unit_id``, the configured id, as a non-null string.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import typing as t
from pathlib import Path

from tap_pardot_export.spec import SPECS
from tests.helpers import STREAMS, discover, expected_rows, run_tap, select_streams
from tests.query_helpers import BINNED, QUERY, account_row, by_id, expected
from tests.wide_helpers import wide_catalog, wide_sandbox

if t.TYPE_CHECKING:
    from pardot_export_sandbox import Sandbox

    from tests.helpers import TapRun

UTC = dt.timezone.utc
START, END = dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2025, 1, 1, tzinfo=UTC)
BU = "0Uv5e0000000077EMA"
KEY = ["business_unit_id", "id"]


def config(sb: Sandbox, **extra: t.Any) -> dict[str, t.Any]:
    """Quick windows; the key setting on unless ``extra`` says otherwise."""
    return sb.tap_config(**{"window_days": 183, "business_unit_key": True, **extra})


def catalog_keys(catalog: dict[str, t.Any]) -> dict[str, list[str]]:
    out = {}
    for entry in catalog["streams"]:
        (top,) = (md["metadata"] for md in entry["metadata"] if md["breadcrumb"] == [])
        out[entry["tap_stream_id"]] = top["table-key-properties"]
        assert entry["key_properties"] == top["table-key-properties"]
    return out


def schemas(run: TapRun) -> dict[str, dict[str, t.Any]]:
    return {m["stream"]: m for m in run.messages if m["type"] == "SCHEMA"}


def assert_stamped(run: TapRun, names: t.Iterable[str]) -> None:
    """Each stream's SCHEMA keys on (business_unit_id, id), and each of its records holds BU, first."""
    sent = schemas(run)
    for name in names:
        assert sent[name]["key_properties"] == KEY, name
        assert sent[name]["schema"]["properties"]["business_unit_id"] == {"type": ["string"]}, name
        assert "business_unit_id" in sent[name]["schema"]["required"], name
        records = run.records(name)
        assert records, f"{name}: no records to check"
        assert all(next(iter(r)) == "business_unit_id" and r["business_unit_id"] == BU for r in records), name


def test_off_by_default_nothing_changes(fresh_sandbox):
    sb = fresh_sandbox(business_unit_id=BU)
    cfg = sb.tap_config(window_days=183)
    cat = discover(cfg)
    assert catalog_keys(cat) == {name: ["id"] for name in SPECS}
    assert not any("business_unit_id" in entry["schema"]["properties"] for entry in cat["streams"])
    run = run_tap(cfg, catalog=select_streams(cat, ["visitor", "tag"]))
    assert run.returncode == 0, run.stderr[-3000:]
    for name in ("visitor", "tag"):
        assert schemas(run)[name]["key_properties"] == ["id"]
        assert run.records(name) and not any("business_unit_id" in r for r in run.records(name))


def test_the_catalog_keys_every_stream_on_the_business_unit_and_id(fresh_sandbox):
    sb = fresh_sandbox(business_unit_id=BU)
    offline = {k: v for k, v in config(sb).items() if k not in ("client_id", "client_secret", "refresh_token")}
    for cat in (discover(offline), discover(config(sb))):  # without credentials, and reading the account
        assert catalog_keys(cat) == dict.fromkeys(SPECS, KEY)
        for entry in cat["streams"]:
            assert entry["schema"]["properties"]["business_unit_id"] == {"type": ["string"]}
            auto = {tuple(md["breadcrumb"]): md["metadata"].get("inclusion") for md in entry["metadata"]}
            assert auto[("properties", "business_unit_id")] == "automatic", entry["tap_stream_id"]


def test_every_record_of_every_stream_carries_it_recycle_bin_rows_included(fresh_sandbox):
    """The fast write path of all 35 streams, capture_deletes on: ids exact, each record stamped."""
    sb = fresh_sandbox(business_unit_id=BU)
    cfg = config(sb, capture_deletes=True)
    run = run_tap(cfg, catalog=discover(cfg))
    assert run.returncode == 0, run.stderr[-3000:]
    assert_stamped(run, SPECS)
    for name in STREAMS:
        got = {r["id"] for r in run.records(name)}
        assert got == set(expected_rows(sb, name, START, END, include_deleted=SPECS[name].captures_deletes)), name
    deleted = [r for name in STREAMS for r in run.records(name) if r.get("_sdc_deleted_at")]
    assert deleted, "the recycle-bin pass sent rows"
    for name in QUERY:
        want = {account_row(sb)["id"]} if name == "account" else set(expected(sb, name))
        assert set(by_id(run.records(name))) == want, name
    assert any(r["is_deleted"] for name in BINNED for r in run.records(name))


def test_the_sdk_path_and_batch_files_carry_it_too(fresh_sandbox, tmp_path):
    sb = fresh_sandbox(business_unit_id=BU)
    names = ["visitor", "external_activity", "form", "email"]
    # stream maps send every stream through the SDK's per-record path
    mapped = config(sb, stream_maps={"visitor": {"twice": "page_view_count * 2"}, "form": {"named": "name"}})
    run = run_tap(mapped, catalog=select_streams(discover(mapped), names))
    assert run.returncode == 0, run.stderr[-3000:]
    assert_stamped(run, ["external_activity", "email"])
    for name in ("visitor", "form"):
        assert run.records(name) and all(r["business_unit_id"] == BU for r in run.records(name)), name
    batch = config(
        sb,
        batch_config={
            "encoding": {"format": "jsonl", "compression": "gzip"},
            "storage": {"root": f"file://{tmp_path}", "prefix": "b-"},
            "batch_size": 100,
        },
    )
    run = run_tap(batch, catalog=select_streams(discover(batch), names))
    assert run.returncode == 0, run.stderr[-3000:]
    lines: dict[str, list[dict[str, t.Any]]] = {}
    for m in run.messages:
        if m["type"] == "BATCH":
            for url in m["manifest"]:
                with gzip.open(Path(url.removeprefix("file://")), "rt") as fh:
                    lines.setdefault(m["stream"], []).extend(json.loads(line) for line in fh)
    assert set(lines) == set(names)
    for name, records in lines.items():
        assert all(r["business_unit_id"] == BU for r in records), name
    assert {r["id"] for r in lines["visitor"]} == set(expected_rows(sb, "visitor", START, END))
    assert {r["id"] for r in lines["form"]} == set(expected(sb, "form"))


def test_a_field_that_makes_the_same_column_keeps_its_api_name(fresh_sandbox):
    sb = fresh_sandbox(business_unit_id=BU)
    cfg = config(sb, custom_fields={"prospect": ["Business_Unit_Id"]})
    cat = discover({k: v for k, v in cfg.items() if k not in ("client_id", "client_secret", "refresh_token")})
    (prospect,) = (e for e in cat["streams"] if e["tap_stream_id"] == "prospect")
    props = prospect["schema"]["properties"]
    assert props["business_unit_id"] == {"type": ["string"]}
    assert props["Business_Unit_Id"] == {"type": ["string", "null"]}


def test_a_catalog_made_with_the_other_value_is_refused_by_name(fresh_sandbox):
    sb = fresh_sandbox(business_unit_id=BU)
    on, off = config(sb), config(sb, business_unit_key=False)
    for cfg, made_with, words in (
        (on, off, "business_unit_key is on but the catalog has no business_unit_id property"),
        (off, on, "the catalog has a business_unit_id property (it was made with business_unit_key on)"),
    ):
        for stream in ("visitor", "tag"):
            run = run_tap(cfg, catalog=select_streams(discover(made_with), [stream]))
            assert run.returncode == 1, run.stderr[-2000:]
            assert f"stream {stream}: {words}" in run.stderr
            assert "Traceback" not in run.stderr
            assert not run.records()


def test_a_prospect_wider_than_an_export_is_joined_with_it(fresh_sandbox):
    """300 custom fields: field groups joined by id on disk, the recycle bin's too; each record whole and stamped."""
    sb = wide_sandbox(fresh_sandbox, prospects=300, business_unit_id=BU)
    cfg = config(sb, window_days=365, capture_deletes=True)
    run = run_tap(cfg, catalog=wide_catalog(cfg))
    assert run.returncode == 0, run.stderr[-3000:]
    assert "from 3 field groups" in run.stderr
    assert_stamped(run, ["prospect"])
    fields = set(schemas(run)["prospect"]["schema"]["properties"])
    assert all(set(r) == fields for r in run.records("prospect"))
    every = expected_rows(sb, "prospect", START, END, include_deleted=True)
    assert {r["id"] for r in run.records("prospect")} == set(every)
