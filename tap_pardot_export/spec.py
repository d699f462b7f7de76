"""One declaration per stream: everything the tap knows about an object, in one place.

A :class:`StreamSpec` names the stream, the API object, its kind (an ``export`` stream is read
through the Export API, one export per time window), the procedures that filter it by time
(with their bound arguments, the field they filter on and the extra arguments a user may
set), the replication key and the ability the API user needs. The settings schema, the
stream classes, the first-run check, the create healer's protected fields and the deletes
capture are all derived from :data:`SPECS`; each stream's JSON schema is
``schemas/<name>.json``. Adding an export object is one entry here, a schema file and a
route in the sandbox.
"""

from __future__ import annotations

import dataclasses
import typing as t
from dataclasses import dataclass

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


@dataclass(frozen=True)
class StreamSpec:
    """One stream of the tap, declared once."""

    name: str
    #: the object as the API names it
    api_object: str
    kind: t.Literal["export"]
    #: what the API user needs to read it (the seed's abilities table)
    ability: str
    replication_key: str
    #: the procedures that filter it by time; the first is the default
    procedures: tuple[Procedure, ...]
    description: str
    #: fields a source says are never null, with that source (besides ``id`` and the replication key):
    #: every other field is nullable, and an empty cell is null
    never_null: Mapping[str, str] = dataclasses.field(default_factory=dict)

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
        return {
            "id": "the key: every record has one",
            self.replication_key: "the replication key: the export filters on it",
            **self.never_null,
        }

    @property
    def protected_fields(self) -> frozenset[str]:
        """Fields a sync cannot do without: the key, the replication key and every filter field."""
        filters = {p.filters for p in self.procedures if p.filters}
        return frozenset({"id", self.replication_key, *filters})

    @property
    def captures_deletes(self) -> bool:
        """True when a procedure selects the recycle bin, so capture_deletes can mark deleted records."""
        return any(p.deletes_argument for p in self.procedures)


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
