"""``--check`` for the query streams: one page of each, which proves the API user may read the object.

Each query stream's first page is asked for as a sync asks for it (its fields, its recycle-bin
selection, and for an incremental or event stream its date filter and sort), one record long.
A field the account refuses is reported (a sync leaves it out, with a warning), as is an object
refusing its date filter (a sync reads it whole by id); an object the user may not read fails
with the ability to give.
"""

from __future__ import annotations

import datetime as dt
import typing as t

import requests

from tap_pardot_export.engine.windows import api_time
from tap_pardot_export.errors import PardotAPIError, PardotConfigError
from tap_pardot_export.pardot.v5 import DatesRefused, Query, V5Reader
from tap_pardot_export.spec import SPECS

if t.TYPE_CHECKING:
    import logging

    from tap_pardot_export.check import Report
    from tap_pardot_export.pardot.client import PardotClient
    from tap_pardot_export.spec import StreamSpec

API_ERRORS = (PardotAPIError, PardotConfigError, requests.RequestException)


def probe(v5: V5Reader, spec: StreamSpec, since: dt.datetime) -> None:
    """Read one record of ``spec``'s object as a sync would ask for its first page."""
    details = t.cast("t.Any", spec.query)
    fields = tuple(name for name, _ in details.fields)
    if details.mode == "singleton":
        v5.account(fields, spec.name)
        return
    key = details.date_field if details.mode in ("incremental", "events") else None
    filters = ((f"{key}AfterOrEqualTo", api_time(since)),) if key else ()
    order = f"{key} asc,id asc" if key else None
    query = Query(details.collection, fields, filters, order, "all" if details.recycle_bin else None, limit=1)
    v5.page(query, None, spec.name, tuple(filter(None, ("id", key))))


def check_query_streams(client: PardotClient, report: Report, logger: logging.Logger | None = None) -> None:
    """One page of each query stream, a line each (a failing one says what to change)."""
    v5 = V5Reader(client, logger)
    since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
    for spec in SPECS.values():
        if spec.kind != "query":
            continue
        details = t.cast("t.Any", spec.query)
        try:
            probe(v5, spec, since)
        except DatesRefused:
            report.note(
                f"{spec.name}: Pardot refuses {details.collection}'s {details.date_field} filter or sort: syncs read "
                "it whole by id, with a warning"
            )
        except API_ERRORS as exc:
            report.fail(
                f"{spec.name}: cannot read v5 {details.collection} ({exc}): give the API user the ability "
                f"{spec.ability} (unverified name), or deselect the stream"
            )
            continue
        dropped = v5.refusals.dropped.get(details.collection, [])
        if dropped:
            report.note(
                f"{spec.name}: this account refuses field(s) {', '.join(dropped)}: syncs leave them out with a "
                "warning; deselect them in the catalog to silence it"
            )
        if details.collection in v5.refusals.no_bin:
            report.note(f"{spec.name}: Pardot refuses deleted=all: syncs cannot read its recycle bin")
        report.ok(f"{spec.name}: may read (v5 {details.collection})")
