"""Sending one request to a configured host, and reading its answer whole within a deadline.

https only (plain http on loopback), no redirect followed, proxies and CA bundles from the
environment but never a ``.netrc``, a failed first contact reported at once naming the
setting, and a small answer read whole (at most :data:`MAX_ANSWER_BYTES`, its compression
undone and checked to have ended) before its deadline, which runs from the request's first
byte (:class:`~tap_pardot_export.pardot.deadline.Deadline`), however slowly the server sends
its status line, headers or body.
"""

from __future__ import annotations

import os
import typing as t
import urllib.parse

import requests
import urllib3

from tap_pardot_export.errors import FirstContactError, PardotAPIError, PardotAuthError, RefusedURLError, TransientError
from tap_pardot_export.pardot.deadline import Deadline, DeadlineAdapter
from tap_pardot_export.pardot.encodings import ACCEPT_ENCODING, BodyDecoder, CutStream, Inflated, UnknownEncoding
from tap_pardot_export.pardot.urls import check_url, env_proxies
from tap_pardot_export.redact import redact_url

if t.TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Iterator

    from tap_pardot_export.pardot.retry import RetryPolicy

USER_AGENT = "tap-pardot-export/0.1"
#: the largest status, create, query or token answer read, decoded (result files are streamed to disk)
MAX_ANSWER_BYTES = 64 << 20
#: the most read from a socket at once
READ_BYTES = 1 << 16
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
    for prefix in ("https://", "http://"):
        session.mount(prefix, DeadlineAdapter())
    session.headers["User-Agent"] = USER_AGENT
    session.headers["Accept-Encoding"] = ACCEPT_ENCODING  # only what can be checked whole (not br, zstd)
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

    def send(
        self, method: str, url: str, *, setting: str, deadline: Deadline | None = None, **kwargs: t.Any
    ) -> requests.Response:
        """One request; a redirect answer is an error, network faults are transient or first-contact.

        The request runs under ``deadline`` (the caller's, which then also bounds its reading
        of a streamed body), else under one of ``timeout`` seconds: connect, status line,
        headers and body (unless ``stream``) all end within it, however the server trickles.

        Raises:
            RefusedURLError: the URL is not https (nor loopback http), or the answer is a redirect.
            FirstContactError: the host of ``setting`` never answered this run and cannot be reached.
            TransientError: a network fault on a host that answered before, or the deadline passed.
        """
        if deadline is None:
            with Deadline(_overall(kwargs.get("timeout")), "request_timeout") as own:
                return self.send(method, url, setting=setting, deadline=own, **kwargs)
        check_url(url, setting)
        stream = bool(kwargs.pop("stream", False))
        try:
            resp = self.session.request(
                method, url, allow_redirects=False, proxies=env_proxies(url), stream=True, **kwargs
            )
        except requests.exceptions.InvalidHeader:
            msg = f"A header for {setting} holds a newline or another invalid character (a token?); fix the setting."
            raise PardotAuthError(msg) from None
        except requests.RequestException as exc:
            if deadline.expired:
                raise TransientError(late(url, deadline)) from None
            if isinstance(exc, requests.exceptions.ConnectionError) and not self.is_proven(setting):
                raise FirstContactError(_unreachable(setting, url, exc)) from None
            raise TransientError(f"{type(exc).__name__} on {redact_url(url)}") from None
        if deadline.expired:  # the head ended at the deadline's shutdown: it may be cut
            resp.close()
            raise TransientError(late(url, deadline))
        deadline.attach(getattr(resp.raw, "connection", None))  # whatever the pool: the body is bounded too
        if 300 <= resp.status_code < 400:
            resp.close()
            raise RefusedURLError(_redirect_message(setting, url, resp))
        if not stream:
            read_whole(resp, url, deadline)
        return resp


def _overall(timeout: object) -> float | None:
    """A request's deadline from its timeout (the longest part of a (connect, read) pair)."""
    if isinstance(timeout, tuple):
        return max(float(x) for x in timeout if x is not None) if any(x is not None for x in timeout) else None
    return float(timeout) if isinstance(timeout, (int, float)) else None


def late(url: str, deadline: Deadline) -> str:
    """The message of a request that passed its deadline."""
    return f"{redact_url(url)} did not answer whole within {deadline.describe()}"


def raw_chunks(resp: requests.Response) -> Iterator[bytes]:
    """The body's bytes as sent (``Content-Encoding`` not undone; the framing checked by urllib3)."""
    yield from resp.raw.stream(READ_BYTES, decode_content=False)


def read_whole(resp: requests.Response, url: str, deadline: Deadline) -> None:
    """Read a small answer's body whole into ``resp`` (as ``resp.content`` would), within ``deadline``.

    Its encoding is undone and each compressed stream checked to have ended; at most
    ``MAX_ANSWER_BYTES`` are read.

    Raises:
        TransientError: the body did not arrive whole in time, or was cut (a compressed one too).
        PardotAPIError: the body is larger than any Export API or token answer, or compressed
            in a way the tap cannot verify.
    """
    chunks: list[bytes] = []
    try:
        decoder = BodyDecoder(resp.headers.get("Content-Encoding"), cap=MAX_ANSWER_BYTES)
        chunks.extend(decoder.feed(raw) for raw in raw_chunks(resp))
        decoder.end()
    except UnknownEncoding as exc:
        resp.close()
        msg = (
            f"The answer of {redact_url(url)} is compressed as the tap cannot check ({exc}). A proxy between the "
            "tap and the server compresses it: have it pass answers uncompressed or as gzip."
        )
        raise PardotAPIError(msg) from None
    except Inflated:
        resp.close()
        msg = (
            f"The answer of {redact_url(url)} is larger than {MAX_ANSWER_BYTES >> 20} MiB: it is not an Export "
            "API or token answer. Check api_url and login_url."
        )
        raise PardotAPIError(msg) from None
    except CutStream as exc:
        resp.close()
        raise TransientError(f"the answer of {redact_url(url)} was cut short: {exc}") from None
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        resp.close()
        if deadline.expired:
            raise TransientError(late(url, deadline)) from None
        raise TransientError(f"{type(exc).__name__} reading {redact_url(url)}") from None
    if deadline.expired:  # the end may have been the deadline's shutdown, not the server's
        resp.close()
        raise TransientError(late(url, deadline))
    resp._content = b"".join(chunks)  # noqa: SLF001 - what resp.content does, decoded whole, with a cap


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
