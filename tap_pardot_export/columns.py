"""Column names: one rule from the API's field names to the tap's snake_case columns, for every stream.

Pardot names fields in camelCase in its v5 API and its newer exports (``prospectId``), in
snake_case in the v3/v4 exports (``prospect_id``), and as the admin typed them in custom fields
(``Favorite_Color``). A warehouse folds unquoted names to lower case (PostgreSQL), so every column
of the tap is the API name in snake_case: an underscore where a lower-case letter or a digit meets
an upper-case one, then everything in lower case (``prospectId`` -> ``prospect_id``,
``salesforceCmsId`` -> ``salesforce_cms_id``, ``Favorite_Color`` -> ``favorite_color``). Requests
still name fields as the API does.

When two API names of one stream give one column (``Favorite_Color`` and ``favorite_color``),
the first keeps it and the later keeps its API name as its column, with a warning. A column
whose API name differs carries that name as its JSON schema ``title``, so a catalog gives it back.
"""

from __future__ import annotations

import re
import typing as t

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Iterable, Mapping

_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def column_name(api_name: str) -> str:
    """The column of an API field name (``prospectId`` -> ``prospect_id``)."""
    return _BOUNDARY.sub("_", api_name).lower()


class Columns:
    """A stream's columns and the API names they come from (both ways)."""

    def __init__(self, stream: str) -> None:
        """No column yet."""
        self.stream = stream
        #: column -> API name
        self.api: dict[str, str] = {}
        #: API name -> column
        self.column: dict[str, str] = {}

    def add(self, api_name: str, logger: logging.Logger | None = None, column: str | None = None) -> str | None:
        """Give ``api_name`` its column (``column``, or the rule's); None when the API name has one already.

        A column another API name holds goes to the later name as its API name, with a warning
        (or, when that is taken too, the field is left out: None, with a warning).
        """
        if api_name in self.column:
            return None
        wanted = column or column_name(api_name)
        if wanted in self.api:
            held = self.api[wanted]
            if api_name in self.api:
                if logger is not None:
                    logger.warning(
                        "%s: fields %r and %r both make column %r; %r is left out (rename one in Pardot)",
                        self.stream,
                        held,
                        api_name,
                        wanted,
                        api_name,
                    )
                return None
            if logger is not None:
                logger.warning(
                    "%s: fields %r and %r both make column %r in snake_case: %r keeps it, %r is column %r",
                    self.stream,
                    held,
                    api_name,
                    wanted,
                    held,
                    api_name,
                    api_name,
                )
            wanted = api_name
        self.api[wanted] = api_name
        self.column[api_name] = wanted
        return wanted

    def api_name(self, column: str) -> str:
        """The API name of ``column`` (a column it does not know is its own API name)."""
        return self.api.get(column, column)

    def column_of(self, api_name: str) -> str:
        """The column of ``api_name`` (an API name it does not know: by the rule)."""
        return self.column.get(api_name) or column_name(api_name)


def rename_properties(
    columns: Columns, properties: Mapping[str, dict[str, t.Any]], logger: logging.Logger | None = None
) -> dict[str, dict[str, t.Any]]:
    """JSON schema properties keyed by API names, keyed by their columns (recorded in ``columns``)."""
    out: dict[str, dict[str, t.Any]] = {}
    for api_name, schema in properties.items():
        column = columns.add(api_name, logger)
        if column is not None:
            out[column] = titled(schema, api_name, column)
    return out


def titled(schema: Mapping[str, t.Any], api_name: str, column: str) -> dict[str, t.Any]:
    """``schema`` with the API name as its title when the column differs from it."""
    out = dict(schema)
    if column != api_name:
        out["title"] = api_name
    return out


def api_name_of(column: str, schema: Mapping[str, t.Any]) -> str:
    """The API name a catalog's property carries (its title, when set), else the column itself."""
    title = schema.get("title")
    if isinstance(title, str) and title and (column_name(title) == column or title == column):
        return title
    return column


def add_api_fields(
    columns: Columns,
    properties: dict[str, dict[str, t.Any]],
    fields: Iterable[tuple[str, dict[str, t.Any]]],
    logger: logging.Logger | None = None,
) -> list[str]:
    """Add fields named as the API names them to ``properties`` under their columns; the columns added."""
    added = []
    for api_name, schema in fields:
        column = columns.add(api_name, logger)
        if column is None:
            continue
        properties[column] = titled(schema, api_name, column)
        added.append(column)
    return added


#: business_unit_key's column: the business unit a record was read from, the first column of every stream's key
BUSINESS_UNIT = "business_unit_id"
#: its API name in a stream's columns: no Pardot field is named so, and a field that makes the same column
#: (a custom ``Business_Unit_Id``) keeps its API name as its column, with a warning
BUSINESS_UNIT_SOURCE = "(business_unit_key)"


def business_unit_column(columns: Columns, *, on: bool) -> dict[str, dict[str, t.Any]]:
    """With business_unit_key on: the ``business_unit_id`` property (never null), its column reserved; else none."""
    if not on:
        return {}
    columns.add(BUSINESS_UNIT_SOURCE, column=BUSINESS_UNIT)
    return {BUSINESS_UNIT: {"type": ["string"]}}


def business_unit_catalog_error(stream: str, *, on: bool, catalog: Mapping[str, t.Any]) -> str | None:
    """Why a catalog's properties (``catalog``) do not fit business_unit_key (``on``), or None when they do.

    A catalog made with the other value would load rows without the key's first column, or ask
    Pardot for a field no object has.
    """
    if on == (BUSINESS_UNIT in catalog):
        return None
    if on:
        return (
            f"stream {stream}: business_unit_key is on but the catalog has no {BUSINESS_UNIT} property (it was "
            "made with the setting off): run discovery again (--discover) and use the new catalog, or turn "
            "business_unit_key off."
        )
    return (
        f"stream {stream}: the catalog has a {BUSINESS_UNIT} property (it was made with business_unit_key on) "
        "but business_unit_key is off: turn it on, or run discovery again (--discover) and use the new catalog."
    )
