"""Values and settings read exactly, or refused: calendar edges, integers, dates, zones, state (issue 18.4)."""

from __future__ import annotations

import json
import typing as t

import pytest
from singer_sdk.exceptions import ConfigValidationError

from tap_pardot_export.engine.state import parse_state
from tap_pardot_export.errors import PardotConfigError
from tap_pardot_export.tap import TapPardotExport
from tests.fake_pardot import ROWS, TYPED, WHERE, assert_exact, assert_refused, csv_body
from tests.settings_helpers import config, errors_of, tap_cli

# -- calendar edges ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "sentinel"),
    [("America/New_York", "9999-12-31 23:30:00"), ("Asia/Tokyo", "0001-01-01 00:30:00")],
)
def test_a_sentinel_date_past_the_calendar_in_utc_is_null_with_one_warning(serve, zone, sentinel):
    rows = [{**ROWS[0], "created_at": sentinel}, {**ROWS[1], "created_at": sentinel}, ROWS[2]]
    _, run = serve(lambda c: csv_body(c.fields, rows), config={"timezone": zone})
    assert run.returncode == 0, run.stderr[-3000:]
    got = {r["id"]: r for r in run.records("list_membership")}
    assert got[11]["created_at"] is None and got[12]["created_at"] is None
    warnings = [line for line in run.stderr.splitlines() if "outside years 1 to 9999" in line]
    assert len(warnings) == 1, warnings
    assert "list_membership" in warnings[0] and "'created_at'" in warnings[0] and sentinel in warnings[0]
    assert "Traceback" not in run.stderr


def test_a_sentinel_date_in_a_never_null_column_is_the_per_row_error(serve):
    rows = [ROWS[0], {**ROWS[1], "updated_at": "9999-12-31 23:30:00"}]
    _, run = serve(lambda c: csv_body(c.fields, rows))
    assert_refused(run, *WHERE, "row 2", "(id 12)", "column 'updated_at'", "outside years 1 to 9999")


def test_every_datetime_written_has_a_four_digit_year(serve):
    rows = [{**ROWS[0], "created_at": "0999-06-01 12:00:00"}, ROWS[1], ROWS[2]]
    _, run = serve(lambda c: csv_body(c.fields, rows), config={"timezone": "UTC"})
    assert run.returncode == 0, run.stderr[-3000:]
    got = {r["id"]: r for r in run.records("list_membership")}
    assert got[11]["created_at"] == "0999-06-01T12:00:00+00:00"


# -- integers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cell", ["1_000", "1e3", "+5", " 5", "5.0", "9007199254740993.0", "\u0661\u0662", "--5", "0x1F"]
)
def test_an_integer_is_an_optional_minus_and_ascii_digits(serve, cell):
    rows = [ROWS[0], {**ROWS[1], "list_id": cell}, ROWS[2]]
    _, run = serve(lambda c: csv_body(c.fields, rows))
    assert_refused(run, *WHERE, "row 2", "(id 12)", "column 'list_id': not an integer")


def test_negative_and_leading_zero_integers_are_read(serve):
    rows = [{**ROWS[0], "list_id": "-7"}, {**ROWS[1], "list_id": "007"}, ROWS[2]]
    _, run = serve(lambda c: csv_body(c.fields, rows))
    assert_exact(run, {**TYPED, 11: {**TYPED[11], "list_id": -7}, 12: {**TYPED[12], "list_id": 7}})


# -- date settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["2024-01-01+05:00", "2024-01-01X10:00:00", "2024-01-01T10:00", "20240101", "2024-01-01T10:00:00 +02:00"]
)
def test_a_date_setting_in_another_form_is_refused_listing_the_forms(value):
    errors = errors_of(config(start_date=value))
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"start_date {value!r} is not an ISO 8601 date or datetime")
    assert "2024-01-01T00:00:00Z" in errors[0] and "read as UTC" in errors[0]


@pytest.mark.parametrize(
    "value", ["2024-01-01", "2024-01-01T00:00:00Z", "2024-01-01 10:00:00+02:00", "2024-01-01t10:00:00.5z"]
)
def test_the_documented_date_forms_are_accepted(value):
    assert errors_of(config(start_date=value)) == []


def test_an_offset_on_a_date_is_never_read_as_a_time():
    """Found: 2024-01-01+05:00 was read as 05:00 UTC, so the run started hours late."""
    with pytest.raises(ConfigValidationError) as info:
        TapPardotExport(config=config(start_date="2024-01-01+05:00"), parse_env_config=False)
    assert any("is not an ISO 8601 date or datetime" in e for e in info.value.errors or [])


# -- time zones -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["localtime", "posixrules", "Factory", "posix/Europe/Paris", "right/UTC", "../UTC"])
def test_a_zone_name_that_only_resolves_on_this_machine_is_refused(name):
    errors = errors_of(config(timezone=name))
    assert errors == [f"timezone {name!r} is not an IANA time zone name (e.g. America/New_York, Europe/Paris, UTC)"]


# -- state ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bookmark", "words"),
    [
        ({"rows_per_year": 1e-300}, "rows_per_year learned for prospect"),
        ({"rows_per_year": 1e300}, "rows_per_year learned for prospect"),
        ({"rows_per_year": "fast"}, "rows_per_year learned for prospect"),
        ({"rows_per_year": -5}, "rows_per_year learned for prospect"),
        ({"deletes_pass_at": "yesterday"}, "last recycle-bin pass (deletes_pass_at) of prospect"),
        ({"deletes_pass": {"replication_key_value": "soon"}}, "recycle-bin pass (deletes_pass)"),
        ({"deletes_pass": {"deletes_pass": {}}}, "of its own, which a pass never has"),
        ({"deletes_pass": "x"}, "recycle-bin pass (deletes_pass) is not an object"),
    ],
)
def test_a_state_the_tap_cannot_use_is_corrupted_naming_the_key(bookmark, words):
    state = {"bookmarks": {"prospect": {"replication_key": "updated_at", **bookmark}}}
    with pytest.raises(PardotConfigError) as info:
        parse_state(json.dumps(state))
    assert "The state is corrupted" in str(info.value) and words in str(info.value)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"bookmarks": {"prospect": {"rows_per_year": NaN}}}', "NaN is not JSON"),
        ('{"bookmarks": {"prospect": {"replication_key_value": Infinity}}}', "Infinity is not JSON"),
        ("[" * 100_000 + "]" * 100_000, "nested deeper than JSON parsers go"),
    ],
)
def test_a_state_file_the_tap_cannot_read_is_refused_without_a_traceback(tmp_path, text, words):
    (tmp_path / "config.json").write_text(
        json.dumps(config(api_url="http://127.0.0.1:9", login_url="http://127.0.0.1:9"))
    )
    (tmp_path / "state.json").write_text(text)
    proc = tap_cli("--config", str(tmp_path / "config.json"), "--state", str(tmp_path / "state.json"))
    assert proc.returncode == 1
    assert words in proc.stderr and "meltano state clear" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_rate_the_tap_writes_is_one_it_reads_back():
    from tap_pardot_export.engine.state import StreamState

    for rows_per_day in (0.0, 1e-9, 12.5, 1e12):
        state = StreamState({})
        state.set_learned_rate(rows_per_day)
        assert parse_state(json.dumps({"bookmarks": {"s": state.data}})) is not None
        assert state.learned_rate() is not None


def test_a_good_nested_pass_is_accepted() -> None:
    state: dict[str, t.Any] = {
        "bookmarks": {
            "prospect": {
                "replication_key": "updated_at",
                "replication_key_value": "2024-05-01T00:00:00+00:00",
                "rows_per_year": 1000,
                "deletes_pass_at": "2024-04-01T00:00:00+00:00",
                "deletes_pass": {"replication_key_value": "2024-02-01T00:00:00+00:00", "pending_export": {"id": 5}},
            }
        }
    }
    assert parse_state(json.dumps(state)) == state
