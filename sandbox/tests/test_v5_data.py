"""The v5 objects' records: field lists and JSON types, offsets, ids that join, sizes, the oracle, changes."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
from conftest import UTC, V5, ZONE, iso, local, make_config

from pardot_export_sandbox import DataConfig, Dataset, Sandbox
from pardot_export_sandbox.cli import build_parser, config_from_args
from pardot_export_sandbox.data import BASE_IDS
from pardot_export_sandbox.v5data import V5Dataset

AUDIT = "createdAt:dt updatedAt:dt createdById:i updatedById:i"
#: the shared document's field lists, written out: its §6 for the twenty streams, its §2.2 for the others
FIELDS = {
    "campaigns": "id:i name:s cost:n folderId:i parentCampaignId:i salesforceId:s isDeleted:b " + AUDIT,
    "lists": "id:i name:s title:s description:s isPublic:b isDynamic:b isDeleted:b folderId:i campaignId:i " + AUDIT,
    "list-emails": "id:i name:s subject:s isPaused:b isSent:b isDeleted:b isOperational:b sentAt:dt campaignId:i "
    "clientType:s emailTemplateId:i trackerDomainId:i folderId:i type:s " + AUDIT,
    "emails": "id:i name:s subject:s type:s sentAt:dt clientType:s isOperational:b campaignId:i prospectId:i "
    "folderId:i listId:i listEmailId:i emailTemplateId:i trackerDomainId:i createdById:i salesforceCmsId:s",
    "email-templates": "id:i name:s subject:s type:s campaignId:i folderId:i trackerDomainId:i "
    "isAutoResponderEmail:b isDripEmail:b isListEmail:b isOneToOneEmail:b isDeleted:b tagReplacementLanguage:s "
    + AUDIT,
    "users": "id:i email:s username:s firstName:s lastName:s jobTitle:s role:s roleName:s salesforceId:s "
    "isDeleted:b tagReplacementLanguage:s " + AUDIT,
    "forms": "id:i name:s campaignId:i layoutTemplateId:i folderId:i trackerDomainId:i salesforceId:s isDeleted:b "
    "isUseRedirectLocation:b isAlwaysDisplay:b isCookieless:b isCaptchaEnabled:b showNotProspect:b embedCode:s "
    "submitButtonText:s beforeFormContent:s afterFormContent:s thankYouContent:s thankYouCode:s "
    "redirectLocation:s fontSize:s fontFamily:s fontColor:s labelAlignment:s radioAlignment:s "
    "checkboxAlignment:s requiredCharacter:s url:s salesforceCmsId:s " + AUDIT,
    "form-handlers": "id:i name:s folderId:i campaignId:i trackerDomainId:i isDataForwarded:b successLocation:s "
    "errorLocation:s isAlwaysEmail:b isCookieless:b salesforceId:s embedCode:s isDeleted:b createdAt:dt "
    "createdById:i updatedById:i",
    "landing-pages": "id:i name:s title:s description:s campaignId:i salesforceId:s isDeleted:b layoutType:s "
    "layoutTableBorder:i layoutTemplateId:i isUseRedirectLocation:b redirectLocation:s isDoNotIndex:b "
    "bitlyIsPersonalized:b bitlyShortUrl:s url:s vanityUrl:s vanityUrlPath:s folderId:i formId:i "
    "trackerDomainId:i archiveDate:date salesforceCmsId:s " + AUDIT,
    "custom-fields": "id:i name:s fieldId:s type:s salesforceId:s isRequired:b isRecordMultipleResponses:b "
    "isUseValues:b isAnalyticsSynced:b " + AUDIT,
    "custom-redirects": "id:i name:s url:s destinationUrl:s vanityUrl:s vanityUrlPath:s trackedUrl:s campaignId:i "
    "salesforceId:s isDeleted:b folderId:i trackerDomainId:i bitlyIsPersonalized:b bitlyShortUrl:s gaSource:s "
    "gaMedium:s gaTerm:s gaContent:s gaCampaign:s " + AUDIT,
    "files": "id:i name:s folderId:i campaignId:i salesforceId:s trackerDomainId:i url:s vanityUrl:s "
    "vanityUrlPath:s size:i isTracked:b bitlyIsPersonalized:b bitlyShortUrl:s " + AUDIT,
    "opportunities": "id:i name:s type:s stage:s status:s probability:i value:n closedAt:dt campaignId:i "
    "salesforceId:s " + AUDIT,
    "lifecycle-stages": "id:i name:s isDeleted:b isLocked:b position:i matchType:s createdAt:dt updatedAt:dt",
    "lifecycle-histories": "id:i prospectId:i previousStageId:i nextStageId:i secondsElapsed:i createdAt:dt",
    "tags": "id:i name:s objectCount:i " + AUDIT,
    "tagged-objects": "id:i tagId:i objectType:s objectId:i objectName:s createdAt:dt createdById:i",
    "folders": "id:i name:s parentFolderId:i path:s usePermissions:b " + AUDIT,
    "visits": "id:i visitorId:i prospectId:i visitorPageViewCount:i firstVisitorPageViewAt:dt "
    "lastVisitorPageViewAt:dt durationInSeconds:i sourceParameter:s campaignParameter:s mediumParameter:s "
    "contentParameter:s termParameter:s createdAt:dt updatedAt:dt",
    "visitor-page-views": "id:i url:s title:s visitorId:i visitId:i campaignId:i durationInSeconds:i "
    "salesforceId:s createdAt:dt",
    "dynamic-contents": "id:i name:s basedOn:s basedOnProspectApiFieldId:s embedCode:s embedUrl:s "
    "tagReplacementLanguage:s folderId:i trackerDomainId:i isDeleted:b baseContent:s " + AUDIT,
    "dynamic-content-variations": "id:i dynamicContentId:i comparison:s operator:s value1:s value2:s content:s",
    "engagement-studio-programs": "id:i name:s status:s isDeleted:b salesforceId:s description:s "
    "scheduleCreatedById:i businessHours:o prospectsMultipleEntry:o schedule:o recipientListIds:a "
    "suppressionListIds:a " + AUDIT,
    "form-fields": "id:i formId:i prospectApiFieldId:s type:s dataFormat:s sortOrder:i hasDependents:b "
    "hasProgressives:b hasValues:b label:s errorMessage:s cssClasses:s isRequired:b isAlwaysDisplay:b "
    "isMaintainInitialValue:b isDoNotPrefill:b " + AUDIT,
    "form-handler-fields": "id:i name:s formHandlerId:i dataFormat:s prospectApiFieldId:s isMaintainInitialValue:b "
    "errorMessage:s isRequired:b createdAt:dt createdById:i",
    "folder-contents": "id:i folderId:i folderRef:s objectType:s objectId:i objectName:s objectRef:s " + AUDIT,
    "tracker-domains": "id:i domain:s isPrimary:b isDeleted:b defaultCampaignId:i httpsStatus:s sslStatus:s "
    "sslStatusDetails:s sslRequestedById:i validationStatus:s validatedAt:dt vanityUrlStatus:s trackingCode:s " + AUDIT,
    "layout-templates": "id:i name:s layoutContent:s siteSearchContent:s formContent:s folderId:i isDeleted:b "
    "isIncludeDefaultCss:b " + AUDIT,
}
#: fields served beyond those lists: long bodies the shared document names in §2.2
EXTRA = {
    "list-emails": "htmlMessage:s textMessage:s",
    "email-templates": "htmlMessage:s textMessage:s",
    "landing-pages": "layoutCss:s layoutCssGenerated:s",
}
ACCOUNT = (
    "id:i company:s level:s website:s pluginCampaignId:i addressOne:s addressTwo:s city:s state:s zip:s "
    "territory:s country:s phone:s fax:s adminId:i maximumDailyApiCalls:i apiCallsUsed:i " + AUDIT
)
STREAMS = {
    "campaign": "campaigns",
    "list": "lists",
    "list_email": "list-emails",
    "email": "emails",
    "email_template": "email-templates",
    "user": "users",
    "form": "forms",
    "form_handler": "form-handlers",
    "landing_page": "landing-pages",
    "custom_field": "custom-fields",
    "custom_redirect": "custom-redirects",
    "file": "files",
    "opportunity": "opportunities",
    "lifecycle_stage": "lifecycle-stages",
    "lifecycle_history": "lifecycle-histories",
    "tag": "tags",
    "tagged_object": "tagged-objects",
    "folder": "folders",
    "visit": "visits",
    "visitor_page_view": "visitor-page-views",
    "dynamic_content": "dynamic-contents",
    "dynamic_content_variation": "dynamic-content-variations",
    "engagement_studio_program": "engagement-studio-programs",
    "form_field": "form-fields",
    "form_handler_field": "form-handler-fields",
    "folder_content": "folder-contents",
    "tracker_domain": "tracker-domains",
    "layout_template": "layout-templates",
}
ISO_OFFSET = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")


def spec(text: str) -> dict[str, str]:
    return dict(item.split(":") for item in text.split())


def served(collection: str) -> dict[str, str]:
    return {**spec(FIELDS[collection]), **spec(EXTRA.get(collection, ""))}


def is_local_datetime(value: object, zone: ZoneInfo) -> bool:
    if not (isinstance(value, str) and ISO_OFFSET.match(value)):
        return False
    d = dt.datetime.fromisoformat(value)
    return d.utcoffset() == d.astimezone(zone).utcoffset()


def check_type(kind: str, value: object, zone: ZoneInfo) -> bool:
    checks = {
        "i": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "n": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "s": lambda v: isinstance(v, str),
        "b": lambda v: isinstance(v, bool),
        "dt": lambda v: is_local_datetime(v, zone),
        "date": lambda v: isinstance(v, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", v) is not None,
        "o": lambda v: isinstance(v, dict),
        "a": lambda v: isinstance(v, list),
    }
    return value is None or checks[kind](value)


def test_the_sandbox_serves_the_28_collections_with_the_stream_names_of_the_shared_document(sb: Sandbox):
    assert {o.name: o.collection for o in sb.v5.objects.values()} == STREAMS
    assert set(FIELDS) == set(STREAMS.values())


@pytest.mark.parametrize("collection", sorted(FIELDS))
def test_each_object_serves_the_documented_fields_with_their_json_types(v5: V5, collection: str):
    fields = served(collection)
    pages = v5.pages(collection, {"fields": ",".join(fields), "limit": 1000, **_all_if_bin(v5, collection)})
    records = [r for p in pages[:3] for r in p.json()["values"]]
    assert records
    zone = ZoneInfo(ZONE)
    nulls = set()
    for rec in records:
        assert list(rec) == list(fields)
        for name, kind in fields.items():
            assert check_type(kind, rec[name], zone), (collection, name, rec[name])
            if rec[name] is None:
                nulls.add(name)
        assert isinstance(rec["id"], int)
    if len(records) > 20:  # a larger object shows nulls in some nullable field
        assert nulls, collection


def _all_if_bin(v5: V5, collection: str) -> dict[str, str]:
    return {"deleted": "all"} if v5.sb.v5.by_collection[collection].has_bin else {}


def test_a_request_returns_the_fields_asked_for_in_their_order_and_once(v5: V5):
    rec = v5.ok("campaigns", {"fields": "updatedAt, name,id,name", "limit": 1})["values"][0]
    assert list(rec) == ["updatedAt", "name", "id"]


def test_datetimes_carry_the_api_users_offset_through_daylight_saving(v5: V5):
    recs = v5.all("visitor-page-views", {"fields": "id,createdAt", "limit": 1000, "idLessThan": 1_003_000})
    offsets = {rec["createdAt"][-6:] for rec in recs}
    assert offsets <= {"-08:00", "-07:00"}
    recs = v5.all("emails", {"fields": "id,sentAt", "limit": 1000})
    offsets = {local(r["sentAt"]).utcoffset() for r in recs}
    assert offsets == {dt.timedelta(hours=-8), dt.timedelta(hours=-7)}


def test_the_account_singleton_reports_the_daily_limit_and_the_calls_used(fresh):
    sb, v5 = fresh(daily_limit=777)
    r = v5.get("account", {"fields": ",".join(spec(ACCOUNT))})
    assert r.status_code == 200
    rec = r.json()
    assert "values" not in rec
    assert list(rec) == list(spec(ACCOUNT))
    for name, kind in spec(ACCOUNT).items():
        assert check_type(kind, rec[name], ZoneInfo(ZONE)), name
    assert rec["maximumDailyApiCalls"] == 777
    assert rec["apiCallsUsed"] == sb.state.daily_calls == 1
    v5.ok("campaigns", {"fields": "id"})
    again = v5.get("account", {"fields": "apiCallsUsed"}).json()
    assert again == {"apiCallsUsed": 3}
    assert sb.stats()["calls"]["account_v5"] == 2
    assert v5.error("account", {"fields": "id", "limit": "5"}) == (400, 51, "Parameter limit is invalid.")
    assert v5.error("account", {})[1] == 13
    assert v5.error("account", {"fields": "id,nope"})[1] == 51


# -- ids that join ---------------------------------------------------------------------------


def ids(v5: V5, collection: str) -> set[int]:
    params = {"fields": "id", "limit": 1000, **_all_if_bin(v5, collection)}
    return {r["id"] for r in v5.all(collection, params)}


def test_the_export_datas_ids_are_records_the_v5_api_serves(sb: Sandbox, v5: V5):
    served_ids = {c: ids(v5, c) for c in ("campaigns", "users", "lists", "visits", "visitor-page-views", "emails")}
    for c in ("list-emails", "email-templates", "forms", "form-handlers", "landing-pages", "files"):
        served_ids[c] = ids(v5, c)
    for c in ("custom-redirects", "opportunities"):
        served_ids[c] = ids(v5, c)
    joins = {
        "visitor_activity": {
            "campaign_id": "campaigns",
            "email_id": "emails",
            "list_email_id": "list-emails",
            "email_template_id": "email-templates",
            "form_id": "forms",
            "form_handler_id": "form-handlers",
            "landing_page_id": "landing-pages",
            "custom_redirect_id": "custom-redirects",
            "file_id": "files",
            "opportunity_id": "opportunities",
            "visit_id": "visits",
            "visitor_page_view_id": "visitor-page-views",
        },
        "prospect": {"campaign_id": "campaigns", "user_id": "users"},
        "list_membership": {"list_id": "lists"},
        "prospect_account": {"assigned_to_id": "users"},
        "external_activity": {"createdById": "users"},
    }
    for stream, fields in joins.items():
        obj = sb.dataset.objects[stream]
        seen = dict.fromkeys(fields, 0)
        for i in range(obj.count):
            row = obj.typed_row(i)
            for f, collection in fields.items():
                if row[f] is not None:
                    seen[f] += 1
                    assert row[f] in served_ids[collection], (stream, f, row[f])
        assert all(seen.values()), (stream, seen)


def test_v5_records_point_at_records_that_exist(sb: Sandbox, v5: V5):
    served_ids = {c: ids(v5, c) for c in FIELDS}
    served_ids["prospect"] = {BASE_IDS["prospect"] + i for i in range(sb.dataset.objects["prospect"].count)}
    served_ids["visitor"] = {BASE_IDS["visitor"] + i for i in range(sb.dataset.objects["visitor"].count)}
    targets = {
        "folderId": "folders",
        "parentFolderId": "folders",
        "campaignId": "campaigns",
        "parentCampaignId": "campaigns",
        "defaultCampaignId": "campaigns",
        "createdById": "users",
        "updatedById": "users",
        "scheduleCreatedById": "users",
        "sslRequestedById": "users",
        "trackerDomainId": "tracker-domains",
        "emailTemplateId": "email-templates",
        "listEmailId": "list-emails",
        "listId": "lists",
        "layoutTemplateId": "layout-templates",
        "formId": "forms",
        "formHandlerId": "form-handlers",
        "dynamicContentId": "dynamic-contents",
        "tagId": "tags",
        "previousStageId": "lifecycle-stages",
        "nextStageId": "lifecycle-stages",
        "visitId": "visits",
        "visitorId": "visitor",
        "prospectId": "prospect",
    }
    kinds = {
        "custom-field": "custom-fields",
        "custom-redirect": "custom-redirects",
        "dynamic-content": "dynamic-contents",
        "email-template": "email-templates",
        "form-field": "form-fields",
        "form-handler": "form-handlers",
        "landing-page": "landing-pages",
        "layout-template": "layout-templates",
    }
    checked: set[str] = set()
    for collection, listed in FIELDS.items():
        fields = [f for f in spec(listed) if f in targets or f in ("objectType", "objectId")]
        fields += ["recipientListIds", "suppressionListIds"] if collection == "engagement-studio-programs" else []
        if not fields:
            continue
        recs = v5.all(collection, {"fields": ",".join(fields), "limit": 1000, **_all_if_bin(v5, collection)})
        for rec in recs:
            for f in fields:
                v = rec[f]
                if f == "objectId":
                    kind = rec["objectType"]
                    target = kinds.get(kind) or ("prospect" if kind == "prospect" else kind + "s")
                    assert v in served_ids[target], (collection, kind, v)
                elif f.endswith("ListIds"):
                    assert set(v) <= served_ids["lists"], (collection, f, v)
                elif f in targets and v is not None:
                    assert v in served_ids[targets[f]], (collection, f, v)
                    checked.add(f)
    assert checked == set(targets)


def test_custom_fields_are_the_custom_prospect_fields(fresh):
    sb, v5 = fresh(data_typed_custom_fields=True)
    defs = sb.dataset.custom_field_defs()
    recs = v5.all("custom-fields", {"fields": "id,name,fieldId,type,isUseValues,isRecordMultipleResponses"})
    assert [(r["id"], r["fieldId"], r["name"], r["type"]) for r in recs] == [
        (d["id"], d["field_id"], d["name"], d["type"]) for d in defs
    ]
    assert {r["fieldId"] for r in recs} >= {"Favorite_Color", "Lead_Notes", "Interests"}
    prospect_fields = set(sb.dataset.objects["prospect"].field_names)
    assert {r["fieldId"] for r in recs} <= prospect_fields


def test_a_visit_counts_its_page_views_and_spans_them(v5: V5):
    visits = {
        r["id"]: r
        for r in v5.all(
            "visits",
            {"fields": "id,visitorId,visitorPageViewCount,firstVisitorPageViewAt,lastVisitorPageViewAt", "limit": 1000},
        )
    }
    views: dict[int, list[dict]] = {}
    for r in v5.all("visitor-page-views", {"fields": "id,visitId,visitorId,createdAt", "limit": 1000}):
        views.setdefault(r["visitId"], []).append(r)
    assert set(views) <= set(visits)
    for vid, visit in visits.items():
        mine = views.get(vid, [])
        assert visit["visitorPageViewCount"] == len(mine)
        if mine:
            times = [local(r["createdAt"]) for r in mine]
            assert local(visit["firstVisitorPageViewAt"]) == min(times)
            assert local(visit["lastVisitorPageViewAt"]) == max(times)
            assert {r["visitorId"] for r in mine} == {visit["visitorId"]}


# -- sizes ---------------------------------------------------------------------------------


def test_sizes_follow_the_rows_setting_and_export_ids_follow_the_sizes():
    data = Dataset(DataConfig(rows={"campaign": 5, "user": 3, "visit": 50, "email": 10}))
    v5 = V5Dataset(data)
    assert v5.objects["campaign"].count == 5
    va = data.objects["visitor_activity"]
    for i in range(va.count):
        row = va.typed_row(i)
        assert row["campaign_id"] is None or 1000 <= row["campaign_id"] < 1005
        assert row["visit_id"] is None or 70_000_000 <= row["visit_id"] < 70_000_050
        assert row["email_id"] is None or 5000 <= row["email_id"] < 5010
    pros = data.objects["prospect"]
    assert {pros.typed_row(i)["user_id"] for i in range(pros.count)} <= {None, 100, 101, 102}
    with pytest.raises(ValueError, match="unknown object"):
        Dataset(DataConfig(rows={"campaigns": 5}))
    with pytest.raises(ValueError, match="at least one record"):
        Dataset(DataConfig(rows={"tag": 0}))
    with pytest.raises(ValueError, match="mass update"):
        V5Dataset(Dataset(DataConfig(mass_updates={"email": 10})))
    with pytest.raises(ValueError, match="mass update"):
        V5Dataset(Dataset(DataConfig(mass_updates={"visits": 10})))


def test_defaults_are_tens_for_dimensions_and_thousands_for_events(sb: Sandbox):
    counts = {o.name: o.count for o in sb.v5.objects.values()}
    for name in ("email", "visit", "visitor_page_view", "lifecycle_history"):
        assert counts[name] >= 1000, name
    for name in ("campaign", "list", "user", "form", "tag", "folder", "lifecycle_stage"):
        assert counts[name] < 1000, name


def test_a_large_object_is_served_without_generating_it_whole(fresh):
    sb, v5 = fresh(data_rows={"visitor_page_view": 400_000})
    obj = sb.v5.objects["visitor_page_view"]
    calls: list[int] = []
    gen = obj.fields["url"].gen

    def counted(i: int) -> object:
        calls.append(i)
        return gen(i)

    obj.fields["url"].gen = counted
    mid = iso(dt.datetime(2024, 7, 1, tzinfo=UTC))
    page = v5.ok(
        "visitor-page-views",
        {"fields": "id,url,createdAt", "createdAtAfterOrEqualTo": mid, "orderBy": "createdAt asc", "limit": 1000},
    )
    assert len(page["values"]) == 1000
    assert local(page["values"][0]["createdAt"]) >= dt.datetime(2024, 7, 1, tzinfo=UTC)
    assert len(calls) <= 1100  # a page's worth, not 400,000
    last = v5.ok("visitor-page-views", {"fields": "id", "orderBy": "id desc", "limit": 1})["values"][0]
    assert last["id"] == 1_000_000 + 400_000 - 1


# -- the oracle ----------------------------------------------------------------------------


def test_expected_records_are_what_a_filtered_query_serves_in_utc(v5: V5, sb: Sandbox):
    start, end = dt.datetime(2024, 3, 1, tzinfo=UTC), dt.datetime(2024, 6, 1, tzinfo=UTC)
    got = v5.all(
        "campaigns",
        {
            "fields": ",".join(sb.v5.objects["campaign"].fields),
            "updatedAtAfterOrEqualTo": iso(start),
            "updatedAtBefore": iso(end),
            "deleted": "all",
            "limit": 1000,
        },
    )
    want = sb.v5_expected("campaign", start=start, end=end)
    assert want
    assert sorted(want) == [r["id"] for r in got]
    for rec in got:
        exp = want[rec["id"]]
        assert exp["updatedAt"] == local(rec["updatedAt"]).astimezone(UTC)
        assert exp["updatedAt"].tzinfo == UTC
        assert {k: v for k, v in exp.items() if not k.endswith("At")} == {
            k: v for k, v in rec.items() if not k.endswith("At")
        }
    assert any(r["isDeleted"] for r in want.values())
    live = sb.v5_expected("campaign", start=start, end=end, deleted="false")
    assert set(live) == {i for i, r in want.items() if not r["isDeleted"]}
    snake = sb.v5_expected("campaign", start=start, end=end, snake_case=True, iso=True, fields=["id", "isDeleted"])
    assert set(next(iter(snake.values()))) == {"id", "is_deleted"}
    one = sb.v5_expected("visitor_page_view", fields=["salesforceId", "createdAt"], snake_case=True, iso=True)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", next(iter(one.values()))["created_at"])
    assert "salesforce_id" in next(iter(one.values()))


def test_bursts_are_listed_for_tests_to_aim_at(sb: Sandbox, v5: V5):
    sends = sb.v5.bursts("email")
    assert len(sends) == 3
    assert [b["size"] for b in sends] == [2000, 2000, 1200]
    first = sends[1]
    recs = v5.all(
        "emails",
        {
            "fields": "id,sentAt",
            "sentAtAfterOrEqualTo": iso(first["at"]),
            "sentAtBeforeOrEqualTo": iso(first["at"]),
            "limit": 1000,
        },
    )
    assert [r["id"] for r in recs] == list(range(first["first_id"], first["first_id"] + 2000))
    mass = sb.v5.bursts("visit")
    assert [(b["field"], b["size"]) for b in mass] == [("updatedAt", 500)]


# -- changes -------------------------------------------------------------------------------


def test_changes_through_the_control_route_show_in_the_next_sync(fresh):
    sb, v5 = fresh()
    url = f"{sb.base_url}/_sandbox/v5/changes"
    bookmark = max(local(r["updatedAt"]) for r in v5.all("campaigns", {"fields": "updatedAt", "deleted": "all"}))
    at = "2025-02-01T10:00:00-08:00"
    added = v5.http.post(url, json={"op": "add", "object": "campaign", "count": 2, "values": {"name": "New"}, "at": at})
    assert added.status_code == 200
    new = added.json()["records"]
    assert [r["name"] for r in new] == ["New", "New"]
    assert [r["id"] for r in new] == [1031, 1032]
    assert new[0]["createdAt"] == new[0]["updatedAt"] == at
    upd = v5.http.post(
        url, json={"op": "update", "object": "campaign", "ids": [1003], "values": {"cost": 12.5}, "at": at}
    )
    assert upd.json()["records"][0]["cost"] == 12.5
    gone = v5.http.post(url, json={"op": "delete", "object": "campaign", "ids": [1004], "at": at})
    assert gone.json() == {"ids": [1004]}
    second = v5.all(
        "campaigns",
        {"fields": "id,cost,isDeleted,updatedAt", "updatedAtAfter": iso(bookmark), "deleted": "all", "limit": 1000},
    )
    assert [r["id"] for r in second] == [1003, 1031, 1032]  # the delete did not move updatedAt
    deleted = v5.all("campaigns", {"fields": "id,isDeleted", "deleted": "true", "limit": 1000})
    assert {"id": 1004, "isDeleted": True} in deleted
    live = {r["id"] for r in v5.all("campaigns", {"fields": "id", "limit": 1000})}
    assert 1004 not in live and {1031, 1032} <= live
    bad = v5.http.post(url, json={"op": "update", "object": "campaign", "ids": [999_999]})
    assert bad.status_code == 400 and "no record" in bad.json()["error"]
    assert v5.http.post(url, json={"op": "shred", "object": "campaign"}).status_code == 400
    assert v5.http.post(url, json={"op": "add", "object": "nope"}).status_code == 400


def test_changes_from_python_are_what_the_oracle_expects(fresh):
    sb, v5 = fresh(v5_delete_touches_updated_at=True)
    at = dt.datetime(2025, 3, 1, 12, tzinfo=UTC)
    before = sb.v5_expected("list")
    sb.v5_update("list", [2001, 2002], {"title": "Renamed"}, at=at)
    sb.v5_delete("list", [2003], at=at)
    sb.v5_delete("list", [2005], purge=True, at=at)
    sb.v5_delete("tagged_object", [9_100_000], at=at)  # no recycle bin: untagging removes the record
    [new] = sb.v5_add("list", values={"isPublic": True}, at=at)
    after = sb.v5_expected("list")
    assert set(after) == (set(before) - {2005}) | {new["id"]}
    assert after[2001]["title"] == "Renamed" and after[2001]["updatedAt"] == at
    assert after[2003]["isDeleted"] is True and after[2003]["updatedAt"] == at  # the knob moves it
    assert after[new["id"]] == new and new["createdAt"] == at
    got = v5.all("lists", {"fields": ",".join(sb.v5.objects["list"].fields), "deleted": "all", "limit": 1000})
    assert [r["id"] for r in got] == sorted(after)
    for rec in got:
        exp = after[rec["id"]]
        assert exp["updatedAt"] == local(rec["updatedAt"])
        assert exp["title"] == rec["title"]
    assert 9_100_000 not in {r["id"] for r in v5.all("tagged-objects", {"fields": "id", "limit": 1000})}
    recent = v5.all("lists", {"fields": "id", "updatedAtAfterOrEqualTo": iso(at), "deleted": "all"})
    assert [r["id"] for r in recent] == [2001, 2002, 2003, new["id"]]
    with pytest.raises(ValueError, match="no field"):
        sb.v5_update("list", [2001], {"nope": 1})
    with pytest.raises(ValueError, match="cannot be null"):
        sb.v5_update("list", [2001], {"updatedAt": None})


def test_an_update_without_updated_at_keeps_its_stamps(fresh):
    sb, v5 = fresh()
    rec = sb.v5.record("email", 5003)
    assert rec is not None
    sb.v5_update("email", [5003], {"subject": "Changed"}, at=dt.datetime(2025, 5, 1, tzinfo=UTC))
    got = v5.ok("emails", {"fields": "id,subject,sentAt", "id": "5003"})["values"][0]
    assert got["subject"] == "Changed"
    assert int(local(got["sentAt"]).timestamp()) == rec["sentAt"]


def test_a_change_defaults_to_the_sandbox_clock(fresh):
    sb, _ = fresh()
    sb.clock.advance(3600)
    [rec] = sb.v5_update("campaign", [1000])
    assert abs(rec["updatedAt"].timestamp() - sb.clock.now()) < 5


# -- the command line ----------------------------------------------------------------------


def test_the_command_line_sets_the_v5_knobs():
    args = build_parser().parse_args(
        [
            "--rows",
            "visitor_page_view=300000",
            "--email-send-size",
            "50",
            "--email-send-gap",
            "5",
            "--mass-update",
            "campaign=7",
            "--mass-update",
            "visit=0",
            "--v5-chain-cap",
            "500",
            "--v5-token-ttl",
            "60",
            "--v5-page-latency",
            "1.0",
            "--v5-refused-field",
            "form.salesforceCmsId",
            "--v5-delete-touches-updated-at",
        ]
    )
    cfg = config_from_args(args)
    assert cfg.data.rows == {"visitor_page_view": 300_000}
    assert (cfg.data.email_send_size, cfg.data.email_send_gap) == (50, 5)
    assert cfg.data.mass_updates == {"visit": 0, "campaign": 7}
    assert (cfg.v5_chain_cap, cfg.v5_token_ttl, cfg.v5_page_latency) == (500, 60.0, 1.0)
    assert cfg.v5_refused_fields == {"form": ["salesforceCmsId"]}
    assert cfg.v5_delete_touches_updated_at is True
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--rows", "custom_field=3"])


def test_make_config_keeps_the_zone():
    assert make_config().data.timezone == ZONE
    assert str(V5Dataset(Dataset(make_config().data)).zone) == ZONE
