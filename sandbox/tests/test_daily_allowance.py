"""The business unit's daily allowance: calls spent by other integrations, the reset at the account's midnight."""

from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo

import requests
from conftest import ZONE

LA = ZoneInfo(ZONE)


def used(v5) -> int:
    return int(v5.ok("account", {"fields": "maximumDailyApiCalls,apiCallsUsed"})["apiCallsUsed"])


def set_clock(sb, when: dt.datetime) -> None:
    """Put the sandbox clock at ``when`` (it runs on from there with the wall clock)."""
    sb.state.clock.offset = when.timestamp() - time.time()


def test_calls_spent_by_other_integrations_count_against_the_limit(fresh):
    _sb, v5 = fresh(daily_limit=10, api_calls_used_before=7)
    answer = v5.ok("account", {"fields": "maximumDailyApiCalls,apiCallsUsed"})
    assert answer == {"maximumDailyApiCalls": 10, "apiCallsUsed": 8}, "the 7 before, and this call"
    v5.ok("campaigns", {"fields": "id"})
    assert used(v5) == 10
    assert v5.error("campaigns", {"fields": "id"})[:2] == (429, 122)


def test_the_daily_count_resets_at_the_accounts_midnight_not_utcs(fresh):
    sb, v5 = fresh(daily_limit=1_000)
    # 15:30 in Los Angeles (winter, UTC-8) is 23:30 UTC: an hour later UTC's day changed, the account's did not
    set_clock(sb, dt.datetime(2025, 1, 15, 15, 30, tzinfo=LA))
    sb.state.daily({"used": 500})
    assert used(v5) == 501
    sb.clock.advance(3600)
    assert used(v5) == 502, "UTC midnight passed: the account's day goes on"
    # 23:30 in Los Angeles is 07:30 UTC: an hour later the account's day changed, UTC's did not
    set_clock(sb, dt.datetime(2025, 1, 15, 23, 30, tzinfo=LA))
    assert used(v5) == 503
    sb.clock.advance(3600)
    assert used(v5) == 1, "the account's midnight passed: a new day, this call its first"


def test_the_daily_control_sets_the_figures_and_says_when_they_reset(fresh):
    sb, v5 = fresh(daily_limit=1_000)
    set_clock(sb, dt.datetime(2025, 1, 15, 12, 0, tzinfo=LA))
    r = requests.post(f"{sb.base_url}/_sandbox/daily", json={"limit": 200, "used": 150}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["limit"] == 200 and r.json()["used"] == 150
    assert r.json()["resets_at"] == dt.datetime(2025, 1, 16, tzinfo=LA).timestamp()
    assert v5.ok("account", {"fields": "maximumDailyApiCalls,apiCallsUsed"}) == {
        "maximumDailyApiCalls": 200,
        "apiCallsUsed": 151,
    }
    assert requests.get(f"{sb.base_url}/_sandbox/daily", timeout=10).json()["used"] == 151
    bad = requests.post(f"{sb.base_url}/_sandbox/daily", json={"spent": 1}, timeout=10)
    assert bad.status_code == 400 and "unknown daily setting(s) spent" in bad.text


def test_an_api_user_without_the_ability_is_refused_the_account(fresh):
    _sb, v5 = fresh(v5_account_refusal=49)
    status, code, message = v5.error("account", {"fields": "id,apiCallsUsed"})
    assert (status, code) == (403, 49)
    assert "Admin > Account Settings > View" in message
    assert v5.ok("campaigns", {"fields": "id"})["values"], "other objects are still served"
