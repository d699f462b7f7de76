"""tap-pardot-export: the Tap class, its settings and their validation."""

from __future__ import annotations

import datetime as dt
import io
import logging
import sys
import threading
import typing as t
from zoneinfo import ZoneInfo

from singer_sdk import Tap
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.exceptions import ConfigValidationError
from typing_extensions import override

from tap_pardot_export import settings
from tap_pardot_export.account import learn_account_fields
from tap_pardot_export.auth import install_redaction, secrets_from_config
from tap_pardot_export.check import check_option
from tap_pardot_export.client import PardotClient, build_client, host_of
from tap_pardot_export.errors import PardotAPIError, PardotConfigError
from tap_pardot_export.exports import ExportRunner
from tap_pardot_export.settings import settings_schema
from tap_pardot_export.streams import STREAM_TYPES, PardotExportStream

if t.TYPE_CHECKING:
    from types import FrameType, TracebackType

MAX_FIELDS = 150


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
        """The exclusive end of this run's range (fixed once per run): see :func:`settings.run_end`."""
        if self._run_end is None:
            self._run_end = settings.run_end(self.config, dt.datetime.now(dt.timezone.utc), self.logger)
        return self._run_end

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
        """The schema's checks, then the cross-field ones: one line each, naming the setting.

        Replaces the SDK's check so that messages are clear and never echo a secret's value.
        Discovery (``raise_errors=False``) needs no valid settings: it only logs at debug level.
        """
        schema = self.config_jsonschema
        self.append_builtin_config(schema)
        errors = settings.validate(self._config, schema)
        if errors and raise_errors:
            raise ConfigValidationError("Config validation failed", errors=errors)
        for error in errors:
            self.logger.debug("Setting not valid for a sync: %s", error)
        return errors

    @override
    def load_state(self, state: dict[str, t.Any]) -> None:
        """Refuse a corrupted state with a message that says how to start over."""
        errors = settings.state_errors(state, dt.datetime.now(dt.timezone.utc))
        if errors:
            msg = f"The state is corrupted: {'; '.join(errors)}. {settings.START_OVER}"
            raise PardotConfigError(msg)
        super().load_state(state)

    @classmethod
    @override
    def invoke(  # type: ignore[override]
        cls,
        *,
        about: bool = False,
        about_format: str | None = None,
        config: t.Any = None,
        state: t.IO[str] | None = None,
        catalog: t.IO[str] | None = None,
    ) -> None:
        """The SDK's CLI entry, with a state file that is not JSON refused clearly."""
        if state is not None:
            text = state.read()
            try:
                settings.parse_state(text)
            except PardotConfigError as exc:
                cls.logger.error("%s", exc)
                raise SystemExit(1) from None
            state = io.StringIO(text)
        super().invoke(about=about, about_format=about_format, config=config, state=state, catalog=catalog)

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
