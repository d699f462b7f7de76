"""The v5 query API's objects: 28 collections and the account, generated row by row.

Like :mod:`pardot_export_sandbox.data`, records are never stored: record ``i`` of an object is
computed from ``(seed, object, i)``, and its timestamps grow with ``i`` within known bounds, so a
time filter or a time sort jumps to the index range that can match. Only the changes a test makes
(records added, updated, deleted) are kept, as whole records.

Ids join: the export data's ids (a visitor activity's ``form_id``, a prospect's ``campaign_id``,
a list membership's ``list_id``, ...) are records served here, every ``folderId`` is a folder,
every ``createdById`` a user, every ``visitorId`` / ``prospectId`` an exported visitor / prospect.

Values are typed Python values: datetimes as epoch seconds (rendered with the API user's offset),
dates as ``YYYY-MM-DD`` strings, nested objects and arrays as JSON values (an :class:`Instant`
inside one is a datetime).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import threading
import typing as t
from dataclasses import dataclass, field

from pardot_export_sandbox.data import (
    BASE_IDS,
    BOOL,
    CITIES,
    COMPANIES,
    COUNTRIES,
    DATE,
    DATETIME,
    DAY,
    FIRST_NAMES,
    HOUR,
    INT,
    LAST_NAMES,
    NUMBER,
    STR,
    TEXTS,
    URLS,
    V5_OBJECTS,
    Dataset,
)

#: a nested object or array (engagement studio programs' schedule, business hours, list ids)
JSON = "json"
#: updatedAt lies in [createdAt, createdAt + MAX_DELAY + HOUR] (outside a mass update)
MAX_DELAY = 7 * DAY
#: seconds between two page views of one visit (plus up to PAGE_JITTER)
PAGE_GAP = 37
PAGE_JITTER = 30
#: one record in DELETED_EVERY of an object with a recycle bin is in it
DELETED_EVERY = 10
#: fields a query never returns: write-only, refused like an unknown field
WRITE_ONLY = {"list_email": frozenset({"scheduledTime"}), "custom_field": frozenset({"valuesPrefill"})}
#: the datetime field whose filter family (``<field>After``, ...) an object accepts, per the
#: shared document's §2.1 "Repl. key (server filter)" column; objects not named take id filters only
DATE_FILTERS = {
    "campaign": "updatedAt",
    "list": "updatedAt",
    "list_email": "updatedAt",
    "email": "sentAt",
    "email_template": "updatedAt",
    "user": "updatedAt",
    "landing_page": "updatedAt",
    "custom_field": "updatedAt",
    "tag": "updatedAt",
    "tagged_object": "createdAt",
    "opportunity": "updatedAt",
    "lifecycle_stage": "updatedAt",
    "lifecycle_history": "createdAt",
    "visit": "updatedAt",
    "visitor_page_view": "createdAt",
    "dynamic_content": "updatedAt",
}
#: integer fields filtered by equality besides the id family (the same column)
EQ_FILTERS = {"folder": ("parentFolderId",), "dynamic_content_variation": ("dynamicContentId",)}
#: what a tagged object or a folder's content may be, and the v5 object (or export object) holding it
TAGGABLE = {
    "campaign": "campaign",
    "custom-field": "custom_field",
    "custom-redirect": "custom_redirect",
    "dynamic-content": "dynamic_content",
    "email": "email",
    "email-template": "email_template",
    "file": "file",
    "form-field": "form_field",
    "form-handler": "form_handler",
    "form": "form",
    "landing-page": "landing_page",
    "layout-template": "layout_template",
    "list": "list",
    "prospect": "prospect",
    "user": "user",
}
FOLDER_ITEMS = (
    "campaign",
    "custom-redirect",
    "dynamic-content",
    "email-template",
    "file",
    "form",
    "form-handler",
    "landing-page",
    "layout-template",
    "list",
)
SUFFIXES = ("", " (copy)", " - Q1", ' "Spring" ✓', ", EMEA", " 🚀")
STAGES = ("Prospect", "Marketing Qualified", "Sales Accepted", "Sales Qualified", "Opportunity", "Customer", "Lost")
ACCOUNT_ID = 1_000_001
ACCOUNT_FIELDS: dict[str, str] = {
    "id": INT,
    "company": STR,
    "level": STR,
    "website": STR,
    "pluginCampaignId": INT,
    "addressOne": STR,
    "addressTwo": STR,
    "city": STR,
    "state": STR,
    "zip": STR,
    "territory": STR,
    "country": STR,
    "phone": STR,
    "fax": STR,
    "adminId": INT,
    "maximumDailyApiCalls": INT,
    "apiCallsUsed": INT,
    "createdAt": DATETIME,
    "updatedAt": DATETIME,
    "createdById": INT,
    "updatedById": INT,
}

Gen = t.Callable[[int], t.Any]


@dataclass(frozen=True)
class Instant:
    """A datetime inside a nested JSON value (epoch seconds)."""

    ts: int


@dataclass
class V5Field:
    """One field as the API names it, its kind, and the value of generated record ``i``."""

    name: str
    kind: str
    gen: Gen


@dataclass
class Burst:
    """Records sharing one timestamp: a list email's send (sentAt) or a mass update (updatedAt)."""

    field: str
    ts: int
    first: int  # index of its first record
    size: int


@dataclass
class V5Object:
    """One v5 collection: its generated records, its query rules, and the changes made to it."""

    name: str  # the stream name, snake_case singular
    collection: str  # the path segment, kebab-case plural
    base_id: int
    count: int  # generated records (ids base_id .. base_id + count - 1)
    start: int
    span: int
    fields: dict[str, V5Field] = field(default_factory=dict)
    date_field: str | None = None
    eq_filters: tuple[str, ...] = ()
    write_only: frozenset[str] = frozenset()
    #: datetime field -> (lo, hi): ``value(i) - base(i)`` lies in [lo, hi] for every generated i
    bounds: dict[str, tuple[int, int]] = field(default_factory=dict)
    bursts: list[Burst] = field(default_factory=list)
    #: records changed or added by a test, whole, by id; and ids permanently deleted
    changed: dict[int, dict[str, t.Any]] = field(default_factory=dict)
    removed: set[int] = field(default_factory=set)
    added: int = 0
    #: generated records by index, each made once (pages, the oracle and reruns ask for the same ones)
    generated: dict[int, dict[str, t.Any]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def has_bin(self) -> bool:
        """Whether the object has a recycle bin (an ``isDeleted`` field, the ``deleted`` parameter)."""
        return "isDeleted" in self.fields

    @property
    def sortable(self) -> tuple[str, ...]:
        """Fields ``orderBy`` accepts: ``id``, and the datetime field the object filters on."""
        return ("id", self.date_field) if self.date_field else ("id",)

    def kind(self, name: str) -> str:
        """The kind of field ``name``."""
        return self.fields[name].kind

    def base(self, i: int) -> int:
        """The timeline stamp of generated record ``i``."""
        return self.start + (i * self.span) // max(self.count, 1)

    def row(self, i: int, names: t.Iterable[str] | None = None) -> dict[str, t.Any]:
        """Generated record ``i`` (only ``names`` when given), ignoring changes: a new dict each call."""
        whole = self.generated.get(i)
        if whole is None:  # a pure function of i: threads racing here store equal records
            whole = self.generated[i] = {n: f.gen(i) for n, f in self.fields.items()}
        if names is None:
            return dict(whole)
        return {n: whole[n] for n in names}

    def index_range(self, name: str, lo: int | None, hi: int | None) -> range:
        """Generated indexes whose ``name`` may lie in ``[lo, hi]`` (None: unbounded)."""
        n = self.count
        lo_off, hi_off = self.bounds[name]
        first, stop = 0, n
        if lo is not None:
            first = max(0, ((lo - hi_off - self.start) * n) // self.span - 1)
        if hi is not None:
            stop = min(n, max(0, ((hi - lo_off - self.start) * n) // self.span + 2))
        return range(first, max(first, stop))


class V5Dataset:
    """Every v5 object of one data set, and the changes tests make to them."""

    def __init__(self, data: Dataset) -> None:
        self.data = data
        self.config = data.config
        self.zone = data.local.zone
        self.start, self.end = data.start, data.end
        self.rows = dict(data.v5_rows)
        self.lock = threading.RLock()
        self.objects: dict[str, V5Object] = {}
        for name, (collection, base, _) in V5_OBJECTS.items():
            self.objects[name] = V5Object(
                name=name,
                collection=collection,
                base_id=base,
                count=self.rows[name],
                start=self.start,
                span=self.end - self.start,
                date_field=DATE_FILTERS.get(name),
                eq_filters=EQ_FILTERS.get(name, ()),
                write_only=WRITE_ONLY.get(name, frozenset()),
            )
        for name, obj in self.objects.items():
            _Builder(self, obj).build()
            for fname, f in obj.fields.items():
                if f.kind == DATETIME and fname not in obj.bounds:
                    obj.bounds[fname] = (-obj.span - MAX_DELAY, obj.span + MAX_DELAY)
            if obj.date_field is not None and obj.date_field not in obj.fields:
                msg = f"{name}: no field {obj.date_field} to filter on"
                raise ValueError(msg)
        self.by_collection = {o.collection: o for o in self.objects.values()}
        for name, size in self.config.mass_updates.items():
            if size and (name not in self.objects or "updatedAt" not in self.objects[name].fields):
                msg = f"a mass update needs a v5 object with updatedAt, not {name!r}"
                raise ValueError(msg)

    # -- reading -----------------------------------------------------------------------

    def obj(self, name: str) -> V5Object:
        """The object called ``name`` (stream name), or ValueError naming the known ones."""
        obj = self.objects.get(name)
        if obj is None:
            msg = f"unknown v5 object {name!r}; known: {', '.join(self.objects)}"
            raise ValueError(msg)
        return obj

    def record(self, name: str, rid: int) -> dict[str, t.Any] | None:
        """The current record ``rid`` of ``name`` (changes applied), or None."""
        obj = self.obj(name)
        with self.lock:
            if rid in obj.removed:
                return None
            if rid in obj.changed:
                return dict(obj.changed[rid])
        i = rid - obj.base_id
        return obj.row(i) if 0 <= i < obj.count else None

    def records(self, name: str) -> t.Iterator[dict[str, t.Any]]:
        """Every current record of ``name``, in id order (the recycle bin included)."""
        obj = self.obj(name)
        with self.lock:
            changed, removed = dict(obj.changed), set(obj.removed)
        for i in range(obj.count):
            rid = obj.base_id + i
            if rid in changed:
                yield dict(changed.pop(rid))
            elif rid not in removed:
                yield obj.row(i)
        for rid in sorted(changed):
            yield dict(changed[rid])

    def local_iso(self, ts: float) -> str:
        """``ts`` in ISO 8601 with the API user's offset, e.g. ``2025-05-16T11:27:08-07:00``."""
        return dt.datetime.fromtimestamp(int(ts), self.zone).isoformat()

    def render_value(self, kind: str, v: t.Any) -> t.Any:
        """A typed value as the API writes it in JSON."""
        if v is None:
            return None
        if kind == DATETIME:
            return self.local_iso(v)
        if kind == JSON:
            return self._render_json(v)
        return v

    def _render_json(self, v: t.Any) -> t.Any:
        if isinstance(v, Instant):
            return self.local_iso(v.ts)
        if isinstance(v, dict):
            return {k: self._render_json(x) for k, x in v.items()}
        if isinstance(v, list):
            return [self._render_json(x) for x in v]
        return v

    def render(self, obj: V5Object, rec: dict[str, t.Any], names: t.Sequence[str]) -> dict[str, t.Any]:
        """The requested fields of ``rec`` as the API answers them."""
        return {n: self.render_value(obj.fields[n].kind, rec.get(n)) for n in names}

    def bursts(self, name: str) -> list[dict[str, t.Any]]:
        """The records of ``name`` sharing one timestamp by design: field, UTC datetime, first id, size."""
        obj = self.obj(name)
        return [
            {
                "field": b.field,
                "at": dt.datetime.fromtimestamp(b.ts, dt.timezone.utc),
                "first_id": obj.base_id + b.first,
                "size": b.size,
            }
            for b in obj.bursts
        ]

    # -- the oracle --------------------------------------------------------------------

    def expected(
        self,
        name: str,
        *,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        key: str | None = None,
        deleted: str = "all",
        fields: t.Sequence[str] | None = None,
        snake_case: bool = False,
        iso: bool = False,
    ) -> dict[int, dict[str, t.Any]]:
        """What a correct client emits for ``name``: records by id, typed, datetimes in UTC.

        Args:
            name: The object (stream name).
            start: Only records whose ``key`` is at or after it (inclusive).
            end: Only records whose ``key`` is before it (exclusive).
            key: The datetime field ``start`` and ``end`` apply to (default: the object's filter field).
            deleted: ``all`` (default), ``false`` (live records) or ``true`` (the recycle bin only);
                ignored for objects without a recycle bin.
            fields: The fields to include (default: every field).
            snake_case: Name the fields as the tap's columns (``isDeleted`` -> ``is_deleted``).
            iso: Datetimes as ``YYYY-MM-DDTHH:MM:SS+00:00`` strings rather than aware datetimes.

        Returns:
            ``{id: record}``. Nested JSON values (engagement studio programs) are as served.
        """
        obj = self.obj(name)
        names = list(fields) if fields is not None else list(obj.fields)
        key = key or obj.date_field
        if (start is not None or end is not None) and key is None:
            msg = f"{name} has no datetime field to bound; name one with key="
            raise ValueError(msg)
        lo = int(start.timestamp()) if start is not None else None
        hi = int(end.timestamp()) if end is not None else None
        out: dict[int, dict[str, t.Any]] = {}
        for rec in self.records(name):
            if key is not None and (lo is not None or hi is not None):
                ts = rec.get(key)
                if ts is None or (lo is not None and ts < lo) or (hi is not None and ts >= hi):
                    continue
            if obj.has_bin and deleted != "all" and bool(rec["isDeleted"]) != (deleted == "true"):
                continue
            out[rec["id"]] = self.typed(obj, rec, names, snake_case=snake_case, iso=iso)
        return out

    def typed(
        self,
        obj: V5Object,
        rec: dict[str, t.Any],
        names: t.Sequence[str] | None = None,
        *,
        snake_case: bool = False,
        iso: bool = False,
    ) -> dict[str, t.Any]:
        """A record as a client should emit it: datetimes as aware UTC datetimes (or ``iso`` strings)."""
        row = {n: self._typed(obj.fields[n].kind, rec.get(n), iso=iso) for n in names or obj.fields}
        return {snake(k): v for k, v in row.items()} if snake_case else row

    def _typed(self, kind: str, v: t.Any, *, iso: bool) -> t.Any:
        if v is None:
            return None
        if kind == DATETIME:
            d = dt.datetime.fromtimestamp(v, dt.timezone.utc)
            return d.strftime("%Y-%m-%dT%H:%M:%S+00:00") if iso else d
        if kind == JSON:
            return self._render_json(v)
        return v

    # -- changes -----------------------------------------------------------------------

    def add(
        self, name: str, count: int = 1, values: dict[str, t.Any] | None = None, at: t.Any = None
    ) -> list[dict[str, t.Any]]:
        """Add ``count`` records to ``name``, created (and updated, sent) at ``at``; returns them.

        Their other fields are generated as for the next indexes; ``values`` overrides fields.
        """
        obj = self.obj(name)
        ts = self._stamp(at)
        out = []
        with self.lock:
            for _ in range(count):
                i = obj.count + obj.added
                obj.added += 1
                rec = obj.row(i)
                rec["id"] = obj.base_id + i
                for fname in ("createdAt", "updatedAt", "sentAt"):
                    if fname in obj.fields:
                        rec[fname] = ts
                if obj.has_bin:
                    rec["isDeleted"] = False
                rec.update(self._values(obj, values))
                obj.changed[rec["id"]] = rec
                out.append(dict(rec))
        return out

    def update(
        self, name: str, ids: t.Iterable[int], values: dict[str, t.Any] | None = None, at: t.Any = None
    ) -> list[dict[str, t.Any]]:
        """Update records of ``name``: set ``values``, and ``updatedAt`` to ``at`` where the object has it."""
        obj = self.obj(name)
        ts = self._stamp(at)
        out = []
        with self.lock:
            for rid in ids:
                rec = self._current(obj, int(rid))
                rec.update(self._values(obj, values))
                if "updatedAt" in obj.fields:
                    rec["updatedAt"] = ts
                obj.changed[rec["id"]] = rec
                out.append(dict(rec))
        return out

    def delete(
        self, name: str, ids: t.Iterable[int], *, purge: bool = False, at: t.Any = None, touch: bool = False
    ) -> list[int]:
        """Delete records of ``name``: to the recycle bin where it has one, else (or with ``purge``) for good.

        A record moved to the recycle bin gets ``isDeleted: true``; its ``updatedAt`` moves to ``at``
        only with ``touch``. Returns the ids deleted.
        """
        obj = self.obj(name)
        ts = self._stamp(at)
        done = []
        with self.lock:
            for rid in map(int, ids):
                rec = self._current(obj, rid)
                if purge or not obj.has_bin:
                    obj.changed.pop(rid, None)
                    obj.removed.add(rid)
                else:
                    rec["isDeleted"] = True
                    if touch and "updatedAt" in obj.fields:
                        rec["updatedAt"] = ts
                    obj.changed[rid] = rec
                done.append(rid)
        return done

    def _current(self, obj: V5Object, rid: int) -> dict[str, t.Any]:
        rec = self.record(obj.name, rid)
        if rec is None:
            msg = f"{obj.name} has no record {rid}"
            raise ValueError(msg)
        return rec

    def _stamp(self, at: t.Any) -> int:
        if at is None:
            msg = "a change needs its time (at=)"
            raise ValueError(msg)
        return _epoch(at)

    def _values(self, obj: V5Object, values: dict[str, t.Any] | None) -> dict[str, t.Any]:
        """``values`` checked against the object's fields, datetimes as epoch seconds."""
        out: dict[str, t.Any] = {}
        for k, v in (values or {}).items():
            if k not in obj.fields or k == "id":
                msg = f"{obj.name} has no field {k!r} a change may set"
                raise ValueError(msg)
            kind = obj.fields[k].kind
            if v is None:
                if k in obj.sortable or k == "isDeleted":
                    msg = f"{obj.name}.{k} cannot be null"
                    raise ValueError(msg)
                out[k] = None
            elif kind == DATETIME:
                out[k] = _epoch(v)
            else:
                out[k] = v
        return out


def _epoch(v: t.Any) -> int:
    """Epoch seconds of an aware datetime, an ISO 8601 string with an offset, or a number."""
    if isinstance(v, dt.datetime):
        if v.tzinfo is None:
            msg = f"a datetime needs a time zone: {v!r}"
            raise ValueError(msg)
        return int(v.timestamp())
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return int(v)
    if isinstance(v, str):
        d = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
        if d.tzinfo is None:
            msg = f"a datetime needs an offset: {v!r}"
            raise ValueError(msg)
        return int(d.timestamp())
    msg = f"not a datetime: {v!r}"
    raise ValueError(msg)


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


@functools.lru_cache(maxsize=4096)
def snake(name: str) -> str:
    """A camelCase API field name as the tap's snake_case column (``salesforceCmsId`` -> ``salesforce_cms_id``)."""
    return _CAMEL.sub("_", name).lower()


class _Builder:
    """The fields of one object: hashes, references and timelines (see the module docstring)."""

    def __init__(self, v5: V5Dataset, obj: V5Object) -> None:
        self.v5 = v5
        self.obj = obj
        self.seed = v5.config.seed
        self.n = max(obj.count, 1)
        self.end = v5.end

    # -- value makers ------------------------------------------------------------------

    def h(self, salt: int) -> t.Callable[[int], int]:
        s = self.seed * 1_000_003 + salt * 7919 + sum(map(ord, self.obj.name)) * 31 + 5
        add = (s * 0x85EBCA77 + 0x165667B1) & 0xFFFFFFFF

        def h(i: int) -> int:
            x = (i * 0x9E3779B1 + add) & 0xFFFFFFFF
            x ^= x >> 15
            x = (x * 0x2C1B3C6D) & 0xFFFFFFFF
            x ^= x >> 12
            x = (x * 0x297A2D39) & 0xFFFFFFFF
            return x ^ (x >> 15)

        return h

    def pick(self, salt: int, pool: t.Sequence[t.Any], null_every: int = 0) -> Gen:
        h, n = self.h(salt), len(pool)

        def g(i: int) -> t.Any:
            r = h(i)
            if null_every and r % null_every == 0:
                return None
            v = pool[(r >> 4) % n]
            return None if v == "" else v

        return g

    def num(self, salt: int, lo: int, hi: int, null_every: int = 0) -> Gen:
        h, width = self.h(salt), hi - lo + 1

        def g(i: int) -> int | None:
            r = h(i)
            if null_every and r % null_every == 0:
                return None
            return lo + (r >> 5) % width

        return g

    def money(self, salt: int, null_every: int = 0) -> Gen:
        h = self.h(salt)

        def g(i: int) -> float | None:
            r = h(i)
            if null_every and r % null_every == 0:
                return None
            return ((r >> 5) % 10_000_000) / 100

        return g

    def flag(self, salt: int, per_ten: int) -> Gen:
        h = self.h(salt)
        return lambda i: h(i) % 10 < per_ten

    def ref(self, salt: int, target: str, null_every: int = 0) -> Gen:
        """An id of a generated record of the v5 object ``target``."""
        h = self.h(salt)
        base, n = V5_OBJECTS[target][1], max(1, self.v5.rows[target])

        def g(i: int) -> int | None:
            r = h(i)
            if null_every and r % null_every == 0:
                return None
            return base + (r >> 5) % n

        return g

    def export_ref(self, salt: int, stream: str, null_every: int = 0) -> Gen:
        """An id of a record of the export object ``stream`` (prospect, visitor)."""
        h = self.h(salt)
        base, n = BASE_IDS[stream], max(1, self.v5.data.objects[stream].count)

        def g(i: int) -> int | None:
            r = h(i)
            if null_every and r % null_every == 0:
                return None
            return base + (r >> 5) % n

        return g

    def sfid(self, prefix: str, salt: int, null_every: int = 3) -> Gen:
        """An 18-character Salesforce id, or null one time in ``null_every``."""
        h = self.h(salt)
        obj = self.obj

        def g(i: int) -> str | None:
            if null_every and h(i) % null_every == 0:
                return None
            return f"{prefix}5e{(obj.base_id + i) % 10**10:010d}AAA"

        return g

    def label(self, word: str, salt: int) -> Gen:
        suffix = self.pick(salt, SUFFIXES)
        return lambda i: f"{word} {i + 1}{suffix(i) or ''}"

    def text(self, salt: int, null_every: int = 4) -> Gen:
        return self.pick(salt, TEXTS, null_every)

    def url(self, path: str, salt: int, null_every: int = 0) -> Gen:
        h = self.h(salt)
        obj = self.obj

        def g(i: int) -> str | None:
            if null_every and h(i) % null_every == 0:
                return None
            return f"https://go.example.com/{path}/{obj.base_id + i}"

        return g

    # -- timelines -------------------------------------------------------------------

    def created(self) -> t.Callable[[int], int]:
        """createdAt: the record's timeline stamp less up to an hour, some on whole hours."""
        h, obj, start, end = self.h(1), self.obj, self.v5.start, self.end

        def created(i: int) -> int:
            base = obj.base(i)
            r = h(i)
            ts = base - base % HOUR if r % 10 == 0 else base - (r >> 8) % HOUR
            return min(max(ts, start), end - 1)

        self.obj.bounds["createdAt"] = (-HOUR, 0)
        return created

    def updated(self, created: t.Callable[[int], int]) -> t.Callable[[int], int]:
        """updatedAt: createdAt, or later by up to a week (some on whole hours); a mass update's burst."""
        h, end = self.h(2), self.end
        obj = self.obj

        def plain(i: int) -> int:
            c = created(i)
            r = h(i)
            sel = r % 10
            if sel < 3:
                return c
            u = c + (r >> 4) % MAX_DELAY
            if sel < 5:
                u = u - u % HOUR + HOUR
            return max(c, min(u, end - 1))

        lo, hi = -HOUR, MAX_DELAY + HOUR
        size = min(self.v5.config.mass_updates.get(obj.name, 0), obj.count)
        if size <= 0:
            obj.bounds["updatedAt"] = (lo, hi)
            return plain
        first = (obj.count - size) // 2
        last = first + size - 1
        at = min(obj.base(last) + HOUR, end - 1)
        obj.bursts.append(Burst("updatedAt", at, first, size))
        obj.bounds["updatedAt"] = (min(lo, at - obj.base(last)), max(hi, at - obj.base(first)))

        def updated(i: int) -> int:
            return at if first <= i <= last else plain(i)

        return updated

    def audit(self, *, updated_at: bool = True, by: bool = True) -> list[V5Field]:
        created = self.created()
        out = [V5Field("createdAt", DATETIME, created)]
        if updated_at:
            out.append(V5Field("updatedAt", DATETIME, self.updated(created)))
        if by:
            out.append(V5Field("createdById", INT, self.ref(3, "user", 9)))
            if updated_at:
                out.append(V5Field("updatedById", INT, self.ref(4, "user", 9)))
        return out

    def deleted(self) -> V5Field:
        h = self.h(99)
        return V5Field("isDeleted", BOOL, lambda i: h(i) % DELETED_EVERY == 0)

    # -- objects -----------------------------------------------------------------------

    def build(self) -> None:
        fields = getattr(self, f"_{self.obj.name}")()
        self.obj.fields = {f.name: f for f in fields}

    def _campaign(self) -> list[V5Field]:
        parent = self.h(10)
        base = self.obj.base_id
        return [
            V5Field("id", INT, lambda i: base + i),
            V5Field("name", STR, self.label("Campaign", 11)),
            V5Field("cost", NUMBER, self.money(12, 3)),
            V5Field("folderId", INT, self.ref(13, "folder", 7)),
            V5Field("parentCampaignId", INT, lambda i: None if i == 0 or parent(i) % 3 else base + parent(i) % i),
            V5Field("salesforceId", STR, self.sfid("701", 14)),
            self.deleted(),
            *self.audit(),
        ]

    def _list(self) -> list[V5Field]:
        return [
            V5Field("id", INT, lambda i: self.obj.base_id + i),
            V5Field("name", STR, self.label("List", 11)),
            V5Field("title", STR, self.pick(12, ("Newsletter", "Customers, EMEA", "", 'The "VIP" list'))),
            V5Field("description", STR, self.text(13)),
            V5Field("isPublic", BOOL, self.flag(14, 4)),
            V5Field("isDynamic", BOOL, self.flag(15, 3)),
            self.deleted(),
            V5Field("folderId", INT, self.ref(16, "folder", 7)),
            V5Field("campaignId", INT, self.ref(17, "campaign", 4)),
            *self.audit(),
        ]

    def _sends(self) -> tuple[int, int, int]:
        """The list email sends: (emails per send, emails per send and gap, number of sends)."""
        cfg = self.v5.config
        size, period = max(0, cfg.email_send_size), max(1, cfg.email_send_size + cfg.email_send_gap)
        emails = self.v5.rows["email"]
        return size, period, ((emails + period - 1) // period if size else 0)

    def _send_time(self) -> t.Callable[[int], int]:
        """When send ``k`` went out: the email timeline at its first email, on a whole minute."""
        _, period, _ = self._sends()
        emails = max(self.v5.rows["email"], 1)
        start, span = self.v5.start, self.v5.end - self.v5.start
        return lambda k: max(start, start + (k * period * span) // emails // 60 * 60)

    def _list_email(self) -> list[V5Field]:
        _, _, sends = self._sends()
        send_time = self._send_time()
        return [
            V5Field("id", INT, lambda i: self.obj.base_id + i),
            V5Field("name", STR, self.label("Newsletter", 11)),
            V5Field("subject", STR, self.pick(12, ("Hello {{Recipient.FirstName}}", "Spring news 🌸", "Q1, in short"))),
            V5Field("isPaused", BOOL, lambda i: i >= sends and i % 7 == 3),
            V5Field("isSent", BOOL, lambda i: i < sends),
            self.deleted(),
            V5Field("isOperational", BOOL, self.flag(13, 1)),
            V5Field("sentAt", DATETIME, lambda i: send_time(i) if i < sends else None),
            V5Field("campaignId", INT, self.ref(14, "campaign", 5)),
            V5Field("clientType", STR, self.pick(15, ("Builder", "Web", "Classic"))),
            V5Field("emailTemplateId", INT, self.ref(16, "email_template", 3)),
            V5Field("trackerDomainId", INT, self.ref(17, "tracker_domain", 4)),
            V5Field("folderId", INT, self.ref(18, "folder", 7)),
            V5Field("type", STR, self.pick(19, ("html", "text", "htmlAndText"))),
            *self.audit(),
            V5Field("htmlMessage", STR, lambda i: f"<html><body><p>Newsletter {i + 1}</p></body></html>"),
            V5Field("textMessage", STR, lambda i: f"Newsletter {i + 1}"),
        ]

    def _email(self) -> list[V5Field]:
        obj = self.obj
        size, period, _ = self._sends()
        send_time = self._send_time()
        single = self.h(20)
        start, end = self.v5.start, self.end
        emails_le = max(1, self.v5.rows["list_email"])
        lists = V5_OBJECTS["list"][1], max(1, self.v5.rows["list"])
        prospects = BASE_IDS["prospect"], max(1, self.v5.data.objects["prospect"].count)
        le_base = V5_OBJECTS["list_email"][1]

        def send_of(i: int) -> int | None:
            k, off = divmod(i, period)
            return k if off < size else None

        def sent_at(i: int) -> int:
            k = send_of(i)
            if k is not None:
                return send_time(k)
            base = obj.base(i)
            return min(max(start, base - (single(i) >> 8) % HOUR), end - 1)

        def list_email(i: int) -> int | None:
            k = send_of(i)
            return None if k is None else le_base + k % emails_le

        def prospect(i: int) -> int:
            k, off = divmod(i, period)
            j = (k * 7919 + off) if off < size else single(i) >> 3
            return prospects[0] + j % prospects[1]

        def list_id(i: int) -> int | None:
            k = send_of(i)
            return None if k is None else lists[0] + k % lists[1]

        le_name = self.v5.objects["list_email"]
        template, one_template = self.ref(21, "email_template"), self.ref(22, "email_template", 3)

        def from_list_email(name: str, single_value: str) -> Gen:
            def g(i: int) -> t.Any:
                k = send_of(i)
                return single_value if k is None else le_name.fields[name].gen(k % emails_le)

            return g

        self._send_bursts(send_time)
        name = from_list_email("name", "One-to-one email")
        subject = from_list_email("subject", "Following up, {{Recipient.FirstName}}")
        return [
            V5Field("id", INT, lambda i: obj.base_id + i),
            V5Field("name", STR, name),
            V5Field("subject", STR, subject),
            V5Field("type", STR, self.pick(23, ("html", "text", "htmlAndText"))),
            V5Field("sentAt", DATETIME, sent_at),
            V5Field("clientType", STR, self.pick(24, ("Builder", "Web", "Outlook"))),
            V5Field("isOperational", BOOL, self.flag(25, 1)),
            V5Field("campaignId", INT, self.ref(26, "campaign", 6)),
            V5Field("prospectId", INT, prospect),
            V5Field("folderId", INT, self.ref(27, "folder", 5)),
            V5Field("listId", INT, list_id),
            V5Field("listEmailId", INT, list_email),
            V5Field("emailTemplateId", INT, lambda i: template(i) if send_of(i) is not None else one_template(i)),
            V5Field("trackerDomainId", INT, self.ref(28, "tracker_domain", 4)),
            V5Field("createdById", INT, self.ref(29, "user", 5)),
            V5Field("salesforceCmsId", STR, self.sfid("20Y", 30, 4)),
        ]

    def _send_bursts(self, send_time: t.Callable[[int], int]) -> None:
        """Record each send's burst, and the bounds of sentAt that sends stretch."""
        obj = self.obj
        size, period, sends = self._sends()
        for k in range(sends):
            first = k * period
            obj.bursts.append(Burst("sentAt", send_time(k), first, min(size, obj.count - first)))
        obj.bounds["sentAt"] = (min(-HOUR, -((size * obj.span) // self.n) - 2 * 60), 0)

    def _email_template(self) -> list[V5Field]:
        kind = self.h(12)
        return [
            V5Field("id", INT, lambda i: self.obj.base_id + i),
            V5Field("name", STR, self.label("Template", 11)),
            V5Field("subject", STR, self.pick(13, ("Welcome!", "Your ebook, {{Recipient.FirstName}}", ""))),
            V5Field("type", STR, self.pick(14, ("html", "text", "htmlAndText"))),
            V5Field("campaignId", INT, self.ref(15, "campaign", 4)),
            V5Field("folderId", INT, self.ref(16, "folder", 7)),
            V5Field("trackerDomainId", INT, self.ref(17, "tracker_domain", 4)),
            V5Field("isAutoResponderEmail", BOOL, lambda i: kind(i) % 4 == 0),
            V5Field("isDripEmail", BOOL, lambda i: kind(i) % 4 == 1),
            V5Field("isListEmail", BOOL, lambda i: kind(i) % 4 in (1, 2)),
            V5Field("isOneToOneEmail", BOOL, lambda i: kind(i) % 4 == 3),
            self.deleted(),
            V5Field("tagReplacementLanguage", STR, self.pick(18, ("pml", "hml", "undetermined"))),
            *self.audit(),
            V5Field("htmlMessage", STR, lambda i: f"<html><body>Template {i + 1}</body></html>"),
            V5Field("textMessage", STR, lambda i: f"Template {i + 1}"),
        ]

    def _user(self) -> list[V5Field]:
        first = self.pick(11, FIRST_NAMES)
        last = self.pick(12, LAST_NAMES)
        base = self.obj.base_id
        return [
            V5Field("id", INT, lambda i: base + i),
            V5Field("email", STR, lambda i: f"user{base + i}@example.com"),
            V5Field("username", STR, lambda i: f"user{base + i}@example.com.pardot"),
            V5Field("firstName", STR, first),
            V5Field("lastName", STR, last),
            V5Field("jobTitle", STR, self.pick(13, ("Marketing Manager", "Sales, EMEA", "", "Admin"))),
            V5Field("role", STR, self.pick(14, ("Administrator", "Marketing", "Sales", "Sales Manager"))),
            V5Field("roleName", STR, self.pick(15, ("Administrator", "Marketing", "Sales", "Custom Role"))),
            V5Field("salesforceId", STR, self.sfid("005", 16)),
            self.deleted(),
            V5Field("tagReplacementLanguage", STR, self.pick(17, ("pml", "hml", "undetermined"))),
            *self.audit(),
        ]

    def _form(self) -> list[V5Field]:
        p = self.pick
        return [
            V5Field("id", INT, lambda i: self.obj.base_id + i),
            V5Field("name", STR, self.label("Form", 11)),
            V5Field("campaignId", INT, self.ref(12, "campaign", 5)),
            V5Field("layoutTemplateId", INT, self.ref(13, "layout_template", 3)),
            V5Field("folderId", INT, self.ref(14, "folder", 7)),
            V5Field("trackerDomainId", INT, self.ref(15, "tracker_domain", 4)),
            V5Field("salesforceId", STR, self.sfid("0Hf", 16)),
            self.deleted(),
            V5Field("isUseRedirectLocation", BOOL, self.flag(17, 3)),
            V5Field("isAlwaysDisplay", BOOL, self.flag(18, 2)),
            V5Field("isCookieless", BOOL, self.flag(19, 1)),
            V5Field("isCaptchaEnabled", BOOL, self.flag(20, 5)),
            V5Field("showNotProspect", BOOL, self.flag(21, 5)),
            V5Field("embedCode", STR, lambda i: f'<iframe src="https://go.example.com/l/1/f/{i}"></iframe>'),
            V5Field("submitButtonText", STR, p(22, ("Submit", "Send ✓", "Get the ebook"))),
            V5Field("beforeFormContent", STR, self.text(23)),
            V5Field("afterFormContent", STR, self.text(24)),
            V5Field("thankYouContent", STR, p(25, ("<p>Thanks!</p>", "", "Merci, à bientôt"))),
            V5Field("thankYouCode", STR, p(26, ("", "<script>track()</script>"), 2)),
            V5Field("redirectLocation", STR, self.url("thanks", 27, 3)),
            V5Field("fontSize", STR, p(28, ("10pt", "12pt", "default"))),
            V5Field("fontFamily", STR, p(29, ("Arial", "Helvetica, sans-serif", "default"))),
            V5Field("fontColor", STR, p(30, ("#000000", "#333333"))),
            V5Field("labelAlignment", STR, p(31, ("left", "right", "above"))),
            V5Field("radioAlignment", STR, p(32, ("horizontal", "vertical"))),
            V5Field("checkboxAlignment", STR, p(33, ("horizontal", "vertical"))),
            V5Field("requiredCharacter", STR, p(34, ("*", "•"))),
            V5Field("url", STR, self.url("l/1/form", 35)),
            V5Field("salesforceCmsId", STR, self.sfid("20Y", 36, 2)),
            *self.audit(),
        ]

    def _form_handler(self) -> list[V5Field]:
        created = self.created()
        return [
            V5Field("id", INT, lambda i: self.obj.base_id + i),
            V5Field("name", STR, self.label("Form handler", 11)),
            V5Field("folderId", INT, self.ref(12, "folder", 7)),
            V5Field("campaignId", INT, self.ref(13, "campaign", 5)),
            V5Field("trackerDomainId", INT, self.ref(14, "tracker_domain", 4)),
            V5Field("isDataForwarded", BOOL, self.flag(15, 3)),
            V5Field("successLocation", STR, self.url("ok", 16, 3)),
            V5Field("errorLocation", STR, self.url("error", 17, 3)),
            V5Field("isAlwaysEmail", BOOL, self.flag(18, 2)),
            V5Field("isCookieless", BOOL, self.flag(19, 1)),
            V5Field("salesforceId", STR, self.sfid("0Hh", 20)),
            V5Field("embedCode", STR, lambda i: f'<form action="https://go.example.com/l/1/h/{i}"></form>'),
            self.deleted(),
            V5Field("createdAt", DATETIME, created),
            V5Field("createdById", INT, self.ref(3, "user", 9)),
            V5Field("updatedById", INT, self.ref(4, "user", 9)),
        ]

    def _landing_page(self) -> list[V5Field]:
        p = self.pick
        archive = self.h(30)
        start = self.v5.start

        def archive_date(i: int) -> str | None:
            r = archive(i)
            if r % 4:
                return None
            return dt.datetime.fromtimestamp(start + (r >> 3) % (400 * DAY), dt.timezone.utc).strftime("%Y-%m-%d")

        return [
            V5Field("id", INT, lambda i: self.obj.base_id + i),
            V5Field("name", STR, self.label("Landing page", 11)),
            V5Field("title", STR, p(12, ("Get the ebook", "Webinar: data, fast", ""))),
            V5Field("description", STR, self.text(13)),
            V5Field("campaignId", INT, self.ref(14, "campaign", 5)),
            V5Field("salesforceId", STR, self.sfid("0Hl", 15)),
            self.deleted(),
            V5Field(
                "layoutType",
                STR,
                p(16, ("Layout Template", "Landing Page Builder", "Legacy Page Builder", "Salesforce Builder")),
            ),
            V5Field("layoutTableBorder", INT, self.num(17, 0, 2, 3)),
            V5Field("layoutTemplateId", INT, self.ref(18, "layout_template", 3)),
            V5Field("isUseRedirectLocation", BOOL, self.flag(19, 2)),
            V5Field("redirectLocation", STR, self.url("moved", 20, 2)),
            V5Field("isDoNotIndex", BOOL, self.flag(21, 2)),
            V5Field("bitlyIsPersonalized", BOOL, self.flag(22, 1)),
            V5Field("bitlyShortUrl", STR, p(23, ("https://bit.ly/3xYz", ""), 2)),
            V5Field("url", STR, self.url("l/1/page", 24)),
            V5Field("vanityUrl", STR, p(25, ("https://go.example.com/spring", ""), 2)),
            V5Field("vanityUrlPath", STR, p(26, ("spring", ""), 2)),
            V5Field("folderId", INT, self.ref(27, "folder", 7)),
            V5Field("formId", INT, self.ref(28, "form", 3)),
            V5Field("trackerDomainId", INT, self.ref(29, "tracker_domain", 4)),
            V5Field("archiveDate", DATE, archive_date),
            V5Field("salesforceCmsId", STR, self.sfid("20Y", 31, 2)),
            *self.audit(),
            V5Field("layoutCss", STR, p(32, ("body { margin: 0 }", ""))),
            V5Field("layoutCssGenerated", STR, p(33, ("/* generated */", ""))),
        ]

    def _custom_field(self) -> list[V5Field]:
        defs = self.v5.data.custom_field_defs()
        start = self.v5.start
        self.obj.bounds["createdAt"] = self.obj.bounds["updatedAt"] = (-self.obj.span, 0)

        def d(key: str) -> Gen:
            return lambda i: defs[i][key] if i < len(defs) else None

        name = d("name")
        return [
            V5Field("id", INT, lambda i: self.obj.base_id + i),
            V5Field("name", STR, lambda i: name(i) or f"Custom field {i + 1}"),
            V5Field("fieldId", STR, lambda i: d("field_id")(i) or f"Custom_Field_{i + 1}"),
            V5Field("type", STR, lambda i: d("type")(i) or "Text"),
            V5Field("salesforceId", STR, lambda _i: None),
            V5Field("isRequired", BOOL, lambda _i: False),
            V5Field("isRecordMultipleResponses", BOOL, lambda i: bool(d("is_record_multiple_responses")(i))),
            V5Field("isUseValues", BOOL, lambda i: bool(d("is_use_values")(i))),
            V5Field("isAnalyticsSynced", BOOL, self.flag(11, 5)),
            V5Field("createdAt", DATETIME, lambda _i: start),
            V5Field("updatedAt", DATETIME, lambda _i: start),
            V5Field("createdById", INT, self.ref(3, "user", 9)),
            V5Field("updatedById", INT, self.ref(4, "user", 9)),
        ]

    def _custom_redirect(self) -> list[V5Field]:
        p = self.pick
        return [
            V5Field("id", INT, lambda i: self.obj.base_id + i),
            V5Field("name", STR, self.label("Redirect", 11)),
            V5Field("url", STR, self.url("r", 12)),
            V5Field("destinationUrl", STR, p(13, URLS)),
            V5Field("vanityUrl", STR, p(14, ("https://go.example.com/promo", ""), 2)),
            V5Field("vanityUrlPath", STR, p(15, ("promo", ""), 2)),
            V5Field("trackedUrl", STR, self.url("track", 16)),
            V5Field("campaignId", INT, self.ref(17, "campaign", 5)),
            V5Field("salesforceId", STR, self.sfid("0Hr", 18)),
            self.deleted(),
            V5Field("folderId", INT, self.ref(19, "folder", 7)),
            V5Field("trackerDomainId", INT, self.ref(20, "tracker_domain", 4)),
            V5Field("bitlyIsPersonalized", BOOL, self.flag(21, 1)),
            V5Field("bitlyShortUrl", STR, p(22, ("https://bit.ly/ab12", ""), 2)),
            V5Field("gaSource", STR, p(23, ("newsletter", "google", ""))),
            V5Field("gaMedium", STR, p(24, ("email", "cpc", ""))),
            V5Field("gaTerm", STR, p(25, ("pardot, export", ""))),
            V5Field("gaContent", STR, p(26, ("banner_a", ""))),
            V5Field("gaCampaign", STR, p(27, ("spring_sale", ""))),
            *self.audit(),
        ]

    def _file(self) -> list[V5Field]:
        p = self.pick
        return [
            V5Field("id", INT, lambda i: self.obj.base_id + i),
            V5Field("name", STR, p(11, ("whitepaper, v2.pdf", "logo.png", "Datenblatt - Ü.pdf", "deck.pptx"))),
            V5Field("folderId", INT, self.ref(12, "folder", 7)),
            V5Field("campaignId", INT, self.ref(13, "campaign", 5)),
            V5Field("salesforceId", STR, self.sfid("0Hq", 14)),
            V5Field("trackerDomainId", INT, self.ref(15, "tracker_domain", 4)),
            V5Field("url", STR, self.url("l/1/file", 16)),
            V5Field("vanityUrl", STR, p(17, ("https://go.example.com/deck", ""), 2)),
            V5Field("vanityUrlPath", STR, p(18, ("deck", ""), 2)),
            V5Field("size", INT, self.num(19, 1_000, 50_000_000)),
            V5Field("isTracked", BOOL, self.flag(20, 8)),
            V5Field("bitlyIsPersonalized", BOOL, self.flag(21, 1)),
            V5Field("bitlyShortUrl", STR, p(22, ("https://bit.ly/f1le", ""), 2)),
            *self.audit(),
        ]

    def _opportunity(self) -> list[V5Field]:
        p = self.pick
        created = self.created()
        closed = self.h(20)
        end = self.end

        def closed_at(i: int) -> int | None:
            r = closed(i)
            return None if r % 3 == 0 else min(created(i) + (r >> 4) % (60 * DAY), end - 1)

        fields = [
            V5Field("id", INT, lambda i: self.obj.base_id + i),
            V5Field("name", STR, self.label("Opportunity", 11)),
            V5Field("type", STR, p(12, ("New Business", "Renewal", "Upsell, add-on", ""))),
            V5Field("stage", STR, p(13, ("Prospecting", "Negotiation", "Closed Won", "Closed Lost"))),
            V5Field("status", STR, p(14, ("Open", "Won", "Lost"))),
            V5Field("probability", INT, self.num(15, 0, 100, 6)),
            V5Field("value", NUMBER, self.money(16, 5)),
            V5Field("closedAt", DATETIME, closed_at),
            V5Field("campaignId", INT, self.ref(17, "campaign", 5)),
            V5Field("salesforceId", STR, self.sfid("006", 18)),
            V5Field("createdAt", DATETIME, created),
            V5Field("updatedAt", DATETIME, self.updated(created)),
            V5Field("createdById", INT, self.ref(3, "user", 9)),
            V5Field("updatedById", INT, self.ref(4, "user", 9)),
        ]
        self.obj.bounds["closedAt"] = (-HOUR, 60 * DAY)
        return fields

    def _lifecycle_stage(self) -> list[V5Field]:
        return [
            V5Field("id", INT, lambda i: self.obj.base_id + i),
            V5Field("name", STR, lambda i: STAGES[i] if i < len(STAGES) else f"Stage {i + 1}"),
            self.deleted(),
            V5Field("isLocked", BOOL, lambda i: i == 0),
            V5Field("position", INT, lambda i: i),
            V5Field("matchType", STR, self.pick(11, ("all", "any"))),
            *self.audit(by=False),
        ]

    def _lifecycle_history(self) -> list[V5Field]:
        stages = V5_OBJECTS["lifecycle_stage"][1], max(1, self.v5.rows["lifecycle_stage"])
        prev = self.h(12)

        def previous(i: int) -> int | None:
            r = prev(i)
            return None if r % 4 == 0 else stages[0] + (r >> 3) % stages[1]

        def following(i: int) -> int:
            p = previous(i)
            return stages[0] + ((p - stages[0] + 1) % stages[1] if p is not None else 0)

        return [
            V5Field("id", INT, lambda i: self.obj.base_id + i),
            V5Field("prospectId", INT, self.export_ref(11, "prospect")),
            V5Field("previousStageId", INT, previous),
            V5Field("nextStageId", INT, following),
            V5Field("secondsElapsed", INT, self.num(13, 0, 90 * DAY, 5)),
            *self.audit(updated_at=False, by=False),
        ]

    def _tag(self) -> list[V5Field]:
        tags = max(1, self.v5.rows["tag"])
        tagged = self.v5.rows["tagged_object"]
        return [
            V5Field("id", INT, lambda i: self.obj.base_id + i),
            V5Field("name", STR, self.pick(11, ("VIP", "Q1 push", "Ünïcödé", "partner, tier 1", "webinar"))),
            V5Field("objectCount", INT, lambda i: len(range(i, tagged, tags))),
            *self.audit(),
        ]

    def _target_name(self, target: str, rid: int | None) -> str | None:
        """The name of record ``rid`` of ``target`` (a v5 object), when it has one."""
        obj = self.v5.objects.get(target)
        if rid is None or obj is None or "name" not in obj.fields:
            return None
        return t.cast("str | None", obj.fields["name"].gen(rid - obj.base_id))

    def _items(self, salt: int, kinds: t.Sequence[str]) -> tuple[Gen, Gen, Gen]:
        """(objectType, objectId, objectName) of a tagged object or a folder's content."""
        kinds = tuple(k for k in kinds if TAGGABLE[k] == "prospect" or self.v5.rows[TAGGABLE[k]] > 0)
        kind = self.pick(salt, kinds)
        pick_id = self.h(salt + 1)

        def object_id(i: int) -> int:
            target = TAGGABLE[kind(i)]
            if target == "prospect":
                return BASE_IDS["prospect"] + (pick_id(i) >> 3) % max(1, self.v5.data.objects["prospect"].count)
            base, n = V5_OBJECTS[target][1], max(1, self.v5.rows[target])
            return base + (pick_id(i) >> 3) % n

        return kind, object_id, lambda i: self._target_name(TAGGABLE[kind(i)], object_id(i))

    def _tagged_object(self) -> list[V5Field]:
        tags = V5_OBJECTS["tag"][1], max(1, self.v5.rows["tag"])
        kind, object_id, object_name = self._items(11, tuple(TAGGABLE))
        return [
            V5Field("id", INT, lambda i: self.obj.base_id + i),
            V5Field("tagId", INT, lambda i: tags[0] + i % tags[1]),
            V5Field("objectType", STR, kind),
            V5Field("objectId", INT, object_id),
            V5Field("objectName", STR, object_name),
            V5Field("createdAt", DATETIME, self.created()),
            V5Field("createdById", INT, self.ref(3, "user", 9)),
        ]

    def _folder(self) -> list[V5Field]:
        base = self.obj.base_id
        names = self.pick(11, ("Campaigns", "Emails", "Forms, 2024", "Archive", "Ünïcödé", "Webinars"))

        def name(i: int) -> str:
            return "Marketing" if i == 0 else f"{names(i)} {i + 1}"

        def path(i: int) -> str:
            parts = []
            while True:
                parts.append(name(i))
                if i == 0:
                    return "/" + "/".join(reversed(parts))
                i = (i - 1) // 3

        return [
            V5Field("id", INT, lambda i: base + i),
            V5Field("name", STR, name),
            V5Field("parentFolderId", INT, lambda i: None if i == 0 else base + (i - 1) // 3),
            V5Field("path", STR, path),
            V5Field("usePermissions", BOOL, self.flag(12, 2)),
            *self.audit(),
        ]

    def _visits(self) -> tuple[int, int]:
        return max(1, self.v5.rows["visit"]), max(1, self.v5.rows["visitor_page_view"])

    def _visit_created(self) -> t.Callable[[int], int]:
        """A visit's createdAt (shared by the visits and their page views)."""
        visits, _ = self._visits()
        start, span, end = self.v5.start, self.v5.end - self.v5.start, self.end
        h = _Builder(self.v5, self.v5.objects["visit"]).h(1)

        def created(j: int) -> int:
            base = start + (j * span) // visits
            r = h(j)
            return min(max(start, base - (r >> 8) % HOUR), end - 1)

        return created

    def _page_time(self) -> t.Callable[[int], int]:
        """A page view's createdAt: its visit's start plus PAGE_GAP seconds per earlier page view."""
        visits, views = self._visits()
        visit_created = self._visit_created()
        jitter = _Builder(self.v5, self.v5.objects["visitor_page_view"]).h(1)
        end = self.end

        def created(i: int) -> int:
            j = i * visits // views
            first = (j * views + visits - 1) // visits
            return min(visit_created(j) + (i - first) * PAGE_GAP + jitter(i) % PAGE_JITTER, end - 1)

        return created

    def _page_span(self) -> int:
        visits, views = self._visits()
        return ((views + visits - 1) // visits) * PAGE_GAP + PAGE_JITTER

    def _visitor_of_visit(self) -> tuple[Gen, Gen]:
        """A visit's visitor (an exported visitor) and that visitor's prospect."""
        h = _Builder(self.v5, self.v5.objects["visit"]).h(11)
        exported = self.v5.data.objects["visitor"]
        n = max(1, exported.count)
        prospect = exported.field("prospect_id").gen

        def visitor(j: int) -> int:
            return BASE_IDS["visitor"] + (h(j) >> 3) % n

        return visitor, lambda j: prospect(visitor(j) - BASE_IDS["visitor"])

    def _visit(self) -> list[V5Field]:
        obj = self.obj
        visits, views = self._visits()
        created = self._visit_created()
        page = self._page_time()
        visitor, prospect = self._visitor_of_visit()
        delay = self.h(2)
        end = self.end

        def pages(j: int) -> range:
            return range((j * views + visits - 1) // visits, ((j + 1) * views + visits - 1) // visits)

        def first_view(j: int) -> int | None:
            r = pages(j)
            return page(r.start) if r else None

        def last_view(j: int) -> int | None:
            r = pages(j)
            return page(r.stop - 1) if r else None

        def duration(j: int) -> int | None:
            a, b = first_view(j), last_view(j)
            return None if a is None or b is None else b - a + PAGE_JITTER

        def plain_updated(j: int) -> int:
            last = last_view(j)
            return min(max(created(j), last or 0) + delay(j) % 600, end - 1)

        reach = self._page_span() + 600 + 2
        obj.bounds["createdAt"] = (-HOUR, 0)
        obj.bounds["firstVisitorPageViewAt"] = obj.bounds["lastVisitorPageViewAt"] = (-HOUR, reach)
        size = min(self.v5.config.mass_updates.get("visit", 0), obj.count)
        updated = plain_updated
        obj.bounds["updatedAt"] = (-HOUR, reach)
        if size > 0:
            first = (obj.count - size) // 2
            last = first + size - 1
            at = min(obj.base(last) + reach + HOUR, end - 1)
            obj.bursts.append(Burst("updatedAt", at, first, size))
            obj.bounds["updatedAt"] = (min(-HOUR, at - obj.base(last)), max(reach, at - obj.base(first)))

            def updated(j: int) -> int:
                return at if first <= j <= last else plain_updated(j)

        p = self.pick
        return [
            V5Field("id", INT, lambda j: obj.base_id + j),
            V5Field("visitorId", INT, visitor),
            V5Field("prospectId", INT, prospect),
            V5Field("visitorPageViewCount", INT, lambda j: len(pages(j))),
            V5Field("firstVisitorPageViewAt", DATETIME, first_view),
            V5Field("lastVisitorPageViewAt", DATETIME, last_view),
            V5Field("durationInSeconds", INT, duration),
            V5Field("sourceParameter", STR, p(12, ("google", "newsletter", ""))),
            V5Field("campaignParameter", STR, p(13, ("spring_sale", "", "brand, awareness"))),
            V5Field("mediumParameter", STR, p(14, ("email", "cpc", ""))),
            V5Field("contentParameter", STR, p(15, ("", "banner_a", 'link "b"'))),
            V5Field("termParameter", STR, p(16, ("pardot export", "", '"quoted" term'))),
            V5Field("createdAt", DATETIME, created),
            V5Field("updatedAt", DATETIME, updated),
        ]

    def _visitor_page_view(self) -> list[V5Field]:
        obj = self.obj
        visits, views = self._visits()
        visitor, _ = self._visitor_of_visit()
        visit_base = V5_OBJECTS["visit"][1]
        obj.bounds["createdAt"] = (-(obj.span // visits) - HOUR - 2, self._page_span() + 2)
        p = self.pick
        return [
            V5Field("id", INT, lambda i: obj.base_id + i),
            V5Field("url", STR, p(11, (*URLS[:3], "https://example.com/blog/ünïcödé"))),
            V5Field("title", STR, p(12, ("Pricing", "Home - Example", "", 'Blog: "exports", fast'))),
            V5Field("visitorId", INT, lambda i: visitor(i * visits // views)),
            V5Field("visitId", INT, lambda i: visit_base + i * visits // views),
            V5Field("campaignId", INT, self.ref(13, "campaign", 4)),
            V5Field("durationInSeconds", INT, self.num(14, 0, 900, 6)),
            V5Field("salesforceId", STR, self.sfid("0Hv", 15, 2)),
            V5Field("createdAt", DATETIME, self._page_time()),
        ]

    def _dynamic_content(self) -> list[V5Field]:
        p = self.pick
        return [
            V5Field("id", INT, lambda i: self.obj.base_id + i),
            V5Field("name", STR, self.label("Dynamic content", 11)),
            V5Field("basedOn", STR, p(12, ("default", "custom", "grade", "score"))),
            V5Field("basedOnProspectApiFieldId", STR, p(13, ("country", "industry", "Favorite_Color", ""))),
            V5Field("embedCode", STR, lambda i: f'<script src="https://go.example.com/dc/{i}"></script>'),
            V5Field("embedUrl", STR, self.url("dc", 14)),
            V5Field("tagReplacementLanguage", STR, p(15, ("pml", "hml", "undetermined"))),
            V5Field("folderId", INT, self.ref(16, "folder", 7)),
            V5Field("trackerDomainId", INT, self.ref(17, "tracker_domain", 4)),
            self.deleted(),
            V5Field("baseContent", STR, self.text(18)),
            *self.audit(),
        ]

    def _dynamic_content_variation(self) -> list[V5Field]:
        dc = V5_OBJECTS["dynamic_content"][1], max(1, self.v5.rows["dynamic_content"])
        p = self.pick
        op = p(12, ("is", "contains", "between", "less-than", "less-than-or-equal", "greater-than"))
        return [
            V5Field("id", INT, lambda i: self.obj.base_id + i),
            V5Field("dynamicContentId", INT, lambda i: dc[0] + i % dc[1]),
            V5Field("comparison", STR, p(11, ("country", "industry", "score"))),
            V5Field("operator", STR, op),
            V5Field("value1", STR, p(13, ("France", "10", "Software, B2B"))),
            V5Field("value2", STR, lambda i: "50" if op(i) == "between" else None),
            V5Field("content", STR, self.text(14, 0)),
        ]

    def _engagement_studio_program(self) -> list[V5Field]:
        p = self.pick
        lists = V5_OBJECTS["list"][1], max(1, self.v5.rows["list"])
        pick_lists = self.h(15)
        created = self.created()
        sched = self.h(16)
        days = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
        end = self.end

        def list_ids(salt: int) -> Gen:
            def g(i: int) -> list[int]:
                r = pick_lists(i * 3 + salt)
                return sorted({lists[0] + (r >> k) % lists[1] for k in range(0, 3 * (r % 3), 3)})

            return g

        def hours(i: int) -> dict[str, t.Any] | None:
            r = sched(i)
            if r % 3 == 0:
                return None
            return {
                "days": list(days[: 5 + r % 3]),
                "startTime": "09:00:00",
                "endTime": "17:30:00",
                "timezone": self.v5.config.timezone,
            }

        def entries(i: int) -> dict[str, t.Any] | None:
            r = sched(i) >> 4
            return None if r % 2 else {"maximumEntries": 1 + r % 5, "minimumDurationInDays": (r >> 3) % 30}

        def schedule(i: int) -> dict[str, t.Any] | None:
            r = sched(i) >> 8
            if r % 4 == 0:
                return None
            c = created(i)
            stop = Instant(min(c + 60 * DAY, end - 1)) if r % 2 else None
            return {"createdAt": Instant(c), "startOn": Instant(min(c + DAY, end - 1)), "stopOn": stop}

        return [
            V5Field("id", INT, lambda i: self.obj.base_id + i),
            V5Field("name", STR, self.label("Nurture program", 11)),
            V5Field("status", STR, p(12, ("draft", "running", "paused", "starting", "scheduled"))),
            self.deleted(),
            V5Field("salesforceId", STR, self.sfid("0Hp", 13)),
            V5Field("description", STR, self.text(14)),
            V5Field("scheduleCreatedById", INT, self.ref(17, "user", 3)),
            V5Field("businessHours", JSON, hours),
            V5Field("prospectsMultipleEntry", JSON, entries),
            V5Field("schedule", JSON, schedule),
            V5Field("recipientListIds", JSON, list_ids(1)),
            V5Field("suppressionListIds", JSON, list_ids(2)),
            V5Field("createdAt", DATETIME, created),
            V5Field("updatedAt", DATETIME, self.updated(created)),
            V5Field("createdById", INT, self.ref(3, "user", 9)),
            V5Field("updatedById", INT, self.ref(4, "user", 9)),
        ]

    def _form_field(self) -> list[V5Field]:
        forms = V5_OBJECTS["form"][1], max(1, self.v5.rows["form"])
        p = self.pick
        customs = tuple(f"{c}__c" for c in self.v5.config.custom_fields)
        return [
            V5Field("id", INT, lambda i: self.obj.base_id + i),
            V5Field("formId", INT, lambda i: forms[0] + i % forms[1]),
            V5Field("prospectApiFieldId", STR, p(11, ("email", "firstName", "lastName", "company", *customs))),
            V5Field("type", STR, p(12, ("Text", "Dropdown", "Checkbox", "Hidden", "Textarea"))),
            V5Field("dataFormat", STR, p(13, ("text", "email", "number"))),
            V5Field("sortOrder", INT, lambda i: i // forms[1]),
            V5Field("hasDependents", BOOL, self.flag(14, 1)),
            V5Field("hasProgressives", BOOL, self.flag(15, 1)),
            V5Field("hasValues", BOOL, self.flag(16, 3)),
            V5Field("label", STR, p(17, ("Email", "First name", "Société", 'Your "role"'))),
            V5Field("errorMessage", STR, p(18, ("This field is required", ""))),
            V5Field("cssClasses", STR, p(19, ("wide", "", "field, narrow"))),
            V5Field("isRequired", BOOL, self.flag(20, 4)),
            V5Field("isAlwaysDisplay", BOOL, self.flag(21, 2)),
            V5Field("isMaintainInitialValue", BOOL, self.flag(22, 2)),
            V5Field("isDoNotPrefill", BOOL, self.flag(23, 1)),
            *self.audit(),
        ]

    def _form_handler_field(self) -> list[V5Field]:
        handlers = V5_OBJECTS["form_handler"][1], max(1, self.v5.rows["form_handler"])
        p = self.pick
        return [
            V5Field("id", INT, lambda i: self.obj.base_id + i),
            V5Field("name", STR, p(11, ("email", "first_name", "company", "utm_source"))),
            V5Field("formHandlerId", INT, lambda i: handlers[0] + i % handlers[1]),
            V5Field("dataFormat", STR, p(12, ("text", "email", "number"))),
            V5Field("prospectApiFieldId", STR, p(13, ("email", "firstName", "company", "source"))),
            V5Field("isMaintainInitialValue", BOOL, self.flag(14, 2)),
            V5Field("errorMessage", STR, p(15, ("Required", ""))),
            V5Field("isRequired", BOOL, self.flag(16, 4)),
            *self.audit(updated_at=False),
        ]

    def _folder_content(self) -> list[V5Field]:
        folder = self.ref(11, "folder")
        kind, object_id, object_name = self._items(12, FOLDER_ITEMS)
        return [
            V5Field("id", INT, lambda i: self.obj.base_id + i),
            V5Field("folderId", INT, folder),
            V5Field("folderRef", STR, lambda i: f"https://pi.pardot.com/folder/read/id/{folder(i)}"),
            V5Field("objectType", STR, kind),
            V5Field("objectId", INT, object_id),
            V5Field("objectName", STR, object_name),
            V5Field("objectRef", STR, lambda i: f"https://pi.pardot.com/{kind(i)}/read/id/{object_id(i)}"),
            *self.audit(),
        ]

    def _tracker_domain(self) -> list[V5Field]:
        p = self.pick
        created = self.created()
        base = self.obj.base_id
        campaign = self.ref(11, "campaign", 3)
        return [
            V5Field("id", INT, lambda i: base + i),
            V5Field("domain", STR, lambda i: "go.example.com" if i == 0 else f"go{i + 1}.example.com"),
            V5Field("isPrimary", BOOL, lambda i: i == 0),
            V5Field("isDeleted", BOOL, lambda i: i != 0 and i % DELETED_EVERY == DELETED_EVERY - 1),
            V5Field("defaultCampaignId", INT, lambda i: campaign(i) if i else V5_OBJECTS["campaign"][1]),
            V5Field("httpsStatus", STR, p(12, ("enabled", "disabled"))),
            V5Field("sslStatus", STR, p(13, ("active", "pending", "none"))),
            V5Field("sslStatusDetails", STR, p(14, ("", "Certificate issued"))),
            V5Field("sslRequestedById", INT, self.ref(15, "user", 2)),
            V5Field("validationStatus", STR, p(16, ("validated", "not validated"))),
            V5Field("validatedAt", DATETIME, lambda i: created(i) if i % 2 == 0 else None),
            V5Field("vanityUrlStatus", STR, p(17, ("active", "inactive"))),
            V5Field("trackingCode", STR, lambda i: f"<script>piAId = '{1000 + i}'; piCId = '';</script>"),
            V5Field("createdAt", DATETIME, created),
            V5Field("updatedAt", DATETIME, self.updated(created)),
            V5Field("createdById", INT, self.ref(3, "user", 9)),
            V5Field("updatedById", INT, self.ref(4, "user", 9)),
        ]

    def _layout_template(self) -> list[V5Field]:
        return [
            V5Field("id", INT, lambda i: self.obj.base_id + i),
            V5Field("name", STR, self.label("Layout", 11)),
            V5Field("layoutContent", STR, lambda i: f"<html><body>%%content%% {i}</body></html>"),
            V5Field("siteSearchContent", STR, self.pick(12, ("%%site_search%%", ""))),
            V5Field("formContent", STR, self.pick(13, ("%%form%%", ""))),
            V5Field("folderId", INT, self.ref(14, "folder", 7)),
            self.deleted(),
            V5Field("isIncludeDefaultCss", BOOL, self.flag(15, 7)),
            *self.audit(),
        ]


def account_record(v5: V5Dataset, daily_limit: int, calls_used: int) -> dict[str, t.Any]:
    """The account singleton (``GET /api/v5/objects/account``), with the sandbox's call figures."""
    users = V5_OBJECTS["user"][1]
    start = v5.start
    return {
        "id": ACCOUNT_ID,
        "company": COMPANIES[0],
        "level": "Advanced",
        "website": URLS[0],
        "pluginCampaignId": V5_OBJECTS["campaign"][1],
        "addressOne": "1 Main St",
        "addressTwo": None,
        "city": CITIES[0],
        "state": None,
        "zip": "75001",
        "territory": "EMEA",
        "country": COUNTRIES[0],
        "phone": "+33 1 23 45 67 89",
        "fax": None,
        "adminId": users,
        "maximumDailyApiCalls": daily_limit,
        "apiCallsUsed": calls_used,
        "createdAt": start,
        "updatedAt": start,
        "createdById": users,
        "updatedById": users,
    }
