"""The HTTP layer: authentication, retries, the concurrency limit and the call budget.

One :class:`PardotClient` serves every stream of a run, so the in-flight limit and the call
count are per business unit, as Pardot counts them. It knows HTTP and Pardot's error codes,
nothing of Singer.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import random
import re
import threading
import time
import typing as t
import urllib.parse

import requests

from tap_pardot_export.errors import (
    CallBudgetSpent,
    DailyLimitReached,
    PardotAPIError,
    PardotAuthError,
    PardotConfigError,
    TransientError,
)

if t.TYPE_CHECKING:
    from collections.abc import Callable

LOGGER = logging.getLogger("tap-pardot-export")
USER_AGENT = "tap-pardot-export/0.1"
TRANSIENT_STATUS = frozenset({408, 425, 500, 502, 503, 504})
#: codes that ask the client to come back later
RETRY_CODES = frozenset({66})
AUTH_CODES = frozenset({184})
VERSION_CODES = {88: 4, 89: 3}
XML_ERROR = re.compile(r'<err\s+code="(\d+)"\s*>(.*?)</err>', re.S)


def redact_url(url: str) -> str:
    """A URL fit for logs: scheme, host and path only."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def host_of(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def parse_error(response: requests.Response) -> tuple[int | None, str]:
    """Pardot's error envelope: ``(err_code, message)``; ``(None, text)`` when it is not one."""
    try:
        body = response.json()
    except ValueError:
        text = response.text[:500]
        m = XML_ERROR.search(text)  # the API answers XML where format=json is not in the URL
        if m:
            return int(m.group(1)), m.group(2).strip()
        text = text[:200].strip().replace("\n", " ")
        return None, text or response.reason or ""
    if isinstance(body, dict):
        attrs = body.get("@attributes") or {}
        code = attrs.get("err_code") if isinstance(attrs, dict) else None
        message = body.get("err") or body.get("error_description") or body.get("error") or ""
        try:
            return (int(code) if code is not None else None), str(message)
        except (TypeError, ValueError):
            return None, str(message)
    return None, str(body)[:200]


class TokenManager:
    """Holds the access token and refreshes it, one refresh at a time.

    Salesforce answers without ``expires_in``: a token is used until the API rejects it.
    """

    def __init__(
        self,
        session: requests.Session,
        *,
        login_url: str,
        client_id: str | None,
        client_secret: str | None,
        refresh_token: str | None,
        access_token: str | None,
        timeout: float,
        max_tries: int = 5,
        on_call: Callable[[str], None] | None = None,
    ) -> None:
        self.session = session
        self.token_url = login_url.rstrip("/") + "/services/oauth2/token"
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self._token = access_token
        self.timeout = timeout
        self.max_tries = max_tries
        self.on_call = on_call
        self._lock = threading.Lock()
        self.refreshes = 0

    @property
    def can_refresh(self) -> bool:
        return bool(self.client_id and self.client_secret)

    def secrets(self) -> list[str]:
        """Everything that must never be printed."""
        return [s for s in (self.client_secret, self.refresh_token, self._token) if s]

    def token(self) -> str:
        with self._lock:
            if self._token is None:
                self._fetch()
            assert self._token is not None
            return self._token

    def refresh(self, rejected: str) -> str:
        """Get a new token, unless another thread already replaced ``rejected``."""
        with self._lock:
            if self._token is not None and self._token != rejected:
                return self._token
            if not self.can_refresh:
                msg = (
                    "Pardot rejected the access_token (expired or revoked). Set client_id, client_secret and "
                    "refresh_token so the tap can refresh it, or provide a fresh access_token."
                )
                raise PardotAuthError(msg, code=184)
            self._fetch()
            assert self._token is not None
            return self._token

    def _fetch(self) -> None:
        if not self.can_refresh:
            msg = "No credentials: set access_token, or client_id + client_secret + refresh_token."
            raise PardotConfigError(msg)
        form = {"client_id": self.client_id, "client_secret": self.client_secret}
        if self.refresh_token:
            form.update(grant_type="refresh_token", refresh_token=self.refresh_token)
        else:
            form["grant_type"] = "client_credentials"
        delay = 1.0
        for attempt in range(1, self.max_tries + 1):
            try:
                if self.on_call:
                    self.on_call("token")
                resp = self.session.post(self.token_url, data=form, timeout=self.timeout)
            except requests.RequestException as exc:
                problem = f"could not reach {redact_url(self.token_url)} ({type(exc).__name__})"
            else:
                if resp.status_code == 200:
                    try:
                        token = resp.json()["access_token"]
                    except (ValueError, KeyError, TypeError):
                        problem = "the token endpoint answered 200 without an access_token"
                    else:
                        self._token = str(token)
                        self.refreshes += 1
                        LOGGER.info("Obtained a Salesforce access token from %s", redact_url(self.token_url))
                        return
                elif resp.status_code in TRANSIENT_STATUS or resp.status_code == 429:
                    problem = f"the token endpoint answered HTTP {resp.status_code}"
                else:
                    err = ""
                    try:
                        body = resp.json()
                        err = f"{body.get('error', '')}: {body.get('error_description', '')}".strip(": ")
                    except ValueError:
                        err = f"HTTP {resp.status_code}"
                    msg = (
                        f"Salesforce refused the OAuth {form['grant_type']} grant at {redact_url(self.token_url)} "
                        f"({err or resp.status_code}). The credentials must be renewed: check client_id, "
                        "client_secret and refresh_token (and login_url: https://test.salesforce.com for "
                        "Salesforce sandboxes, or your My Domain)."
                    )
                    raise PardotAuthError(msg, status=resp.status_code)
            if attempt == self.max_tries:
                msg = f"Could not obtain an access token: {problem} after {attempt} tries."
                raise PardotAuthError(msg)
            LOGGER.warning("Token request failed: %s; retrying in %.1fs", problem, delay)
            time.sleep(delay)
            delay = min(delay * 2, 30)


class PardotClient:
    """Calls to the Export API with auth, retries, a concurrency cap and a call budget."""

    def __init__(
        self,
        *,
        api_url: str,
        business_unit_id: str,
        api_version: int,
        tokens: TokenManager,
        session: requests.Session,
        max_concurrency: int = 2,
        max_retries: int = 8,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        timeout: float = 300.0,
        max_api_calls: int | None = None,
        zone: dt.tzinfo | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.business_unit_id = business_unit_id
        self.api_version = api_version
        self._version_switched = False
        self.tokens = tokens
        self.session = session
        self.slots = threading.BoundedSemaphore(max(1, max_concurrency))
        self.max_concurrency = max(1, max_concurrency)
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.timeout = timeout
        self.max_api_calls = max_api_calls
        self.calls: collections.Counter[str] = collections.Counter()
        self._count_lock = threading.Lock()
        self.allowed_hosts = {host_of(self.api_url)}
        self.zone = zone

    # -- bookkeeping -------------------------------------------------------------------

    @property
    def api_calls(self) -> int:
        """API calls spent (token requests excluded: they do not count against Pardot's limit)."""
        with self._count_lock:
            return sum(v for k, v in self.calls.items() if k != "token")

    def count(self, kind: str) -> None:
        with self._count_lock:
            self.calls[kind] += 1

    def budget_left(self) -> int | None:
        if self.max_api_calls is None:
            return None
        return self.max_api_calls - self.api_calls

    # -- URLs ---------------------------------------------------------------------------

    def url(self, op: str) -> str:
        return f"{self.api_url}/api/export/version/{self.api_version}/do/{op}"

    def check_host(self, url: str) -> None:
        """Refuse to send credentials anywhere but the configured API host."""
        if host_of(url) not in self.allowed_hosts:
            msg = (
                f"Refusing to download {redact_url(url)}: it is not on the configured api_url host "
                f"({self.api_url}), and the tap sends credentials only there. If Pardot moved your "
                "business unit, set api_url to the new host."
            )
            raise PardotAPIError(msg)

    # -- requests -----------------------------------------------------------------------

    def _wait(self, attempt: int, retry_after: float | None) -> float:
        delay = min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1)))
        delay = random.uniform(delay / 2, delay)  # jitter: instances sharing the limit spread out
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max * 5))
        return delay

    def request(
        self,
        method: str,
        op: str,
        kind: str,
        *,
        url: str | None = None,
        json_body: t.Any = None,
        params: dict[str, str] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """Send one API call, retrying what a retry can fix.

        ``op`` is the path after ``/do/`` (ignored when ``url`` is given); ``kind`` names the
        call for the counters (create, read, query, cancel, download).
        """
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            target = url or self.url(op)
            self.check_host(target)
            left = self.budget_left()
            if left is not None and left <= 0:
                msg = (
                    f"The run's API call budget (max_api_calls={self.max_api_calls}) is spent. State is "
                    "saved; the next run resumes from it. Raise max_api_calls to do more per run."
                )
                raise CallBudgetSpent(msg)
            token = self.tokens.token()
            headers = {
                "Authorization": f"Bearer {token}",
                "Pardot-Business-Unit-Id": self.business_unit_id,
                "User-Agent": USER_AGENT,
            }
            q = {"format": "json", **(params or {})}
            try:
                with self.slots:
                    self.count(kind)
                    resp = self.session.request(
                        method,
                        target,
                        params=None if url else q,
                        json=json_body,
                        headers=headers,
                        timeout=self.timeout,
                        stream=stream,
                        allow_redirects=False,
                    )
                    if stream and resp.status_code == 200:
                        return resp  # the caller reads the body under a slot of its own
                    _ = resp.content  # read the body while holding the slot
            except requests.RequestException as exc:
                self._retry_or_raise(attempt, TransientError(f"{type(exc).__name__} on {kind}"), kind, target)
                continue
            status = resp.status_code
            if 200 <= status < 300:
                if stream:
                    return resp
                try:
                    resp.json()
                except ValueError:
                    snippet = resp.text[:120].strip().replace("\n", " ")
                    err = TransientError(f"a body that is not JSON (HTTP {status}: {snippet!r})")
                    self._retry_or_raise(attempt, err, kind, target)
                    continue
                return resp
            code, message = parse_error(resp)
            if status == 401 or code in AUTH_CODES:
                if refreshed and attempt > 2:
                    msg = (
                        f"Pardot keeps rejecting fresh access tokens (error {code or status}: {message}). "
                        "Check that the connected app has the pardot_api scope and the user can access "
                        "this business unit."
                    )
                    raise PardotAuthError(msg, code=code, status=status)
                LOGGER.info("Access token rejected (error %s); refreshing it", code or status)
                self.tokens.refresh(token)
                refreshed = True
                continue
            if code == 122:
                msg = (
                    f"Pardot's daily API call limit is spent (error 122). It resets {self._reset_time()}; "
                    "the state emitted so far is safe to resume from. Rerun after the reset, or spread "
                    f"syncs out. Server said: {message}"
                )
                raise DailyLimitReached(msg, code=code, status=status)
            if code in VERSION_CODES and not self._version_switched:
                new = VERSION_CODES[code]
                LOGGER.warning(
                    "Pardot says this business unit needs API version %s (error %s); switching from %s. "
                    "Set api_version=%s to skip this.",
                    new,
                    code,
                    self.api_version,
                    new,
                )
                self.api_version = new
                self._version_switched = True
                if url is not None:
                    url = url.replace("/version/3/", f"/version/{new}/").replace("/version/4/", f"/version/{new}/")
                attempt -= 1
                continue
            if code in RETRY_CODES or (code is None and (status in TRANSIENT_STATUS or status == 429)) or status >= 500:
                retry_after = _retry_after(resp)
                self._retry_or_raise(
                    attempt, TransientError(f"HTTP {status} error {code}: {message}", retry_after), kind, target
                )
                continue
            raise self._fatal(code, status, message, kind)

    def _reset_time(self) -> str:
        """When the daily limit resets: midnight in the account's zone (the user's, as configured)."""
        if self.zone is None:
            return "at midnight in the account's time zone (set timezone to get the exact time)"
        now = dt.datetime.now(self.zone)
        midnight = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        left = midnight - now
        hours, rest = divmod(int(left.total_seconds()), 3600)
        return f"at {midnight:%Y-%m-%d %H:%M} {self.zone} (in {hours}h{rest // 60:02d}m)"

    def _retry_or_raise(self, attempt: int, err: TransientError, kind: str, url: str) -> None:
        if attempt > self.max_retries:
            msg = (
                f"Giving up on {kind} {redact_url(url)} after {attempt} tries: {err}. Pardot or the network "
                "is failing; rerun later (state is saved)."
            )
            raise PardotAPIError(msg) from None
        delay = self._wait(attempt, err.retry_after)
        LOGGER.warning("%s failed (%s); retry %d/%d in %.1fs", kind, err, attempt, self.max_retries, delay)
        time.sleep(delay)

    def _fatal(self, code: int | None, status: int, message: str, kind: str) -> Exception:
        if code == 181:
            text = "the Pardot-Business-Unit-Id header is missing: set business_unit_id"
        elif code == 182:
            text = (
                "business_unit_id is malformed: it is 18 characters and starts with 0Uv (Setup > Pardot Account Setup)"
            )
        elif code == 201:
            other = "https://pi.pardot.com" if "demo" in self.api_url else "https://pi.demo.pardot.com"
            text = (
                f"Pardot does not know business_unit_id on {self.api_url}. Check the id; a sandbox or demo "
                f"business unit lives on another host: try api_url={other}"
            )
        elif code in (46, 49):
            text = (
                "the API user lacks an ability this export needs (see the README's abilities table, e.g. "
                "Prospects > Visitors > View, Admin > Exports > View)"
            )
        else:
            text = "the request was refused"
        if code in (181, 182, 201):
            return PardotConfigError(f"{text} (error {code}: {message})")
        return PardotAPIError(
            f"{kind} failed: {text} (HTTP {status}, error {code}: {message})", code=code, status=status
        )

    def download(self, url: str, dest: t.BinaryIO, *, max_tries: int = 5) -> int:
        """Stream a result file into ``dest``; a body cut off midway is fetched again whole.

        Holds a concurrency slot for the whole body, not only the headers. Returns the bytes
        written.
        """
        for attempt in range(1, max_tries + 1):
            dest.seek(0)
            dest.truncate()
            written = 0
            try:
                resp = self.request("GET", "", "download", url=url, stream=True)
                with self.slots, resp:
                    for chunk in resp.iter_content(chunk_size=1 << 20):
                        dest.write(chunk)
                        written += len(chunk)
                return written
            except (
                requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ConnectionError,
                requests.exceptions.Timeout,
            ) as exc:
                if attempt == max_tries:
                    msg = (
                        f"Download of {redact_url(url)} was cut off {attempt} times ({type(exc).__name__}); "
                        "the network or Pardot is failing. Rerun later: state is saved."
                    )
                    raise PardotAPIError(msg) from None
                delay = self._wait(attempt, None)
                LOGGER.warning(
                    "Download of %s cut off after %d bytes (%s); fetching it again in %.1fs",
                    redact_url(url),
                    written,
                    type(exc).__name__,
                    delay,
                )
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def json(self, method: str, op: str, kind: str, **kw: t.Any) -> t.Any:
        resp = self.request(method, op, kind, **kw)
        try:
            return resp.json()
        except ValueError as exc:  # pragma: no cover - request() checks
            msg = f"{kind}: Pardot answered with a body that is not JSON"
            raise PardotAPIError(msg) from exc


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
