"""What the account says about its own fields: the custom field query and the prospect account describe.

Custom prospect fields come from ``GET /api/customField/version/{3|4}/do/query?format=json``
(paged by ``offset`` and ``limit`` up to 200); the prospect account fields from one
``GET /api/prospectAccount/version/{3|4}/do/describe?format=json``. Both answer in the
shapes Pardot's query answers use (absent, one object, or a list).
"""

from __future__ import annotations

import typing as t

from tap_pardot_export.errors import PardotAPIError

if t.TYPE_CHECKING:
    from tap_pardot_export.pardot.client import PardotClient

CUSTOM_FIELD_PAGE = 200
#: a bound on the pages read (200 fields each): no account has 10,000 custom fields
MAX_PAGES = 50


class DescribeError(PardotAPIError):
    """The prospect account describe answered something that is not a list of fields."""


class CustomFieldQueryError(PardotAPIError):
    """The custom field query answered something that is not a list of custom fields."""


def _as_list(value: t.Any) -> list[dict[str, t.Any]]:
    """Absent, one object, or a list: the shapes Pardot's query answers use."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(v, dict) for v in items):
        msg = f"the custom field query answered an unexpected shape: {str(value)[:200]!r}"
        raise CustomFieldQueryError(msg)
    return items


def query_custom_fields(client: PardotClient) -> list[dict[str, t.Any]]:
    """Every custom field of the account, read page by page."""
    out: list[dict[str, t.Any]] = []
    for page in range(MAX_PAGES):
        url = (
            f"{client.api_url}/api/customField/version/{client.api_version}/do/query"
            f"?format=json&offset={page * CUSTOM_FIELD_PAGE}&limit={CUSTOM_FIELD_PAGE}"
        )
        body = client.json("GET", "", "custom_field", url=url)
        result = body.get("result") if isinstance(body, dict) else None
        if not isinstance(result, dict):
            msg = f"the custom field query answered without a result: {str(body)[:200]!r}"
            raise CustomFieldQueryError(msg)
        items = _as_list(result.get("customField"))
        out.extend(items)
        total = int(result.get("total_results") or 0)
        if not items or len(items) < CUSTOM_FIELD_PAGE or len(out) >= total:
            break
    return out


def _describe_items(value: object) -> list[dict[str, t.Any]]:
    """The fields of a describe answer's ``result.field``: absent, one object, or a list.

    Args:
        value: ``result.field`` as Pardot answered it.

    Returns:
        Each field's attributes (the ``@attributes`` object, or the field itself without one).

    Raises:
        DescribeError: When an item is not an object.
    """
    items = [] if value is None else value if isinstance(value, list) else [value]
    out: list[dict[str, t.Any]] = []
    for item in items:
        attributes = item.get("@attributes", item) if isinstance(item, dict) else None
        if not isinstance(attributes, dict):
            msg = f"the prospect account describe answered an unexpected field: {str(item)[:200]!r}"
            raise DescribeError(msg)
        out.append(attributes)
    return out


def describe_prospect_account(client: PardotClient) -> list[dict[str, t.Any]]:
    """The prospect account fields of the account, from one describe call.

    ``GET /api/prospectAccount/version/{3|4}/do/describe?format=json`` answers
    ``{"result": {"field": [{"@attributes": {"id", "label", "type", "required", "custom",
    "has_options"}}, ...]}}``.

    Args:
        client: The client to call with (its API version switches on error 88/89).

    Returns:
        Each field's attributes, in the order Pardot lists them.

    Raises:
        DescribeError: When the answer has no ``result`` or a field that is not an object.
    """
    url = f"{client.api_url}/api/prospectAccount/version/{client.api_version}/do/describe?format=json"
    body = client.json("GET", "", "describe", url=url)
    result = body.get("result") if isinstance(body, dict) else None
    if not isinstance(result, dict):
        msg = f"the prospect account describe answered without a result: {str(body)[:200]!r}"
        raise DescribeError(msg)
    return _describe_items(result.get("field"))
