"""The export objects' truth and its changes: counts as an export sees them; records added, updated, deleted.

:func:`count_rows` counts an object's rows the way an export would return them: by its procedure's
filter field with exclusive bounds (``after < t < before``), live records only unless asked. The
tap asks for a window ``[start, end)`` with ``after = start - 1 s`` and ``before = end``: so do
:func:`window_counts`' ``start`` and ``end``.

:func:`apply_change` adds, updates or deletes records of a running sandbox's export object
(``POST /_sandbox/changes``). The generated rows stay as they are; a change is an overlay: an
added record is a new row index past the generated ones (every field generated from it, its
time fields at ``at``), an updated record's ``updated_at`` moves to ``at``, and a deleted one
goes to the recycle bin. An export created after a change sees it.
"""

from __future__ import annotations

import datetime as dt
import typing as t

from pardot_export_sandbox.data import DATETIME
from pardot_export_sandbox.engine import ExportSpec, matching_indexes

if t.TYPE_CHECKING:
    from pardot_export_sandbox.data import Dataset, ObjectData, Procedure

#: one second: the tap asks for window [start, end) with after = start - 1 s
_ONE = 1


def _epoch(value: t.Any, name: str) -> int:
    """Epoch seconds of an ISO 8601 value (a date or a datetime; no offset: UTC), or of a number."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    try:
        d = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        msg = f"{name} must be an ISO 8601 date or datetime (e.g. 2024-06-01T12:00:00+00:00), not {value!r}"
        raise ValueError(msg) from None
    return int((d if d.tzinfo else d.replace(tzinfo=dt.timezone.utc)).timestamp())


def _object(dataset: Dataset, name: str) -> ObjectData:
    obj = dataset.objects.get(name) or dataset.by_api_name(name)
    if obj is None:
        msg = f"unknown export object {name!r}; objects: {', '.join(dataset.objects)}"
        raise ValueError(msg)
    return obj


def default_procedure(obj: ObjectData) -> Procedure:
    """The tap's default procedure: filter_by_updated_at where the object has it, else filter_by_created_at."""
    procs = obj.procedures
    return procs.get("filter_by_updated_at") or procs.get("filter_by_created_at") or next(iter(procs.values()))


def count_rows(
    dataset: Dataset, obj: ObjectData, procedure: Procedure, after: int, before: int, *, deleted: str = "false"
) -> int:
    """Rows an export of ``obj`` by ``procedure`` with ``after < t < before`` returns (``deleted``: false/true/all)."""
    spec = ExportSpec(
        obj=obj, fields=[], procedure=procedure, after=after, before=before, arguments={}, deleted=deleted
    )
    return sum(1 for _ in matching_indexes(dataset, spec, cutoff=before))


def window_counts(dataset: Dataset, query: t.Mapping[str, str], now: float) -> dict[str, t.Any]:
    """``GET /_sandbox/counts``: rows per object of the window ``[start, end)`` as the tap exports it.

    ``object`` (default: every export object), ``procedure`` (default: the tap's), ``start``
    (default: the data's start), ``end`` (default: the sandbox's now, one second on), ``deleted``
    (false, true or all).
    """
    names = [query["object"]] if query.get("object") else list(dataset.objects)
    start = _epoch(query["start"], "start") if query.get("start") else dataset.start
    end = _epoch(query["end"], "end") if query.get("end") else int(now) + _ONE
    deleted = query.get("deleted", "false")
    if deleted not in ("false", "true", "all"):
        msg = f"deleted must be false, true or all, not {deleted!r}"
        raise ValueError(msg)
    out = []
    for name in names:
        obj = _object(dataset, name)
        procedure = default_procedure(obj)
        if query.get("procedure"):
            procedure = obj.procedures.get(query["procedure"]) or _no_procedure(obj, query["procedure"])
        count = count_rows(dataset, obj, procedure, start - _ONE, end, deleted=deleted)
        field = procedure.time_field or f"(derived: {procedure.after})"
        out.append({"object": obj.stream, "procedure": procedure.name, "field": field, "count": count})
    iso = {k: dt.datetime.fromtimestamp(v, dt.timezone.utc).isoformat() for k, v in (("start", start), ("end", end))}
    return {**iso, "deleted": deleted, "counts": out}


def _no_procedure(obj: ObjectData, name: str) -> t.NoReturn:
    msg = f"{obj.stream} has no procedure {name!r}; procedures: {', '.join(obj.procedures)}"
    raise ValueError(msg)


def apply_change(dataset: Dataset, data: t.Mapping[str, t.Any], now: float) -> dict[str, t.Any]:
    """One change of ``POST /_sandbox/changes``; answers the ids added, updated or deleted.

    ``{"op": "add", "object": "prospect", "count": 2}``, ``{"op": "update", "object": ..., "ids": [...]}``,
    ``{"op": "delete", "object": ..., "ids": [...]}``; add and update may carry ``at`` (ISO 8601;
    default: the sandbox's now), the time the records are created or updated.
    """
    op = data.get("op")
    obj = _object(dataset, str(data.get("object")))
    at = _epoch(data["at"], "at") if data.get("at") is not None else int(now)
    if op == "add":
        return {"ids": add_records(obj, int(data.get("count", 1)), at)}
    ids = [int(i) for i in data.get("ids") or []]
    if not ids:
        msg = f"{op} needs ids (a list of record ids)"
        raise ValueError(msg)
    unknown = [i for i in ids if not 0 <= i - obj.base_id < obj.count + obj.added]
    if unknown:
        msg = f"no {obj.stream} record has id {unknown[0]}"
        raise ValueError(msg)
    if op == "update":
        return {"ids": update_records(obj, ids, at)}
    if op == "delete":
        obj.delete(ids)
        return {"ids": ids}
    msg = f"op must be add, update or delete, not {op!r}"
    raise ValueError(msg)


def _overlay(obj: ObjectData) -> None:
    """Route the object's time fields through its overlay of changed times (once)."""
    if obj.overlaid:
        return
    obj.overlaid = True
    changed = obj.changed
    for name, (fn, lo, hi) in list(obj.times.items()):

        def timed(i: int, fn: t.Callable[[int], t.Any] = fn, name: str = name) -> t.Any:
            row = changed.get(i)
            return row[name] if row is not None and name in row else fn(i)

        obj.times[name] = (timed, lo, hi)
        for f in obj.fields:
            if f.name == name and f.kind == DATETIME:
                f.gen = timed


def add_records(obj: ObjectData, count: int, at: int) -> list[int]:
    """``count`` new records of ``obj``, created (and updated) at ``at``; their ids."""
    if not 1 <= count <= 100_000:
        msg = f"count must be 1 to 100000, not {count}"
        raise ValueError(msg)
    _overlay(obj)
    first = obj.count + obj.added
    for i in range(first, first + count):
        obj.changed[i] = dict.fromkeys(obj.times, at)
    obj.added += count
    return [obj.base_id + i for i in range(first, first + count)]


def update_records(obj: ObjectData, ids: list[int], at: int) -> list[int]:
    """Move the ``updated_at`` of these records of ``obj`` to ``at``; their ids."""
    if "updated_at" not in obj.times:
        msg = f"{obj.stream} has no updated_at: its records are not updated (add or delete them)"
        raise ValueError(msg)
    _overlay(obj)
    for record_id in ids:
        obj.changed.setdefault(record_id - obj.base_id, {})["updated_at"] = at
    return ids
