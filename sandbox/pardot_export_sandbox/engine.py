"""Export semantics: argument parsing and validation, row matching, CSV rendering."""

from __future__ import annotations

import datetime as dt
import re
import typing as t
from dataclasses import dataclass, field

from pardot_export_sandbox.data import (
    BOOL,
    DATE,
    DATETIME,
    INT,
    NUMBER,
    STR,
    Dataset,
    Field,
    Gen,
    ObjectData,
    Procedure,
)

MAX_FIELDS = 150
ONE_YEAR = 366 * 86_400  # a leap year's worth: "can't exceed one year"
KEYWORDS = ("today", "yesterday", "last_7_days", "this_month", "last_month")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_LOCAL = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?$")
#: how booleans are written: the seed's true/false, 1/0, or 1 and empty (as a public client fixture shows)
BOOL_STYLES = {"words": ("true", "false"), "digits": ("1", "0"), "blank": ("1", "")}
NEWLINES = {"crlf": "\r\n", "lf": "\n"}
#: the error a create gets for a field the account does not have. Pardot does not document
#: it; code 5 is the v3/v4 API's "Invalid query parameter", and the message names the field(s).
UNKNOWN_FIELD_CODE = 5
_OFFSET = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$")


class ApiError(Exception):
    """An error answered with Pardot's error envelope."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def parse_date_arg(name: str, value: t.Any, zone: dt.tzinfo, now: float) -> int:
    """Parse a date argument the way Pardot does: keywords, local dates and times, offsets."""
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, 7, f"Invalid timestamp for argument '{name}': {value!r}")
    v = value.strip()
    local_now = dt.datetime.fromtimestamp(now, zone)
    midnight = local_now.replace(hour=0, minute=0, second=0, microsecond=0)
    if v in KEYWORDS:
        if v == "today":
            d = midnight
        elif v == "yesterday":
            d = midnight - dt.timedelta(days=1)
        elif v == "last_7_days":
            d = midnight - dt.timedelta(days=7)
        elif v == "this_month":
            d = midnight.replace(day=1)
        else:
            first = midnight.replace(day=1) - dt.timedelta(days=1)
            d = first.replace(day=1)
        return int(d.replace(tzinfo=None).replace(tzinfo=zone).timestamp())
    try:
        if _OFFSET.match(v):
            parsed = dt.datetime.fromisoformat(v.replace("Z", "+00:00").replace(" ", "T", 1))
            return int(parsed.timestamp())
        if _DATE.match(v):
            parsed = dt.datetime.strptime(v, "%Y-%m-%d").replace(tzinfo=zone)
            return int(parsed.timestamp())
        if _LOCAL.match(v):
            parsed = dt.datetime.fromisoformat(v.replace(" ", "T", 1))
            return int(parsed.replace(tzinfo=zone).timestamp())
    except ValueError:
        pass
    raise ApiError(
        400,
        7,
        f"Invalid timestamp for argument '{name}': {value!r}. Use today, yesterday, last_7_days, "
        "this_month, last_month, YYYY-MM-DD, 'YYYY-MM-DD HH:MM:SS' or ISO 8601 with an offset.",
    )


def _tri(name: str, value: t.Any) -> str:
    v = str(value).lower() if not isinstance(value, bool) else ("true" if value else "false")
    if v not in ("true", "false", "all"):
        raise ApiError(400, 27, f"Parameter {name} must be true, false or all, not {value!r}")
    return v


def _bool(name: str, value: t.Any) -> bool:
    v = str(value).lower() if not isinstance(value, bool) else ("true" if value else "false")
    if v not in ("true", "false"):
        raise ApiError(400, 5, f"Parameter {name} must be true or false, not {value!r}")
    return v == "true"


@dataclass
class ExportSpec:
    """A validated export request."""

    obj: ObjectData
    fields: list[str]
    procedure: Procedure
    after: int
    before: int | None
    arguments: dict[str, t.Any]
    deleted: str = "false"
    prospect_deleted: str = "false"
    types: set[int] | None = None
    prospect_only: bool = False
    extra: dict[str, t.Any] = field(default_factory=dict)


def _fields_of(body: dict[str, t.Any], obj: ObjectData, absent: set[str]) -> list[str]:
    """The requested fields, or all the account has; refused when the account lacks one."""
    account_fields = [f for f in obj.field_names if f not in absent]
    fields = body.get("fields")
    if fields is None:
        fields = account_fields
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise ApiError(400, 5, "Parameter 'fields' must be an array of field names")
    if not fields:
        fields = account_fields
    if len(fields) > MAX_FIELDS:
        raise ApiError(400, 5, f"Too many fields: {len(fields)} given, at most {MAX_FIELDS} are allowed")
    known_fields = set(account_fields)
    unknown = [f for f in fields if f not in known_fields]
    if unknown:
        raise ApiError(400, UNKNOWN_FIELD_CODE, f"Invalid field(s) for object {obj.name}: {', '.join(unknown)}")
    return list(fields)


def validate_create(
    body: t.Any,
    dataset: Dataset,
    zone: dt.tzinfo,
    now: float,
    missing: t.Mapping[str, t.Collection[str]] | None = None,
) -> ExportSpec:
    """Check a create request against the seed's rules, or raise :class:`ApiError`.

    ``missing`` maps a stream name to fields this account does not have: a create naming one
    is refused, and "all fields" leaves them out.
    """
    if not isinstance(body, dict):
        raise ApiError(400, 5, "The request body must be a JSON object with object, fields and procedure")
    obj = _object_of(body, dataset)
    fields = _fields_of(body, obj, set((missing or {}).get(obj.stream, ())))
    p, args = _procedure_of(body, obj)
    after, before = _time_range(p, args, zone, now)
    spec = ExportSpec(obj=obj, fields=list(fields), procedure=p, after=after, before=before, arguments=args)
    for name, kind in p.extra.items():
        if name in args:
            _apply_argument(spec, name, kind, args[name])
    return spec


def _object_of(body: dict[str, t.Any], dataset: Dataset) -> ObjectData:
    """The object a create names, or the error Pardot gives."""
    obj_name = body.get("object")
    if not obj_name:
        raise ApiError(400, 13, "Required parameter 'object' is missing")
    obj = dataset.by_api_name(str(obj_name))
    if obj is None:
        known = ", ".join(o.name for o in dataset.objects.values())
        raise ApiError(400, 5, f"Invalid object '{obj_name}'. Exportable objects: {known}")
    return obj


def _procedure_of(body: dict[str, t.Any], obj: ObjectData) -> tuple[Procedure, dict[str, t.Any]]:
    """The procedure a create names and its arguments, checked against what it accepts."""
    proc = body.get("procedure")
    if not isinstance(proc, dict) or not proc.get("name"):
        raise ApiError(400, 13, "Required parameter 'procedure' (with a 'name') is missing")
    p = obj.procedures.get(str(proc["name"]))
    if p is None:
        raise ApiError(
            400,
            5,
            f"Invalid procedure '{proc['name']}' for object {obj.name}. "
            f"Procedures: {', '.join(sorted(obj.procedures))}",
        )
    args = proc.get("arguments") or {}
    if not isinstance(args, dict):
        raise ApiError(400, 5, "Procedure 'arguments' must be an object")
    allowed = {p.after, p.before, *p.extra}
    bad = sorted(set(args) - allowed)
    if bad:
        raise ApiError(
            400,
            5,
            f"Invalid argument(s) for procedure {p.name}: {', '.join(bad)}. Allowed: {', '.join(sorted(allowed))}",
        )
    if p.after not in args:
        raise ApiError(400, 13, f"Required argument '{p.after}' is missing for procedure {p.name}")
    return p, args


def _time_range(p: Procedure, args: dict[str, t.Any], zone: dt.tzinfo, now: float) -> tuple[int, int | None]:
    """The ``(after, before)`` epoch seconds of a create; a range past one year is refused."""
    after = parse_date_arg(p.after, args[p.after], zone, now)
    before = parse_date_arg(p.before, args[p.before], zone, now) if args.get(p.before) not in (None, "") else None
    end = before if before is not None else int(now)
    if end <= after:
        raise ApiError(400, 8, f"Invalid time range: '{p.before}' must be after '{p.after}'")
    if end - after > ONE_YEAR:
        what = p.before if before is not None else "the export's creation time"
        raise ApiError(400, 8, f"Invalid time range: the span from '{p.after}' to {what} exceeds one year")
    return after, before


def _apply_argument(spec: ExportSpec, name: str, kind: str, value: t.Any) -> None:
    """Set the filter that procedure argument ``name`` (of ``kind``) asks for on ``spec``."""
    if kind == "deleted":
        spec.deleted = _tri(name, value)
    elif kind == "prospect_deleted":
        spec.prospect_deleted = _tri(name, value)
    elif kind == "bool":
        spec.prospect_only = _bool(name, value)
    elif kind == "types":
        raw = value if isinstance(value, list) else str(value).split(",")
        try:
            spec.types = {int(str(x).strip()) for x in raw if str(x).strip()}
        except ValueError as exc:
            raise ApiError(400, 5, f"Parameter {name} must be activity type codes, not {value!r}") from exc


def _candidates(
    obj: ObjectData, p: Procedure, after: int, before: int, rng: range | None
) -> tuple[t.Callable[[int], int | None], t.Iterable[int]]:
    """The procedure's time function and the row indexes that may match (in order), within ``rng``."""
    fn: t.Callable[[int], int | None]
    if p.time_field is not None:
        fn, lo, hi = obj.times[p.time_field]
        candidates = obj.candidate_range(lo, hi, after, before)
    elif p.derived_time is not None:
        fn = p.derived_time
        candidates = range(obj.count + obj.added)
    else:
        msg = f"procedure {p.name} has neither a time field nor a derived time"
        raise ValueError(msg)
    if rng is not None:
        candidates = range(max(candidates.start, rng.start), min(candidates.stop, rng.stop))
    if not obj.changed:
        return fn, candidates
    # rows added or changed while running (changes.py) lie outside the generated order
    moved = (i for i in obj.changed if rng is None or i in rng)
    return fn, sorted(set(candidates).union(moved))


def matching_indexes(
    dataset: Dataset, spec: ExportSpec, cutoff: int, rng: range | None = None, lag: float = 0.0
) -> t.Iterator[int]:
    """Yield the row indexes of ``spec``'s object that the export returns.

    ``cutoff`` is the export's creation time: the upper bound when none was given. Rows
    stamped less than ``lag`` seconds before it are not visible yet (a read cache behind).
    """
    obj, p = spec.obj, spec.procedure
    after = spec.after
    before = spec.before if spec.before is not None else cutoff + 1
    if lag > 0:
        before = min(before, int(cutoff - lag) + 1)
    fn, indexes = _candidates(obj, p, after, before, rng)
    is_deleted = obj.is_deleted
    want_deleted = spec.deleted
    want_pdel = spec.prospect_deleted
    types = spec.types
    names = set(obj.field_names)
    va_prospect = obj.field("prospect_id").gen if "prospect_id" in names else None
    va_type = obj.field("type").gen if types is not None else None
    check_extra = types is not None or spec.prospect_only or (p.time_field is None and want_pdel != "all")
    for i in indexes:
        ts = fn(i)
        if ts is None or not (after < ts < before):
            continue
        if is_deleted is not None and want_deleted != "all" and is_deleted(i) != (want_deleted == "true"):
            continue
        if check_extra:
            if types is not None and va_type is not None and va_type(i) not in types:
                continue
            if spec.prospect_only and va_prospect is not None and va_prospect(i) is None:
                continue
            if (
                p.time_field is None
                and want_pdel != "all"
                and dataset.prospect_deleted(obj, i) != (want_pdel == "true")
            ):
                continue
        yield i


def file_ranges(indexes: t.Iterable[int], rows_per_file: int) -> tuple[list[range], int]:
    """Split matching indexes into per-file index ranges of about ``rows_per_file`` matches."""
    ranges: list[range] = []
    count = 0
    in_file = 0
    start = None
    last = None
    for i in indexes:
        if start is None:
            start = i
        last = i
        count += 1
        in_file += 1
        if in_file >= rows_per_file:
            ranges.append(range(start, i + 1))
            start = None
            in_file = 0
    if start is not None and last is not None:
        ranges.append(range(start, last + 1))
    return ranges, count


def _quote(v: str) -> str:
    if any(c in v for c in ',"\r\n'):
        return '"' + v.replace('"', '""') + '"'
    return v


def _number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _cell(kind: str, v: t.Any, local: t.Callable[[int], str], bools: tuple[str, str] = ("true", "false")) -> str:
    if v is None:
        return ""
    if kind == DATETIME:
        return local(v)
    if kind == BOOL:
        return bools[0] if v else bools[1]
    if kind in (INT, DATE):
        return str(v)
    if kind == NUMBER:
        return _number(v)
    return _quote(v)


def _pooled(f: Field) -> Gen:
    """The generator of a pooled field's prepared rows."""
    if f.base_gen is None:
        msg = f"field {f.name} is neither varying nor pooled"
        raise ValueError(msg)
    return f.base_gen


def _varying_part(f: Field, local: t.Callable[[int], str], bools: tuple[str, str]) -> t.Callable[[int], str]:
    """``part(i) -> CSV cell`` of a field computed for every row."""
    g, kind = f.gen, f.kind
    if kind == DATETIME:

        def part(i: int) -> str:
            v = g(i)
            return "" if v is None else local(v)

    elif kind == STR:

        def part(i: int) -> str:
            v = g(i)
            return "" if v is None else _quote(v)

    else:

        def part(i: int) -> str:
            return _cell(kind, g(i), local, bools)

    return part


def make_renderer(
    obj: ObjectData,
    fields: list[str],
    local: t.Callable[[int], str],
    *,
    bools: tuple[str, str] = ("true", "false"),
    newline: str = "\r\n",
) -> t.Callable[[int], str]:
    """Build ``row(i) -> one CSV line`` for the requested fields.

    Pooled fields (see :attr:`Field.varying`) are rendered once per slot, as literal text
    between the varying cells, so a row costs a few hashes and one join.
    """
    spec = [obj.field(name) for name in fields]
    varying = [f for f in spec if f.varying]
    slot = obj.slot
    segments: dict[int, list[str]] = {}

    def segs(s: int) -> list[str]:
        # a row is out[0], then each varying cell followed by the next literal of out
        out: list[str] = []
        lit = ""
        for k, f in enumerate(spec):
            if k:
                lit += ","
            if f.varying:
                out.append(lit)
                lit = ""
            else:
                lit += _cell(f.kind, _pooled(f)(s), local, bools)
        out.append(lit + newline)
        return out

    parts = [_varying_part(f, local, bools) for f in varying]

    def row(i: int) -> str:
        s = slot(i)
        sg = segments.get(s)
        if sg is None:
            sg = segments[s] = segs(s)
        if not parts:
            return sg[0]
        out = [sg[0]]
        for k, p in enumerate(parts):
            out.append(p(i))
            out.append(sg[k + 1])
        return "".join(out)

    return row


def render_csv(  # noqa: PLR0913 - the keyword-only knobs are the account variants' rendering quirks
    dataset: Dataset,
    spec: ExportSpec,
    cutoff: int,
    rng: range,
    *,
    reverse: bool = False,
    bom: bool = False,
    chunk_rows: int = 2000,
    bool_style: str = "words",
    line_ending: str = "crlf",
    lag: float = 0.0,
) -> t.Iterator[bytes]:
    """Stream one result file as UTF-8 CSV chunks (header first)."""
    newline = NEWLINES[line_ending]
    header = ",".join(_quote(f) for f in spec.fields) + newline
    yield (("\ufeff" if bom else "") + header).encode()
    row = make_renderer(spec.obj, spec.fields, dataset.local, bools=BOOL_STYLES[bool_style], newline=newline)
    indexes: t.Iterable[int] = matching_indexes(dataset, spec, cutoff, rng, lag)
    if reverse:
        indexes = reversed(list(indexes))
    buf: list[str] = []
    for i in indexes:
        buf.append(row(i))
        if len(buf) >= chunk_rows:
            yield "".join(buf).encode()
            buf.clear()
    if buf:
        yield "".join(buf).encode()
