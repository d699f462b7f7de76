"""Salesforce OAuth for Pardot: a thin subclass of the SDK's ``OAuthAuthenticator``.

It posts the grant through the run's own transport (its session, no redirect followed, the
retry policy of every other call), refreshes one thread at a time, and tells dead
credentials from a ``login_url`` that is not a Salesforce token endpoint. Salesforce answers
without ``expires_in``: a token is used until the API rejects it, then refreshed once.

Runs side by side (several business units under one connected app and API user) share one
refresh token, and Salesforce may refuse concurrent refreshes of one refresh token: a refresh
holds a lock file beside the export record (``record_dir/token-<hash>.lock``, the hash of the
client id and refresh token, which reveals neither), so the processes sharing a refresh token
refresh one at a time, and those with other tokens do not wait on them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import logging
import re
import threading
import typing as t
import urllib.parse

from singer_sdk.authenticators import OAuthAuthenticator
from typing_extensions import override

from tap_pardot_export.errors import PardotAuthError, PardotConfigError, TransientError
from tap_pardot_export.locks import LockTimeout, held
from tap_pardot_export.pardot.answers import TRANSIENT_STATUS, Body, Verdict, classify
from tap_pardot_export.pardot.transport import retry_after
from tap_pardot_export.redact import scrub_answer

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    import requests

LOGGER = logging.getLogger("tap-pardot-export")
#: what an access token may hold to travel in an HTTP header (visible ASCII, no spaces)
TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")
#: servers refuse request headers past 8 KiB (HTTP 431); Salesforce's access tokens are about 100 characters
MAX_TOKEN_CHARS = 8192
#: how long a refresh waits for another process refreshing the same refresh token (a refresh takes a
#: second or two; a holder this long is stuck in the token endpoint's retries)
REFRESH_LOCK_WAIT = 120.0
#: lock folders already warned about (one warning per process, however many clients it makes)
_UNLOCKED_WARNED: set[str] = set()


def refresh_lock_path(folder: Path | None, credentials: Credentials) -> Path | None:
    """The lock file of ``credentials``' refresh token in ``folder``; None without a refresh token.

    Named by a hash prefix of the client id and refresh token: processes sharing them share the
    file, and the name reveals neither.
    """
    if folder is None or not credentials.refresh_token:
        return None
    material = f"tap-pardot-export token lock\0{credentials.client_id or ''}\0{credentials.refresh_token}"
    return folder / f"token-{hashlib.sha256(material.encode()).hexdigest()[:16]}.lock"


@dataclasses.dataclass(frozen=True)
class Credentials:
    """The OAuth credentials (never printed: their repr hides them)."""

    client_id: str | None = dataclasses.field(default=None, repr=False)
    client_secret: str | None = dataclasses.field(default=None, repr=False)
    refresh_token: str | None = dataclasses.field(default=None, repr=False)
    access_token: str | None = dataclasses.field(default=None, repr=False)


class TokenTransport(t.Protocol):
    """What the authenticator needs from the client's HTTP layer."""

    def send(self, method: str, url: str, *, setting: str, **kwargs: t.Any) -> requests.Response:
        """Send one request to a configured host, no redirect followed."""

    def proven(self, setting: str) -> None:
        """Record that the host of ``setting`` answered properly once this run."""

    def is_proven(self, setting: str) -> bool:
        """Whether the host of ``setting`` answered properly once this run."""

    def retry(self, attempt: Callable[[], str], what: str, url: str) -> str:
        """Run ``attempt`` under the run's retry policy."""


def check_token(token: object, origin: str) -> str:
    """A token fit for an ``Authorization`` header, or a clear error at once (never a retry)."""
    text = str(token)
    if not text:
        msg = f"The access token from {origin} is empty; check the credentials (and login_url)."
        raise PardotAuthError(msg)
    if len(text) > MAX_TOKEN_CHARS:
        msg = (
            f"The access token from {origin} is {len(text)} characters long, more than an HTTP header takes "
            f"({MAX_TOKEN_CHARS}): it is not a Salesforce access token. Check login_url and the credentials."
        )
        raise PardotAuthError(msg)
    if not TOKEN_CHARS.fullmatch(text):
        msg = (
            f"The access token from {origin} holds a newline, a space or another character that "
            "cannot travel in an HTTP header; fix it (a token is one line of visible ASCII)."
        )
        raise PardotAuthError(msg)
    return text


class PardotAuthenticator(OAuthAuthenticator):
    """Salesforce's OAuth token for the Export API, refreshed one thread at a time.

    Salesforce answers without ``expires_in``: a token is used until the API rejects it, then
    :meth:`refresh` replaces it once, however many threads saw the rejection.
    """

    def __init__(
        self,
        transport: TokenTransport,
        *,
        login_url: str,
        credentials: Credentials,
        timeout: float,
        on_call: Callable[[str], None] | None = None,
        lock_dir: Path | None = None,
    ) -> None:
        """Hold the credentials; no request is made before the first :meth:`token`.

        The SDK's own session (which follows redirects) is never used: every request goes
        through ``transport`` (see ``update_access_token``). A refresh-token grant is posted under
        a lock file in ``lock_dir`` (the export record's folder) shared by every process with
        the same refresh token.
        """
        super().__init__(
            auth_endpoint=login_url.rstrip("/") + "/services/oauth2/token",
            client_id=credentials.client_id,
            client_secret=credentials.client_secret,
        )
        self.transport = transport
        self.refresh_token = credentials.refresh_token
        self.timeout = timeout
        self.on_call = on_call
        self._lock = threading.Lock()
        self.lock_dir = lock_dir
        self.lock_path = refresh_lock_path(lock_dir, credentials)
        self.refreshes = 0
        #: what the client's tokens are for, in its log lines (" for discovery", " for the sync")
        self.purpose = ""
        self.issued: list[str] = []
        access_token = credentials.access_token
        self.access_token = check_token(access_token, "the access_token setting") if access_token else None
        self.configured_token = access_token
        if self.access_token is not None:
            self.last_refreshed = dt.datetime.now(dt.timezone.utc)

    @property
    def can_refresh(self) -> bool:
        """Whether client credentials are configured, so a token can be requested."""
        return bool(self.client_id and self.client_secret)

    @property
    def current(self) -> str | None:
        """The token as it is now, without any lock or request (for the signal path)."""
        return self.access_token

    def secrets(self) -> list[str]:
        """Everything that must never be printed: configured secrets and every issued token."""
        configured = (self.client_id, self.client_secret, self.refresh_token, self.configured_token)
        values: list[str | None] = [*configured, self.access_token, *self.issued]
        return [str(s) for s in values if s]

    @property
    @override
    def oauth_request_body(self) -> dict[str, t.Any]:
        """The refresh-token grant, or the client-credentials grant without a refresh token."""
        form = {"client_id": self.client_id, "client_secret": self.client_secret}
        if self.refresh_token:
            form.update(grant_type="refresh_token", refresh_token=self.refresh_token)
        else:
            form["grant_type"] = "client_credentials"
        return form

    def token(self) -> str:
        """The current token, fetched first if there is none yet."""
        with self._lock:
            if self.access_token is None:
                self.update_access_token()
            return self._issued()

    def refresh(self, rejected: str) -> str:
        """Get a new token, unless another thread already replaced ``rejected``."""
        with self._lock:
            if self.access_token is not None and self.access_token != rejected:
                return self.access_token
            if not self.can_refresh:
                msg = (
                    "Pardot rejected the access_token (expired or revoked). Set client_id, client_secret and "
                    "refresh_token so the tap can refresh it, or provide a fresh access_token."
                )
                raise PardotAuthError(msg, code=184)
            self.update_access_token()
            return self._issued()

    def _issued(self) -> str:
        """The token just fetched; an endpoint that answered without one is an auth error."""
        if self.access_token is None:
            msg = "The token endpoint answered without an access_token; check auth_url and the credentials."
            raise PardotAuthError(msg)
        return self.access_token

    @override
    def authenticate_request(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        """Add the bearer token (fetched under the single-flight lock) to ``request``."""
        request.headers["Authorization"] = f"Bearer {self.token()}"
        return request

    @override
    def update_access_token(self) -> None:
        """Post the grant through the run's transport and retry policy; callers hold the lock."""
        if not self.can_refresh:
            msg = "No credentials: set access_token, or client_id + client_secret + refresh_token."
            raise PardotConfigError(msg)
        with self._refresh_slot():
            token = self.transport.retry(self._request_token, "token request", self.auth_endpoint)
        self.access_token = token
        self.issued.append(token)
        self.last_refreshed = dt.datetime.now(dt.timezone.utc)
        self.expires_in = None
        self.refreshes += 1
        where = _endpoint(self.auth_endpoint)
        if self.refreshes > 1:
            LOGGER.info("Refreshed the access token%s at %s (%d so far)", self.purpose, where, self.refreshes)
        else:  # discovery's client and the sync's each get one: the purpose tells the two lines apart
            LOGGER.info("Obtained a Salesforce access token%s from %s", self.purpose, where)

    @contextlib.contextmanager
    def _refresh_slot(self) -> Iterator[None]:
        """Hold the refresh token's lock file for one grant (none without a refresh token).

        Waits up to REFRESH_LOCK_WAIT for another process; a folder that cannot hold the lock
        lets the refresh go without it, with one warning.
        """
        path = self.lock_path
        if not self.refresh_token:
            yield
            return
        with contextlib.ExitStack() as stack:
            if path is None:
                self._warn_unlocked("(unset)", "no home folder to put the default in")
            else:
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    stack.enter_context(held(path, REFRESH_LOCK_WAIT, on_wait=lambda: self._waiting(path)))
                except LockTimeout:
                    msg = (
                        f"Waited {REFRESH_LOCK_WAIT:g}s for another tap process refreshing the same refresh token "
                        f"(lock file {path}); it seems stuck retrying the token endpoint "
                        f"{_endpoint(self.auth_endpoint)}. Run again once it ends, or give the runs side by side "
                        "API users (refresh tokens) of their own."
                    )
                    raise PardotAuthError(msg) from None
                except OSError as exc:
                    self._warn_unlocked(str(path.parent), exc.strerror or type(exc).__name__)
            yield

    @staticmethod
    def _waiting(path: Path) -> None:
        LOGGER.info("Waiting for another tap process refreshing the same refresh token (lock file %s)", path)

    @staticmethod
    def _warn_unlocked(folder: str, why: str) -> None:
        if folder in _UNLOCKED_WARNED:
            return
        _UNLOCKED_WARNED.add(folder)
        LOGGER.warning(
            "record_dir %s cannot hold the token refresh lock (%s): refreshing without it. Runs side by side "
            "that share this refresh token may then refresh at once, which Salesforce may refuse; set record_dir "
            "to a writable folder.",
            folder,
            why,
        )

    def _request_token(self) -> str:
        if self.on_call:
            self.on_call("token")
        resp = self.transport.send(
            "POST", self.auth_endpoint, setting="login_url", data=self.oauth_request_payload, timeout=self.timeout
        )
        return self._token_from(resp)

    def _token_from(self, resp: requests.Response) -> str:
        """The token in a 200 answer; otherwise the right error for what the endpoint said."""
        status = resp.status_code
        try:
            body: t.Any = resp.json()
        except (ValueError, RecursionError):
            body = None
        where = _endpoint(self.auth_endpoint)
        if isinstance(body, dict):
            self.transport.proven("login_url")
            if body.get("error") and (status < 500 or status in (400, 401)):  # an OAuth error, whatever the status
                raise self._refused(body, status)
            if status == 200 and "access_token" in body:
                token = body["access_token"]
                if not isinstance(token, str):
                    msg = f"The token endpoint {where} answered an access_token that is not a string; check login_url."
                    raise PardotAuthError(msg, status=status)
                return check_token(token, f"the token endpoint {where}")
        kind = Body.JSON if isinstance(body, dict) else Body.OTHER if resp.content.strip() else Body.EMPTY
        glitch = status >= 500 or status in TRANSIENT_STATUS or self.transport.is_proven("login_url")
        if classify(status, None, kind) is Verdict.TRANSIENT and glitch:
            raise TransientError(f"the token endpoint answered HTTP {status}", retry_after(resp))
        if isinstance(body, dict):
            what = "JSON without an access_token"
        else:
            what = "JSON that is not an object" if body is not None else (resp.headers.get("Content-Type") or "no JSON")
        msg = (
            f"login_url {where} is not a Salesforce token endpoint: it answered HTTP {status} with {what}. "
            "Set login_url to https://login.salesforce.com, https://test.salesforce.com for Salesforce "
            "sandboxes, or your My Domain URL."
        )
        raise PardotAuthError(msg, status=status)

    def _refused(self, body: dict[str, t.Any], status: int) -> PardotAuthError:
        err = scrub_answer(f"{body.get('error', '')}: {body.get('error_description', '')}".strip(": "))
        grant = self.oauth_request_body["grant_type"]
        msg = (
            f"Salesforce refused the OAuth {grant} grant at {_endpoint(self.auth_endpoint)} ({err}). The "
            "credentials must be renewed: check client_id, client_secret and refresh_token (and login_url: "
            "https://test.salesforce.com for Salesforce sandboxes, or your My Domain)."
        )
        return PardotAuthError(msg, status=status)


def _endpoint(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))
