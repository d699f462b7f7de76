"""``pardot-export-sandbox``: run the local Export API sandbox until SIGINT/SIGTERM; ``counts`` and ``records``."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import sys
import threading
import typing as t
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pardot_export_sandbox import commands
from pardot_export_sandbox.commands import COMMANDS
from pardot_export_sandbox.data import DEFAULT_ROWS, V5_OBJECTS, DataConfig
from pardot_export_sandbox.engine import BOOL_STYLES, NEWLINES
from pardot_export_sandbox.server import (
    FAULT_KINDS,
    PROSPECT_ONLY_SPELLINGS,
    RESPONSE_STYLES,
    Sandbox,
    SandboxConfig,
)


def _date(value: str) -> dt.datetime:
    try:
        d = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        msg = f"not an ISO date: {value!r} (use e.g. 2024-01-01 or 2024-01-01T00:00:00+00:00)"
        raise argparse.ArgumentTypeError(msg) from exc
    return d if d.tzinfo else d.replace(tzinfo=dt.timezone.utc)


def _rows(value: str) -> tuple[str, int]:
    name, _, n = value.partition("=")
    if (name not in DEFAULT_ROWS and name not in V5_OBJECTS) or name == "custom_field" or not n.isdigit():
        msg = (
            f"expected OBJECT=N with OBJECT an export object ({', '.join(DEFAULT_ROWS)}) or a v5 object "
            f"({', '.join(k for k in V5_OBJECTS if k != 'custom_field')}), got {value!r}"
        )
        raise argparse.ArgumentTypeError(msg)
    return name, int(n)


def _mass_update(value: str) -> tuple[str, int]:
    name, _, n = value.partition("=")
    if name not in V5_OBJECTS or not n.isdigit():
        msg = f"expected OBJECT=N with OBJECT a v5 object with updatedAt (e.g. visit=500), got {value!r}"
        raise argparse.ArgumentTypeError(msg)
    return name, int(n)


def _v5_field(value: str) -> tuple[str, str]:
    name, _, field = value.partition(".")
    if name not in V5_OBJECTS or not field:
        msg = f"expected OBJECT.FIELD with OBJECT a v5 object (e.g. form.salesforceCmsId), got {value!r}"
        raise argparse.ArgumentTypeError(msg)
    return name, field


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        msg = f"unknown IANA time zone {value!r} (e.g. America/New_York, Europe/Paris, UTC)"
        raise argparse.ArgumentTypeError(msg) from exc
    return value


def _missing(value: str) -> tuple[str, str]:
    stream, _, name = value.partition(".")
    if stream not in DEFAULT_ROWS or not name:
        msg = f"expected STREAM.FIELD with STREAM one of {', '.join(DEFAULT_ROWS)}, got {value!r}"
        raise argparse.ArgumentTypeError(msg)
    return stream, name


def _add_variant_args(p: argparse.ArgumentParser, d: SandboxConfig) -> None:
    v = p.add_argument_group("account variants (how a real account may differ)")
    v.add_argument(
        "--result-host",
        default=None,
        metavar="ADDRESS",
        help="serve the API on a second listener at ADDRESS (e.g. 127.0.0.2) and put result links there, "
        "as Pardot's links on www.pardot.com while the API is pi.pardot.com",
    )
    v.add_argument(
        "--bool-style",
        choices=tuple(BOOL_STYLES),
        default=d.bool_style,
        help="booleans in CSVs: words (true/false), digits (1/0), blank (1, false as empty) (default %(default)s)",
    )
    v.add_argument(
        "--line-ending", choices=tuple(NEWLINES), default=d.line_ending, help="CSV line ends (default %(default)s)"
    )
    v.add_argument(
        "--missing-field",
        type=_missing,
        action="append",
        default=[],
        metavar="STREAM.FIELD",
        help="a field this account does not have, repeatable (e.g. visitor_activity.visit_id): a create naming "
        "it is refused with error 5 naming the field",
    )
    v.add_argument(
        "--typed-custom-fields",
        action="store_true",
        help="add one custom prospect field of every Pardot type (Text, Number, Date, Checkbox, ...)",
    )
    v.add_argument(
        "--no-custom-field-query",
        action="store_true",
        help="answer the custom field query with error 46 (a user without the ability)",
    )
    v.add_argument(
        "--custom-account-fields",
        action="store_true",
        help="add custom prospect account fields (a text, a number and a date), listed by the prospect account "
        "describe and exported under their ids",
    )
    v.add_argument(
        "--no-account-describe",
        action="store_true",
        help="answer the prospect account describe with 404 (an account without it)",
    )
    v.add_argument(
        "--prospect-only-spelling",
        choices=PROSPECT_ONLY_SPELLINGS,
        default=d.prospect_only_spelling,
        help="visitor activity's prospect-only argument: seed (prospect_only / prospectOnly by procedure) or "
        "camel (prospectOnly for both, prospect_only refused) (default %(default)s)",
    )
    v.add_argument(
        "--visibility-lag",
        type=float,
        default=d.visibility_lag,
        metavar="SECONDS",
        help="rows stamped less than SECONDS before an export's creation are not in it yet (default %(default)s)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``pardot-export-sandbox``; defaults come from the config classes."""
    d = SandboxConfig()
    p = argparse.ArgumentParser(
        prog="pardot-export-sandbox",
        description=(
            "A local server that behaves like the Account Engagement (Pardot) Export API, versions 3 "
            "and 4, and the v5 query API, with a Salesforce-style OAuth token endpoint. Prints its base "
            "URL on the first line, then serves until SIGINT or SIGTERM. Point the tap's api_url and "
            "login_url at it."
        ),
        epilog="Commands for a running sandbox: 'pardot-export-sandbox counts --url URL ...' (rows per export "
        "object in a range, as an export counts them) and 'pardot-export-sandbox records --url URL "
        "add|update|delete|v5 ...' (change its records); each has --help.",
    )
    p.add_argument("--host", default=d.host, help="address to listen on (default %(default)s)")
    p.add_argument("--port", type=int, default=d.port, help="port; 0 picks a free one (default %(default)s)")
    _add_data_args(p, d, DataConfig())
    _add_variant_args(p, d)
    _add_account_args(p, d)
    _add_behaviour_args(p, d)
    _add_v5_args(p, d, DataConfig())
    return p


def _add_v5_args(p: argparse.ArgumentParser, d: SandboxConfig, dd: DataConfig) -> None:
    v = p.add_argument_group("the v5 query API (GET /api/v5/objects/...; sizes: --rows, e.g. visitor_page_view=300000)")
    v.add_argument(
        "--email-send-size",
        type=int,
        default=dd.email_send_size,
        metavar="N",
        help="emails of one list email send, sharing one sentAt (default %(default)s)",
    )
    v.add_argument(
        "--email-send-gap",
        type=int,
        default=dd.email_send_gap,
        metavar="N",
        help="one-to-one emails, each with its own sentAt, after each send (default %(default)s)",
    )
    v.add_argument(
        "--mass-update",
        type=_mass_update,
        action="append",
        default=[],
        metavar="OBJECT=N",
        help="N records in the middle of OBJECT share one updatedAt, repeatable; OBJECT=0 removes one "
        f"(default {', '.join(f'{k}={n}' for k, n in dd.mass_updates.items())})",
    )
    v.add_argument(
        "--v5-chain-cap",
        type=int,
        default=d.v5_chain_cap,
        metavar="N",
        help="records one page-token chain serves before 'Pardot-Warning: 203' and no token (default %(default)s)",
    )
    v.add_argument(
        "--v5-token-ttl",
        type=float,
        default=d.v5_token_ttl,
        metavar="SECONDS",
        help="life of a page token on the sandbox clock; error 210 after (default %(default)s)",
    )
    v.add_argument(
        "--v5-page-latency",
        type=float,
        default=d.v5_page_latency,
        metavar="SECONDS",
        help="time each query page takes (Pardot's take about 1 s) (default %(default)s)",
    )
    v.add_argument(
        "--v5-refused-field",
        type=_v5_field,
        action="append",
        default=[],
        metavar="OBJECT.FIELD",
        help="a field this account refuses on queries, repeatable (error 51 naming it), e.g. form.salesforceCmsId",
    )
    v.add_argument(
        "--v5-delete-touches-updated-at",
        action="store_true",
        help="moving a v5 record to the recycle bin also moves its updatedAt to the sandbox clock",
    )


def _add_data_args(p: argparse.ArgumentParser, d: SandboxConfig, dd: DataConfig) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--seed", type=int, default=dd.seed, help="seed of the generated data (default %(default)s)")
    g.add_argument("--start", type=_date, default=dd.start, help="first instant of the data (default %(default)s)")
    g.add_argument("--end", type=_date, default=dd.end, help="instant the data stops (default %(default)s)")
    g.add_argument(
        "--rows",
        type=_rows,
        action="append",
        default=[],
        metavar="OBJECT=N",
        help=f"rows of one object, repeatable; defaults: {', '.join(f'{k}={v}' for k, v in DEFAULT_ROWS.items())}",
    )
    g.add_argument(
        "--custom-field",
        action="append",
        default=None,
        metavar="NAME",
        help="a custom prospect field, repeatable (default: Favorite_Color and Lead_Notes)",
    )
    g.add_argument(
        "--timezone",
        type=_zone,
        default=dd.timezone,
        help="the API user's IANA time zone: CSV datetimes are written in it (default %(default)s)",
    )
    g.add_argument(
        "--rows-per-file", type=int, default=d.rows_per_file, help="rows per result CSV file (default %(default)s)"
    )
    g.add_argument("--bom", action="store_true", help="start every CSV with a byte order mark, as UI exports do")
    g.add_argument(
        "--cache-dir",
        default=None,
        metavar="DIR",
        help="keep rendered result files in DIR and serve repeats of the same export from disk (benchmarks)",
    )


def _add_account_args(p: argparse.ArgumentParser, d: SandboxConfig) -> None:
    a = p.add_argument_group("account")
    a.add_argument("--business-unit-id", default=d.business_unit_id, help="the business unit (default %(default)s)")
    a.add_argument(
        "--api-version",
        type=int,
        choices=(0, 3, 4),
        default=d.api_version,
        help="version the business unit requires: 3 or 4 (errors 88/89 on the other); "
        "0 accepts both (default %(default)s)",
    )
    a.add_argument("--client-id", default=d.client_id, help="OAuth client id (default %(default)s)")
    a.add_argument("--client-secret", default=d.client_secret, help="OAuth client secret (default %(default)s)")
    a.add_argument("--refresh-token", default=d.refresh_token, help="OAuth refresh token (default %(default)s)")
    a.add_argument("--access-token", default=None, help="also accept this pre-issued access token")
    a.add_argument(
        "--token-delay",
        type=float,
        default=d.token_delay,
        help="seconds each token request takes; overlapping token requests are counted (default %(default)s)",
    )


def _add_behaviour_args(p: argparse.ArgumentParser, d: SandboxConfig) -> None:
    b = p.add_argument_group("behaviour")
    b.add_argument(
        "--waiting-seconds",
        type=float,
        default=d.waiting_seconds,
        help="time an export spends Waiting before Processing (default %(default)s)",
    )
    b.add_argument(
        "--processing-seconds",
        type=float,
        default=d.processing_seconds,
        help="extra time an export spends Processing (default %(default)s)",
    )
    b.add_argument(
        "--max-concurrent",
        type=int,
        default=d.max_concurrent,
        help="requests in flight per business unit before error 66 (default %(default)s)",
    )
    b.add_argument(
        "--daily-limit",
        type=int,
        default=d.daily_limit,
        help="API calls per day before error 122 (default %(default)s)",
    )
    b.add_argument(
        "--api-calls-used-before",
        type=int,
        default=d.api_calls_used_before,
        help="API calls other integrations spent today before the sandbox started: they count against "
        "--daily-limit until the account's midnight (default %(default)s)",
    )
    b.add_argument(
        "--response-style",
        choices=RESPONSE_STYLES,
        default=d.response_style,
        help="export answer shape: wrapped {export:...}, with @attributes, bare, or mixed (rotating)",
    )
    b.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="JSON",
        help='a fault to inject at start, repeatable, e.g. \'{"kind": "http_503", "count": 3, "op": "read"}\'; '
        f"kinds: {', '.join(FAULT_KINDS)}. op (create, read, query, cancel, download, token, custom_field, describe, "
        "query_v5, account_v5) limits a fault to one kind of call (the custom field query, the describe and the "
        "v5 calls take only faults naming them); "
        "slow takes seconds, cut takes after_bytes. Faults can also be POSTed to "
        "/_sandbox/faults while running; /_sandbox/stats counts calls.",
    )


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    """The sandbox's configuration from parsed command-line arguments."""
    data = DataConfig(
        seed=args.seed,
        start=args.start,
        end=args.end,
        rows=dict(args.rows),
        timezone=args.timezone,
        typed_custom_fields=args.typed_custom_fields,
        custom_account_fields=args.custom_account_fields,
        email_send_size=args.email_send_size,
        email_send_gap=args.email_send_gap,
    )
    if args.custom_field:
        data.custom_fields = tuple(args.custom_field)
    data.mass_updates.update(dict(args.mass_update))
    missing: dict[str, list[str]] = {}
    for stream, name in args.missing_field:
        missing.setdefault(stream, []).append(name)
    refused: dict[str, list[str]] = {}
    for name, fld in args.v5_refused_field:
        refused.setdefault(name, []).append(fld)
    return SandboxConfig(
        host=args.host,
        port=args.port,
        business_unit_id=args.business_unit_id,
        api_version=args.api_version,
        client_id=args.client_id,
        client_secret=args.client_secret,
        refresh_token=args.refresh_token,
        access_token=args.access_token,
        token_delay=args.token_delay,
        data=data,
        rows_per_file=args.rows_per_file,
        waiting_seconds=args.waiting_seconds,
        processing_seconds=args.processing_seconds,
        max_concurrent=args.max_concurrent,
        daily_limit=args.daily_limit,
        api_calls_used_before=args.api_calls_used_before,
        response_style=args.response_style,
        bom=args.bom,
        cache_dir=args.cache_dir,
        result_host=args.result_host,
        bool_style=args.bool_style,
        line_ending=args.line_ending,
        missing_fields=missing,
        prospect_only_spelling=args.prospect_only_spelling,
        visibility_lag=args.visibility_lag,
        custom_field_query=not args.no_custom_field_query,
        account_describe=not args.no_account_describe,
        v5_chain_cap=args.v5_chain_cap,
        v5_token_ttl=args.v5_token_ttl,
        v5_page_latency=args.v5_page_latency,
        v5_refused_fields=refused,
        v5_delete_touches_updated_at=args.v5_delete_touches_updated_at,
    )


def main(argv: t.Sequence[str] | None = None) -> int:
    """Run the sandbox until SIGINT or SIGTERM; the base URL is the first line on stdout."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:  # counts, records: talk to a running sandbox
        return commands.main(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.end <= args.start:
        parser.error("--end must be after --start")
    sandbox = Sandbox(config_from_args(args))
    for raw in args.fault:
        _inject(sandbox, raw, parser)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    sandbox.start()
    print(sandbox.base_url, flush=True)
    print(
        f"business unit {args.business_unit_id}, API version {args.api_version or '3 and 4'}, "
        f"user time zone {args.timezone}; stop with Ctrl-C",
        file=sys.stderr,
        flush=True,
    )
    try:
        while not stop.wait(0.5):
            pass
    finally:
        sandbox.stop()
    return 0


def _inject(sandbox: Sandbox, raw: str, parser: argparse.ArgumentParser) -> None:
    try:
        sandbox.inject(**json.loads(raw))
    except (ValueError, TypeError) as exc:
        parser.error(f"--fault {raw!r}: {exc}")


if __name__ == "__main__":
    sys.exit(main())
