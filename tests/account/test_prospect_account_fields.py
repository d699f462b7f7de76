"""The prospect account's own fields, learned from the prospect account describe (issue 11, part 2).

With credentials and no input catalog, discovery (and a sync run without a catalog) calls
``GET /api/prospectAccount/version/{3|4}/do/describe`` once and adds the fields the built-in
prospect_account schema lacks, typed from their describe type. Every test runs the tap against
a sandbox of its own over loopback.
"""

from __future__ import annotations

import datetime as dt
import typing as t

import pytest
from pardot_export_sandbox import DataConfig, Sandbox, SandboxConfig
from pardot_export_sandbox.data import CUSTOM_ACCOUNT_FIELD_TYPES
from pardot_export_sandbox.v5data import snake

from tap_pardot_export.discovery import account_field_properties
from tap_pardot_export.pardot.account import DescribeError, describe_prospect_account
from tap_pardot_export.streams import load_schema
from tests.helpers import (
    STREAMS,
    assert_rows_match,
    created_fields,
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
    "prospect": 30,
    "visitor": 20,
    "visitor_activity": 40,
    "list_membership": 20,
    "prospect_account": 60,
    "external_activity": 20,
}
STREAM = "prospect_account"
#: the sandbox's custom prospect account fields and the JSON schema each should get
CUSTOM = [name for name, *_ in CUSTOM_ACCOUNT_FIELD_TYPES]
#: their columns: the field ids in snake_case (the ids travel as the properties' titles)
COLUMNS = [snake(name) for name in CUSTOM]
EXPECTED_TYPES = {
    "Account_Tier": {"type": ["string", "null"]},
    "Seat_Count": {"type": ["number", "null"]},
    "Contract_End": {"type": ["string", "null"], "format": "date"},
}
BUILTIN = load_schema(STREAM)["properties"]


@pytest.fixture
def sandboxes() -> t.Iterator[t.Callable[..., Sandbox]]:
    """A factory of small sandboxes with custom prospect account fields (stopped after the test)."""
    made: list[Sandbox] = []

    def factory(**kw: t.Any) -> Sandbox:
        custom = kw.pop("custom_account_fields", True)
        data = DataConfig(start=START, end=END, rows=dict(ROWS), custom_account_fields=custom)
        sb = Sandbox(SandboxConfig(data=small_v5(data), rows_per_file=20, **kw)).start()
        made.append(sb)
        return sb

    yield factory
    for sb in made:
        sb.stop()


def account_props(catalog: dict[str, t.Any]) -> dict[str, t.Any]:
    """The prospect_account properties of a catalog."""
    entry = next(s for s in catalog["streams"] if s["tap_stream_id"] == STREAM)
    return t.cast("dict[str, t.Any]", entry["schema"]["properties"])


def describe_calls(sb: Sandbox) -> int:
    """How many describe calls the sandbox answered (or refused)."""
    return int(sb.stats()["calls"].get("describe", 0))


def assert_account_rows(sb: Sandbox, got: list[dict[str, t.Any]], *, custom: bool) -> None:
    """Exactly the sandbox's prospect accounts, with (or without) the custom fields, typed."""
    exp = expected_rows(sb, STREAM, START, END)
    assert len(exp) > 10
    if not custom:
        for row in exp.values():
            for name in COLUMNS:
                row.pop(name, None)
        assert all(name not in rec for rec in got for name in COLUMNS)
    assert_rows_match(sb, STREAM, got, exp, sb.config.data.timezone)
    if not custom:
        return
    by_id = {rec["id"]: rec for rec in got}
    seen = dict.fromkeys(COLUMNS, 0)
    for rid, row in exp.items():
        rec = by_id[rid]
        for name in COLUMNS:
            if row[name] is None:
                assert rec[name] is None, (rid, name)
                continue
            seen[name] += 1
            if name == "seat_count":
                assert isinstance(rec[name], (int, float)) and not isinstance(rec[name], bool), (rid, rec[name])
            else:
                assert isinstance(rec[name], str), (rid, name, rec[name])
            if name == "contract_end":
                assert dt.date.fromisoformat(rec[name]).isoformat() == rec[name]
    assert all(seen.values()), seen  # each custom field has values, not only nulls


# -- discovery ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("account_version", "configured"), [(4, 4), (3, 4), (4, 3)])
def test_discovery_adds_the_described_fields_typed(sandboxes, account_version, configured):
    """The fields the built-in schema lacks, typed from the describe; built-in fields keep their type.

    Also when the business unit needs the other API version (error 88/89 switches it).
    """
    sb = sandboxes(api_version=account_version)
    cat = discover(sb.tap_config(api_version=configured))
    props = account_props(cat)
    assert set(props) == set(BUILTIN) | set(COLUMNS)
    for name, expected in EXPECTED_TYPES.items():
        prop = props[snake(name)]
        got = {k: v for k, v in prop.items() if k not in ("description", "title")}
        assert got == expected, (name, prop)
        assert prop["title"] == name  # the API name: a catalog gives it back
        assert "Custom prospect account field" in prop["description"]
    # the describe lists assigned_to_id as a number and description as textarea: built-ins win
    for name in ("assigned_to_id", "description", "employees", "name"):
        assert props[name] == BUILTIN[name], name
    # one describe (two calls when the first switches the version), and the custom field query
    # shares its client: it asks in the right version at once
    assert describe_calls(sb) == (1 if account_version == configured else 2)
    assert sb.stats()["calls"]["custom_field"] == 1
    # other streams are untouched
    prospect = next(s for s in cat["streams"] if s["tap_stream_id"] == "prospect")["schema"]["properties"]
    assert not set(COLUMNS) & set(prospect)


def test_custom_fields_setting_is_typed_from_the_account(sandboxes):
    """A field listed in custom_fields.prospect_account takes the account's type; others stay strings."""
    sb = sandboxes()
    cat = discover(sb.tap_config(custom_fields={STREAM: ["Seat_Count", "Not_Described"]}))
    props = account_props(cat)
    assert props["seat_count"]["type"] == ["number", "null"]
    assert props["not_described"] == {"type": ["string", "null"], "title": "Not_Described"}


def test_no_describe_call_without_credentials_or_with_a_catalog(sandboxes):
    sb = sandboxes()
    cfg = sb.tap_config()
    for key in ("client_id", "client_secret", "refresh_token"):
        cfg.pop(key)
    props = account_props(discover(cfg))
    assert set(props) == set(BUILTIN)
    # an access token without a business unit is not enough either
    discover({**cfg, "access_token": sb.issue_token(), "business_unit_id": None})
    assert sb.stats()["calls"] == {}
    # with a catalog, the fields are the catalog's: no describe call, and the sync has them
    cat = discover(sb.tap_config())
    assert describe_calls(sb) == 1
    run = run_tap(sb.tap_config(window_days=200), catalog=select_streams(cat, [STREAM]))
    assert run.returncode == 0, run.stderr[-2000:]
    assert describe_calls(sb) == 1
    assert_account_rows(sb, run.records(STREAM), custom=True)


def test_describe_answers_in_every_documented_shape() -> None:
    """``field`` as one object or a list, with or without ``@attributes``; anything else is an error."""

    class Client:
        api_url = "https://pi.example.test"
        api_version = 4

        def __init__(self, body: t.Any) -> None:
            self.body = body
            self.urls: list[str] = []

        def json(self, method: str, op: str, kind: str, **kw: t.Any) -> t.Any:
            self.urls.append(kw["url"])
            return self.body

    # Client stands in for PardotClient (its json call only), hence each ignore[arg-type] below
    one = {"@attributes": {"id": "Seats", "label": "Seats", "type": "Number", "custom": "1"}}
    client = Client({"@attributes": {"stat": "ok"}, "result": {"field": one}})
    fields = describe_prospect_account(client)  # type: ignore[arg-type]
    assert client.urls == ["https://pi.example.test/api/prospectAccount/version/4/do/describe?format=json"]
    assert account_field_properties(fields)["Seats"]["type"] == ["number", "null"]
    bare = [{"id": "When", "type": "date"}, {"id": "Note", "type": "textarea"}, {"label": "no id"}]
    props = account_field_properties(describe_prospect_account(Client({"result": {"field": bare}})))  # type: ignore[arg-type]
    assert props["When"]["format"] == "date" and props["Note"]["type"] == ["string", "null"]
    assert set(props) == {"When", "Note"}
    assert describe_prospect_account(Client({"result": {}})) == []  # type: ignore[arg-type]
    for body in ({"result": {"field": ["name"]}}, {"result": "none"}, ["x"]):
        with pytest.raises(DescribeError):
            describe_prospect_account(Client(body))  # type: ignore[arg-type]


# -- sync --------------------------------------------------------------------------------------


def test_a_sync_without_catalog_has_the_account_fields_row_exact_and_typed(sandboxes):
    sb = sandboxes()
    run = run_tap(sb.tap_config(window_days=200))  # no catalog: discovery reads the account
    assert run.returncode == 0, run.stderr[-3000:]
    schema = next(m for m in run.messages if m["type"] == "SCHEMA" and m["stream"] == STREAM)["schema"]
    assert schema["properties"]["seat_count"]["type"] == ["number", "null"]
    assert_account_rows(sb, run.records(STREAM), custom=True)
    exports = created_fields(sb)
    with sb.state.lock:
        account_exports = [eid for eid, e in sb.state.exports.items() if e.object_name == "prospectAccount"]
    assert account_exports and all(set(CUSTOM) <= set(exports[eid]) for eid in account_exports)
    for stream in STREAMS:
        assert run.records(stream), stream
    assert describe_calls(sb) == 1


FAILURES = {
    "not_found": ({"account_describe": False}, None, "error 2"),
    "server_errors": ({}, {"kind": "http_503", "count": 10, "op": "describe"}, "503"),
    "not_json": ({}, {"kind": "not_json", "count": 10, "op": "describe"}, "not JSON"),
}


@pytest.mark.parametrize("name", list(FAILURES))
def test_a_failed_describe_warns_and_the_sync_keeps_the_built_in_fields(sandboxes, instant_retries, name):
    kw, fault, words = FAILURES[name]
    sb = sandboxes(**kw)
    if fault is not None:
        sb.inject(**fault)
    run = run_tap(sb.tap_config(window_days=200))
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Could not read the account's prospect account fields" in run.stderr, run.stderr[-2000:]
    assert words in run.stderr
    schema = next(m for m in run.messages if m["type"] == "SCHEMA" and m["stream"] == STREAM)["schema"]
    assert set(schema["properties"]) == set(BUILTIN)
    assert_account_rows(sb, run.records(STREAM), custom=False)
    assert describe_calls(sb) >= 1


# -- the first-run check -----------------------------------------------------------------------


def test_the_check_reports_the_prospect_account_fields(sandboxes):
    sb = sandboxes()
    sb.hold()  # the check's exports stay Waiting, so its cancels find them
    proc = run_check(sb.tap_config())
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    described = len(BUILTIN) - 3 + len(CUSTOM)  # the describe leaves out id, created_at, updated_at
    line = (
        f"OK    prospect account fields: {described} found (3 custom: Account_Tier, Seat_Count, Contract_End); "
        "discovery adds those the built-in schema lacks to prospect_account: Account_Tier (string), "
        "Seat_Count (number), Contract_End (date)"
    )
    assert f"  {line}" in proc.stdout.splitlines(), proc.stdout
    assert "OK    prospect_account: may export" in proc.stdout
    with sb.state.lock:
        probes = [list(e.spec.fields) for e in sb.state.exports.values() if e.object_name == "prospectAccount"]
    assert probes and set(CUSTOM) <= set(probes[0])  # the probe asks for them, as a sync would
    assert describe_calls(sb) == 1
    calls = sb.stats()["calls"]
    assert sb.stats()["api_calls"] - calls.get("query_v5", 0) - calls.get("account_v5", 0) <= 20


def test_the_check_notes_a_failed_describe(sandboxes):
    sb = sandboxes(account_describe=False)
    sb.hold()  # the check's exports stay Waiting, so its cancels find them
    proc = run_check(sb.tap_config())
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    notes = [ln for ln in proc.stdout.splitlines() if ln.startswith("  NOTE  prospect account fields:")]
    assert len(notes) == 1 and "the describe failed" in notes[0] and "error 2" in notes[0], proc.stdout
    assert "Result: all checks passed" in proc.stdout


def test_sandbox_flags_and_faults_of_the_describe(sandboxes, instant_retries):
    """The CLI flags map onto the switches; a fault for op="describe" hits the describe only."""
    from pardot_export_sandbox.cli import build_parser, config_from_args

    cfg = config_from_args(build_parser().parse_args(["--custom-account-fields", "--no-account-describe"]))
    assert cfg.data.custom_account_fields is True and cfg.account_describe is False
    plain = config_from_args(build_parser().parse_args([]))
    assert plain.data.custom_account_fields is False and plain.account_describe is True
    sb = sandboxes(custom_account_fields=False)
    sb.inject("http_500", count=1, op="describe")
    assert [f for f in sb.dataset.account_field_defs() if f["@attributes"]["custom"]] == []
    run = run_tap(sb.tap_config(window_days=200), catalog=select_streams(discover(sb.tap_config()), [STREAM]))
    assert run.returncode == 0, run.stderr[-2000:]
    assert describe_calls(sb) == 2  # the 500, then the retry
    assert sb.stats()["calls"]["create"] >= 1  # no other call took the fault
    assert_account_rows(sb, run.records(STREAM), custom=False)
