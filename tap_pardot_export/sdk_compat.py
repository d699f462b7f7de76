"""The one door to singer-sdk internals: every private SDK name the tap relies on is here.

Public names are used wherever singer-sdk 0.54 has them (``Tap.state_writer``,
``Tap.write_message``, ``Stream.state_manager``, ``singer_sdk.helpers.conform``). What is
left is private: two stream hooks the tap overrides (the fast RECORD path and per-window
bookmarks), the config-validation hook and the config dict it fills in, two state helpers,
and the CLI's exception hook.
:data:`CONTRACT` lists each with the parameters the tap passes or receives;
``tests/sdk/test_sdk_compat.py`` checks them against the installed SDK and names the symbol that
an SDK release changed or removed.
"""

from __future__ import annotations

import typing as t

from singer_sdk import Stream, Tap
from singer_sdk.exceptions import (
    AbortedSyncFailedException,
    AbortedSyncPausedException,
    ConfigValidationError,
    MaxRecordsLimitException,
)
from singer_sdk.helpers._batch import BaseBatchFileEncoding, BatchConfig  # no public home in 0.54
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.plugin_base import SingerCommand
from singer_sdk.singerlib import StateMessage
from typing_extensions import override

if t.TYPE_CHECKING:
    from collections.abc import Callable, Generator

    # no public home in 0.54; type-only
    from singer_sdk.helpers.types import Context

__all__ = [
    "CONTRACT",
    "PRIVATE_MODULES",
    "BaseBatchFileEncoding",
    "BatchConfig",
    "ExportStreamHooks",
    "StateMessage",
    "TapHooks",
    "TypeConformanceLevel",
    "finalize_stream_state",
    "install_excepthook",
    "mark_state_flushed",
    "raw_config",
    "write_starting_replication_value",
]

#: private SDK modules the tap imports from
PRIVATE_MODULES = ("singer_sdk.helpers._batch",)

#: (owner, attribute, parameters the tap relies on, in order; ``self`` left out)
CONTRACT: tuple[tuple[type, str, tuple[str, ...]], ...] = (
    (Stream, "_sync_records", ("context", "write_messages")),
    (Stream, "_increment_stream_state", ("latest_record", "context")),
    (Stream, "_write_starting_replication_value", ("context",)),
    (Stream, "_finalize_state", ("state",)),
    (Tap, "_validate_config", ("raise_errors",)),
    (Tap, "append_builtin_config", ("config_jsonschema",)),
    (Tap, "load_state", ("state",)),
    (Tap, "sync_all", ()),  # marked final in the SDK: extended (see TapHooks), never replaced
    (Tap, "_setup_signal_handlers", ()),
    (Stream, "sync", ("context",)),  # marked final in the SDK: extended (see ExportStreamHooks), never replaced
    (SingerCommand, "excepthook", ("exc_type", "exc_value", "exc_traceback")),
    # public names the tap builds on, checked too
    (Tap, "write_message", ("message",)),
    (Tap, "state_writer", ()),
    (Stream, "state_manager", ()),
    (Stream, "tap_state", ()),
    (Stream, "get_context_state", ("context",)),
    (Stream, "emit_activate_version_messages", ()),
)


class ExportStreamHooks(Stream):
    """A stream whose bookmarks move per finished window and whose records may skip the SDK.

    Subclasses implement :meth:`write_records_fast`.
    """

    def fast_path_ok(self, write_messages: bool) -> bool:  # noqa: FBT001 - mirrors the SDK's _sync_records
        """True when records can be written straight from the typed rows, without the SDK's per-record machinery.

        That is: no stream maps or flattening, no record limit (as in ``--test``), no
        ACTIVATE_VERSION stamping. Otherwise the SDK's general path runs.
        """
        maps = self.stream_maps
        return (
            write_messages
            and self.selected
            and self.ABORT_AT_RECORD_COUNT is None
            and len(maps) == 1
            and type(maps[0]) is SameRecordTransform
            and maps[0].stream_alias == self.name
            and not self.config.get("flattening_enabled")
            and not (self.replication_method == "FULL_TABLE" and self.emit_activate_version_messages)
        )

    def write_records_fast(self, context: Context | None) -> None:
        """Write every RECORD message of ``context`` and the window checkpoints."""
        raise NotImplementedError

    def emit_state(self) -> None:
        """Write the tap's STATE message (subclasses use the tap's public state writer)."""
        raise NotImplementedError

    def stopped_at_record_limit(self) -> None:
        """The SDK's record limit (``ABORT_AT_RECORD_COUNT``, set by ``--test``) stopped the stream: log it."""
        self.logger.info(
            "%s: stopped after %s record(s), the record limit of --test (not an error)",
            self.name,
            self.ABORT_AT_RECORD_COUNT,
        )

    def isolate_failure(self, exc: Exception) -> bool:  # noqa: ARG002 - a hook
        """After this stream failed: True when the run goes on without it (the failure is recorded)."""
        return False

    def sync(self, context: Context | None = None) -> None:  # type: ignore[misc]  # final in the SDK: extended
        """The SDK's sync of the stream; a failure the stream isolates does not end the run."""
        try:
            super().sync(context)
        except Exception as exc:
            if not self.isolate_failure(exc):
                raise

    @override
    def _sync_records(
        self, context: Context | None = None, *, write_messages: bool = True
    ) -> Generator[dict[str, t.Any], t.Any, t.Any]:
        """The fast path when nothing needs the SDK's per-record machinery, else the SDK's."""
        if not self.fast_path_ok(write_messages):
            try:
                yield from super()._sync_records(context, write_messages=write_messages)
            except (AbortedSyncPausedException, AbortedSyncFailedException) as exc:
                if not isinstance(exc.__cause__, MaxRecordsLimitException):
                    raise
                self.stopped_at_record_limit()  # --test: the SDK stops each stream with it, as asked
            return
        self.write_records_fast(context)
        if not context:
            finalize_stream_state(self)
        self.emit_state()

    @override
    def _write_starting_replication_value(self, context: Context | None) -> None:
        """Record (and log) the starting bookmark once: a first export created ahead records it early."""
        if not self.__dict__.get("_starting_value_written"):
            self.__dict__["_starting_value_written"] = True
            super()._write_starting_replication_value(context)

    @override
    def _increment_stream_state(self, latest_record: dict[str, t.Any], *, context: Context | None = None) -> None:
        """Bookmarks move per finished window, not per record: rows come in no order."""


def write_starting_replication_value(stream: Stream, context: Context | None) -> None:
    """Record the starting bookmark (BATCH mode skips the SDK's own call); an ExportStreamHooks does it once."""
    stream._write_starting_replication_value(context)


def mark_state_flushed(stream: Stream, *, flushed: bool) -> None:
    """Tell the SDK whether the stream's state was written since it last changed.

    The SDK writes a STATE at the end of a stream only when ``is_flushed`` is false; the fast
    path writes its own STATE per window, so it says so.
    """
    stream.state_manager.is_flushed = flushed


def finalize_stream_state(stream: Stream) -> None:
    """Promote progress markers of the whole stream's state (end of its sync)."""
    stream._finalize_state(stream.stream_state)


class TapHooks(Tap):
    """A tap whose settings are checked by :meth:`validate_settings` instead of the SDK's check."""

    def before_sync_all(self) -> None:
        """Called once before the first stream is synced; subclasses override."""

    def after_sync_all(self) -> None:
        """Called once every selected stream is synced; subclasses override."""

    def sync_ended(self) -> None:
        """Called once the SDK's sync of every stream returned or raised; subclasses override."""

    def sync_all(self) -> None:  # type: ignore[misc]  # final in the SDK: extended, not replaced
        """:meth:`before_sync_all`, the SDK's sync of every selected stream, then :meth:`after_sync_all`.

        :meth:`sync_ended` runs after the SDK's sync whether it returned or raised.
        """
        self.before_sync_all()
        try:
            super().sync_all()
        finally:
            self.sync_ended()
        self.after_sync_all()

    def install_signal_handlers(self) -> None:
        """Handle SIGINT and SIGTERM (default: the SDK's handlers); subclasses override."""
        super()._setup_signal_handlers()

    @override
    def _setup_signal_handlers(self) -> None:
        """Where the SDK installs its handlers, early in the tap's construction: before discovery runs."""
        self.install_signal_handlers()

    def validate_settings(self, config: dict[str, t.Any], schema: dict[str, t.Any], *, complete: bool) -> list[str]:  # noqa: ARG002 - a hook
        """Every problem with ``config`` (may fill in defaults in place); subclasses override.

        ``complete=False``: only the values that are wrong, not the settings that are missing.
        """
        return []

    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """Replaces the SDK's check so that messages are clear and never echo a secret's value.

        Discovery (``raise_errors=False``) needs no setting, but a value that is wrong (a zone name
        with a typo, a number out of range) is refused there too.
        """
        schema = self.config_jsonschema
        self.append_builtin_config(schema)
        errors = self.validate_settings(raw_config(self), schema, complete=raise_errors)
        if errors:
            raise ConfigValidationError("Config validation failed", errors=errors)
        return errors


def raw_config(tap: Tap) -> dict[str, t.Any]:
    """The tap's own (mutable) config dict; empty before the SDK has set it."""
    config = tap.__dict__.get("_config")
    return config if isinstance(config, dict) else {}


def install_excepthook(command: t.Any, hook: Callable[..., None]) -> t.Any:
    """Make the SDK's CLI command log uncaught errors through ``hook``; returns ``command``."""
    if not isinstance(command, SingerCommand):  # pragma: no cover - checked by the contract test
        msg = f"singer-sdk changed its CLI command class ({type(command).__name__}); see sdk_compat.py"
        raise TypeError(msg)
    command.excepthook = hook  # type: ignore[method-assign]
    return command
