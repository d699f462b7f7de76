"""The tap's settings: their JSON schema, the checks a schema cannot express, and the run's end.

The schema carries every constraint it can (types, ``minimum``/``maximum``, ``enum``,
``pattern``, ``format``, one typed entry per stream in ``stream_options``); the functions here
turn the validator's errors into one clear line per setting (never echoing a secret's value)
and add the cross-field checks. Everything runs before any API call.
"""

from __future__ import annotations

import datetime as dt
import decimal
import ipaddress
import json
import math
import re
import typing as t
from dataclasses import dataclass
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jsonschema import FormatChecker
from singer_sdk.typing import DEFAULT_JSONSCHEMA_VALIDATOR, extend_validator_with_defaults

from tap_pardot_export.errors import PardotConfigError
from tap_pardot_export.streams import DEFAULT_ROWS_PER_EXPORT, DELETES_STREAMS, STREAM_TYPES
from tap_pardot_export.windows import parse_setting_datetime

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Iterable, Mapping

    from jsonschema import ValidationError

    from tap_pardot_export.streams import PardotExportStream

#: settings whose values are never printed, in any message
SECRETS = frozenset({"access_token", "client_id", "client_secret", "refresh_token"})


def _name(cls: type[PardotExportStream]) -> str:
    """A stream class's name (``Stream.name`` is typed as an instance attribute)."""
    return str(getattr(cls, "name"))  # noqa: B009


STREAMS: dict[str, type[PardotExportStream]] = {_name(s): s for s in STREAM_TYPES}

#: the API refuses windows over a year; below about an hour a range becomes thousands of exports
MIN_WINDOW_DAYS = 0.04
MAX_WINDOW_DAYS = 365
#: against Pardot (any host but loopback), polls at most this often: each status read is an API call
MIN_REMOTE_POLL_INTERVAL = 1.0
MIN_REMOTE_MAX_POLL_INTERVAL = 10.0
#: one window costs a token call, a create, a status read or more and a download
MIN_API_CALLS = 10
DEFAULT_SAFETY_LAG_MINUTES = 5
BU_PATTERN = "^0Uv[0-9A-Za-z]{15}$"
URL_PATTERN = r"^https?://[^/\s]+"
#: the user and password part of a URL, never shown
USERINFO = re.compile(r"://[^/@\s]+@")

TIMEZONE_HELP = (
    "timezone is not set. Pardot writes export datetimes in the API user's own time zone, without "
    "an offset, so the tap needs that zone to read them right. Find it in Salesforce: Account "
    "Engagement > the API user's name > Settings (or Setup > Users > the user > Time Zone), and set "
    "timezone to its IANA name, e.g. America/New_York. Or set infer_timezone: true to infer a UTC "
    "offset from each export instead (an hour off for rows across a daylight-saving change)."
)
START_OVER = (
    "To start over from start_date, delete the state file (plain Singer), or with Meltano find the "
    "state id with `meltano state list` and run `meltano state clear <state id>`."
)


def _num(kind: str, title: str, description: str, limits: tuple[float | None, float, float]) -> dict[str, t.Any]:
    """A number setting; ``limits`` is (default or None, minimum, maximum)."""
    default, lo, hi = limits
    schema: dict[str, t.Any] = {"type": kind, "title": title, "description": description, "minimum": lo, "maximum": hi}
    if default is not None:
        schema["default"] = default
    return schema


def _str(title: str, description: str, **extra: t.Any) -> dict[str, t.Any]:
    return {"type": "string", "title": title, "description": description, **extra}


def _secret(title: str, description: str) -> dict[str, t.Any]:
    return {"type": "string", "title": title, "description": description, "secret": True, "writeOnly": True}


#: the schema of each extra procedure argument a user may set (streams.py names them per procedure)
ARGUMENT_SCHEMAS: dict[str, dict[str, t.Any]] = {
    "deleted": {
        "type": ["string", "boolean"],
        "enum": ["true", "false", "all", True, False],
        "description": "true: deleted rows only; false (Pardot's default): not deleted; all: both.",
    },
    "prospect_deleted": {
        "type": ["string", "boolean"],
        "enum": ["true", "false", "all", True, False],
        "description": "By whether the linked prospect is deleted: true, false (Pardot's default) or all.",
    },
    "type": {
        "type": "array",
        "items": {"type": "integer", "minimum": 1},
        "minItems": 1,
        "description": "Visitor activity type codes to export, e.g. [1, 2]; default: all types.",
    },
    "prospect_only": {"type": "boolean", "description": "true: only activities linked to a prospect."},
    "prospectOnly": {"type": "boolean", "description": "true: only activities linked to a prospect."},
}


def _procedure_rule(cls: type[PardotExportStream], procedure: str) -> dict[str, t.Any]:
    """An if/then rule: with this procedure, ``arguments`` holds only its own extra arguments."""
    allowed = cls.extra_arguments.get(procedure, ())
    condition: dict[str, t.Any] = {"properties": {"procedure": {"const": procedure}}}
    if procedure != cls.default_procedure:
        condition["required"] = ["procedure"]
    arguments = {
        "type": "object",
        "properties": {name: ARGUMENT_SCHEMAS[name] for name in allowed},
        "additionalProperties": False,
    }
    return {"if": condition, "then": {"properties": {"arguments": arguments}}}


def stream_option_schema(cls: type[PardotExportStream]) -> dict[str, t.Any]:
    """The typed options of one stream: its procedures, their arguments and a window size."""
    names = list(cls.procedures)
    every_argument = sorted({a for p in names for a in cls.extra_arguments.get(p, ())})
    args_doc = "; ".join(f"{p}: {', '.join(cls.extra_arguments.get(p, ())) or 'none'}" for p in names)
    return {
        "type": "object",
        "title": f"{_name(cls)} options",
        "description": f"How the {_name(cls)} stream exports {cls.object_name} rows.",
        "properties": {
            "procedure": {
                "type": "string",
                "enum": names,
                "default": cls.default_procedure,
                "description": f"The export procedure, one of: {', '.join(names)}.",
            },
            "arguments": {
                "type": "object",
                "properties": {name: ARGUMENT_SCHEMAS[name] for name in every_argument},
                "additionalProperties": False,
                "description": f"Extra procedure arguments, per procedure: {args_doc}. The tap sets the "
                "time bounds itself.",
            },
            "window_days": _num(
                "number",
                "Window size (days)",
                "This stream's fixed window size; default: window_days (unset: windows sized by the data).",
                (None, MIN_WINDOW_DAYS, MAX_WINDOW_DAYS),
            ),
        },
        "additionalProperties": False,
        "allOf": [_procedure_rule(cls, p) for p in names],
    }


def _connection_settings() -> dict[str, dict[str, t.Any]]:
    return {
        "api_url": _str(
            "API URL",
            "Pardot API host: https://pi.pardot.com for production business units, "
            "https://pi.demo.pardot.com for sandbox, developer and demo business units.",
            default="https://pi.pardot.com",
            pattern=URL_PATTERN,
        ),
        "api_version": {
            "type": "integer",
            "enum": [3, 4],
            "default": 4,
            "title": "API version",
            "description": "Export API version: 4 for business units that allow several prospects with the same "
            "email, else 3. The tap switches once if Pardot answers error 88 or 89.",
        },
        "business_unit_id": _str(
            "Business unit ID",
            "The Pardot business unit id (18 characters, starts with 0Uv): Salesforce Setup > Account "
            "Engagement > Business Unit Setup. Sent as the Pardot-Business-Unit-Id header.",
            pattern=BU_PATTERN,
        ),
        "login_url": _str(
            "Login URL",
            "Salesforce login host; the token endpoint is {login_url}/services/oauth2/token. "
            "https://test.salesforce.com for Salesforce sandboxes, or your My Domain.",
            default="https://login.salesforce.com",
            pattern=URL_PATTERN,
        ),
        "download_hosts": {
            "type": "array",
            "items": {"type": "string", "pattern": r"^[A-Za-z0-9.-]+$"},
            "default": [],
            "title": "Extra download hosts",
            "description": "Host names (no scheme, no path) besides api_url's host and Pardot's own hosts "
            "that result-file links may point at, e.g. a proxy.",
        },
    }


def _credential_settings() -> dict[str, dict[str, t.Any]]:
    return {
        "access_token": _secret(
            "Access token",
            "A Salesforce OAuth access token with the pardot_api scope. Use instead of "
            "client_id/client_secret/refresh_token for short runs: it cannot be refreshed.",
        ),
        "client_id": _secret("Client ID", "The connected app's consumer key."),
        "client_secret": _secret("Client secret", "The connected app's consumer secret."),
        "refresh_token": _secret(
            "Refresh token",
            "An OAuth refresh token for the API user. Without it, client_id and client_secret are used with "
            "the client-credentials grant (My Domain login_url needed).",
        ),
    }


def _range_settings() -> dict[str, dict[str, t.Any]]:
    return {
        "start_date": _str(
            "Start date",
            "Earliest record time to sync, inclusive (ISO 8601; a date means midnight UTC).",
            format="date-time",
        ),
        "end_date": _str(
            "End date",
            "Latest record time to sync, exclusive (ISO 8601). Default, and at the latest: now less "
            "safety_lag_minutes.",
            format="date-time",
        ),
        "safety_lag_minutes": _num(
            "number",
            "Safety lag (minutes)",
            "A run ends this long before now, so rows Pardot has not yet made visible are read by the next run.",
            (DEFAULT_SAFETY_LAG_MINUTES, 0, 1440),
        ),
        "timezone": _str(
            "Time zone",
            "IANA time zone of the Pardot API user (e.g. America/New_York): the export CSVs write datetimes "
            "in it, without offset. Required to sync, unless infer_timezone is true.",
        ),
        "infer_timezone": {
            "type": "boolean",
            "default": False,
            "title": "Infer time zone",
            "description": "Without timezone, infer a UTC offset from each export's createdAt (an hour off "
            "across daylight-saving changes) instead of refusing to sync.",
        },
        "window_days": _num(
            "number",
            "Window size (days)",
            f"A fixed length for every export's time window, {MIN_WINDOW_DAYS} (about an hour) to "
            f"{MAX_WINDOW_DAYS}. Default: unset, windows sized by the data (as wide as the API allows, "
            "narrower where rows are dense: see rows_per_export). Smaller windows mean more exports but "
            "smaller files and finer checkpoints.",
            (None, MIN_WINDOW_DAYS, MAX_WINDOW_DAYS),
        ),
        "rows_per_export": _num(
            "integer",
            "Rows per export",
            "Without window_days: the rows one export aims at. Each stream's windows are as wide as the API "
            "allows (a year) while exports stay below this, narrower where a window held more, learned "
            "from the windows done and kept in state for the next run.",
            (DEFAULT_ROWS_PER_EXPORT, 100, 50_000_000),
        ),
        "capture_deletes": {
            "type": "boolean",
            "default": False,
            "title": "Capture deletes",
            "description": "Mark records in Pardot's recycle bin with _sdc_deleted_at (prospect, visitor, "
            "list_membership, prospect_account; live records get null): a recycle-bin pass over start_date "
            "to now runs every deletes_pass_days, one extra export per year of range per stream, and stamps "
            "each deleted record with the pass's time. Incompatible with a deleted or prospect_deleted "
            "argument in stream_options.",
        },
        "deletes_pass_days": _num(
            "number",
            "Recycle-bin pass interval (days)",
            "With capture_deletes: the least time between two recycle-bin passes of a stream (kept in its "
            "state). 0: every run.",
            (1, 0, 365),
        ),
    }


def _polling_settings() -> dict[str, dict[str, t.Any]]:
    remote = f"At least {MIN_REMOTE_POLL_INTERVAL:g} against Pardot (less only for a server on loopback)"
    return {
        "poll_interval": _num(
            "number",
            "Poll interval (seconds)",
            f"Seconds before the first status read of an export; each later wait doubles. {remote}.",
            (1, 0.05, 3600),
        ),
        "max_poll_interval": _num(
            "number",
            "Max poll interval (seconds)",
            "The cap on the wait between two status reads of an export; at least poll_interval, and at "
            f"least {MIN_REMOTE_MAX_POLL_INTERVAL:g} against Pardot (less only for a server on loopback).",
            (60, 0.2, 3600),
        ),
        "max_queued_exports": _num(
            "integer",
            "Max queued exports",
            "How many exports the tap creates ahead of the one it waits on or reads, 0 to 4, so that Pardot "
            "(one export at a time per account) processes the next while this one downloads. 0: strictly one "
            "after another. Pardot's queue is shared with the account's other integrations.",
            (1, 0, 4),
        ),
        "export_timeout": _num(
            "number",
            "Export timeout (seconds)",
            "How long one export may stay Waiting/Processing before the tap cancels it and fails with its id "
            "(default 6 hours, at most 7 days).",
            (21600, 1, 604800),
        ),
    }


def _request_settings() -> dict[str, dict[str, t.Any]]:
    return {
        "max_concurrency": _num(
            "integer",
            "Max concurrent requests",
            "Requests in flight at once (downloads included), 1 to 5: Pardot allows 5 per business unit, "
            "shared with every other integration.",
            (2, 1, 5),
        ),
        "max_retries": _num(
            "integer",
            "Max retries",
            "Retries of one request on 5xx, timeouts, resets and error 66, with exponential backoff and jitter.",
            (8, 0, 20),
        ),
        "retry_max_time": _num(
            "number",
            "Retry time limit (seconds)",
            "The total time the retries of one request may take.",
            (600, 0, 86400),
        ),
        "request_timeout": _num(
            "number",
            "Request timeout (seconds)",
            "Timeout of one HTTP request (connect and each read).",
            (300, 0.1, 3600),
        ),
        "download_timeout": _num(
            "number",
            "Download timeout (seconds)",
            "The overall deadline of one result file's download.",
            (3600, 0.1, 86400),
        ),
        "max_api_calls": _num(
            "integer",
            "Max API calls per run",
            "Stop cleanly, with resumable state, before spending more API calls than this in one run "
            f"(at least {MIN_API_CALLS}: one window costs several). Default: no cap (Pardot's daily limit "
            "still applies).",
            (None, MIN_API_CALLS, 10_000_000),
        ),
    }


def _stream_settings() -> dict[str, dict[str, t.Any]]:
    return {
        "custom_fields": {
            "type": "object",
            "properties": {
                name: {
                    "type": "array",
                    "items": {"type": "string", "minLength": 1},
                    "description": f"Extra fields of the {name} stream, read as strings.",
                }
                for name in STREAMS
            },
            "additionalProperties": False,
            "title": "Custom fields",
            "description": 'Account-specific fields to export, per stream, as strings: e.g. {"prospect": '
            '["Favorite_Color"]}. Use the field API names.',
        },
        "stream_options": {
            "type": "object",
            "properties": {name: stream_option_schema(cls) for name, cls in STREAMS.items()},
            "additionalProperties": False,
            "title": "Stream options",
            "description": 'Per stream: "procedure", "arguments" (extra procedure arguments, e.g. '
            '{"deleted": "all"} or {"type": [1, 2]}) and "window_days".',
        },
    }


def settings_schema() -> dict[str, t.Any]:
    """The tap's own settings as a JSON schema (a fresh dict: the SDK adds its built-in ones)."""
    properties = {
        **_connection_settings(),
        **_credential_settings(),
        **_range_settings(),
        **_polling_settings(),
        **_request_settings(),
        **_stream_settings(),
    }
    return {
        "type": "object",
        "properties": properties,
        "required": ["business_unit_id", "start_date"],
        "$schema": "https://json-schema.org/draft/2020-12/schema",
    }


# -- schema errors as one clear line each --------------------------------------------------------


def _format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())
    checker.checks("date-time", raises=(ValueError, TypeError))(
        lambda v: not isinstance(v, str) or bool(parse_setting_datetime(v))
    )
    return checker


def _where(error: ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) or "config"


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


def _hidden(where: str) -> bool:
    """True for settings whose values a message never shows (secrets, and map config that may hold one)."""
    return where.split(".", maxsplit=1)[0] in SECRETS | {"stream_map_config"}


def _shown(where: str, value: object) -> str:
    """The value as a message may show it: never a secret's, never a URL's user and password."""
    if _hidden(where):
        return "(value not shown)"
    if isinstance(value, str):
        return repr(USERINFO.sub("://***@", value))[:80]
    return json.dumps(value, default=str)[:80]


_TYPE_WORDS = {
    "number": "a number",
    "integer": "a whole number",
    "string": "a string",
    "boolean": "true or false",
    "array": "a list",
    "object": "an object",
    "null": "null",
}


def _type_error(where: str, error: ValidationError, schema: Mapping[str, t.Any]) -> str:
    expected = error.validator_value
    expected = expected if isinstance(expected, list) else [expected]
    want = " or ".join(_TYPE_WORDS.get(str(e), str(e)) for e in expected if e != "null")
    if error.instance is None:
        default = schema.get("default")
        hint = f"to use the default ({json.dumps(default)})" if default is not None else "to leave it unset"
        return f"{where} is null: remove the setting {hint}, or give {want}"
    if _hidden(where) or where == "business_unit_id":
        quote = (
            ": quote it in meltano.yml or the config file (an unquoted all-digit value is read as a number, "
            "and leading zeros are lost)"
            if isinstance(error.instance, (int, float))
            else ""
        )
        return f"{where} must be {want}, not {_json_type(error.instance)} (value not shown){quote}"
    return f"{where} must be {want}, not {_json_type(error.instance)} {_shown(where, error.instance)}"


def _stream_option_error(path: list[str], error: ValidationError, config: Mapping[str, t.Any]) -> str | None:
    """Messages for stream_options and custom_fields errors that name streams, options and procedures."""
    if error.validator != "additionalProperties" or path[0] not in ("stream_options", "custom_fields"):
        return None
    extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
    names = ", ".join(repr(e) for e in extra)
    if len(path) == 1:
        return f"{path[0]}: unknown stream {names}; streams: {', '.join(STREAMS)}"
    cls = STREAMS[path[1]]
    where = ".".join(path)
    if len(path) == 2:
        return f"{where}: unknown option {names}; options: procedure, arguments, window_days"
    opts = config["stream_options"][path[1]]
    procedure = opts.get("procedure", cls.default_procedure)
    bounds = set(cls.procedures.get(procedure, ("", "", None))[:2])
    if bounds & set(extra):
        return f"{where}: {names}: the tap sets the time bounds itself (use start_date/end_date)"
    allowed = ", ".join(cls.extra_arguments.get(procedure, ())) or "none"
    return f"{where}: {names} is not an argument of {procedure} ({cls.object_name}); allowed: {allowed}"


def _format_error(error: ValidationError, config: Mapping[str, t.Any]) -> str:
    path = [str(p) for p in error.absolute_path]
    where = _where(error)
    special = _stream_option_error(path, error, config) if path else None
    if special:
        return special
    explain = _EXPLAIN.get(str(error.validator))
    message = explain(where, path, error) if explain else None
    if message is not None:
        return message
    return f"{where}: {'invalid (value not shown)' if _hidden(where) else USERINFO.sub('://***@', error.message)}"


def _required_error(where: str, path: list[str], error: ValidationError) -> str:
    missing = [m for m in error.validator_value if m not in (error.instance or {})]
    prefix = f"{where}." if path else ""
    return "; ".join(f"{prefix}{m} is required: {_REQUIRED_HINTS.get(m, 'set it')}" for m in missing)


def _range_error(where: str, path: list[str], error: ValidationError) -> str:
    lo, hi = error.schema.get("minimum"), error.schema.get("maximum")
    shown = _shown(where, error.instance)
    return f"{where} {shown} is out of range: it must be at least {lo:g} and at most {hi:g}" + _unit(path)


def _enum_error(where: str, path: list[str], error: ValidationError) -> str:
    shown = _shown(where, error.instance)
    if error.validator == "enum" and path and path[-1] == "procedure":
        cls = STREAMS[path[1]]
        return f"{where} {shown} is not a procedure of {cls.object_name}; use one of {', '.join(cls.procedures)}"
    limit = error.validator_value
    options = ", ".join(json.dumps(v) for v in (limit if error.validator == "enum" else [limit]))
    return f"{where} {shown} is not allowed; use one of {options}"


def _pattern_error(where: str, path: list[str], error: ValidationError) -> str:
    template = _PATTERN_MESSAGES.get(path[0], "{where} {value} does not match " + str(error.validator_value))
    return template.format(where=where, value=_shown(where, error.instance))


#: What to say for each kind of schema violation, by the JSON-schema keyword that failed.
_EXPLAIN: dict[str, t.Callable[[str, list[str], ValidationError], str | None]] = {
    "required": _required_error,
    "type": lambda where, _path, error: _type_error(where, error, error.schema),
    "minimum": _range_error,
    "maximum": _range_error,
    "minItems": lambda where, _path, error: (
        f"{where} is empty: give at least {error.validator_value} value(s), or remove it"
    ),
    "enum": _enum_error,
    "const": _enum_error,
    "pattern": _pattern_error,
    "format": lambda where, _path, error: (
        f"{where} {_shown(where, error.instance)} is not an ISO 8601 date or datetime (e.g. 2024-01-01)"
    ),
}


_REQUIRED_HINTS = {
    "business_unit_id": "the 18-character id starting 0Uv (Salesforce Setup > Business Unit Setup)",
    "start_date": "the earliest record time to sync, e.g. 2024-01-01",
}
_PATTERN_MESSAGES = {
    "business_unit_id": "{where} is malformed: {value} is not 18 characters starting with 0Uv (Salesforce Setup > "
    "Business Unit Setup)",
    "api_url": "{where} {value} is not an http(s) URL (e.g. https://pi.pardot.com)",
    "login_url": "{where} {value} is not an http(s) URL (e.g. https://login.salesforce.com)",
    "download_hosts": "{where} {value} is not a host name (no scheme, port or path; e.g. www.pardot.com)",
}


def _unit(path: list[str]) -> str:
    name = path[-1]
    if name.endswith("_days"):
        return " days"
    if name.endswith("_minutes"):
        return " minutes"
    if name.endswith(("_interval", "_timeout", "_time")):
        return " seconds"
    return ""


def schema_errors(config: dict[str, t.Any], schema: dict[str, t.Any]) -> list[str]:
    """Validate ``config`` against ``schema`` (filling in defaults, as the SDK does); one line per error."""
    validator_class = extend_validator_with_defaults(DEFAULT_JSONSCHEMA_VALIDATOR)
    validator = validator_class(schema, format_checker=_format_checker())
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    return list(dict.fromkeys(_format_error(e, config) for e in errors))


# -- what a schema cannot say --------------------------------------------------------------------


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
    poll = config.get("poll_interval", 1)
    cap = config.get("max_poll_interval", 60)
    if not all(isinstance(v, (int, float)) for v in (poll, cap)):
        return []  # reported by the schema
    if cap < poll:
        errors.append(f"max_poll_interval ({cap:g}) must be at least poll_interval ({poll:g})")
    if not _is_loopback(str(config.get("api_url") or "https://pi.pardot.com")):
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


def _timezone_errors(config: Mapping[str, t.Any]) -> list[str]:
    try:
        timezone_policy(config)
    except PardotConfigError as exc:
        return list(exc.errors)
    return []


def _deletes_errors(config: Mapping[str, t.Any]) -> list[str]:
    """capture_deletes reads the recycle bin itself: a deleted argument of the user's contradicts it."""
    if not config.get("capture_deletes"):
        return []
    options = config.get("stream_options") or {}
    return [
        f"stream_options.{stream}.arguments.{name} contradicts capture_deletes (which exports the live records "
        "and the recycle bin itself, marking deleted ones): remove one of them"
        for stream in DELETES_STREAMS
        for name in ("deleted", "prospect_deleted")
        if name in ((options.get(stream) or {}).get("arguments") or {})
    ]


def _nan_errors(value: object, where: str) -> Iterable[str]:
    """NaN passes every minimum and maximum (the SDK's JSON reader accepts it)."""
    if isinstance(value, float) and math.isnan(value):
        yield f"{where} is NaN: give a number"
    elif isinstance(value, dict):
        for key, sub in value.items():
            yield from _nan_errors(sub, f"{where}.{key}" if where else str(key))


def check_settings(config: Mapping[str, t.Any]) -> list[str]:
    """The checks a schema cannot express: each error names the setting and the fix."""
    return [
        *_nan_errors(dict(config), ""),
        *_date_errors(config),
        *_poll_errors(config),
        *_credential_errors(config),
        *_timezone_errors(config),
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


def validate(config: dict[str, t.Any], schema: dict[str, t.Any]) -> list[str]:
    """All problems with ``config``: the schema's, then the cross-field ones (only if the schema passed).

    Fills in defaults and turns Decimals into floats, in place, as the tap reads ``config`` after.
    """
    config.update(_plain_numbers(config))
    errors = schema_errors(config, schema)
    return errors or check_settings(config)


# -- time ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimezonePolicy:
    """How CSV datetimes (local, without offset) are read: in ``zone``, or with an inferred offset."""

    zone: dt.tzinfo | None
    infer: bool


def timezone_policy(config: Mapping[str, t.Any]) -> TimezonePolicy:
    """The run's time-zone policy: the configured zone, or offset inference when opted in.

    Raises:
        PardotConfigError: the zone is not an IANA name, or unset without ``infer_timezone``.
    """
    name = config.get("timezone")
    if name:
        try:
            return TimezonePolicy(ZoneInfo(str(name)), infer=False)
        except (ZoneInfoNotFoundError, ValueError):
            msg = f"timezone {name!r} is not an IANA time zone name (e.g. America/New_York, Europe/Paris)"
            raise PardotConfigError(msg) from None
    if config.get("infer_timezone") is True:
        return TimezonePolicy(None, infer=True)
    raise PardotConfigError(TIMEZONE_HELP)


def run_end(config: Mapping[str, t.Any], now: dt.datetime, logger: logging.Logger | None = None) -> dt.datetime:
    """The exclusive end of a run's range: end_date, but never later than now less the safety lag.

    No bookmark is ever later than this. An end_date in the future is capped, with a warning.
    """
    lag = dt.timedelta(minutes=float(config.get("safety_lag_minutes", DEFAULT_SAFETY_LAG_MINUTES)))
    latest = (now - lag).replace(microsecond=0)
    if not config.get("end_date"):
        return latest
    end = parse_setting_datetime(str(config["end_date"]))
    if end <= latest:
        return end
    if logger is not None:
        if end > now:
            logger.warning(
                "end_date %s is in the future: this run ends at %s (now less safety_lag_minutes), so no "
                "bookmark passes rows Pardot has not written yet",
                config["end_date"],
                latest.isoformat(),
            )
        else:
            logger.info("end_date is within safety_lag_minutes of now: this run ends at %s", latest.isoformat())
    return latest


# -- state ---------------------------------------------------------------------------------------


def parse_state(text: str) -> dict[str, t.Any]:
    """The state file's content, checked.

    Raises:
        PardotConfigError: the file is not JSON or its bookmarks are malformed; the message says how
            to start over.
    """
    try:
        state = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        msg = f"The state is not valid JSON ({exc}); it was probably cut short. {START_OVER}"
        raise PardotConfigError(msg) from None
    errors = state_errors(state, dt.datetime.now(dt.timezone.utc))
    if errors:
        raise PardotConfigError(f"The state is corrupted: {'; '.join(errors)}. {START_OVER}")
    return t.cast("dict[str, t.Any]", state)


#: no start_date or bookmark is earlier (a year-1 date would overflow a window's start less one second)
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
#: clocks differ a little; a bookmark further ahead than this was written for a future end_date
CLOCK_SKEW = dt.timedelta(minutes=5)


def _bookmark_errors(stream: str, bookmark: object, now: dt.datetime | None) -> Iterable[str]:
    if not isinstance(bookmark, dict):
        yield f"the bookmark of {stream} is not an object"
        return
    value = bookmark.get("replication_key_value")
    if value is not None:
        try:
            when = parse_setting_datetime(str(value))
        except ValueError:
            yield f"the bookmark of {stream} ({str(value)[:40]!r}) is not a date"
        else:
            if when < EARLIEST:
                yield f"the bookmark of {stream} ({value}) is before {EARLIEST.date()}"
            if now is not None and when > now + CLOCK_SKEW:
                yield (
                    f"the bookmark of {stream} ({value}) is later than now: a run with an end_date in the "
                    "future wrote it, and the rows between now and then would never be read"
                )
    pending = bookmark.get("pending_export")
    if pending is not None and not (isinstance(pending, dict) and str(pending.get("id", "")).isdigit()):
        yield f"the export in flight recorded for {stream} has no valid id"
    queued = bookmark.get("queued_exports")
    if queued is not None and not (
        isinstance(queued, list) and all(isinstance(e, dict) and str(e.get("id", "")).isdigit() for e in queued)
    ):
        yield f"the exports queued ahead recorded for {stream} are not a list of exports with valid ids"


def state_errors(state: object, now: dt.datetime | None = None) -> list[str]:
    """What is wrong with a state object, if anything (one line each).

    With ``now``, a bookmark later than now is wrong too.
    """
    if not isinstance(state, dict):
        return [f"the state is {_json_type(state)}, not an object"]
    bookmarks = state.get("bookmarks", {})
    if not isinstance(bookmarks, dict):
        return ["its bookmarks are not an object"]
    return [e for stream, b in bookmarks.items() for e in _bookmark_errors(str(stream), b, now)]
