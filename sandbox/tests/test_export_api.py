"""The sandbox behaves like the Export API: every point checked through HTTP."""

from __future__ import annotations

import concurrent.futures as cf
import csv
import datetime as dt
import io
import os
import re
import signal
import subprocess
import sys
import time
import typing as t
from zoneinfo import ZoneInfo

import pytest
import requests

from pardot_export_sandbox import DataConfig, Sandbox, SandboxConfig

UTC = dt.timezone.utc
V = "/api/export/version/4/do"


class Api:
    """A bare HTTP client for the sandbox (no tap code)."""

    def __init__(self, sb, version: int = 4) -> None:
        self.sb = sb
        self.token = sb.issue_token()
        self.version = version
        self.bu = sb.config.business_unit_id

    def headers(self, **over: str) -> dict[str, str]:
        h = {"Authorization": f"Bearer {self.token}", "Pardot-Business-Unit-Id": self.bu}
        h.update(over)
        return {k: v for k, v in h.items() if v is not None}

    def url(self, op: str) -> str:
        return f"{self.sb.base_url}/api/export/version/{self.version}/do/{op}?format=json"

    def create(self, obj: str, proc: str, args: dict, fields: list[str] | None = None, **kw) -> requests.Response:
        body: dict = {"object": obj, "procedure": {"name": proc, "arguments": args}}
        if fields is not None:
            body["fields"] = fields
        return requests.post(
            self.url("create"), json=body, headers=kw.pop("headers", None) or self.headers(), timeout=30
        )

    def read(self, eid: int) -> requests.Response:
        return requests.get(self.url(f"read/id/{eid}"), headers=self.headers(), timeout=30)

    def wait(self, eid: int, timeout: float = 20) -> dict:
        end = time.time() + timeout
        while time.time() < end:
            e = export_of(self.read(eid).json())
            if e["state"] not in ("Waiting", "Processing"):
                return e
            time.sleep(0.02)
        raise AssertionError(f"export {eid} did not finish")

    def rows(self, export: dict) -> tuple[list[str], list[list[str]], list[str]]:
        refs = export.get("resultRefs")
        refs = [] if refs is None else [refs] if isinstance(refs, str) else refs
        header: list[str] = []
        rows: list[list[str]] = []
        for ref in refs:
            r = requests.get(ref, headers=self.headers(), timeout=60)
            assert r.status_code == 200, r.text
            data = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"), newline="")))
            header = data[0]
            rows.extend(data[1:])
        return header, rows, refs

    def export_rows(self, obj: str, proc: str, args: dict, fields: list[str] | None = None):
        r = self.create(obj, proc, args, fields)
        assert r.status_code == 200, r.text
        e = self.wait(export_of(r.json())["id"])
        assert e["state"] == "Complete"
        return self.rows(e)


def export_of(body: dict) -> dict:
    return body.get("export", body)


def err(r: requests.Response) -> tuple[int, int, str]:
    if r.text.startswith("<?xml"):  # result links carry no format=json: errors come as XML
        m = re.search(r'<err code="(\d+)">(.*)</err>', r.text)
        assert m, r.text
        return r.status_code, int(m.group(1)), m.group(2)
    body = r.json()
    return r.status_code, body["@attributes"]["err_code"], body["err"]


def truth_ids(sb, stream: str, field: str, after: int, before: int, deleted: str = "false") -> set[int]:
    obj = sb.dataset.objects[stream]
    fn = obj.times[field][0]
    out = set()
    for i in range(obj.count):
        if not (after < fn(i) < before):
            continue
        if obj.is_deleted is not None and deleted != "all" and obj.is_deleted(i) != (deleted == "true"):
            continue
        out.add(obj.base_id + i)
    return out


TS = lambda s: int(dt.datetime.fromisoformat(s).timestamp())  # noqa: E731


def sandbox_2024(**kw: t.Any) -> Sandbox:
    """A sandbox (not started) over 2024 in the default zone, with ``kw`` as SandboxConfig fields."""
    data = kw.pop("data", None) or DataConfig(
        start=dt.datetime(2024, 1, 1, tzinfo=UTC), end=dt.datetime(2025, 1, 1, tzinfo=UTC)
    )
    return Sandbox(SandboxConfig(data=data, **kw))


@pytest.fixture(scope="module")
def sb():
    """A sandbox of this module's own: 2024 in the default zone, small result files."""
    with sandbox_2024(rows_per_file=100) as s:
        yield s


@pytest.fixture
def fresh_sandbox() -> t.Iterator[t.Callable[..., Sandbox]]:
    """A factory for a sandbox of a test's own (faults, clocks and counters untouched by others)."""
    made: list[Sandbox] = []

    def factory(**kw: t.Any) -> Sandbox:
        made.append(sandbox_2024(**kw).start())
        return made[-1]

    yield factory
    for s in made:
        s.stop()


@pytest.fixture(scope="module")
def api(sb):
    return Api(sb)


# -- OAuth ----------------------------------------------------------------------------------


def test_token_endpoint_grants_and_refusals(sb):
    url = sb.base_url + "/services/oauth2/token"
    c = sb.config
    r = requests.post(
        url,
        data={
            "grant_type": "refresh_token",
            "client_id": c.client_id,
            "client_secret": c.client_secret,
            "refresh_token": c.refresh_token,
        },
        timeout=10,
    )
    assert r.status_code == 200
    body = r.json()
    assert body["access_token"] and body["token_type"] == "Bearer" and "instance_url" in body
    assert "expires_in" not in body
    r = requests.post(
        url,
        data={"grant_type": "client_credentials", "client_id": c.client_id, "client_secret": c.client_secret},
        timeout=10,
    )
    assert r.status_code == 200
    r = requests.post(
        url,
        data={
            "grant_type": "refresh_token",
            "client_id": c.client_id,
            "client_secret": "wrong",
            "refresh_token": c.refresh_token,
        },
        timeout=10,
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    token = body["access_token"]
    ok = requests.get(
        f"{sb.base_url}{V}/query?format=json",
        timeout=10,
        headers={"Authorization": f"Bearer {token}", "Pardot-Business-Unit-Id": c.business_unit_id},
    )
    assert ok.status_code == 200


# -- auth on every call -----------------------------------------------------------------------


def test_auth_and_business_unit_errors(sb, api):
    q = f"{sb.base_url}{V}/query?format=json"
    assert err(requests.get(q, headers=api.headers(Authorization=None), timeout=10))[:2] == (401, 184)
    assert err(requests.get(q, headers=api.headers(Authorization="Bearer nope"), timeout=10))[:2] == (401, 184)
    assert err(requests.get(q, headers=api.headers(**{"Pardot-Business-Unit-Id": None}), timeout=10))[1] == 181
    assert err(requests.get(q, headers=api.headers(**{"Pardot-Business-Unit-Id": "12345"}), timeout=10))[1] == 182
    code = err(requests.get(q, headers=api.headers(**{"Pardot-Business-Unit-Id": "0Uv000000000000XYZ"}), timeout=10))
    assert code[1] == 201 and "pi.demo.pardot.com" in code[2]


def test_downloads_need_auth_too(api):
    _header, _rows, refs = api.export_rows(
        "listMembership", "filter_by_created_at", {"created_after": "2024-01-01", "created_before": "2024-02-01"}
    )
    assert err(requests.get(refs[0], timeout=10))[:2] == (401, 184)


def test_revoked_tokens_fail_with_184(fresh_sandbox):
    sb = fresh_sandbox()
    api = Api(sb)
    assert requests.get(api.url("query"), headers=api.headers(), timeout=10).status_code == 200
    sb.revoke_tokens()
    assert err(requests.get(api.url("query"), headers=api.headers(), timeout=10))[:2] == (401, 184)


def test_versions_88_and_89(fresh_sandbox):
    v4 = fresh_sandbox(api_version=4)
    assert err(requests.get(Api(v4, 3).url("query"), headers=Api(v4).headers(), timeout=10))[1] == 88
    v3 = fresh_sandbox(api_version=3)
    a3 = Api(v3, 3)
    assert requests.get(a3.url("query"), headers=a3.headers(), timeout=10).status_code == 200
    assert err(requests.get(Api(v3, 4).url("query"), headers=a3.headers(), timeout=10))[1] == 89


# -- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "proc", "args", "fields", "code", "words"),
    [
        ("opportunity", "filter_by_updated_at", {"updated_after": "2024-01-01"}, None, 5, "Invalid object"),
        ("prospect", "filter_by_nothing", {"updated_after": "2024-01-01"}, None, 5, "Invalid procedure"),
        ("prospect", "filter_by_updated_at", {"updated_before": "2024-01-01"}, None, 13, "updated_after"),
        ("prospect", "filter_by_updated_at", {"updated_after": "the day after"}, None, 7, "Invalid timestamp"),
        (
            "prospect",
            "filter_by_updated_at",
            {"updated_after": "2024-02-01", "updated_before": "2024-01-01"},
            None,
            8,
            "must be after",
        ),
        (
            "prospect",
            "filter_by_updated_at",
            {"updated_after": "2024-02-01", "updated_before": "2024-02-01"},
            None,
            8,
            "must be after",
        ),
        (
            "prospect",
            "filter_by_updated_at",
            {"updated_after": "2022-01-01", "updated_before": "2024-01-01"},
            None,
            8,
            "exceeds one year",
        ),
        ("prospect", "filter_by_updated_at", {"updated_after": "2020-01-01"}, None, 8, "exceeds one year"),
        ("prospect", "filter_by_updated_at", {"updated_after": "2024-01-01"}, ["id"] * 151, 5, "at most 150"),
        ("prospect", "filter_by_updated_at", {"updated_after": "2024-01-01"}, ["id", "shoe_size"], 5, "shoe_size"),
        ("prospect", "filter_by_updated_at", {"updated_after": "2024-01-01", "color": "red"}, None, 5, "color"),
        (
            "prospect",
            "filter_by_updated_at",
            {"updated_after": "2024-01-01", "updated_before": "2024-02-01", "deleted": "maybe"},
            None,
            27,
            "deleted",
        ),
        (
            "visitorActivity",
            "filter_by_created_at",
            {"created_after": "2024-01-01", "created_before": "2024-02-01", "prospect_only": "perhaps"},
            None,
            5,
            "prospect_only",
        ),
    ],
)
def test_bad_create_requests_are_refused_with_a_reason(api, obj, proc, args, fields, code, words):
    r = api.create(obj, proc, args, fields)
    status, got, message = err(r)
    assert status == 400 and got == code
    assert words in message


def test_every_object_and_procedure_of_the_seed_is_served(sb, api):
    procs = {
        "prospect": ["filter_by_updated_at", "filter_by_created_at"],
        "visitor": ["filter_by_updated_at", "filter_by_prospect_updated_at"],
        "visitorActivity": ["filter_by_updated_at", "filter_by_created_at"],
        "listMembership": ["filter_by_updated_at", "filter_by_created_at"],
        "prospectAccount": ["filter_by_updated_at", "filter_by_prospect_updated_at"],
        "externalActivity": ["filter_by_created_at", "filter_by_activity_date"],
    }
    for obj, names in procs.items():
        data = sb.dataset.by_api_name(obj)
        for name in names:
            p = data.procedures[name]
            header, rows, _ = api.export_rows(
                obj, name, {p.after: "2024-03-01T00:00:00+00:00", p.before: "2024-09-01T00:00:00+00:00"}
            )
            assert header == data.field_names, (obj, name)
            assert rows, (obj, name)


def test_date_argument_forms_and_exclusive_bounds(sb, api):
    zone = ZoneInfo(sb.config.data.timezone)
    obj = sb.dataset.objects["list_membership"]
    created = obj.times["created_at"][0]
    i = next(i for i in range(obj.count) if created(i) % 3600 == 0 and 1714521600 < created(i) < 1730000000)
    t = created(i)
    rid = obj.base_id + i

    def ids(after: str, before: str) -> set[int]:
        _, rows, _ = api.export_rows(
            "listMembership",
            "filter_by_created_at",
            {"created_after": after, "created_before": before, "deleted": "all"},
            ["id"],
        )
        return {int(r[0]) for r in rows}

    iso = lambda ts: dt.datetime.fromtimestamp(ts, UTC).isoformat()  # noqa: E731
    local = lambda ts: dt.datetime.fromtimestamp(ts, zone).strftime("%Y-%m-%d %H:%M:%S")  # noqa: E731
    assert rid not in ids(iso(t), iso(t + 3600)), "after is exclusive"
    assert rid not in ids(iso(t - 3600), iso(t)), "before is exclusive"
    assert rid in ids(iso(t - 1), iso(t + 1))
    assert rid in ids(local(t - 1), local(t + 1)), "YYYY-MM-DD HH:MM:SS is the user's zone"
    assert rid not in ids(local(t), local(t + 60))
    day = dt.datetime.fromtimestamp(t, zone).date()
    assert rid in ids(day.isoformat(), (day + dt.timedelta(days=1)).isoformat())
    z = dt.datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert rid not in ids(z, iso(t + 10))
    # keywords resolve against the clock in the user's zone
    r = api.create("prospect", "filter_by_updated_at", {"updated_after": "last_month", "updated_before": "today"})
    assert r.status_code == 200
    for kw in ("today", "yesterday", "last_7_days", "this_month", "last_month"):
        assert api.create("prospect", "filter_by_updated_at", {"updated_after": kw}).status_code == 200, kw


def test_deleted_argument(sb, api):
    a, b = "2024-02-01T00:00:00+00:00", "2024-08-01T00:00:00+00:00"
    counts = {}
    for mode in ("true", "false", "all"):
        _, rows, _ = api.export_rows(
            "prospect", "filter_by_updated_at", {"updated_after": a, "updated_before": b, "deleted": mode}, ["id"]
        )
        counts[mode] = {int(r[0]) for r in rows}
        assert counts[mode] == truth_ids(sb, "prospect", "updated_at", TS(a), TS(b), mode)
    assert counts["true"] and counts["false"]
    assert counts["true"] | counts["false"] == counts["all"]


def test_visitor_activity_type_and_prospect_only(sb, api):
    args = {"created_after": "2024-01-01T00:00:00+00:00", "created_before": "2024-12-01T00:00:00+00:00"}
    _, rows, _ = api.export_rows("visitorActivity", "filter_by_created_at", {**args, "type": [1, 2]}, ["id", "type"])
    assert rows and {r[1] for r in rows} <= {"1", "2"}
    _, rows, _ = api.export_rows(
        "visitorActivity", "filter_by_created_at", {**args, "prospect_only": "true"}, ["id", "prospect_id"]
    )
    assert rows and all(r[1] for r in rows)


# -- results --------------------------------------------------------------------------------


def test_results_are_split_shuffled_and_complete(sb, api):
    a, b = "2024-01-01T00:00:00+00:00", "2024-12-31T00:00:00+00:00"
    _header, rows, refs = api.export_rows(
        "visitorActivity", "filter_by_updated_at", {"updated_after": a, "updated_before": b}
    )
    expected = truth_ids(sb, "visitor_activity", "updated_at", TS(a), TS(b))
    assert len(refs) == -(-len(expected) // 100) and len(refs) > 3
    ids = [int(r[0]) for r in rows]
    assert sorted(ids) == sorted(expected), "all files together are the data set, once"
    file_ids = [int(u.rsplit("/", 1)[1]) for u in refs]
    assert file_ids != sorted(file_ids), "file order is not guaranteed"
    assert ids != sorted(ids), "row order is not guaranteed"


def test_csv_values_round_trip_to_the_typed_truth(sb, api):
    zone = ZoneInfo(sb.config.data.timezone)
    header, rows, _ = api.export_rows(
        "prospect",
        "filter_by_updated_at",
        {"updated_after": "2024-01-01", "updated_before": "2024-12-31", "deleted": "all"},
    )
    obj = sb.dataset.objects["prospect"]
    tricky = {"comma": False, "quote": False, "newline": False, "unicode": False, "empty": False}
    for row in rows:
        rec = dict(zip(header, row))
        truth = obj.typed_row(int(rec["id"]) - obj.base_id)
        for k, v in truth.items():
            cell = rec[k]
            if v is None:
                assert cell == ""
                tricky["empty"] = True
            elif isinstance(v, bool):
                assert cell == ("true" if v else "false")
            elif isinstance(v, int):
                assert cell == str(v)
            elif isinstance(v, dt.datetime):
                assert cell == v.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
            else:
                assert cell == v
                tricky["comma"] |= "," in v
                tricky["quote"] |= '"' in v
                tricky["newline"] |= "\n" in v
                tricky["unicode"] |= any(ord(c) > 127 for c in v)
        assert truth["updated_at"] >= truth["created_at"]
    assert all(tricky.values()), tricky
    assert "Favorite_Color" in header


def test_dst_rendering_in_local_time(fresh_sandbox):
    sb = fresh_sandbox(
        data=DataConfig(
            start=dt.datetime(2024, 3, 9, tzinfo=UTC),
            end=dt.datetime(2024, 3, 12, tzinfo=UTC),
            rows={"visitor_activity": 600},
            timezone="America/New_York",
        )
    )
    api = Api(sb)
    _header, rows, _ = api.export_rows(
        "visitorActivity",
        "filter_by_created_at",
        {"created_after": "2024-03-08", "created_before": "2024-03-13"},
        ["id", "created_at"],
    )
    obj = sb.dataset.objects["visitor_activity"]
    offsets = set()
    for rid, local in rows:
        ts = obj.times["created_at"][0](int(rid) - obj.base_id)
        d = dt.datetime.fromtimestamp(ts, ZoneInfo("America/New_York"))
        assert local == d.strftime("%Y-%m-%d %H:%M:%S")
        assert not local.startswith("2024-03-10 02:"), "that local hour does not exist"
        offsets.add(d.utcoffset())
    assert offsets == {dt.timedelta(hours=-5), dt.timedelta(hours=-4)}


def test_answer_shapes(fresh_sandbox):
    for style, check in (
        ("wrapped", lambda b: set(b) == {"export"}),
        ("attributes", lambda b: b["@attributes"]["stat"] == "ok" and "export" in b),
        ("bare", lambda b: "id" in b and "state" in b),
    ):
        sb = fresh_sandbox(response_style=style)
        api = Api(sb)
        r = api.create(
            "prospect", "filter_by_updated_at", {"updated_after": "2024-01-01", "updated_before": "2024-01-03"}
        )
        assert check(r.json()), (style, r.json())
    sb = fresh_sandbox(rows_per_file=100000)
    api = Api(sb)
    one = api.wait(
        export_of(
            api.create(
                "prospect", "filter_by_updated_at", {"updated_after": "2024-01-01", "updated_before": "2024-12-01"}
            ).json()
        )["id"]
    )
    assert isinstance(one["resultRefs"], str)
    empty = api.wait(
        export_of(
            api.create(
                "prospect", "filter_by_updated_at", {"updated_after": "2025-03-01", "updated_before": "2025-04-01"}
            ).json()
        )["id"]
    )
    assert empty["state"] == "Complete" and "resultRefs" not in empty
    q = lambda **p: requests.get(api.url("query"), params=p, headers=api.headers(), timeout=10).json()["result"]  # noqa: E731
    assert q(object="visitor") == {"total_results": 0}
    assert isinstance(q(object="prospect", status="Complete", sort_by="id", sort_order="ascending")["export"], list)
    single = q(object="prospect", created_after="2000-01-01", sort_by="created_at", status="Complete")
    assert single["total_results"] == 2
    fresh = fresh_sandbox()
    a2 = Api(fresh)
    a2.create("listMembership", "filter_by_updated_at", {"updated_after": "2024-01-01", "updated_before": "2024-02-01"})
    only = requests.get(a2.url("query"), headers=a2.headers(), timeout=10).json()["result"]
    assert only["total_results"] == 1 and isinstance(only["export"], dict) and "resultRefs" not in only["export"]


def test_bom_on_demand(fresh_sandbox):
    sb = fresh_sandbox(bom=True)
    api = Api(sb)
    e = api.wait(
        export_of(
            api.create(
                "prospect", "filter_by_updated_at", {"updated_after": "2024-01-01", "updated_before": "2024-03-01"}
            ).json()
        )["id"]
    )
    refs = e["resultRefs"]
    first = refs if isinstance(refs, str) else refs[0]
    assert requests.get(first, headers=api.headers(), timeout=10).content.startswith(b"\xef\xbb\xbfid,")


# -- lifecycle ------------------------------------------------------------------------------


def test_exports_run_one_at_a_time_oldest_first(fresh_sandbox):
    sb = fresh_sandbox(waiting_seconds=0.15, processing_seconds=0.15)
    api = Api(sb)
    ids = [
        export_of(
            api.create(
                "prospect", "filter_by_updated_at", {"updated_after": "2024-01-01", "updated_before": "2024-02-01"}
            ).json()
        )["id"]
        for _ in range(3)
    ]
    finished: dict[int, float] = {}
    while len(finished) < 3:
        states = {i: export_of(api.read(i).json())["state"] for i in ids}
        assert sum(s == "Processing" for s in states.values()) <= 1
        for i, s in states.items():
            if s == "Complete" and i not in finished:
                finished[i] = time.monotonic()
        time.sleep(0.02)
    assert sorted(finished, key=finished.__getitem__) == ids


def test_held_exports_wait_until_released_and_hold_up_the_queue(fresh_sandbox):
    sb = fresh_sandbox()
    api = Api(sb)
    args = {"updated_after": "2024-01-01", "updated_before": "2024-02-01"}

    def create() -> int:
        return export_of(api.create("prospect", "filter_by_updated_at", args).json())["id"]

    def state(eid: int) -> str:
        return export_of(api.read(eid).json())["state"]

    sb.hold(lambda e: e.id == 1001)
    first, second = create(), create()
    assert first == 1001
    time.sleep(0.3)
    assert (state(first), state(second)) == ("Waiting", "Waiting"), "the second waits behind the held one"
    r = requests.post(api.url(f"cancel/id/{first}"), headers=api.headers(), timeout=10)
    assert export_of(r.json())["state"] == "Canceled"
    assert api.wait(second)["state"] == "Complete", "a canceled export holds up nothing"
    sb.hold()  # every export
    third = create()
    time.sleep(0.3)
    assert state(third) == "Waiting"
    sb.release()
    assert api.wait(third)["state"] == "Complete"


def test_cancel_fail_and_expiry(fresh_sandbox):
    sb = fresh_sandbox()
    api = Api(sb)
    args = {"updated_after": "2024-01-01", "updated_before": "2024-02-01"}
    sb.hold()  # Waiting, so cancelable, however slow the machine
    eid = export_of(api.create("prospect", "filter_by_updated_at", args).json())["id"]
    r = requests.post(api.url(f"cancel/id/{eid}"), headers=api.headers(), timeout=10)
    assert export_of(r.json())["state"] == "Canceled"
    r = requests.post(api.url(f"cancel/id/{eid}"), headers=api.headers(), timeout=10)
    assert err(r)[1] == 178
    sb.release()
    sb.inject("fail_export")
    failed = api.wait(export_of(api.create("prospect", "filter_by_updated_at", args).json())["id"])
    assert failed["state"] == "Failed" and "resultRefs" not in failed
    done = api.wait(export_of(api.create("prospect", "filter_by_updated_at", args).json())["id"])
    assert done["state"] == "Complete" and done["isExpired"] is False
    refs = done["resultRefs"]
    ref = refs if isinstance(refs, str) else refs[0]
    r = requests.post(api.url(f"cancel/id/{done['id']}"), headers=api.headers(), timeout=10)
    assert err(r)[1] == 178
    sb.clock.advance(8 * 86400)
    expired = export_of(api.read(done["id"]).json())
    assert expired["isExpired"] is True and "resultRefs" not in expired
    assert err(requests.get(ref, headers=api.headers(), timeout=10))[1] == 178


def test_unfinished_export_is_canceled_after_seven_days(fresh_sandbox):
    sb = fresh_sandbox(waiting_seconds=30)
    api = Api(sb)
    eid = export_of(
        api.create(
            "prospect", "filter_by_updated_at", {"updated_after": "2024-01-01", "updated_before": "2024-02-01"}
        ).json()
    )["id"]
    sb.clock.advance(7 * 86400 + 60)
    assert export_of(api.read(eid).json())["state"] == "Canceled"


# -- limits ---------------------------------------------------------------------------------


def test_concurrency_limit_answers_66(fresh_sandbox):
    sb = fresh_sandbox()
    api = Api(sb)
    sb.inject("slow", count=8, op="query", seconds=0.6)
    with cf.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: requests.get(api.url("query"), headers=api.headers(), timeout=20), range(8)))
    codes = sorted(r.status_code for r in results)
    limited = [r for r in results if r.status_code != 200]
    assert codes.count(200) == 5 and len(limited) == 3
    assert all(r.json()["@attributes"]["err_code"] == 66 for r in limited)
    assert sb.stats()["max_inflight"] >= 6


def test_daily_limit_and_call_counters(fresh_sandbox):
    sb = fresh_sandbox(daily_limit=3)
    api = Api(sb)
    for _ in range(3):
        assert requests.get(api.url("query"), headers=api.headers(), timeout=10).status_code == 200
    r = requests.get(api.url("query"), headers=api.headers(), timeout=10)
    assert r.status_code == 429 and err(r)[1] == 122
    assert sb.stats()["calls"] == {"query": 4}


# -- faults ---------------------------------------------------------------------------------


def test_faults_on_demand(fresh_sandbox):
    sb = fresh_sandbox()
    api = Api(sb)
    sb.inject("http_503", count=2, op="query")
    assert [requests.get(api.url("query"), headers=api.headers(), timeout=10).status_code for _ in range(3)] == [
        503,
        503,
        200,
    ]
    sb.inject("code_66", op="read")
    sb.inject("not_json", op="create")
    r = api.create("prospect", "filter_by_updated_at", {"updated_after": "2024-01-01", "updated_before": "2024-03-01"})
    with pytest.raises(ValueError):
        r.json()
    eid = export_of(
        api.create(
            "prospect", "filter_by_updated_at", {"updated_after": "2024-01-01", "updated_before": "2024-12-01"}
        ).json()
    )["id"]
    r = api.read(eid)
    assert err(r)[1] == 66 and r.headers["Retry-After"]
    e = api.wait(eid)
    refs = e["resultRefs"]
    ref = refs if isinstance(refs, str) else refs[0]
    sb.inject("cut", op="download", after_bytes=500)
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(ref, headers=api.headers(), timeout=10).content
    full = requests.get(ref, headers=api.headers(), timeout=10)
    assert full.status_code == 200 and len(full.content) > 500
    sb.inject("slow", op="query", seconds=1.0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(api.url("query"), headers=api.headers(), timeout=0.3)
    sb.inject("reset", op="query")
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(api.url("query"), headers=api.headers(), timeout=10)
    sb.inject("revoke")
    assert err(requests.get(api.url("query"), headers=api.headers(), timeout=10))[1] == 184


def test_controls_over_http(fresh_sandbox):
    sb = fresh_sandbox()
    api = Api(sb)
    assert requests.post(sb.base_url + "/_sandbox/faults", json={"kind": "http_500", "op": "query"}, timeout=5).ok
    assert requests.get(api.url("query"), headers=api.headers(), timeout=5).status_code == 500
    assert requests.post(sb.base_url + "/_sandbox/faults", json={"kind": "bogus"}, timeout=5).status_code == 400
    stats = requests.get(sb.base_url + "/_sandbox/stats", timeout=5).json()
    assert stats["calls"] == {"query": 1} and stats["api_calls"] == 1
    assert requests.post(sb.base_url + "/_sandbox/revoke", timeout=5).ok
    assert requests.get(api.url("query"), headers=api.headers(), timeout=5).status_code == 401


def test_xml_without_format_json(api):
    r = requests.get(api.url("query").replace("?format=json", ""), headers=api.headers(), timeout=5)
    assert r.status_code == 200 and r.text.startswith("<?xml")


# -- the command ----------------------------------------------------------------------------


def test_cli_help_documents_every_knob():
    out = subprocess.run(
        [sys.executable, "-m", "pardot_export_sandbox.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in (
        "--host",
        "--port",
        "--seed",
        "--start",
        "--end",
        "--rows",
        "--custom-field",
        "--timezone",
        "--rows-per-file",
        "--bom",
        "--business-unit-id",
        "--api-version",
        "--client-id",
        "--client-secret",
        "--refresh-token",
        "--access-token",
        "--waiting-seconds",
        "--processing-seconds",
        "--max-concurrent",
        "--daily-limit",
        "--response-style",
        "--fault",
    ):
        assert flag in out, flag


def test_cli_prints_url_serves_and_stops_on_sigterm():
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pardot_export_sandbox.cli",
            "--rows",
            "prospect=50",
            "--access-token",
            "tok",
            "--fault",
            '{"kind": "http_503", "op": "query"}',
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as proc:
        try:
            assert proc.stdout is not None  # stdout=PIPE
            url = proc.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:")
            h = {"Authorization": "Bearer tok", "Pardot-Business-Unit-Id": "0Uv5e0000000001AAA"}
            assert requests.get(url + V + "/query?format=json", headers=h, timeout=5).status_code == 503
            assert requests.get(url + V + "/query?format=json", headers=h, timeout=5).status_code == 200
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
