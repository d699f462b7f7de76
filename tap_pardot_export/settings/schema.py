"""The settings as a JSON schema: every constraint a schema can carry, derived from the stream specs.

Types, ``minimum``/``maximum``, ``enum``, ``pattern`` and ``format``, and one typed entry per
export stream in ``stream_options`` (its procedures and each one's extra arguments, from
:data:`~tap_pardot_export.spec.SPECS`). Defaults live here and nowhere else: validation fills
them in, and :class:`~tap_pardot_export.settings.config.Settings` reads the result once.
"""

from __future__ import annotations

import typing as t

from tap_pardot_export.spec import ARGUMENTS, SPECS

if t.TYPE_CHECKING:
    from tap_pardot_export.spec import Procedure, StreamSpec


#: the API refuses windows over a year; below about an hour a range becomes thousands of exports
MIN_WINDOW_DAYS = 0.04
#: an event stream's windows are read by the query API: an hour is the shortest that keeps them few
MIN_QUERY_WINDOW_DAYS = 0.04
MAX_WINDOW_DAYS = 365
#: against Pardot (any host but loopback), polls at most this often: each status read is an API call
MIN_REMOTE_POLL_INTERVAL = 1.0
MIN_REMOTE_MAX_POLL_INTERVAL = 10.0
#: one window costs a token call, a create, a status read or more and a download
MIN_API_CALLS = 10
#: the rows an export aims at when window_days is not set
DEFAULT_ROWS_PER_EXPORT = 500_000
DEFAULT_SAFETY_LAG_MINUTES = 5
BU_PATTERN = "^0Uv[0-9A-Za-z]{15}$"
URL_PATTERN = r"^https?://[^/\s]+"


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


def _procedure_rule(spec: StreamSpec, procedure: Procedure) -> dict[str, t.Any]:
    """An if/then rule: with this procedure, ``arguments`` holds only its own extra arguments."""
    condition: dict[str, t.Any] = {"properties": {"procedure": {"const": procedure.name}}}
    if procedure.name != spec.default_procedure:
        condition["required"] = ["procedure"]
    arguments = {
        "type": "object",
        "properties": {name: ARGUMENTS[name] for name in procedure.arguments},
        "additionalProperties": False,
    }
    return {"if": condition, "then": {"properties": {"arguments": arguments}}}


def stream_option_schema(spec: StreamSpec) -> dict[str, t.Any]:
    """The typed options of one export stream: its procedures, their arguments and a window size."""
    names = [p.name for p in spec.procedures]
    every_argument = sorted({a for p in spec.procedures for a in p.arguments})
    args_doc = "; ".join(f"{p.name}: {', '.join(p.arguments) or 'none'}" for p in spec.procedures)
    return {
        "type": "object",
        "title": f"{spec.name} options",
        "description": f"How the {spec.name} stream exports {spec.api_object} rows.",
        "properties": {
            "procedure": {
                "type": "string",
                "enum": names,
                "default": spec.default_procedure,
                "description": f"The export procedure, one of: {', '.join(names)}.",
            },
            "arguments": {
                "type": "object",
                "properties": {name: ARGUMENTS[name] for name in every_argument},
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
        "allOf": [_procedure_rule(spec, p) for p in spec.procedures],
    }


def query_option_schema(spec: StreamSpec) -> dict[str, t.Any]:
    """The options of an event-like query stream: a fixed window length (default: windows sized by the data)."""
    key = spec.replication_key
    return {
        "type": "object",
        "title": f"{spec.name} options",
        "description": f"How the {spec.name} stream reads v5 {spec.api_object} by {key}.",
        "properties": {
            "window_days": _num(
                "number",
                "Window size (days)",
                f"Read {key} in fixed windows of this many days, side by side (default: windows sized by the "
                "data, about 3,000 to 25,000 records each). Smaller windows help where Pardot times out on long "
                "ranges (HTTP 504).",
                (None, MIN_QUERY_WINDOW_DAYS, MAX_WINDOW_DAYS),
            ),
        },
        "additionalProperties": False,
    }


def _option_schemas() -> dict[str, dict[str, t.Any]]:
    """stream_options' entries: every export stream's, and the event-like query streams' window size."""
    out = {}
    for name, spec in SPECS.items():
        if spec.kind == "export":
            out[name] = stream_option_schema(spec)
        elif spec.windowed:
            out[name] = query_option_schema(spec)
    return out


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
        "business_unit_key": {
            "type": "boolean",
            "default": False,
            "title": "Business unit in records and keys",
            "description": "Add a business_unit_id column (this run's business_unit_id) to every record of every "
            "stream and make each stream's key business_unit_id + id, so several business units load into one "
            "set of tables without colliding on id. A table loaded before this changed needs a full refresh.",
        },
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
    }


def _window_settings() -> dict[str, dict[str, t.Any]]:
    exports = ", ".join(name for name, spec in SPECS.items() if spec.captures_deletes and spec.kind == "export")
    queries = ", ".join(name for name, spec in SPECS.items() if spec.captures_deletes and spec.kind == "query")
    return {
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
            "description": f"Mark records in Pardot's recycle bin with _sdc_deleted_at ({exports}; live records "
            "get null): a recycle-bin pass over start_date "
            "to now runs every deletes_pass_days, one extra export per year of range per stream, and stamps "
            "each deleted record with the pass's time. Incompatible with a deleted or prospect_deleted "
            f"argument in stream_options. Query streams with a recycle bin ({queries}) read it every run: "
            "their deleted records (is_deleted true) get the run's end.",
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
            "The overall deadline of one API call or token request, from its first byte sent to the last byte "
            "of its answer (connect, status line, headers and body), however slowly the server sends it.",
            (300, 0.1, 3600),
        ),
        "download_timeout": _num(
            "number",
            "Download timeout (seconds)",
            "The overall deadline of one result file's download, from its first byte sent to its last byte "
            "received (connect, status line, headers and body).",
            (3600, 0.1, 86400),
        ),
    }


def _budget_settings() -> dict[str, dict[str, t.Any]]:
    return {
        "max_api_calls": _num(
            "integer",
            "Max API calls per run",
            "Stop cleanly, with resumable state, before spending more API calls than this in one run "
            f"(at least {MIN_API_CALLS}: one window costs several). Default: no cap (Pardot's daily limit "
            "still applies).",
            (None, MIN_API_CALLS, 10_000_000),
        ),
        "api_call_reserve": _num(
            "number",
            "Daily API allowance reserve",
            "The fraction of the business unit's daily API allowance a sync leaves for its other integrations "
            "(0.1: a tenth; 0: none). At the start of a sync the tap reads the allowance from the v5 account "
            "object (one call) and stops cleanly, with resumable state, before the calls left today drop under "
            "the reserve; the next run resumes after the allowance resets at midnight in the account's time zone. "
            "The figure is read once: the reserve counts only this run's calls against it, so it also absorbs "
            "what other integrations spend meanwhile. max_api_calls still caps each run; the lower cap holds.",
            (0.1, 0, 0.9),
        ),
    }


def _run_settings() -> dict[str, dict[str, t.Any]]:
    return {
        "fail_fast": {
            "type": "boolean",
            "default": False,
            "title": "Fail fast",
            "description": "Stop the run at the first stream that fails. Default: a failed stream keeps its bookmark "
            "where its emitted rows allow and the other selected streams still sync; the run then exits non-zero "
            "naming every failed stream.",
        },
        "record_dir": _str(
            "Export record folder",
            "The folder of the tap's record of the exports it created, one file per business unit "
            "(<business_unit_id>.json, with a lock file beside it): a rerun reuses an export still live in Pardot "
            "even when no state reached the runner (Ctrl-C under meltano run, a crash), and a stop keeps the "
            "recorded exports for it. Default: $XDG_STATE_HOME/tap-pardot-export, else "
            "~/.local/state/tap-pardot-export. It must be writable.",
            minLength=1,
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
                for name, spec in SPECS.items()
                if spec.kind == "export"
            },
            "additionalProperties": False,
            "title": "Custom fields",
            "description": 'Account-specific fields to export, per export stream, as strings: e.g. {"prospect": '
            '["Favorite_Color"]}. Use the field API names; each column is its name in snake_case (favorite_color).',
        },
        "stream_options": {
            "type": "object",
            "properties": _option_schemas(),
            "additionalProperties": False,
            "title": "Stream options",
            "description": 'Per export stream: "procedure", "arguments" (extra procedure arguments, e.g. '
            '{"deleted": "all"} or {"type": [1, 2]}) and "window_days"; per event-like query stream (email, '
            'lifecycle_history, visit, visitor_page_view): "window_days".',
        },
    }


def settings_schema() -> dict[str, t.Any]:
    """The tap's own settings as a JSON schema (a fresh dict: the SDK adds its built-in ones)."""
    properties = {
        **_connection_settings(),
        **_credential_settings(),
        **_range_settings(),
        **_window_settings(),
        **_polling_settings(),
        **_request_settings(),
        **_budget_settings(),
        **_run_settings(),
        **_stream_settings(),
    }
    return {
        "type": "object",
        "properties": properties,
        "required": ["business_unit_id", "start_date"],
        "$schema": "https://json-schema.org/draft/2020-12/schema",
    }
