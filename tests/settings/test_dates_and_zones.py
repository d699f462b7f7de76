"""The range's dates and the time zone settings: accepted forms, the run's end, and the zone's policy.

``start_date`` and ``end_date`` take the documented ISO 8601 forms only (an offset on a date is
never read as a time; antiquity is a setting error); the run ends at now less the safety lag,
an ``end_date`` in the future capped; without ``timezone`` a sync is refused, unless offset
inference is opted into; a zone name that only resolves on this machine is refused.
"""

from __future__ import annotations

import datetime as dt
import logging
import typing as t

import pytest
from singer_sdk.exceptions import ConfigValidationError

from tap_pardot_export.errors import PardotConfigError
from tap_pardot_export.settings.checks import run_end
from tap_pardot_export.settings.config import Settings, zone
from tap_pardot_export.tap import TapPardotExport
from tests.fake_pardot import assert_clean_failure
from tests.helpers import run_tap, with_defaults
from tests.settings_helpers import config, errors_of

UTC = dt.timezone.utc

NOW = dt.datetime(2026, 3, 1, 12, 0, 30, 123456, tzinfo=UTC)


# -- dates -----------------------------------------------------------------------------------------


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


@pytest.mark.usefixtures("instant_retries")
@pytest.mark.parametrize("start", ["0001-01-01", "0001-01-01T00:00:00+05:00", "1000-06-01"])
def test_a_start_date_in_antiquity_is_a_setting_error_before_any_call(fake, catalog, start):
    """Found: year 1 went through validation, then the first window's start less one second overflowed."""
    server = fake()
    run = run_tap(server.config(start_date=start), catalog=catalog, timeout=20)
    assert_clean_failure(run, "start_date")
    assert server.requests == []


# -- the run's end ---------------------------------------------------------------------------------


def end_of(logger: logging.Logger | None = None, **cfg: t.Any) -> dt.datetime:
    """The run's end for settings ``cfg`` (defaults filled in, as a run reads them)."""
    s = Settings.from_config(with_defaults(config(**cfg)))
    return run_end(s.end_date, s.safety_lag, NOW, logger)


def test_run_end_is_now_less_the_safety_lag_by_default():
    assert end_of() == dt.datetime(2026, 3, 1, 11, 55, 30, tzinfo=UTC)
    assert end_of(safety_lag_minutes=0) == NOW.replace(microsecond=0)
    assert end_of(safety_lag_minutes=90) == dt.datetime(2026, 3, 1, 10, 30, 30, tzinfo=UTC)


def test_an_end_date_in_the_past_is_kept():
    assert end_of(end_date="2025-01-01") == dt.datetime(2025, 1, 1, tzinfo=UTC)


def test_an_end_date_in_the_future_is_capped_with_a_warning(caplog):
    logger = logging.getLogger("test-run-end")
    with caplog.at_level(logging.WARNING, logger="test-run-end"):
        end = end_of(logger, end_date="2030-01-01T00:00:00Z")
    assert end == dt.datetime(2026, 3, 1, 11, 55, 30, tzinfo=UTC)
    assert "end_date 2030-01-01T00:00:00+00:00 is in the future" in caplog.text
    # within the lag: capped too (no bookmark past rows not yet visible)
    assert end_of(end_date="2026-03-01T11:59:00Z") == dt.datetime(2026, 3, 1, 11, 55, 30, tzinfo=UTC)


def test_the_tap_run_end_never_passes_now_less_the_lag():
    tap = TapPardotExport(config=config(end_date="2099-01-01"), parse_env_config=False)
    before = dt.datetime.now(UTC)
    assert tap.run_end <= before - dt.timedelta(minutes=5) + dt.timedelta(seconds=1)
    assert tap.run_end > before - dt.timedelta(minutes=6)


# -- time zones ------------------------------------------------------------------------------------


def test_without_timezone_a_sync_is_refused_with_how_to_set_it():
    errors = errors_of(config(timezone=...))
    assert len(errors) == 1
    assert errors[0].startswith("timezone is not set.")
    assert "America/New_York" in errors[0]
    assert "infer_timezone: true" in errors[0]


def test_offset_inference_is_an_explicit_opt_in():
    assert errors_of(config(timezone=..., infer_timezone=True)) == []
    inferred = Settings.from_config(with_defaults(config(timezone=..., infer_timezone=True)))
    assert inferred.timezone is None and inferred.infer_timezone
    both = Settings.from_config(with_defaults(config(timezone="Asia/Kolkata", infer_timezone=True)))
    assert both.timezone is not None  # a zone wins: nothing is inferred
    assert errors_of(config(timezone=..., infer_timezone="true")) != []
    with pytest.raises(PardotConfigError):
        zone("Mars/Olympus")


@pytest.mark.parametrize("name", ["localtime", "posixrules", "Factory", "posix/Europe/Paris", "right/UTC", "../UTC"])
def test_a_zone_name_that_only_resolves_on_this_machine_is_refused(name):
    errors = errors_of(config(timezone=name))
    assert errors == [f"timezone {name!r} is not an IANA time zone name (e.g. America/New_York, Europe/Paris, UTC)"]
