"""Settings: the schema tells the truth, and every bad value is refused clearly before any call.

No secret is echoed, the run's end and the time zone follow their policies, a corrupted state is
refused with a way out. In-process wherever no process boundary is under test.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import logging
import typing as t
from pathlib import Path

import pytest
import yaml

from tap_pardot_export.engine.state import parse_state
from tap_pardot_export.errors import PardotConfigError
from tap_pardot_export.settings.checks import run_end
from tap_pardot_export.settings.config import Settings, zone
from tap_pardot_export.settings.messages import SECRETS
from tap_pardot_export.settings.schema import settings_schema
from tap_pardot_export.spec import SPECS
from tap_pardot_export.tap import TapPardotExport
from tests.helpers import with_defaults
from tests.settings_helpers import LOOPBACK, config, errors_of, full_schema, tap_cli

ROOT = Path(__file__).resolve().parent.parent
UTC = dt.timezone.utc
SECRET_DIGITS = 98765432109876


# -- the schema tells the truth --------------------------------------------------------------------


def test_about_marks_required_settings_and_documents_stream_options():
    about = json.loads(tap_cli("--about", "--format=json").stdout)
    schema = about["settings"]
    assert {"business_unit_id", "start_date"} <= set(schema["required"])
    options = schema["properties"]["stream_options"]
    assert options["additionalProperties"] is False
    assert set(options["properties"]) == {n for n, s in SPECS.items() if s.windowed}
    for spec in (s for s in SPECS.values() if s.kind == "export"):
        entry = options["properties"][spec.name]
        assert entry["additionalProperties"] is False
        assert entry["properties"]["procedure"]["enum"] == [p.name for p in spec.procedures]
        allowed = {a for p in spec.procedures for a in p.arguments}
        assert set(entry["properties"]["arguments"]["properties"]) == allowed
    markdown = tap_cli("--about", "--format=markdown").stdout
    assert "| business_unit_id | True |" in markdown
    assert "| stream_options.visitor_activity.procedure |" in markdown
    assert "filter_by_created_at" in markdown.split("| stream_options.visitor_activity.procedure |")[1].split("\n")[0]


def test_every_number_has_a_minimum_and_a_maximum():
    def numbers(schema: dict[str, t.Any], path: str) -> t.Iterator[tuple[str, dict[str, t.Any]]]:
        types = schema.get("type", [])
        if {"number", "integer"} & set([types] if isinstance(types, str) else types) and "enum" not in schema:
            yield path, schema
        for name, sub in (schema.get("properties") or {}).items():
            yield from numbers(sub, f"{path}.{name}" if path else name)
        for rule in schema.get("allOf", []):
            yield from numbers(rule.get("then", {}), path)

    found = list(numbers(settings_schema(), ""))
    assert len(found) >= 12
    unbounded = [p for p, s in found if "minimum" not in s or "maximum" not in s]
    assert not unbounded, unbounded


def test_new_settings_have_the_agreed_names_and_defaults():
    props = settings_schema()["properties"]
    agreed = {
        "download_hosts": [],
        "download_timeout": 3600,
        "retry_max_time": 600,
        "infer_timezone": False,
        "safety_lag_minutes": 5,
    }
    for name, default in agreed.items():
        assert props[name]["default"] == default, name
        assert props[name]["title"] and props[name]["description"], name
    assert props["safety_lag_minutes"]["minimum"] == 0
    assert props["safety_lag_minutes"]["maximum"] == 1440


def test_discover_with_an_empty_config_works_offline(capsys):
    tap = TapPardotExport(config={}, parse_env_config=False, validate_config=False, setup_mapper=False)
    tap.run_discovery()
    catalog = json.loads(capsys.readouterr().out)
    assert {s["tap_stream_id"] for s in catalog["streams"]} == set(SPECS)


def test_a_sync_needs_the_required_settings():
    errors = errors_of({})
    assert any(e.startswith("business_unit_id is required") for e in " ; ".join(errors).split("; ")), errors
    assert "start_date is required" in " ".join(errors)


def test_a_good_config_is_accepted():
    assert errors_of(config()) == []


# -- refused, one clear line each ------------------------------------------------------------------

BAD = [
    ({"window_days": 0.0001}, "window_days 0.0001 is out of range: it must be at least 0.04"),
    ({"window_days": 400}, "window_days 400 is out of range"),
    ({"window_days": "30"}, "window_days must be a number, not a string '30'"),
    ({"max_concurrency": 10}, "max_concurrency 10 is out of range: it must be at least 1 and at most 5"),
    ({"max_concurrency": 0}, "max_concurrency 0 is out of range"),
    ({"max_concurrency": 2.5}, "max_concurrency must be a whole number"),
    ({"max_retries": -1}, "max_retries -1 is out of range"),
    ({"max_retries": 1000}, "max_retries 1000 is out of range"),
    ({"request_timeout": 0}, "request_timeout 0 is out of range"),
    ({"export_timeout": 0}, "export_timeout 0 is out of range"),
    ({"download_timeout": 0}, "download_timeout 0 is out of range"),
    ({"retry_max_time": -1}, "retry_max_time -1 is out of range"),
    ({"max_api_calls": 3}, "max_api_calls 3 is out of range: it must be at least 10"),
    ({"poll_interval": 0}, "poll_interval 0 is out of range"),
    ({"max_poll_interval": 0.1}, "max_poll_interval 0.1 is out of range"),
    ({"safety_lag_minutes": -1}, "safety_lag_minutes -1 is out of range"),
    ({"safety_lag_minutes": 2000}, "safety_lag_minutes 2000 is out of range"),
    ({"api_version": 5}, "api_version 5 is not allowed; use one of 3, 4"),
    ({"infer_timezone": "yes"}, "infer_timezone must be true or false"),
    ({"business_unit_id": "12345"}, "business_unit_id is malformed: '12345' is not 18 characters starting with 0Uv"),
    ({"api_url": "pi.pardot.com"}, "api_url 'pi.pardot.com' is not an http(s) URL"),
    ({"login_url": "login.salesforce.com"}, "login_url 'login.salesforce.com' is not an http(s) URL"),
    ({"download_hosts": ["https://www.pardot.com/x"]}, "download_hosts.0 'https://www.pardot.com/x' is not a host"),
    ({"download_hosts": "www.pardot.com"}, "download_hosts must be a list"),
    ({"start_date": "last tuesday"}, "start_date 'last tuesday' is not an ISO 8601 date"),
    ({"end_date": "2024-13-01"}, "end_date '2024-13-01' is not an ISO 8601 date"),
    ({"custom_fields": {"prospects": ["A"]}}, "custom_fields: unknown stream 'prospects'; streams: prospect, visitor"),
    ({"stream_options": {"prospects": {}}}, "stream_options: unknown stream 'prospects'"),
    ({"stream_options": {"prospect": {"windows": 3}}}, "stream_options.prospect: unknown option 'windows'"),
    (
        {"stream_options": {"prospect": {"procedure": "filter_by_magic"}}},
        "stream_options.prospect.procedure 'filter_by_magic' is not a procedure of prospect; use one of "
        "filter_by_updated_at, filter_by_created_at",
    ),
    (
        {"stream_options": {"prospect": {"arguments": {"updated_after": "2024-01-01"}}}},
        "stream_options.prospect.arguments: 'updated_after': the tap sets the time bounds itself",
    ),
    (
        {"stream_options": {"visitor": {"arguments": {"type": [1]}}}},
        "stream_options.visitor.arguments: 'type' is not an argument of filter_by_updated_at",
    ),
    (
        {
            "stream_options": {
                "visitor": {"procedure": "filter_by_prospect_updated_at", "arguments": {"deleted": "all"}}
            }
        },
        "'deleted' is not an argument of filter_by_prospect_updated_at (visitor); allowed: prospect_deleted",
    ),
    (
        {"stream_options": {"visitor_activity": {"arguments": {"prospect_only": True}}}},
        "'prospect_only' is not an argument of filter_by_updated_at (visitorActivity); allowed: type, prospectOnly",
    ),
    (
        {"stream_options": {"prospect": {"arguments": {"deleted": "maybe"}}}},
        "stream_options.prospect.arguments.deleted 'maybe' is not allowed",
    ),
    (
        {"stream_options": {"visitor_activity": {"arguments": {"type": ["click"]}}}},
        "stream_options.visitor_activity.arguments.type.0 must be a whole number",
    ),
    (
        {"stream_options": {"visitor_activity": {"arguments": {"type": []}}}},
        "stream_options.visitor_activity.arguments.type is empty",
    ),
    (
        {"stream_options": {"visitor_activity": {"arguments": {"prospectOnly": "yes"}}}},
        "stream_options.visitor_activity.arguments.prospectOnly must be true or false",
    ),
    (
        {"stream_options": {"prospect": {"window_days": 0}}},
        "stream_options.prospect.window_days 0 is out of range",
    ),
    # what a schema cannot say
    ({"window_days": float("nan")}, "window_days is NaN: give a number"),
    (
        {"stream_options": {"prospect": {"window_days": decimal.Decimal("NaN")}}},
        "stream_options.prospect.window_days is NaN",
    ),
    ({"end_date": "2023-06-01T00:00:00Z"}, "end_date (2023-06-01T00:00:00Z) must be after start_date"),
    ({"poll_interval": 30, "max_poll_interval": 10}, "max_poll_interval (10) must be at least poll_interval (30)"),
    ({"poll_interval": 0.05}, "poll_interval 0.05 would read export status more than once a second"),
    ({"max_poll_interval": 2}, "max_poll_interval 2 would spend the daily API calls on status reads"),
    ({"timezone": "Mars/Olympus_Mons"}, "timezone 'Mars/Olympus_Mons' is not an IANA time zone"),
    ({"client_id": ..., "client_secret": ..., "refresh_token": ...}, "credentials are missing: set access_token"),
    ({"client_secret": ...}, "credentials are missing: client_secret not set"),
    ({"client_id": ..., "client_secret": ...}, "credentials are missing: client_id and client_secret not set"),
]


@pytest.mark.parametrize(("changes", "words"), BAD, ids=[str(i) for i in range(len(BAD))])
def test_a_bad_setting_is_refused_with_a_clear_line(changes, words):
    errors = errors_of(config(**changes))
    assert any(words in e for e in errors), errors
    assert all("\n" not in e for e in errors)


def _types(schema: dict[str, t.Any]) -> set[str]:
    types = schema.get("type", [])
    return {types} if isinstance(types, str) else set(types)


NOT_STRINGS = sorted(n for n, s in settings_schema()["properties"].items() if _types(s) - {"string", "null"})


def test_the_null_checks_cover_every_number_flag_list_and_object():
    assert len(NOT_STRINGS) >= 16
    assert {"window_days", "max_api_calls", "infer_timezone", "download_hosts", "stream_options"} <= set(NOT_STRINGS)


@pytest.mark.parametrize("name", NOT_STRINGS)
def test_null_is_refused_with_a_clear_message(name):
    errors = errors_of(config(**{name: None}))
    assert any(e.startswith(f"{name} is null: remove the setting") for e in errors), errors


def test_edge_values_are_accepted(instant_retries):
    # building the tap with access_token alone reads the custom fields from pi.pardot.com, which
    # fails here and is retried: instant_retries spares the waits (1.6 s)
    cfg = config(
        window_days=0.04,
        max_concurrency=5,
        max_retries=0,
        max_api_calls=10,
        safety_lag_minutes=0,
        poll_interval=1,
        max_poll_interval=10,
        download_hosts=["www.pardot.com", "proxy.example.internal"],
        infer_timezone=False,
    )
    assert errors_of(cfg) == []
    assert errors_of(config(window_days=365, api_version=3, access_token="x", client_id=...)) == []


def test_fast_polling_is_allowed_only_against_loopback():
    """The sandbox's settings (0.05 s / 0.2 s), as JSON files give them (the SDK reads decimals as Decimal)."""
    fast = {"poll_interval": decimal.Decimal("0.05"), "max_poll_interval": decimal.Decimal("0.2")}
    assert errors_of(config(**LOOPBACK, **fast)) == []
    assert errors_of(config(api_url="http://localhost:8765", **fast)) == []
    assert len(errors_of(config(**fast))) == 2


def test_every_procedure_and_argument_of_every_stream_is_accepted():
    samples = {"deleted": "all", "prospect_deleted": True, "type": [1, 2], "prospect_only": True, "prospectOnly": False}
    for spec in SPECS.values():
        for procedure in spec.procedures:
            arguments = {a: samples[a] for a in procedure.arguments}
            options = {spec.name: {"procedure": procedure.name, "arguments": arguments, "window_days": 7}}
            assert errors_of(config(stream_options=options)) == [], (spec.name, procedure.name)


# -- secrets are never echoed ----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SECRETS))
@pytest.mark.parametrize("value", [SECRET_DIGITS, 12.5e11, [str(SECRET_DIGITS)], {"v": str(SECRET_DIGITS)}])
def test_a_secret_of_the_wrong_type_is_named_never_shown(name, value):
    errors = errors_of(config(**{name: value}))
    assert any(e.startswith(f"{name} must be a string") for e in errors), errors
    text = " ".join(errors)
    assert str(SECRET_DIGITS) not in text
    assert "125000000" not in text


def test_no_message_shows_a_password_in_a_url_or_the_map_config():
    errors = errors_of(config(api_url="ftp://admin:hunter2@pi.pardot.com", stream_map_config="salt-hunter3"))
    assert any(e.startswith("api_url 'ftp://***@pi.pardot.com' is not an http(s) URL") for e in errors), errors
    assert any(e.startswith("stream_map_config must be an object, not a string (value not shown)") for e in errors)
    assert "hunter" not in " ".join(errors)


def test_a_numeric_secret_on_the_command_line_gives_no_traceback_and_no_secret(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config(client_secret=SECRET_DIGITS, refresh_token=SECRET_DIGITS + 1)))
    proc = tap_cli("--config", str(path))
    assert proc.returncode == 1
    assert "client_secret must be a string, not a number (value not shown): quote it" in proc.stderr
    assert "refresh_token must be a string" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert str(SECRET_DIGITS) not in proc.stderr + proc.stdout
    assert str(SECRET_DIGITS + 1) not in proc.stderr + proc.stdout


# -- time ------------------------------------------------------------------------------------------

NOW = dt.datetime(2026, 3, 1, 12, 0, 30, 123456, tzinfo=UTC)


def end_of(logger: logging.Logger | None = None, **cfg: t.Any) -> dt.datetime:
    """The run's end for settings ``cfg`` (defaults filled in, as a run reads them)."""
    s = Settings.from_config(with_defaults(config(**cfg)))
    return run_end(s.end_date, s.safety_lag, NOW, logger)


def test_run_end_is_now_less_the_safety_lag_by_default():
    assert end_of() == dt.datetime(2026, 3, 1, 11, 55, 30, tzinfo=UTC)
    assert end_of(safety_lag_minutes=0) == NOW.replace(microsecond=0)
    assert end_of(safety_lag_minutes=90) == dt.datetime(2026, 3, 1, 10, 30, 30, tzinfo=UTC)


def test_an_end_date_in_the_past_is_kept():
    assert end_of(end_date="2025-01-01") == dt.datetime(2025, 1, 1, tzinfo=UTC)


def test_an_end_date_in_the_future_is_capped_with_a_warning(caplog):
    logger = logging.getLogger("test-run-end")
    with caplog.at_level(logging.WARNING, logger="test-run-end"):
        end = end_of(logger, end_date="2030-01-01T00:00:00Z")
    assert end == dt.datetime(2026, 3, 1, 11, 55, 30, tzinfo=UTC)
    assert "end_date 2030-01-01T00:00:00+00:00 is in the future" in caplog.text
    # within the lag: capped too (no bookmark past rows not yet visible)
    assert end_of(end_date="2026-03-01T11:59:00Z") == dt.datetime(2026, 3, 1, 11, 55, 30, tzinfo=UTC)


def test_the_tap_run_end_never_passes_now_less_the_lag():
    tap = TapPardotExport(config=config(end_date="2099-01-01"), parse_env_config=False)
    before = dt.datetime.now(UTC)
    assert tap.run_end <= before - dt.timedelta(minutes=5) + dt.timedelta(seconds=1)
    assert tap.run_end > before - dt.timedelta(minutes=6)


def test_without_timezone_a_sync_is_refused_with_how_to_set_it():
    errors = errors_of(config(timezone=...))
    assert len(errors) == 1
    assert errors[0].startswith("timezone is not set.")
    assert "America/New_York" in errors[0]
    assert "infer_timezone: true" in errors[0]


def test_offset_inference_is_an_explicit_opt_in():
    assert errors_of(config(timezone=..., infer_timezone=True)) == []
    inferred = Settings.from_config(with_defaults(config(timezone=..., infer_timezone=True)))
    assert inferred.timezone is None and inferred.infer_timezone
    both = Settings.from_config(with_defaults(config(timezone="Asia/Kolkata", infer_timezone=True)))
    assert both.timezone is not None  # a zone wins: nothing is inferred
    assert errors_of(config(timezone=..., infer_timezone="true")) != []
    with pytest.raises(PardotConfigError):
        zone("Mars/Olympus")


# -- state -----------------------------------------------------------------------------------------


def test_a_truncated_state_file_is_refused_with_how_to_start_over(tmp_path):
    cfg_path = tmp_path / "config.json"
    cfg_path.write_text(json.dumps(config(**LOOPBACK)))
    state_path = tmp_path / "state.json"
    state_path.write_text('{"bookmarks": {"prospect": {"replication_key": "updated_at", "replication_key_val')
    proc = tap_cli("--config", str(cfg_path), "--state", str(state_path))
    assert proc.returncode == 1
    assert "The state is not valid JSON" in proc.stderr
    assert "delete the state file" in proc.stderr
    assert "meltano state clear" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize(
    ("state", "words"),
    [
        ({"bookmarks": {"prospect": {"replication_key_value": "last week"}}}, "bookmark of prospect ('last week')"),
        ({"bookmarks": {"prospect": {"replication_key_value": 17}}}, "bookmark of prospect ('17') is not a date"),
        ({"bookmarks": {"prospect": "2024-01-01"}}, "the bookmark of prospect is not an object"),
        ({"bookmarks": []}, "its bookmarks are not an object"),
        ({"bookmarks": {"visitor": {"pending_export": {"id": "abc"}}}}, "export in flight recorded for visitor"),
        (
            {"bookmarks": {"visitor": {"replication_key_value": "2099-01-01T00:00:00+00:00"}}},
            "the bookmark of visitor (2099-01-01T00:00:00+00:00) is later than now",
        ),
    ],
)
def test_a_corrupted_bookmark_is_refused_with_how_to_start_over(state, words):
    with pytest.raises(PardotConfigError) as info:
        TapPardotExport(config=config(), state=state, parse_env_config=False)
    message = str(info.value)
    assert words in message
    assert "meltano state clear" in message


def test_a_good_state_is_accepted():
    state = {
        "bookmarks": {
            "prospect": {"replication_key": "updated_at", "replication_key_value": "2024-05-01T00:00:00+00:00"},
            "visitor": {"pending_export": {"id": 42, "after": "x", "before": "y", "query": "q"}},
        }
    }
    tap = TapPardotExport(config=config(), state=state, parse_env_config=False)
    assert tap.state["bookmarks"]["prospect"]["replication_key_value"] == "2024-05-01T00:00:00+00:00"
    assert parse_state("") == {}


# -- plugin definitions and release ----------------------------------------------------------------


def test_meltano_definitions_declare_every_setting_with_its_kind():
    expected_kinds = {
        "stream_maps": "object",
        "stream_map_config": "object",
        "faker_config": "object",
        "flattening_enabled": "boolean",
        "flattening_max_depth": "integer",
        "batch_config": "object",
        "start_date": "date_iso8601",
        "custom_fields": "object",
        "stream_options": "object",
        "download_hosts": "array",
        "infer_timezone": "boolean",
        "api_version": "integer",  # an integer enum as "options" refuses "4" from the environment
    }
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    hub = yaml.safe_load(
        (ROOT / "meltano-hub" / "extractors" / "tap-pardot-export" / "tap-pardot-export.yml").read_text()
    )
    assert "version" not in project  # deprecated by Meltano 4: every command would warn
    for definitions in (project["plugins"]["extractors"][0]["settings"], hub["settings"]):
        by_name = {s["name"]: s for s in definitions}
        assert set(by_name) == set(full_schema()["properties"])
        for name, kind in expected_kinds.items():
            assert by_name[name]["kind"] == kind, name
        for name in SECRETS:
            assert by_name[name]["sensitive"] is True
            assert by_name[name]["kind"] == "string"  # `kind: password` is deprecated in Meltano 4
    assert hub["pip_url"] == "tap-pardot-export"
    assert "repo" not in hub or hub["repo"].startswith("https://")


def test_release_workflow_builds_the_tap_and_publishes_with_trusted_publishing():
    text = (ROOT / ".github" / "workflows" / "release.yml").read_text()
    flow = yaml.safe_load(text)
    assert flow[True]["push"]["tags"] == ["v*"]  # YAML reads the key `on` as true
    jobs = flow["jobs"]
    publish = next(j for j in jobs.values() if any("pypi-publish" in str(s.get("uses", "")) for s in j["steps"]))
    assert publish["permissions"]["id-token"] == "write"
    assert "password" not in json.dumps(publish)
    build_lines = [line for s in jobs["build"]["steps"] for line in s.get("run", "").splitlines() if "-m build" in line]
    assert build_lines == ["python -m build --outdir dist ."]  # the repository root: the tap, not ./sandbox
    assert "://" not in text  # no host named: the publish action knows where to publish
