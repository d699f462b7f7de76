"""tap-pardot-export: the Tap class, its settings and their validation."""

from __future__ import annotations

import datetime as dt
import logging
import re
import sys
import threading
import typing as t
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.exceptions import ConfigValidationError
from typing_extensions import override

from tap_pardot_export.account import learn_account_fields
from tap_pardot_export.auth import install_redaction, secrets_from_config
from tap_pardot_export.check import check_option
from tap_pardot_export.client import PardotClient, build_client, host_of
from tap_pardot_export.errors import PardotAPIError, PardotConfigError
from tap_pardot_export.exports import ExportRunner
from tap_pardot_export.streams import STREAM_TYPES, PardotExportStream
from tap_pardot_export.windows import parse_setting_datetime

if t.TYPE_CHECKING:
    from types import FrameType, TracebackType

MAX_FIELDS = 150
STREAM_OPTION_KEYS = ("procedure", "arguments", "window_days")
BU_PATTERN = re.compile(r"^0Uv[0-9A-Za-z]{15}$")

STREAM_NAMES = [str(s.name) for s in STREAM_TYPES]  # type: ignore[misc]


def settings_schema() -> dict[str, t.Any]:
    """The tap's own settings (a fresh dict: the SDK adds its built-in ones to the class's copy)."""
    return th.PropertiesList(
        th.Property(
            "api_url",
            th.StringType,
            default="https://pi.pardot.com",
            title="API URL",
            description="Pardot API host: https://pi.pardot.com for production business units, "
            "https://pi.demo.pardot.com for sandbox, developer and demo business units.",
        ),
        th.Property(
            "api_version",
            th.IntegerType,
            default=4,
            allowed_values=[3, 4],
            title="API version",
            description="Export API version: 4 for business units that allow several prospects with the "
            "same email, else 3. The tap switches once if Pardot answers error 88 or 89.",
        ),
        th.Property(
            "business_unit_id",
            th.StringType,
            title="Business unit ID",
            description="The Pardot business unit id (18 characters, starts with 0Uv): Salesforce Setup > "
            "Account Engagement > Business Unit Setup. Sent as the Pardot-Business-Unit-Id header.",
        ),
        th.Property(
            "access_token",
            th.StringType,
            secret=True,
            title="Access token",
            description="A Salesforce OAuth access token with the pardot_api scope. Use instead of "
            "client_id/client_secret/refresh_token for short runs: it cannot be refreshed.",
        ),
        th.Property(
            "client_id", th.StringType, secret=True, title="Client ID", description="The connected app's consumer key."
        ),
        th.Property(
            "client_secret",
            th.StringType,
            secret=True,
            title="Client secret",
            description="The connected app's consumer secret.",
        ),
        th.Property(
            "refresh_token",
            th.StringType,
            secret=True,
            title="Refresh token",
            description="An OAuth refresh token for the API user. Without it, client_id and client_secret "
            "are used with the client-credentials grant (My Domain login_url needed).",
        ),
        th.Property(
            "login_url",
            th.StringType,
            default="https://login.salesforce.com",
            title="Login URL",
            description="Salesforce login host; the token endpoint is {login_url}/services/oauth2/token. "
            "https://test.salesforce.com for Salesforce sandboxes, or your My Domain.",
        ),
        th.Property(
            "start_date",
            th.DateTimeType,
            required=True,
            title="Start date",
            description="Earliest record time to sync, inclusive (ISO 8601; a date means midnight UTC).",
        ),
        th.Property(
            "end_date",
            th.DateTimeType,
            title="End date",
            description="Latest record time to sync, exclusive (ISO 8601). Default: now.",
        ),
        th.Property(
            "timezone",
            th.StringType,
            title="Time zone",
            description="IANA time zone of the Pardot API user (e.g. America/New_York): the export CSVs "
            "write datetimes in it, without offset. If unset, the tap infers the offset from each export's "
            "createdAt and warns; set it to get daylight saving right.",
        ),
        th.Property(
            "window_days",
            th.NumberType,
            default=30,
            title="Window size (days)",
            description="Length of the time window of one export, at most 365. Smaller windows mean more "
            "exports but smaller files and finer checkpoints.",
        ),
        th.Property(
            "poll_interval",
            th.NumberType,
            default=1,
            title="Poll interval (seconds)",
            description="Seconds before the first status read of an export; each later wait doubles.",
        ),
        th.Property(
            "max_poll_interval",
            th.NumberType,
            default=60,
            title="Max poll interval (seconds)",
            description="The cap on the wait between two status reads of an export.",
        ),
        th.Property(
            "export_timeout",
            th.NumberType,
            default=21600,
            title="Export timeout (seconds)",
            description="How long one export may stay Waiting/Processing before the tap cancels it and fails "
            "with its id (default 6 hours).",
        ),
        th.Property(
            "max_concurrency",
            th.IntegerType,
            default=2,
            title="Max concurrent requests",
            description="Requests in flight at once (downloads included). Pardot allows 5 per business "
            "unit, shared with every other integration: keep this below 5.",
        ),
        th.Property(
            "max_retries",
            th.IntegerType,
            default=8,
            title="Max retries",
            description="Retries of one request on 5xx, timeouts, resets and error 66, with exponential "
            "backoff and jitter.",
        ),
        th.Property(
            "request_timeout",
            th.NumberType,
            default=300,
            title="Request timeout (seconds)",
            description="Timeout of one HTTP request (connect and each read).",
        ),
        th.Property(
            "max_api_calls",
            th.IntegerType,
            title="Max API calls per run",
            description="Stop cleanly, with resumable state, before spending more API calls than this in "
            "one run. Default: no cap (Pardot's daily limit still applies).",
        ),
        th.Property(
            "custom_fields",
            th.ObjectType(additional_properties=th.ArrayType(th.StringType)),
            title="Custom fields",
            description='Account-specific fields to export, per stream, as strings: e.g. {"prospect": '
            '["Favorite_Color"]}. Use the field API names.',
        ),
        th.Property(
            "stream_options",
            th.ObjectType(additional_properties=th.ObjectType()),
            title="Stream options",
            description='Per stream: "procedure" (e.g. filter_by_created_at), "arguments" (extra procedure '
            'arguments, e.g. {"deleted": "all"} or {"type": [1, 2]}) and "window_days".',
        ),
    ).to_dict()


class TapPardotExport(Tap):
    """Singer tap for the Account Engagement (Pardot) Export API."""

    name = "tap-pardot-export"
    config_jsonschema = settings_schema()
    message_writer_class = MsgSpecWriter

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        self._client: PardotClient | None = None
        self._runner: ExportRunner | None = None
        self._warned_tz = False
        self._lock = threading.Lock()
        self._run_end: dt.datetime | None = None
        install_redaction(self._known_secrets)  # before the SDK validates (and may print) the config
        super().__init__(*args, **kwargs)

    def _known_secrets(self) -> list[str]:
        """The configured secrets and every token issued so far (for the redaction filter)."""
        config = self.__dict__.get("_config") or {}
        client = self.__dict__.get("_client")
        return secrets_from_config(config) + (client.tokens.secrets() if client is not None else [])

    # -- settings ------------------------------------------------------------------------

    def custom_fields_for(self, stream: str) -> list[str]:
        value = (self.config.get("custom_fields") or {}).get(stream) or []
        return [str(v) for v in value]

    @property
    def zone(self) -> dt.tzinfo | None:
        name = self.config.get("timezone")
        return ZoneInfo(name) if name else None

    @property
    def run_end(self) -> dt.datetime:
        """The exclusive end of this run's range: end_date, or now (fixed once per run)."""
        if self._run_end is None:
            if self.config.get("end_date"):
                self._run_end = parse_setting_datetime(self.config["end_date"])
            else:
                self._run_end = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        return self._run_end

    def check_settings(self) -> None:
        """Validate settings a sync needs; each error names the setting and the fix."""
        cfg = self.config
        errors: list[str] = []
        try:
            start = parse_setting_datetime(str(cfg.get("start_date", "")))
        except ValueError:
            errors.append(f"start_date {cfg.get('start_date')!r} is not an ISO 8601 date or datetime (e.g. 2024-01-01)")
            start = None
        end = None
        if cfg.get("end_date"):
            try:
                end = parse_setting_datetime(str(cfg["end_date"]))
            except ValueError:
                errors.append(f"end_date {cfg.get('end_date')!r} is not an ISO 8601 date or datetime")
        if start and end and end <= start:
            errors.append(f"end_date ({cfg['end_date']}) must be after start_date ({cfg['start_date']})")
        if cfg.get("timezone"):
            try:
                ZoneInfo(str(cfg["timezone"]))
            except (ZoneInfoNotFoundError, ValueError):
                errors.append(
                    f"timezone {cfg['timezone']!r} is not an IANA time zone name (e.g. America/New_York, Europe/Paris)"
                )
        if not cfg.get("business_unit_id"):
            errors.append("business_unit_id is required: the 18-character id starting 0Uv (Business Unit Setup)")
        elif not BU_PATTERN.match(str(cfg["business_unit_id"])):
            errors.append("business_unit_id is malformed: 18 characters starting with 0Uv")
        has_oauth = cfg.get("client_id") and cfg.get("client_secret")
        if not cfg.get("access_token") and not has_oauth:
            errors.append("credentials are missing: set access_token, or client_id + client_secret + refresh_token")
        for key in ("api_url", "login_url"):
            v = str(cfg.get(key) or "")
            if v and not re.match(r"^https?://[^/\s]+", v):
                errors.append(f"{key} {v!r} is not an http(s) URL")
        window = float(cfg.get("window_days", 30))
        if not 0 < window <= 365:
            errors.append(f"window_days {window:g} must be more than 0 and at most 365 (the API's limit)")
        for key in ("max_concurrency", "max_retries"):
            if int(cfg.get(key, 1)) < (1 if key == "max_concurrency" else 0):
                errors.append(f"{key} must be at least {1 if key == 'max_concurrency' else 0}")
        errors.extend(self._check_stream_options())
        if errors:
            raise ConfigValidationError("Invalid settings", errors=errors)

    def _check_stream_options(self) -> list[str]:
        errors: list[str] = []
        by_name = {str(s.name): s for s in STREAM_TYPES}  # type: ignore[misc]
        for key in self.config.get("custom_fields") or {}:
            if key not in by_name:
                errors.append(f"custom_fields: unknown stream {key!r}; streams: {', '.join(STREAM_NAMES)}")
        for stream, opts in (self.config.get("stream_options") or {}).items():
            if stream not in by_name:
                errors.append(f"stream_options: unknown stream {stream!r}; streams: {', '.join(STREAM_NAMES)}")
                continue
            cls = by_name[stream]
            if not isinstance(opts, dict):
                errors.append(f"stream_options.{stream} must be an object")
                continue
            for k in opts:
                if k not in STREAM_OPTION_KEYS:
                    errors.append(
                        f"stream_options.{stream}: unknown option {k!r}; options: {', '.join(STREAM_OPTION_KEYS)}"
                    )
            proc = opts.get("procedure", cls.default_procedure)
            if proc not in cls.procedures:
                errors.append(
                    f"stream_options.{stream}.procedure {proc!r} is not a procedure of {cls.object_name}; "
                    f"use one of {', '.join(cls.procedures)}"
                )
                continue
            args = opts.get("arguments") or {}
            if not isinstance(args, dict):
                errors.append(f"stream_options.{stream}.arguments must be an object")
                continue
            after, before, _ = cls.procedures[proc]
            allowed = cls.extra_arguments.get(proc, ())
            for a in args:
                if a in (after, before):
                    errors.append(
                        f"stream_options.{stream}.arguments.{a}: the tap sets the time bounds itself "
                        "(use start_date/end_date)"
                    )
                elif a not in allowed:
                    errors.append(
                        f"stream_options.{stream}.arguments: {a!r} is not an argument of {proc}; "
                        f"allowed: {', '.join(allowed) or 'none'}"
                    )
            if "window_days" in opts:
                try:
                    w = float(opts["window_days"])
                except (TypeError, ValueError):
                    w = -1
                if not 0 < w <= 365:
                    errors.append(f"stream_options.{stream}.window_days must be more than 0 and at most 365")
        return errors

    def _check_field_counts(self) -> list[str]:
        errors = []
        for stream in self.streams.values():
            if isinstance(stream, PardotExportStream) and stream.selected:
                n = len(stream.requested_fields())
                if n > MAX_FIELDS:
                    errors.append(
                        f"stream {stream.name}: {n} fields are selected, but an export takes at most "
                        f"{MAX_FIELDS}. Deselect {n - MAX_FIELDS} field(s) in the catalog (or fewer custom_fields)."
                    )
        return errors

    def warn_no_timezone(self, offset: dt.timedelta | None) -> None:
        with self._lock:
            if self._warned_tz:
                return
            self._warned_tz = True
        if offset is None:
            self.logger.warning(
                "timezone is not set and could not be inferred: CSV datetimes are read as UTC. Set timezone "
                "to the Pardot API user's time zone."
            )
        else:
            hours = offset.total_seconds() / 3600
            self.logger.warning(
                "timezone is not set: inferred the API user's UTC offset as %+g h from the export's createdAt. "
                "Set timezone (an IANA name) so daylight-saving changes inside the range are handled.",
                hours,
            )

    # -- shared machinery ------------------------------------------------------------------

    @property
    def client(self) -> PardotClient:
        """The run's one HTTP client; built at the first API call, after the last checks."""
        with self._lock:
            if self._client is None:
                errors = self._check_field_counts()
                if errors:
                    raise ConfigValidationError("Too many fields", errors=errors)
                cfg = self.config
                self.logger.info(
                    "Syncing from %s (API version %s, business unit %s)",
                    host_of(str(cfg.get("api_url") or "https://pi.pardot.com")),
                    cfg.get("api_version", 4),
                    cfg.get("business_unit_id"),
                )
                client = build_client(cfg, self.logger)
                self._client = client
            return self._client

    @property
    def runner(self) -> ExportRunner:
        if self._runner is None:
            cfg = self.config
            self._runner = ExportRunner(
                self.client,
                poll_interval=float(cfg.get("poll_interval", 1)),
                max_poll_interval=float(cfg.get("max_poll_interval", 60)),
                export_timeout=float(cfg.get("export_timeout", 21600)),
                logger=self.logger,
            )
        return self._runner

    @override
    def discover_streams(self) -> list[PardotExportStream]:
        """The six streams, with the account's own fields when credentials allow (see account.py)."""
        streams = [cls(self) for cls in STREAM_TYPES]
        learn_account_fields(self, streams)
        return streams

    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """The schema's checks, then ours: each names the setting and says what to do."""
        errors = super()._validate_config(raise_errors=raise_errors)
        if raise_errors:
            self.check_settings()
        return errors

    @override
    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        """On SIGINT/SIGTERM: cancel the export in flight (so the account's queue is not blocked),
        emit the state, and exit non-zero: the sync did not finish."""
        runner = self._runner
        if runner is not None:
            runner.stop()
            if runner.active is not None and not runner.active_complete:
                self.logger.warning("Interrupted: canceling export %s, which this run cannot finish", runner.active)
                runner.cancel(runner.active, "interrupted")
        try:
            self._state_writer.write_state(self.state)
        finally:
            self.logger.warning("Interrupted by signal %s; state emitted, rerun to resume", signum)
            sys.exit(128 + signum)

    @classmethod
    @override
    def get_singer_command(cls) -> t.Any:
        command = super().get_singer_command()
        command.params.append(check_option(cls))
        command.excepthook = _user_facing_excepthook(cls.logger)  # type: ignore[attr-defined]
        return command


def _user_facing_excepthook(logger: logging.Logger) -> t.Callable[..., None]:
    """User-facing errors are logged as their message, without a stack trace."""

    def hook(exc_type: type[BaseException], exc_value: BaseException, exc_traceback: TracebackType | None) -> None:
        if isinstance(exc_value, ConfigValidationError):
            for error in exc_value.errors or [str(exc_value)]:
                logger.error("Config error: %s", error)
            return
        if isinstance(exc_value, (PardotAPIError, PardotConfigError)):
            logger.error("%s", exc_value)
            return
        logger.error(
            "%s",
            exc_value.args[0] if exc_value.args else exc_type.__name__,
            exc_info=(exc_type, exc_value, exc_traceback),
        )

    return hook


logging.getLogger("urllib3").setLevel(logging.WARNING)

if __name__ == "__main__":
    TapPardotExport.cli()
