"""Settings: the schema tells the truth, and every bad value is refused clearly before any call.

``--about`` marks what is required and documents every stream option; every number is bounded;
each bad value, null or secret of the wrong type is one clear line that never shows a secret,
and no API call is made; a config or catalog file that is not JSON is named, and the installed
entry point exits 1 without a traceback. In-process wherever no process boundary is under test.
"""

from __future__ import annotations

import decimal
import json
import typing as t

import pytest

from tap_pardot_export.settings.messages import SECRETS
from tap_pardot_export.settings.schema import settings_schema
from tap_pardot_export.spec import SPECS
from tests.fake_pardot import assert_clean_failure
from tests.helpers import run_tap
from tests.sandbox_runs import one_stream, small
from tests.settings_helpers import LOOPBACK, config, errors_of, tap_cli

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


# -- before any API call, at the real command line too ---------------------------------------------


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ({"start_date": "last tuesday"}, "start_date 'last tuesday' is not an ISO 8601"),
        ({"end_date": "2023-06-01T00:00:00Z"}, "end_date (2023-06-01T00:00:00Z) must be after start_date"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone 'Mars/Olympus_Mons' is not an IANA time zone"),
        ({"window_days": 400}, "window_days 400 is out of range"),
        ({"stream_options": {"prospects": {}}}, "stream_options: unknown stream 'prospects'"),
        ({"stream_options": {"prospect": {"windows": 3}}}, "stream_options.prospect: unknown option 'windows'"),
        ({"stream_options": {"prospect": {"procedure": "filter_by_magic"}}}, "'filter_by_magic' is not a procedure"),
        ({"stream_options": {"prospect": {"arguments": {"updated_after": "2024-01-01"}}}}, "sets the time bounds"),
        ({"stream_options": {"visitor": {"arguments": {"type": [1]}}}}, "'type' is not an argument of"),
        ({"business_unit_id": "12345"}, "business_unit_id is malformed"),
        ({"client_secret": None, "client_id": None}, "credentials are missing"),
        ({"api_url": "pi.pardot.com"}, "api_url 'pi.pardot.com' is not an http(s) URL"),
    ],
)
def test_bad_settings_fail_before_any_api_call(fresh_sandbox, override, words):
    sb = fresh_sandbox()
    cfg = sb.tap_config()
    for k, v in override.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    run = run_tap(cfg)
    assert run.returncode != 0
    assert words in run.stderr
    assert "Traceback" not in run.stderr
    assert sb.stats()["calls"] == {}


@pytest.mark.usefixtures("instant_retries")
@pytest.mark.parametrize(
    ("option", "text"),
    [("--config", '{"business_unit_id": "0Uv'), ("--config", '{"window_days": NaN}'), ("--catalog", "[1")],
)
def test_a_config_or_catalog_file_that_is_not_json_is_named_without_a_traceback(fake, tmp_path, option, text):
    """Found: a cut config file (or NaN, which Python's json writes) gave simplejson's traceback."""
    server = fake()
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    run = run_tap(server.config(), args=[option, str(bad)])
    assert_clean_failure(run, "not valid JSON", option)
    assert server.requests == []


@pytest.mark.parametrize("where", ["missing", "a folder"])
def test_a_config_file_that_cannot_be_read_is_named_without_a_traceback(fake, tmp_path, where):
    """Found: ``--config`` naming no file (a typo), or a folder, gave the SDK's traceback."""
    server = fake()
    path = tmp_path / "config.json"
    if where == "a folder":
        path.mkdir()
    run = run_tap(server.config(), args=["--config", str(path)])
    assert_clean_failure(run, "a --config file cannot be read", "--config")
    assert "Check the path" in run.stderr
    assert server.requests == []


def test_the_real_cli_exits_1_with_a_message_and_no_traceback(fresh_sandbox):
    """The other tests run the CLI in-process; here the installed entry point runs as a process."""
    sb = small(fresh_sandbox)
    bad = run_tap({**sb.tap_config(), "window_days": 400}, subprocess=True)
    assert bad.returncode == 1
    assert "window_days 400 is out of range" in bad.stderr
    cfg, cat = one_stream(sb, "list_membership", client_secret="not-the-secret-s3cr3t")
    refused = run_tap(cfg, catalog=cat, subprocess=True)
    assert refused.returncode == 1
    assert "credentials must be renewed" in refused.stderr
    for run in (bad, refused):
        assert "Traceback" not in run.stderr
        assert not run.records()
    assert sb.stats()["api_calls"] == 0
