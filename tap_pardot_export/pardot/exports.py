"""Exports as Pardot describes them: what to export, what the run learned of each, the answers' shapes.

An export object arrives wrapped (``{"export": {...}}``, with or without ``@attributes``) or
bare, its result links under ``resultRefs`` or the old spelling ``resultsRef``, as one URL or
a list. :func:`unwrap_export` and :func:`result_refs` accept every shape seen and refuse
anything else with a message naming the call; a file listed under several spellings of its
link is listed once. :class:`InFlight` is the one record of the run's exports not yet read to
the end: the signal path cancels what it lists. :class:`Bindings` binds each export id of the
run to the one request (query) it answers: an id answering for another request is refused.
"""

from __future__ import annotations

import hashlib
import re
import threading
import typing as t
from dataclasses import dataclass, field

import orjson

from tap_pardot_export.errors import ExportError, ResultFormatError
from tap_pardot_export.pardot.urls import link_key

STATES = ("Waiting", "Processing", "Complete", "Failed", "Canceled")
EXPORT_ID = re.compile(r"[0-9]{1,18}")


@dataclass
class ExportSpec:
    """What to export: the API object, fields and procedure with its arguments."""

    object: str
    fields: list[str]
    procedure: str
    arguments: dict[str, t.Any]
    label: str = ""
    #: fields the sync cannot do without (never dropped when Pardot refuses them)
    protected: frozenset[str] = frozenset({"id"})
    #: the request it is: a digest of the create's body as first asked (healing drops fields, respells
    #: arguments, but the export answers the same request)
    request: str = field(init=False, default="")

    def __post_init__(self) -> None:
        """Fix the request's digest before any healing."""
        self.request = request_digest(self.body())

    def body(self) -> dict[str, t.Any]:
        """The create call's JSON body."""
        return {
            "object": self.object,
            "fields": self.fields,
            "procedure": {"name": self.procedure, "arguments": self.arguments},
        }


@dataclass
class ExportInfo:
    """What a run learned about one export."""

    id: int
    created_at: str | None = None  # as Pardot wrote it, in the API user's zone
    requested_at: float = 0.0  # our clock when the create call was sent
    created_mono: float = 0.0  # the monotonic clock at its creation (or reuse) in this run
    waited: float = 0.0
    files: int = 0
    rows: int = 0
    states: list[str] = field(default_factory=list)
    #: a result file of it cannot be read (a malformed row or header, stored so in Pardot): a rerun must
    #: create the export again rather than reuse it until it expires
    spoiled: bool = False


def request_digest(body: dict[str, t.Any]) -> str:
    """The digest naming a create's body (state keeps it as an export's ``query``)."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def export_id(value: t.Any, what: str) -> int:
    """An export id from an answer: a positive integer (or its decimal string), else ResultFormatError."""
    if isinstance(value, str) and EXPORT_ID.fullmatch(value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        msg = (
            f"{what}: Pardot's answer has an export id that is not a positive integer ({str(value)[:40]!r}). "
            "Pardot may have changed its API; please report this."
        )
        raise ResultFormatError(msg)
    return value


def unwrap_export(body: t.Any, what: str, expect_id: int | None = None) -> dict[str, t.Any]:
    """The export object from any of the answer shapes seen in the wild, its id, state and shape checked.

    Args:
        body: the decoded JSON answer.
        what: the call, for messages.
        expect_id: the export asked about, when the call named one.

    Raises:
        ResultFormatError: no export object, an id that is not a positive integer, an unknown
            state, or another export than the one asked about.
    """
    export = body.get("export", body) if isinstance(body, dict) else None
    if isinstance(export, list) and len(export) == 1:
        export = export[0]
    if not isinstance(export, dict) or "id" not in export or "state" not in export:
        msg = f"{what}: Pardot's answer has no export object with an id and a state: {str(body)[:200]!r}"
        raise ResultFormatError(msg)
    export = {**export, "id": export_id(export["id"], what)}
    if export["state"] not in STATES:
        msg = (
            f"{what}: export {export['id']} is in a state the tap does not know ({str(export['state'])[:40]!r}). "
            "Pardot may have changed its API; please report this."
        )
        raise ResultFormatError(msg)
    if expect_id is not None and export["id"] != expect_id:
        msg = f"{what}: Pardot answered about export {export['id']}, not the one asked for. Please report this."
        raise ResultFormatError(msg)
    if not isinstance(export.get("createdAt"), str):
        export["createdAt"] = None  # an unknown form: the offset is not inferred from it
    return export


def result_refs(export: dict[str, t.Any]) -> list[str]:
    """``resultRefs`` (or the old spelling ``resultsRef``): absent, one URL, or a list; each file once.

    Links are opaque: each is kept as given, but two that RFC 3986 normalization makes
    equivalent (:func:`~tap_pardot_export.pardot.urls.link_key`) are one file, listed once
    (the first spelling). An empty link names no file.
    """
    refs = export.get("resultRefs", export.get("resultsRef"))
    if isinstance(refs, str):
        refs = [refs]
    if refs is None:
        return []
    if isinstance(refs, list) and all(isinstance(r, str) for r in refs):
        files: dict[str, str] = {}
        for ref in refs:
            if ref.strip():
                files.setdefault(link_key(ref), ref)
        return list(files.values())
    msg = f"Export {export.get('id')}: resultRefs is neither a URL nor a list of URLs: {str(refs)[:200]!r}"
    raise ResultFormatError(msg)


def is_true(value: t.Any) -> bool:
    """Whether an answer's flag is true (``true``, ``"true"``, ``1``, ``"1"``)."""
    return value is True or str(value).lower() in ("true", "1")


class InFlight:
    """The run's exports in flight (created or reused, not yet read to the end), by id.

    Written by the main thread and the download threads, read by the signal watchdog: every
    access holds a lock that is never held while anything else is awaited.
    """

    def __init__(self) -> None:
        """Nothing in flight yet."""
        self._lock = threading.Lock()
        self._labels: dict[int, str] = {}
        self._complete: set[int] = set()

    def add(self, export_id: int, label: str) -> None:
        """``export_id`` is ours and not read to the end yet."""
        with self._lock:
            self._labels[export_id] = label

    def complete(self, export_id: int) -> None:
        """``export_id`` is Complete: it cannot be canceled (nor needs to be)."""
        with self._lock:
            self._complete.add(export_id)

    def discard(self, export_id: int) -> None:
        """``export_id`` is read to the end, canceled or given up."""
        with self._lock:
            self._labels.pop(export_id, None)
            self._complete.discard(export_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._labels)

    def __contains__(self, export_id: object) -> bool:
        with self._lock:
            return export_id in self._labels

    def snapshot(self) -> tuple[list[int], list[int]]:
        """``(cancelable, complete)``: the ids in flight, in the order they were added."""
        with self._lock:
            ids = list(self._labels)
            return [i for i in ids if i not in self._complete], [i for i in ids if i in self._complete]


class Bindings:
    """Each export id of the run, bound to the one request (the digest of its create) it answers.

    An export answers one query: an id that a create (or a state) gives for another request
    than the one it is bound to would have the tap read one window's rows as another's, and
    lose the other's. Ids recorded in the run's state are bound before any call.
    """

    def __init__(self) -> None:
        """No id bound yet."""
        self._lock = threading.Lock()
        self._bound: dict[int, tuple[str, str]] = {}

    def other(self, export_id: int, request: str) -> str | None:
        """Where ``export_id`` is bound when that is another request than ``request``, else None."""
        with self._lock:
            bound = self._bound.get(export_id)
        return bound[1] if bound is not None and bound[0] != request else None

    def bind(self, export_id: int, request: str, where: str) -> None:
        """Bind ``export_id`` to ``request`` (used at ``where``), unless it is bound to another one.

        Raises:
            ExportError: the id is bound to another request of this run.
        """
        with self._lock:
            bound = self._bound.setdefault(export_id, (request, where))
        if bound[0] != request:
            msg = (
                f"{where}: Pardot answered the create with export {export_id}, which this run already reads for "
                f"another request ({bound[1]}). An export answers one query: reading it here would emit the "
                "other window's rows as this one's and lose this one's. None of its rows was read for this "
                "window and its bookmark did not move; rerun, and report it if it persists (something between "
                "the tap and Pardot, such as a proxy caching POST answers, may replay answers)."
            )
            raise ExportError(msg)
