"""The validator's errors as one clear line each, naming the setting and the fix, never a secret's value."""

from __future__ import annotations

import functools
import json
import re
import typing as t

from jsonschema import FormatChecker
from singer_sdk.typing import DEFAULT_JSONSCHEMA_VALIDATOR, extend_validator_with_defaults

from tap_pardot_export.engine.windows import DATETIME_FORMS, parse_setting_datetime
from tap_pardot_export.redact import SECRET_SETTINGS
from tap_pardot_export.spec import SPECS

if t.TYPE_CHECKING:
    from collections.abc import Mapping

    from jsonschema import ValidationError

#: settings whose values are never printed, in any message
SECRETS = frozenset(SECRET_SETTINGS)
#: the user and password part of a URL, never shown
USERINFO = re.compile(r"://[^/@\s]+@")


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
        streams = [n for n in error.schema.get("properties", {}) if n in SPECS]
        return f"{path[0]}: unknown stream {names}; streams: {', '.join(streams)}"
    spec = SPECS[path[1]]
    where = ".".join(path)
    if len(path) == 2:
        options = "procedure, arguments, window_days" if spec.kind == "export" else "window_days"
        return f"{where}: unknown option {names}; options: {options}"
    opts = config["stream_options"][path[1]]
    try:
        procedure = spec.procedure(str(opts.get("procedure", spec.default_procedure)))
    except (KeyError, IndexError):  # a query stream has no procedure (its schema has no deeper level)
        return None
    if {procedure.after, procedure.before} & set(extra):
        return f"{where}: {names}: the tap sets the time bounds itself (use start_date/end_date)"
    allowed = ", ".join(procedure.arguments) or "none"
    return f"{where}: {names} is not an argument of {procedure.name} ({spec.api_object}); allowed: {allowed}"


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
        spec = SPECS[path[1]]
        names = ", ".join(p.name for p in spec.procedures)
        return f"{where} {shown} is not a procedure of {spec.api_object}; use one of {names}"
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
        f"{where} {_shown(where, error.instance)} is not an ISO 8601 date or datetime of the forms the tap takes: "
        f"{DATETIME_FORMS}"
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


@functools.cache
def _validator_class() -> t.Any:
    """The SDK's validator that fills in defaults: a new class each time it is made, so made once."""
    return extend_validator_with_defaults(DEFAULT_JSONSCHEMA_VALIDATOR)


def schema_errors(config: dict[str, t.Any], schema: dict[str, t.Any], *, complete: bool = True) -> list[str]:
    """Validate ``config`` against ``schema`` (filling in defaults, as the SDK does); one line per error.

    ``complete=False`` leaves out the settings that are missing (a top-level ``required``): only
    what a value says wrong is an error then.
    """
    validator = _validator_class()(schema, format_checker=_format_checker())
    found = (e for e in validator.iter_errors(config) if complete or e.validator != "required" or e.absolute_path)
    errors = sorted(found, key=lambda e: [str(p) for p in e.absolute_path])
    return list(dict.fromkeys(_format_error(e, config) for e in errors))
