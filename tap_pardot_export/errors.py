"""Errors the tap raises: each message says what happened and what the user should do.

Messages never include a token or a secret: they are built from codes, ids, URLs without
query strings and the server's own error text, which holds none.
"""

from __future__ import annotations

from singer_sdk.exceptions import ConfigValidationError, FatalAPIError


class PardotConfigError(ConfigValidationError):
    """A setting is wrong; the message names it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, errors=[message])


class PardotAPIError(FatalAPIError):
    """The Export API refused a request in a way a retry cannot fix."""

    def __init__(self, message: str, *, code: int | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class PardotAuthError(PardotAPIError):
    """The credentials are dead: they must be renewed."""


class DailyLimitReached(PardotAPIError):
    """Pardot's daily API call limit (error 122) is spent."""


class CallBudgetSpent(PardotAPIError):
    """The run's own ``max_api_calls`` budget is spent."""


class ExportError(PardotAPIError):
    """An export failed, expired, was canceled, or never finished."""


class ResultFormatError(PardotAPIError):
    """A result file or an API answer does not have the expected shape."""


class TransientError(Exception):
    """Internal: a failure a retry may fix (5xx, 66, network)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
