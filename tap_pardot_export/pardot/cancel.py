"""Canceling an export on the signal path: one try, no lock, no slot, no refresh, bounded in time.

Called from the shutdown watchdog while the main thread may hold the client's slots or its
token lock, so it uses the access token as it is, a session of its own and a worker thread
joined for at most ``timeout`` seconds.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import typing as t

import requests

from tap_pardot_export.pardot.answers import envelope, is_error_envelope, xml_envelope
from tap_pardot_export.pardot.transport import make_session
from tap_pardot_export.pardot.urls import check_url, env_proxies

if t.TYPE_CHECKING:
    from tap_pardot_export.pardot.client import PardotClient

#: Pardot's code for a call the export's state forbids (canceling one already Complete, Failed or Canceled)
STATE_FORBIDS = 178
#: an ended export's state, as Pardot's refusal names it
_ENDED = re.compile(r"\b(Complete|Failed|Canceled|Cancelled|Expired)\b", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class CancelOutcome:
    """What one cancel came to: ``canceled``, and what happened in words (for a log line or a note)."""

    canceled: bool
    says: str
    #: the server answered (a refusal included); False: no answer within the time, or no request sent
    answered: bool = True


def cancel_now(client: PardotClient, export_id: int, timeout: float = 5.0) -> CancelOutcome:
    """Cancel ``export_id`` within ``timeout`` seconds whatever the main thread holds.

    Never raises and logs nothing: the caller says what the outcome means where it happened.
    """
    outcome: list[CancelOutcome] = []
    worker = threading.Thread(target=_cancel_once, args=(client, export_id, timeout, outcome), daemon=True)
    try:
        worker.start()
        worker.join(timeout)
    except Exception:  # noqa: BLE001 - documented: never raises (it runs inside a signal's shutdown)
        return CancelOutcome(canceled=False, says="not sent (the worker could not start)", answered=False)
    if not outcome:
        return CancelOutcome(canceled=False, says=f"no answer within {timeout:g}s", answered=False)
    return outcome[0]


def _cancel_once(client: PardotClient, export_id: int, timeout: float, outcome: list[CancelOutcome]) -> None:
    try:
        token = client.tokens.current
        url = client.url(f"cancel/id/{int(export_id)}")
        if not token:
            outcome.append(CancelOutcome(canceled=False, says="not sent (no access token yet)", answered=False))
            return
        check_url(url, "api_url")
        client.budget.count_unlocked("cancel")  # the main thread may hold the budget's lock
        headers = {"Authorization": f"Bearer {token}", "Pardot-Business-Unit-Id": client.business_unit_id}
        with make_session() as session:
            resp = session.post(
                url,
                params={"format": "json"},
                headers=headers,
                timeout=(timeout, timeout),
                allow_redirects=False,
                proxies=env_proxies(url),
            )
            outcome.append(read_cancel_answer(resp.status_code, resp.text))
    except requests.Timeout:
        outcome.append(CancelOutcome(canceled=False, says=f"no answer within {timeout:g}s", answered=False))
    except Exception as exc:  # noqa: BLE001 - a worker thread: any failure is an outcome, never raised
        outcome.append(CancelOutcome(canceled=False, says=f"not confirmed ({type(exc).__name__})", answered=False))


def read_cancel_answer(status: int, text: str) -> CancelOutcome:
    """What a cancel's answer says: canceled; already ended (nothing to cancel); or refused, with Pardot's words."""
    try:
        body: t.Any = json.loads(text)
    except ValueError:
        body = None
    if status == 200 and not is_error_envelope(body):
        return CancelOutcome(canceled=True, says="canceled")
    code, message = envelope(body) if body is not None else (xml_envelope(text) or (None, text.strip()[:200]))
    ended = _ENDED.search(message)
    if code == STATE_FORBIDS or ended:
        state = ended.group(1).capitalize() if ended else "ended"
        return CancelOutcome(canceled=False, says=f"already {state}: nothing to cancel")
    said = f"error {code}: {message}" if code is not None else (message or "no body")
    return CancelOutcome(canceled=False, says=f"refused (HTTP {status}, {said})")
