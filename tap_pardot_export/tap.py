"""tap-pardot-export: the Tap class, the Singer side's entry point.

Settings are checked by :mod:`~tap_pardot_export.settings` and read once into
:attr:`TapPardotExport.settings`; the streams are made from :data:`~tap_pardot_export.spec.SPECS`;
the run's exports go through the session (:mod:`~tap_pardot_export.session`); signals are
handled by :mod:`~tap_pardot_export.signals`.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import typing as t

import click
from singer_sdk import Tap
from singer_sdk.exceptions import ConfigValidationError
from typing_extensions import override

from tap_pardot_export.cli import (
    MELTANO_DISCOVERY_NOTE,
    NOT_JSON_HINT,
    check_option,
    discovery_before_a_sync,
    guard_callbacks,
    json_file,
    queue_options,
    refuse_settings,
    user_facing_excepthook,
)
from tap_pardot_export.discovery import learn_account_fields
from tap_pardot_export.engine.queryread import QueryReader, chain_count
from tap_pardot_export.engine.state import corrupted, parse_state, state_errors
from tap_pardot_export.errors import PardotConfigError
from tap_pardot_export.pardot.v5 import V5Reader
from tap_pardot_export.query_streams import QueryStream
from tap_pardot_export.redact import install_redaction, secrets_from_config
from tap_pardot_export.sdk_compat import StateMessage, TapHooks, install_excepthook, raw_config
from tap_pardot_export.session import ENDS_THE_RUN, SessionProvider, StreamFailures, open_session
from tap_pardot_export.settings.checks import run_end, validate
from tap_pardot_export.settings.config import Settings
from tap_pardot_export.settings.schema import settings_schema
from tap_pardot_export.signals import SHUTDOWN, LineSafeWriter
from tap_pardot_export.spec import SPECS
from tap_pardot_export.streams import ExportStream

if t.TYPE_CHECKING:
    from singer_sdk import Stream

    from tap_pardot_export.engine.session import ExportSession

#: the stream class of each kind of spec
STREAM_KINDS: dict[str, type[ExportStream | QueryStream]] = {"export": ExportStream, "query": QueryStream}


#: versions looked up once per process (the installed packages do not change under a running tap)
_VERSIONS: dict[str, str] = {}


def _version(key: str, lookup: t.Callable[[], str]) -> str:
    if key not in _VERSIONS:
        _VERSIONS[key] = lookup()
    return _VERSIONS[key]


class TapPardotExport(TapHooks):
    """Singer tap for the Account Engagement (Pardot) Export API."""

    name = "tap-pardot-export"
    config_jsonschema = settings_schema()
    message_writer_class = LineSafeWriter

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        """The SDK's tap, with secrets redacted from every log line and signals handled (signals.py)."""
        self.sessions = SessionProvider(self._open_session, self._write_state)
        self.failures = StreamFailures()
        self._run_end: dt.datetime | None = None
        self._sync_begun = False
        #: the run's reads of the v5 query API, beside the exports (started with the session)
        self.queries: QueryReader | None = None
        install_redaction(self._known_secrets)  # before the SDK validates (and may print) the config
        super().__init__(*args, **kwargs)  # installs the signal handlers first (install_signal_handlers)

    @override
    def install_signal_handlers(self) -> None:
        """The tap's own shutdown, for every phase of the process: discovery included (signals.py)."""
        SHUTDOWN.install(self)

    def _known_secrets(self) -> list[str]:
        """The configured secrets and every token issued so far (for the redaction filter)."""
        session = self.sessions.current
        tokens = session.client.tokens.secrets() if session is not None else []
        return secrets_from_config(raw_config(self)) + tokens

    # -- settings ------------------------------------------------------------------------

    @override
    def validate_settings(self, config: dict[str, t.Any], schema: dict[str, t.Any], *, complete: bool) -> list[str]:
        """The schema's checks, then the cross-field ones: one line each, naming the setting."""
        return validate(config, schema, complete=complete)

    @functools.cached_property
    def settings(self) -> Settings:
        """The settings, read once from the validated config."""
        return Settings.from_config(self.config)

    @property
    def run_end(self) -> dt.datetime:
        """The exclusive end of this run's range (fixed once per run): see :func:`settings.checks.run_end`."""
        if self._run_end is None:
            s = self.settings
            self._run_end = run_end(s.end_date, s.safety_lag, dt.datetime.now(dt.timezone.utc), self.logger)
        return self._run_end

    @override
    def load_state(self, state: dict[str, t.Any]) -> None:
        """Refuse a corrupted state with a message that says how to start over."""
        errors = state_errors(state, dt.datetime.now(dt.timezone.utc))
        if errors:
            raise corrupted(errors)
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
        """The SDK's CLI entry, with a state or catalog file that is not JSON refused clearly.

        ``--about`` with a config refuses a wrong value as discovery does (alone it needs none).
        The state and catalog files are read once: the SDK's entry (:meth:`Tap.invoke`, whose steps
        this follows) would parse each again, and a catalog of every stream is large.
        """
        if about and config is not None and (config.config or config.parse_env):
            cls(config=config.config, parse_env_config=config.parse_env, validate_config=False, setup_mapper=False)
        state_dict = None
        if state is not None:
            try:
                state_dict = parse_state(state.read())
            except PardotConfigError as exc:
                cls.logger.error("%s", exc)  # noqa: TRY400 - a user's mistake: the message, no traceback
                raise SystemExit(1) from None
        catalog_dict = None if catalog is None else json_file(catalog.read(), "--catalog", cls.logger)
        super(Tap, cls).invoke(about=about, about_format=about_format)  # --about; the plugin's entry
        cls.print_version(print_fn=cls.logger.info)
        tap = cls(
            config=None if config is None else config.config,
            state=state_dict,
            catalog=catalog_dict,
            parse_env_config=config is not None and config.parse_env,
            validate_config=True,
        )
        tap.sync_all()

    @classmethod
    @override
    def get_plugin_version(cls) -> str:
        """The package's version, looked up once per process (a scan of the installed packages each time)."""
        return _version("plugin", super().get_plugin_version)

    @classmethod
    @override
    def get_sdk_version(cls) -> str:
        """The SDK's version, looked up once per process."""
        return _version("sdk", super().get_sdk_version)

    # -- the run ----------------------------------------------------------------------------

    def _open_session(self) -> ExportSession:
        """The run's session, opened at the first stream synced (discovery opens none); the query reads start."""
        session = open_session(
            self.settings, run_end=self.run_end, logger=self.logger, next_stream=self._next_export, state=self.state
        )
        self._start_queries(session)
        return session

    def _start_queries(self, session: ExportSession) -> None:
        """Read every selected query stream from now on, in the order the run syncs them, beside the exports."""
        selected = [s for s in self.streams.values() if s.selected]
        queries = [s for s in selected if isinstance(s, QueryStream)]
        if not queries:
            return
        chains = chain_count(self.settings.connection.max_concurrency)
        reader = QueryReader(
            V5Reader(session.client, self.logger),
            session.spool_dir or ".",
            workers=chains,
            halts=ENDS_THE_RUN,
            logger=self.logger,
        )
        for stream in queries:
            stream.read = reader.add(stream.plan(session, chains))
        self.queries = reader
        reader.start()
        self.logger.info(
            "Reading %d query stream(s) with %d page chain(s) at a time, beside the exports: %s",
            len(queries),
            chains,
            ", ".join(s.name for s in queries),
        )

    def _write_state(self, state: t.Any) -> None:
        self.state_writer.write_state(state)

    @override
    def sync_ended(self) -> None:
        """Stop the query reads, whether the sync returned or raised (nothing is left to read for)."""
        if self.queries is not None:
            self.queries.stop()

    @override
    def after_sync_all(self) -> None:
        """The run's totals, its daily allowance, and whether the call budget stopped it; then failed streams.

        When streams failed, the error naming them is the run's last line (exit 1).
        """
        session = self.sessions.current
        if session is not None:
            allowance, stopped = session.allowance_line(), session.stop_line()
            if allowance:
                self.logger.info("%s", allowance)
            self.logger.info("%s", session.totals())
            if stopped:
                self.logger.warning("%s", stopped)
        self.failures.raise_if_any()

    def _next_export(self, name: str) -> ExportStream | None:
        """The selected export stream the SDK syncs after ``name`` (it syncs them in this order), if any."""
        names = list(self.streams)
        later = names[names.index(name) + 1 :] if name in names else []
        following = (self.streams[n] for n in later)
        return next((s for s in following if isinstance(s, ExportStream) and s.selected), None)

    def cancel_in_flight(self, timeout: float) -> str:
        """On a signal (watchdog thread): stop the query reads; cancel the exports in flight, if any."""
        if self.queries is not None:
            self.queries.stop()
        session = self.sessions.current
        return session.cancel_in_flight(timeout) if session is not None else "no export in flight"

    def emit_state(self) -> bool:
        """On a signal (main thread, at a line boundary): write the whole state; False before the sync began."""
        if not self._sync_begun:
            return False
        self.write_message(StateMessage(value=self.state))
        return True

    @override
    def before_sync_all(self) -> None:
        """From now on a signal writes the state (before, the state the run was given stands)."""
        self._sync_begun = True

    def cleanup(self) -> None:
        """Before a forced exit: remove the run's downloaded files."""
        session = self.sessions.current
        if session is not None:
            session.cleanup()

    @override
    def discover_streams(self) -> list[Stream]:
        """A stream per spec, of its kind's class, with the account's own fields when credentials allow."""
        settings, kinds, sessions, failures = self.settings, STREAM_KINDS, self.sessions, self.failures
        streams: list[Stream] = [kinds[spec.kind](self, spec, settings, sessions, failures) for spec in SPECS.values()]
        learn_account_fields(self, settings, streams)
        return streams

    @classmethod
    @override
    def cb_discover(cls, ctx: click.Context, param: click.Option, value: bool) -> None:
        """Discovery, its settings refused as every entry point refuses them (the SDK's own catch words it otherwise).

        It needs no setting: only a value that is wrong stops it (``validate_config=False``).
        """
        del param
        if not value:
            return
        config = ctx.params.get("config")
        settings, parse_env = getattr(config, "config", None) or {}, bool(getattr(config, "parse_env", False))
        try:
            tap = cls(config=settings, parse_env_config=parse_env, validate_config=False, setup_mapper=False)
        except ConfigValidationError as exc:
            if not discovery_before_a_sync():
                raise
            refuse_settings(cls.logger, exc.errors or [str(exc)], MELTANO_DISCOVERY_NOTE)
            tap = cls(config={}, parse_env_config=False, validate_config=False, setup_mapper=False)
        tap.run_discovery()
        ctx.exit()

    @classmethod
    @override
    def cb_config(cls, ctx: click.Context, param: click.Option, value: tuple[str, ...]) -> t.Any:
        """The SDK's reading of ``--config`` files: one not JSON, or not there, is named, not a traceback."""
        try:
            return super().cb_config(ctx, param, value)
        except OSError as exc:  # missing, a folder, not readable
            msg = f"a --config file cannot be read ({str(exc).rstrip('.')}). Check the path."
            raise click.BadParameter(msg, ctx=ctx, param=param) from None
        except ValueError as exc:
            if type(exc).__name__ != "JSONDecodeError":
                raise
            msg = f"a --config file is not valid JSON ({exc}). {NOT_JSON_HINT}"
            raise click.BadParameter(msg, ctx=ctx, param=param) from None

    @classmethod
    @override
    def get_singer_command(cls) -> t.Any:
        """The SDK's command with ``--check``, ``--list-exports`` and ``--cancel-exports``; errors as messages."""
        command = super().get_singer_command()
        command.params += [check_option(cls), *queue_options(cls)]
        guard_callbacks(command, cls.logger)
        return install_excepthook(command, user_facing_excepthook(cls.logger))


logging.getLogger("urllib3").setLevel(logging.WARNING)
# a head cut short (by a deadline, or a broken server) is logged there as a warning with a traceback;
# the tap reports the request's failure itself
logging.getLogger("urllib3.connection").setLevel(logging.ERROR)
