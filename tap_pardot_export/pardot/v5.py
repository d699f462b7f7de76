"""The v5 query API: one page of a query or of its page-token chain, the account, and what refusals teach.

``GET {api_url}/api/v5/objects/{collection}?fields=...&<filters>&orderBy=...&deleted=...&limit=1000``
answers ``{"values": [...], "nextPageToken": ..., "nextPageUrl": ...}``; the next page is the
token with ``fields`` and nothing else. A chain stops after 100,000 records with
``Pardot-Warning: 203`` and no token (:attr:`Page.capped`); a token expires after 4 hours (error
210, or 211 for one Pardot no longer knows: :class:`TokenExpired`). Datetime parameters carry a
numeric offset (``+00:00``, the ``+`` percent-encoded: ``Z`` is refused). The calls go through
the run's :class:`~tap_pardot_export.pardot.client.PardotClient`: its token, its concurrency
slots (shared with the exports' downloads), its call budget and its retries.

A field the account refuses (HTTP 400, code 51 naming it) is dropped for the rest of the run with
one warning, as the exports' healer does; so is the ``deleted`` parameter of an object that
refuses it. An object refusing its date filter or sort raises :class:`DatesRefused`: the engine
reads it whole by id instead, with one warning.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import typing as t
import urllib.parse

import orjson

from tap_pardot_export.errors import PardotAPIError, ResultFormatError
from tap_pardot_export.pardot.client import Call

if t.TYPE_CHECKING:
    from collections.abc import Collection

    from tap_pardot_export.pardot.client import PardotClient

LOGGER = logging.getLogger("tap-pardot-export")
#: records a page may hold, at most: pages cost calls, so always the most
PAGE_LIMIT = 1000
#: the counter and metric name of a v5 call
KIND = "query_v5"
#: Pardot-Warning 203: the chain stopped at its cap, more records match
CAP_WARNING = "203"
#: a page token expired (210) or is no longer known (211): the chain is re-queried from its last key
TOKEN_CODES = frozenset({210, 211})
#: a parameter or field is invalid
INVALID_CODE = 51
#: more than three fields carry filters
TOO_MANY_FILTERS = 209
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TokenExpired(PardotAPIError):
    """The page token expired or is unknown: re-query from the last key read."""


class DatesRefused(PardotAPIError):
    """The object refuses its date filter or sort: read it whole by id."""


@dataclasses.dataclass(frozen=True)
class Query:
    """One v5 query: what to return, which records, in what order."""

    collection: str
    fields: tuple[str, ...]
    #: (parameter, value) filters, values as the API takes them
    filters: tuple[tuple[str, str], ...] = ()
    order_by: str | None = None
    deleted: str | None = None
    limit: int = PAGE_LIMIT

    def params(self) -> list[tuple[str, str]]:
        """The query's parameters, ``fields`` first."""
        out = [("fields", ",".join(self.fields)), *self.filters]
        if self.order_by:
            out.append(("orderBy", self.order_by))
        if self.deleted:
            out.append(("deleted", self.deleted))
        out.append(("limit", str(self.limit)))
        return out


@dataclasses.dataclass
class Page:
    """One answered page."""

    records: list[dict[str, t.Any]]
    #: the next page's token (None: the chain ended, or stopped at its cap)
    token: str | None
    #: the chain stopped at its cap (Pardot-Warning 203) while more records match
    capped: bool = False


def url_of(client: PardotClient, collection: str, params: list[tuple[str, str]]) -> str:
    """The query's URL; a ``+`` (an offset) is percent-encoded, as the API needs."""
    query = urllib.parse.urlencode(params, quote_via=urllib.parse.quote, safe=",")
    return f"{client.api_url}/api/v5/objects/{collection}?{query}"


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text))


class Refusals:
    """What the account refused this run, per collection: fields, the ``deleted`` parameter, date filters."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        """Nothing refused yet."""
        self.logger = logger or LOGGER
        self.dropped: dict[str, list[str]] = {}
        self.no_bin: set[str] = set()
        self.no_dates: set[str] = set()
        self._lock = threading.Lock()

    def apply(self, query: Query) -> Query:
        """``query`` without what its collection refused."""
        with self._lock:
            dropped = set(self.dropped.get(query.collection, ()))
            no_bin = query.collection in self.no_bin
        fields = tuple(f for f in query.fields if f not in dropped)
        return dataclasses.replace(query, fields=fields, deleted=None if no_bin else query.deleted)

    def learn(self, query: Query, exc: PardotAPIError, stream: str, protected: Collection[str]) -> bool:
        """Learn from a refused query; True when it may be sent again without what was refused.

        Raises:
            DatesRefused: the object refuses its date filter or sort.
            PardotAPIError: a field the stream cannot do without was refused.
        """
        if exc.code != INVALID_CODE:
            return False
        message = str(exc)
        named = _words(message.split("error 51:", 1)[-1])
        refused = [f for f in query.fields if f in named]
        if refused and "field" in message.lower():
            return self._drop(query, refused, message, stream, protected)
        if query.deleted and "deleted" in named:
            with self._lock:
                self.no_bin.add(query.collection)
            self.logger.warning(
                "%s: Pardot refuses the deleted parameter on %s (%s): records in its recycle bin are not read, "
                "and capture_deletes cannot mark them",
                stream,
                query.collection,
                message,
            )
            return True
        dated = {p for p, _ in query.filters if not p.startswith("id")} | ({"orderBy"} if query.order_by else set())
        if dated & named:
            with self._lock:
                self.no_dates.add(query.collection)
            raise DatesRefused(message, code=exc.code, status=exc.status)
        return False

    def _drop(self, query: Query, refused: list[str], message: str, stream: str, protected: Collection[str]) -> bool:
        vital = [f for f in refused if f in protected]
        if vital:
            msg = (
                f"{stream}: Pardot refused the field(s) {', '.join(vital)}, which the stream cannot do without "
                f"({message}). Check api_url and the API user's abilities for {query.collection}, or deselect "
                "the stream."
            )
            raise PardotAPIError(msg, code=INVALID_CODE)
        with self._lock:
            known = self.dropped.setdefault(query.collection, [])
            new = [f for f in refused if f not in known]
            known.extend(new)
        for name in new:
            self.logger.warning(
                "%s: this account refuses the field %r (%s). The tap leaves it out for the rest of the run; its "
                "values are null. To silence this warning, deselect it in the catalog.",
                stream,
                name,
                message,
            )
        return True


class V5Reader:
    """Pages of v5 queries through the run's client, surviving the account's refusals."""

    def __init__(self, client: PardotClient, logger: logging.Logger | None = None) -> None:
        """Read through ``client``."""
        self.client = client
        self.refusals = Refusals(logger)

    def page(self, query: Query, token: str | None, stream: str, protected: Collection[str] = ("id",)) -> Page:
        """The first page of ``query``, or the page ``token`` names (sent with the fields alone).

        Raises:
            TokenExpired: the token expired or is unknown (re-query from the last key).
            DatesRefused: the object refuses its date filter or sort.
        """
        for _ in range(len(query.fields) + 2):  # each pass drops one refusal at least
            sent = self.refusals.apply(query)
            params = [("fields", ",".join(sent.fields)), ("nextPageToken", token)] if token else sent.params()
            try:
                return self._get(sent, url_of(self.client, query.collection, params), stream)
            except PardotAPIError as exc:
                if exc.code in TOKEN_CODES and token:
                    raise TokenExpired(str(exc), code=exc.code, status=exc.status) from None
                if exc.code == TOO_MANY_FILTERS:
                    msg = f"{stream}: Pardot refused the query's filters as too many (error 209: {exc}); report it"
                    raise PardotAPIError(msg, code=exc.code, status=exc.status) from None
                if not self.refusals.learn(sent, exc, stream, protected):
                    raise
        msg = f"{stream}: Pardot kept refusing the query of {query.collection}"
        raise PardotAPIError(msg)

    def _get(self, query: Query, url: str, stream: str) -> Page:
        resp = self.client.request(Call("GET", "", KIND, url=url))
        try:
            body = orjson.loads(resp.content)
        except orjson.JSONDecodeError:  # pragma: no cover - classified as JSON already (beyond orjson's ints: retry)
            body = resp.json()
        values = body.get("values") if isinstance(body, dict) else None
        token = body.get("nextPageToken") if isinstance(body, dict) else None
        if not isinstance(values, list) or not all(isinstance(v, dict) for v in values):
            msg = (
                f"{stream}: the v5 query of {query.collection} answered without a list of records: {str(body)[:200]!r}"
            )
            raise ResultFormatError(msg)
        if token is not None and (not isinstance(token, str) or not token):
            msg = f"{stream}: the v5 query of {query.collection} answered a page token that is not one: {token!r}"
            raise ResultFormatError(msg)
        warnings = resp.headers.get("Pardot-Warning", "")
        capped = any(w.strip().startswith(CAP_WARNING) for w in warnings.split(","))
        return Page(values, token, capped=capped and token is None)

    def account(self, fields: tuple[str, ...], stream: str = "account") -> dict[str, t.Any]:
        """The account singleton (no paging, no filters), without the fields the account refuses."""
        query = Query("account", fields)
        for _ in range(len(fields) + 1):
            sent = self.refusals.apply(query)
            url = url_of(self.client, "account", [("fields", ",".join(sent.fields))])
            try:
                body = self.client.request(Call("GET", "", "account_v5", url=url)).json()
            except PardotAPIError as exc:
                if not self.refusals.learn(sent, exc, stream, ("id",)):
                    raise
                continue
            if not isinstance(body, dict):
                msg = f"{stream}: the v5 account answered something that is not a record: {str(body)[:200]!r}"
                raise ResultFormatError(msg)
            return body
        msg = f"{stream}: Pardot kept refusing the account's fields"
        raise PardotAPIError(msg)
