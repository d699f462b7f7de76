"""Fixtures: sandboxes over real HTTP on loopback."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from pardot_export_sandbox import DataConfig, Sandbox, SandboxConfig

UTC = dt.timezone.utc
CUSTOM = {"prospect": ["Favorite_Color", "Lead_Notes"]}


def make_sandbox(**kw: object) -> Sandbox:
    data = kw.pop("data", None) or DataConfig(
        start=dt.datetime(2024, 1, 1, tzinfo=UTC), end=dt.datetime(2025, 1, 1, tzinfo=UTC)
    )
    return Sandbox(SandboxConfig(data=data, **kw))  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def sandbox() -> Sandbox:
    """A shared sandbox in a zone with daylight saving, small files so exports have several."""
    with make_sandbox(rows_per_file=150) as sb:
        yield sb


@pytest.fixture
def fresh_sandbox():
    """A factory for a sandbox of a test's own (faults, clocks and counters untouched by others)."""
    made: list[Sandbox] = []

    def factory(**kw: object) -> Sandbox:
        sb = make_sandbox(**kw).start()
        made.append(sb)
        return sb

    yield factory
    for sb in made:
        sb.stop()
