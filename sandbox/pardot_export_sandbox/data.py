"""A deterministic, seeded data set for the six exportable objects.

Rows are never stored: row ``i`` of an object is computed from ``(seed, object, i)``, so a
data set of millions of rows costs no memory and any subset can be regenerated on demand.
Timestamps grow with ``i`` (with bounded jitter), which lets a time filter jump to the
index range that can match instead of scanning the whole object.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

UTC = dt.timezone.utc
DAY = 86_400
HOUR = 3_600
#: created-like stamps lie in [base - SLACK, base]: jitter plus snapping to midnights/hours.
SLACK = 2 * DAY + HOUR
#: updated_at lies in [created_at, created_at + MAX_UPDATE_DELAY + HOUR].
MAX_UPDATE_DELAY = 7 * DAY
#: external activity dates are back-dated by up to this much from createdAt.
MAX_BACKDATE = 30 * DAY

INT, STR, BOOL, DATETIME = "integer", "string", "boolean", "datetime"
#: custom field kinds: a decimal number, and a calendar date rendered YYYY-MM-DD
NUMBER, DATE = "number", "date"
#: prepared value rows per object: non-varying fields of row ``i`` come from row ``slot(i)``.
POOL = 4096
VARYING_FIELDS = frozenset({"id", "email", "ip_address"})

FIRST_NAMES = (
    "Ana",
    "Zoë",
    "José",
    "Łukasz",
    "Søren",
    "Mei",
    "李",
    "Ngozi",
    "Ólafur",
    "Amélie",
    "O'Brien",
    "Dmitrí",
    "Fatimah",
    "Kai",
    "Renée",
    "Björn",
    "Yūki",
    "Chloé",
)
LAST_NAMES = (
    "Smith",
    "Müller",
    "García",
    "Dubois",
    "Kowalski",
    "Nakamura",
    "O'Neil",
    "Østergaard",
    "van der Berg",
    "Nguyễn",
    "Ivanov",
    "Papadopoulos",
    "Da Silva",
    "Kim",
)
COMPANIES = (
    "Acme, Inc.",
    "Globex",
    'The "Best" Widgets',
    "Initech Ltd",
    "Umbrella Corp.",
    "Søstrene Grene",
    "株式会社テスト",
    "Stark Industries, LLC",
    "",
    "Wayne Enterprises",
)
TEXTS = (
    "",
    "Plain note",
    "Line one\nline two",
    'Said "hello", then left',
    "Comma, separated, text",
    "Ünïcödé ✓ and emoji 🚀",
    "Tab\tinside",
    "Trailing space ",
    'Multi\r\nline, with "quotes"',
    "Ends with backslash \\",
)
CITIES = ("Paris", "São Paulo", "Zürich", "New York", "Kraków", "Tōkyō", "", "Reykjavík")
COUNTRIES = ("France", "Brazil", "Switzerland", "United States", "Poland", "Japan", "", "Iceland")
INDUSTRIES = ("Software", "Manufacturing", "Finance", "Retail", "Health Care", "")
SOURCES = ("Website", "Trade Show", "Webinar", "Referral", "Paid Search", "")
URLS = ("https://example.com/", "https://example.com/pricing?utm=a,b", "http://example.org/x", "")
HOSTS = ("host-1.example.net", "proxy.example.com", "", "mobile.example.org")
TERMS = ("pardot export", "bulk, data", "", '"quoted" term')
VA_TYPES = (
    (1, "Click"),
    (2, "View"),
    (4, "Success"),
    (6, "Sent"),
    (11, "Open"),
    (12, "Unsubscribe Page"),
    (13, "Bounced"),
    (17, "Custom URL click"),
    (20, "Visit"),
    (21, "Search"),
    (24, "Attended Webinar"),
    (28, "Olark Chat"),
    (35, "Email Tracking Opt Out"),
    (36, "Email Tracking Opt In"),
)
EXT_TYPES = ("Webinar Attended", "Event Registered", "Trial Started", "Survey, Completed")
EXTENSIONS = ("Zoom", "Eventbrite", "Custom App")
#: one custom prospect field of every Pardot custom field type, for ``typed_custom_fields``:
#: (field_id, label, Pardot type, type_id, kind, values). The CSV rendering of each type is our
#: reading of the docs, unverified against a real account: numbers as plain decimals, dates as
#: YYYY-MM-DD, multi-value types (Checkbox, Multi-Select) as their values joined by ";".
CUSTOM_FIELD_TYPES: tuple[tuple[str, str, str, int, str, tuple[t.Any, ...]], ...] = (
    ("Nickname", "Nickname", "Text", 1, STR, ("Ace", "", 'Dr. "Q"', "Zoë, the 2nd")),
    ("Lifetime_Value", "Lifetime Value", "Number", 2, NUMBER, (12.0, 1500.25, -3.5, 0.0, None, 123456789.0)),
    ("Renewal_Date", "Renewal Date", "Date", 3, DATE, ("2024-02-29", "2025-12-31", None, "2024-07-04")),
    ("Interests", "Interests", "Checkbox", 4, STR, ("Webinars;Ebooks", "Ebooks", "", "Events;Webinars;Blog")),
    ("Preferred_Channel", "Preferred Channel", "Radio Button", 5, STR, ("Email", "Phone", "")),
    ("Region", "Region", "Dropdown", 6, STR, ("EMEA", "AMER", "APAC", "")),
    ("Products_Owned", "Products Owned", "Multi-Select", 7, STR, ("Widget;Gadget", "Gadget", "")),
    ("Bio", "Bio", "Textarea", 8, STR, TEXTS),
    ("Lead_Source_Detail", "Lead Source Detail", "Hidden", 9, STR, ("utm=a,b", "", "partner-42")),
    ("Account_Owner", "Account Owner", "CRM User", 10, STR, ("0055e00000OwNeRAAV", "", "0055e00000AbCdEAAV")),
)
#: custom prospect account fields for ``custom_account_fields``: (field id, label, describe
#: type, kind, values). The describe types are lower case, as a public client's fixture of
#: the describe answer shows ("text"); "number" and "date" are our reading, unverified.
CUSTOM_ACCOUNT_FIELD_TYPES: tuple[tuple[str, str, str, str, tuple[t.Any, ...]], ...] = (
    ("Account_Tier", "Account Tier", "text", STR, ("Gold", "", 'Tier "A", EMEA', "Zoë's")),
    ("Seat_Count", "Seat Count", "number", NUMBER, (25.0, 1200.5, -1.0, 0.0, None, 987654.0)),
    ("Contract_End", "Contract End", "date", DATE, ("2024-02-29", "2026-01-31", None, "2025-06-30")),
)
#: the describe type of a built-in prospect account field, by its kind
DESCRIBE_TYPES = {STR: "text", INT: "number", NUMBER: "number", DATE: "date", BOOL: "checkbox", DATETIME: "datetime"}
DETAILS = ("Pricing page", "Spring Newsletter 🌸", "Form: Contact us", 'File "whitepaper, v2.pdf"', "")


def mix(i: int, salt: int) -> int:
    """Return a well-spread 32-bit hash of ``i`` and ``salt`` (fast, deterministic)."""
    h = (i * 0x9E3779B1 + salt * 0x85EBCA77 + 0x165667B1) & 0xFFFFFFFF
    h ^= h >> 15
    h = (h * 0x2C1B3C6D) & 0xFFFFFFFF
    h ^= h >> 12
    h = (h * 0x297A2D39) & 0xFFFFFFFF
    return h ^ (h >> 15)


Gen = t.Callable[[int], t.Any]
Stamp = t.Callable[[int], int]


@dataclass
class Field:
    """One exportable field: its name, type and how row ``i`` gets its value."""

    name: str
    kind: str
    gen: Gen
    nullable: bool = True
    #: False: the value comes from one of POOL prepared rows (picked by a hash of ``i``), so
    #: rendering can reuse its CSV text; True: computed for every row (ids, times, emails).
    varying: bool = False
    #: For a pooled field: the generator of the POOL prepared rows (``gen`` picks one of them).
    base_gen: Gen | None = None


@dataclass
class Procedure:
    """A procedure: the timestamp field it filters on and its argument names."""

    name: str
    time_field: str | None  # a field of the object, or None for a derived time
    after: str
    before: str
    extra: dict[str, str] = field(default_factory=dict)  # argument -> kind ("deleted", "bool", "types")
    derived_time: t.Callable[[int], int | None] | None = None  # used when time_field is None


def _updated_proc() -> Procedure:
    return Procedure("filter_by_updated_at", "updated_at", "updated_after", "updated_before", {"deleted": "deleted"})


def _created_proc() -> Procedure:
    return Procedure("filter_by_created_at", "created_at", "created_after", "created_before", {"deleted": "deleted"})


@dataclass
class ObjectData:
    """One object's generated rows."""

    name: str  # API object string, e.g. visitorActivity
    stream: str  # the tap's stream name, e.g. visitor_activity
    count: int
    base_id: int
    fields: list[Field]
    procedures: dict[str, Procedure]
    times: dict[str, tuple[t.Callable[[int], int], int, int]]  # field -> (fn, lo_off, hi_off)
    is_deleted: t.Callable[[int], bool] | None = None
    start: int = 0
    span: int = 1
    slot: t.Callable[[int], int] = lambda _i: 0
    #: records added while running (row indexes from ``count`` on) and rows whose times changed
    #: (row index -> time field -> epoch seconds): see changes.py
    added: int = 0
    changed: dict[int, dict[str, int]] = field(default_factory=dict)
    overlaid: bool = False

    def delete(self, ids: t.Iterable[int]) -> None:
        """Move the records with these ids to the recycle bin (their updated_at does not move)."""
        if self.is_deleted is None:
            msg = f"{self.stream} has no recycle bin"
            raise ValueError(msg)
        was, gone = self.is_deleted, {int(x) - self.base_id for x in ids}
        self.is_deleted = lambda i: i in gone or was(i)

    @property
    def field_names(self) -> list[str]:
        """The object's field names, in export order."""
        return [f.name for f in self.fields]

    def field(self, name: str) -> Field:
        """Return the field called ``name``."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def base(self, i: int) -> int:
        """The monotonic timeline stamp of row ``i``."""
        return self.start + (i * self.span) // max(self.count, 1)

    def candidate_range(self, lo_off: int, hi_off: int, after: int | None, before: int | None) -> range:
        """Indexes whose stamps (in ``[base+lo_off, base+hi_off]``) may lie in ``(after, before)``."""
        n = self.count
        if n == 0:
            return range(0)
        lo = 0
        hi = n
        if after is not None:
            lo = max(0, ((after - hi_off - self.start) * n) // self.span - 1)
        if before is not None:
            hi = min(n, max(0, ((before - lo_off - self.start) * n) // self.span + 2))
        return range(lo, max(lo, hi))

    def typed_row(self, i: int) -> dict[str, t.Any]:
        """Row ``i`` as typed Python values (datetimes as aware UTC datetimes)."""
        out: dict[str, t.Any] = {}
        for f in self.fields:
            v = f.gen(i)
            if f.kind == DATETIME and v is not None:
                v = dt.datetime.fromtimestamp(v, UTC)
            out[f.name] = v
        return out


class LocalTimeFormatter:
    """Render epoch seconds as ``YYYY-MM-DD HH:MM:SS`` in a zone, fast.

    Every zone offset in use is a multiple of 15 minutes, so the local rendering of a
    15-minute block is computed once and each second inside it is derived by arithmetic.
    Daylight saving is handled as Pardot does: the instant is rendered in local time.
    """

    def __init__(self, zone: str) -> None:
        self.zone = ZoneInfo(zone)
        self._blocks: dict[int, tuple[str, int]] = {}

    def __call__(self, ts: int) -> str:
        """The local ``YYYY-MM-DD HH:MM:SS`` of epoch second ``ts``."""
        block, r = divmod(ts, 900)
        cached = self._blocks.get(block)
        if cached is None:
            local = dt.datetime.fromtimestamp(block * 900, self.zone)
            cached = (local.strftime("%Y-%m-%d %H:"), local.minute)
            self._blocks[block] = cached
        prefix, minute = cached
        m, s = divmod(r, 60)
        return f"{prefix}{minute + m:02d}:{s:02d}"

    def offset_seconds(self, ts: int) -> int:
        """The zone's UTC offset at ``ts``."""
        off = dt.datetime.fromtimestamp(ts, self.zone).utcoffset()
        return int(off.total_seconds()) if off else 0


@dataclass
class DataConfig:
    """What data set to generate."""

    seed: int = 42
    start: dt.datetime = dt.datetime(2024, 1, 1, tzinfo=UTC)
    end: dt.datetime = dt.datetime(2025, 1, 1, tzinfo=UTC)
    rows: dict[str, int] = field(default_factory=dict)
    custom_fields: tuple[str, ...] = ("Favorite_Color", "Lead_Notes")
    timezone: str = "America/New_York"
    #: add one custom prospect field of every Pardot type (see CUSTOM_FIELD_TYPES)
    typed_custom_fields: bool = False
    #: add custom prospect account fields (a text, a number, a date; see CUSTOM_ACCOUNT_FIELD_TYPES)
    custom_account_fields: bool = False
    #: v5 emails: the sends of one list email, which share one sentAt, hold this many emails ...
    email_send_size: int = 2_000
    #: ... and this many one-to-one emails, each with its own sentAt, follow each send
    email_send_gap: int = 400
    #: v5 objects with a mass update: this many records in the middle of the object share one updatedAt
    mass_updates: dict[str, int] = field(default_factory=lambda: {"visit": 500})


DEFAULT_ROWS = {
    "prospect": 400,
    "visitor": 300,
    "visitor_activity": 1200,
    "list_membership": 500,
    "prospect_account": 120,
    "external_activity": 200,
}

OBJECT_NAMES = {
    "prospect": "prospect",
    "visitor": "visitor",
    "visitor_activity": "visitorActivity",
    "list_membership": "listMembership",
    "prospect_account": "prospectAccount",
    "external_activity": "externalActivity",
}

#: the v5 query API's objects: stream name -> (collection, first id, default number of records).
#: The first ids and sizes of the objects the export data points at make the export data's ids
#: resolve (visitor activity's form_id is a form the v5 API serves, and so on); custom_field's
#: records are the custom prospect fields (``DataConfig.custom_fields``), whatever its size says.
V5_OBJECTS: dict[str, tuple[str, int, int]] = {
    "campaign": ("campaigns", 1000, 31),
    "list": ("lists", 2000, 41),
    "list_email": ("list-emails", 7000, 51),
    "email": ("emails", 5000, 6000),
    "email_template": ("email-templates", 600, 41),
    "user": ("users", 100, 21),
    "form": ("forms", 800, 21),
    "form_handler": ("form-handlers", 900, 11),
    "landing_page": ("landing-pages", 300, 31),
    "custom_field": ("custom-fields", 7000, 0),
    "custom_redirect": ("custom-redirects", 1200, 31),
    "file": ("files", 1100, 21),
    "opportunity": ("opportunities", 80_000, 501),
    "lifecycle_stage": ("lifecycle-stages", 30, 8),
    "lifecycle_history": ("lifecycle-histories", 3_000_000, 2000),
    "tag": ("tags", 9000, 25),
    "tagged_object": ("tagged-objects", 9_100_000, 400),
    "folder": ("folders", 4000, 40),
    "visit": ("visits", 70_000_000, 3000),
    "visitor_page_view": ("visitor-page-views", 1_000_000, 12_000),
    "dynamic_content": ("dynamic-contents", 6500, 12),
    "dynamic_content_variation": ("dynamic-content-variations", 6600, 36),
    "engagement_studio_program": ("engagement-studio-programs", 9500, 15),
    "form_field": ("form-fields", 810_000, 120),
    "form_handler_field": ("form-handler-fields", 910_000, 60),
    "folder_content": ("folder-contents", 4_100_000, 300),
    "tracker_domain": ("tracker-domains", 20, 3),
    "layout_template": ("layout-templates", 60, 10),
}

BASE_IDS = {
    "prospect": 10_000_000,
    "visitor": 20_000_000,
    "visitor_activity": 300_000_000,
    "list_membership": 40_000_000,
    "prospect_account": 50_000_000,
    "external_activity": 60_000_000,
}


class Dataset:
    """All six objects, generated from one :class:`DataConfig`."""

    def __init__(self, config: DataConfig) -> None:
        self.config = config
        self.local = LocalTimeFormatter(config.timezone)
        rows = {**DEFAULT_ROWS, **config.rows}
        self.start = int(config.start.timestamp())
        self.end = int(config.end.timestamp())
        if self.end <= self.start:
            msg = "the data set's end must be after its start"
            raise ValueError(msg)
        #: records of each v5 object before any change (the export data's ids point into them)
        self.v5_rows = {name: int(rows.get(name, default)) for name, (_, _, default) in V5_OBJECTS.items()}
        self.v5_rows["custom_field"] = len(config.custom_fields) + (
            len(CUSTOM_FIELD_TYPES) if config.typed_custom_fields else 0
        )
        unknown = sorted(set(rows) - set(DEFAULT_ROWS) - set(V5_OBJECTS))
        if unknown:
            msg = f"unknown object(s) in rows: {', '.join(unknown)}"
            raise ValueError(msg)
        small = sorted(k for k, v in self.v5_rows.items() if v < 1 and k != "custom_field")
        if small:
            msg = f"every v5 object needs at least one record: {', '.join(small)}"
            raise ValueError(msg)
        self.objects: dict[str, ObjectData] = {}
        for stream in OBJECT_NAMES:
            self.objects[stream] = self._build(stream, int(rows[stream]))

    def custom_field_defs(self) -> list[dict[str, t.Any]]:
        """The account's custom prospect fields, as the custom field query describes them."""
        defs: list[tuple[str, str, str, int]] = []
        for k, name in enumerate(self.config.custom_fields):
            kind = ("Dropdown", 6) if k % 2 == 0 else ("Textarea", 8)
            defs.append((name, name.replace("_", " "), *kind))
        if self.config.typed_custom_fields:
            defs.extend((f[0], f[1], f[2], f[3]) for f in CUSTOM_FIELD_TYPES)
        stamp = dt.datetime.fromtimestamp(self.start, self.local.zone).strftime("%Y-%m-%d %H:%M:%S")
        return [
            {
                "id": 7000 + k,
                "name": label,
                "field_id": field_id,
                "type": type_name,
                "type_id": type_id,
                "created_at": stamp,
                "updated_at": stamp,
                "is_record_multiple_responses": type_name in ("Checkbox", "Multi-Select"),
                "crm_id": None,
                "is_use_values": type_name in ("Checkbox", "Radio Button", "Dropdown", "Multi-Select"),
            }
            for k, (field_id, label, type_name, type_id) in enumerate(defs)
        ]

    def account_field_defs(self) -> list[dict[str, t.Any]]:
        """The prospect account fields, as the describe operation lists them.

        Returns:
            One ``{"@attributes": {...}}`` per field: its ``id`` (the export column), ``label``,
            ``type``, ``required``, ``custom`` and ``has_options``.
        """
        custom = {f[0]: f for f in CUSTOM_ACCOUNT_FIELD_TYPES} if self.config.custom_account_fields else {}
        out: list[dict[str, t.Any]] = []
        for f in self.objects["prospect_account"].fields:
            if f.name in ("id", "created_at", "updated_at"):
                continue  # the describe lists what a user edits, not the record's keys and stamps
            spec = custom.get(f.name)
            kind = spec[2] if spec else ("textarea" if f.name == "description" else DESCRIBE_TYPES[f.kind])
            label = spec[1] if spec else f.name.replace("_", " ").capitalize()
            attributes = {
                "id": f.name,
                "label": label,
                "type": kind,
                "required": f.name == "name",
                "custom": spec is not None,
                "has_options": False,
            }
            out.append({"@attributes": attributes})
        return out

    def by_api_name(self, name: str) -> ObjectData | None:
        """The object whose API name (``visitorActivity``...) is ``name``."""
        for obj in self.objects.values():
            if obj.name == name:
                return obj
        return None

    # -- building blocks ---------------------------------------------------------------

    def _h(self, stream: str, salt: int) -> t.Callable[[int], int]:
        s = self.config.seed * 1_000_003 + salt * 7919 + sum(map(ord, stream))
        add = (s * 0x85EBCA77 + 0x165667B1) & 0xFFFFFFFF

        def h(i: int) -> int:  # mix(i, s), inlined: this runs several times per generated row
            x = (i * 0x9E3779B1 + add) & 0xFFFFFFFF
            x ^= x >> 15
            x = (x * 0x2C1B3C6D) & 0xFFFFFFFF
            x ^= x >> 12
            x = (x * 0x297A2D39) & 0xFFFFFFFF
            return x ^ (x >> 15)

        return h

    def _created(self, obj: ObjectData) -> t.Callable[[int], int]:
        h = self._h(obj.stream, 1)
        zone = self.local
        start, end = self.start, self.end
        span, n = obj.span, max(obj.count, 1)
        memo = [(-1, 0)]  # one tuple: swapped atomically, safe across threads

        def created(i: int) -> int:
            m = memo[0]
            if m[0] == i:
                return m[1]
            base = start + (i * span) // n
            r = h(i)
            sel = r % 1000
            if sel < 20:  # exactly on a UTC midnight
                ts = base - base % DAY
            elif sel < 40:  # exactly on a local midnight
                d = dt.datetime.fromtimestamp(base, zone.zone)
                ts = int(d.replace(hour=0, minute=0, second=0).timestamp())
            elif sel < 120:  # exactly on a whole hour
                ts = base - base % HOUR
            else:
                ts = base - (r >> 10) % HOUR
            ts = min(max(ts, start), end - 1)
            memo[0] = (i, ts)
            return ts

        return created

    def _updated(self, created: t.Callable[[int], int], stream: str) -> t.Callable[[int], int]:
        h = self._h(stream, 2)
        end = self.end
        memo = [(-1, 0)]  # one tuple: swapped atomically, safe across threads

        def updated(i: int) -> int:
            m = memo[0]
            if m[0] == i:
                return m[1]
            c = created(i)
            r = h(i)
            sel = r % 10
            if sel < 3:
                u = c
            else:
                u = c + (r >> 4) % MAX_UPDATE_DELAY
                if sel < 5:  # on a whole hour
                    u = u - u % HOUR + HOUR
                u = max(c, min(u, end - 1))
            memo[0] = (i, u)
            return u

        return updated

    def _int(self, stream: str, salt: int, lo: int, hi: int, null_every: int = 0) -> Gen:
        h = self._h(stream, salt)
        width = hi - lo + 1

        def g(i: int) -> int | None:
            r = h(i)
            if null_every and r % null_every == 0:
                return None
            return lo + (r >> 5) % width

        return g

    def _ref(self, stream: str, salt: int, target: str, null_every: int = 0) -> Gen:
        # counts are known only once every object exists: resolve lazily
        h = self._h(stream, salt)

        def g(i: int) -> int | None:
            r = h(i)
            if null_every and r % null_every == 0:
                return None
            n = max(self.objects[target].count, 1)
            return BASE_IDS[target] + (r >> 5) % n

        return g

    def _v5_ref(self, stream: str, salt: int, target: str, width: int, null_every: int = 0) -> Gen:
        """An id of the v5 object ``target``: one of its first ``width`` records (fewer when it has fewer).

        With the v5 object's default size, the values are the ones the export data had before the
        v5 objects existed (``lo + r % width``): the ids resolve without changing the exports.
        """
        h = self._h(stream, salt)
        base = V5_OBJECTS[target][1]
        n = max(1, min(width, self.v5_rows[target]))

        def g(i: int) -> int | None:
            r = h(i)
            if null_every and r % null_every == 0:
                return None
            return base + (r >> 5) % n

        return g

    def _choice(self, stream: str, salt: int, pool: t.Sequence[t.Any], *, null_if_empty: bool = True) -> Gen:
        h = self._h(stream, salt)
        n = len(pool)

        def g(i: int) -> t.Any:
            v = pool[h(i) % n]
            return None if (null_if_empty and v == "") else v

        return g

    def _bool(self, stream: str, salt: int, per_ten: int) -> Gen:
        h = self._h(stream, salt)
        return lambda i: h(i) % 10 < per_ten

    def _time_of(self, base_fn: t.Callable[[int], int], stream: str, salt: int, max_after: int, null_every: int) -> Gen:
        h = self._h(stream, salt)
        end = self.end

        def g(i: int) -> int | None:
            r = h(i)
            if null_every and r % null_every == 0:
                return None
            return min(base_fn(i) + (r >> 6) % max_after, end - 1)

        return g

    def _id(self, stream: str) -> Gen:
        b = BASE_IDS[stream]
        return lambda i: b + i

    # -- objects -----------------------------------------------------------------------

    def _build(self, stream: str, count: int) -> ObjectData:
        obj = ObjectData(
            name=OBJECT_NAMES[stream],
            stream=stream,
            count=count,
            base_id=BASE_IDS[stream],
            fields=[],
            procedures={},
            times={},
            start=self.start,
            span=self.end - self.start,
        )
        created = self._created(obj)
        updated = self._updated(created, stream)
        deleted_h = self._h(stream, 99)
        obj.is_deleted = lambda i: deleted_h(i) % 10 == 0
        obj.times = {
            "created_at": (created, -SLACK, 0),
            "updated_at": (updated, -SLACK, MAX_UPDATE_DELAY + HOUR),
        }
        builders = {
            "prospect": self._build_prospect,
            "visitor": self._build_visitor,
            "visitor_activity": self._build_visitor_activity,
            "list_membership": self._build_list_membership,
            "prospect_account": self._build_prospect_account,
            "external_activity": self._build_external_activity,
        }
        if stream in builders:
            builders[stream](obj, created, updated)
        self._pool_fields(obj)
        return obj

    def _build_prospect(self, obj: ObjectData, created: Stamp, updated: Stamp) -> None:
        s, ch = obj.stream, self._choice
        obj.fields = self._prospect_fields(s, created, updated)
        for k, name in enumerate(self.config.custom_fields):
            pool = ("Blue", "Green", "", "Red, dark") if k % 2 == 0 else TEXTS
            obj.fields.append(Field(name, STR, ch(s, 60 + k, pool)))
        if self.config.typed_custom_fields:
            for k, (name, _, _, _, kind, values) in enumerate(CUSTOM_FIELD_TYPES):
                obj.fields.append(Field(name, kind, ch(s, 80 + k, values)))
        obj.procedures = {p.name: p for p in (_updated_proc(), _created_proc())}

    def _prospect_fields(self, s: str, created: Stamp, updated: Stamp) -> list[Field]:
        c, ch, b, i_, ref, tm = self._int, self._choice, self._bool, self._id, self._ref, self._time_of
        v5 = self._v5_ref
        return [
            Field("id", INT, i_(s), False),
            Field("campaign_id", INT, v5(s, 3, "campaign", 31, 9)),
            Field("salutation", STR, ch(s, 4, ("Mr.", "Ms.", "Dr.", "", "Mx."))),
            Field("first_name", STR, lambda i: FIRST_NAMES[i % len(FIRST_NAMES)]),
            Field("last_name", STR, lambda i: LAST_NAMES[(i // 3) % len(LAST_NAMES)]),
            Field("email", STR, lambda i: f"prospect{i}@example.com", False),
            Field("company", STR, ch(s, 5, COMPANIES)),
            Field("prospect_account_id", INT, ref(s, 6, "prospect_account", 4)),
            Field("website", STR, ch(s, 7, URLS)),
            Field("job_title", STR, ch(s, 8, ("CTO", "Data Engineer", "VP, Marketing", "", "Analyst"))),
            Field("department", STR, ch(s, 9, ("Engineering", "Sales", "", "Marketing"))),
            Field("country", STR, ch(s, 10, COUNTRIES)),
            Field("address_one", STR, ch(s, 11, ("1 Main St", "221B Baker Street", "", "Rua Augusta, 10"))),
            Field("address_two", STR, ch(s, 12, ("", "Suite 5", "Apt. 3, floor 2"))),
            Field("city", STR, ch(s, 13, CITIES)),
            Field("state", STR, ch(s, 14, ("CA", "NY", "", "TX"))),
            Field("territory", STR, ch(s, 15, ("EMEA", "AMER", "", "APAC"))),
            Field("zip", STR, ch(s, 16, ("75001", "01310-100", "", "10001"))),
            Field("phone", STR, ch(s, 17, ("+1 555 0100", "", "+33 1 23 45 67 89"))),
            Field("fax", STR, ch(s, 18, ("", "+1 555 0199"))),
            Field("source", STR, ch(s, 19, SOURCES)),
            Field("annual_revenue", STR, ch(s, 20, ("", "$1,000,000", "500000", "Under $1M"))),
            Field("employees", STR, ch(s, 21, ("", "1-10", "5000", "10,000+"))),
            Field("industry", STR, ch(s, 22, INDUSTRIES)),
            Field("years_in_business", STR, ch(s, 23, ("", "3", "10+"))),
            Field("comments", STR, ch(s, 24, TEXTS)),
            Field("notes", STR, ch(s, 43, TEXTS)),
            Field("score", INT, c(s, 25, 0, 500)),
            Field("grade", STR, ch(s, 44, ("A+", "B", "", "C-", "D"))),
            Field("last_activity_at", DATETIME, tm(updated, s, 26, DAY, 5)),
            Field("recent_interaction", STR, ch(s, 27, ("Visited page", "Opened email", "", "Never active"))),
            Field("crm_lead_fid", STR, ch(s, 28, ("", "00Q5e00000AbCdEAAV"))),
            Field("crm_contact_fid", STR, ch(s, 29, ("", "0035e00000XyZwQAAV"))),
            Field("crm_owner_fid", STR, ch(s, 30, ("", "0055e00000OwNeRAAV"))),
            Field("crm_account_fid", STR, ch(s, 31, ("", "0015e00000AcCtQAAV"))),
            Field("salesforce_fid", STR, ch(s, 32, ("", "0035e00000XyZwQAAV"))),
            Field("crm_last_sync", DATETIME, tm(updated, s, 33, HOUR, 3)),
            Field("crm_url", STR, ch(s, 34, ("", "https://example.my.salesforce.com/0035e00000XyZwQAAV"))),
            Field("is_do_not_email", BOOL, b(s, 35, 1), False),
            Field("is_do_not_call", BOOL, b(s, 36, 1), False),
            Field("opted_out", BOOL, b(s, 37, 2), False),
            Field("is_reviewed", BOOL, b(s, 38, 5), False),
            Field("is_starred", BOOL, b(s, 39, 1), False),
            Field("user_id", INT, v5(s, 40, "user", 21, 3)),
            Field("created_at", DATETIME, created, False),
            Field("updated_at", DATETIME, updated, False),
        ]

    def _build_visitor(self, obj: ObjectData, created: Stamp, updated: Stamp) -> None:
        s, c, ch, i_, ref = obj.stream, self._int, self._choice, self._id, self._ref
        obj.fields = [
            Field("id", INT, i_(s), False),
            Field("page_view_count", INT, c(s, 3, 0, 250), False),
            Field("ip_address", STR, lambda i: f"192.0.2.{i % 250 + 1}"),
            Field("hostname", STR, ch(s, 4, HOSTS)),
            Field("campaign_parameter", STR, ch(s, 5, ("spring_sale", "", "brand, awareness"))),
            Field("medium_parameter", STR, ch(s, 6, ("email", "cpc", ""))),
            Field("source_parameter", STR, ch(s, 7, ("google", "newsletter", ""))),
            Field("content_parameter", STR, ch(s, 8, ("", "banner_a", 'link "b"'))),
            Field("term_parameter", STR, ch(s, 9, TERMS)),
            Field("prospect_id", INT, ref(s, 10, "prospect", 3)),
            Field("created_at", DATETIME, created, False),
            Field("updated_at", DATETIME, updated, False),
        ]
        obj.procedures = {
            "filter_by_updated_at": _updated_proc(),
            "filter_by_prospect_updated_at": self._prospect_proc(obj, "prospect_id"),
        }

    def _build_visitor_activity(self, obj: ObjectData, created: Stamp, updated: Stamp) -> None:
        obj.fields = self._visitor_activity_fields(obj.stream, created, updated)
        obj.procedures = {
            "filter_by_created_at": Procedure(
                "filter_by_created_at",
                "created_at",
                "created_after",
                "created_before",
                {"type": "types", "prospect_only": "bool"},
            ),
            "filter_by_updated_at": Procedure(
                "filter_by_updated_at",
                "updated_at",
                "updated_after",
                "updated_before",
                {"type": "types", "prospectOnly": "bool"},
            ),
        }
        obj.is_deleted = None

    def _visitor_activity_fields(self, s: str, created: Stamp, updated: Stamp) -> list[Field]:
        c, ch, i_, ref, v5 = self._int, self._choice, self._id, self._ref, self._v5_ref
        types = self._h(s, 3)

        def va_type(i: int) -> int:
            return VA_TYPES[types(i) % len(VA_TYPES)][0]

        def va_name(i: int) -> str:
            return VA_TYPES[types(i) % len(VA_TYPES)][1]

        return [
            Field("id", INT, i_(s), False),
            Field("prospect_id", INT, ref(s, 4, "prospect", 4)),
            Field("visitor_id", INT, ref(s, 5, "visitor", 6)),
            Field("type", INT, va_type, False),
            Field("type_name", STR, va_name, False),
            Field("details", STR, ch(s, 6, DETAILS)),
            Field("email_id", INT, v5(s, 7, "email", 101, 2)),
            Field("email_template_id", INT, v5(s, 8, "email_template", 41, 2)),
            Field("list_email_id", INT, v5(s, 9, "list_email", 51, 2)),
            Field("form_id", INT, v5(s, 10, "form", 21, 2)),
            Field("form_handler_id", INT, v5(s, 11, "form_handler", 11, 2)),
            Field("site_search_query_id", INT, c(s, 12, 100, 110, 2)),
            Field("landing_page_id", INT, v5(s, 13, "landing_page", 31, 2)),
            Field("paid_search_ad_id", INT, c(s, 14, 400, 410, 2)),
            Field("multivariate_test_variation_id", INT, c(s, 15, 500, 505, 2)),
            Field("visitor_page_view_id", INT, v5(s, 16, "visitor_page_view", 9_000_000, 2)),
            Field("file_id", INT, v5(s, 17, "file", 21, 2)),
            Field("custom_redirect_id", INT, v5(s, 18, "custom_redirect", 31, 2)),
            Field("campaign_id", INT, v5(s, 19, "campaign", 31, 5)),
            Field("visit_id", INT, v5(s, 20, "visit", 1_000_000, 3)),
            Field("opportunity_id", INT, v5(s, 21, "opportunity", 501, 12)),
            Field("created_at", DATETIME, created, False),
            Field("updated_at", DATETIME, updated, False),
        ]

    def _build_list_membership(self, obj: ObjectData, created: Stamp, updated: Stamp) -> None:
        s, v5, b, i_, ref = obj.stream, self._v5_ref, self._bool, self._id, self._ref
        obj.fields = [
            Field("id", INT, i_(s), False),
            Field("list_id", INT, v5(s, 3, "list", 41), False),
            Field("prospect_id", INT, ref(s, 4, "prospect"), False),
            Field("opted_out", BOOL, b(s, 5, 1), False),
            Field("created_at", DATETIME, created, False),
            Field("updated_at", DATETIME, updated, False),
        ]
        obj.procedures = {p.name: p for p in (_updated_proc(), _created_proc())}

    def _build_prospect_account(self, obj: ObjectData, created: Stamp, updated: Stamp) -> None:
        obj.fields = self._prospect_account_fields(obj.stream, created, updated)
        if self.config.custom_account_fields:
            for k, (name, _, _, kind, values) in enumerate(CUSTOM_ACCOUNT_FIELD_TYPES):
                obj.fields.append(Field(name, kind, self._choice(obj.stream, 40 + k, values)))
        obj.procedures = {
            "filter_by_updated_at": _updated_proc(),
            "filter_by_prospect_updated_at": self._prospect_proc(obj, None),
        }

    def _prospect_account_fields(self, s: str, created: Stamp, updated: Stamp) -> list[Field]:
        v5, ch, i_ = self._v5_ref, self._choice, self._id
        return [
            Field("id", INT, i_(s), False),
            Field("name", STR, ch(s, 3, tuple(c for c in COMPANIES if c)), False),
            Field("number", STR, ch(s, 4, ("", "A-1001", "B-2002"))),
            Field("description", STR, ch(s, 5, TEXTS)),
            Field("phone", STR, ch(s, 6, ("+1 555 0100", ""))),
            Field("fax", STR, ch(s, 7, ("", "+1 555 0199"))),
            Field("website", STR, ch(s, 8, URLS)),
            Field("rating", STR, ch(s, 9, ("Hot", "Warm", "Cold", ""))),
            Field("site", STR, ch(s, 10, ("HQ", "Branch", ""))),
            Field("type", STR, ch(s, 11, ("Customer", "Prospect", "Partner", ""))),
            Field("annual_revenue", STR, ch(s, 12, ("", "$5,000,000", "1200000"))),
            Field("industry", STR, ch(s, 13, INDUSTRIES)),
            Field("sic", STR, ch(s, 14, ("", "7372", "3571"))),
            Field("employees", STR, ch(s, 15, ("", "250", "10,000"))),
            Field("ownership", STR, ch(s, 16, ("Public", "Private", ""))),
            Field("ticker_symbol", STR, ch(s, 17, ("", "ACME", "GLBX"))),
            Field("billing_address_one", STR, ch(s, 18, ("1 Main St", "", "Rua Augusta, 10"))),
            Field("billing_address_two", STR, ch(s, 19, ("", "Floor 3"))),
            Field("billing_city", STR, ch(s, 20, CITIES)),
            Field("billing_state", STR, ch(s, 21, ("CA", "", "NY"))),
            Field("billing_zip", STR, ch(s, 22, ("94105", "", "10001"))),
            Field("billing_country", STR, ch(s, 23, COUNTRIES)),
            Field("shipping_address_one", STR, ch(s, 24, ("1 Main St", ""))),
            Field("shipping_address_two", STR, ch(s, 25, ("", "Dock 4"))),
            Field("shipping_city", STR, ch(s, 26, CITIES)),
            Field("shipping_state", STR, ch(s, 27, ("CA", ""))),
            Field("shipping_zip", STR, ch(s, 28, ("94105", ""))),
            Field("shipping_country", STR, ch(s, 29, COUNTRIES)),
            Field("assigned_to_id", INT, v5(s, 30, "user", 21, 3)),
            Field("created_at", DATETIME, created, False),
            Field("updated_at", DATETIME, updated, False),
        ]

    def _build_external_activity(self, obj: ObjectData, created: Stamp, updated: Stamp) -> None:
        del updated  # external activities are never updated
        s, v5, ch, i_, ref = obj.stream, self._v5_ref, self._choice, self._id, self._ref
        hb = self._h(s, 3)

        def activity(i: int) -> int:
            cr = created(i)
            return max(self.start, cr - (hb(i) >> 4) % MAX_BACKDATE)

        obj.fields = [
            Field("id", INT, i_(s), False),
            Field("extension", STR, ch(s, 4, EXTENSIONS), False),
            Field("extensionSalesforceId", STR, ch(s, 5, ("0Xe5e000000AbCdEAK", "0Xe5e000000FgHiJAK")), False),
            Field("type", STR, ch(s, 6, EXT_TYPES), False),
            Field("typeSalesforceId", STR, ch(s, 7, ("0Xt5e000000AbCdEAK", "0Xt5e000000LmNoPAK")), False),
            Field("prospectId", INT, ref(s, 8, "prospect"), False),
            Field("value", STR, ch(s, 9, ("", "Session A", "Score: 9/10", 'Ünïcödé, "quoted"'))),
            Field("activityDate", DATETIME, activity, False),
            Field("createdAt", DATETIME, created, False),
            Field("createdById", INT, v5(s, 10, "user", 21, 4)),
        ]
        obj.times = {
            "createdAt": (created, -SLACK, 0),
            "activityDate": (activity, -SLACK - MAX_BACKDATE, 0),
        }
        obj.procedures = {
            "filter_by_created_at": Procedure("filter_by_created_at", "createdAt", "created_after", "created_before"),
            "filter_by_activity_date": Procedure(
                "filter_by_activity_date", "activityDate", "activity_after", "activity_before"
            ),
        }
        obj.is_deleted = None

    def _pool_fields(self, obj: ObjectData) -> None:
        """Make non-varying fields draw from POOL prepared rows (see :attr:`Field.varying`)."""
        h = self._h(obj.stream, 77)
        obj.slot = lambda i: h(i) % POOL
        for f in obj.fields:
            if f.kind == DATETIME or f.name in VARYING_FIELDS:
                f.varying = True
                continue
            base = f.gen

            def pooled(i: int, base: Gen = base) -> t.Any:
                return base(h(i) % POOL)

            f.base_gen = base
            f.gen = pooled

    def _prospect_proc(self, obj: ObjectData, ref_field: str | None) -> Procedure:
        """``filter_by_prospect_updated_at``: rows linked to prospects updated in the range."""

        def prospect_updated(i: int) -> int | None:
            prospects = self.objects["prospect"]
            if ref_field is None:  # an account's latest prospect: derived from the account's row
                j = (i * 7) % max(prospects.count, 1)
            else:
                pid = obj.field(ref_field).gen(i)
                if pid is None:
                    return None
                j = pid - BASE_IDS["prospect"]
            return prospects.times["updated_at"][0](j)

        return Procedure(
            "filter_by_prospect_updated_at",
            None,
            "prospect_updated_after",
            "prospect_updated_before",
            {"prospect_deleted": "prospect_deleted"},
            derived_time=prospect_updated,
        )

    def prospect_deleted(self, obj: ObjectData, i: int) -> bool:
        """Whether the prospect linked to row ``i`` of ``obj`` is deleted."""
        prospects = self.objects["prospect"]
        if obj.stream == "prospect_account":
            j = (i * 7) % max(prospects.count, 1)
        else:
            pid = obj.field("prospect_id").gen(i)
            if pid is None:
                return False
            j = pid - BASE_IDS["prospect"]
        return bool(prospects.is_deleted and prospects.is_deleted(j))
