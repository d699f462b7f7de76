"""What the tap learns from the account: its custom fields, and the fields it refuses.

Custom prospect fields come from Pardot's custom field query
(``GET /api/customField/version/{3|4}/do/query?format=json``, paged by ``offset`` and
``limit`` up to 200). Each is a prospect export column under its ``field_id`` and is typed
from its Pardot ``type``:

- ``Number``: a JSON number;
- ``Date``: a string with format ``date`` (``YYYY-MM-DD``);
- everything else (``Text``, ``Textarea``, ``Dropdown``, ``Radio Button``, ``Hidden``,
  ``CRM User``, and the multi-value ``Checkbox`` and ``Multi-Select``): a string, exactly as
  the CSV gives it (multi-value fields are not split: how Pardot joins several values in a
  CSV cell is not documented).

:class:`CreateHealer` makes an export's create survive what a real account does
differently: a field the account does not have is dropped for the rest of the run (with one
warning naming it), and an argument refused under one documented spelling is sent under the
other.
"""

from __future__ import annotations

import logging
import re
import threading
import typing as t

import requests

from tap_pardot_export.client import PardotClient, build_client
from tap_pardot_export.errors import (
    CallBudgetSpent,
    DailyLimitReached,
    PardotAPIError,
    PardotAuthError,
    PardotConfigError,
)

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from singer_sdk import Stream, Tap

    from tap_pardot_export.exports import ExportSpec

LOGGER = logging.getLogger("tap-pardot-export")
CUSTOM_FIELD_PAGE = 200
#: a bound on the pages read (200 fields each): no account has 10,000 custom fields
MAX_PAGES = 50
#: creates retried after a refused field or argument spelling, at most (per export)
MAX_HEALS = 20
#: the stream custom fields belong to
CUSTOM_FIELD_STREAM = "prospect"
#: Pardot custom field types that are not strings
TYPED: dict[str, dict[str, t.Any]] = {
    "number": {"type": ["number", "null"]},
    "date": {"type": ["string", "null"], "format": "date"},
}
#: fields a sync cannot do without: primary keys, replication keys and filter fields
PROTECTED_FIELDS = frozenset({"id", "updated_at", "created_at", "createdAt", "activityDate"})
#: documented spellings of one argument (the seed vs older Salesforce docs)
ARGUMENT_SPELLINGS = {"prospect_only": "prospectOnly", "prospectOnly": "prospect_only"}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: where an error message starts listing what is accepted
_ACCEPTED = re.compile(r"(?i)\b(?:allowed|valid (?:fields|values|names|arguments)|use one of|procedures:)")


#: the stream whose fields the prospect account describe lists
DESCRIBE_STREAM = "prospect_account"


class DescribeError(PardotAPIError):
    """The prospect account describe answered something that is not a list of fields."""


class CustomFieldQueryError(PardotAPIError):
    """The custom field query answered something that is not a list of custom fields."""


def has_credentials(config: Mapping[str, t.Any]) -> bool:
    """True when the settings allow API calls (a business unit and some credentials)."""
    oauth = config.get("client_id") and config.get("client_secret")
    return bool(config.get("business_unit_id") and (config.get("access_token") or oauth))


def make_client(config: Mapping[str, t.Any], *, max_retries: int = 2) -> PardotClient:
    """A client for the few calls of discovery and the check: quick to give up."""
    quick = {
        **config,
        "max_retries": max_retries,
        "retry_max_time": min(float(config.get("retry_max_time", 600)), 60.0),
        "request_timeout": min(float(config.get("request_timeout", 300)), 60.0),
        "max_concurrency": 1,
        "max_api_calls": None,
    }
    return build_client(quick)


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


def property_for(field: Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The JSON schema of one custom field, from its Pardot type."""
    kind = str(field.get("type") or "Text")
    schema = dict(TYPED.get(kind.lower(), {"type": ["string", "null"]}))
    label = field.get("name") or field.get("field_id")
    schema["description"] = f"Custom field {label!s} (Pardot type {kind})"
    return schema


def custom_field_properties(fields: Iterable[Mapping[str, t.Any]]) -> dict[str, dict[str, t.Any]]:
    """``{field_id: schema}`` for the custom fields that name a column."""
    out: dict[str, dict[str, t.Any]] = {}
    for f in fields:
        field_id = f.get("field_id")
        if isinstance(field_id, str) and field_id:
            out[field_id] = property_for(f)
    return out


def _from_catalog(tap: t.Any, streams: Sequence[Stream]) -> None:
    """With a catalog, the account's fields are the catalog's: no API call."""
    catalog = tap.input_catalog
    for stream in streams:
        entry = catalog.get_stream(stream.name)
        if entry is None:
            continue
        props = stream.schema["properties"]
        for name, schema in (entry.schema.to_dict().get("properties") or {}).items():
            if name not in props:
                props[name] = schema


def learn_account_fields(tap: t.Any, streams: Sequence[Stream]) -> None:
    """Add the account's own fields to the streams' schemas (the discovery hook).

    With a catalog: the fields it lists. Else, with credentials: the custom field query.
    Without credentials: nothing (discovery stays offline). A failed query warns and
    leaves the built-in schemas.
    """
    if tap.input_catalog is not None:
        _from_catalog(tap, streams)
        return
    config = tap.config
    client = lazy_client(config)  # one client for discovery's calls: one token, one version switch
    learn_prospect_account_fields(tap, streams, client)
    prospect = next((s for s in streams if s.name == CUSTOM_FIELD_STREAM), None)
    if prospect is None or not has_credentials(config):
        return
    try:
        fields = query_custom_fields(client())
    except (PardotAPIError, PardotConfigError, requests.RequestException) as exc:
        tap.logger.warning(
            "Could not read the account's custom fields (%s). The prospect stream has its built-in fields "
            "only (and custom_fields). Give the API user the ability to view custom fields, or list them in "
            "custom_fields.",
            exc,
        )
        return
    props = prospect.schema["properties"]
    builtin = set(props) - set((config.get("custom_fields") or {}).get(CUSTOM_FIELD_STREAM) or [])
    added = 0
    for name, schema in custom_field_properties(fields).items():
        if name in builtin:
            continue  # a built-in field of the same name wins
        props[name] = schema  # typed from the account, also when custom_fields lists it
        added += 1
    tap.logger.info("The account has %d custom prospect field(s); added to the prospect stream", added)


def lazy_client(config: Mapping[str, t.Any]) -> Callable[[], PardotClient]:
    """A function giving one client for ``config`` (see :func:`make_client`), made at its first call.

    Args:
        config: The tap's settings.

    Returns:
        The function; it raises what :func:`make_client` raises.
    """
    made: list[PardotClient] = []

    def get() -> PardotClient:
        if not made:
            made.append(make_client(config))
        return made[0]

    return get


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


def account_field_properties(fields: Iterable[Mapping[str, t.Any]]) -> dict[str, dict[str, t.Any]]:
    """``{id: schema}`` for the described prospect account fields that name a column.

    A field is typed from its describe ``type``, case-insensitively, as custom prospect fields
    are: ``number`` a JSON number, ``date`` a string with format ``date``, every other type
    (``text``, ``textarea``, ``dropdown``, ...) a string as the CSV gives it.

    Args:
        fields: The describe's fields (their attributes).

    Returns:
        The JSON schema of each field, under its ``id``.
    """
    out: dict[str, dict[str, t.Any]] = {}
    for f in fields:
        field_id = f.get("id")
        if not isinstance(field_id, str) or not field_id:
            continue
        kind = str(f.get("type") or "text")
        schema = dict(TYPED.get(kind.lower(), {"type": ["string", "null"]}))
        custom = "Custom prospect account" if str(f.get("custom")).lower() in ("true", "1") else "Prospect account"
        schema["description"] = f"{custom} field {f.get('label') or field_id!s} (Pardot type {kind})"
        out[field_id] = schema
    return out


def learn_prospect_account_fields(
    tap: Tap, streams: Sequence[Stream], client: Callable[[], PardotClient] | None = None
) -> None:
    """Add the fields the prospect account describe lists to the prospect_account stream.

    Called by :func:`learn_account_fields` without a catalog; needs credentials. Fields of the
    built-in schema keep their type; fields listed in ``custom_fields`` take the account's.
    A failed describe warns and leaves the built-in fields.

    Args:
        tap: The tap (its config and logger).
        streams: The discovered streams.
        client: Gives the client to call with (default: a client of its own).
    """
    stream = next((s for s in streams if s.name == DESCRIBE_STREAM), None)
    config = tap.config
    if stream is None or not has_credentials(config):
        return
    try:
        fields = describe_prospect_account((client or lazy_client(config))())
    except (PardotAPIError, PardotConfigError, requests.RequestException) as exc:
        tap.logger.warning(
            "Could not read the account's prospect account fields (%s). The prospect_account stream has its "
            "built-in fields only (and custom_fields). List other fields in custom_fields.prospect_account.",
            exc,
        )
        return
    props = stream.schema["properties"]
    builtin = set(props) - set((config.get("custom_fields") or {}).get(DESCRIBE_STREAM) or [])
    found = {name: schema for name, schema in account_field_properties(fields).items() if name not in builtin}
    props.update(found)  # typed from the account, also when custom_fields lists them
    added = list(found)
    tap.logger.info(
        "The prospect account describe lists %d field(s) the built-in schema lacks; added to prospect_account: %s",
        len(added),
        ", ".join(added) or "none",
    )


def fields_named(message: str, fields: Sequence[str]) -> list[str]:
    """The requested ``fields`` an error message names as refused.

    Names after "Allowed" (or "valid ...", "use one of") list what is accepted, so they are
    ignored; then names after the last colon win, else names anywhere in the message.
    """
    message = _ACCEPTED.split(message, 1)[0]
    tail = message.rsplit(":", 1)[-1]
    for text in (tail, message):
        words = set(_NAME.findall(text))
        named = [f for f in fields if f in words]
        if named:
            return named
    return []


class CreateHealer:
    """What a run learned from refused creates: fields to leave out, argument spellings to use."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        """Start with nothing learned."""
        self.logger = logger or LOGGER
        self.dropped: dict[str, list[str]] = {}  # API object -> fields the account lacks
        self.spelling: dict[tuple[str, str], dict[str, str]] = {}  # (object, procedure) -> renames
        self.refused: set[tuple[str, str, str]] = set()  # (object, procedure, argument) refused
        self._lock = threading.Lock()

    def apply(self, spec: ExportSpec) -> None:
        """Shape ``spec`` by what earlier creates taught (new lists: specs share theirs)."""
        with self._lock:
            dropped = set(self.dropped.get(spec.object, ()))
            renames = dict(self.spelling.get((spec.object, spec.procedure), {}))
        if dropped:
            spec.fields = [f for f in spec.fields if f not in dropped]
        if renames:
            spec.arguments = {renames.get(k, k): v for k, v in spec.arguments.items()}

    def heal(self, spec: ExportSpec, exc: PardotAPIError) -> bool:
        """Learn from a refused create; True when ``spec`` changed and the create may be retried.

        Raises a clear error when Pardot refuses a field the sync cannot do without.
        """
        if isinstance(exc, (PardotAuthError, DailyLimitReached, CallBudgetSpent)):
            return False
        if exc.status is not None and not 400 <= exc.status < 500:
            return False
        message = str(exc)
        return self._respell(spec, message) or self._drop(spec, message)

    def _respell(self, spec: ExportSpec, message: str) -> bool:
        named = fields_named(message, [a for a in spec.arguments if a in ARGUMENT_SPELLINGS])
        if not named:
            return False
        with self._lock:
            renames = self.spelling.setdefault((spec.object, spec.procedure), {})
            for arg in named:
                other = ARGUMENT_SPELLINGS[arg]
                self.refused.add((spec.object, spec.procedure, arg))
                if (spec.object, spec.procedure, other) in self.refused:
                    return False  # both spellings were refused: the error stands
                renames[arg] = other
                renames.pop(other, None)
        stream = spec.label.split(" ", 1)[0] or spec.object
        for arg in named:
            self.logger.warning(
                "%s: Pardot refused the argument %s of %s; sending it as %s (its other documented spelling) "
                "for the rest of the run.",
                stream,
                arg,
                spec.procedure,
                ARGUMENT_SPELLINGS[arg],
            )
        self.apply(spec)
        return True

    def _drop(self, spec: ExportSpec, message: str) -> bool:
        if "field" not in message.lower():
            return False
        named = fields_named(message, spec.fields)
        if not named:
            return False
        stream = spec.label.split(" ", 1)[0] or spec.object
        vital = [f for f in named if f in PROTECTED_FIELDS]
        if vital:
            msg = (
                f"{stream}: Pardot refused the field(s) {', '.join(vital)}, which the sync cannot do without "
                f"({message}). Check api_url and api_version, and the API user's abilities for {spec.object}."
            )
            raise PardotAPIError(msg, code=None, status=None)
        with self._lock:
            known = self.dropped.setdefault(spec.object, [])
            new = [f for f in named if f not in known]
            known.extend(new)
        for name in new:
            self.logger.warning(
                "%s: this account has no field %r (Pardot refused it: %s). The tap leaves it out for the rest "
                "of the run; its values are null. To silence this warning, deselect %s.%s in the catalog.",
                stream,
                name,
                message,
                stream,
                name,
            )
        self.apply(spec)
        return True
