"""``--list-exports`` and ``--cancel-exports``: the business unit's queue of exports, seen and tended.

Pardot runs a business unit's exports one at a time, oldest first, whoever created them.
``--list-exports`` lists those Pardot still works on or holds (Waiting, Processing; Complete
and not expired) through the export query, one query per object (its answers do not name the
object), and says which the tap's export record holds. The query needs "Admin > Exports >
View": without it, the command says so and lists the exports the record holds, each read by
id. ``--cancel-exports`` cancels the Waiting and Processing exports the record holds;
``--cancel-exports ID ...`` (or ``ID,ID``) those the operator names, for a record on another
machine. Each prints a table on stdout; exit status 0, or 1 when something could not be done.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import time
import typing as t

from tap_pardot_export.discovery import make_client
from tap_pardot_export.engine.record import ExportRecord, read_record
from tap_pardot_export.engine.windows import api_time
from tap_pardot_export.errors import PardotAPIError
from tap_pardot_export.pardot.exports import unwrap_export
from tap_pardot_export.pardot.listing import (
    ABILITY,
    IN_QUEUE,
    NO_VIEW_CODES,
    Listed,
    NoExportView,
    listed,
    query_exports,
)
from tap_pardot_export.redact import host_of
from tap_pardot_export.spec import SPECS

if t.TYPE_CHECKING:
    import logging

    from tap_pardot_export.pardot.client import PardotClient
    from tap_pardot_export.settings.config import Settings

#: the objects the export query is asked about, one query each
OBJECTS = tuple(dict.fromkeys(spec.api_object for spec in SPECS.values() if spec.kind == "export"))
#: an export Complete within 7 days (it is not expired) was created within 14: the query looks this far back
LOOK_BACK = dt.timedelta(days=15)
EXPORT_ID = re.compile(r"[0-9]{1,18}")
COLUMNS = ("id", "state", "object", "created (API user's time)", "age", "in this tap's record", "")


@dataclasses.dataclass
class Context:
    """What a command works with: the settings, a client, the record, a logger."""

    settings: Settings
    client: PardotClient
    record: ExportRecord
    logger: logging.Logger

    @classmethod
    def of(cls, settings: Settings, logger: logging.Logger) -> Context:
        """The command's client (quick to give up) and the record as it is on disk."""
        client = make_client(settings.connection)
        host = host_of(client.api_url)
        return cls(settings, client, read_record(settings.record_dir, client.business_unit_id, host, logger), logger)

    def recorded(self) -> dict[int, dict[str, t.Any]]:
        """The record's entries of this host, by id."""
        return {e["id"]: e for e in self.record.live()}

    def age(self, export: Listed, entry: dict[str, t.Any] | None) -> str:
        """How long ago it was created: from createdAt in the API user's zone, else from the record's clock."""
        created: float | None = entry["requested_at"] if entry else None
        zone = self.settings.timezone
        if export.created_at and zone is not None:
            try:
                local = dt.datetime.strptime(export.created_at, "%Y-%m-%d %H:%M:%S")  # noqa: DTZ007 - the zone follows
                created = local.replace(tzinfo=zone).timestamp()
            except ValueError:
                pass
        if created is None:
            return "?"
        minutes = max(0, int(time.time() - created) // 60)
        return f"{minutes // 1440}d{minutes // 60 % 24:02d}h{minutes % 60:02d}m" if minutes >= 1440 else (
            f"{minutes // 60}h{minutes % 60:02d}m"
        )  # fmt: skip

    def row(self, export: Listed, note: str = "") -> list[str]:
        """One table row of ``export``."""
        entry = self.recorded().get(export.id)
        held = f"yes: {entry['stream']} [{entry['after'][:19]} .. {entry['before'][:19]})" if entry else "no"
        state = export.state + (" (expired)" if export.expired else "")
        what = export.api_object or (entry["object"] if entry else "?")
        return [str(export.id), state, what, export.created_at or "?", self.age(export, entry), held, note]


def table(rows: list[list[str]]) -> str:
    """A plain text table, columns padded to their widest cell."""
    lines = [list(COLUMNS), *rows]
    widths = [max(len(line[k]) for line in lines) for k in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines)


def read_export(client: PardotClient, export_id: int, api_object: str | None = None) -> Listed:
    """One export's status, by id."""
    body = client.json("GET", f"read/id/{export_id}", "read")
    return listed(unwrap_export(body, f"read export {export_id}", expect_id=export_id), "read", api_object)


# -- listing ------------------------------------------------------------------------------------------


def query_in_flight(ctx: Context) -> tuple[list[Listed], list[str]]:
    """The business unit's exports in flight, by the export query (one per object); notes on the listing."""
    since = api_time(dt.datetime.now(dt.timezone.utc) - LOOK_BACK)
    found: list[Listed] = []
    notes: list[str] = []
    for api_object in OBJECTS:
        total, exports = query_exports(ctx.client, api_object=api_object, created_after=since, sort_by="id")
        if total > len(exports):
            notes.append(f"Pardot listed {len(exports)} of {total} {api_object} export(s)")
        found += exports
    gone = [e.id for e in found if not e.in_flight and e.id in ctx.record.held]
    if gone:
        ctx.record.drop(gone)
        notes.append(f"dropped {len(gone)} export(s) Pardot ended from the record")
    return sorted((e for e in found if e.in_flight), key=lambda e: e.id), notes


def read_recorded(ctx: Context) -> tuple[list[Listed], list[str]]:
    """Without the export query: the record's exports, each read by id."""
    found: list[Listed] = []
    notes: list[str] = []
    gone: list[int] = []
    for export_id, entry in ctx.recorded().items():
        try:
            export = read_export(ctx.client, export_id, entry["object"])
        except PardotAPIError as exc:
            notes.append(f"export {export_id} of the record could not be read: {exc}")
            continue
        if export.in_flight:
            found.append(export)
        else:
            gone.append(export_id)
    if gone:
        ctx.record.drop(gone)
        notes.append(f"dropped {len(gone)} export(s) Pardot ended from the record")
    return found, notes


def list_exports(ctx: Context) -> tuple[str, int]:
    """The ``--list-exports`` report and its exit status."""
    bu, host = ctx.client.business_unit_id, host_of(ctx.client.api_url)
    head = f"Exports of business unit {bu} on {host} in flight (Waiting, Processing; Complete and not expired)"
    try:
        exports, notes = query_in_flight(ctx)
    except NoExportView as exc:
        exports, notes = read_recorded(ctx)
        notes.insert(
            0,
            f"NOTE: {exc}: only the exports in this tap's record are listed, each read by id; exports of other "
            f"users or integrations may be ahead of them. Grant {ABILITY} to the API user to see the whole queue.",
        )
    waiting = sum(e.state in IN_QUEUE for e in exports)
    held = sum(e.id in ctx.record.held for e in exports)
    summary = (
        f"{len(exports)} export(s), {waiting} of them Waiting or Processing; {held} in this tap's record "
        f"({ctx.record.path})"
    )
    body = table([ctx.row(e) for e in exports]) if exports else "(none)"
    return "\n".join([f"{head}, oldest first:", body, summary, *notes]), 0


# -- canceling -------------------------------------------------------------------------------------------


def parse_ids(values: t.Iterable[str]) -> list[int]:
    """Export ids from ``ID ID`` or ``ID,ID``.

    Raises:
        ValueError: a value is not an export id (the message names it).
    """
    out: list[int] = []
    for value in values:
        for part in value.split(","):
            text = part.strip()
            if not text:
                continue
            if not EXPORT_ID.fullmatch(text) or int(text) == 0:
                msg = f"--cancel-exports: {text[:40]!r} is not an export id (a positive integer): see --list-exports"
                raise ValueError(msg)
            out.append(int(text))
    if not out:
        msg = "--cancel-exports: no export id given (ID ID ... or ID,ID; none: the exports in the record)"
        raise ValueError(msg)
    return list(dict.fromkeys(out))


def cancel_one(ctx: Context, export_id: int) -> tuple[list[str], bool]:
    """Cancel ``export_id`` if it is Waiting or Processing: its row, and True when nothing failed."""
    entry = ctx.recorded().get(export_id)
    try:
        export = read_export(ctx.client, export_id, entry["object"] if entry else None)
    except PardotAPIError as exc:
        export = Listed(export_id, "?", expired=False, created_at=None)
        if exc.code not in NO_VIEW_CODES:
            return ctx.row(export, f"cannot be read: {exc}"), False
        # another user's export, which this user may not read: Pardot decides whether it may cancel it
    if export.state not in (*IN_QUEUE, "?"):
        if not export.in_flight:
            ctx.record.drop([export_id])
        return ctx.row(export, f"nothing to cancel: it is {export.state}"), True
    try:
        ctx.client.json("POST", f"cancel/id/{export_id}", "cancel")
    except PardotAPIError as exc:
        return ctx.row(export, f"NOT canceled: {exc}"), False
    row = ctx.row(dataclasses.replace(export, state="Canceled"), f"canceled (was {export.state})")
    ctx.record.drop([export_id])
    return row, True


def cancel_exports(ctx: Context, ids: list[int] | None) -> tuple[str, int]:
    """The ``--cancel-exports`` report and its exit status (None: the exports in the record)."""
    bu = ctx.client.business_unit_id
    if ids is None:
        ids = sorted(ctx.recorded())
        head = f"Canceling the exports of business unit {bu} in this tap's record ({ctx.record.path})"
    else:
        head = f"Canceling export(s) {', '.join(map(str, ids))} of business unit {bu}"
    if not ids:
        return f"{head}: the record holds none.", 0
    rows, ok = [], True
    for export_id in ids:
        row, done = cancel_one(ctx, export_id)
        rows.append(row)
        ok = ok and done
    verdict = "done" if ok else "some exports could not be canceled: see the last column"
    return f"{head}:\n{table(rows)}\n{verdict}", 0 if ok else 1
