"""The Singer SDK's standard tap tests, run against the sandbox over HTTP on loopback.

``get_tap_test_class`` builds its test class, and the tap instances whose streams become the
tests' parameters, at import; it syncs only in its class-scoped ``runner`` fixture. So the
class is built with the config of a sandbox that is not running yet (the same settings, a
placeholder URL), and ``runner`` is overridden to start the sandbox and sync against it.
"""

from __future__ import annotations

import datetime as dt
import typing as t

import pytest
from pardot_export_sandbox import DataConfig, Sandbox, SandboxConfig
from singer_sdk.testing import SuiteConfig, get_tap_test_class
from singer_sdk.testing.runners import TapTestRunner

from tap_pardot_export.tap import TapPardotExport
from tests.helpers import small_v5

UTC = dt.timezone.utc
SUITE = SuiteConfig()
ROWS = {
    "prospect": 120,
    "visitor": 80,
    "visitor_activity": 300,
    "list_membership": 90,
    "prospect_account": 40,
    "external_activity": 50,
}


def core_config(sb: Sandbox) -> dict[str, t.Any]:
    return sb.tap_config(window_days=31, custom_fields={"prospect": ["Favorite_Color"]})


def core_sandbox() -> Sandbox:
    # the account's only custom field is the one custom_fields names: discovery against the
    # placeholder (no account) and against the sandbox then give the same prospect schema
    data = DataConfig(
        start=dt.datetime(2024, 1, 1, tzinfo=UTC),
        end=dt.datetime(2024, 4, 1, tzinfo=UTC),
        rows=ROWS,
        custom_fields=("Favorite_Color",),
    )
    return Sandbox(SandboxConfig(rows_per_file=60, data=small_v5(data)))


def _placeholder_config() -> dict[str, t.Any]:
    """The suite's config with a URL nothing listens on: building the class makes no call."""
    sb = core_sandbox()  # never started
    sb.state.base_url = "http://127.0.0.1:9"
    try:
        return core_config(sb)
    finally:
        sb.stop()  # removes its spool directory


_SDKTests = get_tap_test_class(
    tap_class=TapPardotExport,
    config=_placeholder_config(),
    suite_config=SUITE,
    parse_env_config=False,
)


class TestTapPardotExport(_SDKTests):  # type: ignore[misc,valid-type]  # a base class the SDK makes at run time
    """The SDK's tap, stream and attribute tests."""

    @pytest.fixture(scope="class")
    @classmethod
    def runner(cls) -> t.Iterator[TapTestRunner]:
        with core_sandbox() as sb:
            runner = TapTestRunner(TapPardotExport, config=core_config(sb), suite_config=SUITE, parse_env_config=False)
            runner.sync_all()
            yield runner
