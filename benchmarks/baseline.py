"""The plain-Python baseline: what a hand-written loop does with the same exports.

Creates the same exports as the tap, waits for them, downloads each file (streamed to a
temporary file, as the tap does), reads it with csv, converts every cell to its type, and
writes one Singer RECORD line per row with orjson. No SDK, no retries, no state.

    python benchmarks/baseline.py CONFIG_JSON STREAM OBJECT PROCEDURE AFTER_ARG BEFORE_ARG WINDOWS_JSON
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import sys
import tempfile
import time
import typing as t
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import requests

from tap_pardot_export.streams import load_schema

csv.field_size_limit(1 << 30)
UTC = dt.timezone.utc


def main() -> int:
    """Run the exports named on the command line; RECORD lines to stdout, a summary to stderr."""
    with Path(sys.argv[1]).open() as fh:
        cfg = json.load(fh)
    stream, obj, proc, after_arg, before_arg = sys.argv[2:7]
    windows = json.loads(sys.argv[7])
    props = load_schema(stream)["properties"]
    zone = ZoneInfo(cfg["timezone"])
    session = requests.Session()
    session.headers.update(
        {"Authorization": f"Bearer {_token(cfg)}", "Pardot-Business-Unit-Id": cfg["business_unit_id"]}
    )
    api = cfg["api_url"] + "/api/export/version/4/do"
    out = sys.stdout.buffer
    prefix = b'{"type":"RECORD","stream":"' + stream.encode() + b'","record":'
    rows = 0
    nbytes = 0
    for after, before in windows:
        body = {
            "object": obj,
            "fields": list(props),
            "procedure": {"name": proc, "arguments": {after_arg: after, before_arg: before}},
        }
        for url in _export(session, api, body):
            path, size = _download(session, url)
            nbytes += size
            rows += _write_records(path, props, zone, prefix, out)
            path.unlink()
    out.flush()
    print(json.dumps({"rows": rows, "bytes": nbytes}), file=sys.stderr)
    return 0


def _token(cfg: dict[str, t.Any]) -> str:
    answer = requests.post(
        cfg["login_url"] + "/services/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "client_id": cfg["client_id"],
            "client_secret": cfg["client_secret"],
            "refresh_token": cfg["refresh_token"],
        },
        timeout=60,
    ).json()
    return str(answer["access_token"])


def _export(session: requests.Session, api: str, body: dict[str, t.Any]) -> list[str]:
    """Create one export, wait for it, and return its result file URLs."""
    export = session.post(api + "/create?format=json", json=body, timeout=60).json()["export"]
    while export["state"] in ("Waiting", "Processing"):
        time.sleep(0.05)
        export = session.get(api + f"/read/id/{export['id']}?format=json", timeout=60).json()["export"]
    refs = export.get("resultRefs") or []
    return [refs] if isinstance(refs, str) else list(refs)


def _download(session: requests.Session, url: str) -> tuple[Path, int]:
    """Stream one result file to a temporary file; its path and size."""
    fd, name = tempfile.mkstemp(suffix=".csv")
    size = 0
    with os.fdopen(fd, "wb") as fh, session.get(url, stream=True, timeout=300) as resp:
        for chunk in resp.iter_content(1 << 20):
            fh.write(chunk)
            size += len(chunk)
    return Path(name), size


def _kind(prop: dict[str, t.Any]) -> str:
    types = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
    if "integer" in types:
        return "int"
    if "boolean" in types:
        return "bool"
    return "dt" if prop.get("format") == "date-time" else "str"


def _write_records(path: Path, props: dict[str, t.Any], zone: ZoneInfo, prefix: bytes, out: t.BinaryIO) -> int:
    """Type every row of one CSV file and write it as a RECORD line; the number of rows."""
    rows = 0
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        kinds = [_kind(props[name]) for name in header]
        stamp = dt.datetime.now(UTC).isoformat()
        suffix = b',"time_extracted":"' + stamp.encode() + b'"}\n'
        for row in reader:
            rec: dict[str, t.Any] = {}
            for name, kind, v in zip(header, kinds, row, strict=False):
                if v == "":
                    rec[name] = None
                elif kind == "int":
                    rec[name] = int(v)
                elif kind == "bool":
                    rec[name] = v == "true"
                elif kind == "dt":
                    local = dt.datetime.fromisoformat(v).replace(tzinfo=zone)
                    rec[name] = local.astimezone(UTC).isoformat()
                else:
                    rec[name] = v
            out.write(prefix + orjson.dumps(rec) + suffix)
            rows += 1
    return rows


if __name__ == "__main__":
    sys.exit(main())
