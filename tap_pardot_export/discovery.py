"""What discovery learns from the account: its custom prospect fields and its prospect account fields.

With a catalog, the account's fields are the catalog's (no API call). Else, with credentials,
the custom field query adds each custom field to ``prospect`` (its column: its ``field_id`` in
snake_case, :mod:`~tap_pardot_export.columns`), typed
from its Pardot ``type``, and the prospect account describe adds to ``prospect_account`` the
fields the built-in schema lacks:

- ``Number``: a JSON number;
- ``Date``: a string with format ``date`` (``YYYY-MM-DD``);
- everything else (``Text``, ``Textarea``, ``Dropdown``, ``Radio Button``, ``Hidden``,
  ``CRM User``, and the multi-value ``Checkbox`` and ``Multi-Select``): a string, exactly as
  the CSV gives it (how Pardot joins several values in a CSV cell is not documented).

Without credentials discovery stays offline; a failed query warns and keeps the built-in fields.
"""

from __future__ import annotations

import dataclasses
import typing as t

import requests

from tap_pardot_export.errors import PardotAPIError, PardotConfigError
from tap_pardot_export.pardot.account import describe_prospect_account, query_custom_fields
from tap_pardot_export.pardot.client import PardotClient, build_client

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from singer_sdk import Stream, Tap

    from tap_pardot_export.pardot.client import Connection
    from tap_pardot_export.settings.config import Settings

#: the stream custom fields belong to
CUSTOM_FIELD_STREAM = "prospect"
#: the stream whose fields the prospect account describe lists
DESCRIBE_STREAM = "prospect_account"
#: Pardot custom field types that are not strings
TYPED: dict[str, dict[str, t.Any]] = {
    "number": {"type": ["number", "null"]},
    "date": {"type": ["string", "null"], "format": "date"},
}
#: discovery and the check give up quickly: a few calls, none of them long
QUICK_TIMEOUT = 60.0


def has_credentials(connection: Connection) -> bool:
    """True when the settings allow API calls (a business unit and some credentials)."""
    creds = connection.credentials
    oauth = creds.client_id and creds.client_secret
    return bool(connection.business_unit_id and (creds.access_token or oauth))


def make_client(connection: Connection, *, max_retries: int = 2) -> PardotClient:
    """A client for the few calls of discovery and the check: quick to give up."""
    quick = dataclasses.replace(
        connection,
        max_retries=max_retries,
        retry_max_time=min(connection.retry_max_time, QUICK_TIMEOUT),
        request_timeout=min(connection.request_timeout, QUICK_TIMEOUT),
        max_concurrency=1,
        max_api_calls=None,
    )
    client = build_client(quick)
    client.tokens.purpose = " for discovery"
    return client


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


class AccountFields(t.Protocol):
    """A stream that takes the account's own fields (the export streams)."""

    def add_account_fields(self, fields: dict[str, dict[str, t.Any]]) -> list[str]:
        """Add fields named as the API names them; the columns added."""

    def add_catalog_properties(self, properties: dict[str, dict[str, t.Any]]) -> None:
        """Add the properties a catalog lists that the stream lacks."""


def _takes_fields(stream: object) -> AccountFields | None:
    return t.cast("AccountFields", stream) if hasattr(stream, "add_account_fields") else None


def _from_catalog(tap: t.Any, streams: Sequence[Stream]) -> None:
    """With a catalog, the account's fields are the catalog's: no API call."""
    catalog = tap.input_catalog
    for stream in streams:
        entry = catalog.get_stream(stream.name)
        target = _takes_fields(stream)
        if entry is None or target is None:
            continue
        target.add_catalog_properties(entry.schema.to_dict().get("properties") or {})


def learn_account_fields(tap: t.Any, settings: Settings, streams: Sequence[Stream]) -> None:
    """Add the account's own fields to the streams' schemas (the discovery hook).

    With a catalog: the fields it lists. Else, with credentials: the custom field query.
    Without credentials: nothing (discovery stays offline). A failed query warns and
    leaves the built-in schemas.
    """
    if tap.input_catalog is not None:
        _from_catalog(tap, streams)
        return
    client = lazy_client(settings.connection)  # one client for discovery's calls: one token, one version switch
    learn_prospect_account_fields(tap, settings, streams, client)
    prospect = next((_takes_fields(s) for s in streams if s.name == CUSTOM_FIELD_STREAM), None)
    if prospect is None or not has_credentials(settings.connection):
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
    # a built-in field of the same name wins; a field custom_fields lists is typed from the account
    added = prospect.add_account_fields(custom_field_properties(fields))
    tap.logger.info("The account has %d custom prospect field(s); added to the prospect stream", len(added))


def lazy_client(connection: Connection) -> Callable[[], PardotClient]:
    """A function giving one client for ``connection`` (see :func:`make_client`), made at its first call."""
    made: list[PardotClient] = []

    def get() -> PardotClient:
        if not made:
            made.append(make_client(connection))
        return made[0]

    return get


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
    tap: Tap, settings: Settings, streams: Sequence[Stream], client: Callable[[], PardotClient] | None = None
) -> None:
    """Add the fields the prospect account describe lists to the prospect_account stream.

    Called by :func:`learn_account_fields` without a catalog; needs credentials. Fields of the
    built-in schema keep their type; fields listed in ``custom_fields`` take the account's.
    A failed describe warns and leaves the built-in fields.

    Args:
        tap: The tap (its logger).
        settings: The run's settings (credentials, custom_fields).
        streams: The discovered streams.
        client: Gives the client to call with (default: a client of its own).
    """
    stream = next((_takes_fields(s) for s in streams if s.name == DESCRIBE_STREAM), None)
    if stream is None or not has_credentials(settings.connection):
        return
    try:
        fields = describe_prospect_account((client or lazy_client(settings.connection))())
    except (PardotAPIError, PardotConfigError, requests.RequestException) as exc:
        tap.logger.warning(
            "Could not read the account's prospect account fields (%s). The prospect_account stream has its "
            "built-in fields only (and custom_fields). List other fields in custom_fields.prospect_account.",
            exc,
        )
        return
    added = stream.add_account_fields(account_field_properties(fields))  # custom_fields' take the account's type
    tap.logger.info(
        "The prospect account describe lists %d field(s) the built-in schema lacks; added to prospect_account: %s",
        len(added),
        ", ".join(added) or "none",
    )
