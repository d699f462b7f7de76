"""A real account's differences (issue 11): its fields, renderings, hosts and the first-run check.

Every test runs the tap as users do (a subprocess) against a sandbox variant over loopback.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import typing as t
from zoneinfo import ZoneInfo

import pytest
from pardot_export_sandbox import DataConfig, Sandbox, SandboxConfig
from pardot_export_sandbox.data import BOOL, CUSTOM_FIELD_TYPES, NUMBER
from pardot_export_sandbox.v5data import snake

from tap_pardot_export.streams import load_schema
from tests.helpers import (
    STREAMS,
    assert_rows_match,
    discover,
    expected_rows,
    run_check,
    run_tap,
    select_streams,
    small_v5,
)

UTC = dt.timezone.utc
START, END = dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2025, 1, 1, tzinfo=UTC)
ROWS = {
    "prospect": 60,
    "visitor": 40,
    "visitor_activity": 90,
    "list_membership": 50,
    "prospect_account": 30,
    "external_activity": 40,
}
#: visitor activity as the camel variant is synced: by created_at, prospects only
CAMEL_OPTIONS = {"visitor_activity": {"procedure": "filter_by_created_at", "arguments": {"prospect_only": True}}}
MISSING = {"visitor_activity": ["visit_id", "opportunity_id"], "prospect": ["grade"]}


def make(**kw: t.Any) -> Sandbox:
    """A small sandbox of its own (the caller stops it)."""
    typed = kw.pop("typed_custom_fields", False)
    data = DataConfig(start=START, end=END, rows=dict(ROWS), typed_custom_fields=typed)
    return Sandbox(SandboxConfig(data=small_v5(data), rows_per_file=20, **kw)).start()


@pytest.fixture
def sandboxes() -> t.Iterator[t.Callable[..., Sandbox]]:
    made: list[Sandbox] = []

    def factory(**kw: t.Any) -> Sandbox:
        sb = make(**kw)
        made.append(sb)
        return sb

    yield factory
    for sb in made:
        sb.stop()


def variant_rows(sb: Sandbox, stream: str, options: dict[str, t.Any] | None = None) -> dict[int, dict[str, t.Any]]:
    """The sandbox's truth as this variant renders it: fields the account lacks are absent,
    a false boolean written as an empty cell is null where the schema allows null (else false),
    and a prospect-only export has prospects only."""
    opts = (options or {}).get(stream, {})
    field_name = "created_at" if opts.get("procedure") == "filter_by_created_at" else None
    rows = expected_rows(sb, stream, START, END, field_name=field_name)
    if opts.get("arguments", {}).get("prospect_only"):
        rows = {k: v for k, v in rows.items() if v["prospect_id"] is not None}
    missing = set(sb.config.missing_fields.get(stream, ()))
    kinds = {snake(f.name): f.kind for f in sb.dataset.objects[stream].fields}
    blank = sb.config.bool_style == "blank"
    props = load_schema(stream)["properties"]
    nullable = {snake(name) for name, p in props.items() if "null" in p.get("type", [])}
    for row in rows.values():
        for name in missing:
            row.pop(snake(name), None)
        if blank:
            for name, kind in kinds.items():
                if kind == BOOL and row.get(name) is False and name in nullable:
                    row[name] = None
    return rows


def assert_typed(sb: Sandbox, stream: str, got: list[dict], expected: dict[int, dict]) -> None:
    """Each value has its JSON type: booleans are booleans, integers integers, numbers numbers."""
    kinds = {snake(f.name): f.kind for f in sb.dataset.objects[stream].fields}
    by_id = {rec["id"]: rec for rec in got}
    for rid, exp in expected.items():
        for name, value in exp.items():
            if value is None:
                continue
            have = by_id[rid][name]
            if kinds.get(name) == NUMBER:
                assert isinstance(have, (int, float)) and not isinstance(have, bool), (stream, name, have)
            else:
                assert type(have) is type(value), (stream, rid, name, have, value)


def assert_all_streams(sb: Sandbox, run: t.Any, options: dict[str, t.Any] | None = None) -> None:
    assert run.returncode == 0, run.stderr[-3000:]
    for stream in STREAMS:
        exp = variant_rows(sb, stream, options)
        assert len(exp) > 5, stream
        got = run.records(stream)
        assert_rows_match(sb, stream, got, exp, sb.config.data.timezone)
        assert_typed(sb, stream, got, exp)
        for name in sb.config.missing_fields.get(stream, ()):
            assert all(name not in rec for rec in got), (stream, name)


VARIANTS: dict[str, dict[str, t.Any]] = {
    "digits": {"bool_style": "digits"},
    "blank_false": {"bool_style": "blank"},
    "bom_lf": {"bom": True, "line_ending": "lf"},
    "bom_crlf": {"bom": True},
    "fields_the_account_lacks": {"missing_fields": MISSING},
    "typed_custom_fields": {"typed_custom_fields": True},
    "prospect_only_camel": {"prospect_only_spelling": "camel"},
    "visibility_lag": {"visibility_lag": 60},
    "all_at_once": {
        "bool_style": "blank",
        "bom": True,
        "line_ending": "lf",
        "missing_fields": MISSING,
        "typed_custom_fields": True,
        "prospect_only_spelling": "camel",
        "visibility_lag": 60,
    },
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_full_sync_of_every_stream_in_each_variant(sandboxes, name):
    """Six streams, two windows each, multi-file exports: exactly the variant's rows, typed."""
    kw = VARIANTS[name]
    sb = sandboxes(**kw)
    options = CAMEL_OPTIONS if "prospect_only_spelling" in kw else None
    cfg = sb.tap_config(window_days=200, **({"stream_options": options} if options else {}))
    run = run_tap(cfg)  # no catalog: discovery reads the account's custom fields
    assert_all_streams(sb, run, options)
    if kw.get("typed_custom_fields"):
        rec = next(r for r in run.records("prospect") if r["lifetime_value"] is not None)
        assert isinstance(rec["lifetime_value"], float)
        assert any(r["renewal_date"] for r in run.records("prospect"))
    if "prospect_only_spelling" in kw:
        assert run.stderr.count("sending it as prospectOnly") == 1
    if "missing_fields" in kw:
        for field in ("visit_id", "opportunity_id", "grade"):
            assert run.stderr.count(f"this account has no field {field!r}") == 1, field


def test_result_links_on_another_host(sandboxes):
    """Result links on a second host are followed when download_hosts names it."""
    sb = sandboxes(result_host="127.0.0.2")
    run = run_tap(sb.tap_config(window_days=200, download_hosts=["127.0.0.2"]))
    assert_all_streams(sb, run)
    refused = run_tap(sb.tap_config(window_days=200))
    assert refused.returncode != 0 and "127.0.0.2" in refused.stderr and "Traceback" not in refused.stderr


def test_a_refused_field_is_dropped_once_and_deselecting_it_silences_the_warning(sandboxes):
    sb = sandboxes(missing_fields={"visitor_activity": ["visit_id"]})
    cfg = sb.tap_config(window_days=100)
    cat = select_streams(discover(cfg), ["visitor_activity"])
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stderr.count("this account has no field 'visit_id'") == 1
    assert "deselect visitor_activity.visit_id in the catalog" in run.stderr
    exp = variant_rows(sb, "visitor_activity")
    assert_rows_match(sb, "visitor_activity", run.records("visitor_activity"), exp, sb.config.data.timezone)
    stats = sb.stats()
    assert stats["errors"] == {"5": 1}  # one refused create; the later windows ask without the field
    assert stats["calls"]["create"] == 4 + 1
    # deselected: no refused create, no warning
    for entry in cat["streams"]:
        for md in entry["metadata"]:
            if entry["tap_stream_id"] == "visitor_activity" and md["breadcrumb"] == ["properties", "visit_id"]:
                md["metadata"]["selected"] = False
    quiet = run_tap(cfg, catalog=cat)
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert "visit_id" not in quiet.stderr
    assert sb.stats()["errors"] == {"5": 1}


def test_refusals_that_cannot_be_healed_stay_clear_errors(sandboxes):
    sb = sandboxes(missing_fields={"list_membership": ["updated_at"]})
    cfg = sb.tap_config(window_days=200)
    cat = select_streams(discover(cfg), ["list_membership"])
    run = run_tap(cfg, catalog=cat)
    assert run.returncode != 0
    assert "cannot do without" in run.stderr and "updated_at" in run.stderr
    assert "Traceback" not in run.stderr
    assert not [s for s in run.states() if s.get("bookmarks", {}).get("list_membership", {}).get("replication_key")]
    # an error that names no requested field
    sb2 = sandboxes()
    sb2.state.dataset.objects.pop("list_membership")  # an account that does not export it
    run2 = run_tap(sb2.tap_config(window_days=200), catalog=cat)
    assert run2.returncode != 0
    assert "Invalid object 'listMembership'" in run2.stderr and "Traceback" not in run2.stderr
    assert "no field" not in run2.stderr
    # both spellings refused: the error stands
    sb3 = sandboxes()
    cfg3 = sb3.tap_config(window_days=200, stream_options=CAMEL_OPTIONS)
    cat3 = select_streams(discover(cfg3), ["visitor_activity"])
    # an account that knows neither spelling of the prospect-only argument
    sb3.state.dataset.objects["visitor_activity"].procedures["filter_by_created_at"].extra = {"type": "types"}
    run3 = run_tap(cfg3, catalog=cat3)
    assert run3.returncode != 0
    assert "prospect" in run3.stderr and "Invalid argument" in run3.stderr and "Traceback" not in run3.stderr
    assert sb3.stats()["calls"]["create"] == 2


def test_custom_fields_are_typed_in_discovery_and_records(sandboxes):
    sb = sandboxes(typed_custom_fields=True)
    cat = discover(sb.tap_config())
    props = next(s for s in cat["streams"] if s["tap_stream_id"] == "prospect")["schema"]["properties"]
    # columns are the field ids in snake_case; the field id travels as the property's title
    types = {name: props[name.lower()]["type"] for name, *_ in CUSTOM_FIELD_TYPES}
    assert all(props[name.lower()]["title"] == name for name, *_ in CUSTOM_FIELD_TYPES)
    assert types["Lifetime_Value"] == ["number", "null"]
    assert props["renewal_date"]["format"] == "date" and types["Renewal_Date"] == ["string", "null"]
    for name in ("Nickname", "Interests", "Preferred_Channel", "Region", "Products_Owned", "Bio"):
        assert types[name] == ["string", "null"], name
    assert props["favorite_color"]["type"] == ["string", "null"]
    # a sync with this catalog: the fields come from it (no custom field query), typed
    calls = sb.stats()["calls"].get("custom_field", 0)
    run = run_tap(sb.tap_config(window_days=200), catalog=select_streams(cat, ["prospect"]))
    assert run.returncode == 0, run.stderr[-2000:]
    assert sb.stats()["calls"].get("custom_field", 0) == calls
    exp = variant_rows(sb, "prospect")
    assert_rows_match(sb, "prospect", run.records("prospect"), exp, sb.config.data.timezone)
    assert_typed(sb, "prospect", run.records("prospect"), exp)
    dates = [r["renewal_date"] for r in run.records("prospect") if r["renewal_date"]]
    assert dates and all(dt.date.fromisoformat(d) for d in dates)


def test_discovery_is_offline_without_credentials(sandboxes):
    sb = sandboxes(typed_custom_fields=True)
    cfg = sb.tap_config()
    for key in ("client_id", "client_secret", "refresh_token"):
        cfg.pop(key)
    cat = discover(cfg)
    props = next(s for s in cat["streams"] if s["tap_stream_id"] == "prospect")["schema"]["properties"]
    assert "lifetime_value" not in props and "favorite_color" not in props and "email" in props
    # an access token without a business unit is not enough either
    discover({**cfg, "access_token": sb.issue_token(), "business_unit_id": None})
    assert sb.stats()["calls"] == {}


def test_a_failed_custom_field_query_warns_and_keeps_the_built_in_fields(sandboxes):
    sb = sandboxes(custom_field_query=False)
    run = run_tap(sb.tap_config(custom_fields={"prospect": ["Favorite_Color"]}), args=["--discover"])
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Could not read the account's custom fields" in run.stderr and "error 46" in run.stderr
    props = next(s for s in json.loads(run.stdout)["streams"] if s["tap_stream_id"] == "prospect")["schema"]
    assert "favorite_color" in props["properties"] and "lead_notes" not in props["properties"]


# -- the first-run check -----------------------------------------------------------------------


def assert_no_secrets(sb: Sandbox, text: str) -> None:
    for secret in (sb.config.client_secret, sb.config.refresh_token, *sb.state.issued):
        assert secret not in text


def test_check_passes_on_a_good_account(sandboxes):
    sb = sandboxes(typed_custom_fields=True, missing_fields={"visitor_activity": ["visit_id"]})
    sb.hold()  # the check's exports stay Waiting, as on a busy account, so its cancels find them
    proc = run_check(sb.tap_config())
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    out = proc.stdout
    for line in (
        "OK    token: obtained and refreshed",
        f"OK    business unit {sb.config.business_unit_id} found",
        "OK    API version 4",
        "OK    custom fields: 12 found",
        "NOTE  visitor_activity: this account has no field(s) visit_id",
        "OK    timezone America/New_York agrees",
        "Result: all checks passed",
    ):
        assert line in out, line
    for stream in STREAMS:
        assert f"OK    {stream}: may export" in out, stream
    stats = sb.stats()
    # a page per query stream, and the daily allowance's read
    v5 = stats["calls"].get("query_v5", 0) + stats["calls"].get("account_v5", 0)
    assert v5 == 29 + 1 and stats["api_calls"] - v5 <= 20 and "download" not in stats["calls"]
    assert all(e["state"] == "Canceled" for e in stats["exports"].values())
    assert_no_secrets(sb, proc.stdout + proc.stderr)


def utc_offset_now(zone: str) -> str:
    off = dt.datetime.now(ZoneInfo(zone)).utcoffset() or dt.timedelta(0)
    minutes = int(off.total_seconds() // 60)
    return f"UTC{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


NY, PARIS = utc_offset_now("America/New_York"), utc_offset_now("Europe/Paris")


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ({"business_unit_id": "0Uv5e0000000009AAA"}, "try api_url=https://pi.demo.pardot.com"),
        ({"api_version": 3}, "set api_version=4"),
        ({"timezone": "Europe/Paris"}, f"timezone Europe/Paris is {PARIS} now, but Pardot writes times at {NY}"),
        ({"timezone": None}, f"timezone is not set; Pardot writes times at {NY}"),
        ({"client_secret": "wrong-s3cret"}, "FAIL  token: Salesforce refused"),
        ({"start_date": "yesterday"}, "FAIL  settings: start_date"),
    ],
)
def test_check_says_what_to_change(sandboxes, override, words):
    sb = sandboxes()
    proc = run_check({k: v for k, v in sb.tap_config(**override).items() if v is not None})
    assert proc.returncode == 1, proc.stdout
    assert words in proc.stdout, proc.stdout
    assert "FAIL" in proc.stdout and "Traceback" not in proc.stdout + proc.stderr
    assert_no_secrets(sb, proc.stdout + proc.stderr)
    assert "wrong-s3cret" not in proc.stdout + proc.stderr


def test_check_fails_a_stream_the_account_refuses(sandboxes):
    sb = sandboxes()
    sb.state.dataset.objects.pop("external_activity")  # this account does not export it
    proc = run_check(sb.tap_config())
    assert proc.returncode == 1
    assert "FAIL  external_activity: cannot export" in proc.stdout and "deselect the stream" in proc.stdout
    assert "OK    prospect: may export" in proc.stdout


def test_check_reads_settings_from_the_environment_as_meltano_passes_them(sandboxes):
    """``meltano invoke tap-pardot-export:check`` runs ``--check --config ENV``: every value a string."""
    sb = sandboxes()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_PARDOT_EXPORT_")}
    for key, value in sb.tap_config(window_days=30, custom_fields={"prospect": ["Favorite_Color"]}).items():
        env[f"TAP_PARDOT_EXPORT_{key.upper()}"] = json.dumps(value) if isinstance(value, dict) else str(value)
    proc = subprocess.run(
        [sys.executable, "-m", "tap_pardot_export", "--check", "--config", "ENV"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    assert "Result: all checks passed" in proc.stdout
