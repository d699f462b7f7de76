#!/usr/bin/env python3
"""Write meltano.yml and the Meltano Hub definition from the tap's config schema.

    python scripts/plugin_definitions.py          # rewrite both files and the README's settings table
    python scripts/plugin_definitions.py --check  # exit 1 if any is out of date

The config schema (tap_pardot_export/settings/schema.py, plus the SDK's built-in settings the tap
advertises: stream_maps, flattening_*, batch_config, ...) is the one source of truth; a test
runs ``--check``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import typing as t
from pathlib import Path

import yaml

from tap_pardot_export.settings.schema import settings_schema
from tap_pardot_export.tap import TapPardotExport

ROOT = Path(__file__).resolve().parent.parent
MELTANO_YML = ROOT / "meltano.yml"
README = ROOT / "README.md"
HUB_YML = ROOT / "meltano-hub" / "extractors" / "tap-pardot-export" / "tap-pardot-export.yml"

CAPABILITIES = [
    "about",
    "batch",
    "catalog",
    "discover",
    "schema-flattening",
    "state",
    "stream-maps",
    "structured-logging",
    "activate-version",
]
GROUPS = [
    ["business_unit_id", "start_date", "access_token"],
    ["business_unit_id", "start_date", "client_id", "client_secret", "refresh_token"],
    ["business_unit_id", "start_date", "client_id", "client_secret"],
]
DESCRIPTION = "Salesforce Account Engagement (Pardot) data through the bulk Export API"


#: `meltano invoke tap-pardot-export:check`: Meltano hands commands the settings as environment
#: variables only, hence ``--config ENV``; `meltano invoke tap-pardot-export:cancel-exports 1001 1002`
#: appends the ids
COMMANDS = {
    "check": {
        "args": "--check --config ENV",
        "description": "Check the settings against the account before a first sync (a handful of API calls, "
        "no long export)",
    },
    "list-exports": {
        "args": "--list-exports --config ENV",
        "description": "List the business unit's exports in flight (Waiting, Processing; Complete and not expired), "
        "whoever created them, and whether this tap's export record holds them",
    },
    "cancel-exports": {
        "args": "--cancel-exports --config ENV",
        "description": "Cancel the Waiting and Processing exports in this tap's export record; with export ids "
        "after it, those exports instead",
    },
}


def kind_of(schema: dict[str, t.Any]) -> str:
    """The Meltano setting kind of a JSON schema, so ``meltano config set`` stores the right type.

    Secrets are ``string`` with ``sensitive: true`` (Meltano 4 deprecates ``kind: password``).
    """
    types = schema.get("type", "string")
    types = [types] if isinstance(types, str) else types
    if schema.get("format") == "date-time":
        return "date_iso8601"
    # Meltano 4's "decimal" kind yields Decimal values it then fails to serialize, so
    # numbers are declared "integer" there (whole seconds/days); the tap itself takes fractions.
    for json_type, kind in (
        ("integer", "integer"),
        ("number", "integer"),
        ("boolean", "boolean"),
        ("object", "object"),
        ("array", "array"),
    ):
        if json_type in types:
            return kind
    return "string"


def full_schema() -> dict[str, t.Any]:
    """The tap's settings and the SDK's built-in ones, as ``--about`` lists them."""
    schema = settings_schema()
    TapPardotExport.append_builtin_config(schema)
    return schema


def settings() -> list[dict[str, t.Any]]:
    """Meltano setting definitions, one per top-level setting."""
    out = []
    for name, schema in full_schema()["properties"].items():
        item: dict[str, t.Any] = {
            "name": name,
            "label": schema.get("title") or name.replace("_", " ").title(),
            "description": schema.get("description") or schema.get("title") or name,
            "kind": kind_of(schema),
        }
        if "default" in schema:
            item["value"] = schema["default"]
        if schema.get("secret"):
            item["sensitive"] = True
        # Meltano checks "options" before casting, so "4" from the environment would not match 4:
        # only string enums become options
        if "enum" in schema and all(isinstance(v, str) for v in schema["enum"]):
            item["kind"] = "options"
            item["options"] = [{"label": str(v), "value": v} for v in schema["enum"]]
        out.append(item)
    return out


def extractor() -> dict[str, t.Any]:
    """The extractor's plugin definition, as meltano.yml holds it."""
    return {
        "name": "tap-pardot-export",
        "label": "Account Engagement (Pardot) Export",
        "description": DESCRIPTION,
        "namespace": "tap_pardot_export",
        "pip_url": "-e .",
        "executable": "tap-pardot-export",
        "capabilities": CAPABILITIES,
        "commands": COMMANDS,
        "settings_group_validation": GROUPS,
        "settings": settings(),
    }


def meltano_project() -> dict[str, t.Any]:
    """This repository's meltano.yml (no deprecated keys: Meltano 4 warns about ``version``)."""
    ext = extractor()
    ext["config"] = {"start_date": "2024-01-01T00:00:00Z"}
    return {
        "send_anonymous_usage_stats": False,
        "project_id": "tap-pardot-export",
        "default_environment": "dev",
        "environments": [{"name": "dev"}, {"name": "staging"}, {"name": "prod"}],
        "plugins": {
            "extractors": [ext],
            "loaders": [
                {
                    "name": "target-jsonl",
                    "namespace": "target_jsonl",
                    "pip_url": "target-jsonl",
                    "executable": "target-jsonl",
                    "settings": [
                        {
                            "name": "destination_path",
                            "kind": "string",
                            "value": "output",
                            "description": "Folder the JSON Lines files are written to.",
                        },
                        {
                            "name": "do_timestamp_file",
                            "kind": "boolean",
                            "value": False,
                            "description": "Append a timestamp to each file name.",
                        },
                    ],
                    "config": {"destination_path": "output", "do_timestamp_file": False},
                }
            ],
        },
    }


def hub_definition() -> dict[str, t.Any]:
    """The Meltano Hub definition.

    ``pip_url`` is the distribution name the release workflow publishes. ``repo`` is left out
    until the project has a public repository: an invented URL would send users nowhere.
    """
    ext = extractor()
    ext["pip_url"] = "tap-pardot-export"
    return {
        "name": ext["name"],
        "namespace": ext["namespace"],
        "variant": "tap-pardot-export",
        "label": ext["label"],
        "description": DESCRIPTION,
        "keywords": ["meltano_sdk", "pardot", "account engagement", "salesforce", "marketing"],
        "domain_url": "https://developer.salesforce.com/docs/marketing/pardot/guide/overview.html",
        "logo_url": "https://hub.meltano.com/assets/logos/extractors/pardot.png",
        "maintenance_status": "active",
        "pip_url": ext["pip_url"],
        "executable": ext["executable"],
        "capabilities": ext["capabilities"],
        "commands": ext["commands"],
        "settings_group_validation": ext["settings_group_validation"],
        "settings_preamble": "Create a Salesforce connected app with the pardot_api scope; see the README.",
        "settings": ext["settings"],
    }


def render(data: dict[str, t.Any], header: str) -> str:
    """YAML with a header comment, keys in the order given."""
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def readme_with_settings_table() -> str:
    """The README with the table between its settings markers replaced by ``--about``'s."""
    about = subprocess.run(
        [sys.executable, "-m", "tap_pardot_export", "--about", "--format=markdown"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    table = about[about.index("| Setting |") :].split("\n\n")[0].strip()
    text = README.read_text()
    start, end = "<!-- settings:start -->", "<!-- settings:end -->"
    head, rest = text.split(start, 1)
    return f"{head}{start}\n{table}\n{end}{rest.split(end, 1)[1]}"


def main() -> int:
    """Write both files, or with ``--check`` report the stale ones."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the files are out of date")
    args = parser.parse_args()
    files = {
        MELTANO_YML: render(
            meltano_project(), "# Generated by scripts/plugin_definitions.py from the tap's config schema.\n"
        ),
        HUB_YML: render(
            hub_definition(),
            "# Meltano Hub plugin definition, generated by scripts/plugin_definitions.py.\n"
            "# pip_url names the distribution the release workflow publishes. No `repo` yet: the project\n"
            "# has no public repository; add its URL here (in the script) before submitting to the Hub.\n",
        ),
        README: readme_with_settings_table(),
    }
    stale = [p for p, text in files.items() if not p.exists() or p.read_text() != text]
    if args.check:
        for p in stale:
            print(f"{p.relative_to(ROOT)} is out of date: run python scripts/plugin_definitions.py", file=sys.stderr)
        return 1 if stale else 0
    for p, text in files.items():
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
