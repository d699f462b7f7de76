"""Reading what a tap wrote: its stdout line by line, and the files its BATCH messages name."""

from __future__ import annotations

import gzip
import json
import typing as t
from pathlib import Path

if t.TYPE_CHECKING:
    from tests.helpers import TapRun


def whole_lines(run: TapRun) -> list[dict]:
    """Every line on stdout is one whole JSON message (the last one too)."""
    assert run.stdout.endswith("\n") or not run.stdout, f"stdout ends mid-line: {run.stdout[-200:]!r}"
    messages = []
    for n, line in enumerate(run.stdout.splitlines(), 1):
        try:
            messages.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"stdout line {n} is not whole JSON: {line[:120]!r}...{line[-120:]!r}") from None
    return messages


def read_batches(run: TapRun) -> dict[str, list[dict]]:
    """Each stream's records in the (gzipped JSON Lines) files of the run's BATCH messages."""
    out: dict[str, list[dict]] = {}
    for m in run.messages:
        if m["type"] == "BATCH":
            for url in m["manifest"]:
                path = Path(url.removeprefix("file://"))
                with gzip.open(path, "rt") as fh:
                    out.setdefault(m["stream"], []).extend(json.loads(line) for line in fh)
    return out
