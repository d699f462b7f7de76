"""The business unit's daily API allowance, read from the v5 account object, and the reserve the run leaves.

Pardot's allowance (``maximumDailyApiCalls``, 25,000 to 100,000 calls by edition) is shared by
every integration of the business unit and resets at midnight in the account's time zone.
At the start of a sync the tap reads it once (one call: ``apiCallsUsed``, that call included)
and caps the run at what it leaves above ``api_call_reserve`` (a fraction of the allowance kept
for the other integrations): :meth:`Allowance.room`.

The figure is a snapshot: other integrations spend calls during the run too, and the reserve
counts only this run's calls against it. Reading it again would cost a call each time and
still lag behind them; the reserve is what absorbs their calls, and Pardot's own error 122
remains the hard stop. The run's end line says so: the start figure plus this run's calls.

An account that cannot say (the API user lacks the ability, a business unit or host without the
v5 account object, an answer without the figures, a server fault) gets one warning: the run goes
on under ``max_api_calls`` alone. Errors every other call would meet too (dead credentials, the
daily limit, a stop) propagate as from any call; a wrong host is left for the next call to name.
"""

from __future__ import annotations

import dataclasses
import math
import typing as t

from singer_sdk.exceptions import RetriableAPIError

from tap_pardot_export.errors import (
    CallBudgetSpent,
    DailyLimitReached,
    PardotAPIError,
    PardotAuthError,
    StdoutClosed,
)
from tap_pardot_export.pardot.client import Call
from tap_pardot_export.pardot.retry import Interrupted
from tap_pardot_export.pardot.v5 import url_of

if t.TYPE_CHECKING:
    import logging

    from tap_pardot_export.pardot.client import PardotClient

#: the setting, as messages name it
SETTING = "api_call_reserve"
#: the account object's fields the allowance is read from
FIELDS = ("maximumDailyApiCalls", "apiCallsUsed")
#: the ability the account object needs (Pardot's name for it)
ABILITY = "Admin > Account Settings > View"
#: Pardot's codes for an ability the API user lacks
REFUSED = frozenset({46, 49})
#: errors of the account read that every other call would meet too: they end the run as from any call. A
#: host that does not answer the v5 path as Pardot would (FirstContactError, RefusedURLError) is left to the
#: run's next call to judge: a host without the v5 API still serves the Export API
PROPAGATE = (DailyLimitReached, PardotAuthError, StdoutClosed, CallBudgetSpent, Interrupted)


class AllowanceUnknown(Exception):
    """The account object did not say the business unit's daily allowance; the message says why."""


@dataclasses.dataclass(frozen=True)
class Allowance:
    """The business unit's daily allowance as read once, and the reserve the run leaves in it."""

    #: ``maximumDailyApiCalls``
    limit: int
    #: ``apiCallsUsed`` when read (the read itself included)
    used: int
    #: ``api_call_reserve``: the fraction of ``limit`` kept for the other integrations
    fraction: float

    @property
    def left(self) -> int:
        """Calls left today when read."""
        return max(self.limit - self.used, 0)

    @property
    def reserve(self) -> int:
        """Calls kept for the other integrations."""
        return math.ceil(self.limit * self.fraction)

    @property
    def room(self) -> int:
        """Calls the run may spend from the read on before the calls left drop under the reserve."""
        return max(self.left - self.reserve, 0)

    def figures(self, spent: int = 0) -> str:
        """Used, limit, left and reserve in words, ``spent`` more calls after the read."""
        used = self.used + spent
        left = max(self.limit - used, 0)
        return f"used {used:,} of {self.limit:,}, {left:,} left, reserve {self.reserve:,} ({SETTING}={self.fraction:g})"

    def reason(self) -> str:
        """The cap it sets, in words (messages put it before "leaves N calls" or "allows no more")."""
        return (
            f"{SETTING}={self.fraction:g} (the business unit's daily allowance keeps {self.reserve:,} of its "
            f"{self.limit:,} calls for other integrations)"
        )


def read_allowance(client: PardotClient, fraction: float) -> Allowance:
    """The business unit's allowance, from the v5 account object: one API call.

    Raises:
        AllowanceUnknown: the account object did not say it (refused, unknown, an answer without the figures).
    """
    url = url_of(client, "account", [("fields", ",".join(FIELDS))])
    try:
        body = client.request(Call("GET", "", "account_v5", url=url)).json()
    except PROPAGATE:
        raise
    except (PardotAPIError, RetriableAPIError) as exc:
        code = getattr(exc, "code", None)
        if code in REFUSED:
            status = getattr(exc, "status", None)
            msg = f"Pardot refused it with error {code} (HTTP {status}): the API user lacks {ABILITY}"
            raise AllowanceUnknown(msg) from None
        raise AllowanceUnknown(str(exc).split("\n", 1)[0]) from None
    except ValueError:  # pragma: no cover - the answer was classified as JSON
        body = None
    if not isinstance(body, dict):
        msg = f"the account object answered something that is not a record: {str(body)[:100]!r}"
        raise AllowanceUnknown(msg)
    limit, used = body.get(FIELDS[0]), body.get(FIELDS[1])
    if not _count(limit) or not _count(used) or limit <= 0:
        msg = f"the account object answered no usable call figures ({FIELDS[0]}={limit!r}, {FIELDS[1]}={used!r})"
        raise AllowanceUnknown(msg)
    return Allowance(limit=limit, used=used, fraction=fraction)


def _count(value: t.Any) -> t.TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def apply_allowance(client: PardotClient, fraction: float, logger: logging.Logger) -> Allowance | None:
    """At the start of a sync: read the allowance, log it and cap the run's calls above the reserve.

    Returns the allowance; None (with one warning) when the account did not say it: the run
    goes on under ``max_api_calls`` alone.
    """
    try:
        allowance = read_allowance(client, fraction)
    except AllowanceUnknown as exc:
        logger.warning(
            "The business unit's daily API allowance could not be read from the v5 account object (%s): "
            "this run does not keep %s for other integrations, only max_api_calls caps it. To have it read, "
            "give the API user %s (where the business unit has the v5 API).",
            exc,
            SETTING,
            ABILITY,
        )
        return None
    budget = client.budget
    lowered = budget.limit(
        allowance.room,
        SETTING,
        allowance.reason(),
        f"The allowance resets {client.reset_time()}; lower {SETTING} to spend more of it today.",
    )
    cap = budget.reason if not lowered else f"{SETTING}: {allowance.room:,} call(s) for this run"
    logger.info("API calls today: %s; this run's cap: %s", allowance.figures(), cap)
    return allowance
