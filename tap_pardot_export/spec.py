"""One declaration per stream: everything the tap knows about an object, in one place.

A :class:`StreamSpec` names the stream, the API object, its kind, the replication key and
the ability the API user needs. An ``export`` stream is read through the Export API, one export
per time window: its spec names the procedures that filter it by time (with their bound
arguments, the field they filter on and the extra arguments a user may set), and its JSON schema
is ``schemas/<name>.json``. A ``query`` stream is read through the v5 query API: its spec's
:class:`QueryDetails` name the collection, how it is read (``incremental``, ``whole``,
``events``, ``singleton``), the date field its filters and sort use, and its fields with their
types (from :mod:`~tap_pardot_export.query_fields`), from which its schema is made. The settings
schema, the stream classes, the first-run check, the create healer's protected fields and the
deletes capture are all derived from :data:`SPECS`. Adding an export object is one entry here, a
schema file and a route in the sandbox; a v5 object is one entry in ``query_fields``.
"""

from __future__ import annotations

import dataclasses
import typing as t
from dataclasses import dataclass

from tap_pardot_export.query_fields import ABILITIES, OBJECTS

if t.TYPE_CHECKING:
    from collections.abc import Mapping

#: the arguments that select Pardot's recycle bin, as a procedure names them
DELETES_ARGUMENTS = ("deleted", "prospect_deleted")


@dataclass(frozen=True)
class Procedure:
    """An export procedure: its time-bound arguments, the field it filters on, the extra arguments it takes."""

    name: str
    after: str
    before: str
    #: the record field the bounds filter on (None: a field the rows do not carry)
    filters: str | None
    #: extra procedure arguments a user may set (their schemas: :data:`ARGUMENTS`)
    arguments: tuple[str, ...] = ()

    @property
    def deletes_argument(self) -> str | None:
        """The argument that selects the recycle bin, if the procedure takes one."""
        return next((a for a in DELETES_ARGUMENTS if a in self.arguments), None)


#: the JSON schema of each field type of :mod:`~tap_pardot_export.query_fields` (null added where nullable)
QUERY_TYPES: dict[str, dict[str, t.Any]] = {
    "i": {"type": ["integer"]},
    "n": {"type": ["number"]},
    "s": {"type": ["string"]},
    "b": {"type": ["boolean"]},
    "dt": {"type": ["string"], "format": "date-time"},
    "date": {"type": ["string"], "format": "date"},
    "obj": {"type": ["object"]},
    "ints": {"type": ["array"], "items": {"type": ["integer"]}},
}
#: how a query stream is read
QueryMode = t.Literal["incremental", "whole", "events", "singleton"]


@dataclass(frozen=True)
class QueryDetails:
    """How a query stream reads its v5 object."""

    #: the path segment: ``/api/v5/objects/{collection}``
    collection: str
    mode: QueryMode
    #: the datetime field its filters and sort use (``incremental`` and ``events``), as the API names it
    date_field: str | None
    #: its fields as the API names them, with their types (``query_fields``' codes)
    fields: tuple[tuple[str, str], ...]

    @property
    def recycle_bin(self) -> bool:
        """True when the object goes to Pardot's recycle bin (it has ``isDeleted``: read with ``deleted``)."""
        return any(name == "isDeleted" for name, _ in self.fields)

    def properties(self, never_null: frozenset[str]) -> dict[str, dict[str, t.Any]]:
        """The JSON schema of each field, keyed by its API name; nullable unless in ``never_null``."""
        out = {}
        for name, code in self.fields:
            schema = {**QUERY_TYPES[code], "type": list(QUERY_TYPES[code]["type"])}
            if name not in never_null:
                schema["type"].append("null")
            out[name] = schema
        return out


@dataclass(frozen=True)
class StreamSpec:
    """One stream of the tap, declared once."""

    name: str
    #: the object as the API names it
    api_object: str
    kind: t.Literal["export", "query"]
    #: what the API user needs to read it (the seed's abilities table; unverified for query streams)
    ability: str
    #: as the API names it; None for a query stream read whole
    replication_key: str | None
    #: the procedures that filter it by time; the first is the default (export streams)
    procedures: tuple[Procedure, ...]
    description: str
    #: fields a source says are never null, with that source (besides ``id`` and the replication key):
    #: every other field is nullable, and an empty cell is null
    never_null: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: how a query stream reads its v5 object
    query: QueryDetails | None = None

    @property
    def default_procedure(self) -> str:
        """The procedure used unless stream_options names another."""
        return self.procedures[0].name

    def procedure(self, name: str) -> Procedure:
        """The procedure called ``name`` (KeyError when the stream has none of that name)."""
        for p in self.procedures:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def never_null_fields(self) -> dict[str, str]:
        """Every field that is never null, with the evidence for it."""
        out = {"id": "the key: every record has one"}
        if self.replication_key:
            out[self.replication_key] = "the replication key: the API filters on it"
        return {**out, **self.never_null}

    @property
    def protected_fields(self) -> frozenset[str]:
        """Fields a sync cannot do without: the key, the replication key and every filter field."""
        filters = {p.filters for p in self.procedures if p.filters}
        return frozenset({"id", *filter(None, (self.replication_key, *filters))})

    @property
    def captures_deletes(self) -> bool:
        """True when the stream reads the recycle bin, so capture_deletes can mark deleted records."""
        if self.query is not None:
            return self.query.recycle_bin
        return any(p.deletes_argument for p in self.procedures)

    @property
    def windowed(self) -> bool:
        """True for a stream read in time windows (export streams, and the event-like query streams)."""
        return self.kind == "export" or (self.query is not None and self.query.mode == "events")


def _by_updated(*arguments: str) -> Procedure:
    return Procedure("filter_by_updated_at", "updated_after", "updated_before", "updated_at", arguments)


def _by_created(*arguments: str) -> Procedure:
    return Procedure("filter_by_created_at", "created_after", "created_before", "created_at", arguments)


def _by_prospect_updated() -> Procedure:
    # filters on the linked prospect's updated_at, which the rows do not carry
    return Procedure(
        "filter_by_prospect_updated_at",
        "prospect_updated_after",
        "prospect_updated_before",
        None,
        ("prospect_deleted",),
    )


SPECS: dict[str, StreamSpec] = {
    s.name: s
    for s in (
        StreamSpec(
            "prospect",
            "prospect",
            "export",
            "Prospects > Visitors > View",
            "updated_at",
            (_by_updated("deleted"), _by_created("deleted")),
            "Prospects.",
        ),
        StreamSpec(
            "visitor",
            "visitor",
            "export",
            "Prospects > Visitors > View",
            "updated_at",
            (_by_updated("deleted"), _by_prospect_updated()),
            "Visitors.",
        ),
        StreamSpec(
            "visitor_activity",
            "visitorActivity",
            "export",
            "Prospects > Visitors > View",
            "updated_at",
            (_by_updated("type", "prospectOnly"), _by_created("type", "prospect_only")),
            "Visitor activities (the largest object).",
        ),
        StreamSpec(
            "list_membership",
            "listMembership",
            "export",
            "Marketing > Segmentation > Lists > View and Prospects > Visitors > View",
            "updated_at",
            (_by_updated("deleted"), _by_created("deleted")),
            "List memberships.",
        ),
        StreamSpec(
            "prospect_account",
            "prospectAccount",
            "export",
            "Prospects > Prospect Accounts > View",
            "updated_at",
            (_by_updated("deleted"), _by_prospect_updated()),
            "Prospect accounts.",
        ),
        StreamSpec(
            "external_activity",
            "externalActivity",
            "export",
            "Prospect > External Activity > View",
            "createdAt",
            (
                Procedure("filter_by_created_at", "created_after", "created_before", "createdAt"),
                Procedure("filter_by_activity_date", "activity_after", "activity_before", "activityDate"),
            ),
            "External activities, by creation or activity date.",
            never_null=dict.fromkeys(
                ("extension", "extensionSalesforceId", "type", "typeSalesforceId", "prospectId", "activityDate"),
                "the Export API's external activity field table: Nullable No",
            ),
        ),
    )
}

QUERY_DESCRIPTIONS = {
    "incremental": "read whole on its first run, then what changed (updatedAt)",
    "whole": "read whole every run",
    "events": "read in [start_date, end_date) on {key}, in windows read side by side",
    "singleton": "one record: the business unit's settings and API usage",
}


def _query_spec(name: str) -> StreamSpec:
    """The spec of the v5 object ``name`` (:data:`~tap_pardot_export.query_fields.OBJECTS`)."""
    collection, mode, date_field, text = OBJECTS[name]
    fields = tuple(t.cast("tuple[str, str]", tuple(item.split(":", 1))) for item in text.split())
    key = date_field if mode in ("incremental", "events") else None
    details = QueryDetails(collection, t.cast("QueryMode", mode), date_field or None, fields)
    how = QUERY_DESCRIPTIONS[mode].format(key=date_field)
    return StreamSpec(name, collection, "query", ABILITIES[name], key, (), f"v5 {collection}: {how}.", query=details)


#: the query streams follow the export streams, in name order
SPECS.update({name: _query_spec(name) for name in sorted(OBJECTS)})

#: the schema of each extra procedure argument a user may set
ARGUMENTS: dict[str, dict[str, t.Any]] = {
    "deleted": {
        "type": ["string", "boolean"],
        "enum": ["true", "false", "all", True, False],
        "description": "true: deleted rows only; false (Pardot's default): not deleted; all: both.",
    },
    "prospect_deleted": {
        "type": ["string", "boolean"],
        "enum": ["true", "false", "all", True, False],
        "description": "By whether the linked prospect is deleted: true, false (Pardot's default) or all.",
    },
    "type": {
        "type": "array",
        "items": {"type": "integer", "minimum": 1},
        "minItems": 1,
        "description": "Visitor activity type codes to export, e.g. [1, 2]; default: all types.",
    },
    "prospect_only": {"type": "boolean", "description": "true: only activities linked to a prospect."},
    "prospectOnly": {"type": "boolean", "description": "true: only activities linked to a prospect."},
}

#: documented spellings of one argument (the seed vs older Salesforce docs): a refused one is sent as the other
SPELLINGS = {"prospect_only": "prospectOnly", "prospectOnly": "prospect_only"}
