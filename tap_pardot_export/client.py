"""The HTTP layer: transport, retry policy, host fence, concurrency limit and call budget.

One :class:`PardotClient` serves every stream of a run, so the in-flight limit and the call
count are per business unit, as Pardot counts them. It knows HTTP and Pardot's error codes,
nothing of Singer. Each of Pardot's rules lives in one place: the in-flight limit in
``PardotClient.slots``, the budget in :meth:`PardotClient._check_budget`, the 88/89 version
switch in :meth:`PardotClient._switch_version`, the error-code table in
:meth:`PardotClient._raise_for`, the host fence in :func:`check_url` and
:meth:`PardotClient.check_host`, and retries in :class:`RetryPolicy`.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import errno
import functools
import ipaddress
import logging
import os
import random
import re
import threading
import typing as t
import urllib.parse

import backoff
import requests
import urllib3

from tap_pardot_export.auth import REDACTION, PardotAuthenticator, install_redaction
from tap_pardot_export.errors import (
    CallBudgetSpent,
    DailyLimitReached,
    FirstContactError,
    PardotAPIError,
    PardotAuthError,
    RefusedURLError,
    TransientError,
)

if t.TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterator, Mapping

LOGGER = logging.getLogger("tap-pardot-export")
USER_AGENT = "tap-pardot-export/0.1"
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
#: codes that ask the client to come back later
RETRY_CODES = frozenset({66})
AUTH_CODES = frozenset({184})
VERSION_CODES = {88: 4, 89: 3}
XML_ERROR = re.compile(r'<err\s+code="(\d+)"\s*>(.*?)</err>', re.DOTALL)
PARDOT_DOMAIN = "pardot.com"
#: Test hook: every retry wait is multiplied by this before sleeping (tests set 0; logs show
#: the unscaled wait).
WAIT_SCALE = 1.0
#: the largest status, create, query or token answer read (result files are streamed to disk)
MAX_ANSWER_BYTES = 64 << 20
T = t.TypeVar("T")


# -- URLs and the host fence -----------------------------------------------------------------------


def redact_url(url: str) -> str:
    """A URL fit for logs: scheme, host, port and path; no user info, query or fragment."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, _netloc(parts), parts.path, "", ""))


def host_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, lower case, without user info."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{_netloc(parts)}".lower()


def strip_userinfo(url: str) -> str:
    """``url`` without ``user:password@`` (it would replace the bearer token with Basic auth)."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, _netloc(parts), parts.path, parts.query, parts.fragment))


def _netloc(parts: urllib.parse.SplitResult) -> str:
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port}" if port else host


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine: 127.0.0.0/8, ::1 or localhost."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _same_endpoint(url: str, parts: urllib.parse.SplitResult) -> bool:
    """Whether requests (urllib3) would connect to the host and port urllib.parse reads in ``url``."""
    try:
        theirs = urllib3.util.parse_url(url)
        port = parts.port
    except ValueError:  # urllib3's LocationParseError, or a port that is not a number
        return False
    return ((theirs.host or "").strip("[]").lower(), theirs.port) == (parts.hostname or "", port)


def check_url(url: str, setting: str) -> None:
    """Refuse anything but https, and plain http on loopback only, before any request.

    Also refused: a URL that urllib.parse (which the host checks use) and urllib3 (which
    connects) read as different hosts, such as one with a backslash before its ``@``.
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if not _same_endpoint(url, parts):
        msg = (
            f"Refusing {setting} {redact_url(url)}: its host is ambiguous (a backslash, user info or another "
            "character that URL parsers read differently), and the tap sends credentials only to a host it "
            "is sure of."
        )
        raise RefusedURLError(msg)
    if parts.scheme == "https" and host:
        return
    if parts.scheme == "http" and host and is_loopback(host):
        return
    msg = (
        f"Refusing {setting} {redact_url(url)}: the tap sends credentials over https only (plain http "
        "is allowed for loopback hosts, for local tests). Use an https:// URL."
    )
    raise RefusedURLError(msg)


def env_proxies(url: str) -> dict[str, str]:
    """The proxy for ``url`` from HTTP(S)_PROXY / ALL_PROXY, honouring NO_PROXY."""
    return dict(requests.utils.get_environ_proxies(url))


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
    return envelope_error(body)


def envelope_error(body: t.Any) -> tuple[int | None, str]:
    """``(err_code, message)`` from a JSON body; the code is None when there is none."""
    if not isinstance(body, dict):
        return None, str(body)[:200]
    attrs = body.get("@attributes") or {}
    code = attrs.get("err_code") if isinstance(attrs, dict) else None
    message = body.get("err") or body.get("error_description") or body.get("error") or ""
    try:
        return (int(code) if code is not None else None), str(message)
    except (TypeError, ValueError):
        return None, str(message)


def is_fail_envelope(body: t.Any) -> bool:
    """Whether a JSON body is Pardot's error envelope (``stat: fail``), whatever the HTTP status."""
    if not isinstance(body, dict):
        return False
    attrs = body.get("@attributes")
    return isinstance(attrs, dict) and (attrs.get("stat") == "fail" or "err_code" in attrs)


# -- retries ---------------------------------------------------------------------------------------


class RetryPolicy:
    """The one retry policy of API calls, downloads and token requests, on ``backoff``.

    Exponential waits with full jitter (instances sharing Pardot's limit spread out), at least
    the server's ``Retry-After``, at most ``max_retries`` retries and ``max_time`` seconds.
    Only :class:`TransientError` is retried.
    """

    def __init__(self, *, max_retries: int = 8, max_time: float = 600.0, base: float = 1.0, cap: float = 60.0) -> None:
        """Set the bounds: ``max_retries`` retries after the first try, ``max_time`` seconds."""
        self.max_retries = max(0, max_retries)
        self.max_time = max_time
        self.base = base
        self.cap = cap

    def waits(self) -> Generator[float, t.Any, None]:
        """A ``backoff`` wait generator; it is sent the exception that failed the last try."""
        n = 0
        exc = yield 0.0  # backoff primes the generator with send(None)
        while True:
            delay = random.uniform(0, min(self.cap, self.base * 2**n))  # noqa: S311 - jitter, not a secret
            n += 1
            retry_after = getattr(exc, "retry_after", None)
            if retry_after is not None:
                delay = max(delay, min(float(retry_after), self.cap * 5))
            if isinstance(exc, TransientError):
                exc.planned_wait = delay
            exc = yield delay * WAIT_SCALE

    def run(self, attempt: Callable[[], T], what: str, url: str, *, extra_time: float = 0.0) -> T:
        """Call ``attempt`` until it returns, retrying :class:`TransientError` within the bounds.

        ``extra_time`` adds to ``max_time`` the time tries may spend working (a download's
        deadline per try), so a long download cut off late is still fetched again.

        Raises:
            PardotAPIError: the tries or the time ran out; names ``what`` and ``url``.
        """
        tries = 0

        def note_try(details: t.Any) -> None:
            nonlocal tries
            tries = int(details["tries"])

        def log_backoff(details: t.Any) -> None:
            exc = details.get("exception")
            wait = getattr(exc, "planned_wait", None) or details["wait"]
            LOGGER.warning("%s failed (%s); retry %d/%d in %.1fs", what, exc, details["tries"], self.max_retries, wait)

        retrying = backoff.on_exception(
            self.waits,
            TransientError,
            max_tries=self.max_retries + 1,
            max_time=self.max_time + extra_time,
            jitter=None,
            on_backoff=log_backoff,
            on_giveup=note_try,
            raise_on_giveup=True,
            logger=None,
        )(attempt)
        try:
            return retrying()
        except TransientError as err:
            msg = (
                f"Giving up on {what} {redact_url(url)} after {tries} tries: {err}. Pardot or the network "
                "is failing; rerun later (state is saved)."
            )
            raise PardotAPIError(msg) from None


# -- the transport ---------------------------------------------------------------------------------


def make_session() -> requests.Session:
    """The run's session: ``trust_env`` off, so a ``.netrc`` never replaces the bearer token.

    What the environment may still say is taken explicitly, as it carries no credential of its
    own: proxies from ``HTTP(S)_PROXY`` / ``ALL_PROXY`` / ``NO_PROXY`` (the transport passes
    them with each request, see :func:`env_proxies`), and a CA bundle from
    ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE`` (for TLS-inspecting corporate proxies).
    """
    session = requests.Session()
    session.trust_env = False
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.headers["User-Agent"] = USER_AGENT
    return session


class Transport:
    """Sends one request to a configured host, refusing what would expose credentials.

    https only (plain http on loopback), no redirect followed, and a failed first contact
    reported at once, naming the setting.
    """

    def __init__(self, session: requests.Session, policy: RetryPolicy) -> None:
        """Wrap the run's session; ``policy`` is the run's one retry policy."""
        self.session = session
        self.policy = policy
        self._proven: set[str] = {"result link"}

    def proven(self, setting: str) -> None:
        """Record that the host of ``setting`` answered properly: its failures are retried now."""
        self._proven.add(setting)

    def is_proven(self, setting: str) -> bool:
        """Whether the host of ``setting`` answered properly once this run."""
        return setting in self._proven

    def retry(self, attempt: Callable[[], T], what: str, url: str, *, extra_time: float = 0.0) -> T:
        """Run ``attempt`` under the run's retry policy."""
        return self.policy.run(attempt, what, url, extra_time=extra_time)

    def send(self, method: str, url: str, *, setting: str, **kwargs: t.Any) -> requests.Response:
        """One request; a redirect answer is an error, network faults are transient or first-contact.

        Raises:
            RefusedURLError: the URL is not https (nor loopback http), or the answer is a redirect.
            FirstContactError: the host of ``setting`` never answered this run and cannot be reached.
            TransientError: a network fault on a host that answered before.
        """
        check_url(url, setting)
        stream = bool(kwargs.pop("stream", False))
        try:
            resp = self.session.request(
                method, url, allow_redirects=False, proxies=env_proxies(url), stream=True, **kwargs
            )
        except requests.exceptions.InvalidHeader:
            msg = f"A header for {setting} holds a newline or another invalid character (a token?); fix the setting."
            raise PardotAuthError(msg) from None
        except requests.exceptions.ConnectionError as exc:
            if not self.is_proven(setting):
                raise FirstContactError(_unreachable(setting, url, exc)) from None
            raise TransientError(f"{type(exc).__name__} on {redact_url(url)}") from None
        except requests.RequestException as exc:
            raise TransientError(f"{type(exc).__name__} on {redact_url(url)}") from None
        if 300 <= resp.status_code < 400:
            resp.close()
            raise RefusedURLError(_redirect_message(setting, url, resp))
        if not stream:
            _read_within(resp, _overall(kwargs.get("timeout")), url)
        return resp


def _overall(timeout: object) -> float | None:
    """The overall deadline of a small answer's body: the request timeout (its longest part)."""
    if isinstance(timeout, tuple):
        return max(float(x) for x in timeout if x is not None) if any(x is not None for x in timeout) else None
    return float(timeout) if isinstance(timeout, (int, float)) else None


def _read_capped(resp: requests.Response, url: str) -> None:
    """Read a small answer's body into ``resp`` (as ``resp.content`` would), up to ``MAX_ANSWER_BYTES``.

    Raises:
        PardotAPIError: the body is larger: no Export API or token answer is.
    """
    chunks, size = [], 0
    for chunk in resp.iter_content(chunk_size=1 << 16):
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            resp.close()
            msg = (
                f"The answer of {redact_url(url)} is larger than {MAX_ANSWER_BYTES >> 20} MiB: it is not an Export "
                "API or token answer. Check api_url and login_url."
            )
            raise PardotAPIError(msg)
        chunks.append(chunk)
    resp._content = b"".join(chunks)  # noqa: SLF001 - what resp.content does, with a cap


@contextlib.contextmanager
def _shut_at(resp: requests.Response, seconds: float | None) -> Iterator[threading.Event]:
    """Shut the answer's socket ``seconds`` from now (none: never); yields the event set when it was.

    requests' timeout bounds each read, not the whole body: a server trickling a byte at a time
    never trips it. Shutting the socket ends the read at once, with an error the caller judges.
    """
    expired = threading.Event()

    def abort() -> None:
        expired.set()
        raw = getattr(resp, "raw", None)
        if raw is not None and hasattr(raw, "shutdown"):
            raw.shutdown()

    timer = threading.Timer(seconds, abort) if seconds else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        yield expired
    finally:
        if timer is not None:
            timer.cancel()


def _read_within(resp: requests.Response, deadline: float | None, url: str) -> None:
    """Read a small answer's body whole, in at most ``deadline`` seconds.

    A server that trickles a byte at a time never trips the per-read timeout; the socket is
    shut down at the deadline instead, and the answer is a transient error.

    Raises:
        TransientError: the body did not arrive whole in time, or was cut.
    """
    with _shut_at(resp, deadline) as expired:
        try:
            _read_capped(resp, url)
        except (requests.RequestException, OSError) as exc:
            if not expired.is_set():
                raise TransientError(f"{type(exc).__name__} reading {redact_url(url)}") from None
    if expired.is_set():
        resp.close()
        msg = f"the answer of {redact_url(url)} did not arrive whole within request_timeout ({deadline:g}s)"
        raise TransientError(msg)


def _unreachable(setting: str, url: str, exc: Exception) -> str:
    text = str(exc)
    if any(s in text for s in ("NameResolution", "Name or service not known", "getaddrinfo", "resolve")):
        why = "does not resolve"
    elif "refused" in text.lower():
        why = "refuses connections"
    elif isinstance(exc, requests.exceptions.SSLError):
        why = "failed the TLS handshake"
    else:
        why = f"cannot be reached ({type(exc).__name__})"
    host = urllib.parse.urlsplit(url).hostname
    return (
        f"The {setting} host {host} {why} on the run's first call to it ({redact_url(url)}). Check {setting}; "
        "the tap retries only a service that answered in this run."
    )


def _redirect_message(setting: str, url: str, resp: requests.Response) -> str:
    location = resp.headers.get("Location", "")
    target = urllib.parse.urlsplit(urllib.parse.urljoin(url, location)).hostname or "an unknown host"
    return (
        f"{setting} {redact_url(url)} answered HTTP {resp.status_code}: redirect to {target} refused (the tap "
        f"never follows a redirect with credentials). Set {setting} to the final host if it is the right one."
    )


# -- the client ------------------------------------------------------------------------------------


class _TokenRejected(Exception):
    """Internal: the API rejected ``token`` (401 or error 184)."""

    def __init__(self, token: str, code: int | None, status: int, message: str) -> None:
        super().__init__(message)
        self.token, self.code, self.status, self.message = token, code, status, message


class _VersionSwitch(Exception):
    """Internal: Pardot asked for the other API version (error 88/89)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class PardotClient:
    """Calls to the Export API with auth, retries, a concurrency cap and a call budget."""

    def __init__(  # noqa: PLR0913 - one run's settings, all keyword-only
        self,
        *,
        api_url: str,
        business_unit_id: str,
        api_version: int,
        tokens: PardotAuthenticator,
        transport: Transport,
        max_concurrency: int = 2,
        timeout: float = 300.0,
        download_timeout: float = 3600.0,
        download_hosts: t.Sequence[str] = (),
        max_api_calls: int | None = None,
        zone: dt.tzinfo | None = None,
    ) -> None:
        """Hold the run's settings; no request is made here."""
        self.api_url = strip_userinfo(api_url).rstrip("/")
        self.business_unit_id = business_unit_id
        self.api_version = api_version
        self._version_switched = False
        self.tokens = tokens
        self.transport = transport
        self.session = transport.session
        self.max_concurrency = max(1, max_concurrency)
        self.slots = threading.BoundedSemaphore(self.max_concurrency)
        self.timeout = timeout
        self.download_timeout = download_timeout
        self.download_hosts = {str(h).strip().lower().rstrip(".") for h in download_hosts if str(h).strip()}
        self.max_api_calls = max_api_calls
        self.calls: collections.Counter[str] = collections.Counter()
        self._count_lock = threading.Lock()
        self.zone = zone

    @property
    def max_retries(self) -> int:
        """Retries after the first try of one call."""
        return self.transport.policy.max_retries

    # -- bookkeeping -------------------------------------------------------------------

    @property
    def api_calls(self) -> int:
        """API calls spent (token requests excluded: they do not count against Pardot's limit)."""
        with self._count_lock:
            return sum(v for k, v in self.calls.items() if k != "token")

    def count(self, kind: str) -> None:
        """Count one call of ``kind`` (create, read, download, token, ...)."""
        with self._count_lock:
            self.calls[kind] += 1

    def budget_left(self) -> int | None:
        """Calls left under ``max_api_calls``; None without a budget."""
        if self.max_api_calls is None:
            return None
        return self.max_api_calls - self.api_calls

    def _check_budget(self) -> None:
        left = self.budget_left()
        if left is not None and left <= 0:
            msg = (
                f"The run's API call budget (max_api_calls={self.max_api_calls}) is spent. State is "
                "saved; the next run resumes from it. Raise max_api_calls to do more per run."
            )
            raise CallBudgetSpent(msg)

    # -- URLs ---------------------------------------------------------------------------

    def url(self, op: str) -> str:
        """The Export API URL of ``op`` (the path after ``/do/``) in the current version."""
        return f"{self.api_url}/api/export/version/{self.api_version}/do/{op}"

    def check_host(self, url: str) -> None:
        """Refuse to send credentials for a result link anywhere but a trusted host.

        Trusted: ``api_url``'s host, Pardot's own hosts (``pardot.com`` and ``*.pardot.com``,
        https only) and the hosts of the ``download_hosts`` setting.
        """
        parts = urllib.parse.urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
        pardot = host == PARDOT_DOMAIN or host.endswith("." + PARDOT_DOMAIN)
        trusted = host_of(url) == host_of(self.api_url) or host in self.download_hosts
        if (pardot and parts.scheme == "https") or trusted:
            check_url(url, "a result link")
            return
        msg = (
            f"Refusing to download {redact_url(url)}: its host {host or '(none)'} is neither api_url's host "
            f"({host_of(self.api_url)}) nor a Pardot host (https://*.pardot.com), and the tap sends credentials "
            "only there. If it is a proxy you trust, add it to the download_hosts setting."
        )
        raise RefusedURLError(msg)

    # -- requests -----------------------------------------------------------------------

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
        call = _Call(method, op, kind, url, json_body, params, stream)
        return self._call(call, None)

    def _call(self, call: _Call, reader: Callable[[requests.Response], int] | None) -> requests.Response:
        """One logical call: the retry policy around tries.

        Between runs of the policy: a token refresh, or the 88/89 version switch.
        """
        fresh: set[str] = set()
        working = self.download_timeout * (self.max_retries + 1) if reader is not None else 0.0
        for _ in range(6):  # bounded: each pass refreshes a token or switches the version once
            target = call.url or self.url(call.op)
            try:
                attempt = functools.partial(self._try, call, target, reader)
                return self.transport.retry(attempt, call.kind, target, extra_time=working)
            except _TokenRejected as rej:
                if rej.token in fresh:
                    raise self._rejected_again(rej) from None
                LOGGER.info("Access token rejected (error %s); refreshing it", rej.code or rej.status)
                fresh.add(self.tokens.refresh(rej.token))
            except _VersionSwitch as switch:
                self._switch_version(switch.code, call)
        msg = f"{call.kind}: Pardot kept rejecting tokens and versions; check the credentials and api_version."
        raise PardotAPIError(msg)

    def _try(self, call: _Call, target: str, reader: Callable[[requests.Response], int] | None) -> requests.Response:
        """One try: budget, token, a slot, the request, the answer checked."""
        self._check_budget()
        token = self.tokens.token()
        headers = {"Authorization": f"Bearer {token}", "Pardot-Business-Unit-Id": self.business_unit_id}
        # only downloads follow a link from an answer; any other call (the custom field query) is api_url's
        setting = "result link" if call.kind == "download" else "api_url"
        with self.slots:
            self.count(call.kind)
            resp = self.transport.send(
                call.method,
                target,
                setting=setting,
                params=None if call.url else {"format": "json", **(call.params or {})},
                json=call.json_body,
                headers=headers,
                timeout=self.timeout,
                stream=call.stream,
            )
            if not (call.stream and resp.status_code == 200):
                _read_all(resp, target)
        resp = self._check(resp, call, token)
        if reader is not None:
            reader(resp)
        return resp

    def _check(self, resp: requests.Response, call: _Call, token: str) -> requests.Response:
        """The answer if it is a success; otherwise the right error for what Pardot said."""
        status = resp.status_code
        if 200 <= status < 300 and call.stream:
            return resp
        try:
            body: t.Any = resp.json()
        except ValueError:
            body = None
            if status < 500 and status not in TRANSIENT_STATUS:
                self._not_pardot(resp, call)
        if body is not None:
            self.transport.proven("api_url")
            if 200 <= status < 300 and not is_fail_envelope(body):
                return resp
        code, message = envelope_error(body) if body is not None else parse_error(resp)
        message = REDACTION.scrub(message)  # server text may echo the request, bearer token included
        self._raise_for(code, status, message, call=call, token=token, resp=resp)
        raise AssertionError("unreachable")  # pragma: no cover

    def _not_pardot(self, resp: requests.Response, call: _Call) -> None:
        """An answer that is not JSON (5xx aside): a web server that is not Pardot, or a glitch."""
        snippet = REDACTION.scrub(resp.text[:120].strip().replace("\n", " "))
        kind = resp.headers.get("Content-Type") or "no content type"
        if not self.transport.is_proven("api_url"):
            msg = (
                f"The api_url host {urllib.parse.urlsplit(self.api_url).hostname} does not speak Pardot's Export "
                f"API: {call.kind} got HTTP {resp.status_code} with {kind}, not JSON. Check api_url "
                "(https://pi.pardot.com, or https://pi.demo.pardot.com for demo business units)."
            )
            raise FirstContactError(msg, status=resp.status_code)
        if 200 <= resp.status_code < 300:
            raise TransientError(f"a body that is not JSON (HTTP {resp.status_code}: {snippet!r})")

    def _raise_for(
        self, code: int | None, status: int, message: str, *, call: _Call, token: str, resp: requests.Response
    ) -> None:
        """Pardot's error-code table: what each answer means for the run."""
        if status == 401 or code in AUTH_CODES:
            raise _TokenRejected(token, code, status, message)
        if code == 122:
            msg = (
                f"Pardot's daily API call limit is spent (error 122). It resets {self._reset_time()}; "
                "the state emitted so far is safe to resume from. Rerun after the reset, or spread "
                f"syncs out. Server said: {message}"
            )
            raise DailyLimitReached(msg, code=code, status=status)
        if code in VERSION_CODES and not self._version_switched:
            raise _VersionSwitch(code)
        if code in RETRY_CODES or (code is None and status in TRANSIENT_STATUS) or status >= 500:
            raise TransientError(f"HTTP {status} error {code}: {message}", _retry_after(resp))
        raise self._fatal(code, status, message, call.kind)

    def _rejected_again(self, rej: _TokenRejected) -> PardotAuthError:
        msg = (
            f"Pardot keeps rejecting fresh access tokens (error {rej.code or rej.status}: {rej.message}). "
            "Check that the connected app has the pardot_api scope and the user can access "
            "this business unit."
        )
        return PardotAuthError(msg, code=rej.code, status=rej.status)

    def _switch_version(self, code: int, call: _Call) -> None:
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
        if call.url is not None:
            call.url = re.sub(r"/version/[34]/", f"/version/{new}/", call.url)

    def _reset_time(self) -> str:
        """When the daily limit resets: midnight in the account's zone (the user's, as configured)."""
        if self.zone is None:
            return "at midnight in the account's time zone (set timezone to get the exact time)"
        now = dt.datetime.now(self.zone)
        midnight = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        left = midnight - now
        hours, rest = divmod(int(left.total_seconds()), 3600)
        return f"at {midnight:%Y-%m-%d %H:%M} {self.zone} (in {hours}h{rest // 60:02d}m)"

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
        if code in (181, 182, 201):  # a setting is wrong, but calls were made: not "config validation"
            return PardotAPIError(f"{text} (error {code}: {message})", code=code, status=status)
        return PardotAPIError(
            f"{kind} failed: {text} (HTTP {status}, error {code}: {message})", code=code, status=status
        )

    # -- downloads ----------------------------------------------------------------------

    def download(self, url: str, dest: t.BinaryIO, *, max_tries: int | None = None) -> int:
        """Stream a result file into ``dest``, fetched again whole when it fails.

        A body cut off midway, or one that takes longer than ``download_timeout`` seconds in
        all (even when the server trickles a byte a second), is retried by the policy.

        Holds a concurrency slot for the whole body, not only the headers. Returns the bytes
        written. ``max_tries`` is accepted for compatibility and ignored: the policy decides.
        """
        del max_tries
        self.check_host(url)
        written = [0]

        def read(resp: requests.Response) -> int:
            written[0] = self._read_body(resp, dest, url)
            return written[0]

        self._call(_Call("GET", "", "download", url=url, stream=True), read)
        return written[0]

    def _read_body(self, resp: requests.Response, dest: t.BinaryIO, url: str) -> int:
        """Read the whole body under a slot, aborted at the deadline (even a trickling one).

        A body with neither ``Content-Length`` nor chunked encoding ends when the connection
        closes, so a cut at a line end would look whole: such a body is refused, not guessed at.
        """
        if not _framed(resp):
            resp.close()
            msg = (
                f"Download of {redact_url(url)}: the server sent the file without a length (no Content-Length, "
                "not chunked), so a body cut short could not be told from a whole one. The tap refuses it rather "
                "than risk losing rows; if a proxy between the tap and Pardot strips the framing, fix the proxy."
            )
            raise PardotAPIError(msg)
        dest.seek(0)
        dest.truncate()
        written = 0
        with (
            self.slots,
            resp,
            _shut_at(resp, self.download_timeout) as expired,
        ):  # the deadline runs once a slot is held
            try:
                for chunk in resp.iter_content(chunk_size=1 << 16):
                    _write(dest, chunk, url)
                    written += len(chunk)
            except (requests.RequestException, OSError) as exc:
                if not expired.is_set():
                    msg = f"Download of {redact_url(url)} cut off after {written} bytes ({type(exc).__name__})"
                    raise TransientError(msg) from None
        if expired.is_set():
            msg = (
                f"download of {redact_url(url)} passed download_timeout ({self.download_timeout:g}s) after "
                f"{written} bytes"
            )
            raise TransientError(msg)
        return written

    def json(self, method: str, op: str, kind: str, **kw: t.Any) -> t.Any:
        """:meth:`request`, and the answer's JSON body."""
        resp = self.request(method, op, kind, **kw)
        try:
            return resp.json()
        except ValueError as exc:  # pragma: no cover - request() checks
            msg = f"{kind}: Pardot answered with a body that is not JSON"
            raise PardotAPIError(msg) from exc

    # -- the signal path ------------------------------------------------------------------

    def cancel_now(self, export_id: int, timeout: float = 5.0) -> bool:
        """Cancel an export from a signal handler: one try, no lock, no slot, no refresh.

        Uses the access token as it is, a session of its own and a worker thread joined for at
        most ``timeout`` seconds, so it returns in time whatever the main thread holds.
        Never raises; logs one line. Returns whether Pardot confirmed the cancel.
        """
        outcome: list[bool] = []
        worker = threading.Thread(target=self._cancel_once, args=(export_id, timeout, outcome), daemon=True)
        try:
            worker.start()
            worker.join(timeout)
        except Exception:  # noqa: BLE001 - documented: never raises (it runs inside a signal's shutdown)
            outcome = []
        ok = bool(outcome and outcome[0])
        LOGGER.warning("Cancel of export %s on interrupt: %s", export_id, "done" if ok else "not confirmed")
        return ok

    def _cancel_once(self, export_id: int, timeout: float, outcome: list[bool]) -> None:
        try:
            token = self.tokens.current
            url = self.url(f"cancel/id/{int(export_id)}")
            if not token:
                outcome.append(False)
                return
            check_url(url, "api_url")
            self.calls["cancel"] += 1  # no lock: the main thread may hold it
            headers = {"Authorization": f"Bearer {token}", "Pardot-Business-Unit-Id": self.business_unit_id}
            with make_session() as session:
                resp = session.post(
                    url,
                    params={"format": "json"},
                    headers=headers,
                    timeout=(timeout, timeout),
                    allow_redirects=False,
                    proxies=env_proxies(url),
                )
                outcome.append(resp.status_code == 200 and not is_fail_envelope(_json_or_none(resp)))
        except Exception:  # noqa: BLE001 - a worker thread: any failure means "not confirmed"
            outcome.append(False)


@dataclasses.dataclass
class _Call:
    """What one logical API call asks for."""

    method: str
    op: str
    kind: str
    url: str | None = None
    json_body: t.Any = None
    params: dict[str, str] | None = None
    stream: bool = False


def _read_all(resp: requests.Response, url: str) -> None:
    """Read a small answer's body while the slot is held; a cut is transient."""
    try:
        _ = resp.content
    except requests.RequestException as exc:
        raise TransientError(f"{type(exc).__name__} reading {redact_url(url)}") from None


def _json_or_none(resp: requests.Response) -> t.Any:
    try:
        return resp.json()
    except ValueError:
        return None


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


# -- construction -----------------------------------------------------------------------------------


def build_client(config: Mapping[str, t.Any], logger: logging.Logger | None = None) -> PardotClient:
    """The run's one client, from the tap's settings; installs the redaction filter.

    Refuses non-https URLs (loopback http aside) before any request. ``user:password@`` in
    ``api_url`` or ``login_url`` is dropped, with a warning: it would replace the bearer token.
    """
    log = logger or LOGGER
    api_url = str(config.get("api_url") or "https://pi.pardot.com")
    login_url = str(config.get("login_url") or "https://login.salesforce.com")
    for setting, value in (("api_url", api_url), ("login_url", login_url)):
        if urllib.parse.urlsplit(value).username is not None:
            log.warning("%s holds user info (user:password@); it is ignored: the tap sends a bearer token", setting)
        check_url(value, setting)
    timeout = float(config.get("request_timeout", 300))
    policy = RetryPolicy(
        max_retries=int(config.get("max_retries", 8)), max_time=float(config.get("retry_max_time", 600))
    )
    transport = Transport(make_session(), policy)
    client = PardotClient(
        api_url=api_url,
        business_unit_id=str(config.get("business_unit_id") or ""),
        api_version=int(config.get("api_version", 4)),
        tokens=_authenticator(config, transport, strip_userinfo(login_url), min(timeout, 60)),
        transport=transport,
        max_concurrency=int(config.get("max_concurrency", 2)),
        timeout=timeout,
        download_timeout=float(config.get("download_timeout", 3600)),
        download_hosts=list(config.get("download_hosts") or []),
        max_api_calls=config.get("max_api_calls"),
        zone=_zone(config),
    )
    client.tokens.on_call = client.count
    install_redaction(client.tokens.secrets)  # the configured secrets and every token issued
    return client


def _authenticator(
    config: Mapping[str, t.Any], transport: Transport, login_url: str, timeout: float
) -> PardotAuthenticator:
    def text(key: str) -> str | None:
        value = config.get(key)
        return None if value is None or value == "" else str(value)

    return PardotAuthenticator(
        transport,
        login_url=login_url,
        client_id=text("client_id"),
        client_secret=text("client_secret"),
        refresh_token=text("refresh_token"),
        access_token=text("access_token"),
        timeout=timeout,
    )


def _zone(config: Mapping[str, t.Any]) -> dt.tzinfo | None:
    from zoneinfo import ZoneInfo  # noqa: PLC0415

    name = config.get("timezone")
    return ZoneInfo(str(name)) if name else None


class DiskError(PardotAPIError):
    """A downloaded file could not be written: the disk is full, or the folder is not writable."""


def _nothing_taken() -> t.NoReturn:
    """A write that took no byte of a chunk: the disk is full."""
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _write(dest: t.BinaryIO, chunk: bytes, url: str) -> None:
    """Write a downloaded chunk; a failure of the disk is not the network's, and no retry fixes it."""
    view = memoryview(chunk)
    try:
        while view:  # an unbuffered file may take part of a chunk (the disk filling up): the rest, or the error
            n = dest.write(view)
            view = view[n if n is not None else len(view) :] if n != 0 else _nothing_taken()
    except OSError as exc:
        msg = (
            f"Download of {redact_url(url)}: writing it to disk failed ({exc.strerror or exc}). Result files are "
            "written to the temporary folder (TMPDIR) before their rows are read: free disk space or point TMPDIR "
            "at a larger disk."
        )
        raise DiskError(msg) from None


def _framed(resp: requests.Response) -> bool:
    """True when the body's end can be checked: a ``Content-Length``, or chunked encoding."""
    if resp.headers.get("Content-Length"):
        return True
    return "chunked" in resp.headers.get("Transfer-Encoding", "").lower()
