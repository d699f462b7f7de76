"""The v5 query API's semantics: parameters, filters, sort, keyset pages, page tokens, the chain cap.

``GET /api/v5/objects/{collection}?fields=...`` answers ``{"values": [...], "nextPageToken": ...,
"nextPageUrl": ...}``. Pages are keyset pages on the sort key (the ``orderBy`` fields, then ``id``);
the token carries the query and the last key served, so a token alone resumes the chain, and
re-sending it gives the same page while the data does not change.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import hashlib
import heapq
import hmac
import itertools
import json
import math
import re
import typing as t
import urllib.parse

from pardot_export_sandbox.data import DATETIME
from pardot_export_sandbox.engine import ApiError
from pardot_export_sandbox.v5data import ACCOUNT_FIELDS

if t.TYPE_CHECKING:
    from pardot_export_sandbox.v5data import V5Dataset, V5Object

DEFAULT_LIMIT = 200
MAX_LIMIT = 1000
MAX_OFFSET = 2000
MAX_FILTER_FIELDS = 3
DEFAULT_CHAIN_CAP = 100_000
DEFAULT_TOKEN_TTL = 4 * 3600.0
CAP_WARNING = "203;Record count for nextPageToken sequence has been exceeded. No page token returned."
RESERVED = ("fields", "limit", "orderBy", "deleted", "offset", "nextPageToken")
#: filter suffixes, longest first: the id family (and equality) and the datetime family
INT_SUFFIXES = {"GreaterThanOrEqualTo": "ge", "LessThanOrEqualTo": "le", "GreaterThan": "gt", "LessThan": "lt"}
DT_SUFFIXES = {"AfterOrEqualTo": "ge", "BeforeOrEqualTo": "le", "After": "gt", "Before": "lt"}
_SUFFIXES = sorted((*INT_SUFFIXES, *DT_SUFFIXES), key=len, reverse=True)
#: ISO 8601 with a numeric offset; ``Z`` and a ``+`` that arrived as a space do not match
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{3}|\.\d{6})?)?[+-]\d{2}:\d{2}$")

Key = tuple[int, ...]


@dataclasses.dataclass
class Query:
    """A validated query: what to return, which records, in what order, how many per page."""

    obj: V5Object
    fields: list[str]
    #: the filter parameters as sent (a page token carries them)
    params: dict[str, str]
    #: field -> inclusive (low, high) bounds from the filters (None: unbounded)
    bounds: dict[str, tuple[int | None, int | None]]
    #: (field, descending); ``id`` ends it as the tie-break when the request did not name it
    order: list[tuple[str, bool]]
    order_text: str
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    deleted: str | None = None  # None: the object has no recycle bin

    def key(self, rec: dict[str, t.Any]) -> Key:
        """The record's sort key: ascending tuples, descending fields negated."""
        return tuple(-rec[f] if desc else rec[f] for f, desc in self.order)

    def matches(self, rec: dict[str, t.Any]) -> bool:
        """Whether ``rec`` passes the filters and the ``deleted`` selection."""
        for name, (lo, hi) in self.bounds.items():
            v = rec.get(name)
            if v is None or (lo is not None and v < lo) or (hi is not None and v > hi):
                return False
        if self.deleted is not None and self.deleted != "all":
            return bool(rec.get("isDeleted")) == (self.deleted == "true")
        return True

    def needed(self) -> list[str]:
        """The fields a page must generate: requested, filtered, sorted, and isDeleted."""
        names = dict.fromkeys([*self.fields, *self.bounds, *(f for f, _ in self.order)])
        if self.deleted is not None:
            names["isDeleted"] = None
        return list(names)


@dataclasses.dataclass
class Paging:
    """The knobs of a token chain."""

    base_url: str
    secret: bytes
    now: float
    chain_cap: int = DEFAULT_CHAIN_CAP
    token_ttl: float = DEFAULT_TOKEN_TTL


@dataclasses.dataclass
class PageResult:
    """One answered page: the JSON answer, its extra headers, and how many records it holds."""

    answer: dict[str, t.Any]
    headers: dict[str, str]
    count: int
    capped: bool


def invalid(name: str) -> ApiError:
    """The error for a parameter the object does not take."""
    return ApiError(400, 51, f"Parameter {name} is invalid.")


def parse_fields(obj_fields: t.Collection[str], raw: str | None, refused: t.Collection[str]) -> list[str]:
    """The requested field names, or error 13 (none) / 51 (the first unknown or refused one)."""
    if raw is None or not raw.strip():
        raise ApiError(400, 13, "One or more required parameters are missing: fields")
    names = [n.strip() for n in raw.split(",")]
    for n in names:
        if not n or n not in obj_fields or n in refused:
            raise ApiError(400, 51, f"Invalid parameter: fields. It contains an invalid or unknown field: {n}.")
    return list(dict.fromkeys(names))


def _split(param: str) -> tuple[str, str]:
    """``idGreaterThan`` -> (``id``, ``GreaterThan``); a bare field name -> (name, "")."""
    for suffix in _SUFFIXES:
        if param.endswith(suffix) and len(param) > len(suffix):
            return param[: -len(suffix)], suffix
    return param, ""


def parse_datetime(param: str, value: str) -> float:
    """An ISO 8601 datetime with a numeric offset, as epoch seconds, or error 51."""
    if _ISO.match(value):
        try:
            return dt.datetime.fromisoformat(value).timestamp()
        except ValueError:
            pass
    raise ApiError(
        400,
        51,
        f"Invalid date time value for parameter {param}: {value!r}. Use ISO 8601 with a numeric offset, "
        "e.g. 2024-01-01T00:00:00-05:00 (percent-encode a + as %2B).",
    )


def _bound(op: str, v: float) -> tuple[int | None, int | None]:
    """An operator and value as inclusive integer bounds."""
    if op == "gt":
        return math.floor(v) + 1, None
    if op == "ge":
        return math.ceil(v), None
    if op == "lt":
        return None, math.ceil(v) - 1
    if op == "le":
        return None, math.floor(v)
    return math.ceil(v), math.floor(v)  # eq


def parse_filters(obj: V5Object, params: dict[str, str]) -> dict[str, tuple[int | None, int | None]]:
    """The filter parameters as bounds per field; 209 for too many fields, 51 for one the object lacks."""
    filters = {p: v for p, v in params.items() if p not in RESERVED}
    fields = {_split(p)[0] for p in filters}
    if len(fields) > MAX_FILTER_FIELDS:
        raise ApiError(
            400, 209, f"Too many filters: {len(fields)} fields are filtered on, at most {MAX_FILTER_FIELDS} may be."
        )
    bounds: dict[str, tuple[int | None, int | None]] = {}
    for param, value in filters.items():
        name, suffix = _split(param)
        if name == "id" and (suffix in INT_SUFFIXES or not suffix):
            is_dt = False
        elif name == obj.date_field and suffix in DT_SUFFIXES:
            is_dt = True
        elif name in obj.eq_filters and not suffix:
            is_dt = False
        else:
            raise invalid(param)
        if is_dt:
            v = parse_datetime(param, value)
            op = DT_SUFFIXES[suffix]
        else:
            try:
                v = int(value.strip())
            except ValueError:
                raise ApiError(400, 51, f"Invalid parameter: {param}. It must be an integer: {value!r}.") from None
            op = INT_SUFFIXES.get(suffix, "eq")
        lo, hi = _bound(op, v)
        old_lo, old_hi = bounds.get(name, (None, None))
        bounds[name] = (
            lo if old_lo is None else old_lo if lo is None else max(lo, old_lo),
            hi if old_hi is None else old_hi if hi is None else min(hi, old_hi),
        )
    return bounds


def parse_order(obj: V5Object, raw: str | None) -> tuple[list[tuple[str, bool]], str]:
    """``orderBy`` (``updatedAt asc, id desc``) on sortable fields; ``id asc`` by default."""
    if raw is None:
        return [("id", False)], "id asc"
    order: list[tuple[str, bool]] = []
    for part in raw.split(","):
        words = part.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise ApiError(
                400, 51, f"Invalid parameter: orderBy. Cannot read {part.strip()!r}: use 'field [asc|desc]'."
            )
        name = words[0]
        if name not in obj.sortable:
            raise ApiError(
                400,
                51,
                f"Invalid parameter: orderBy. {name} is not sortable on {obj.collection}; "
                f"sortable: {', '.join(obj.sortable)}.",
            )
        if any(f == name for f, _ in order):
            raise ApiError(400, 51, f"Invalid parameter: orderBy. {name} is named twice.")
        order.append((name, len(words) == 2 and words[1].lower() == "desc"))
    text = ", ".join(f"{f} {'desc' if d else 'asc'}" for f, d in order)
    if all(f != "id" for f, _ in order):
        order.append(("id", False))
    return order, text


def _int_param(params: dict[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        v = int(raw.strip())
    except ValueError:
        v = lo - 1
    if not lo <= v <= hi:
        raise ApiError(400, 51, f"Invalid parameter: {name}. It must be an integer from {lo} to {hi}: {raw!r}.")
    return v


def parse_query(obj: V5Object, params: dict[str, str], refused: t.Collection[str]) -> Query:
    """A query's parameters checked against the object, or the error Pardot answers."""
    fields = parse_fields(obj.fields, params.get("fields"), {*refused, *obj.write_only})
    bounds = parse_filters(obj, params)
    limit = _int_param(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    order, text = parse_order(obj, params.get("orderBy"))
    deleted: str | None = None
    if "deleted" in params:
        if not obj.has_bin:
            raise invalid("deleted")
        deleted = params["deleted"].strip().lower()
        if deleted not in ("true", "false", "all"):
            raise ApiError(
                400, 51, f"Invalid parameter: deleted. It must be true, false or all: {params['deleted']!r}."
            )
    elif obj.has_bin:
        deleted = "false"
    offset = _int_param(params, "offset", 0, 0, MAX_OFFSET)
    filters = {p: v for p, v in params.items() if p not in RESERVED}
    return Query(obj, fields, filters, bounds, order, text, limit, offset, deleted)


# -- pages ---------------------------------------------------------------------------------


def page(v5: V5Dataset, q: Query, resume: Key | None, n: int) -> tuple[list[dict[str, t.Any]], bool]:
    """The ``n`` records after ``resume`` in ``q``'s order, and whether more follow.

    A first page (no ``resume``) skips ``q.offset`` records first.
    """
    obj = q.obj
    with v5.lock:
        changed = list(obj.changed.values())
        skip = set(obj.changed) | set(obj.removed)
    extra = [(q.key(r), r) for r in changed if q.matches(r)]
    extra = sorted((kr for kr in extra if resume is None or kr[0] > resume), key=lambda kr: kr[0])
    skipped = q.offset if resume is None else 0
    want = skipped + n + 1
    merged = heapq.merge(extra, _generated(q, resume, skip, want), key=lambda kr: kr[0])
    got = [rec for _, rec in itertools.islice(merged, want)][skipped:]
    return got[:n], len(got) > n


def _generated(q: Query, resume: Key | None, skip: set[int], want: int) -> t.Iterator[tuple[Key, dict[str, t.Any]]]:
    """Generated records (changed ones excluded) matching ``q``, after ``resume``, in sort order."""
    obj = q.obj
    base = obj.base_id
    first, last = _index_bounds(q)
    if first > last:
        return
    names = q.needed()
    # what matching and sorting need: a record's other fields are generated only once it is taken
    light = list(dict.fromkeys([*q.bounds, *(f for f, _ in q.order), *(["isDeleted"] if q.deleted else [])]))
    primary, desc = q.order[0]

    def candidates(indexes: t.Iterable[int]) -> t.Iterator[tuple[Key, int]]:
        for i in indexes:
            if base + i in skip:
                continue
            rec = obj.row(i, light)
            if not q.matches(rec):
                continue
            k = q.key(rec)
            if resume is None or k > resume:
                yield k, i

    def full(pairs: t.Iterable[tuple[Key, int]]) -> t.Iterator[tuple[Key, dict[str, t.Any]]]:
        for k, i in pairs:
            yield k, obj.row(i, names)

    if primary == "id":
        if resume is not None:
            rid = -resume[0] if desc else resume[0]
            if desc:
                last = min(last, rid - base)
            else:
                first = max(first, rid - base)
        yield from full(candidates(range(last, first - 1, -1) if desc else range(first, last + 1)))
        return
    yield from full(_by_time(q, primary, desc, resume, (first, last), candidates, want))


def _index_bounds(q: Query) -> tuple[int, int]:
    """The first and last generated indexes the id and datetime filters leave."""
    obj = q.obj
    first, last = 0, obj.count - 1
    id_lo, id_hi = q.bounds.get("id", (None, None))
    if id_lo is not None:
        first = max(first, id_lo - obj.base_id)
    if id_hi is not None:
        last = min(last, id_hi - obj.base_id)
    if obj.date_field is not None and obj.date_field in q.bounds:
        rng = obj.index_range(obj.date_field, *q.bounds[obj.date_field])
        first, last = max(first, rng.start), min(last, rng.stop - 1)
    return first, last


def _by_time(
    q: Query,
    name: str,
    desc: bool,  # noqa: FBT001
    resume: Key | None,
    index_bounds: tuple[int, int],
    candidates: t.Callable[[t.Iterable[int]], t.Iterator[tuple[Key, int]]],
    want: int,
) -> t.Iterator[tuple[Key, int]]:
    """Records' keys and indexes sorted on the datetime ``name``: windows of time, each sorted, widening as they go."""
    obj = q.obj
    lo, hi = q.bounds.get(name, (None, None))
    if resume is not None:
        ts = -resume[0] if desc else resume[0]
        if desc:
            hi = ts if hi is None else min(hi, ts)
        else:
            lo = ts if lo is None else max(lo, ts)
    lo_off, hi_off = obj.bounds[name]
    floor, ceiling = obj.start + lo_off, obj.start + obj.span + hi_off
    lo = floor if lo is None else max(lo, floor)
    hi = ceiling if hi is None else min(hi, ceiling)
    width = max(60, want * obj.span // max(obj.count, 1) + 1)
    gen = obj.fields[name].gen
    first, last = index_bounds
    while lo <= hi:
        a, b = (max(lo, hi - width + 1), hi) if desc else (lo, min(hi, lo + width - 1))
        rng = obj.index_range(name, a, b)
        window = range(max(first, rng.start), min(last + 1, rng.stop))
        inside = [i for i in window if (v := gen(i)) is not None and a <= v <= b]
        yield from sorted(candidates(inside), key=lambda ki: ki[0])
        if desc:
            hi = a - 1
        else:
            lo = b + 1
        width *= 2


# -- tokens ------------------------------------------------------------------------------


def _sign(payload: dict[str, t.Any], secret: bytes) -> str:
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(secret, body, hashlib.sha256).hexdigest()[:24]


def encode_token(payload: dict[str, t.Any], secret: bytes) -> str:
    """An opaque page token: base64 of the JSON payload with a signature."""
    raw = json.dumps({**payload, "sig": _sign(payload, secret)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, secret: bytes) -> dict[str, t.Any]:
    """The payload of a token this sandbox issued, or error 211."""
    bad = ApiError(400, 211, "Page token is invalid")
    try:
        data = json.loads(base64.urlsafe_b64decode(token.strip() + "=" * (-len(token.strip()) % 4)))
    except (ValueError, binascii.Error):
        raise bad from None
    if not isinstance(data, dict) or not isinstance(data.get("sig"), str):
        raise bad
    sig = data.pop("sig")
    if not hmac.compare_digest(sig, _sign(data, secret)):
        raise bad
    return data


def _resume_value(v5: V5Dataset, q: Query, rec: dict[str, t.Any]) -> dict[str, t.Any]:
    out: dict[str, t.Any] = {}
    for name, _ in q.order:
        v = rec[name]
        out[name] = v5.local_iso(v) if q.obj.kind(name) == DATETIME else v
    return out


def _resume_key(q: Query, value: dict[str, t.Any]) -> Key:
    key = []
    for name, desc in q.order:
        v = value[name]
        n = int(dt.datetime.fromisoformat(v).timestamp()) if isinstance(v, str) else int(v)
        key.append(-n if desc else n)
    return tuple(key)


def run_query(
    v5: V5Dataset, obj: V5Object, params: dict[str, str], refused: t.Collection[str], paging: Paging
) -> PageResult:
    """Answer one query or next-page request on ``obj``."""
    if "nextPageToken" in params:
        q, resume, served, page_no = _from_token(obj, params, refused, paging)
    else:
        q, resume, served, page_no = parse_query(obj, params, refused), None, 0, 1
    n = max(0, min(q.limit, paging.chain_cap - served))
    records, more = page(v5, q, resume, n)
    served += len(records)
    headers: dict[str, str] = {}
    token = url = None
    capped = False
    if more and served >= paging.chain_cap:
        headers["Pardot-Warning"] = CAP_WARNING
        capped = True
    elif more:
        payload = {
            "object": obj.name,
            "fields": q.fields,
            "filters": q.params,
            "orderBy": q.order_text,
            "limit": q.limit,
            "deleted": q.deleted,
            "resumeValue": _resume_value(v5, q, records[-1]),
            "page": page_no + 1,
            "recCount": served,
            "expireTime": v5.local_iso(paging.now + paging.token_ttl),
        }
        token = encode_token(payload, paging.secret)
        query = urllib.parse.urlencode({"fields": ",".join(q.fields), "nextPageToken": token})
        url = f"{paging.base_url}/api/v5/objects/{obj.collection}?{query}"
    answer = {
        "values": [v5.render(obj, r, q.fields) for r in records],
        "nextPageToken": token,
        "nextPageUrl": url,
    }
    return PageResult(answer, headers, len(records), capped)


def _from_token(
    obj: V5Object, params: dict[str, str], refused: t.Collection[str], paging: Paging
) -> tuple[Query, Key, int, int]:
    """The query, resume key, records served so far and page number a token carries."""
    extra = sorted(set(params) - {"nextPageToken", "fields"})
    if extra:
        raise ApiError(400, 51, f"Invalid parameter: {extra[0]}. Only fields may be sent with nextPageToken.")
    tok = decode_token(params["nextPageToken"], paging.secret)
    if tok.get("object") != obj.name:
        raise ApiError(400, 211, "Page token is invalid")
    try:
        expires = dt.datetime.fromisoformat(tok["expireTime"]).timestamp()
        query_params = dict(tok["filters"])
        query_params["fields"] = ",".join(tok["fields"])
        query_params["limit"] = str(tok["limit"])
        query_params["orderBy"] = tok["orderBy"]
        if tok["deleted"] is not None:
            query_params["deleted"] = tok["deleted"]
        resume_value, served, page_no = tok["resumeValue"], int(tok["recCount"]), int(tok["page"])
    except (KeyError, TypeError, ValueError):
        raise ApiError(400, 211, "Page token is invalid") from None
    if paging.now > expires:
        raise ApiError(400, 210, "Page token has expired")
    if "fields" in params:
        query_params["fields"] = params["fields"]
    q = parse_query(obj, query_params, refused)
    try:
        resume = _resume_key(q, resume_value)
    except (KeyError, TypeError, ValueError):
        raise ApiError(400, 211, "Page token is invalid") from None
    return q, resume, served, page_no


def account_answer(v5: V5Dataset, record: dict[str, t.Any], params: dict[str, str]) -> dict[str, t.Any]:
    """The account singleton's requested fields (no paging, no filters)."""
    for name in params:
        if name != "fields":
            raise invalid(name)
    names = parse_fields(ACCOUNT_FIELDS, params.get("fields"), ())
    return {n: v5.render_value(ACCOUNT_FIELDS[n], record[n]) for n in names}
