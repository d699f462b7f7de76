"""A minimal Singer JSON Lines target built on singer-sdk, the loader of the Meltano tests.

The one published target-jsonl pins singer-python 5.8 (backoff 1.8 and jsonschema 2.6), which
clashes with singer-sdk 0.54 in one venv, and MeltanoLabs' SDK-based target-jsonl is not on
the package index. This target is just enough for the tests: one ``<stream>.jsonl`` file per
stream in ``destination_path``, one line per record. Run it as a script:
``python tests/jsonl_target.py --config config.json < messages``.
"""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

from singer_sdk import Target
from singer_sdk import typing as th
from singer_sdk.sinks import RecordSink
from typing_extensions import override


class JsonlSink(RecordSink):
    """Appends each record of one stream to ``<destination_path>/<stream>.jsonl``."""

    @override
    def process_record(self, record: dict[str, t.Any], context: dict[str, t.Any]) -> None:
        """Write one record as one JSON line.

        Args:
            record: The record, as the tap sent it.
            context: The sink's context (unused).
        """
        folder = Path(self.config["destination_path"])
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / f"{self.stream_name}.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=str) + "\n")


class TargetJsonl(Target):
    """Singer target writing JSON Lines files, one per stream."""

    name = "target-jsonl-tests"
    config_jsonschema = th.PropertiesList(
        th.Property("destination_path", th.StringType, required=True, description="Folder of the files."),
    ).to_dict()
    default_sink_class = JsonlSink


if __name__ == "__main__":
    TargetJsonl.cli()
