"""Creates that survive what a real account does differently.

A field the account does not have is dropped for the rest of the run (with one warning
naming it), and an argument refused under one documented spelling is sent under the other.
What one create learns shapes every later create of the run. A field the sync cannot do
without (``ExportSpec.protected``: the key, the replication key, the procedure's filter
field) is never dropped: its refusal is an error.
"""

from __future__ import annotations

import logging
import re
import threading
import typing as t

from tap_pardot_export.errors import CallBudgetSpent, DailyLimitReached, PardotAPIError, PardotAuthError

if t.TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from tap_pardot_export.pardot.exports import ExportSpec

LOGGER = logging.getLogger("tap-pardot-export")
#: creates retried after a refused field or argument spelling, at most (per export)
MAX_HEALS = 20
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: where an error message starts listing what is accepted
_ACCEPTED = re.compile(r"(?i)\b(?:allowed|valid (?:fields|values|names|arguments)|use one of|procedures:)")


def fields_named(message: str, fields: Sequence[str]) -> list[str]:
    """The requested ``fields`` an error message names as refused.

    Names after "Allowed" (or "valid ...", "use one of") list what is accepted, so they are
    ignored; then names after the last colon win, else names anywhere in the message.
    """
    message = _ACCEPTED.split(message, 1)[0]
    tail = message.rsplit(":", 1)[-1]
    for text in (tail, message):
        words = set(_NAME.findall(text))
        named = [f for f in fields if f in words]
        if named:
            return named
    return []


class CreateHealer:
    """What a run learned from refused creates: fields to leave out, argument spellings to use."""

    def __init__(self, spellings: Mapping[str, str], logger: logging.Logger | None = None) -> None:
        """Start with nothing learned; ``spellings`` maps an argument to its other documented spelling."""
        self.spellings = dict(spellings)
        self.logger = logger or LOGGER
        self.dropped: dict[str, list[str]] = {}  # API object -> fields the account lacks
        self.spelling: dict[tuple[str, str], dict[str, str]] = {}  # (object, procedure) -> renames
        self.refused: set[tuple[str, str, str]] = set()  # (object, procedure, argument) refused
        self._lock = threading.Lock()

    def apply(self, spec: ExportSpec) -> None:
        """Shape ``spec`` by what earlier creates taught (new lists: specs share theirs)."""
        with self._lock:
            dropped = set(self.dropped.get(spec.object, ()))
            renames = dict(self.spelling.get((spec.object, spec.procedure), {}))
        if dropped:
            spec.fields = [f for f in spec.fields if f not in dropped]
        if renames:
            spec.arguments = {renames.get(k, k): v for k, v in spec.arguments.items()}

    def heal(self, spec: ExportSpec, exc: PardotAPIError) -> bool:
        """Learn from a refused create; True when ``spec`` changed and the create may be retried.

        Raises a clear error when Pardot refuses a field the sync cannot do without.
        """
        if isinstance(exc, (PardotAuthError, DailyLimitReached, CallBudgetSpent)):
            return False
        if exc.status is not None and not 400 <= exc.status < 500:
            return False
        message = str(exc)
        return self._respell(spec, message) or self._drop(spec, message)

    def _respell(self, spec: ExportSpec, message: str) -> bool:
        named = fields_named(message, [a for a in spec.arguments if a in self.spellings])
        if not named:
            return False
        with self._lock:
            renames = self.spelling.setdefault((spec.object, spec.procedure), {})
            for arg in named:
                other = self.spellings[arg]
                self.refused.add((spec.object, spec.procedure, arg))
                if (spec.object, spec.procedure, other) in self.refused:
                    return False  # both spellings were refused: the error stands
                renames[arg] = other
                renames.pop(other, None)
        stream = spec.label.split(" ", 1)[0] or spec.object
        for arg in named:
            self.logger.warning(
                "%s: Pardot refused the argument %s of %s; sending it as %s (its other documented spelling) "
                "for the rest of the run.",
                stream,
                arg,
                spec.procedure,
                self.spellings[arg],
            )
        self.apply(spec)
        return True

    def _drop(self, spec: ExportSpec, message: str) -> bool:
        if "field" not in message.lower():
            return False
        named = fields_named(message, spec.fields)
        if not named:
            return False
        stream = spec.label.split(" ", 1)[0] or spec.object
        vital = [f for f in named if f in spec.protected]
        if vital:
            msg = (
                f"{stream}: Pardot refused the field(s) {', '.join(vital)}, which the sync cannot do without "
                f"({message}). Check api_url and api_version, and the API user's abilities for {spec.object}."
            )
            raise PardotAPIError(msg, code=None, status=None)
        with self._lock:
            known = self.dropped.setdefault(spec.object, [])
            new = [f for f in named if f not in known]
            known.extend(new)
        for name in new:
            self.logger.warning(
                "%s: this account has no field %r (Pardot refused it: %s). The tap leaves it out for the rest "
                "of the run; its values are null. To silence this warning, deselect %s.%s in the catalog.",
                stream,
                name,
                message,
                stream,
                name,
            )
        self.apply(spec)
        return True
