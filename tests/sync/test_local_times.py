"""Pardot's local times read as instants: the API user's zone, daylight saving, and a zone that is wrong.

Pardot writes datetimes in the API user's zone without an offset; the tap reads each at the
offset of its own date (``timezone``, or the offset inferred from an export's ``createdAt`` when
``infer_timezone`` is on) and writes it in UTC. A valid zone at another offset than Pardot writes
is refused before any row; one with the same offset at that instant cannot be told apart. The
units below: the converter, its cache, and offset inference (property-based where inputs are wide).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tap_pardot_export.engine.convert import CellError, LocalDateTimeConverter, infer_offset
from tap_pardot_export.engine.windows import api_time
from tests.helpers import assert_rows_match, discover, expected_rows, run_tap, select_streams

UTC = dt.timezone.utc

START, END = dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2025, 1, 1, tzinfo=UTC)

#: the SDK syncs streams in this order
STREAMS = ["list_membership", "prospect_account", "visitor"]

ZONES = [
    "UTC",
    "America/New_York",
    "Europe/Paris",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "America/St_Johns",
    "Pacific/Chatham",
    "America/Sao_Paulo",
]

instants = st.integers(
    min_value=int(dt.datetime(2000, 1, 1, tzinfo=UTC).timestamp()),
    max_value=int(dt.datetime(2035, 1, 1, tzinfo=UTC).timestamp()),
)


# -- syncs against the sandbox ---------------------------------------------------------------------


def test_dst_rows_are_converted_with_the_offset_of_their_date(sandbox):
    """A summer row is read at UTC-4, a winter row at UTC-5 (America/New_York)."""
    cfg = sandbox.tap_config(window_days=200, start_date="2024-01-01T00:00:00+00:00")
    cat = select_streams(discover(cfg), ["visitor_activity"])
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    exp = expected_rows(
        sandbox, "visitor_activity", dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2025, 1, 1, tzinfo=UTC)
    )
    got = {r["id"]: r for r in run.records("visitor_activity")}
    months = {dt.datetime.fromisoformat(v["created_at"]).month for v in exp.values()}
    assert {1, 7} <= months
    for rid, v in exp.items():
        if dt.datetime.fromisoformat(v["created_at"]).month in (1, 7):
            assert got[rid]["created_at"] == v["created_at"]


def test_timezone_unset_infers_offset_and_warns_once(fresh_sandbox):
    from pardot_export_sandbox import DataConfig

    sb = fresh_sandbox(
        rows_per_file=100,
        data=DataConfig(
            start=dt.datetime(2024, 1, 1, tzinfo=UTC), end=dt.datetime(2024, 6, 1, tzinfo=UTC), timezone="Asia/Kolkata"
        ),
    )
    cfg = sb.tap_config(window_days=30, infer_timezone=True)  # inference is opt-in
    del cfg["timezone"]
    cat = select_streams(discover(cfg), ["visitor_activity", "list_membership"])
    run = run_tap(cfg, catalog=cat)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stderr.count("timezone is not set") == 1
    assert "+5.5 h" in run.stderr
    for stream in ("visitor_activity", "list_membership"):
        exp = expected_rows(sb, stream, dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 6, 1, tzinfo=UTC))
        assert_rows_match(sb, stream, run.records(stream), exp, "Asia/Kolkata")


# -- a valid but wrong timezone (issue 18.2) -------------------------------------------------------


def zoned_sandbox(fresh_sandbox, zone: str):
    from pardot_export_sandbox import DataConfig

    return fresh_sandbox(data=DataConfig(start=START, end=END, timezone=zone))


def test_a_timezone_at_another_offset_than_pardot_writes_is_refused_before_any_row(fresh_sandbox):
    """Found: timezone UTC for an API user in Tokyo: exit 0, every datetime nine hours off."""
    sb = zoned_sandbox(fresh_sandbox, "Asia/Tokyo")  # UTC+09:00 all year
    cfg = sb.tap_config(window_days=365, timezone="UTC")
    run = run_tap(cfg, catalog=select_streams(discover(cfg), STREAMS))
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert "timezone UTC is UTC+00:00 at export" in run.stderr and "at UTC+09:00" in run.stderr
    assert "stream(s) failed" not in run.stderr, "a wrong setting ends the run: every stream would read wrong"
    assert run.records() == []
    for stream in STREAMS:
        assert "replication_key_value" not in run.final_state.get("bookmarks", {}).get(stream, {})


def assert_synced(sb, run, stream: str) -> None:
    assert_rows_match(sb, stream, run.records(stream), expected_rows(sb, stream, START, END), sb.config.data.timezone)
    assert run.final_state["bookmarks"][stream]["replication_key_value"] == END.isoformat()


def test_a_zone_with_the_same_offset_at_that_instant_cannot_be_told_apart(fresh_sandbox):
    """Documented: only --check tells Asia/Colombo from Asia/Kolkata (both UTC+05:30): the sync reads right anyway."""
    sb = zoned_sandbox(fresh_sandbox, "Asia/Kolkata")
    cfg = sb.tap_config(window_days=365, timezone="Asia/Colombo")
    run = run_tap(cfg, catalog=select_streams(discover(cfg), ["list_membership"]))
    assert run.returncode == 0, run.stderr[-2000:]
    assert_synced(sb, run, "list_membership")


# -- the converter ---------------------------------------------------------------------------------


def test_api_time_has_an_explicit_offset():
    assert api_time(dt.datetime(2024, 3, 10, 2, 30, tzinfo=ZoneInfo("Europe/Paris"))) == "2024-03-10T01:30:00+00:00"


@given(ts=instants, zone=st.sampled_from(ZONES))
def test_local_rendering_converts_back_to_the_instant(ts, zone):
    z = ZoneInfo(zone)
    local = dt.datetime.fromtimestamp(ts, z)
    text = local.strftime("%Y-%m-%d %H:%M:%S")
    conv = LocalDateTimeConverter(z)
    for _ in range(2):  # the second call takes the cached path
        got = dt.datetime.fromisoformat(conv(text))
        if local.replace(fold=1 - local.fold).utcoffset() == local.utcoffset():
            assert got.timestamp() == ts
        else:  # a repeated local hour: the first occurrence is taken
            assert got == local.replace(fold=0).astimezone(UTC)


def test_bad_datetimes_are_refused():
    conv = LocalDateTimeConverter(UTC)
    for bad in ("2024-13-01 00:00:00", "yesterday", "2024-01-01T00:00:00", ""):
        with pytest.raises(CellError):
            conv(bad)


def test_infer_offset_rounds_to_quarter_hours():
    now = dt.datetime(2024, 7, 1, 12, 0, 3, tzinfo=UTC).timestamp()
    assert infer_offset("2024-07-01 17:30:00", now) == dt.timedelta(hours=5, minutes=30)
    assert infer_offset("2024-07-01 08:00:01", now) == dt.timedelta(hours=-4)


def test_cached_datetimes_check_minutes_and_seconds():
    conv = LocalDateTimeConverter(ZoneInfo("America/New_York"))
    assert conv("2024-01-01 10:15:00") == "2024-01-01T15:15:00+00:00"
    assert conv("2024-01-01 10:59:59") == "2024-01-01T15:59:59+00:00"  # the cached path
    for bad in ("2024-01-01 10:99:99", "2024-01-01 10:60:00", "2024-01-01 10:15:6x", "2024-01-01 10:15:00Z"):
        with pytest.raises(CellError):
            conv(bad)
    for bad in ("2024-13-01 00:00:00", "2024-02-30 00:00:00", "2024-1-01 10:00:00", " 2024-01-01 10:00:00"):
        with pytest.raises(CellError):
            conv(bad)


def test_infer_offset_parses_what_it_can():
    now = dt.datetime(2024, 7, 1, 12, 0, 3, tzinfo=UTC).timestamp()
    assert infer_offset("2024-07-01 08:00:01", now) == dt.timedelta(hours=-4)
    assert infer_offset("2024-07-01T08:00:01-04:00", now) == dt.timedelta(hours=-4)
    assert infer_offset("2024-07-01T12:00:01Z", now) == dt.timedelta(0)
    for unknown in ("Monday", "", None, 1719835201, "2024-07-09 08:00:01"):  # the last: 8 days off
        assert infer_offset(unknown, now) is None
