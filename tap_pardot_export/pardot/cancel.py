"""Canceling an export on the signal path: one try, no lock, no slot, no refresh, bounded in time.

Called from the shutdown watchdog while the main thread may hold the client's slots or its
token lock, so it uses the access token as it is, a session of its own and a worker thread
joined for at most ``timeout`` seconds.
"""

from __future__ import annotations

import logging
import threading
import typing as t

from tap_pardot_export.pardot.answers import is_error_envelope
from tap_pardot_export.pardot.transport import json_or_none, make_session
from tap_pardot_export.pardot.urls import check_url, env_proxies

if t.TYPE_CHECKING:
    from tap_pardot_export.pardot.client import PardotClient

LOGGER = logging.getLogger("tap-pardot-export")


def cancel_now(client: PardotClient, export_id: int, timeout: float = 5.0) -> bool:
    """Cancel ``export_id`` within ``timeout`` seconds whatever the main thread holds; True when confirmed.

    Never raises; logs one line.
    """
    outcome: list[bool] = []
    worker = threading.Thread(target=_cancel_once, args=(client, export_id, timeout, outcome), daemon=True)
    try:
        worker.start()
        worker.join(timeout)
    except Exception:  # noqa: BLE001 - documented: never raises (it runs inside a signal's shutdown)
        outcome = []
    ok = bool(outcome and outcome[0])
    LOGGER.warning("Cancel of export %s on interrupt: %s", export_id, "done" if ok else "not confirmed")
    return ok


def _cancel_once(client: PardotClient, export_id: int, timeout: float, outcome: list[bool]) -> None:
    try:
        token = client.tokens.current
        url = client.url(f"cancel/id/{int(export_id)}")
        if not token:
            outcome.append(False)
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
            outcome.append(resp.status_code == 200 and not is_error_envelope(json_or_none(resp)))
    except Exception:  # noqa: BLE001 - a worker thread: any failure means "not confirmed"
        outcome.append(False)
