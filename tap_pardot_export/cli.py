"""The command line's edges: files the user gives, settings from the environment, the commands, errors as messages.

A ``--config``, ``--state`` or ``--catalog`` file that is not JSON is named, not a traceback;
Meltano hands ``--check``, ``--list-exports`` and ``--cancel-exports`` their settings as
environment variables, typed here by the settings schema; and a user-facing error (a
setting, an answer Pardot gave) is logged as its message, without a stack trace.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import typing as t

import click
from singer_sdk.exceptions import ConfigValidationError

from tap_pardot_export.check import Report, run_check
from tap_pardot_export.errors import PardotAPIError, PardotConfigError
from tap_pardot_export.queue_commands import Context, cancel_exports, list_exports, parse_ids

if t.TYPE_CHECKING:
    from types import TracebackType

    from tap_pardot_export.tap import TapPardotExport


NOT_JSON_HINT = "Fix the file (NaN and Infinity, which Python's json module writes, are not JSON either)."


def json_file(text: str, option: str, logger: logging.Logger) -> t.Any:
    """``text`` parsed when it is JSON; else the error naming ``option`` is logged and the run ends (exit 1)."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        logger.error("The %s file is not valid JSON (%s). %s", option, exc, NOT_JSON_HINT)  # noqa: TRY400 - no traceback
        raise SystemExit(1) from None


def _no_constant(name: str) -> t.NoReturn:
    raise ValueError(f"{name} is not JSON")


def user_facing_excepthook(logger: logging.Logger) -> t.Callable[..., None]:
    """User-facing errors are logged as their message, without a stack trace."""

    def hook(exc_type: type[BaseException], exc_value: BaseException, exc_traceback: TracebackType | None) -> None:
        if isinstance(exc_value, ConfigValidationError):
            refuse_settings(logger, exc_value.errors or [str(exc_value)])
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


#: the verdict after the lines of settings refused
REFUSED = "Config validation failed: fix the setting(s) named above"
#: discovery under Meltano with a wrong value: Meltano turns a failed discovery into a page of its own frames
MELTANO_DISCOVERY_NOTE = (
    "Config validation failed: fix the setting(s) named above. Meltano's discovery step goes on with the built-in "
    "catalog (a failed discovery is a page of Meltano's own traceback); the sync after it refuses these settings"
)


def refuse_settings(logger: logging.Logger, errors: t.Sequence[str], verdict: str = REFUSED) -> None:
    """The settings' errors, one line each, then the verdict: as every entry point says them."""
    for error in errors:
        logger.error("%s", error)
    logger.error("%s", verdict)


def discovery_before_a_sync() -> bool:
    """True when Meltano runs the tap (it sets MELTANO_EXTRACTOR_NAME), so a discovery may be its step before a sync."""
    return bool(os.environ.get("MELTANO_EXTRACTOR_NAME"))


def guard_callbacks(command: click.Command, logger: logging.Logger) -> click.Command:
    """Make every option's callback (``--discover``, ``--test``, ``--check``, ...) refuse settings as a sync does.

    Click runs them while it parses the command line, before the command's own error handling:
    a setting refused there is logged as its lines and the process exits 1, never a traceback.
    """
    for param in command.params:
        if param.callback is not None:
            param.callback = _guarded(param.callback, logger)
    if command.callback is not None:  # the sync and --about: the same lines as the options'
        run = command.callback

        def invoke(**kwargs: t.Any) -> t.Any:
            return _guarded(lambda _ctx, _param, _value: run(**kwargs), logger)(click.get_current_context(), None, None)

        command.callback = invoke
    return command


def _guarded(callback: t.Callable[..., t.Any], logger: logging.Logger) -> t.Callable[..., t.Any]:
    def run(ctx: click.Context, param: click.Parameter | None, value: t.Any) -> t.Any:
        try:
            return callback(ctx, param, value)
        except ConfigValidationError as exc:
            refuse_settings(logger, exc.errors or [str(exc)])
        except (PardotAPIError, PardotConfigError) as exc:
            logger.error("%s", exc)  # noqa: TRY400 - a message, no traceback
        ctx.exit(1)
        raise AssertionError  # pragma: no cover - ctx.exit raises

    return run


def env_config(schema: t.Mapping[str, t.Any], prefix: str) -> dict[str, t.Any]:
    """Settings from ``<PREFIX><NAME>`` environment variables, typed by the settings schema.

    Meltano hands a plugin command its settings this way (``--config ENV``); the SDK's own
    parsing leaves numbers as strings, which its validation then refuses.
    """
    out: dict[str, t.Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        raw = os.environ.get(f"{prefix}{name.upper()}")
        if not raw:
            continue
        kinds = prop.get("type", "string")
        kinds = [kinds] if isinstance(kinds, str) else list(kinds)
        value: t.Any = raw
        try:
            if "integer" in kinds:
                value = int(raw)
            elif "number" in kinds:
                value = float(raw)
            elif "boolean" in kinds:
                value = raw.strip().lower() in ("1", "true", "t", "yes", "y", "on")
            elif "object" in kinds or "array" in kinds:
                value = json.loads(raw)
        except ValueError:
            value = raw  # the settings check names it
        out[name] = value
    return out


def command_settings(cls: type[TapPardotExport], ctx: click.Context) -> dict[str, t.Any]:
    """The settings a command option gets: ``--config`` files, and the environment with ``--config ENV`` (Meltano)."""
    config = ctx.params.get("config")
    logging.getLogger("tap-pardot-export").setLevel(logging.WARNING)
    settings = dict(getattr(config, "config", None) or {})
    if getattr(config, "parse_env", False):
        prefix = f"{cls.name.upper().replace('-', '_')}_"
        settings.update(env_config(cls.config_jsonschema, prefix))
    if not settings.get("timezone"):
        # a sync refuses to run without it; the commands go on (the check says which zone Pardot writes in)
        settings["infer_timezone"] = True
    return settings


def cb_check(cls: type[TapPardotExport], ctx: click.Context, param: click.Option, *, value: bool) -> None:
    """The ``--check`` option: run the check, print the report, exit 0 when everything passed."""
    del param
    if not value:
        return
    click.echo(f"tap-pardot-export check{'' if ctx.params.get('config') else ' (no --config given)'}")
    settings = command_settings(cls, ctx)
    try:
        tap = cls(config=settings, parse_env_config=False, validate_config=True, setup_mapper=False)
    except ConfigValidationError as exc:
        report = Report()
        for error in exc.errors or [str(exc)]:
            report.fail(f"settings: {error}")
        click.echo(report.render())
        ctx.exit(1)
    report = run_check(tap)
    click.echo(report.render())
    sys.stdout.flush()
    ctx.exit(0 if report.passed else 1)


def check_option(cls: type[TapPardotExport]) -> click.Option:
    """The ``--check`` click option for the tap's command."""

    def callback(ctx: click.Context, param: click.Option, value: bool) -> None:  # noqa: FBT001 - click's signature
        cb_check(cls, ctx, param, value=value)

    return click.Option(
        ["--check"],
        is_flag=True,
        expose_value=False,
        callback=callback,
        help="Check the settings against the account with a handful of API calls (no long export), "
        "print a report and exit: 0 when every check passed.",
    )


#: ``--cancel-exports`` without a value: the exports the record holds
FROM_RECORD = "record"
_META = "tap_pardot_export.queue"
QUEUE_PARAMETERS = ("list", "cancel", "ids")


def queue_options(cls: type[TapPardotExport]) -> list[click.Parameter]:
    """``--list-exports``, ``--cancel-exports [ID,...]`` and the export ids after it."""

    def keep(key: str) -> t.Callable[[click.Context, click.Parameter, t.Any], None]:
        def callback(ctx: click.Context, param: click.Parameter, value: t.Any) -> None:
            del param
            seen = ctx.meta.setdefault(_META, {})
            seen[key] = value
            if len(seen) == len(QUEUE_PARAMETERS):  # click processes each once, in any order
                run_queue_command(cls, ctx, seen)

        return callback

    return [
        click.Option(
            ["--list-exports"],
            is_flag=True,
            expose_value=False,
            callback=keep("list"),
            help="List the business unit's exports in flight (Waiting, Processing; Complete and not expired), with "
            "state, age, object and whether this tap's export record holds them; then exit.",
        ),
        click.Option(
            ["--cancel-exports"],
            is_flag=False,
            flag_value=FROM_RECORD,
            default=None,
            metavar="[ID[,ID...]]",
            expose_value=False,
            callback=keep("cancel"),
            help="Cancel the Waiting and Processing exports in this tap's export record, or those named by id "
            "(ID ID ... or ID,ID); then exit.",
        ),
        click.Argument(["export_ids"], nargs=-1, expose_value=False, callback=keep("ids")),
    ]


def run_queue_command(cls: type[TapPardotExport], ctx: click.Context, given: dict[str, t.Any]) -> None:
    """Run ``--list-exports`` or ``--cancel-exports`` when one was given; print its table; exit 0 or 1."""
    listing, cancel, extra = bool(given["list"]), given["cancel"], list(given["ids"] or ())
    if not listing and cancel is None:
        if extra:
            fail(ctx, f"unexpected argument(s) {' '.join(extra)[:80]}: export ids go after --cancel-exports")
        return
    if listing and cancel is not None:
        fail(ctx, "--list-exports and --cancel-exports go one at a time")
    try:
        named = [v for v in (cancel, *extra) if v and v != FROM_RECORD]
        ids = parse_ids(named) if named else None
    except ValueError as exc:
        fail(ctx, str(exc))
    settings = command_settings(cls, ctx)
    settings.setdefault("start_date", "1970-01-01")  # a sync's setting: listing and canceling do not use it
    try:
        tap = cls(config=settings, parse_env_config=False, validate_config=True, setup_mapper=False)
        context = Context.of(tap.settings, tap.logger)
        text, code = list_exports(context) if listing else cancel_exports(context, ids)
    except (PardotAPIError, OSError) as exc:
        fail(ctx, str(exc))
    click.echo(text)
    sys.stdout.flush()
    ctx.exit(code)


def fail(ctx: click.Context, message: str) -> t.NoReturn:
    """One line on stderr, exit 1 (no traceback)."""
    click.echo(f"error: {message}", err=True)
    ctx.exit(1)
    raise AssertionError  # pragma: no cover - ctx.exit raises
