"""The one place that keeps secrets out of what the tap prints: log lines, errors, URLs.

Every line the tap's process logs passes :data:`REDACTION`, a logging filter that knows every
configured secret and every token issued in the run (its sources are called at each record,
so tokens issued later are covered). Messages built from server text call
:meth:`RedactionFilter.scrub` themselves, and URLs are shown through :func:`redact_url` (no
user info, query or fragment) or :func:`host_of`.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import inspect
import logging
import re
import typing as t
import urllib.parse
import weakref

from typing_extensions import override

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

#: settings whose values are secrets, never printed (the schema marks them secret)
SECRET_SETTINGS = ("access_token", "client_id", "client_secret", "refresh_token")
#: the user and password part of a URL (``scheme://user:password@host``)
USERINFO = re.compile(r"(?<=://)[^/\s@]+@")
#: a bearer token after its keyword, whatever it holds
BEARER = re.compile(r"(?i)\b(bearer)(\s+)[^\s\"',;]+")
#: in text a server wrote: anything that looks like a token or an authorization value after its keyword
ECHOED = re.compile(r"(?i)(bearer|token|authorization)(\W{1,4})[\w.!/+=-]{8,}")
#: shorter values are not redacted: they would blank out ordinary words and numbers
MIN_SECRET_LEN = 4
#: loggers whose own records are scrubbed before they propagate, whatever handler shows them
REDACTED_LOGGERS = ("tap-pardot-export", "singer_sdk", "backoff", "urllib3", "requests", "py.warnings")
T = t.TypeVar("T")


# -- URLs ---------------------------------------------------------------------------------------


def _netloc(parts: urllib.parse.SplitResult) -> str:
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port}" if port else host


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


# -- secrets ------------------------------------------------------------------------------------


def _same(value: T) -> T:
    return value


def secrets_from_config(config: Mapping[str, t.Any]) -> list[str]:
    """The configured secrets as text, numbers included (unquoted YAML makes digits numbers)."""
    values = [config.get(key) for key in SECRET_SETTINGS]
    return [str(v) for v in values if v is not None and not isinstance(v, bool) and str(v)]


def _char_forms(ch: str) -> str:
    """A regex for one character of a secret: itself in either case, percent-encoded, or JSON-escaped."""
    forms = {ch.lower(), ch.upper()} if ch.isalpha() else {ch}
    alternatives = [re.escape(c) for c in sorted(forms)]
    for c in sorted(forms):
        # percent-encoding matched in any case (the pattern is case-insensitive); a JSON \uXXXX escape
        alternatives.append("".join(f"%{byte:02x}" for byte in c.encode()))
        if ord(c) < 0x10000:
            alternatives.append(rf"\\u{ord(c):04x}")
    if ch == "/":
        alternatives.append(r"\\/")
    return "(?:" + "|".join(alternatives) + ")"


def _base64_cores(secret: str) -> set[str]:
    """The base64 text (standard and URL-safe) that encodes ``secret`` wherever it sits in encoded data.

    Base64 turns each 3 bytes into 4 characters, so a secret inside encoded data is encoded in
    one of three alignments; the characters that depend on the secret's bytes alone are the
    same whatever surrounds it, with or without padding.
    """
    data = secret.encode()
    cores: set[str] = set()
    for skip in range(3):
        whole = data[skip:]
        whole = whole[: len(whole) - len(whole) % 3]
        if not whole:
            continue
        text = base64.b64encode(whole).decode()
        cores.update({text, text.replace("+", "-").replace("/", "_")})
    return cores


class _Secret(t.NamedTuple):
    """One secret, and what ASCII text without a percent sign or a backslash must hold to match its regex."""

    secret: str
    lower: str  # the secret in lower case: its only form in such text, in any case
    cores: tuple[str, ...]  # its base64 cores, matched exactly
    ascii: bool  # whether the secret is ASCII (only then is lower case all its case forms)

    @property
    def pattern(self) -> re.Pattern[str]:
        """Every form of the secret as one regex, compiled when a line first needs it."""
        return _pattern(self.secret, self.cores)


@functools.lru_cache(maxsize=64)
def _secret(secret: str) -> _Secret:
    """``secret`` with its lower case and base64 cores (its regex is compiled later, if ever)."""
    cores = tuple(sorted(_base64_cores(secret), key=len, reverse=True))
    return _Secret(secret, secret.lower(), cores, secret.isascii())


@functools.lru_cache(maxsize=64)
def _pattern(secret: str, cores: tuple[str, ...]) -> re.Pattern[str]:
    """Every form of ``secret`` as one regex; compiled once per secret, and only for a line that may hold it.

    A compile takes some 10 ms, and most runs never log a line that may hold a new access token.
    """
    forms = "".join(_char_forms(c) for c in secret)
    # the characters around a core encode a byte or two of the secret with its neighbours: taken too
    edge = "[A-Za-z0-9+/_-]{0,3}"
    # base64 cores are case-sensitive: matched by separate, exact alternatives
    alternatives = [f"(?i:{forms})", *(f"{edge}{re.escape(core)}{edge}={{0,2}}" for core in cores)]
    return re.compile("|".join(alternatives))


def _patterns(secrets: frozenset[str]) -> tuple[_Secret, ...]:
    """The regexes of ``secrets``, longest secret first (a secret inside a longer one goes with it)."""
    return tuple(_secret(secret) for secret in sorted(secrets, key=lambda s: (-len(s), s)))


class RedactionFilter(logging.Filter):
    """Replaces every known secret, in any form a server may echo it, bearer values and URL user info with ``***``.

    A secret is found in any letter case, fully or partly percent-encoded, with JSON string
    escapes, and base64-encoded (standard or URL-safe, at any alignment, padded or not).
    """

    def __init__(self) -> None:
        """Start with no secret source; :func:`install_redaction` adds them."""
        super().__init__("redaction")
        #: weak references to bound methods (a finished tap's secrets go with it), plain functions kept
        self.sources: list[Callable[[], Callable[[], Iterable[str]] | None]] = []
        self._compiled: tuple[frozenset[str], tuple[_Secret, ...]] = (frozenset(), ())

    def secrets(self) -> list[str]:
        """Every secret the sources know, longest first."""
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
                    found.add(text)
        return sorted(found, key=len, reverse=True)

    def _patterns(self) -> tuple[_Secret, ...]:
        secrets = frozenset(self.secrets())
        if secrets != self._compiled[0]:
            self._compiled = (secrets, _patterns(secrets))
        return self._compiled[1]

    def scrub(self, text: str) -> str:
        """``text`` with every secret (in any form), bearer value and URL user info replaced by ``***``."""
        # In ASCII text without "%" or "\\", an ASCII secret's every form is the secret in some letter
        # case, or holds one of its base64 cores verbatim: text with neither cannot match, and most
        # lines are such text (the regexes took a fifth of a small sync's time)
        plain = text.isascii() and "%" not in text and "\\" not in text
        lower = text.lower() if plain else ""
        for secret in self._patterns():
            if plain and secret.ascii and secret.lower not in lower and not any(c in text for c in secret.cores):
                continue
            text = secret.pattern.sub("***", text)
        return BEARER.sub(r"\1\2***", USERINFO.sub("***@", text))

    @override
    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message (args merged in) and exception text; never drops it.

        A record is scrubbed once: the filter sits on loggers and on their handlers, so most
        records meet it twice (scrubbing was a fifth of a small sync's time).
        """
        if record.__dict__.get(_SCRUBBED) is self._compiled[0] and not record.args:
            return True
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
        record.__dict__[_SCRUBBED] = self._compiled[0]  # the secrets it was scrubbed of
        return True


#: the attribute of a log record that names the secrets it was scrubbed of
_SCRUBBED = "_tap_pardot_export_scrubbed"


REDACTION = RedactionFilter()


def scrub(text: str) -> str:
    """``text`` fit for a message or a log line (see :meth:`RedactionFilter.scrub`)."""
    return REDACTION.scrub(text)


def scrub_answer(text: str) -> str:
    """Text a server wrote (it may echo the request), fit for a message: also token-like values."""
    return ECHOED.sub(r"\1\2***", REDACTION.scrub(text))


def install_redaction(source: Callable[[], Iterable[str]]) -> RedactionFilter:
    """Scrub ``source()``'s secrets from every line the tap's process logs.

    The filter goes on every handler of the root logger and of the tap's, the SDK's and the
    HTTP libraries' loggers, and on those loggers themselves. Idempotent; call it again after
    handlers are added (the client does, when it is built).

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
