"""``pardot-export-sandbox counts`` and ``records``: a running sandbox's truth and its changes, from the shell.

``counts`` answers how many rows each export object holds in a range, counted as an export
counts them (the tap's procedure's filter field, exclusive bounds ``after = start - 1 s``,
``before = end``: the window ``[start, end)`` the tap asks for), so a load can be checked
without writing an HTTP call. ``records`` adds, updates and deletes records of a running
sandbox's export objects (``POST /_sandbox/changes``); ``records v5`` passes a change to the
v5 objects (``POST /_sandbox/v5/changes``).
"""

from __future__ import annotations

import argparse
import json
import sys
import typing as t
import urllib.error
import urllib.parse
import urllib.request

#: the subcommands; without one, the command line starts a sandbox
COMMANDS = ("counts", "records")


def build_parser() -> argparse.ArgumentParser:
    """The command line of the subcommands."""
    p = argparse.ArgumentParser(prog="pardot-export-sandbox", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("counts", help="rows per export object in a range, as an export counts them")
    _url(c)
    c.add_argument("--object", help="one export object (default: all six), e.g. prospect or visitorActivity")
    c.add_argument("--start", help="the range's start, inclusive (ISO 8601; default: the data's start)")
    c.add_argument("--end", help="the range's end, exclusive (ISO 8601; default: the sandbox's now)")
    c.add_argument("--procedure", help="the procedure whose filter field counts (default: the tap's)")
    c.add_argument("--deleted", choices=("false", "true", "all"), default="false", help="(default %(default)s)")
    c.add_argument("--json", action="store_true", help="print the sandbox's answer as JSON")
    r = sub.add_parser("records", help="add, update or delete records of a running sandbox")
    _url(r)
    ops = r.add_subparsers(dest="op", required=True)
    add = ops.add_parser("add", help="new records, created and updated at --at")
    add.add_argument("object")
    add.add_argument("--count", type=int, default=1, help="how many (default %(default)s)")
    add.add_argument("--at", help="their time (ISO 8601; default: the sandbox's now)")
    update = ops.add_parser("update", help="move the records' updated_at to --at")
    update.add_argument("object")
    update.add_argument("ids", nargs="+", type=int)
    update.add_argument("--at", help="the new updated_at (ISO 8601; default: the sandbox's now)")
    delete = ops.add_parser("delete", help="move the records to the recycle bin")
    delete.add_argument("object")
    delete.add_argument("ids", nargs="+", type=int)
    v5 = ops.add_parser("v5", help="a change of the v5 objects, as POST /_sandbox/v5/changes takes it")
    v5.add_argument("change", help='JSON, e.g. \'{"op": "add", "object": "campaign", "count": 2}\'')
    return p


def _url(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", required=True, help="the running sandbox's base URL (its first line on stdout)")


def main(argv: t.Sequence[str]) -> int:
    """Run one subcommand; 0, or 1 with one line on stderr."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "counts":
            print(counts(args))
        else:
            print(records(args))
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


class CommandError(Exception):
    """What went wrong, in one line."""


def counts(args: argparse.Namespace) -> str:
    """The ``counts`` report: a table, or the answer as JSON."""
    query = {k: v for k in ("object", "start", "end", "procedure", "deleted") if (v := getattr(args, k))}
    answer = call(args.url, "GET", "/_sandbox/counts?" + urllib.parse.urlencode(query))
    if args.json:
        return json.dumps(answer, indent=2)
    rows = [("object", "procedure", "field", "rows")]
    rows += [(c["object"], c["procedure"], c["field"], str(c["count"])) for c in answer["counts"]]
    widths = [max(len(r[k]) for r in rows) for k in range(4)]
    table = "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows)
    deleted = {"false": "live records", "true": "deleted records", "all": "live and deleted records"}
    head = f"{deleted[answer['deleted']]} with {answer['start']} <= field < {answer['end']} (as the tap exports it)"
    return f"{head}\n{table}"


def records(args: argparse.Namespace) -> str:
    """Apply one change; what it did, in one line."""
    if args.op == "v5":
        try:
            change = json.loads(args.change)
        except ValueError as exc:
            raise CommandError(f"the change is not JSON ({exc})") from None
        answer = call(args.url, "POST", "/_sandbox/v5/changes", change)
        return json.dumps(answer)
    body: dict[str, t.Any] = {"op": args.op, "object": args.object}
    if args.op == "add":
        body["count"] = args.count
    else:
        body["ids"] = args.ids
    if getattr(args, "at", None):
        body["at"] = args.at
    ids = call(args.url, "POST", "/_sandbox/changes", body)["ids"]
    done = {"add": "added", "update": "updated", "delete": "deleted"}[args.op]
    return f"{args.object}: {done} {len(ids)} record(s): {' '.join(map(str, ids))}"


def call(base: str, method: str, path: str, body: t.Any = None) -> t.Any:
    """One call to the sandbox's control routes; its JSON answer, or CommandError with the sandbox's words."""
    if not base.startswith(("http://", "https://")):
        raise CommandError(f"--url {base!r} is not an http URL (the sandbox's first line, e.g. http://127.0.0.1:8765)")
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base.rstrip("/") + path, data=data, method=method)  # noqa: S310 - http(s) only
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 - http(s) only
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            said = json.loads(exc.read()).get("error", exc.reason)
        except ValueError:
            said = exc.reason
        raise CommandError(f"the sandbox refused it: {said}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CommandError(f"cannot reach the sandbox at {base} ({reason}): is it running?") from None
