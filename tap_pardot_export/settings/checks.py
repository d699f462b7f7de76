"""What a schema cannot say: the cross-field checks, the time-zone policy and the run's end.

Everything runs before any API call; each error names the setting and the fix.
"""

from __future__ import annotations

import decimal
import math
import typing as t

from tap_pardot_export.engine.windows import EARLIEST, parse_setting_datetime
from tap_pardot_export.errors import PardotConfigError
from tap_pardot_export.pardot.urls import is_loopback_url
from tap_pardot_export.settings.config import zone
from tap_pardot_export.settings.messages import SECRETS, schema_errors
from tap_pardot_export.settings.schema import MIN_REMOTE_MAX_POLL_INTERVAL, MIN_REMOTE_POLL_INTERVAL
from tap_pardot_export.spec import DELETES_ARGUMENTS, SPECS

if t.TYPE_CHECKING:
    import datetime as dt
    import logging
    from collections.abc import Iterable, Mapping


TIMEZONE_HELP = (
    "timezone is not set. Pardot writes export datetimes in the API user's own time zone, without "
    "an offset, so the tap needs that zone to read them right. Find it in Salesforce: Account "
    "Engagement > the API user's name > Settings (or Setup > Users > the user > Time Zone), and set "
    "timezone to its IANA name, e.g. America/New_York. Or set infer_timezone: true to infer a UTC "
    "offset from each export instead (an hour off for rows across a daylight-saving change)."
)


def _date_errors(config: Mapping[str, t.Any]) -> list[str]:
    try:
        start = parse_setting_datetime(str(config["start_date"]))
        end = parse_setting_datetime(str(config["end_date"])) if config.get("end_date") else None
    except (KeyError, ValueError):
        return []  # reported by the schema
    if start < EARLIEST:
        return [f"start_date ({config['start_date']}) is before {EARLIEST.date()}: Pardot holds nothing that old"]
    if end is not None and end <= start:
        return [f"end_date ({config['end_date']}) must be after start_date ({config['start_date']})"]
    return []


def _poll_errors(config: Mapping[str, t.Any]) -> list[str]:
    errors = []
    poll = config["poll_interval"]
    cap = config["max_poll_interval"]
    if not all(isinstance(v, (int, float)) for v in (poll, cap)):
        return []  # reported by the schema
    if cap < poll:
        errors.append(f"max_poll_interval ({cap:g}) must be at least poll_interval ({poll:g})")
    if not is_loopback_url(str(config["api_url"])):
        if poll < MIN_REMOTE_POLL_INTERVAL:
            errors.append(
                f"poll_interval {poll:g} would read export status more than once a second, each an API call: "
                f"use at least {MIN_REMOTE_POLL_INTERVAL:g} against Pardot"
            )
        if cap < MIN_REMOTE_MAX_POLL_INTERVAL:
            errors.append(
                f"max_poll_interval {cap:g} would spend the daily API calls on status reads: use at least "
                f"{MIN_REMOTE_MAX_POLL_INTERVAL:g} against Pardot"
            )
    return errors


def _credential_errors(config: Mapping[str, t.Any]) -> list[str]:
    has = {k: bool(config.get(k)) for k in SECRETS}
    if has["access_token"]:
        return []
    if has["client_id"] and has["client_secret"]:
        return []
    if has["client_id"] or has["client_secret"] or has["refresh_token"]:
        missing = [k for k in ("client_id", "client_secret") if not has[k]]
        return [
            (
                f"credentials are missing: {' and '.join(missing)} not set (set client_id + client_secret, with "
                "refresh_token for the refresh-token flow, or an access_token)"
            )
        ]
    return ["credentials are missing: set access_token, or client_id + client_secret + refresh_token"]


def _timezone_errors(config: Mapping[str, t.Any], *, complete: bool) -> list[str]:
    """The zone must be an IANA name, and set to sync unless infer_timezone is on."""
    try:
        found = zone(config.get("timezone"))
    except PardotConfigError as exc:
        return list(exc.errors)
    return [TIMEZONE_HELP] if complete and found is None and config["infer_timezone"] is not True else []


def _deletes_errors(config: Mapping[str, t.Any]) -> list[str]:
    """capture_deletes reads the recycle bin itself: a deleted argument of the user's contradicts it."""
    if not config.get("capture_deletes"):
        return []
    options = config.get("stream_options") or {}
    return [
        f"stream_options.{stream}.arguments.{name} contradicts capture_deletes (which exports the live records "
        "and the recycle bin itself, marking deleted ones): remove one of them"
        for stream, spec in SPECS.items()
        if spec.captures_deletes and spec.kind == "export"
        for name in DELETES_ARGUMENTS
        if name in ((options.get(stream) or {}).get("arguments") or {})
    ]


def _nan_errors(value: object, where: str) -> Iterable[str]:
    """NaN passes every minimum and maximum (the SDK's JSON reader accepts it)."""
    if isinstance(value, float) and math.isnan(value):
        yield f"{where} is NaN: give a number"
    elif isinstance(value, dict):
        for key, sub in value.items():
            yield from _nan_errors(sub, f"{where}.{key}" if where else str(key))


def check_settings(config: Mapping[str, t.Any], *, complete: bool = True) -> list[str]:
    """The checks a schema cannot express: each error names the setting and the fix.

    ``complete=False`` leaves out what is missing (credentials, the time zone): only what a value
    says wrong is an error then.
    """
    return [
        *_nan_errors(dict(config), ""),
        *_date_errors(config),
        *_poll_errors(config),
        *(_credential_errors(config) if complete else []),
        *_timezone_errors(config, complete=complete),
        *_deletes_errors(config),
    ]


def _plain_numbers(value: t.Any) -> t.Any:
    """``value`` with Decimals as plain numbers.

    The SDK reads config files' decimals as ``Decimal``, which compares below the float bound it
    equals (``Decimal("0.05") < 0.05``).
    """
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() and "." not in str(value) else float(value)
    if isinstance(value, dict):
        return {k: _plain_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_numbers(v) for v in value]
    return value


def validate(config: dict[str, t.Any], schema: dict[str, t.Any], *, complete: bool = True) -> list[str]:
    """All problems with ``config``: the schema's, then the cross-field ones (only if the schema passed).

    ``complete=False`` (discovery, ``--about``): only what a value says wrong (a type, a range, a
    zone name, a malformed date...); what is missing matters only where it is needed (a sync, the
    check, the queue's commands). Fills in defaults and turns Decimals into floats, in place, as
    the tap reads ``config`` after.
    """
    config.update(_plain_numbers(config))
    if not complete:  # null means unset where nothing is needed (discovery): the default then applies
        for name in [k for k, v in config.items() if v is None and k in schema.get("properties", {})]:
            del config[name]
    errors = schema_errors(config, schema, complete=complete)
    return errors or check_settings(config, complete=complete)


# -- the run's end -------------------------------------------------------------------------------


def run_end(
    end_date: dt.datetime | None, lag: dt.timedelta, now: dt.datetime, logger: logging.Logger | None = None
) -> dt.datetime:
    """The exclusive end of a run's range: end_date, but never later than now less the safety lag.

    No bookmark is ever later than this. An end_date in the future is capped, with a warning.
    """
    latest = (now - lag).replace(microsecond=0)
    if end_date is None or end_date <= latest:
        return latest if end_date is None else end_date
    if logger is not None:
        if end_date > now:
            logger.warning(
                "end_date %s is in the future: this run ends at %s (now less safety_lag_minutes), so no "
                "bookmark passes rows Pardot has not written yet",
                end_date.isoformat(),
                latest.isoformat(),
            )
        else:
            logger.info("end_date is within safety_lag_minutes of now: this run ends at %s", latest.isoformat())
    return latest
