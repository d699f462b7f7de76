"""The business unit's exports as Pardot lists them: the export query, behind "Admin > Exports > View".

``GET /api/export/version/{3|4}/do/query?format=json`` takes the filters ``status``
(Waiting, Processing, Complete, Failed), ``object``, ``created_after`` / ``created_before`` /
``updated_after`` / ``updated_before``, ``sort_by`` (id, created_at, updated_at) and
``sort_order``, and answers ``{"result": {"total_results": n, "export": ...}}``: the export
absent, one object, or a list. Its exports carry neither result links nor their object: the
object is known from the ``object`` filter. A user without the ability is refused with error
46 or 49 (:class:`NoExportView`). Pardot runs a business unit's exports one at a time, oldest
first: the exports ahead of one are the older ones Waiting or Processing (:func:`queue_ahead`).
"""

from __future__ import annotations

import dataclasses
import logging
import typing as t

from tap_pardot_export.errors import PardotAPIError, ResultFormatError
from tap_pardot_export.pardot.exports import STATES, export_id, is_true

if t.TYPE_CHECKING:
    from tap_pardot_export.pardot.client import PardotClient
    from tap_pardot_export.pardot.exports import ExportInfo

LOGGER = logging.getLogger("tap-pardot-export")
#: the codes of a refusal for a missing ability
NO_VIEW_CODES = frozenset({46, 49})
IN_QUEUE = ("Waiting", "Processing")
ABILITY = "Admin > Exports > View"


class NoExportView(PardotAPIError):
    """The API user lacks "Admin > Exports > View": Pardot lists no export (error 46 or 49)."""


@dataclasses.dataclass(frozen=True)
class Listed:
    """One export as the query (or a read) shows it."""

    id: int
    state: str
    expired: bool
    #: as Pardot wrote it, in the API user's zone
    created_at: str | None
    #: the API object, when the query filtered on it
    api_object: str | None = None

    @property
    def in_flight(self) -> bool:
        """Waiting or Processing, or Complete and not expired: Pardot still holds its work."""
        return self.state in IN_QUEUE or (self.state == "Complete" and not self.expired)


def listed(item: t.Any, what: str, api_object: str | None = None) -> Listed:
    """An export of an answer, checked (its id an integer, its state a known one)."""
    if not isinstance(item, dict) or item.get("state") not in STATES:
        msg = f"{what}: Pardot's answer has an export without a known state: {str(item)[:200]!r}"
        raise ResultFormatError(msg)
    created = item.get("createdAt")
    return Listed(
        id=export_id(item.get("id"), what),
        state=str(item["state"]),
        expired=is_true(item.get("isExpired")),
        created_at=created if isinstance(created, str) else None,
        api_object=api_object,
    )


def query_exports(
    client: PardotClient,
    *,
    status: str | None = None,
    api_object: str | None = None,
    created_after: str | None = None,
    sort_by: str = "id",
    sort_order: str = "ascending",
) -> tuple[int, list[Listed]]:
    """``(total_results, exports)`` of one export query.

    Raises:
        NoExportView: the API user lacks the ability to list exports.
        ResultFormatError: the answer is not a query result.
    """
    filters = {"status": status, "object": api_object, "created_after": created_after}
    params = {"sort_by": sort_by, "sort_order": sort_order, **{k: v for k, v in filters.items() if v is not None}}
    try:
        body = client.json("GET", "query", "query", params=params)
    except PardotAPIError as exc:
        if exc.code in NO_VIEW_CODES:
            msg = f"the API user lacks the {ABILITY} ability, so Pardot lists no export (error {exc.code})"
            raise NoExportView(msg, code=exc.code, status=exc.status) from None
        raise
    result = body.get("result") if isinstance(body, dict) else None
    if not isinstance(result, dict):
        msg = f"the export query answered without a result: {str(body)[:200]!r}"
        raise ResultFormatError(msg)
    items = result.get("export")
    items = [] if items is None else items if isinstance(items, list) else [items]
    exports = [listed(item, "the export query", api_object) for item in items]
    total = result.get("total_results")
    return (int(total) if isinstance(total, int) and not isinstance(total, bool) else len(exports)), exports


def queue_ahead(client: PardotClient, export_id: int | None = None) -> list[Listed]:
    """The business unit's exports Waiting or Processing, older than ``export_id`` (None: all), oldest first."""
    out: list[Listed] = []
    for status in IN_QUEUE:
        out += query_exports(client, status=status)[1]
    return sorted((e for e in out if export_id is None or e.id < export_id), key=lambda e: e.id)


class QueueWatch:
    """For the long-wait lines: how many exports are ahead of one of ours; says once when it cannot see."""

    def __init__(self, client: PardotClient) -> None:
        """Count through ``client``'s export query."""
        self.client = client
        self.blind = False

    def note(self, info: ExportInfo, state: str) -> str:
        """What the long-wait line says of the queue ahead of ``info`` (in ``state``)."""
        generic = "(Pardot runs one export at a time per account; others may be ahead of it)"
        if state != "Waiting":
            return "(Pardot works on it)"
        if self.blind:
            return generic
        try:
            ahead = queue_ahead(self.client, info.id)
        except NoExportView:
            self.blind = True
            return (
                f"{generic}; the exports ahead of it cannot be counted: the API user lacks the {ABILITY} ability "
                "(said once)"
            )
        except Exception as exc:  # noqa: BLE001 - a progress line: the next status read meets any real failure
            LOGGER.debug("the export query for the long-wait line failed: %s", exc)
            return generic
        return f"(Pardot runs one export at a time per account: {len(ahead)} other export(s) are ahead of it)"
