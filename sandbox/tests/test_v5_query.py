"""The v5 query API's parameters: fields, filters, orderBy, limit, offset, deleted; errors, limits, faults."""

from __future__ import annotations

import datetime as dt
import threading
import time
import typing as t

import pytest
import requests
from conftest import UTC, V5, iso, local, raw

if t.TYPE_CHECKING:
    from pardot_export_sandbox import Sandbox

INVALID_DT = "Invalid date time value"


# -- fields ------------------------------------------------------------------------------------


def test_fields_are_required(v5: V5):
    missing = (400, 13, "One or more required parameters are missing: fields")
    assert v5.error("campaigns", {}) == missing
    assert v5.error("campaigns", {"fields": ""}) == missing
    assert v5.error("campaigns", {"limit": "5"}) == missing


@pytest.mark.parametrize(
    ("collection", "fields", "bad"),
    [
        ("campaigns", "id,nope", "nope"),
        ("campaigns", "id,campaign.name", "campaign.name"),
        ("campaigns", "ID", "ID"),
        ("emails", "id,updatedAt", "updatedAt"),
        ("list-emails", "id,scheduledTime", "scheduledTime"),
        ("custom-fields", "id,valuesPrefill,name", "valuesPrefill"),
    ],
)
def test_an_unknown_or_write_only_field_is_refused_by_name(v5: V5, collection: str, fields: str, bad: str):
    assert v5.error(collection, {"fields": fields}) == (
        400,
        51,
        f"Invalid parameter: fields. It contains an invalid or unknown field: {bad}.",
    )


def test_an_account_may_refuse_fields_it_does_not_have(fresh):
    _, v5 = fresh(v5_refused_fields={"form": ["salesforceCmsId"]})
    assert v5.error("forms", {"fields": "id,salesforceCmsId"})[2].endswith("unknown field: salesforceCmsId.")
    assert v5.ok("forms", {"fields": "id,name"})["values"]
    assert v5.ok("landing-pages", {"fields": "id,salesforceCmsId"})["values"]


# -- filters -----------------------------------------------------------------------------------


def everything(v5: V5, collection: str, fields: str, **extra: str) -> list[dict[str, t.Any]]:
    return v5.all(collection, {"fields": fields, "limit": 1000, **extra})


def test_datetime_filters_after_and_before_are_exclusive_or_equal_to_inclusive(v5: V5, sb: Sandbox):
    recs = everything(v5, "visits", "id,updatedAt")
    burst = sb.v5.bursts("visit")[0]
    at = burst["at"]
    stamps = {r["id"]: local(r["updatedAt"]) for r in recs}
    assert sum(1 for s in stamps.values() if s == at) == burst["size"]
    for suffix, keep in (
        ("After", lambda s: s > at),
        ("AfterOrEqualTo", lambda s: s >= at),
        ("Before", lambda s: s < at),
        ("BeforeOrEqualTo", lambda s: s <= at),
    ):
        for value in (iso(at), iso(at.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30))))):
            got = everything(v5, "visits", "id", **{f"updatedAt{suffix}": value})
            assert [r["id"] for r in got] == sorted(i for i, s in stamps.items() if keep(s)), (suffix, value)


def test_a_datetime_filter_with_fractional_seconds_compares_exactly(v5: V5, sb: Sandbox):
    at = sb.v5.bursts("visit")[0]["at"]
    half = iso(at + dt.timedelta(milliseconds=500))
    after = everything(v5, "visits", "id", updatedAtAfterOrEqualTo=iso(at), updatedAtBefore=half)
    assert len(after) == 500
    assert not everything(v5, "visits", "id", updatedAtAfter=iso(at), updatedAtBeforeOrEqualTo=half)


def test_id_filters_are_exclusive_or_inclusive_as_named(v5: V5):
    ids = [r["id"] for r in everything(v5, "campaigns", "id", deleted="all")]
    x = ids[10]
    cases = {
        "id": [x],
        "idGreaterThan": [i for i in ids if i > x],
        "idGreaterThanOrEqualTo": [i for i in ids if i >= x],
        "idLessThan": [i for i in ids if i < x],
        "idLessThanOrEqualTo": [i for i in ids if i <= x],
    }
    for name, want in cases.items():
        assert [r["id"] for r in everything(v5, "campaigns", "id", deleted="all", **{name: str(x)})] == want, name
    both = everything(v5, "campaigns", "id", idGreaterThan=str(ids[2]), idLessThanOrEqualTo=str(ids[6]), deleted="all")
    assert [r["id"] for r in both] == ids[3:7]
    assert v5.error("campaigns", {"fields": "id", "idGreaterThan": "ten"})[:2] == (400, 51)


@pytest.mark.parametrize(
    ("collection", "name"),
    [
        ("campaigns", "updatedAtAfterOrEqualTo"),
        ("lists", "updatedAtBefore"),
        ("list-emails", "updatedAtAfter"),
        ("emails", "sentAtAfterOrEqualTo"),
        ("email-templates", "updatedAtAfter"),
        ("users", "updatedAtAfter"),
        ("landing-pages", "updatedAtAfter"),
        ("custom-fields", "updatedAtAfter"),
        ("tags", "updatedAtAfter"),
        ("tagged-objects", "createdAtAfterOrEqualTo"),
        ("opportunities", "updatedAtAfter"),
        ("lifecycle-stages", "updatedAtAfter"),
        ("lifecycle-histories", "createdAtAfterOrEqualTo"),
        ("visits", "updatedAtAfterOrEqualTo"),
        ("visitor-page-views", "createdAtAfterOrEqualTo"),
        ("dynamic-contents", "updatedAtAfter"),
    ],
)
def test_the_objects_with_a_datetime_filter_family_take_it(v5: V5, collection: str, name: str):
    assert v5.get(collection, {"fields": "id", name: "2024-06-01T00:00:00-07:00"}).status_code == 200


@pytest.mark.parametrize(
    ("collection", "name"),
    [
        ("forms", "updatedAtAfterOrEqualTo"),
        ("form-handlers", "createdAtAfter"),
        ("form-fields", "updatedAtAfter"),
        ("form-handler-fields", "createdAtAfter"),
        ("custom-redirects", "updatedAtAfter"),
        ("files", "updatedAtAfter"),
        ("folders", "updatedAtAfter"),
        ("folder-contents", "updatedAtAfter"),
        ("engagement-studio-programs", "updatedAtAfter"),
        ("tracker-domains", "updatedAtAfter"),
        ("layout-templates", "updatedAtAfter"),
        ("campaigns", "createdAtAfter"),
        ("emails", "createdAtAfter"),
        ("visitor-page-views", "updatedAtAfter"),
        ("visits", "createdAtAfter"),
        ("campaigns", "updatedAtGreaterThan"),
        ("campaigns", "idAfter"),
        ("campaigns", "nameContains"),
        ("campaigns", "name"),
        ("campaigns", "format"),
        ("folders", "parentFolderIdGreaterThan"),
    ],
)
def test_a_filter_the_object_does_not_take_is_refused_by_name(v5: V5, collection: str, name: str):
    value = "2024-06-01T00:00:00-07:00" if name[0] != "p" else "1"
    assert v5.error(collection, {"fields": "id", name: value}) == (400, 51, f"Parameter {name} is invalid.")


def test_equality_filters_on_folders_and_variations(v5: V5):
    children = everything(v5, "folders", "id,parentFolderId", parentFolderId="4000")
    assert [r["id"] for r in children] == [4001, 4002, 4003]
    variations = everything(v5, "dynamic-content-variations", "id,dynamicContentId", dynamicContentId="6501")
    assert variations and {r["dynamicContentId"] for r in variations} == {6501}


def test_at_most_three_fields_may_be_filtered(v5: V5):
    three = {"fields": "id", "id": "1000", "idLessThan": "1005", "updatedAtAfter": "2024-01-01T00:00:00-08:00"}
    assert v5.get("campaigns", {**three, "deleted": "all"}).status_code == 200
    four = {**three, "createdAtAfter": "2024-01-01T00:00:00-08:00", "nameLike": "x"}
    status, code, _ = v5.error("campaigns", four)
    assert (status, code) == (400, 209)
    assert v5.error("campaigns", {**three, "createdAtAfter": "2024-01-01T00:00:00-08:00"})[1] == 51


@pytest.mark.parametrize(
    "value",
    [
        "2024-06-01T00:00:00Z",
        "2024-06-01T00:00:00",
        "2024-06-01",
        "2024-06-01 00:00:00-07:00",
        "yesterday",
        "2024-06-01T00:00:00 00:00",
        "2024-13-01T00:00:00-07:00",
    ],
)
def test_a_datetime_needs_iso_8601_with_a_numeric_offset(v5: V5, value: str):
    status, code, message = v5.error("campaigns", {"fields": "id", "updatedAtAfter": value})
    assert (status, code) == (400, 51)
    assert message.startswith(INVALID_DT)


def test_a_raw_plus_arrives_as_a_space_and_is_refused(v5: V5):
    status, code, message = v5.error("campaigns", raw_query="fields=id&updatedAtAfter=2024-06-01T00:00:00+02:00")
    assert (status, code) == (400, 51)
    assert message.startswith(INVALID_DT)
    encoded = raw({"fields": "id", "updatedAtAfter": "2024-06-01T00:00:00+02:00"})
    assert "%2B02%3A00" in encoded
    assert v5.get("campaigns", raw_query=encoded).status_code == 200


# -- limit, offset, orderBy ------------------------------------------------------------------


def test_limit_defaults_to_200_and_stops_at_1000(v5: V5):
    assert len(v5.ok("emails", {"fields": "id"})["values"]) == 200
    assert len(v5.ok("emails", {"fields": "id", "limit": "1000"})["values"]) == 1000
    assert len(v5.ok("emails", {"fields": "id", "limit": "1"})["values"]) == 1
    for bad in ("1001", "0", "-3", "ten", ""):
        status, code, message = v5.error("emails", {"fields": "id", "limit": bad})
        assert (status, code) == (400, 51)
        assert "limit" in message


def test_offset_skips_records_up_to_2000(v5: V5):
    ids = [r["id"] for r in v5.ok("emails", {"fields": "id", "limit": "20"})["values"]]
    assert [r["id"] for r in v5.ok("emails", {"fields": "id", "limit": "5", "offset": "7"})["values"]] == ids[7:12]
    assert len(v5.ok("emails", {"fields": "id", "offset": "2000"})["values"]) == 200
    assert v5.error("emails", {"fields": "id", "offset": "2001"})[:2] == (400, 51)


def test_order_by_sorts_on_the_sortable_fields_with_id_breaking_ties(v5: V5):
    recs = everything(v5, "visits", "id,updatedAt", orderBy="updatedAt asc, id asc")
    keys = [(local(r["updatedAt"]), r["id"]) for r in recs]
    assert keys == sorted(keys)
    down = everything(v5, "visits", "id,updatedAt", orderBy="updatedAt DESC")
    down_keys = [(-local(r["updatedAt"]).timestamp(), r["id"]) for r in down]
    assert down_keys == sorted(down_keys)
    assert len(down) == len(recs) == 3000
    mixed = everything(v5, "visits", "id,updatedAt", orderBy="updatedAt asc, id desc")
    mixed_keys = [(local(r["updatedAt"]).timestamp(), -r["id"]) for r in mixed]
    assert mixed_keys == sorted(mixed_keys)
    by_id = everything(v5, "campaigns", "id", orderBy="id desc", deleted="all")
    assert [r["id"] for r in by_id] == sorted((r["id"] for r in by_id), reverse=True)
    sends = everything(v5, "emails", "id,sentAt", orderBy="sentAt desc", idLessThan="5100")
    assert [r["id"] for r in sends][:3] == [5000, 5001, 5002]  # one send: one sentAt, then id ascending


@pytest.mark.parametrize(
    ("collection", "order"),
    [
        ("campaigns", "name"),
        ("campaigns", "createdAt asc"),
        ("forms", "updatedAt"),
        ("emails", "updatedAt"),
        ("visitor-page-views", "updatedAt"),
        ("campaigns", "updatedAt sideways"),
        ("campaigns", "id, id"),
        ("campaigns", ""),
        ("campaigns", "updatedAt asc id"),
    ],
)
def test_order_by_refuses_other_fields_and_syntax(v5: V5, collection: str, order: str):
    status, code, message = v5.error(collection, {"fields": "id", "orderBy": order})
    assert (status, code) == (400, 51)
    assert message.startswith("Invalid parameter: orderBy.")


# -- deleted -----------------------------------------------------------------------------------


def test_deleted_selects_live_records_the_recycle_bin_or_both(v5: V5):
    live = everything(v5, "campaigns", "id,isDeleted")
    same = everything(v5, "campaigns", "id,isDeleted", deleted="false")
    binned = everything(v5, "campaigns", "id,isDeleted", deleted="true")
    both = everything(v5, "campaigns", "id,isDeleted", deleted="all")
    assert live == same
    assert live and binned
    assert not any(r["isDeleted"] for r in live)
    assert all(r["isDeleted"] for r in binned)
    assert sorted(r["id"] for r in live + binned) == [r["id"] for r in both]
    assert v5.error("campaigns", {"fields": "id", "deleted": "maybe"})[:2] == (400, 51)


@pytest.mark.parametrize("collection", ["emails", "visits", "tags", "opportunities", "folders", "custom-fields"])
def test_deleted_is_refused_where_there_is_no_recycle_bin(v5: V5, collection: str):
    assert v5.error(collection, {"fields": "id", "deleted": "all"}) == (400, 51, "Parameter deleted is invalid.")


def test_every_object_with_is_deleted_has_a_recycle_bin(sb: Sandbox):
    with_bin = {o.name for o in sb.v5.objects.values() if o.has_bin}
    assert with_bin == {
        "campaign",
        "list",
        "list_email",
        "email_template",
        "user",
        "form",
        "form_handler",
        "landing_page",
        "custom_redirect",
        "lifecycle_stage",
        "dynamic_content",
        "engagement_studio_program",
        "tracker_domain",
        "layout_template",
    }


# -- routes, auth, limits -------------------------------------------------------------------------


def test_other_paths_and_methods(v5: V5):
    assert v5.error("prospect-accounts", {"fields": "id"})[:2] == (404, 2)
    r = v5.http.post(v5.url("campaigns"), params={"fields": "id"}, headers=v5.headers, timeout=10)
    assert r.status_code == 405 and r.json()["code"] == 2


def test_a_bad_token_or_business_unit_is_refused_as_on_the_export_api(v5: V5):
    bad = {**v5.headers, "Authorization": "Bearer nope"}
    assert v5.error("campaigns", {"fields": "id"}, headers=bad)[:2] == (401, 184)
    no_bu = {"Authorization": v5.headers["Authorization"]}
    assert v5.error("campaigns", {"fields": "id"}, headers=no_bu) == (
        400,
        181,
        "A required header is missing: Pardot-Business-Unit-Id header not found on request.",
    )
    assert v5.error("campaigns", {"fields": "id"}, headers={**v5.headers, "Pardot-Business-Unit-Id": "x"})[1] == 182
    other = {**v5.headers, "Pardot-Business-Unit-Id": "0Uv5e0000000002AAA"}
    assert v5.error("account", {"fields": "id"}, headers=other)[:2] == (400, 201)


def test_the_daily_limit_counts_v5_and_export_calls_together(fresh):
    sb, v5 = fresh(daily_limit=3)
    assert v5.get("campaigns", {"fields": "id"}).status_code == 200
    export = v5.http.get(f"{sb.base_url}/api/export/version/4/do/query?format=json", headers=v5.headers, timeout=10)
    assert export.status_code == 200
    assert v5.get("account", {"fields": "apiCallsUsed"}).json() == {"apiCallsUsed": 3}
    assert v5.error("campaigns", {"fields": "id"}) == (429, 122, "Daily API rate limit met.")
    export = v5.http.get(f"{sb.base_url}/api/export/version/4/do/query?format=json", headers=v5.headers, timeout=10)
    assert export.status_code == 429 and export.json()["@attributes"]["err_code"] == 122


def _in_flight(sb: Sandbox, n: int) -> None:
    deadline = time.monotonic() + 10
    while sb.state.inflight < n:
        assert time.monotonic() < deadline, "requests never got in flight"
        time.sleep(0.01)


def test_the_concurrency_limit_counts_v5_and_export_calls_together(fresh):
    sb, v5 = fresh(max_concurrent=2, v5_page_latency=3.0)
    slow = [threading.Thread(target=v5.get, args=("campaigns", {"fields": "id"})) for _ in range(2)]
    for th in slow:
        th.start()
    _in_flight(sb, 2)
    export = requests.get(f"{sb.base_url}/api/export/version/4/do/query?format=json", headers=v5.headers, timeout=10)
    third = v5.get("campaigns", {"fields": "id"})
    for th in slow:
        th.join()
    assert export.status_code == 400 and export.json()["@attributes"]["err_code"] == 66
    assert third.status_code == 400 and third.json()["code"] == 66
    assert third.headers["Retry-After"] == "1"
    sb.config.v5_page_latency = 0
    sb.inject("slow", count=2, op="query", seconds=3.0)
    exports = [
        threading.Thread(
            target=requests.get,
            args=(f"{sb.base_url}/api/export/version/4/do/query?format=json",),
            kwargs={"headers": v5.headers, "timeout": 10},
        )
        for _ in range(2)
    ]
    for th in exports:
        th.start()
    _in_flight(sb, 2)
    refused = v5.get("campaigns", {"fields": "id"})
    for th in exports:
        th.join()
    assert refused.status_code == 400 and refused.json()["code"] == 66
    assert sb.stats()["max_inflight"] >= 3


# -- faults and stats ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("http_503", 503, None),
        ("http_504", 504, None),
        ("code_66", 400, 66),
        ("code_202", 429, 202),
        ("code_214", 400, 214),
    ],
)
def test_faults_reach_v5_calls_injected_for_them(fresh, kind: str, status: int, code: int | None):
    sb, v5 = fresh()
    sb.inject(kind, count=1, op="query_v5")
    r = v5.get("campaigns", {"fields": "id"})
    assert r.status_code == status
    if code is not None:
        assert r.json()["code"] == code
    assert v5.get("campaigns", {"fields": "id"}).status_code == 200


def test_faults_for_other_calls_do_not_reach_v5(fresh):
    sb, v5 = fresh()
    sb.inject("http_503", count=1)
    sb.inject("http_500", count=1, op="account_v5")
    assert v5.get("campaigns", {"fields": "id"}).status_code == 200
    assert v5.get("account", {"fields": "id"}).status_code == 500
    assert v5.get("account", {"fields": "id"}).status_code == 200
    export = requests.get(f"{sb.base_url}/api/export/version/4/do/query?format=json", headers=v5.headers, timeout=10)
    assert export.status_code == 503


def test_faults_can_be_posted_and_tokens_revoked_for_v5(fresh):
    sb, v5 = fresh()
    r = requests.post(f"{sb.base_url}/_sandbox/faults", json={"kind": "revoke", "op": "query_v5"}, timeout=10)
    assert r.status_code == 200
    assert v5.error("campaigns", {"fields": "id"})[:2] == (401, 184)
    sb.inject("slow", op="query_v5", seconds=0.2)
    fresh_client = V5(sb)
    started = time.monotonic()
    assert fresh_client.get("campaigns", {"fields": "id"}).status_code == 200
    assert time.monotonic() - started >= 0.2


def test_stats_count_v5_calls_pages_and_records_per_object(fresh):
    sb, v5 = fresh()
    v5.all("emails", {"fields": "id", "limit": "1000", "idLessThan": "7500"})
    v5.ok("campaigns", {"fields": "id"})
    v5.error("campaigns", {"fields": "nope"})
    v5.ok("account", {"fields": "id"})
    stats = sb.stats()
    assert stats["calls"]["query_v5"] == 5
    assert stats["calls"]["account_v5"] == 1
    assert stats["v5"]["pages"] == {"email": 3, "campaign": 1}
    assert stats["v5"]["records"]["email"] == 2500
    assert stats["errors"]["51"] == 1
    assert requests.get(f"{sb.base_url}/_sandbox/stats", timeout=10).json()["v5"] == stats["v5"]


def test_v5_settings_change_while_running(fresh):
    sb, _ = fresh()
    url = f"{sb.base_url}/_sandbox/v5/settings"
    r = requests.post(url, json={"chain_cap": 300, "token_ttl": 60, "page_latency": 0}, timeout=10)
    assert r.json() == {"chain_cap": 300, "token_ttl": 60.0, "page_latency": 0.0}
    assert sb.config.v5_chain_cap == 300
    assert requests.post(url, json={"cap": 1}, timeout=10).status_code == 400


def test_the_zone_is_the_sandboxs(sb: Sandbox, v5: V5):
    rec = v5.ok("campaigns", {"fields": "createdAt", "limit": "1"})["values"][0]
    assert rec["createdAt"] == "2023-12-31T16:00:00-08:00"
    assert local(rec["createdAt"]) == dt.datetime(2024, 1, 1, tzinfo=UTC)
    assert sb.config.data.timezone == "America/Los_Angeles"
