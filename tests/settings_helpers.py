"""Settings as the settings tests write them: a good config to change one value of, and the tap's verdict on it.

``config(**changes)`` is a good config with ``changes`` (``...`` removes a setting); ``errors_of``
builds the tap in-process as the command line does and returns its errors; ``tap_cli`` runs the
real command line. Shared by the settings, state and query stream tests.
"""

from __future__ import annotations

import subprocess
import sys
import typing as t

from singer_sdk.exceptions import ConfigValidationError

from tap_pardot_export.settings.schema import settings_schema
from tap_pardot_export.tap import TapPardotExport

if t.TYPE_CHECKING:
    from pathlib import Path

BASE: dict[str, t.Any] = {
    "business_unit_id": "0Uv5e0000000001AAA",
    "client_id": "the-client-id",
    "client_secret": "the-client-secret",
    "refresh_token": "the-refresh-token",
    "start_date": "2024-01-01T00:00:00Z",
    "timezone": "America/New_York",
}
LOOPBACK = {"api_url": "http://127.0.0.1:9", "login_url": "http://127.0.0.1:9"}


def config(**changes: t.Any) -> dict[str, t.Any]:
    """BASE with ``changes``; a change to ``...`` (Ellipsis) removes the setting."""
    cfg = {**BASE, **changes}
    return {k: v for k, v in cfg.items() if v is not ...}


def errors_of(cfg: dict[str, t.Any]) -> list[str]:
    """The errors the tap raises for ``cfg`` (in-process, as the CLI builds it), or []."""
    try:
        TapPardotExport(config=cfg, parse_env_config=False, validate_config=True)
    except ConfigValidationError as exc:
        return list(exc.errors)
    return []


def full_schema() -> dict[str, t.Any]:
    """The settings schema with the SDK's built-in settings, as ``--about`` lists them."""
    schema = settings_schema()
    TapPardotExport.append_builtin_config(schema)
    return schema


def tap_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The tap's real command line, in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "tap_pardot_export", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
    )
