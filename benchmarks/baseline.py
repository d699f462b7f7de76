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
from zoneinfo import ZoneInfo

import orjson
import requests

from tap_pardot_export.streams import load_schema

csv.field_size_limit(1 << 30)


def main() -> int:
    cfg = json.load(open(sys.argv[1]))  # noqa: SIM115
    stream, obj, proc, after_arg, before_arg = sys.argv[2:7]
    windows = json.loads(sys.argv[7])
    props = load_schema(stream)["properties"]
    zone = ZoneInfo(cfg["timezone"])
    token = requests.post(
        cfg["login_url"] + "/services/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "client_id": cfg["client_id"],
            "client_secret": cfg["client_secret"],
            "refresh_token": cfg["refresh_token"],
        },
        timeout=60,
    ).json()["access_token"]
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {token}", "Pardot-Business-Unit-Id": cfg["business_unit_id"]})
    api = cfg["api_url"] + "/api/export/version/4/do"
    out = sys.stdout.buffer
    prefix = b'{"type":"RECORD","stream":"' + stream.encode() + b'","record":'
    rows = 0
    nbytes = 0
    utc = dt.timezone.utc
    for after, before in windows:
        body = {
            "object": obj,
            "fields": list(props),
            "procedure": {"name": proc, "arguments": {after_arg: after, before_arg: before}},
        }
        export = session.post(api + "/create?format=json", json=body, timeout=60).json()["export"]
        while export["state"] in ("Waiting", "Processing"):
            time.sleep(0.05)
            export = session.get(api + f"/read/id/{export['id']}?format=json", timeout=60).json()["export"]
        refs = export.get("resultRefs") or []
        for url in [refs] if isinstance(refs, str) else refs:
            fd, path = tempfile.mkstemp(suffix=".csv")
            with os.fdopen(fd, "wb") as fh, session.get(url, stream=True, timeout=300) as resp:
                for chunk in resp.iter_content(1 << 20):
                    fh.write(chunk)
                    nbytes += len(chunk)
            with open(path, encoding="utf-8-sig", newline="") as fh:
                reader = csv.reader(fh)
                header = next(reader)
                kinds = []
                for name in header:
                    p = props[name]
                    t = p["type"] if isinstance(p["type"], list) else [p["type"]]
                    kinds.append(
                        "int"
                        if "integer" in t
                        else "bool"
                        if "boolean" in t
                        else "dt"
                        if p.get("format") == "date-time"
                        else "str"
                    )
                stamp = dt.datetime.now(utc).isoformat()
                suffix = b',"time_extracted":"' + stamp.encode() + b'"}\n'
                for row in reader:
                    rec = {}
                    for name, kind, v in zip(header, kinds, row, strict=False):
                        if v == "":
                            rec[name] = None
                        elif kind == "int":
                            rec[name] = int(v)
                        elif kind == "bool":
                            rec[name] = v == "true"
                        elif kind == "dt":
                            local = dt.datetime.fromisoformat(v).replace(tzinfo=zone)
                            rec[name] = local.astimezone(utc).isoformat()
                        else:
                            rec[name] = v
                    out.write(prefix + orjson.dumps(rec) + suffix)
                    rows += 1
            os.unlink(path)
    out.flush()
    print(json.dumps({"rows": rows, "bytes": nbytes}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
