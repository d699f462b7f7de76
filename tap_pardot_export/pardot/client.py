"""The Pardot API client: one per run, so limits are per business unit, as Pardot counts them.

Each call goes through the run's retry policy; between runs of the policy the client
refreshes a rejected token once, or switches the Export API version once (errors 88/89).
What an answer means is decided by :func:`~tap_pardot_export.pardot.answers.classify`; the
error messages of the fatal ones are written here (:func:`fatal_error`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import re
import threading
import time
import typing as t
import urllib.parse

from tap_pardot_export.errors import (
    DailyLimitReached,
    FirstContactError,
    PardotAPIError,
    PardotAuthError,
    TransientError,
)
from tap_pardot_export.pardot.answers import TRANSIENT_STATUS, VERSION_CODES, Answer, Body, Verdict, read_answer
from tap_pardot_export.pardot.auth import Credentials, PardotAuthenticator
from tap_pardot_export.pardot.budget import CallBudget
from tap_pardot_export.pardot.deadline import Deadline
from tap_pardot_export.pardot.downloads import read_body
from tap_pardot_export.pardot.retry import RetryPolicy
from tap_pardot_export.pardot.transport import Transport, make_session, read_whole, retry_after
from tap_pardot_export.pardot.urls import check_result_link, check_url
from tap_pardot_export.redact import install_redaction, scrub_answer, strip_userinfo

if t.TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import requests

LOGGER = logging.getLogger("tap-pardot-export")
#: the longest a token request may take (the token endpoint answers in a second or two)
TOKEN_TIMEOUT = 60.0
#: reads a streamed body within the request's deadline
Reader = t.Callable[["requests.Response", Deadline], None]


@dataclasses.dataclass(frozen=True)
class Connection:
    """Where and how the client talks to Pardot: the connection and request settings."""

    api_url: str
    login_url: str
    business_unit_id: str
    api_version: int
    credentials: Credentials
    download_hosts: frozenset[str]
    request_timeout: float
    download_timeout: float
    max_concurrency: int
    max_retries: int
    retry_max_time: float
    max_api_calls: int | None
    #: the API user's zone (when configured): says when the daily limit resets
    zone: dt.tzinfo | None = None
    #: where token refreshes lock their refresh token (the export record's folder; None: no lock)
    lock_dir: Path | None = None


@dataclasses.dataclass
class Call:
    """What one logical API call asks for."""

    method: str
    op: str
    kind: str
    url: str | None = None
    json_body: t.Any = None
    params: dict[str, str] | None = None
    stream: bool = False


class _TokenRejected(Exception):
    """Internal: the API rejected ``token`` (401 or error 184)."""

    def __init__(self, token: str, answer: Answer) -> None:
        super().__init__(answer.message)
        self.token, self.code, self.status, self.message = token, answer.code, answer.status, answer.message


class _VersionSwitch(Exception):
    """Internal: Pardot asked for the other API version (error 88/89)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class PardotClient:
    """Calls to Pardot with auth, retries, a concurrency cap and a call budget."""

    def __init__(self, connection: Connection, tokens: PardotAuthenticator, transport: Transport) -> None:
        """Hold the run's connection; no request is made here."""
        self.connection = connection
        self.api_url = strip_userinfo(connection.api_url).rstrip("/")
        self.business_unit_id = connection.business_unit_id
        self.api_version = connection.api_version
        self._version_switched = False
        self.tokens = tokens
        self.transport = transport
        self.max_concurrency = max(1, connection.max_concurrency)
        self.slots = threading.BoundedSemaphore(self.max_concurrency)
        self.budget = CallBudget(connection.max_api_calls)
        #: told of each request's duration: (kind, seconds, HTTP status or None when none came)
        self.on_request: Callable[[str, float, int | None], None] | None = None

    @property
    def api_calls(self) -> int:
        """API calls spent (token requests excluded: they do not count against Pardot's limit)."""
        return self.budget.spent

    def url(self, op: str) -> str:
        """The Export API URL of ``op`` (the path after ``/do/``) in the current version."""
        return f"{self.api_url}/api/export/version/{self.api_version}/do/{op}"

    def check_host(self, url: str) -> None:
        """Refuse to send credentials for a result link anywhere but a trusted host."""
        check_result_link(url, self.api_url, self.connection.download_hosts)

    # -- calls ----------------------------------------------------------------------------

    def request(self, call: Call) -> requests.Response:
        """Send one API call, retrying what a retry can fix (the answer is read whole)."""
        return self._call(call, None)

    def json(self, method: str, op: str, kind: str, **kw: t.Any) -> t.Any:
        """One API call's JSON answer; ``op`` is the path after ``/do/`` (ignored with ``url=``).

        ``kind`` names the call for the counters (create, read, query, cancel, ...).
        """
        resp = self.request(Call(method, op, kind, **kw))
        try:
            return resp.json()
        except ValueError as exc:  # pragma: no cover - the answer was classified as JSON
            msg = f"{kind}: Pardot answered with a body that is not JSON"
            raise PardotAPIError(msg) from exc

    def download(
        self,
        url: str,
        dest: t.BinaryIO,
        *,
        name: str | None = None,
        check: Callable[[], None] | None = None,
        cancel: threading.Event | None = None,
        give_up: Callable[[TransientError, int], Exception] | None = None,
    ) -> int:
        """Stream a result file into ``dest``, fetched again whole when it fails; the bytes written.

        A body cut off midway (a compressed one that did not end too), one that takes longer
        than ``download_timeout`` from its first byte sent, and a body ``check`` refuses with a
        :class:`TransientError` are fetched again under the run's one retry policy (``cancel``
        ends its waits; ``give_up`` makes its last error). ``name`` names the file in messages.
        """
        self.check_host(url)
        written = [0]

        def read(resp: requests.Response, deadline: Deadline) -> None:
            written[0] = read_body(resp, dest, url, deadline, name)

        call = Call("GET", "", "download", url=url, stream=True)
        self._call(call, read, after=check, cancel=cancel, give_up=give_up)
        return written[0]

    def _call(
        self,
        call: Call,
        reader: Reader | None,
        *,
        after: Callable[[], None] | None = None,
        cancel: threading.Event | None = None,
        give_up: Callable[[TransientError, int], Exception] | None = None,
    ) -> requests.Response:
        """One logical call: the retry policy around tries; between them a token refresh or a version switch."""
        fresh: set[str] = set()
        per_try = self.connection.download_timeout if reader is not None else 0.0
        working = per_try * (self.transport.policy.max_retries + 1)
        for _ in range(6):  # bounded: each pass refreshes a token or switches the version once
            target = call.url or self.url(call.op)
            try:
                attempt = functools.partial(self._try, call, target, reader, after)
                return self.transport.retry(
                    attempt, call.kind, target, extra_time=working, give_up=give_up, cancel=cancel
                )
            except _TokenRejected as rej:
                if rej.token in fresh:
                    raise self._rejected_again(rej) from None
                LOGGER.info("Access token rejected (error %s); refreshing it", rej.code or rej.status)
                fresh.add(self.tokens.refresh(rej.token))
            except _VersionSwitch as switch:
                self._switch_version(switch.code, call)
        msg = f"{call.kind}: Pardot kept rejecting tokens and versions; check the credentials and api_version."
        raise PardotAPIError(msg)

    def _try(
        self, call: Call, target: str, reader: Reader | None, after: Callable[[], None] | None
    ) -> requests.Response:
        """One try: budget, token, a slot, the request and its answer within one deadline; then ``after``.

        The deadline runs from the request's first byte to its body's last (``download_timeout``
        for a streamed body read by ``reader``, else ``request_timeout``), all under one slot.
        """
        self.budget.check()
        token = self.tokens.token()
        headers = {"Authorization": f"Bearer {token}", "Pardot-Business-Unit-Id": self.business_unit_id}
        # only downloads follow a link from an answer; any other call (the custom field query) is api_url's
        setting = "result link" if call.kind == "download" else "api_url"
        seconds, limit = (
            (self.connection.download_timeout, "download_timeout")
            if call.stream
            else (self.connection.request_timeout, "request_timeout")
        )
        with self.slots, Deadline(seconds, limit) as deadline:
            self.budget.count(call.kind)
            resp = self._send(call, target, setting, headers, deadline)
            resp = self._check(resp, call, token)
            if reader is not None:
                reader(resp, deadline)
        if after is not None:
            after()
        return resp

    def _send(
        self, call: Call, target: str, setting: str, headers: dict[str, str], deadline: Deadline
    ) -> requests.Response:
        """Send the request and read a small answer whole; its duration goes to :attr:`on_request`."""
        started, status = time.monotonic(), None
        try:
            resp = self.transport.send(
                call.method,
                target,
                setting=setting,
                deadline=deadline,
                params=None if call.url else {"format": "json", **(call.params or {})},
                json=call.json_body,
                headers=headers,
                timeout=self.connection.request_timeout,
                stream=call.stream,
            )
            status = resp.status_code
            if call.stream and status != 200:
                read_whole(resp, target, deadline)
        finally:
            if self.on_request is not None:
                self.on_request(call.kind, time.monotonic() - started, status)
        return resp

    def _check(self, resp: requests.Response, call: Call, token: str) -> requests.Response:
        """The answer if it is a success; otherwise the right error for what Pardot said."""
        status = resp.status_code
        if 200 <= status < 300 and call.stream:
            return resp
        answer = read_answer(status, resp.content, resp.reason or "")
        if answer.body in (Body.JSON, Body.ENVELOPE):
            self.transport.proven("api_url")
        verdict = answer.verdict
        if verdict is Verdict.OK:
            return resp
        if answer.body in (Body.OTHER, Body.EMPTY) and status < 500 and status not in TRANSIENT_STATUS:
            self._not_pardot(resp, call)
        message = scrub_answer(answer.message)  # server text may echo the request, bearer token included
        if verdict is Verdict.TOKEN:
            raise _TokenRejected(token, dataclasses.replace(answer, message=message))
        if verdict is Verdict.DAILY_LIMIT:
            msg = (
                f"Pardot's daily API call limit is spent (error 122). It resets {self._reset_time()}; "
                "the state emitted so far is safe to resume from. Rerun after the reset, or spread "
                f"syncs out. Server said: {message}"
            )
            raise DailyLimitReached(msg, code=answer.code, status=status)
        if verdict is Verdict.VERSION and answer.code is not None and not self._version_switched:
            raise _VersionSwitch(answer.code)
        if verdict is Verdict.TRANSIENT:
            if answer.body in (Body.OTHER, Body.EMPTY) and 200 <= status < 300:
                raise TransientError(f"a body that is not JSON (HTTP {status}: {message[:120]!r})")
            raise TransientError(f"HTTP {status} error {answer.code}: {message}", retry_after(resp))
        raise fatal_error(answer.code, status, message, call.kind, self.api_url)

    def _not_pardot(self, resp: requests.Response, call: Call) -> None:
        """An answer that is not JSON (5xx aside) from a host that never answered properly: not Pardot."""
        if self.transport.is_proven("api_url"):
            return
        kind = resp.headers.get("Content-Type") or "no content type"
        msg = (
            f"The api_url host {urllib.parse.urlsplit(self.api_url).hostname} does not speak Pardot's Export "
            f"API: {call.kind} got HTTP {resp.status_code} with {kind}, not JSON. Check api_url "
            "(https://pi.pardot.com, or https://pi.demo.pardot.com for demo business units)."
        )
        raise FirstContactError(msg, status=resp.status_code)

    def _rejected_again(self, rej: _TokenRejected) -> PardotAuthError:
        msg = (
            f"Pardot keeps rejecting fresh access tokens (error {rej.code or rej.status}: {rej.message}). "
            "Check that the connected app has the pardot_api scope and the user can access "
            "this business unit."
        )
        return PardotAuthError(msg, code=rej.code, status=rej.status)

    def _switch_version(self, code: int, call: Call) -> None:
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

    def reset_time(self) -> str:
        """When the daily limit resets, in words: midnight in the account's zone (the user's, as configured)."""
        return self._reset_time()

    def _reset_time(self) -> str:
        """When the daily limit resets: midnight in the account's zone (the user's, as configured)."""
        zone = self.connection.zone
        if zone is None:
            return "at midnight in the account's time zone (set timezone to get the exact time)"
        now = dt.datetime.now(zone)
        midnight = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        left = midnight - now
        hours, rest = divmod(int(left.total_seconds()), 3600)
        return f"at {midnight:%Y-%m-%d %H:%M} {zone} (in {hours}h{rest // 60:02d}m)"


def fatal_error(code: int | None, status: int, message: str, kind: str, api_url: str) -> PardotAPIError:
    """The error for an answer a retry cannot fix: what it means and what to change."""
    if code == 181:
        text = "the Pardot-Business-Unit-Id header is missing: set business_unit_id"
    elif code == 182:
        text = "business_unit_id is malformed: it is 18 characters and starts with 0Uv (Setup > Pardot Account Setup)"
    elif code == 201:
        other = "https://pi.pardot.com" if "demo" in api_url else "https://pi.demo.pardot.com"
        text = (
            f"Pardot does not know business_unit_id on {api_url}. Check the id; a sandbox or demo "
            f"business unit lives on another host: try api_url={other}"
        )
    elif code in (46, 49):
        text = (
            "the API user lacks an ability this export needs (see the README's Salesforce setup, step 4, e.g. "
            "Prospects > Visitors > View, Admin > Exports > View)"
        )
    else:
        text = "the request was refused"
    if code in (181, 182, 201):  # a setting is wrong, but calls were made: not "config validation"
        return PardotAPIError(f"{text} (error {code}: {message})", code=code, status=status)
    return PardotAPIError(f"{kind} failed: {text} (HTTP {status}, error {code}: {message})", code=code, status=status)


def build_client(connection: Connection, logger: logging.Logger | None = None) -> PardotClient:
    """The run's one client; installs the redaction filter for its tokens.

    Refuses non-https URLs (loopback http aside) before any request. ``user:password@`` in
    ``api_url`` or ``login_url`` is dropped, with a warning: it would replace the bearer token.
    """
    log = logger or LOGGER
    for setting, value in (("api_url", connection.api_url), ("login_url", connection.login_url)):
        if urllib.parse.urlsplit(value).username is not None:
            log.warning("%s holds user info (user:password@); it is ignored: the tap sends a bearer token", setting)
        check_url(value, setting)
    policy = RetryPolicy(max_retries=connection.max_retries, max_time=connection.retry_max_time)
    transport = Transport(make_session(), policy)
    tokens = PardotAuthenticator(
        transport,
        login_url=strip_userinfo(connection.login_url),
        credentials=connection.credentials,
        timeout=min(connection.request_timeout, TOKEN_TIMEOUT),
        lock_dir=connection.lock_dir,
    )
    client = PardotClient(connection, tokens, transport)
    tokens.on_call = client.budget.count
    install_redaction(client.tokens.secrets)  # the configured secrets and every token issued
    return client
