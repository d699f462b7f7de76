"""The v5 query API's pages: keyset tokens, their life, the 100,000-record chain cap, bursts at the cap."""

from __future__ import annotations

import base64
import datetime as dt
import json
import typing as t
import urllib.parse

import requests
from conftest import UTC, V5, iso, local

if t.TYPE_CHECKING:
    from pardot_export_sandbox import Sandbox

CAP_WARNING = "203;Record count for nextPageToken sequence has been exceeded. No page token returned."


def ids(page: requests.Response) -> list[int]:
    return [r["id"] for r in page.json()["values"]]


def test_a_chain_of_pages_covers_every_record_once_in_order(v5: V5):
    pages = v5.pages("emails", {"fields": "id,sentAt", "limit": "700"})
    assert [len(ids(p)) for p in pages] == [700] * 8 + [400]
    got = [i for p in pages for i in ids(p)]
    assert got == list(range(5000, 11000))
    last = pages[-1].json()
    assert last["nextPageToken"] is None and last["nextPageUrl"] is None
    first = pages[0].json()
    url = urllib.parse.urlsplit(first["nextPageUrl"])
    assert f"{url.scheme}://{url.netloc}" == v5.sb.base_url
    assert url.path == "/api/v5/objects/emails"
    query = urllib.parse.parse_qs(url.query)
    assert query == {"fields": ["id,sentAt"], "nextPageToken": [first["nextPageToken"]]}
    assert all("Pardot-Warning" not in p.headers for p in pages)


def test_a_token_alone_resumes_the_query_with_its_filters_sort_and_limit(v5: V5, sb: Sandbox):
    at = sb.v5.bursts("visit")[0]["at"] - dt.timedelta(days=20)
    params = {"fields": "id,updatedAt", "updatedAtAfterOrEqualTo": iso(at), "orderBy": "updatedAt desc", "limit": "333"}
    whole = v5.all("visits", {**params, "limit": "1000"})
    first = v5.ok("visits", params)
    got = list(first["values"])
    token = first["nextPageToken"]
    while token:
        page = v5.ok("visits", {"nextPageToken": token})  # no fields: the token's
        assert len(page["values"]) <= 333
        got += page["values"]
        token = page["nextPageToken"]
    assert got == whole
    keys = [(-local(r["updatedAt"]).timestamp(), r["id"]) for r in got]
    assert keys == sorted(keys)
    assert all(local(r["updatedAt"]) >= at for r in got)


def test_a_later_page_may_ask_for_other_fields(v5: V5):
    first = v5.ok("campaigns", {"fields": "id", "limit": "5"})
    nxt = v5.ok("campaigns", {"nextPageToken": first["nextPageToken"], "fields": "id,name"})
    assert list(nxt["values"][0]) == ["id", "name"]
    assert "fields=id%2Cname" in nxt["nextPageUrl"] or "fields=id,name" in urllib.parse.unquote(nxt["nextPageUrl"])


def test_only_fields_may_go_with_a_token(v5: V5):
    token = v5.ok("emails", {"fields": "id"})["nextPageToken"]
    for extra in ({"limit": "5"}, {"orderBy": "id desc"}, {"idGreaterThan": "1"}, {"offset": "1"}, {"deleted": "all"}):
        status, code, message = v5.error("emails", {"fields": "id", "nextPageToken": token, **extra})
        assert (status, code) == (400, 51)
        assert next(iter(extra)) in message


def test_the_same_token_gives_the_same_page(v5: V5):
    token = v5.ok("visitor-page-views", {"fields": "id,createdAt", "orderBy": "createdAt asc"})["nextPageToken"]
    one = v5.ok("visitor-page-views", {"nextPageToken": token, "fields": "id,createdAt"})
    two = v5.ok("visitor-page-views", {"nextPageToken": token, "fields": "id,createdAt"})
    assert one == two


def test_a_malformed_foreign_or_altered_token_is_invalid(v5: V5):
    invalid = (400, 211, "Page token is invalid")
    assert v5.error("emails", {"nextPageToken": "not a token"}) == invalid
    assert v5.error("emails", {"nextPageToken": ""}) == invalid
    token = v5.ok("campaigns", {"fields": "id", "limit": "2"})["nextPageToken"]
    assert v5.error("emails", {"nextPageToken": token}) == invalid
    payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    assert payload["recCount"] == 2 and payload["limit"] == 2 and payload["resumeValue"] == {"id": 1001}
    payload["resumeValue"] = {"id": 1020}
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()
    assert v5.error("campaigns", {"nextPageToken": forged}) == invalid


def test_a_token_expires_after_four_hours_of_the_sandbox_clock(fresh):
    sb, v5 = fresh()
    token = v5.ok("emails", {"fields": "id"})["nextPageToken"]
    sb.clock.advance(4 * 3600 - 60)
    assert v5.get("emails", {"nextPageToken": token}).status_code == 200
    sb.clock.advance(120)
    assert v5.error("emails", {"nextPageToken": token}) == (400, 210, "Page token has expired")
    fresh_token = v5.ok("emails", {"fields": "id"})["nextPageToken"]
    assert v5.get("emails", {"nextPageToken": fresh_token}).status_code == 200


def test_the_token_life_is_a_setting(fresh):
    sb, v5 = fresh(v5_token_ttl=60)
    token = v5.ok("emails", {"fields": "id"})["nextPageToken"]
    requests.post(f"{sb.base_url}/_sandbox/clock", json={"advance_seconds": 61}, timeout=10)
    assert v5.error("emails", {"nextPageToken": token})[1] == 210


# -- the chain cap ---------------------------------------------------------------------------


def test_a_chain_stops_at_the_cap_with_a_warning_and_no_token(fresh):
    sb, v5 = fresh(v5_chain_cap=250)
    pages = v5.pages("emails", {"fields": "id", "limit": "100"})
    assert [len(ids(p)) for p in pages] == [100, 100, 50]
    last = pages[-1]
    assert last.headers["Pardot-Warning"] == CAP_WARNING
    assert last.json()["nextPageToken"] is None and last.json()["nextPageUrl"] is None
    assert all("Pardot-Warning" not in p.headers for p in pages[:-1])
    assert sb.stats()["v5"]["capped"] == {"email": 1}
    # a new query from a moved lower bound goes on where the chain stopped
    rest = v5.pages("emails", {"fields": "id", "limit": "100", "idGreaterThan": str(ids(last)[-1])})
    assert ids(rest[0])[0] == 5250


def test_a_chain_ending_exactly_at_the_cap_has_no_warning(fresh):
    _, v5 = fresh(v5_chain_cap=250)
    pages = v5.pages("emails", {"fields": "id", "limit": "100", "idLessThan": "5250"})
    assert [len(ids(p)) for p in pages] == [100, 100, 50]
    assert "Pardot-Warning" not in pages[-1].headers


def test_the_default_cap_is_100000(sb: Sandbox):
    assert sb.config.v5_chain_cap == 100_000


def test_a_burst_at_the_cap_loses_records_after_it_and_loops_at_it(fresh):
    sb, v5 = fresh(v5_chain_cap=1500, data_email_send_size=2000)
    send = sb.v5.bursts("email")[0]
    at, first_id = send["at"], send["first_id"]
    base = {"fields": "id,sentAt", "orderBy": "sentAt asc, id asc", "limit": "1000"}
    chain = v5.all("emails", base)
    assert [r["id"] for r in chain] == list(range(first_id, first_id + 1500))
    assert {local(r["sentAt"]) for r in chain} == {at}
    # re-querying after the last timestamp skips the burst's other 500 records
    after = v5.ok("emails", {**base, "sentAtAfter": iso(at)})["values"]
    assert after[0]["id"] == first_id + 2000
    # re-querying at it starts the burst again: the same chain, for ever
    again = v5.all("emails", {**base, "sentAtAfterOrEqualTo": iso(at)})
    assert again == chain
    # the rest of that second by id, then after it: nothing lost, nothing twice
    rest = v5.all(
        "emails",
        {
            **base,
            "sentAtAfterOrEqualTo": iso(at),
            "sentAtBeforeOrEqualTo": iso(at),
            "idGreaterThan": str(chain[-1]["id"]),
        },
    )
    assert [r["id"] for r in rest] == list(range(first_id + 1500, first_id + 2000))
    tail = v5.ok("emails", {**base, "sentAtAfter": iso(at)})["values"]
    assert tail == after


def test_a_mass_update_at_the_cap_shows_both_failure_modes(fresh):
    sb, v5 = fresh(v5_chain_cap=500, data_mass_updates={"campaign": 0, "visit": 800})
    burst = sb.v5.bursts("visit")[0]
    at = burst["at"]
    sharing = sb.v5_expected("visit", start=at, end=at + dt.timedelta(seconds=1))
    assert len(sharing) >= 800
    base = {"fields": "id,updatedAt", "orderBy": "updatedAt asc", "limit": "200"}
    pages = v5.pages("visits", {**base, "updatedAtAfterOrEqualTo": iso(at)})
    assert pages[-1].headers["Pardot-Warning"] == CAP_WARNING
    chain = [r for p in pages for r in p.json()["values"]]
    assert len(chain) == 500
    assert {local(r["updatedAt"]) for r in chain} == {at}
    after = v5.all("visits", {**base, "updatedAtAfter": iso(at)})
    seen = {r["id"] for r in chain} | {r["id"] for r in after}
    assert set(sharing) - seen  # lost
    assert v5.all("visits", {**base, "updatedAtAfterOrEqualTo": iso(at)}) == chain  # looping


def test_keyset_pages_see_records_changed_during_the_chain(fresh):
    sb, v5 = fresh()
    params = {"fields": "id,updatedAt", "orderBy": "updatedAt asc", "limit": "10", "deleted": "all"}
    first = v5.ok("campaigns", params)
    served = [r["id"] for r in first["values"]]
    sb.v5_update("campaign", [served[0]], at=dt.datetime(2025, 6, 1, tzinfo=UTC))
    [new] = sb.v5_add("campaign", at=dt.datetime(2025, 6, 2, tzinfo=UTC))
    rest = []
    token = first["nextPageToken"]
    while token:
        page = v5.ok("campaigns", {"nextPageToken": token})
        rest += [r["id"] for r in page["values"]]
        token = page["nextPageToken"]
    assert rest[-2:] == [served[0], new["id"]]
    assert len(served) + len(rest) == 31 + 2
