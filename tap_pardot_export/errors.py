"""Errors the tap raises: each message says what happened and what the user should do.

Messages never include a token or a secret: they are built from codes, ids, URLs without
query strings or user info and the server's own error text; and every line the tap logs passes
through the redaction filter of :mod:`tap_pardot_export.auth` besides.
"""

from __future__ import annotations

from singer_sdk.exceptions import ConfigValidationError, FatalAPIError, RetriableAPIError


class PardotConfigError(ConfigValidationError):
    """A setting is wrong; the message names it."""

    def __init__(self, message: str) -> None:
        """Make the error from its one message."""
        super().__init__(message, errors=[message])


class PardotAPIError(FatalAPIError):
    """The Export API refused a request in a way a retry cannot fix."""

    def __init__(self, message: str, *, code: int | None = None, status: int | None = None) -> None:
        """Make the error; ``code`` is Pardot's error code, ``status`` the HTTP status."""
        super().__init__(message)
        self.code = code
        self.status = status


class PardotAuthError(PardotAPIError):
    """The credentials are dead, or the token endpoint is not one: they must be fixed."""


class DailyLimitReached(PardotAPIError):
    """Pardot's daily API call limit (error 122) is spent."""


class CallBudgetSpent(PardotAPIError):
    """The run's call budget is spent: ``max_api_calls``, or the calls the daily allowance leaves above its reserve."""

    def __init__(self, message: str, *, setting: str = "max_api_calls") -> None:
        """Make the error; ``setting`` is the one that set the budget."""
        super().__init__(message)
        self.setting = setting


class ExportError(PardotAPIError):
    """An export failed, expired, was canceled, or never finished."""


class ResultFormatError(PardotAPIError):
    """A result file or an API answer does not have the expected shape."""


class RefusedURLError(PardotAPIError):
    """A URL the tap will not send credentials to: a redirect, plain http, a foreign host."""


class FirstContactError(PardotAPIError):
    """The first call of the run to a configured host failed: the setting is likely wrong."""


class StdoutClosed(PardotAPIError):
    """The target stopped reading: stdout is closed, so no record or state can reach it."""


class StreamsFailed(PardotAPIError):
    """One or more streams failed while the others synced."""


class TransientError(RetriableAPIError):
    """A failure a retry may fix (5xx, error 66, network, a download past its deadline)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        """Make the error; ``retry_after`` is the server's ``Retry-After`` in seconds."""
        super().__init__(message)
        self.retry_after = retry_after
        self.planned_wait: float | None = None
