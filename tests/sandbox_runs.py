"""Runs of one stream against a sandbox of the test's own over 2024, checked row for row and for secrets.

``small`` starts a sandbox with a few hundred list memberships and visitor activities;
``one_stream`` gives a run's config and a catalog of one stream; ``complete`` checks that some
runs together emitted exactly the sandbox's rows; ``assert_no_secrets`` that nothing the tap
printed holds a secret; ``rewrite_stored`` changes the result files the sandbox stores, as
Pardot could store them.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from pathlib import Path

from pardot_export_sandbox import DataConfig

from tests.helpers import assert_rows_match, discover, expected_rows, select_streams

if t.TYPE_CHECKING:
    from pardot_export_sandbox import Sandbox

    from tests.helpers import TapRun

UTC = dt.timezone.utc
START, END = dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2025, 1, 1, tzinfo=UTC)


def small(fresh_sandbox: t.Callable[..., Sandbox], **kw: t.Any) -> Sandbox:
    """A sandbox of the test's own: 300 list memberships and 400 visitor activities unless ``data`` says otherwise."""
    data = kw.pop("data", None) or DataConfig(
        start=START, end=END, rows={"list_membership": 300, "visitor_activity": 400}
    )
    return fresh_sandbox(data=data, **kw)


def one_stream(sb: Sandbox, stream: str, **cfg: t.Any) -> tuple[dict[str, t.Any], dict[str, t.Any]]:
    """The sandbox's settings with ``cfg``, and a catalog of ``stream`` alone."""
    config = sb.tap_config(**cfg)
    return config, select_streams(discover(config), [stream])


def assert_no_secrets(run: TapRun, sb: Sandbox) -> None:
    """Nothing the tap printed holds a secret: client secret, refresh token, any issued token."""
    text = run.everything
    for secret in (sb.config.client_secret, sb.config.refresh_token, *sb.state.issued):
        assert secret not in text, "a secret leaked into the tap's output"


def complete(sb: Sandbox, stream: str, runs: list[TapRun]) -> None:
    """The runs together emitted exactly the sandbox's rows of ``stream`` over 2024."""
    records = [r for run in runs for r in run.records(stream)]
    assert_rows_match(sb, stream, records, expected_rows(sb, stream, START, END), sb.config.data.timezone)


def rewrite_stored(sb: Sandbox, fn: t.Callable[[int, t.Any, bytes], bytes]) -> dict[str, bytes]:
    """Store each export's result files as ``fn(nth, export, bytes)`` (before it is Complete); the former bytes."""
    state = sb.state
    original = state._process
    seen: list[int] = []
    before: dict[str, bytes] = {}

    def process(e: t.Any) -> tuple[t.Any, t.Any, t.Any]:
        ranges, total, paths = original(e)
        nth = len(seen)
        seen.append(e.id)
        for p in paths:
            before[p] = Path(p).read_bytes()
            Path(p).write_bytes(fn(nth, e, before[p]))
        return ranges, total, paths

    state._process = process  # type: ignore[method-assign]  # the test's stand-in for the sandbox's method
    return before
