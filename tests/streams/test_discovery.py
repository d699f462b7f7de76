"""Discovery: every stream as docs/streams.md documents it, offline and without credentials.

The catalog's streams, keys and replication keys are the documented contract; columns are
snake_case with the API's names as titles; an empty config discovers every stream.
"""

from __future__ import annotations

import json
from pathlib import Path

from tap_pardot_export.spec import SPECS
from tap_pardot_export.tap import TapPardotExport
from tests.helpers import run_tap


def documented_streams() -> dict[str, str | None]:
    """Each stream's replication key as docs/streams.md's tables give it (the documented contract)."""
    keys: dict[str, str | None] = {}
    header: list[str] = []
    for line in (Path(__file__).parents[2] / "docs" / "streams.md").read_text().splitlines():
        if not line.startswith("|"):
            header = []
            continue
        cells = [c.strip().strip("`") for c in line.strip("|").split("|")]
        if not header:
            header = cells
        elif "stream" in header and "replication key" in header and not set(cells[0]) <= {"-"}:
            key = cells[header.index("replication key")]
            keys[cells[header.index("stream")]] = None if key == "-" else key
    return keys


def test_discover_needs_no_network_and_no_credentials(sandbox):
    run = run_tap({}, args=["--discover"])
    assert run.returncode == 0, run.stderr
    catalog = json.loads(run.stdout)
    documented = documented_streams()
    streams = {s["tap_stream_id"]: s for s in catalog["streams"]}
    assert set(streams) == set(documented) == set(SPECS)
    exports = {name for name in streams if SPECS[name].kind == "export"}
    assert exports == set(sandbox.dataset.objects)
    for name, entry in streams.items():
        assert entry["key_properties"] == ["id"]
        assert entry.get("replication_key") == documented[name], name
        if name in exports:
            times = sandbox.dataset.objects[name].times
            assert SPECS[name].replication_key in times, "the key is a time the API filters on"
    va = streams["visitor_activity"]["schema"]["properties"]
    assert va["id"]["type"] == ["integer"]
    assert va["created_at"]["format"] == "date-time"
    # columns are snake_case in every stream: the API's camelCase names travel as titles
    ea = streams["external_activity"]["schema"]["properties"]
    assert ea["prospect_id"]["title"] == "prospectId" and "prospectId" not in ea


def test_discover_with_an_empty_config_works_offline(capsys):
    tap = TapPardotExport(config={}, parse_env_config=False, validate_config=False, setup_mapper=False)
    tap.run_discovery()
    catalog = json.loads(capsys.readouterr().out)
    assert {s["tap_stream_id"] for s in catalog["streams"]} == set(SPECS)
