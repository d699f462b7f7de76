"""The sandbox's HTTP server: OAuth token endpoint, Export API versions 3 and 4, the v5 query API, controls."""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import hashlib
import itertools
import json
import logging
import random
import re
import secrets
import socket
import struct
import sys
import tempfile
import threading
import time
import typing as t
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

from pardot_export_sandbox.changes import apply_change, window_counts
from pardot_export_sandbox.data import DataConfig, Dataset
from pardot_export_sandbox.engine import (
    BOOL_STYLES,
    NEWLINES,
    ApiError,
    ExportSpec,
    file_ranges,
    matching_indexes,
    parse_date_arg,
    render_csv,
    validate_create,
)
from pardot_export_sandbox.v5data import V5Dataset, account_record
from pardot_export_sandbox.v5query import (
    DEFAULT_CHAIN_CAP,
    DEFAULT_TOKEN_TTL,
    Paging,
    account_answer,
    run_query,
)

if t.TYPE_CHECKING:
    from typing_extensions import Self

logger = logging.getLogger("pardot_export_sandbox")

DEFAULT_BUSINESS_UNIT = "0Uv5e0000000001AAA"
EXPIRY_SECONDS = 7 * 86_400
BU_PATTERN = re.compile(r"^0Uv[0-9A-Za-z]{15}$")
API_PATH = re.compile(r"^/api/export/version/(?P<v>\d+)/do/(?P<rest>.*?)/?$")
CUSTOM_FIELD_PATH = re.compile(r"^/api/customField/version/(?P<v>\d+)/do/query/?$")
DESCRIBE_PATH = re.compile(r"^/api/prospectAccount/version/(?P<v>\d+)/do/describe/?$")
V5_PATH = re.compile(r"^/api/v5/(?P<rest>.*?)/?$")
V5_OBJECT_PATH = re.compile(r"^objects/(?P<collection>[a-z-]+)$")
#: v5 error messages where the public evidence gives the text
V5_MESSAGES = {
    122: "Daily API rate limit met.",
    181: "A required header is missing: Pardot-Business-Unit-Id header not found on request.",
}
#: the custom field query's page size: its default and its maximum
CUSTOM_FIELD_PAGE = 200
PROSPECT_ONLY_SPELLINGS = ("seed", "camel")
RESPONSE_STYLES = ("wrapped", "attributes", "bare", "mixed")
FAULT_KINDS = (
    "http_500",
    "http_502",
    "http_503",
    "code_66",
    "slow",
    "cut",
    "not_json",
    "reset",
    "revoke",
    "fail_export",
    "cancel_export",
    "expire_export",
    "weird_state",
    "bad_row",
    "bad_value",
    "http_504",
    "code_202",
    "code_214",
)
OPS = ("create", "read", "query", "cancel", "download", "token", "custom_field", "describe", "query_v5", "account_v5")


@dataclass
class SandboxConfig:
    """Every knob of the sandbox (the CLI's flags map onto these)."""

    host: str = "127.0.0.1"
    port: int = 0
    business_unit_id: str = DEFAULT_BUSINESS_UNIT
    api_version: int = 4  # the version the business unit requires (3 or 4); 0 accepts both
    client_id: str = "sandbox-client-id"
    client_secret: str = "sandbox-client-secret"  # noqa: S105
    refresh_token: str = "sandbox-refresh-token"  # noqa: S105
    access_token: str | None = None  # a pre-issued token, for the access_token setting
    #: seconds each token request takes (Sandbox.release_token_requests ends the waits early); token
    #: requests that overlap are counted (stats: token_overlaps), as Salesforce may refuse concurrent
    #: refreshes of one refresh token
    token_delay: float = 0.0
    data: DataConfig = field(default_factory=DataConfig)
    rows_per_file: int = 5_000
    waiting_seconds: float = 0.0
    processing_seconds: float = 0.0
    max_concurrent: int = 5
    daily_limit: int = 100_000
    #: API calls other integrations of the business unit spent today before the sandbox started: the
    #: account object reports them in ``apiCallsUsed`` and they count against ``daily_limit`` until midnight
    api_calls_used_before: int = 0
    response_style: str = "wrapped"
    bom: bool = False
    shuffle_seed: int = 7
    #: where result links point (default: this server); another host tests the tap's refusal
    result_base_url: str | None = None
    #: serve the API on a second listener at this address (e.g. 127.0.0.2) and put result
    #: links there, as Pardot's links on www.pardot.com while the API is pi.pardot.com
    result_host: str | None = None
    #: booleans in CSVs: "words" (true/false, the seed), "digits" (1/0), "blank" (1, false empty)
    bool_style: str = "words"
    #: line ends of CSVs: "crlf" or "lf"
    line_ending: str = "crlf"
    #: per stream, fields this account does not have: a create naming one is refused
    missing_fields: dict[str, list[str]] = field(default_factory=dict)
    #: visitor activity's prospect-only argument: "seed" (prospect_only for filter_by_created_at,
    #: prospectOnly for filter_by_updated_at) or "camel" (prospectOnly for both, as older docs)
    prospect_only_spelling: str = "seed"
    #: rows stamped less than this many seconds before an export's creation are not in it yet
    visibility_lag: float = 0.0
    #: False: the custom field query answers error 46, as for a user without the ability
    custom_field_query: bool = True
    #: False: the prospect account describe answers 404 (an account or version without it)
    account_describe: bool = True
    #: the API user lacks "Admin > Exports > View": the export query, and reading or canceling another user's
    #: export, answer this error code (46 or 49) with HTTP 403; None: the user has the ability
    export_view_refusal: int | None = None
    #: keep rendered result files here and serve repeats of an export from disk (benchmarks)
    cache_dir: str | None = None
    #: v5: records one page-token chain may serve; the page reaching it has no token and a
    #: ``Pardot-Warning: 203`` header (when more records match)
    v5_chain_cap: int = DEFAULT_CHAIN_CAP
    #: v5: seconds of the sandbox clock a page token lives (error 210 after)
    v5_token_ttl: float = DEFAULT_TOKEN_TTL
    #: v5: seconds each query page takes (Pardot's pages take about a second; for benchmarks)
    v5_page_latency: float = 0.0
    #: v5: per object (stream name), fields this account refuses (error 51 naming the field)
    v5_refused_fields: dict[str, list[str]] = field(default_factory=dict)
    #: v5: whether moving a record to the recycle bin moves its updatedAt to the sandbox clock
    v5_delete_touches_updated_at: bool = False
    #: v5: the account object answers this error code (46 or 49) with HTTP 403, as to an API user
    #: without "Admin > Account Settings > View"; None: the user has the ability
    v5_account_refusal: int | None = None


@dataclass
class Fault:
    """An injected fault, applied to the next ``count`` matching requests."""

    kind: str
    count: int = 1
    op: str | None = None
    seconds: float = 0.0  # for "slow"
    after_bytes: int = 2_000  # for "cut"
    #: for "fail_export" and "cancel_export": only creates of this object (its API name); any when None
    object: str | None = None
    #: only calls about this export (its read, cancel or downloads); any call when None
    export: int | None = None


@dataclass
class Export:
    """One export job."""

    id: int
    version: int
    spec: ExportSpec
    created: float
    updated: float
    state: str = "Waiting"
    completed: float | None = None
    ranges: list[range] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    total: int = 0
    fail: bool = False
    file_ids: list[int] = field(default_factory=list)
    #: created by another user of the account (Sandbox.add_foreign_exports): it holds the queue, has no files
    foreign: bool = False
    #: how long a foreign export stays Processing (seconds; inf: until released)
    hold: float = 0.0

    @property
    def object_name(self) -> str:
        """The API name of the exported object."""
        return self.spec.obj.name


class Clock:
    """Wall-clock time plus an offset that tests can move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        """The sandbox's time: the wall clock plus the offset."""
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        """Move the sandbox's time forward by ``seconds``."""
        self.offset += seconds


def _check_styles(config: SandboxConfig) -> None:
    """Refuse a rendering style the sandbox does not know."""
    for name, value, allowed in (
        ("response_style", config.response_style, RESPONSE_STYLES),
        ("bool_style", config.bool_style, tuple(BOOL_STYLES)),
        ("line_ending", config.line_ending, tuple(NEWLINES)),
        ("prospect_only_spelling", config.prospect_only_spelling, PROSPECT_ONLY_SPELLINGS),
    ):
        if value not in allowed:
            msg = f"{name} must be one of {', '.join(allowed)}"
            raise ValueError(msg)


class SandboxState:
    """Everything the server knows: tokens, exports, counters, faults."""

    def __init__(self, config: SandboxConfig) -> None:
        _check_styles(config)
        self.config = config
        self.zone = ZoneInfo(config.data.timezone)
        self.dataset = Dataset(config.data)
        self.v5 = V5Dataset(self.dataset)
        self.v5_secret = secrets.token_bytes(16)
        #: v5 pages and records served, and chains stopped by the cap, per object
        self.v5_pages: collections.Counter[str] = collections.Counter()
        self.v5_records: collections.Counter[str] = collections.Counter()
        self.v5_capped: collections.Counter[str] = collections.Counter()
        #: records moved to the recycle bin by a test so far (part of the result cache key)
        self.deletions = 0
        #: called by the worker with each export once it is Complete (tests change the data between exports)
        self.on_complete: list[t.Callable[[Export], None]] = []
        #: exports these pick stay Waiting, and the queue behind them too, until released (Sandbox.hold)
        self.holds: list[t.Callable[[Export], bool]] = []
        if config.prospect_only_spelling == "camel":
            va = self.dataset.objects["visitor_activity"].procedures["filter_by_created_at"]
            va.extra = {"type": "types", "prospectOnly": "bool"}
        self.clock = Clock()
        self.lock = threading.RLock()
        self.work = threading.Condition(self.lock)
        self.tokens: set[str] = set()
        self.issued: list[str] = []  # every token ever issued, for tests that grep for leaks
        if config.access_token:
            self.tokens.add(config.access_token)
        self.exports: dict[int, Export] = {}
        self._ids = itertools.count(1001)
        self.inflight = 0
        self.max_inflight_seen = 0
        self.calls: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[int] = collections.Counter()
        self.daily_calls = config.api_calls_used_before
        self.daily_day = self._day()
        self.faults: list[Fault] = []
        self.token_requests: list[dict[str, str]] = []
        #: token requests being answered now; those that began while another was; the most at once
        self.tokens_in_flight = 0
        self.token_overlaps = 0
        self.max_tokens_in_flight = 0
        #: set: token requests stop waiting out token_delay (Sandbox.release_token_requests)
        self.token_release = threading.Event()
        self.requests_log: collections.deque[tuple[str, str]] = collections.deque(maxlen=2000)
        self._style_cycle = itertools.cycle(("wrapped", "attributes", "bare"))
        self._rand = random.Random(config.shuffle_seed)  # noqa: S311 - a reproducible file order, not a secret
        self.running = True
        self.base_url = ""
        self.result_url = ""  # the second listener's base URL, when result_host is set
        self.range_cache: dict[str, tuple[list[range], int]] = {}
        self._spool_dir: tempfile.TemporaryDirectory[str] | None = None
        if config.cache_dir:
            Path(config.cache_dir).mkdir(parents=True, exist_ok=True)
            self.spool = config.cache_dir
        else:
            self._spool_dir = tempfile.TemporaryDirectory(prefix="pardot-sandbox-")
            self.spool = self._spool_dir.name

    def _day(self) -> int:
        """Today's number in the account's zone (the data's): Pardot's daily count resets at its midnight."""
        now = self.clock.now() if hasattr(self, "clock") else time.time()
        return dt.datetime.fromtimestamp(now, self.zone).date().toordinal()

    def next_reset(self) -> float:
        """When the daily count resets next (epoch seconds of the sandbox clock): the account's next midnight."""
        today = dt.datetime.fromtimestamp(self.clock.now(), self.zone).date()
        midnight = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), self.zone)
        return midnight.timestamp()

    def count_daily_call(self) -> None:
        """Count one call against the daily limit (reset at the account's midnight), or refuse it with error 122."""
        with self.lock:
            day = self._day()
            if day != self.daily_day:
                self.daily_day, self.daily_calls = day, 0
            if self.daily_calls >= self.config.daily_limit:
                raise ApiError(429, 122, "You have exceeded your daily API call limit.")
            self.daily_calls += 1

    def daily(self, data: dict[str, t.Any]) -> dict[str, t.Any]:
        """The daily count: ``limit`` and ``used`` (calls spent today) set when given; its figures and next reset."""
        unknown = sorted(set(data) - {"limit", "used"})
        if unknown:
            msg = f"unknown daily setting(s) {', '.join(unknown)}; known: limit, used"
            raise ValueError(msg)
        with self.lock:
            day = self._day()
            if day != self.daily_day:
                self.daily_day, self.daily_calls = day, 0
            if "limit" in data:
                self.config.daily_limit = int(data["limit"])
            if "used" in data:
                self.daily_calls = int(data["used"])
            return {"limit": self.config.daily_limit, "used": self.daily_calls, "resets_at": self.next_reset()}

    def new_export_id(self) -> int:
        """The id of the next export created."""
        return next(self._ids)

    # -- other users' exports ----------------------------------------------------------

    def add_foreign_exports(self, count: int, seconds: float | None = None, object_name: str = "prospect") -> list[int]:
        """Queue ``count`` exports of ``object_name`` by another user of the account.

        Each holds the queue ``seconds`` once Processing (None: until released). They are
        processed oldest first with the others, appear in the export query, and end Complete
        with no files.
        """
        obj = self.dataset.by_api_name(object_name)
        if obj is None or count < 0:
            msg = f"unknown object {object_name!r} or a negative count"
            raise ValueError(msg)
        procedure = next(iter(obj.procedures.values()))
        arguments = {procedure.after: "yesterday"}
        body = {"object": object_name, "procedure": {"name": procedure.name, "arguments": arguments}}
        now = self.clock.now()
        spec = validate_create(body, self.dataset, self.zone, now)
        hold = float("inf") if seconds is None else float(seconds)
        with self.work:
            made = [
                Export(id=self.new_export_id(), version=4, spec=spec, created=now, updated=now, foreign=True,
                       hold=hold)
                for _ in range(count)
            ]  # fmt: skip
            self.exports.update((e.id, e) for e in made)
            self.work.notify_all()
        return [e.id for e in made]

    def release_foreign_exports(self, ids: t.Collection[int] | None = None) -> None:
        """End the hold of the foreign exports ``ids`` (every one when None): they complete, and the queue moves on."""
        with self.lock:
            for e in self.exports.values():
                if e.foreign and (ids is None or e.id in ids):
                    e.hold = 0.0

    def _hold(self, e: Export) -> tuple[list[range], int, list[str]]:
        """A foreign export's processing: it holds the queue for its time or until its release; no files."""
        start = time.monotonic()
        while self.running and e.state == "Processing" and time.monotonic() - start < e.hold:
            time.sleep(0.02)
        return [], 0, []

    def issue_token(self) -> str:
        """Issue a new access token and remember it."""
        token = "00Dsandbox!" + secrets.token_urlsafe(24)
        with self.lock:
            self.tokens.add(token)
            self.issued.append(token)
        return token

    def close(self) -> None:
        """Remove the spool directory of result files, unless it is the configured cache."""
        if self._spool_dir is not None:
            self._spool_dir.cleanup()

    # -- faults ------------------------------------------------------------------------

    def inject(self, kind: str, count: int = 1, op: str | None = None, **kw: t.Any) -> None:
        """Queue a fault for the next ``count`` requests of kind ``op`` (any when None)."""
        if kind not in FAULT_KINDS:
            msg = f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}"
            raise ValueError(msg)
        if op is not None and op not in OPS:
            msg = f"unknown op {op!r}; known: {', '.join(OPS)}"
            raise ValueError(msg)
        with self.lock:
            if kind == "revoke" and op is None:
                self.tokens.clear()
                return
            if kind in ("fail_export", "cancel_export"):
                self.faults.append(Fault(kind, count, "create", object=kw.get("object")))
                return
            self.faults.append(Fault(kind, count, op, **kw))

    def take_fault(
        self,
        op: str,
        kinds: tuple[str, ...],
        *,
        exact: bool = False,
        object_name: str | None = None,
        export_id: int | None = None,
    ) -> Fault | None:
        """Use up one of the queued faults of ``kinds`` for a call of ``op``; None when none applies.

        With ``exact``, only faults naming ``op`` apply (not those for any call); a fault naming an
        object applies only to a call about ``object_name``, one naming an export only to a call
        about ``export_id``.
        """
        with self.lock:
            for f in self.faults:
                if f.object is not None and f.object != object_name:
                    continue
                if f.export is not None and f.export != export_id:
                    continue
                if f.kind in kinds and ((f.op is None and not exact) or f.op == op) and f.count > 0:
                    f.count -= 1
                    if f.count == 0:
                        self.faults.remove(f)
                    return f
        return None

    def revoke_tokens(self) -> None:
        """Invalidate every access token issued so far (as a Salesforce session expiry does)."""
        with self.lock:
            self.tokens.clear()

    # -- exports -----------------------------------------------------------------------

    def local(self, ts: float) -> str:
        """``ts`` as the API user's local ``YYYY-MM-DD HH:MM:SS``."""
        return dt.datetime.fromtimestamp(ts, self.zone).strftime("%Y-%m-%d %H:%M:%S")

    def refresh_expiry(self, e: Export) -> None:
        """Cancel ``e`` if it has waited or processed longer than an export may."""
        now = self.clock.now()
        if e.state in ("Waiting", "Processing") and now - e.created > EXPIRY_SECONDS:
            e.state = "Canceled"
            e.updated = now

    def is_expired(self, e: Export) -> bool:
        """Whether ``e``'s results are past their expiry."""
        return e.completed is not None and self.clock.now() - e.completed > EXPIRY_SECONDS

    def export_repr(self, e: Export, *, with_refs: bool = True) -> dict[str, t.Any]:
        """The export as the API describes it (result links only when Complete and ``with_refs``)."""
        self.refresh_expiry(e)
        expired = self.is_expired(e)
        out: dict[str, t.Any] = {
            "id": e.id,
            "state": e.state,
            "isExpired": expired,
            "createdAt": self.local(e.created),
            "updatedAt": self.local(e.updated),
        }
        if with_refs and e.state == "Complete" and not expired and e.file_ids:
            urls = [
                f"{self.config.result_base_url or self.result_url or self.base_url}/api/export/version/{e.version}"
                f"/do/downloadResult/id/{e.id}/resultId/{k}"
                for k in e.file_ids
            ]
            out["resultRefs"] = urls[0] if len(urls) == 1 else urls
        return out

    def wrap(self, key: str, value: dict[str, t.Any]) -> dict[str, t.Any]:
        """``value`` in the answer shape of the configured ``response_style``."""
        style = self.config.response_style
        if style == "mixed":
            style = next(self._style_cycle)
        if style == "bare" and key == "export":
            return value
        out: dict[str, t.Any] = {key: value}
        if style == "attributes":
            out = {"@attributes": {"stat": "ok", "version": 1}, **out}
        return out

    def worker(self) -> None:
        """Run exports one at a time, oldest first, like Pardot's per-account queue."""
        while True:
            with self.work:
                while self.running and not self._next_waiting():
                    self.work.wait(0.5)
                if not self.running:
                    return
                e = self._next_waiting()
                if e is None:
                    continue
            self._sleep(self.config.waiting_seconds)
            with self.lock:
                if e.state != "Waiting" or self._held(e):
                    continue
                e.state = "Processing"
                e.updated = self.clock.now()
            ranges, total, paths = self._process(e)
            self._sleep(self.config.processing_seconds)
            with self.lock:
                if e.state != "Processing":
                    continue
                now = self.clock.now()
                e.updated = now
                if e.fail:
                    e.state = "Failed"
                    continue
                e.ranges = ranges
                e.total = total
                e.paths = paths
                e.file_ids = list(range(len(ranges)))
                self._rand.shuffle(e.file_ids)
                e.state = "Complete"
                e.completed = now
                hooks = list(self.on_complete)
            for hook in hooks:
                hook(e)

    def _process(self, e: Export) -> tuple[list[range], int, list[str]]:
        """Find the export's rows and write its result files, as Pardot does before Complete.

        Files go to the spool directory (the cache directory when one is set: an export with
        the same query then reuses them), so downloads stream from disk.
        """
        if e.foreign:
            return self._hold(e)
        key = self.cache_key(e)
        name = key or f"export-{e.id}-{secrets.token_hex(4)}"
        cached = self.range_cache.get(key) if key else None
        if cached is None:
            cached = file_ranges(
                matching_indexes(self.dataset, e.spec, int(e.created), lag=self.config.visibility_lag),
                max(1, self.config.rows_per_file),
            )
            if key:
                self.range_cache[key] = cached
        ranges, total = cached
        paths = []
        for k, rng in enumerate(ranges):
            path = Path(self.spool) / f"{name}-{k}.csv"
            if not (key and path.exists()):
                tmp = path.with_name(f"{path.name}.{threading.get_ident()}.part")
                with tmp.open("wb") as fh:
                    fh.writelines(
                        render_csv(
                            self.dataset,
                            e.spec,
                            int(e.created),
                            rng,
                            reverse=k % 2 == 1,
                            bom=self.config.bom,
                            bool_style=self.config.bool_style,
                            line_ending=self.config.line_ending,
                            lag=self.config.visibility_lag,
                        )
                    )
                tmp.replace(path)
            paths.append(str(path))
        return ranges, total, paths

    def cache_key(self, e: Export) -> str | None:
        """A name for an export's results when caching is on and they do not depend on its creation time."""
        if not self.config.cache_dir or e.spec.before is None or self.config.visibility_lag:
            return None
        raw = json.dumps(
            [
                e.spec.obj.name,
                e.spec.fields,
                e.spec.procedure.name,
                e.spec.after,
                e.spec.before,
                e.spec.deleted,
                e.spec.prospect_deleted,
                sorted(e.spec.types or []),
                e.spec.prospect_only,
                self.config.rows_per_file,
                self.config.bom,
                self.config.bool_style,
                self.config.line_ending,
                self.config.data.seed,
                self.deletions,
            ],
            default=str,
        )
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    def _next_waiting(self) -> Export | None:
        for e in sorted(self.exports.values(), key=lambda x: x.id):
            self.refresh_expiry(e)
            if e.state == "Waiting":
                return None if self._held(e) else e  # one queue: a held export holds up those behind it
        return None

    def _held(self, e: Export) -> bool:
        return any(hold(e) for hold in self.holds)

    def _sleep(self, seconds: float) -> None:
        """Up to ``seconds``, in steps that notice a stop.

        The time left is read once per step: read twice, the clock can pass the end between the
        two on a busy machine, and a negative sleep raises (the worker thread died of it).
        """
        end = time.monotonic() + seconds
        while self.running:
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.05, left))

    # -- v5 changes --------------------------------------------------------------------

    def v5_change(self, data: dict[str, t.Any]) -> dict[str, t.Any]:
        """One change of ``POST /_sandbox/v5/changes``: add, update or delete v5 records.

        ``{"op": "add", "object": "campaign", "count": 2, "values": {...}}``,
        ``{"op": "update", "object": ..., "ids": [...], "values": {...}}``,
        ``{"op": "delete", "object": ..., "ids": [...], "purge": false}``; each may carry ``at``
        (ISO 8601 with an offset; default: the sandbox clock). Answers the records as the API
        serves them (every field), or the ids deleted.
        """
        op, name = data.get("op"), str(data.get("object"))
        at = data.get("at") or self.clock.now()
        obj = self.v5.obj(name)
        if op == "add":
            recs = self.v5.add(name, int(data.get("count", 1)), data.get("values"), at)
        elif op == "update":
            recs = self.v5.update(name, list(data["ids"]), data.get("values"), at)
        elif op == "delete":
            ids = self.v5.delete(
                name,
                list(data["ids"]),
                purge=bool(data.get("purge")),
                at=at,
                touch=self.config.v5_delete_touches_updated_at,
            )
            return {"ids": ids}
        else:
            msg = f"op must be add, update or delete, not {op!r}"
            raise ValueError(msg)
        return {"records": [self.v5.render(obj, r, list(obj.fields)) for r in recs]}

    def v5_settings(self, data: dict[str, t.Any]) -> dict[str, t.Any]:
        """Change v5 knobs while running: ``chain_cap``, ``token_ttl``, ``page_latency``."""
        known = {"chain_cap": int, "token_ttl": float, "page_latency": float}
        unknown = sorted(set(data) - set(known))
        if unknown:
            msg = f"unknown v5 setting(s) {', '.join(unknown)}; known: {', '.join(known)}"
            raise ValueError(msg)
        for k, kind in known.items():
            if k in data:
                setattr(self.config, f"v5_{k}", kind(data[k]))
        cfg = self.config
        return {"chain_cap": cfg.v5_chain_cap, "token_ttl": cfg.v5_token_ttl, "page_latency": cfg.v5_page_latency}

    # -- views for tests ---------------------------------------------------------------

    def stats(self) -> dict[str, t.Any]:
        """Counters for tests: calls by kind, errors by code, peak concurrency, exports."""
        with self.lock:
            api = sum(v for k, v in self.calls.items() if k != "token")
            return {
                "calls": dict(self.calls),
                "api_calls": api,
                "errors": {str(k): v for k, v in self.errors.items()},
                "max_inflight": self.max_inflight_seen,
                "token_overlaps": self.token_overlaps,
                "max_tokens_in_flight": self.max_tokens_in_flight,
                "exports": {
                    e.id: {"state": e.state, "object": e.object_name, "rows": e.total, "files": len(e.ranges)}
                    for e in self.exports.values()
                },
                "v5": {
                    "pages": dict(self.v5_pages),
                    "records": dict(self.v5_records),
                    "capped": dict(self.v5_capped),
                },
            }


class Handler(BaseHTTPRequestHandler):
    """One request: the token endpoint, the Export API, the v5 query API, or the sandbox's own controls."""

    protocol_version = "HTTP/1.1"
    # headers and body go out in separate writes: with Nagle's algorithm the body waits for the
    # client's delayed ACK (40 ms on Linux) on every keep-alive request
    disable_nagle_algorithm = True
    server: SandboxHTTPServer

    def log_message(self, format: str, *args: t.Any) -> None:  # noqa: A002 - the name the base class gives it
        """Log requests at debug level instead of on stderr."""
        logger.debug("%s %s", self.address_string(), format % args)

    @property
    def st(self) -> SandboxState:
        """The sandbox state this request works on."""
        return self.server.state

    # -- plumbing ----------------------------------------------------------------------

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(
        self, status: int, payload: t.Any, *, json_format: bool = True, headers: dict[str, str] | None = None
    ) -> None:
        if json_format:
            body = json.dumps(payload).encode()
            ctype = "application/json"
        else:
            body = _to_xml(payload).encode()
            ctype = "text/xml"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, err: ApiError, *, json_format: bool = True, headers: dict[str, str] | None = None) -> None:
        with self.st.lock:
            self.st.errors[err.code] += 1
        payload = {"@attributes": {"stat": "fail", "version": 1, "err_code": err.code}, "err": err.message}
        self._send(err.status, payload, json_format=json_format, headers=headers)

    def do_GET(self) -> None:
        """Answer a GET."""
        self._dispatch("GET")

    def do_POST(self) -> None:
        """Answer a POST."""
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        body = self._body() if method == "POST" else b""
        self.st.requests_log.append((method, url.path))
        try:
            if url.path == "/services/oauth2/token" and method == "POST":
                self._token(body)
            elif url.path.startswith("/_sandbox/"):
                self._control(method, url.path, body, query)
            else:
                self._api(method, url.path, query, body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    # -- OAuth -------------------------------------------------------------------------

    def _token(self, body: bytes) -> None:
        st = self.st
        with st.lock:
            st.tokens_in_flight += 1
            st.token_overlaps += st.tokens_in_flight > 1
            st.max_tokens_in_flight = max(st.max_tokens_in_flight, st.tokens_in_flight)
        try:
            if st.config.token_delay > 0:
                st.token_release.wait(st.config.token_delay)
            self._answer_token(body)
        finally:
            with st.lock:
                st.tokens_in_flight -= 1

    def _answer_token(self, body: bytes) -> None:
        st = self.st
        form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace")))
        with st.lock:
            st.calls["token"] += 1
            st.token_requests.append({"grant_type": form.get("grant_type", "")})
        fault = st.take_fault("token", ("http_500", "http_502", "http_503", "slow"))
        if fault is not None:
            if fault.kind == "slow":
                time.sleep(fault.seconds)
            else:
                self._send(int(fault.kind[-3:]), {"error": "server_error"})
                return
        if form.get("grant_type") not in ("refresh_token", "client_credentials"):
            self._send(400, {"error": "unsupported_grant_type", "error_description": "grant type not supported"})
            return
        if not self._credentials_ok(form):
            self._send(400, {"error": "invalid_grant", "error_description": "authentication failure"})
            return
        token = st.issue_token()
        self._send(
            200,
            {
                "access_token": token,
                "instance_url": st.base_url,
                "id": f"{st.base_url}/id/00Dsandbox/005sandbox",
                "token_type": "Bearer",
                "issued_at": str(int(time.time() * 1000)),
                "signature": secrets.token_urlsafe(16),
                "scope": "pardot_api",
            },
        )

    def _credentials_ok(self, form: dict[str, str]) -> bool:
        cfg = self.st.config
        client_ok = form.get("client_id") == cfg.client_id and form.get("client_secret") == cfg.client_secret
        if form.get("grant_type") == "refresh_token":
            return client_ok and form.get("refresh_token") == cfg.refresh_token
        return client_ok

    # -- controls ----------------------------------------------------------------------

    def _control(self, method: str, path: str, body: bytes, query: dict[str, str] | None = None) -> None:
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            self._send(400, {"error": "body must be JSON"})
            return
        route = _CONTROLS.get((path, method)) or _CONTROLS.get((path, "*"))
        if route is None:
            self._send(404, {"error": f"unknown control {path}"})
            return
        try:
            self._send(200, route(self.st, data, query or {}))
        except (TypeError, ValueError, KeyError, ApiError) as exc:
            self._send(400, {"error": str(exc)})

    # -- the Export API ----------------------------------------------------------------

    def _api(self, method: str, path: str, query: dict[str, str], body: bytes) -> None:
        st = self.st
        m = API_PATH.match(path)
        op = _op_of(m.group("rest")) if m else None
        cf = CUSTOM_FIELD_PATH.match(path) if m is None else None
        if cf is not None:
            op = "custom_field"
        describe = DESCRIBE_PATH.match(path) if m is None else None
        if describe is not None:
            op = "describe"
        v5 = V5_PATH.match(path) if m is None else None
        if v5 is not None:
            op = "account_v5" if v5.group("rest") == "objects/account" else "query_v5"
        with st.lock:
            st.inflight += 1
            st.max_inflight_seen = max(st.max_inflight_seen, st.inflight)
            too_many = st.inflight > st.config.max_concurrent
            if op:
                st.calls[op] += 1
        try:
            self._admit(op, too_many=too_many)
            if v5 is not None:
                self._v5(method, v5.group("rest"), t.cast("str", op), query)
            elif cf is not None:
                self._custom_fields(int(cf.group("v")), method, query)
            elif describe is not None:
                self._describe(int(describe.group("v")), method, json_format=query.get("format") == "json")
            else:
                self._operation(method, path, m, op, query, body)
        except ApiError as err:
            headers = {"Retry-After": "1"} if err.code == 66 else None
            if v5 is not None:
                self._v5_error(err, headers)
            else:
                self._error(err, json_format=query.get("format") == "json", headers=headers)
        finally:
            with st.lock:
                st.inflight -= 1

    def _admit(self, op: str | None, *, too_many: bool) -> None:
        """Refuse a call over the concurrency cap, without valid credentials, or past the daily limit."""
        st = self.st
        if too_many:
            raise ApiError(
                400, 66, "You have exceeded your concurrent request limit. Please wait, before trying again."
            )
        if op is not None and st.take_fault(op, ("revoke",)) is not None:
            st.revoke_tokens()
        self._check_auth()
        st.count_daily_call()

    def _operation(
        self, method: str, path: str, m: re.Match[str] | None, op: str | None, query: dict[str, str], body: bytes
    ) -> None:
        """One Export API operation: create, read, query, cancel or download."""
        if m is None or op is None:
            raise ApiError(404, 2, f"Invalid action: {path}")
        json_format = query.get("format") == "json"
        about = re.search(r"/id/(\d+)", m.group("rest"))
        fault = self.st.take_fault(op, _fault_kinds(op), export_id=int(about.group(1)) if about else None)
        if fault is not None and self._apply_fault(fault):
            return
        version = int(m.group("v"))
        self._check_version(version)
        rest = m.group("rest")
        routes: dict[tuple[str, str], t.Callable[[], None]] = {
            ("create", "POST"): lambda: self._create(version, body, json_format=json_format),
            ("read", "GET"): lambda: self._read(rest, fault, json_format=json_format),
            ("query", "GET"): lambda: self._query(query, json_format=json_format),
            ("cancel", "POST"): lambda: self._cancel(rest, json_format=json_format),
            ("download", "GET"): lambda: self._download(rest, fault),
        }
        route = routes.get((op, method))
        if route is None:
            raise ApiError(405, 2, f"Invalid action: {method} {path}")
        route()

    def _check_auth(self) -> None:
        st = self.st
        auth = self.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else None
        with st.lock:
            valid = token is not None and token in st.tokens
        if not valid:
            raise ApiError(401, 184, "access_token is invalid, unverified, or expired")
        bu = self.headers.get("Pardot-Business-Unit-Id")
        if not bu:
            raise ApiError(400, 181, "The Pardot-Business-Unit-Id header is missing")
        if not BU_PATTERN.match(bu):
            raise ApiError(400, 182, "The Pardot-Business-Unit-Id header is malformed: 18 characters starting 0Uv")
        if bu != st.config.business_unit_id:
            raise ApiError(
                400,
                201,
                "Invalid Business Unit ID: unknown to this host (a sandbox business unit lives on pi.demo.pardot.com)",
            )

    def _apply_fault(self, fault: Fault) -> bool:
        """Apply ``fault``; True when it answered the request itself."""
        if fault.kind == "slow":
            time.sleep(fault.seconds)
            return False
        if fault.kind in ("cut", "expire_export", "bad_row", "bad_value", "weird_state"):
            return False  # applied by the operation itself
        if fault.kind == "code_66":
            raise ApiError(
                400, 66, "You have exceeded your concurrent request limit. Please wait, before trying again."
            )
        if fault.kind == "code_202":
            raise ApiError(429, 202, "Minute rate limit met. Please wait before trying again.")
        if fault.kind == "code_214":
            raise ApiError(400, 214, "API request timed out. Please narrow the request and try again.")
        if fault.kind == "reset":  # the connection drops before any answer
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
            return True
        if fault.kind == "not_json":
            body = b"<html><body>Service Unavailable: maintenance</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return True
        status = int(fault.kind[-3:])
        body = f"<html><body>{status} upstream error</body></html>".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return True

    # -- the v5 query API ---------------------------------------------------------------

    def _v5(self, method: str, rest: str, op: str, query: dict[str, str]) -> None:
        """A v5 call: ``GET /api/v5/objects/{collection}`` or the account singleton.

        Faults apply to it only when injected with ``op="query_v5"`` or ``op="account_v5"``.
        """
        st = self.st
        fault = st.take_fault(op, _fault_kinds(op), exact=True)
        if fault is not None and self._apply_fault(fault):
            return
        m = V5_OBJECT_PATH.match(rest)
        if m is None or (m.group("collection") != "account" and m.group("collection") not in st.v5.by_collection):
            raise ApiError(404, 2, f"Invalid action: /api/v5/{rest} is not an object this API serves")
        if method != "GET":
            raise ApiError(405, 2, f"Invalid action: {method} /api/v5/{rest} (the sandbox serves queries only)")
        if m.group("collection") == "account":
            if st.config.v5_account_refusal is not None:
                code = st.config.v5_account_refusal
                msg = "Access denied: the API user lacks the Admin > Account Settings > View ability"
                raise ApiError(403, code, msg)
            with st.lock:
                used = st.daily_calls
            answer = account_answer(st.v5, account_record(st.v5, st.config.daily_limit, used), query)
            self._send(200, answer)
            return
        obj = st.v5.by_collection[m.group("collection")]
        cfg = st.config
        paging = Paging(st.base_url, st.v5_secret, st.clock.now(), cfg.v5_chain_cap, cfg.v5_token_ttl)
        result = run_query(st.v5, obj, query, cfg.v5_refused_fields.get(obj.name, ()), paging)
        if cfg.v5_page_latency > 0:
            time.sleep(cfg.v5_page_latency)
        with st.lock:
            st.v5_pages[obj.name] += 1
            st.v5_records[obj.name] += result.count
            if result.capped:
                st.v5_capped[obj.name] += 1
        self._send(200, result.answer, headers=result.headers)

    def _v5_error(self, err: ApiError, headers: dict[str, str] | None) -> None:
        """An error in the v5 shape: ``{"code": n, "message": "..."}``."""
        with self.st.lock:
            self.st.errors[err.code] += 1
        payload = {"code": err.code, "message": V5_MESSAGES.get(err.code, err.message)}
        self._send(err.status, payload, headers=headers)

    def _check_version(self, version: int) -> None:
        if version not in (3, 4):
            raise ApiError(400, 22, f"Unsupported API version {version}: use 3 or 4")
        required = self.st.config.api_version
        if required == 4 and version == 3:
            raise ApiError(400, 88, "This business unit must use version 4 of the API")
        if required == 3 and version == 4:
            raise ApiError(400, 89, "This business unit cannot use version 4 of the API; use version 3")

    def _custom_fields(self, version: int, method: str, query: dict[str, str]) -> None:
        """The custom field query: ``{"result": {"total_results": n, "customField": ...}}``, paged.

        Faults apply to it only when injected with ``op="custom_field"``.
        """
        st = self.st
        if self._faulted_or_checked("custom_field", version, method, reset=False):
            return
        if not st.config.custom_field_query:
            raise ApiError(403, 46, "Access denied: the API user lacks the Admin > Custom Fields > View ability")
        try:
            offset = int(query.get("offset") or 0)
            limit = int(query.get("limit") or CUSTOM_FIELD_PAGE)
        except ValueError as exc:
            raise ApiError(400, 5, "offset and limit must be integers") from exc
        if offset < 0 or not 0 < limit <= CUSTOM_FIELD_PAGE:
            raise ApiError(400, 5, f"Invalid offset or limit: limit is 1 to {CUSTOM_FIELD_PAGE}, offset 0 or more")
        defs = st.dataset.custom_field_defs()
        page = defs[offset : offset + limit]
        result: dict[str, t.Any] = {"total_results": len(defs)}
        if len(page) == 1:
            result["customField"] = page[0]
        elif page:
            result["customField"] = page
        self._send(200, {"result": result}, json_format=query.get("format") == "json")

    def _faulted_or_checked(self, op: str, version: int, method: str, *, reset: bool) -> bool:
        """For a GET-only account call: True when an injected fault answered it; else check it.

        Faults apply only when injected for ``op`` itself.

        Raises:
            ApiError: For the wrong API version (error 88 or 89) or a method other than GET.
        """
        kinds = ("http_500", "http_502", "http_503", "code_66", "slow", "not_json", *(("reset",) if reset else ()))
        fault = self.st.take_fault(op, kinds, exact=True)
        if fault is not None and self._apply_fault(fault):
            return True
        self._check_version(version)
        if method != "GET":
            raise ApiError(405, 2, f"Invalid action: {method} {op}")
        return False

    def _describe(self, version: int, method: str, *, json_format: bool) -> None:
        """The prospect account describe: ``{"@attributes": ..., "result": {"field": [...]}}``.

        Faults apply to it only when injected with ``op="describe"``.

        Args:
            version: The API version in the path (3 or 4; the other answers error 88 or 89).
            method: The HTTP method (only GET is accepted).
            json_format: Whether the request asked for ``format=json``.

        Raises:
            ApiError: For the wrong version or method, or when ``account_describe`` is off.
        """
        st = self.st
        if self._faulted_or_checked("describe", version, method, reset=True):
            return
        if not st.config.account_describe:
            raise ApiError(404, 2, "Invalid action: describe")
        fields = st.dataset.account_field_defs()
        answer = {
            "@attributes": {"stat": "ok", "version": 1},
            "result": {"field": fields[0] if len(fields) == 1 else fields},
        }
        self._send(200, answer, json_format=json_format)

    def _answer_export(self, e: Export, *, json_format: bool, weird: bool = False) -> None:
        st = self.st
        with st.lock:
            rep = st.export_repr(e)
            if weird:
                rep["state"] = "Exploded"
            payload = st.wrap("export", rep)
        self._send(200, payload, json_format=json_format)

    def _create(self, version: int, body: bytes, *, json_format: bool) -> None:
        st = self.st
        try:
            data = json.loads(body or b"null")
        except ValueError as exc:
            raise ApiError(400, 5, "The request body must be JSON (Content-Type: application/json)") from exc
        now = st.clock.now()
        spec = validate_create(data, st.dataset, st.zone, now, st.config.missing_fields)
        fail = st.take_fault("create", ("fail_export",), object_name=spec.obj.name) is not None
        cancel = st.take_fault("create", ("cancel_export",), object_name=spec.obj.name) is not None
        with st.work:
            e = Export(id=st.new_export_id(), version=version, spec=spec, created=now, updated=now, fail=fail)
            if cancel:
                e.state = "Canceled"
            st.exports[e.id] = e
            st.work.notify_all()
        self._answer_export(e, json_format=json_format)

    def _export_of(self, rest: str) -> Export:
        m = re.match(r"^(?:read|cancel)/id/(\d+)$", rest)
        if not m:
            raise ApiError(400, 16, "Invalid ID")
        e = self.st.exports.get(int(m.group(1)))
        if e is None:
            raise ApiError(404, 16, f"Invalid ID: no export {m.group(1)}")
        if e.foreign and self.st.config.export_view_refusal is not None:
            self._refuse_export_view(f"export {e.id} was created by another user")
        return e

    def _refuse_export_view(self, what: str) -> t.NoReturn:
        """The answer to a user without "Admin > Exports > View" (SandboxConfig.export_view_refusal)."""
        code = self.st.config.export_view_refusal or 49
        raise ApiError(403, code, f"Access denied: {what}, and the API user lacks the Admin > Exports > View ability")

    def _read(self, rest: str, fault: Fault | None, *, json_format: bool) -> None:
        weird = fault is not None and fault.kind == "weird_state"
        self._answer_export(self._export_of(rest), json_format=json_format, weird=weird)

    def _cancel(self, rest: str, *, json_format: bool) -> None:
        st = self.st
        e = self._export_of(rest)
        with st.lock:
            st.refresh_expiry(e)
            if e.state in ("Complete", "Failed", "Canceled"):
                raise ApiError(400, 178, f"Export {e.id} is {e.state} and cannot be canceled")
            e.state = "Canceled"
            e.updated = st.clock.now()
        self._answer_export(e, json_format=json_format)

    def _query(self, query: dict[str, str], *, json_format: bool) -> None:
        st = self.st
        if st.config.export_view_refusal is not None:
            self._refuse_export_view("the export query lists every user's exports")
        items = self._exports_matching(query)
        sort_by = query.get("sort_by", "id")
        keys: dict[str, t.Callable[[Export], float]] = {
            "id": lambda e: e.id,
            "created_at": lambda e: e.created,
            "updated_at": lambda e: e.updated,
        }
        if sort_by not in keys:
            raise ApiError(400, 19, "Invalid value specified for sort_by: id, created_at or updated_at")
        order = query.get("sort_order", "descending")
        if order not in ("ascending", "descending"):
            raise ApiError(400, 20, "Invalid value specified for sort_order: ascending or descending")
        items.sort(key=keys[sort_by], reverse=order == "descending")
        with st.lock:
            reprs = [st.export_repr(e, with_refs=False) for e in items]
        result: dict[str, t.Any] = {"total_results": len(reprs)}
        if len(reprs) == 1:
            result["export"] = reprs[0]
        elif reprs:
            result["export"] = reprs
        self._send(200, {"result": result}, json_format=json_format)

    def _exports_matching(self, query: dict[str, str]) -> list[Export]:
        """The exports the query's time, status and object filters select."""
        st = self.st
        now = st.clock.now()
        with st.lock:
            items = list(st.exports.values())
            for e in items:
                st.refresh_expiry(e)
        for key, attr, cmp in (
            ("created_after", "created", 1),
            ("created_before", "created", -1),
            ("updated_after", "updated", 1),
            ("updated_before", "updated", -1),
        ):
            if query.get(key):
                bound = parse_date_arg(key, query[key], st.zone, now)
                items = [e for e in items if (getattr(e, attr) - bound) * cmp > 0]
        if query.get("status"):
            if query["status"] not in ("Complete", "Failed", "Processing", "Waiting"):
                raise ApiError(400, 5, f"Invalid status {query['status']!r}: Complete, Failed, Processing or Waiting")
            items = [e for e in items if e.state == query["status"]]
        if query.get("object"):
            items = [e for e in items if e.object_name == query["object"]]
        return items

    @staticmethod
    def _result_chunks(fh: t.BinaryIO) -> t.Iterator[bytes]:
        """A result file, streamed from the file written while the export was processed; closed at its end."""
        with fh:
            while chunk := fh.read(1 << 16):
                yield chunk

    def _download(self, rest: str, fault: Fault | None) -> None:
        e, k = self._downloadable(rest, fault)
        try:  # opened before the answer starts: a file gone (its export canceled meanwhile) is an error answer
            fh = Path(e.paths[k]).open("rb")  # noqa: SIM115 - closed by _result_chunks
        except FileNotFoundError as exc:
            raise ApiError(404, 16, f"Invalid ID: the results of export {e.id} are gone") from exc
        cut_after = fault.after_bytes if fault is not None and fault.kind == "cut" else None
        self.send_response(200)
        self.send_header("Content-Type", "text/csv; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = 0
        chunks = self._result_chunks(fh)
        if fault is not None and fault.kind in ("bad_row", "bad_value"):
            chunks = _spoil(chunks, fault.kind, len(e.spec.fields))
        for chunk in chunks:
            if cut_after is not None and sent + len(chunk) > cut_after:
                part = chunk[: max(0, cut_after - sent)]
                self.wfile.write(b"%x\r\n" % len(chunk) + part)
                self._hang_up()
                return
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        if cut_after is not None:  # a body shorter than the cut point: drop its last chunk marker
            self._hang_up()
            return
        self.wfile.write(b"0\r\n\r\n")

    def _downloadable(self, rest: str, fault: Fault | None) -> tuple[Export, int]:
        """The export and result number a download asks for, or the error Pardot gives."""
        st = self.st
        m = re.match(r"^downloadResult/id/(\d+)/resultId/(\d+)$", rest)
        if not m:
            raise ApiError(400, 16, "Invalid ID")
        e = st.exports.get(int(m.group(1)))
        k = int(m.group(2))
        if e is None:
            raise ApiError(404, 16, f"Invalid ID: no export {m.group(1)}")
        with st.lock:
            if fault is not None and fault.kind == "expire_export" and e.completed is not None:
                e.completed -= EXPIRY_SECONDS + 60
            if st.is_expired(e):
                raise ApiError(400, 178, f"Export {e.id} has expired; its results can no longer be downloaded")
            if e.state != "Complete":
                raise ApiError(400, 178, f"Export {e.id} is {e.state}; results are available once Complete")
            if k >= len(e.ranges):
                raise ApiError(404, 16, f"Invalid result id {k} for export {e.id}")
        return e, k

    def _hang_up(self) -> None:
        """End the response here: the client sees a body cut short."""
        self.wfile.flush()
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


def _spoil(chunks: t.Iterator[bytes], kind: str, width: int) -> t.Iterator[bytes]:
    """A result file with one malformed row after the header."""
    first = next(chunks)
    cut = first.index(b"\n") + 1  # after the header line
    yield first[:cut]
    if kind == "bad_row":
        yield b"1,2\r\n"
    else:
        yield (",".join(["not-a-number"] * width) + "\r\n").encode()
    yield first[cut:]
    yield from chunks


#: fault kinds added with the v5 API (they reach the other calls too)
V5_FAULTS = ("http_504", "code_202", "code_214")


def _fault_kinds(op: str) -> tuple[str, ...]:
    """The faults a call of ``op`` can receive."""
    kinds: tuple[str, ...] = ("http_500", "http_502", "http_503", "code_66", "slow", "not_json", "reset", *V5_FAULTS)
    if op == "download":
        return (*kinds, "cut", "expire_export", "bad_row", "bad_value")
    if op == "read":
        return (*kinds, "weird_state")
    return kinds


def _op_of(rest: str) -> str | None:
    head = rest.split("/", 1)[0]
    return {"create": "create", "read": "read", "query": "query", "cancel": "cancel", "downloadResult": "download"}.get(
        head
    )


def _to_xml(payload: t.Any) -> str:
    """A rough XML rendering, as the API answers without ``format=json``."""
    if isinstance(payload, dict) and "err" in payload:
        code = payload.get("@attributes", {}).get("err_code", "")
        text = str(payload["err"]).replace("&", "&amp;").replace("<", "&lt;")
        head = '<?xml version="1.0" encoding="UTF-8"?>\n<rsp stat="fail" version="1.0">'
        return f'{head}<err code="{code}">{text}</err></rsp>'

    def node(name: str, value: t.Any) -> str:
        if isinstance(value, dict):
            return f"<{name}>" + "".join(node(k.strip("@"), v) for k, v in value.items()) + f"</{name}>"
        if isinstance(value, list):
            return "".join(node(name, v) for v in value)
        return f"<{name}>{value}</{name}>"

    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rsp stat="ok" version="1.0">'
        + "".join(node(k, v) for k, v in (payload.items() if isinstance(payload, dict) else []))
        + "</rsp>"
    )


class SandboxHTTPServer(ThreadingHTTPServer):
    """The threaded HTTP server, holding the sandbox's state for its handlers."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, state: SandboxState, address: tuple[str, int] | None = None) -> None:
        self.state = state
        super().__init__(address or (state.config.host, state.config.port), Handler)

    def serve_forever(self, poll_interval: float = 0.05) -> None:
        """Serve until :meth:`shutdown`, which waits for the loop to notice: a short poll stops fast.

        Args:
            poll_interval: seconds between two looks at the shutdown flag.
        """
        super().serve_forever(poll_interval)

    def handle_error(self, request: t.Any, client_address: t.Any) -> None:
        """A client that hung up (the tap refusing an answer, a test killing it) is no error of the sandbox.

        Any other error in a handler is still printed.
        """
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class Sandbox:
    """The local Export API sandbox: ``with Sandbox(config) as sb: sb.base_url``."""

    def __init__(self, config: SandboxConfig | None = None, **overrides: t.Any) -> None:
        config = config or SandboxConfig()
        for k, v in overrides.items():
            setattr(config, k, v)
        self.config = config
        self.state = SandboxState(config)
        self.httpd: SandboxHTTPServer | None = None
        self.result_httpd: SandboxHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the API (empty until started)."""
        return self.state.base_url

    @property
    def dataset(self) -> Dataset:
        """The generated data the exports draw from."""
        return self.state.dataset

    def delete_records(self, stream: str, ids: t.Iterable[int]) -> None:
        """Move ``stream``'s records with these ids to the recycle bin now (as deleting in Pardot does).

        Their updated_at does not move, so only an export with ``deleted`` (or
        ``prospect_deleted``) set finds them afterwards.
        """
        self.state.dataset.objects[stream].delete(ids)
        self.state.deletions += 1

    @property
    def v5(self) -> V5Dataset:
        """The v5 query API's objects (records, bursts, the oracle :meth:`V5Dataset.expected`)."""
        return self.state.v5

    def v5_add(
        self, name: str, count: int = 1, values: dict[str, t.Any] | None = None, *, at: t.Any = None
    ) -> list[dict[str, t.Any]]:
        """Add ``count`` records to the v5 object ``name``, created at ``at`` (default: the sandbox clock).

        Returns them typed as :meth:`V5Dataset.expected` does (datetimes in UTC).
        """
        st = self.state
        recs = st.v5.add(name, count, values, st.clock.now() if at is None else at)
        return [st.v5.typed(st.v5.obj(name), r) for r in recs]

    def v5_update(
        self, name: str, ids: t.Iterable[int], values: dict[str, t.Any] | None = None, *, at: t.Any = None
    ) -> list[dict[str, t.Any]]:
        """Set ``values`` on records of ``name`` and move their updatedAt (where they have one) to ``at``."""
        st = self.state
        recs = st.v5.update(name, ids, values, st.clock.now() if at is None else at)
        return [st.v5.typed(st.v5.obj(name), r) for r in recs]

    def v5_delete(self, name: str, ids: t.Iterable[int], *, purge: bool = False, at: t.Any = None) -> list[int]:
        """Move records of ``name`` to the recycle bin (``isDeleted: true``), or delete them for good.

        Objects without a recycle bin (and ``purge=True``) lose the records. updatedAt moves to
        ``at`` only when ``v5_delete_touches_updated_at`` is set.
        """
        st = self.state
        return st.v5.delete(
            name,
            ids,
            purge=purge,
            at=st.clock.now() if at is None else at,
            touch=self.config.v5_delete_touches_updated_at,
        )

    def v5_expected(self, name: str, **kw: t.Any) -> dict[int, dict[str, t.Any]]:
        """What a correct client emits for the v5 object ``name`` (see :meth:`V5Dataset.expected`)."""
        return self.state.v5.expected(name, **kw)

    def after_export(self, hook: t.Callable[[Export], None]) -> None:
        """Call ``hook(export)`` each time an export is Complete, before the next one is processed.

        Tests use it to change the data between two exports of one run (e.g. delete records).
        """
        self.state.on_complete.append(hook)

    def hold(self, when: t.Callable[[Export], bool] | None = None) -> None:
        """Keep the exports ``when`` picks (every export when None) Waiting until :meth:`release`.

        The queue stops at a held export, as Pardot's does behind a long export: those created
        after it wait too. A held export can still be canceled (and then no longer holds up the
        queue), and expires as any other. Tests use it to keep an export Waiting, and so
        cancelable, for as long as they need, however slow the machine is.
        """
        with self.state.work:
            self.state.holds.append(when or (lambda _e: True))

    def release(self) -> None:
        """Let the held exports be processed, oldest first."""
        with self.state.work:
            self.state.holds.clear()
            self.state.work.notify_all()

    @property
    def clock(self) -> Clock:
        """The sandbox's clock (tests move it forward)."""
        return self.state.clock

    def start(self) -> Self:
        """Start listening and the export worker; returns the sandbox."""
        self.httpd = SandboxHTTPServer(self.state)
        host, port = str(self.httpd.server_address[0]), int(self.httpd.server_address[1])
        self.state.base_url = f"http://{host}:{port}"
        targets = [self.httpd.serve_forever, self.state.worker]
        if self.config.result_host:
            self.result_httpd = SandboxHTTPServer(self.state, (self.config.result_host, 0))
            rhost, rport = str(self.result_httpd.server_address[0]), int(self.result_httpd.server_address[1])
            self.state.result_url = f"http://{rhost}:{rport}"
            targets.append(self.result_httpd.serve_forever)
        for target in targets:
            th = threading.Thread(target=target, daemon=True, name=f"sandbox-{target.__name__}")
            th.start()
            self._threads.append(th)
        return self

    def stop(self) -> None:
        """Stop the listeners and the worker, and remove the spooled result files."""
        self.state.running = False
        with self.state.work:
            self.state.work.notify_all()
        for httpd in (self.httpd, self.result_httpd):
            if httpd is not None:
                httpd.shutdown()
                httpd.server_close()
        for th in self._threads:
            th.join(timeout=5)
        self.state.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # conveniences for tests
    def inject(self, kind: str, count: int = 1, op: str | None = None, **kw: t.Any) -> None:
        """Queue a fault (see :meth:`SandboxState.inject`)."""
        self.state.inject(kind, count, op, **kw)

    def revoke_tokens(self) -> None:
        """Invalidate every access token issued so far."""
        self.state.revoke_tokens()

    def token_requests_in_flight(self) -> int:
        """Token requests being answered now (waiting out ``token_delay``, say)."""
        with self.state.lock:
            return self.state.tokens_in_flight

    def release_token_requests(self) -> None:
        """End the ``token_delay`` waits, now and for later token requests."""
        self.state.token_release.set()

    def stats(self) -> dict[str, t.Any]:
        """Counters for tests (see :meth:`SandboxState.stats`)."""
        return self.state.stats()

    def add_foreign_exports(self, count: int, seconds: float | None = None, object_name: str = "prospect") -> list[int]:
        """Queue exports by another user ahead of the next ones (see :meth:`SandboxState.add_foreign_exports`)."""
        return self.state.add_foreign_exports(count, seconds, object_name)

    def release_foreign_exports(self, ids: t.Collection[int] | None = None) -> None:
        """End the hold of the foreign exports ``ids`` (all when None): they complete and the queue moves on."""
        self.state.release_foreign_exports(ids)

    def issue_token(self) -> str:
        """Issue an access token directly (as if a connected app had fetched one)."""
        return self.state.issue_token()

    def tap_config(self, **extra: t.Any) -> dict[str, t.Any]:
        """A tap config pointing at this sandbox with its OAuth credentials."""
        cfg = {
            "api_url": self.base_url,
            "login_url": self.base_url,
            "business_unit_id": self.config.business_unit_id,
            "client_id": self.config.client_id,
            "client_secret": self.config.client_secret,
            "refresh_token": self.config.refresh_token,
            "api_version": self.config.api_version or 4,
            "timezone": self.config.data.timezone,
            "start_date": self.config.data.start.isoformat(),
            "end_date": self.config.data.end.isoformat(),
            "poll_interval": 0.05,
            "max_poll_interval": 0.2,
        }
        cfg.update(extra)
        return cfg


def _foreign(st: SandboxState, data: dict[str, t.Any], _query: dict[str, str]) -> dict[str, t.Any]:
    count, seconds, name = int(data.get("count", 1)), data.get("seconds"), data.get("object", "prospect")
    return {"ids": st.add_foreign_exports(count, seconds, name)}


def _faults(st: SandboxState, data: dict[str, t.Any], _query: dict[str, str]) -> dict[str, t.Any]:
    st.inject(**data)
    return {"ok": True}


def _revoke(st: SandboxState, _data: dict[str, t.Any], _query: dict[str, str]) -> dict[str, t.Any]:
    st.revoke_tokens()
    return {"ok": True}


def _clock(st: SandboxState, data: dict[str, t.Any], _query: dict[str, str]) -> dict[str, t.Any]:
    st.clock.advance(float(data.get("advance_seconds", 0)))
    return {"now": st.clock.now()}


def _release(st: SandboxState, _data: dict[str, t.Any], _query: dict[str, str]) -> dict[str, t.Any]:
    st.release_foreign_exports()
    return {"ok": True}


def _changes(st: SandboxState, data: dict[str, t.Any], _query: dict[str, str]) -> dict[str, t.Any]:
    with st.lock:
        return apply_change(st.dataset, data, st.clock.now())


def _counts(st: SandboxState, _data: dict[str, t.Any], query: dict[str, str]) -> dict[str, t.Any]:
    with st.lock:
        return window_counts(st.dataset, query, st.clock.now())


#: the control routes (``/_sandbox/...``): (path, method or "*") -> answer of (state, JSON body, query)
_CONTROLS: dict[tuple[str, str], t.Callable[[SandboxState, dict[str, t.Any], dict[str, str]], t.Any]] = {
    ("/_sandbox/stats", "*"): lambda st, _d, _q: st.stats(),
    ("/_sandbox/faults", "POST"): _faults,
    ("/_sandbox/revoke", "POST"): _revoke,
    ("/_sandbox/clock", "POST"): _clock,
    ("/_sandbox/daily", "*"): lambda st, d, _q: st.daily(d),
    ("/_sandbox/v5/changes", "POST"): lambda st, d, _q: st.v5_change(d),
    ("/_sandbox/v5/settings", "POST"): lambda st, d, _q: st.v5_settings(d),
    ("/_sandbox/foreign", "POST"): _foreign,
    ("/_sandbox/foreign/release", "POST"): _release,
    ("/_sandbox/changes", "POST"): _changes,
    ("/_sandbox/counts", "GET"): _counts,
}
