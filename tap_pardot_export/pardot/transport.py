"""Sending one request to a configured host, and reading its answer whole within a deadline.

https only (plain http on loopback), no redirect followed, proxies and CA bundles from the
environment but never a ``.netrc``, a failed first contact reported at once naming the
setting, and a small answer read whole (at most :data:`MAX_ANSWER_BYTES`) before its
deadline, however slowly the server sends it.
"""

from __future__ import annotations

import contextlib
import os
import threading
import typing as t
import urllib.parse

import requests

from tap_pardot_export.errors import FirstContactError, PardotAPIError, PardotAuthError, RefusedURLError, TransientError
from tap_pardot_export.pardot.urls import check_url, env_proxies
from tap_pardot_export.redact import redact_url

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tap_pardot_export.pardot.retry import RetryPolicy

USER_AGENT = "tap-pardot-export/0.1"
#: the largest status, create, query or token answer read (result files are streamed to disk)
MAX_ANSWER_BYTES = 64 << 20
T = t.TypeVar("T")


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

    def retry(
        self,
        attempt: Callable[[], T],
        what: str,
        url: str,
        *,
        extra_time: float = 0.0,
        give_up: Callable[[TransientError, int], Exception] | None = None,
        cancel: threading.Event | None = None,
    ) -> T:
        """Run ``attempt`` under the run's retry policy (see :meth:`RetryPolicy.run`)."""
        return self.policy.run(attempt, what, url, extra_time=extra_time, give_up=give_up, cancel=cancel)

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
def shut_at(resp: requests.Response, seconds: float | None) -> Iterator[threading.Event]:
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
    with shut_at(resp, deadline) as expired:
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


def read_all(resp: requests.Response, url: str) -> None:
    """Read a small answer's body while the slot is held; a cut is transient."""
    try:
        _ = resp.content
    except requests.RequestException as exc:
        raise TransientError(f"{type(exc).__name__} reading {redact_url(url)}") from None


def json_or_none(resp: requests.Response) -> t.Any:
    """The answer's JSON, or None when it is not JSON."""
    try:
        return resp.json()
    except ValueError:
        return None


def retry_after(resp: requests.Response) -> float | None:
    """The server's ``Retry-After`` in seconds, when it gives one as a number."""
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
