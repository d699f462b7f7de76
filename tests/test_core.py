"""The Singer SDK's standard tap tests, run against the sandbox over HTTP on loopback."""

from __future__ import annotations

import atexit
import datetime as dt

from pardot_export_sandbox import DataConfig, Sandbox, SandboxConfig
from singer_sdk.testing import SuiteConfig, get_tap_test_class

from tap_pardot_export.tap import TapPardotExport

UTC = dt.timezone.utc

# get_tap_test_class needs the config when the class is built, so the sandbox starts at import.
_SANDBOX = Sandbox(
    SandboxConfig(
        rows_per_file=60,
        data=DataConfig(
            start=dt.datetime(2024, 1, 1, tzinfo=UTC),
            end=dt.datetime(2024, 4, 1, tzinfo=UTC),
            rows={
                "prospect": 120,
                "visitor": 80,
                "visitor_activity": 300,
                "list_membership": 90,
                "prospect_account": 40,
                "external_activity": 50,
            },
        ),
    )
).start()
atexit.register(_SANDBOX.stop)

TestTapPardotExport = get_tap_test_class(
    tap_class=TapPardotExport,
    config=_SANDBOX.tap_config(window_days=31, custom_fields={"prospect": ["Favorite_Color"]}),
    suite_config=SuiteConfig(),
)
