"""The settings, read once into one typed, immutable object.

:meth:`Settings.from_config` reads the config the SDK validated (the schema filled in every
default: nothing here holds one) into typed parts: the connection (what the Pardot client
needs), the polling, the range and the per-stream options. Everything else reads settings from
this object, never from the config dict.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import os
import typing as t
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tap_pardot_export.engine.windows import parse_setting_datetime
from tap_pardot_export.errors import PardotConfigError
from tap_pardot_export.pardot.auth import Credentials
from tap_pardot_export.pardot.client import Connection
from tap_pardot_export.pardot.polling import Polling

if t.TYPE_CHECKING:
    from collections.abc import Mapping

    from tap_pardot_export.spec import StreamSpec

#: in tzdata's list, but not a place's zone: "Factory" means "the local time zone must be set"
NOT_ZONES = frozenset({"Factory"})


@dataclasses.dataclass(frozen=True)
class StreamOptions:
    """One export stream's options: its procedure, extra arguments and fixed window size."""

    procedure: str
    arguments: Mapping[str, t.Any]
    window_days: float | None


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every setting of a run, typed."""

    connection: Connection
    polling: Polling
    start_date: dt.datetime | None
    end_date: dt.datetime | None
    safety_lag: dt.timedelta
    #: the API user's zone (None: unset; see infer_timezone)
    timezone: dt.tzinfo | None
    infer_timezone: bool
    window_days: float | None
    rows_per_export: int
    capture_deletes: bool
    deletes_pass_every: dt.timedelta
    max_queued_exports: int
    #: the fraction of the business unit's daily API allowance a sync leaves for other integrations
    api_call_reserve: float
    fail_fast: bool
    #: the folder of the export record (record_dir, or the per-user state folder; None: no home to put it in)
    record_dir: Path | None
    custom_fields: Mapping[str, tuple[str, ...]]
    stream_options: Mapping[str, Mapping[str, t.Any]]
    #: business_unit_key: every record carries business_unit_id, and every stream's key is (business_unit_id, id)
    business_unit_key: bool

    def options(self, spec: StreamSpec) -> StreamOptions:
        """``spec``'s stream_options, its defaults from the spec and the global window size."""
        raw = self.stream_options.get(spec.name) or {}
        return StreamOptions(
            procedure=str(raw.get("procedure") or spec.default_procedure),
            arguments=dict(raw.get("arguments") or {}),
            window_days=float(raw["window_days"]) if raw.get("window_days") is not None else self.window_days,
        )

    def window_size(self, spec: StreamSpec) -> dt.timedelta | None:
        """The fixed length of ``spec``'s windows, or None: sized by the data."""
        days = self.options(spec).window_days
        return None if days is None else dt.timedelta(days=days)

    @classmethod
    def from_config(cls, config: Mapping[str, t.Any]) -> Settings:
        """The settings of a config the schema validated (and filled with its defaults).

        Raises:
            PardotConfigError: ``timezone`` is not an IANA zone name.
        """
        return cls(
            connection=connection(config),
            polling=Polling(
                poll_interval=float(config["poll_interval"]),
                max_poll_interval=float(config["max_poll_interval"]),
                export_timeout=float(config["export_timeout"]),
            ),
            start_date=_datetime(config.get("start_date")),
            end_date=_datetime(config.get("end_date")),
            safety_lag=dt.timedelta(minutes=float(config["safety_lag_minutes"])),
            timezone=zone(config.get("timezone")),
            infer_timezone=config["infer_timezone"] is True,
            window_days=float(config["window_days"]) if config.get("window_days") is not None else None,
            rows_per_export=int(config["rows_per_export"]),
            capture_deletes=config["capture_deletes"] is True,
            deletes_pass_every=dt.timedelta(days=float(config["deletes_pass_days"])),
            max_queued_exports=int(config["max_queued_exports"]),
            api_call_reserve=float(config["api_call_reserve"]),
            fail_fast=config["fail_fast"] is True,
            record_dir=record_folder(config.get("record_dir")),
            custom_fields={k: tuple(map(str, v or ())) for k, v in (config.get("custom_fields") or {}).items()},
            stream_options={k: dict(v or {}) for k, v in (config.get("stream_options") or {}).items()},
            business_unit_key=config["business_unit_key"] is True,
        )


def record_folder(value: t.Any, environ: Mapping[str, str] = os.environ) -> Path | None:
    """The export record's folder: ``record_dir`` (``~`` expanded), else the per-user state folder.

    That is ``$XDG_STATE_HOME/tap-pardot-export`` (an absolute XDG_STATE_HOME: the XDG base directory
    rule), else ``~/.local/state/tap-pardot-export``; None when the home folder it needs is unknown.
    """
    try:
        if value:
            return Path(str(value)).expanduser()
        state_home = environ.get("XDG_STATE_HOME") or ""
        base = Path(state_home) if Path(state_home).is_absolute() else Path("~/.local/state").expanduser()
    except RuntimeError:  # no HOME and no user entry: the default has nowhere to go
        return None
    return base / "tap-pardot-export"


def _text(value: t.Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _datetime(value: t.Any) -> dt.datetime | None:
    return parse_setting_datetime(str(value)) if value else None


@functools.cache
def iana_zones() -> frozenset[str]:
    """The IANA time zone names (tzdata's list: the machine's zone files also hold ``localtime``, ``posixrules``...)."""
    names = resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8").split()
    return frozenset(names) - NOT_ZONES


def zone(name: t.Any) -> dt.tzinfo | None:
    """The IANA zone ``name`` names (None when unset).

    Raises:
        PardotConfigError: it names no IANA zone (names that resolve on this machine only, such as
            ``localtime``, would read Pardot's times in the runner's zone).
    """
    if not name:
        return None
    text = str(name)
    if text in iana_zones():
        with contextlib.suppress(ZoneInfoNotFoundError, ValueError):
            return ZoneInfo(text)
    msg = f"timezone {text!r} is not an IANA time zone name (e.g. America/New_York, Europe/Paris, UTC)"
    raise PardotConfigError(msg)


def connection(config: Mapping[str, t.Any]) -> Connection:
    """The connection and request settings: what the Pardot client needs."""
    return Connection(
        api_url=str(config["api_url"]),
        login_url=str(config["login_url"]),
        business_unit_id=str(config.get("business_unit_id") or ""),
        api_version=int(config["api_version"]),
        credentials=Credentials(
            client_id=_text(config.get("client_id")),
            client_secret=_text(config.get("client_secret")),
            refresh_token=_text(config.get("refresh_token")),
            access_token=_text(config.get("access_token")),
        ),
        download_hosts=frozenset(
            str(h).strip().lower().rstrip(".") for h in config["download_hosts"] if str(h).strip()
        ),
        request_timeout=float(config["request_timeout"]),
        download_timeout=float(config["download_timeout"]),
        max_concurrency=int(config["max_concurrency"]),
        max_retries=int(config["max_retries"]),
        retry_max_time=float(config["retry_max_time"]),
        max_api_calls=int(config["max_api_calls"]) if config.get("max_api_calls") is not None else None,
        zone=zone(config.get("timezone")),
        lock_dir=record_folder(config.get("record_dir")),
    )
