"""The host fence: where credentials may go.

https only (plain http for loopback hosts, for local tests), a URL that two parsers read as
the same host, and result links only on api_url's host, Pardot's own hosts or the hosts the
user trusts (``download_hosts``).
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse

import requests
import urllib3

from tap_pardot_export.errors import RefusedURLError
from tap_pardot_export.redact import host_of, redact_url

PARDOT_DOMAIN = "pardot.com"


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine: 127.0.0.0/8, ::1 or ``localhost`` (not a name that may resolve elsewhere)."""
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    """Whether ``url``'s host is this machine (see :func:`is_loopback`)."""
    return is_loopback(urllib.parse.urlsplit(url).hostname or "")


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


def check_result_link(url: str, api_url: str, download_hosts: frozenset[str]) -> None:
    """Refuse to send credentials for a result link anywhere but a trusted host.

    Trusted: ``api_url``'s host, Pardot's own hosts (``pardot.com`` and ``*.pardot.com``,
    https only) and the hosts of the ``download_hosts`` setting.
    """
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    pardot = host == PARDOT_DOMAIN or host.endswith("." + PARDOT_DOMAIN)
    trusted = host_of(url) == host_of(api_url) or host in download_hosts
    if (pardot and parts.scheme == "https") or trusted:
        check_url(url, "a result link")
        return
    msg = (
        f"Refusing to download {redact_url(url)}: its host {host or '(none)'} is neither api_url's host "
        f"({host_of(api_url)}) nor a Pardot host (https://*.pardot.com), and the tap sends credentials "
        "only there. If it is a proxy you trust, add it to the download_hosts setting."
    )
    raise RefusedURLError(msg)


def env_proxies(url: str) -> dict[str, str]:
    """The proxy for ``url`` from HTTP(S)_PROXY / ALL_PROXY, honouring NO_PROXY."""
    return dict(requests.utils.get_environ_proxies(url))


# -- one file, several spellings of its link -------------------------------------------------------------

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
DEFAULT_PORTS = {"http": 80, "https": 443}


def _percent(text: str) -> str:
    """Percent-encodings normalized (RFC 3986 6.2.2.2): unreserved characters decoded, the others' hex in capitals."""

    def one(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else f"%{match.group(1).upper()}"

    return _PERCENT.sub(one, text)


def remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4: ``/a/./b/../c`` is ``/a/c``."""
    out: list[str] = []
    while path:
        if path.startswith(("../", "./")):
            path = path[path.index("/") + 1 :]
        elif path.startswith("/./") or path == "/.":
            path = "/" + path[3:]
        elif path.startswith("/../") or path == "/..":
            path = "/" + path[4:]
            if out:
                out.pop()
        elif path in (".", ".."):
            path = ""
        else:
            end = path.find("/", 1)
            end = len(path) if end < 0 else end
            out.append(path[:end])
            path = path[end:]
    return "".join(out)


def link_key(url: str) -> str:
    """What two spellings of one result link share: RFC 3986's syntax- and scheme-based normalization (6.2.2, 6.2.3).

    Scheme and host in lower case, the scheme's default port and the fragment dropped, an
    empty path as ``/``, percent-encodings normalized, dot segments removed. The query is kept
    (``?x=1`` may name another file), and so are empty path segments (``a//b``): RFC 3986 does
    not make them equivalent, and a store keyed by path (S3, for one) holds ``a//b`` and ``a/b``
    apart; a repeat they hide is caught by its content instead. The link itself is never
    rewritten: this key only compares links.
    """
    try:
        parts = urllib.parse.urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    host = f"[{host}]" if ":" in host else host
    user = parts.netloc.rpartition("@")[0]
    netloc = (f"{user}@" if user else "") + host + (f":{port}" if port not in (None, DEFAULT_PORTS.get(scheme)) else "")
    path = remove_dot_segments(_percent(parts.path)) or "/"
    return urllib.parse.urlunsplit((scheme, netloc, path, _percent(parts.query), ""))
