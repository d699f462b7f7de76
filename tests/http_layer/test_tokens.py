"""Access tokens: refreshed once however many calls it rejects, named by their real cause when refused.

A token answer that is an OAuth error under HTTP 200, empty, not a string, oversized or holding a
newline is named as what it is and never retried; refused credentials end the run with a clear
message; a plain ``access_token`` is refreshed when credentials exist. Against the sandbox and the
fake Pardot of ``tests/fake_pardot.py`` on loopback.
"""

from __future__ import annotations

import pytest

from tap_pardot_export.errors import PardotAuthError
from tests.fake_pardot import TOKEN_PATH, send
from tests.helpers import client_for


@pytest.mark.usefixtures("instant_retries")
@pytest.mark.parametrize(
    ("answer", "words"),
    [
        ((200, {"error": "invalid_grant", "error_description": "expired access/refresh token"}), "refused the OAuth"),
        ((200, {"access_token": "", "token_type": "Bearer"}), "is empty"),
        ((200, {"access_token": "x" * 200_000}), "200000 characters long, more than an HTTP header takes"),
        ((200, {"access_token": 12345}), "not a string"),
        ((200, {"token_type": "Bearer"}), "JSON without an access_token"),
        ((200, ["not", "an", "object"]), "JSON that is not an object"),
    ],
)
def test_a_token_answer_is_named_by_its_real_cause(fake, answer, words):
    status, body = answer
    server = fake(token=lambda h: send(h, status, body))
    with pytest.raises(PardotAuthError) as info:
        client_for(server.config()).tokens.token()
    assert words in str(info.value)
    assert server.hits(TOKEN_PATH) == 1, "a dead answer is not retried"
