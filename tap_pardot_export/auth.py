"""Salesforce OAuth for the Export API, and the filter that keeps every secret out of the logs.

:class:`PardotAuthenticator` is a thin subclass of the SDK's ``OAuthAuthenticator``: it posts the
grant through the run's own transport (its session, no redirect followed, the retry policy of
every other call), refreshes one thread at a time, and tells dead credentials from a
``login_url`` that is not a Salesforce token endpoint.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import inspect
import logging
import re
import threading
import typing as t
import urllib.parse
import weakref

from singer_sdk.authenticators import OAuthAuthenticator
from typing_extensions import override

from tap_pardot_export.errors import PardotAuthError, PardotConfigError, TransientError

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    import requests

LOGGER = logging.getLogger("tap-pardot-export")
#: settings whose values are secrets (the schema marks client_id secret too)
SECRET_SETTINGS = ("client_id", "client_secret", "refresh_token", "access_token")
#: what an access token may hold to travel in an HTTP header (visible ASCII, no spaces)
TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")
USERINFO = re.compile(r"(?<=://)[^/\s@]+@")
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
#: shorter values are not redacted: they would blank out ordinary words and numbers
MIN_SECRET_LEN = 4
T = t.TypeVar("T")


class TokenTransport(t.Protocol):
    """What the authenticator needs from the client's HTTP layer."""

    def send(self, method: str, url: str, *, setting: str, **kwargs: t.Any) -> requests.Response:
        """Send one request to a configured host, no redirect followed."""

    def proven(self, setting: str) -> None:
        """Record that the host of ``setting`` answered properly once this run."""

    def retry(self, attempt: Callable[[], str], what: str, url: str, *, extra_time: float = 0.0) -> str:
        """Run ``attempt`` under the run's retry policy."""


# -- redaction ------------------------------------------------------------------------------------


def _same(value: T) -> T:
    return value


def secrets_from_config(config: Mapping[str, t.Any]) -> list[str]:
    """The configured secrets as text, numbers included (unquoted YAML makes digits numbers)."""
    values = [config.get(key) for key in SECRET_SETTINGS]
    return [str(v) for v in values if v is not None and not isinstance(v, bool) and str(v)]


class RedactionFilter(logging.Filter):
    """Replaces every known secret, and user info in URLs, with ``***`` in each log record."""

    def __init__(self) -> None:
        """Start with no secret source; :func:`install_redaction` adds them."""
        super().__init__("redaction")
        #: weak references to bound methods (a finished tap's secrets go with it), plain functions kept
        self.sources: list[Callable[[], Callable[[], Iterable[str]] | None]] = []

    def secrets(self) -> list[str]:
        """Every secret the sources know, with its URL-encoded form, longest first."""
        found: set[str] = set()
        for ref in list(self.sources):
            source = ref()
            if source is None:
                with contextlib.suppress(ValueError):
                    self.sources.remove(ref)
                continue
            for value in source():
                text = str(value)
                if len(text) >= MIN_SECRET_LEN:
                    found.update({text, urllib.parse.quote(text, safe=""), urllib.parse.quote_plus(text)})
        return sorted(found, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        """``text`` with every secret and URL user info replaced by ``***``."""
        for secret in self.secrets():
            text = text.replace(secret, "***")
        return USERINFO.sub("***@", text)

    @override
    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message (args merged in) and exception text; never drops it."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg = self.scrub(message)
        record.args = ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = self.scrub(record.stack_info)
        return True


REDACTION = RedactionFilter()
#: loggers whose own records are scrubbed before they propagate, whatever handler shows them
REDACTED_LOGGERS = ("tap-pardot-export", "singer_sdk", "backoff", "urllib3", "requests", "py.warnings")


def install_redaction(source: Callable[[], Iterable[str]]) -> RedactionFilter:
    """Scrub ``source()``'s secrets from every line the tap's process logs.

    The filter goes on every handler of the root logger and of the tap's, the SDK's and the
    HTTP libraries' loggers, and on those loggers themselves.

    Idempotent; call it again after handlers are added (the client does, when it is built).

    Args:
        source: returns the secrets known now (called at each log record, so tokens issued
            later are covered).

    Returns:
        The one process-wide filter.
    """
    ref: Callable[[], Callable[[], Iterable[str]] | None]
    ref = weakref.WeakMethod(source) if inspect.ismethod(source) else functools.partial(_same, source)
    if all(r() != source for r in REDACTION.sources):
        REDACTION.sources.append(ref)
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in REDACTED_LOGGERS)]
    for logger in loggers:
        if logger.name != "root" and REDACTION not in logger.filters:
            logger.addFilter(REDACTION)
        for handler in logger.handlers:
            if REDACTION not in handler.filters:
                handler.addFilter(REDACTION)
    return REDACTION


# -- OAuth ----------------------------------------------------------------------------------------


def check_token(token: object, origin: str) -> str:
    """A token fit for an ``Authorization`` header, or a clear error at once (never a retry)."""
    text = str(token)
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
        client_id: str | None,
        client_secret: str | None,
        refresh_token: str | None,
        access_token: str | None,
        timeout: float,
        on_call: Callable[[str], None] | None = None,
    ) -> None:
        """Hold the credentials; no request is made before the first :meth:`token`."""
        super().__init__(
            auth_endpoint=login_url.rstrip("/") + "/services/oauth2/token",
            client_id=client_id,
            client_secret=client_secret,
        )
        self.transport = transport
        self._session = t.cast("t.Any", transport).session  # never the SDK's own, which follows redirects
        self.refresh_token = refresh_token
        self.timeout = timeout
        self.on_call = on_call
        self._lock = threading.Lock()
        self.refreshes = 0
        self.issued: list[str] = []
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
        token = self.transport.retry(self._request_token, "token request", self.auth_endpoint)
        self.access_token = token
        self.issued.append(token)
        self.last_refreshed = dt.datetime.now(dt.timezone.utc)
        self.expires_in = None
        self.refreshes += 1
        LOGGER.info("Obtained a Salesforce access token from %s", _endpoint(self.auth_endpoint))

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
        except ValueError:
            body = None
        where = _endpoint(self.auth_endpoint)
        if isinstance(body, dict):
            self.transport.proven("login_url")
            if status == 200 and isinstance(body.get("access_token"), str):
                return check_token(body["access_token"], f"the token endpoint {where}")
            if status in TRANSIENT_STATUS:
                raise TransientError(f"the token endpoint answered HTTP {status}", _retry_after(resp))
            if status in (400, 401) and body.get("error"):
                raise self._refused(body, status)
        elif status in TRANSIENT_STATUS and body is None:
            raise TransientError(f"the token endpoint answered HTTP {status}", _retry_after(resp))
        kind = "JSON that is not an object" if body is not None else (resp.headers.get("Content-Type") or "no JSON")
        msg = (
            f"login_url {where} is not a Salesforce token endpoint: it answered HTTP {status} with {kind}. "
            "Set login_url to https://login.salesforce.com, https://test.salesforce.com for Salesforce "
            "sandboxes, or your My Domain URL."
        )
        raise PardotAuthError(msg, status=status)

    def _refused(self, body: dict[str, t.Any], status: int) -> PardotAuthError:
        err = REDACTION.scrub(f"{body.get('error', '')}: {body.get('error_description', '')}".strip(": "))
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


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
