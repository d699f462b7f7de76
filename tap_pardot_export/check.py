"""``tap-pardot-export --check``: a first-run check of the settings against the account.

It spends a handful of API calls and runs no long export:

1. a token (and a refresh, when credentials allow one);
2. the custom field query (proves the business unit, the host and the API version, and lists
   the account's custom fields);
3. per export stream, one export over a one-second window an hour ago, canceled at once: only a
   create proves the user may export an object (the export query needs "Admin > Exports >
   View", which says nothing about the object's own ability). Fields the account refuses
   are reported, as a sync would leave them out;
4. the time zone: the first create's ``createdAt`` is written in the API user's zone, so
   comparing it with the request time gives the zone's UTC offset now;
5. the export record's folder (``record_dir``) can be written, and how many exports wait in the
   business unit's queue (the export query, where the API user has "Admin > Exports > View");
6. per query stream, one page of one record (:mod:`~tap_pardot_export.check_query`);
7. the business unit's daily API allowance (the v5 account object): used, limit, left, and
   whether ``api_call_reserve`` leaves room for a sync today.

Every failure line says what to change. Exit status 0 when every check passes, 1 otherwise.
Nothing secret is printed: lines are built from codes, hosts, ids and Pardot's messages.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from dataclasses import dataclass, field

import requests

from tap_pardot_export.check_query import check_query_streams
from tap_pardot_export.discovery import (
    CUSTOM_FIELD_STREAM,
    DESCRIBE_STREAM,
    account_field_properties,
    custom_field_properties,
    has_credentials,
    make_client,
)
from tap_pardot_export.engine.convert import infer_offset
from tap_pardot_export.engine.join import MAX_FIELDS, field_groups
from tap_pardot_export.engine.record import ExportRecord
from tap_pardot_export.engine.windows import api_time
from tap_pardot_export.engine.zones import utc_offset
from tap_pardot_export.errors import (
    FirstContactError,
    PardotAPIError,
    PardotAuthError,
    PardotConfigError,
    RefusedURLError,
)
from tap_pardot_export.pardot.account import describe_prospect_account, query_custom_fields
from tap_pardot_export.pardot.exports import ExportInfo, ExportSpec, InFlight
from tap_pardot_export.pardot.listing import ABILITY, NoExportView, queue_ahead
from tap_pardot_export.pardot.quota import ABILITY as ACCOUNT_ABILITY
from tap_pardot_export.pardot.quota import SETTING as RESERVE
from tap_pardot_export.pardot.quota import AllowanceUnknown, read_allowance
from tap_pardot_export.pardot.runner import ExportRunner
from tap_pardot_export.redact import host_of
from tap_pardot_export.spec import SPECS, SPELLINGS
from tap_pardot_export.streams import ExportStream, load_schema

if t.TYPE_CHECKING:
    import logging

    from tap_pardot_export.pardot.client import PardotClient
    from tap_pardot_export.settings.config import Settings
    from tap_pardot_export.tap import TapPardotExport
#: the probe window ends this long before now, and lasts one second
PROBE_AGE = dt.timedelta(hours=1)
API_ERRORS = (PardotAPIError, PardotConfigError, requests.RequestException)
#: errors of the first API call that leave nothing else to check: the business unit is unknown
#: on this host (201), its header is missing or malformed (181, 182), or the host or token is wrong
ACCOUNT_CODES = frozenset({181, 182, 201})
FATAL_FIRST = (PardotAuthError, FirstContactError, RefusedURLError)


@dataclass
class Report:
    """The check's lines: ``(ok, text)``; a failing line says what to change."""

    lines: list[tuple[str, str]] = field(default_factory=list)

    def ok(self, text: str) -> None:
        """A passed check."""
        self.lines.append(("OK", text))

    def note(self, text: str) -> None:
        """Something to know that does not stop a sync."""
        self.lines.append(("NOTE", text))

    def fail(self, text: str) -> None:
        """A failed check, with the fix."""
        self.lines.append(("FAIL", text))

    @property
    def passed(self) -> bool:
        """True when no line failed."""
        return all(kind != "FAIL" for kind, _ in self.lines)

    def render(self) -> str:
        """The report as printed."""
        body = "\n".join(f"  {kind:<4}  {text}" for kind, text in self.lines)
        failed = sum(kind == "FAIL" for kind, _ in self.lines)
        verdict = "all checks passed" if not failed else f"{failed} check(s) failed: fix the FAIL lines"
        return f"{body}\nResult: {verdict}"


def check_token(client: PardotClient, report: Report) -> bool:
    """A token, then a refresh when the credentials allow one."""
    tokens = client.tokens
    try:
        first = tokens.token()
        if tokens.can_refresh:
            tokens.refresh(first)
    except API_ERRORS as exc:
        report.fail(f"token: {exc}")
        return False
    if tokens.can_refresh:
        report.ok(f"token: obtained and refreshed at {host_of(tokens.auth_endpoint)}")
    else:
        report.note(
            "token: access_token works but cannot be refreshed: set client_id, client_secret and "
            "refresh_token for syncs longer than the token's life"
        )
    return True


def check_account(client: PardotClient, settings: Settings, report: Report) -> list[dict[str, t.Any]] | None:
    """Business unit, host and API version, and the custom fields, from the custom field query.

    Returns the custom fields; None when the business unit or host is wrong (nothing else can work).
    """
    configured = settings.connection.api_version
    try:
        fields = query_custom_fields(client)
    except (PardotConfigError, requests.RequestException) as exc:
        report.fail(f"account: {exc}")
        return None
    except PardotAPIError as exc:
        if exc.code in ACCOUNT_CODES or isinstance(exc, FATAL_FIRST):  # the business unit, host or token
            report.fail(f"business unit: {exc}")
            return None
        fields = None
        problem = str(exc)
    else:
        problem = ""
    report.ok(f"business unit {settings.connection.business_unit_id} found on {host_of(client.api_url)}")
    if client.api_version != configured:
        report.fail(
            f"API version: this business unit needs version {client.api_version} (Pardot answered error "
            f"{88 if client.api_version == 4 else 89} to version {configured}): set api_version={client.api_version}"
        )
    else:
        report.ok(f"API version {configured}")
    if fields is None:
        report.note(
            f"custom fields: the custom field query failed ({problem}); syncs use the built-in fields and "
            "custom_fields. Give the API user the ability to view custom fields to have them discovered."
        )
        return []
    by_type: dict[str, int] = {}
    for f in fields:
        by_type[str(f.get("type"))] = by_type.get(str(f.get("type")), 0) + 1
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(by_type.items()))
    report.ok(f"custom fields: {len(fields)} found{f' ({kinds})' if kinds else ''}; discovery adds them to prospect")
    builtin = load_schema(CUSTOM_FIELD_STREAM)["properties"]
    names = [*builtin, *(n for n in custom_field_properties(fields) if n not in builtin)]
    groups = field_groups(names, ["id", "updated_at"])
    if len(groups) > 1:
        report.note(
            f"prospect: {len(names)} fields with the custom ones, more than an export takes ({MAX_FIELDS}): each "
            f"window runs {len(groups)} exports (field groups joined by id on disk; see docs/wide-prospects.md "
            "in the tap's repository). Deselect fields you do not need to save exports."
        )
    return fields


def check_account_fields(client: PardotClient, report: Report) -> dict[str, dict[str, t.Any]]:
    """The prospect account fields, from the prospect account describe, in one report line.

    Args:
        client: The check's client.
        report: The report to add the line to (a note when the describe fails).

    Returns:
        The schema of each described field the built-in prospect_account schema lacks (empty
        when the describe failed), as discovery adds them.
    """
    try:
        fields = describe_prospect_account(client)
    except API_ERRORS as exc:
        report.note(
            f"prospect account fields: the describe failed ({exc}); syncs use the built-in fields and "
            "custom_fields.prospect_account"
        )
        return {}
    builtin = load_schema(DESCRIBE_STREAM)["properties"]
    found = account_field_properties(fields)
    extra = {name: schema for name, schema in found.items() if name not in builtin}
    custom = [str(f.get("id")) for f in fields if str(f.get("custom")).lower() in ("true", "1")]
    listed = f" ({len(custom)} custom: {', '.join(custom)})" if custom else ""
    added = ", ".join(f"{name} ({_kind(schema)})" for name, schema in extra.items()) or "none"
    report.ok(
        f"prospect account fields: {len(found)} found{listed}; discovery adds those the built-in schema lacks "
        f"to prospect_account: {added}"
    )
    return extra


def _kind(schema: t.Mapping[str, t.Any]) -> str:
    """A property's type in a word: number, date or string."""
    if "number" in schema.get("type", ()):
        return "number"
    return "date" if schema.get("format") == "date" else "string"


def _probe_specs(stream: ExportStream, now: dt.datetime) -> list[ExportSpec]:
    """One-second exports of the stream's fields: one per field group when they exceed an export."""
    plan = stream.plan()
    procedure = plan.procedure
    end = now - PROBE_AGE
    arguments = {
        procedure.after: api_time(end - dt.timedelta(seconds=1)),
        procedure.before: api_time(end),
        **plan.arguments,
    }
    return [
        ExportSpec(plan.api_object, fields, procedure.name, dict(arguments), f"{plan.stream} check", plan.protected)
        for fields in plan.groups()
    ]


def check_stream(runner: ExportRunner, stream: ExportStream, report: Report) -> ExportInfo | None:
    """Create a one-second export of ``stream`` (one per field group) and cancel it: the user may export it, or not."""
    first: ExportInfo | None = None
    specs = _probe_specs(stream, dt.datetime.now(dt.timezone.utc))
    for spec in specs:
        try:
            info = runner.create(spec)
        except API_ERRORS as exc:
            code = getattr(exc, "code", None)
            if code in (46, 49):
                fix = f"give the API user the ability {stream.spec.ability}, or deselect the stream"
            else:
                fix = "fix the setting the message names (stream_options, custom_fields), or deselect the stream"
            report.fail(f"{stream.name}: cannot export ({exc}): {fix}")
            return None
        runner.cancel(info.id, spec.label)
        first = first or info
    dropped = runner.healer.dropped.get(stream.spec.api_object, [])
    if dropped:
        report.note(
            f"{stream.name}: this account has no field(s) {', '.join(dropped)}: syncs leave them out with a "
            f"warning; deselect them in the catalog to silence it"
        )
    fields = len({f for spec in specs for f in spec.fields})
    exports = f", {len(specs)} exports per window" if len(specs) > 1 else ""
    report.ok(f"{stream.name}: may export ({specs[0].procedure}, {fields} fields{exports})")
    return first


def check_record(client: PardotClient, settings: Settings, report: Report, logger: logging.Logger) -> set[int]:
    """The export record's folder can be written; the ids it holds (empty when it cannot be)."""
    try:
        record = ExportRecord.open(settings.record_dir, client.business_unit_id, host_of(client.api_url), logger)
    except PardotConfigError as exc:
        report.fail(str(exc))
        return set()
    held = {e["id"] for e in record.live()}
    report.ok(f"record_dir: {record.path} can be written ({len(held)} export(s) of this business unit recorded)")
    return held


def check_queue(client: PardotClient, report: Report, recorded: set[int]) -> None:
    """How many exports wait in the business unit's queue: a sync's first export waits behind them."""
    try:
        ahead = queue_ahead(client)
    except NoExportView as exc:
        report.note(
            f"queue: {exc}: the exports ahead of the tap's in Pardot's queue cannot be counted, and --list-exports "
            f"lists only the exports in the tap's record. Grant {ABILITY} to the API user to see them."
        )
        return
    except API_ERRORS as exc:
        report.note(f"queue: the export query failed ({exc})")
        return
    if not ahead:
        report.ok("queue: no export Waiting or Processing in the business unit: a sync's first export starts at once")
        return
    ours = sum(e.id in recorded for e in ahead)
    report.ok(
        f"queue: {len(ahead)} export(s) Waiting or Processing in the business unit ({ours} of them in the tap's "
        "record): a sync's first export waits behind them (Pardot runs one at a time); --list-exports lists them"
    )


def check_allowance(client: PardotClient, settings: Settings, report: Report) -> None:
    """The business unit's daily API allowance, and whether the reserve leaves room for a sync today."""
    try:
        allowance = read_allowance(client, settings.api_call_reserve)
    except AllowanceUnknown as exc:
        report.note(
            f"API allowance: the v5 account object did not say it ({exc}): syncs cannot keep {RESERVE} for other "
            f"integrations, only max_api_calls caps them. To have it read, give the API user {ACCOUNT_ABILITY}."
        )
        return
    except API_ERRORS as exc:
        report.note(f"API allowance: the account object could not be read ({exc})")
        return
    figures = f"API calls today: {allowance.figures()}"
    if allowance.room > 0:
        report.ok(f"{figures}: a sync may spend {allowance.room:,} call(s) today before it stops for the reserve")
        return
    report.fail(
        f"{figures}: the reserve leaves no room, a sync would stop at once. Wait for the reset {client.reset_time()}, "
        f"or lower {RESERVE}"
    )


def check_timezone(settings: Settings, info: ExportInfo | None, report: Report) -> None:
    """Compare ``timezone`` with the zone Pardot wrote the export's createdAt in."""
    if info is None or not info.created_at:
        report.note("timezone: no export was created, so the zone Pardot writes times in is unknown")
        return
    seen = infer_offset(info.created_at, info.requested_at)
    if seen is None:
        report.note(f"timezone: cannot read the export's createdAt {info.created_at!r}")
        return
    name = settings.timezone
    if name is None:
        report.fail(
            f"timezone is not set; Pardot writes times at {utc_offset(seen)} now: set timezone to the API "
            "user's IANA zone (Salesforce user settings > Time Zone), e.g. America/New_York"
        )
        return
    at = dt.datetime.fromtimestamp(info.requested_at, name)
    mine = at.utcoffset() or dt.timedelta(0)
    if mine == seen:
        report.ok(f"timezone {name} agrees with the times Pardot writes ({utc_offset(seen)} now)")
    else:
        report.fail(
            f"timezone {name} is {utc_offset(mine)} now, but Pardot writes times at {utc_offset(seen)}: set "
            "timezone to the API user's IANA zone (Salesforce user settings > Time Zone)"
        )


def run_check(tap: TapPardotExport) -> Report:
    """Run every check against the account the tap's settings name."""
    report = Report()
    settings = tap.settings
    if not has_credentials(settings.connection):
        report.fail("credentials: set business_unit_id and access_token, or client_id + client_secret")
        return report
    client = make_client(settings.connection)
    if not check_token(client, report):
        return report
    fields = check_account(client, settings, report)
    if fields is None:
        return report
    check_allowance(client, settings, report)
    check_queue(client, report, check_record(client, settings, report, tap.logger))
    learned = {
        CUSTOM_FIELD_STREAM: custom_field_properties(fields),
        DESCRIBE_STREAM: check_account_fields(client, report),
    }
    runner = ExportRunner(
        client, polling=settings.polling, in_flight=InFlight(), spellings=SPELLINGS, logger=tap.logger
    )
    first: ExportInfo | None = None
    for spec in SPECS.values():
        if spec.kind != "export":  # other kinds are probed by their own reads
            continue
        stream = ExportStream(tap, spec, settings, tap.sessions, tap.failures)
        stream.add_account_fields(learned.get(spec.name, {}))
        info = check_stream(runner, stream, report)
        first = first or info
    check_timezone(settings, first, report)
    check_query_streams(client, report, tap.logger)
    report.note(f"the check spent {client.api_calls} API call(s) and canceled the exports it created")
    return report
