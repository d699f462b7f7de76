"""The sandbox's account variants (issue 11): each switch checked over HTTP, no tap code."""

from __future__ import annotations

import csv
import datetime as dt
import io
import subprocess
import sys
import time
import typing as t
import urllib.parse

import pytest
import requests

from pardot_export_sandbox import DataConfig, Sandbox, SandboxConfig
from pardot_export_sandbox.data import CUSTOM_FIELD_TYPES

UTC = dt.timezone.utc
PROSPECT_UPDATED = "filter_by_updated_at"
YEAR = {"updated_after": "2024-01-01T00:00:00+00:00", "updated_before": "2025-01-01T00:00:00+00:00"}


class Api:
    """A bare HTTP client for one sandbox (no tap code)."""

    def __init__(self, sb: Sandbox, version: int = 4) -> None:
        self.sb = sb
        self.version = version
        self.headers = {
            "Authorization": f"Bearer {sb.issue_token()}",
            "Pardot-Business-Unit-Id": sb.config.business_unit_id,
        }

    def url(self, op: str, version: int | None = None) -> str:
        return f"{self.sb.base_url}/api/export/version/{version or self.version}/do/{op}?format=json"

    def create(self, obj: str, proc: str, args: dict[str, t.Any], fields: list[str] | None = None) -> requests.Response:
        body: dict[str, t.Any] = {"object": obj, "procedure": {"name": proc, "arguments": args}}
        if fields is not None:
            body["fields"] = fields
        return requests.post(self.url("create"), json=body, headers=self.headers, timeout=30)

    def wait(self, eid: int) -> dict[str, t.Any]:
        end = time.time() + 20
        while time.time() < end:
            body = requests.get(self.url(f"read/id/{eid}"), headers=self.headers, timeout=30).json()
            e = body.get("export", body)
            if e["state"] not in ("Waiting", "Processing"):
                return e
            time.sleep(0.02)
        raise AssertionError(f"export {eid} did not finish")

    def raw_files(self, obj: str, proc: str, args: dict[str, t.Any], fields: list[str] | None = None) -> list[bytes]:
        r = self.create(obj, proc, args, fields)
        assert r.status_code == 200, r.text
        body = r.json()
        e = self.wait(body.get("export", body)["id"])
        assert e["state"] == "Complete"
        refs = e.get("resultRefs")
        refs = [] if refs is None else [refs] if isinstance(refs, str) else refs
        out = []
        for ref in refs:
            resp = requests.get(ref, headers=self.headers, timeout=30)
            assert resp.status_code == 200, resp.text
            out.append(resp.content)
        return out

    def rows(self, obj: str, proc: str, args: dict[str, t.Any], fields: list[str] | None = None) -> list[dict]:
        out: list[dict] = []
        for raw in self.raw_files(obj, proc, args, fields):
            out.extend(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
        return out

    def custom_fields(self, **params: t.Any) -> requests.Response:
        q = urllib.parse.urlencode({"format": "json", **params})
        url = f"{self.sb.base_url}/api/customField/version/{self.version}/do/query?{q}"
        return requests.get(url, headers=self.headers, timeout=30)


def err(r: requests.Response) -> tuple[int, int, str]:
    body = r.json()
    return r.status_code, body["@attributes"]["err_code"], body["err"]


def small(**kw: t.Any) -> Sandbox:
    data = kw.pop("data", None) or DataConfig(rows={"prospect": 60, "visitor_activity": 80, "list_membership": 40})
    return Sandbox(SandboxConfig(data=data, rows_per_file=25, **kw))


@pytest.fixture
def variant() -> t.Iterator[t.Callable[..., Sandbox]]:
    made: list[Sandbox] = []

    def factory(**kw: t.Any) -> Sandbox:
        sb = small(**kw).start()
        made.append(sb)
        return sb

    yield factory
    for sb in made:
        sb.stop()


def test_result_links_on_a_second_host(variant):
    sb = variant(result_host="127.0.0.2")
    api = Api(sb)
    r = api.create("prospect", PROSPECT_UPDATED, YEAR, ["id"])
    e = api.wait(r.json()["export"]["id"])
    refs = e["resultRefs"] if isinstance(e["resultRefs"], list) else [e["resultRefs"]]
    api_host = urllib.parse.urlsplit(sb.base_url).netloc
    for ref in refs:
        parts = urllib.parse.urlsplit(ref)
        assert parts.hostname == "127.0.0.2" and parts.netloc != api_host
        assert requests.get(ref, headers=api.headers, timeout=30).status_code == 200
    # the default sandbox links to itself
    plain = variant()
    e2 = Api(plain).wait(Api(plain).create("prospect", PROSPECT_UPDATED, YEAR, ["id"]).json()["export"]["id"])
    ref = e2["resultRefs"] if isinstance(e2["resultRefs"], str) else e2["resultRefs"][0]
    assert ref.startswith(plain.base_url)


@pytest.mark.parametrize(
    ("style", "true", "false"), [("words", "true", "false"), ("digits", "1", "0"), ("blank", "1", "")]
)
def test_boolean_renderings(variant, style, true, false):
    sb = variant(bool_style=style)
    rows = Api(sb).rows("listMembership", PROSPECT_UPDATED, YEAR, ["id", "opted_out"])
    truth = {r["id"]: r["opted_out"] for r in map(sb.dataset.objects["list_membership"].typed_row, range(40))}
    assert rows
    for row in rows:
        assert row["opted_out"] == (true if truth[int(row["id"])] else false)
    assert {r["opted_out"] for r in rows} == {true, false}


def test_bom_and_line_endings(variant):
    lf = Api(variant(line_ending="lf", bom=True)).raw_files("prospect", PROSPECT_UPDATED, YEAR, ["id", "email"])
    crlf = Api(variant()).raw_files("prospect", PROSPECT_UPDATED, YEAR, ["id", "email"])
    assert all(f.startswith(b"\xef\xbb\xbfid,email\n") and b"\r\n" not in f for f in lf)
    assert all(f.startswith(b"id,email\r\n") and f.count(b"\r\n") == f.count(b"\n") for f in crlf)


def test_fields_the_account_lacks_are_refused_naming_them(variant):
    sb = variant(missing_fields={"prospect": ["notes", "grade"]})
    api = Api(sb)
    r = api.create("prospect", PROSPECT_UPDATED, YEAR, ["id", "notes", "updated_at"])
    status, code, message = err(r)
    assert (status, code) == (400, 5)
    assert "notes" in message and "grade" not in message
    # without a field list, the export has the account's fields only
    rows = api.rows("prospect", PROSPECT_UPDATED, YEAR)
    assert rows and "notes" not in rows[0] and "grade" not in rows[0] and "email" in rows[0]
    assert api.create("visitorActivity", PROSPECT_UPDATED, YEAR, ["id", "visit_id"]).status_code == 200
    # other accounts are untouched
    assert Api(variant()).create("prospect", PROSPECT_UPDATED, YEAR, ["id", "notes", "grade"]).status_code == 200


def test_custom_field_query_pages_and_types(variant):
    sb = variant(data=DataConfig(rows={"prospect": 30}, typed_custom_fields=True))
    api = Api(sb)
    body = api.custom_fields().json()["result"]
    names = ["Favorite_Color", "Lead_Notes", *(f[0] for f in CUSTOM_FIELD_TYPES)]
    assert body["total_results"] == len(names)
    fields = body["customField"]
    assert [f["field_id"] for f in fields] == names
    keys = {"id", "name", "field_id", "type", "type_id", "created_at", "updated_at"}
    keys |= {"is_record_multiple_responses", "crm_id", "is_use_values"}
    assert all(set(f) == keys for f in fields)
    types = {f["type"] for f in fields}
    expected_types = {"Text", "Number", "Date", "Checkbox", "Radio Button", "Dropdown", "Multi-Select"}
    assert expected_types | {"Textarea", "Hidden", "CRM User"} <= types
    # paging: one field is an object, past the end there is none
    one = api.custom_fields(offset=3, limit=1).json()["result"]
    assert one["customField"]["field_id"] == names[3] and one["total_results"] == len(names)
    assert "customField" not in api.custom_fields(offset=len(names)).json()["result"]
    assert err(api.custom_fields(limit=201))[1] == 5
    assert err(Api(sb, version=3).custom_fields())[1] == 88
    # the fields are prospect columns under their field_id, rendered by type
    rows = api.rows("prospect", PROSPECT_UPDATED, YEAR, ["id", "Lifetime_Value", "Renewal_Date", "Interests"])
    assert rows
    for row in rows:
        truth = sb.dataset.objects["prospect"].typed_row(int(row["id"]) - 10_000_000)
        value = truth["Lifetime_Value"]
        assert (float(row["Lifetime_Value"]) if row["Lifetime_Value"] else None) == value
        assert (row["Renewal_Date"] or None) == truth["Renewal_Date"]
        assert (row["Interests"] or None) == truth["Interests"]
    assert any(len(r["Renewal_Date"]) == 10 for r in rows) and any(";" in r["Interests"] for r in rows)


def test_custom_field_query_without_the_ability(variant):
    status, code, message = err(Api(variant(custom_field_query=False)).custom_fields())
    assert (status, code) == (403, 46) and "ability" in message


def test_prospect_only_spelled_camel_for_both_procedures(variant):
    created = {"created_after": "2024-01-01T00:00:00+00:00", "created_before": "2025-01-01T00:00:00+00:00"}
    camel = Api(variant(prospect_only_spelling="camel"))
    status, code, message = err(
        camel.create("visitorActivity", "filter_by_created_at", {**created, "prospect_only": True})
    )
    assert (status, code) == (400, 5) and "prospect_only" in message
    rows = camel.rows(
        "visitorActivity", "filter_by_created_at", {**created, "prospectOnly": True}, ["id", "prospect_id"]
    )
    assert rows and all(r["prospect_id"] for r in rows)
    assert camel.create("visitorActivity", "filter_by_updated_at", {**YEAR, "prospectOnly": True}).status_code == 200
    # the seed's spelling: the other way round is refused
    seed = Api(variant())
    assert seed.create("visitorActivity", "filter_by_created_at", {**created, "prospect_only": True}).status_code == 200
    assert err(seed.create("visitorActivity", "filter_by_created_at", {**created, "prospectOnly": True}))[1] == 5


def test_visibility_lag_hides_the_newest_rows_until_later(variant):
    now = dt.datetime.now(UTC).replace(microsecond=0)
    data = DataConfig(start=now - dt.timedelta(days=2), end=now, rows={"list_membership": 400})
    sb = variant(data=data, visibility_lag=3600)
    obj = sb.dataset.objects["list_membership"]
    updated = obj.times["updated_at"][0]
    after = {"updated_after": (now - dt.timedelta(days=3)).isoformat()}
    api = Api(sb)
    ids = {int(r["id"]) for r in api.rows("listMembership", PROSPECT_UPDATED, after, ["id"])}
    cutoff = time.time() - 3600
    recent = {obj.base_id + i for i in range(obj.count) if updated(i) > cutoff + 5 and not obj.is_deleted(i)}
    older = {obj.base_id + i for i in range(obj.count) if updated(i) < cutoff - 5 and not obj.is_deleted(i)}
    assert recent and older
    assert older <= ids and not (recent & ids)
    sb.clock.advance(3600 + 60)
    later = {int(r["id"]) for r in api.rows("listMembership", PROSPECT_UPDATED, after, ["id"])}
    assert recent <= later


def test_cli_has_a_flag_for_every_variant():
    out = subprocess.run(
        [sys.executable, "-m", "pardot_export_sandbox.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in (
        "--result-host",
        "--bool-style",
        "--line-ending",
        "--bom",
        "--missing-field",
        "--typed-custom-fields",
        "--no-custom-field-query",
        "--prospect-only-spelling",
        "--visibility-lag",
    ):
        assert flag in out, flag
    from pardot_export_sandbox.cli import build_parser, config_from_args

    args = build_parser().parse_args(
        [
            "--result-host=127.0.0.2",
            "--bool-style=blank",
            "--line-ending=lf",
            "--missing-field=prospect.grade",
            "--missing-field=visitor_activity.visit_id",
            "--typed-custom-fields",
            "--no-custom-field-query",
            "--prospect-only-spelling=camel",
            "--visibility-lag=60",
        ]
    )
    cfg = config_from_args(args)
    assert cfg.result_host == "127.0.0.2" and cfg.bool_style == "blank" and cfg.line_ending == "lf"
    assert cfg.missing_fields == {"prospect": ["grade"], "visitor_activity": ["visit_id"]}
    assert cfg.data.typed_custom_fields and not cfg.custom_field_query
    assert cfg.prospect_only_spelling == "camel" and cfg.visibility_lag == 60
