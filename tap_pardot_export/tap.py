"""tap-pardot-export: the Tap class. Settings live in settings.py, the run in session.py/sync.py."""

from __future__ import annotations

import atexit
import datetime as dt
import io
import json
import logging
import shutil
import tempfile
import typing as t

import click
from singer_sdk.exceptions import ConfigValidationError
from typing_extensions import override

from tap_pardot_export import settings
from tap_pardot_export.account import learn_account_fields
from tap_pardot_export.auth import install_redaction, secrets_from_config
from tap_pardot_export.check import check_option
from tap_pardot_export.client import build_client
from tap_pardot_export.errors import PardotAPIError, PardotConfigError
from tap_pardot_export.exports import ExportRunner
from tap_pardot_export.sdk_compat import StateMessage, TapHooks, install_excepthook, raw_config
from tap_pardot_export.session import ExportSession, SessionProvider, ZonePolicy
from tap_pardot_export.settings import settings_schema
from tap_pardot_export.signals import SHUTDOWN, LineSafeWriter
from tap_pardot_export.streams import STREAM_TYPES, PardotExportStream

if t.TYPE_CHECKING:
    from collections.abc import Mapping
    from types import TracebackType


class TapPardotExport(TapHooks):
    """Singer tap for the Account Engagement (Pardot) Export API."""

    name = "tap-pardot-export"
    config_jsonschema = settings_schema()
    message_writer_class = LineSafeWriter

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        """The SDK's tap, with secrets redacted from every log line and signals handled (signals.py)."""
        self.sessions = SessionProvider(self._open_session)
        self._run_end: dt.datetime | None = None
        install_redaction(self._known_secrets)  # before the SDK validates (and may print) the config
        super().__init__(*args, **kwargs)
        SHUTDOWN.install(self)

    def _known_secrets(self) -> list[str]:
        """The configured secrets and every token issued so far (for the redaction filter)."""
        session = self.sessions.current
        tokens = session.client.tokens.secrets() if session is not None else []
        return secrets_from_config(raw_config(self)) + tokens

    # -- settings ------------------------------------------------------------------------

    @override
    def validate_settings(self, config: dict[str, t.Any], schema: dict[str, t.Any]) -> list[str]:
        """The schema's checks, then the cross-field ones: one line each, naming the setting."""
        return settings.validate(config, schema)

    @property
    def run_end(self) -> dt.datetime:
        """The exclusive end of this run's range (fixed once per run): see :func:`settings.run_end`."""
        if self._run_end is None:
            self._run_end = settings.run_end(self.config, dt.datetime.now(dt.timezone.utc), self.logger)
        return self._run_end

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
                cls.logger.error("%s", exc)  # noqa: TRY400 - a user's mistake: the message, no traceback
                raise SystemExit(1) from None
            state = io.StringIO(text)
        if catalog is not None:
            catalog = io.StringIO(_json_file(catalog.read(), "--catalog", cls.logger))
        super().invoke(about=about, about_format=about_format, config=config, state=state, catalog=catalog)

    # -- the run ----------------------------------------------------------------------------

    def _open_session(self) -> ExportSession:
        """The run's export session, opened at the first export (discovery opens none)."""
        cfg: Mapping[str, t.Any] = self.config
        policy = settings.timezone_policy(cfg)
        client = build_client(cfg, self.logger)
        spool = tempfile.mkdtemp(prefix="tap-pardot-export-")
        atexit.register(shutil.rmtree, spool, ignore_errors=True)
        runner = ExportRunner(
            client,
            poll_interval=float(cfg.get("poll_interval", 1)),
            max_poll_interval=float(cfg.get("max_poll_interval", 60)),
            export_timeout=float(cfg.get("export_timeout", 21600)),
            spool_dir=spool,
            logger=self.logger,
        )
        return ExportSession(
            client=client,
            runner=runner,
            zones=ZonePolicy(policy.zone, self.logger),
            run_end=self.run_end,
            state_writer=self.state_writer,
            logger=self.logger,
            spool_dir=spool,
            max_ahead=int(cfg.get("max_queued_exports", 1)),
            next_stream=self._next_selected,
        )

    @override
    def after_sync_all(self) -> None:
        """The run's totals as its last log line."""
        session = self.sessions.current
        if session is not None:
            self.logger.info("%s", session.totals())

    def _next_selected(self, name: str) -> PardotExportStream | None:
        """The selected stream the SDK syncs after ``name`` (it syncs them in this order), if any."""
        names = list(self.streams)
        later = names[names.index(name) + 1 :] if name in names else []
        return next((s for n in later if (s := t.cast("PardotExportStream", self.streams[n])).selected), None)

    def cancel_in_flight(self, timeout: float) -> str:
        """On a signal (watchdog thread): cancel the export in flight, if any."""
        session = self.sessions.current
        return session.cancel_in_flight(timeout) if session is not None else "no export in flight"

    def emit_state(self) -> None:
        """On a signal (main thread, at a line boundary): write the whole state."""
        self.write_message(StateMessage(value=self.state))

    def cleanup(self) -> None:
        """Before a forced exit: remove the run's downloaded files."""
        session = self.sessions.current
        if session is not None:
            session.cleanup()

    @override
    def discover_streams(self) -> list[PardotExportStream]:
        """The six streams, with the account's own fields when credentials allow (see account.py)."""
        streams = [cls(self, self.sessions) for cls in STREAM_TYPES]
        learn_account_fields(self, streams)
        return streams

    @classmethod
    @override
    def cb_config(cls, ctx: click.Context, param: click.Option, value: tuple[str, ...]) -> t.Any:
        """The SDK's reading of ``--config`` files, with a file that is not JSON named, not a traceback."""
        try:
            return super().cb_config(ctx, param, value)
        except ValueError as exc:
            if type(exc).__name__ != "JSONDecodeError":
                raise
            msg = f"a --config file is not valid JSON ({exc}). {NOT_JSON_HINT}"
            raise click.BadParameter(msg, ctx=ctx, param=param) from None

    @classmethod
    @override
    def get_singer_command(cls) -> t.Any:
        """The SDK's command with ``--check``, logging user-facing errors without a traceback."""
        command = super().get_singer_command()
        command.params.append(check_option(cls))
        return install_excepthook(command, _user_facing_excepthook(cls.logger))


NOT_JSON_HINT = "Fix the file (NaN and Infinity, which Python's json module writes, are not JSON either)."


def _json_file(text: str, option: str, logger: logging.Logger) -> str:
    """``text`` when it is JSON; else the error naming ``option`` is logged and the run ends (exit 1)."""
    try:
        json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        logger.error("The %s file is not valid JSON (%s). %s", option, exc, NOT_JSON_HINT)  # noqa: TRY400 - no traceback
        raise SystemExit(1) from None
    return text


def _no_constant(name: str) -> t.NoReturn:
    raise ValueError(f"{name} is not JSON")


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
