"""Secrets never printed, in any form a server may echo them, nor sent where they do not belong.

Every encoding of a secret (case, percent, form, JSON escapes, base64) is redacted from every
line; the bearer value whatever it holds; a replaced configured token; a numeric client secret;
user info in ``api_url`` is neither printed nor sent. Against the fake Pardot of
``tests/fake_pardot.py`` and the sandbox on loopback, and the redaction filter as a unit.
"""

from __future__ import annotations

import base64
import datetime as dt
import gc
import json
import logging
import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pardot_export_sandbox import DataConfig

from tap_pardot_export import redact
from tap_pardot_export.errors import PardotAPIError
from tap_pardot_export.redact import REDACTION, RedactionFilter, install_redaction, scrub_answer
from tests.fake_pardot import SECRET, TOKEN, Call, send, token_ok
from tests.helpers import client_for, discover, run_tap, select_streams

pytestmark = pytest.mark.usefixtures("instant_retries")  # retry waits are computed and logged, but not slept

KEY = "00Dsome!Secret-Value_0123456789/xyz"
#: the token the echoing server issues holds a "!", as Salesforce's do: its percent- and
#: form-encoded forms differ from it, and each must be redacted too
BANG_TOKEN = "00Dsecrets!tok-0123456789abcdef"


def _b64(data: str, *, urlsafe: bool = False, pad: bool = True) -> str:
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    text = encode(data.encode()).decode()
    return text if pad else text.rstrip("=")


def encodings(secret: str) -> dict[str, str]:
    """Every form of ``secret`` a gateway or server has been seen to echo."""
    forms = {
        "as is": secret,
        "lower case": secret.lower(),
        "upper case": secret.upper(),
        "swapped case": secret.swapcase(),
        "percent-encoded": urllib.parse.quote(secret, safe=""),
        "fully percent-encoded": "".join(f"%{b:02X}" for b in secret.encode()),
        "fully percent-encoded, lower hex": "".join(f"%{b:02x}" for b in secret.encode()),
        "partly percent-encoded": "".join(f"%{b:02x}" if k % 3 == 0 else chr(b) for k, b in enumerate(secret.encode())),
        "form-encoded": urllib.parse.quote_plus(secret),
        "JSON-escaped": json.dumps(secret)[1:-1].replace("/", "\\/"),
        "JSON unicode escapes": "".join(f"\\u{ord(c):04x}" for c in secret),
    }
    for prefix in ("", "x", "xy", "Bearer ", "user:"):
        for urlsafe in (False, True):
            for pad in (False, True):
                name = f"base64{'url' if urlsafe else ''} of {prefix!r}+secret{'' if pad else ', unpadded'}"
                forms[name] = _b64(prefix + secret, urlsafe=urlsafe, pad=pad)
    return forms


@pytest.mark.parametrize(("form", "text"), sorted(encodings(KEY).items()))
def test_every_encoding_of_a_secret_is_redacted(form, text):
    install_redaction(lambda: [KEY])
    out = REDACTION.scrub(f"the server said: {text}; done")
    assert out.startswith("the server said: ") and out.endswith("; done")
    for other in encodings(KEY).values():
        core = other[4:-4] if len(other) > 12 else other
        assert core not in out, f"{form}: {out!r}"


def _every_pattern(secrets: list[str], text: str) -> str:
    """The scrub without its shortcut: every secret's regex over the whole text."""
    for secret in redact._patterns(frozenset(secrets)):
        text = secret.pattern.sub("***", text)
    return redact.BEARER.sub(r"\1\2***", redact.USERINFO.sub("***@", text))


SECRETS = st.text(st.sampled_from([*"sSkK", *(chr(c) for c in range(33, 127))]), min_size=4, max_size=30)
#: filler that trips the shortcut's conditions: percent signs, backslashes, and non-ASCII letters that
#: case-insensitive matching takes for ASCII ones (the Kelvin sign for k, the long s for s)
FILLER = st.text(st.sampled_from(list("abcKSs /:=-_\u212a\u017f\u00df")), max_size=6) | st.sampled_from(["%", "\\"])


@given(secret=SECRETS, data=st.data(), flip=st.booleans())
def test_the_scrub_shortcut_never_changes_what_is_scrubbed(secret, data, flip):
    """Lines that cannot hold a secret skip the regexes: the result is the same as running them all."""
    forms = [*encodings(secret).values(), ""]
    pieces = data.draw(st.lists(st.tuples(FILLER, st.sampled_from(forms)), max_size=4))
    text = "".join(filler + form for filler, form in pieces)
    if flip:
        text = text.replace("k", "\u212a").replace("s", "\u017f")  # case-insensitive twins, not ASCII
    scrubber = RedactionFilter()
    scrubber.sources.append(lambda: lambda: [secret])
    assert scrubber.scrub(text) == _every_pattern([secret], text)


def test_a_secret_written_with_case_twins_outside_ascii_is_redacted():
    """The long s and the Kelvin sign match s and k case-insensitively: the shortcut must not skip such lines."""
    scrubber = RedactionFilter()
    scrubber.sources.append(lambda: lambda: ["sandbox-secret-key"])
    assert scrubber.scrub("got \u017fandbox-secret-\u212aey here") == "got *** here"


def test_the_bearer_value_is_redacted_whatever_it_holds():
    assert REDACTION.scrub("Authorization: Bearer not-a-known-token") == "Authorization: Bearer ***"
    assert "plain text" in REDACTION.scrub("token refreshed; plain text stays")


def echoing(h: Call) -> None:
    """An error that echoes the request's bearer token in every form at once."""
    token = h.headers["Authorization"].split(" ", 1)[1]
    echoes = " | ".join(encodings(token).values()) + " | " + " | ".join(encodings(SECRET).values())
    send(h, 400, {"@attributes": {"stat": "fail", "err_code": 15}, "err": f"Bad request: {echoes}"})


def test_an_api_error_echoing_the_token_in_every_encoding_prints_none_of_them(fake, caplog):
    assert urllib.parse.quote(BANG_TOKEN, safe="") != BANG_TOKEN
    server = fake(token=lambda c: token_ok(c, BANG_TOKEN), create=echoing)
    client = client_for(server.config())
    with pytest.raises(Exception) as info:
        client.json("POST", "create", "create", json_body={})
    text = str(info.value) + caplog.text
    assert "error 15" in text
    for secret in (BANG_TOKEN, SECRET):
        for form, encoded in encodings(secret).items():
            core = encoded[4:-4] if len(encoded) > 12 else encoded
            assert core not in text, f"{form} of a secret printed"


# -- what the HTTP layer prints and sends ----------------------------------------------------------


def test_error_text_that_echoes_the_bearer_token_is_redacted(fake, caplog):
    def echo(h: Call) -> None:
        auth = h.headers.get("Authorization")
        send(h, 400, {"@attributes": {"stat": "fail", "err_code": 999}, "err": f"bad request; you sent {auth}"})

    server = fake(create=echo)
    client = client_for(server.config())
    caplog.set_level(logging.INFO)
    with pytest.raises(PardotAPIError) as info:
        client.json("POST", "create", "create", json_body={})
    logging.getLogger("tap-pardot-export").error("%s", info.value)
    logging.getLogger("singer_sdk.x").warning("issued token %s", client.tokens.token())
    assert "issued token ***" in caplog.text
    assert "you sent Bearer ***" in caplog.text
    assert TOKEN not in caplog.text and TOKEN not in str(info.value)


def test_the_redaction_filter_scrubs_args_numbers_and_user_info(caplog):
    install_redaction(lambda: ["s3cr3t-value", str(98765432109876)])
    caplog.set_level(logging.INFO)
    log = logging.getLogger("tap-pardot-export")
    log.info("secret %s, number %s, url %s", "s3cr3t-value", 98765432109876, "https://bob:pw@host.example/x")
    assert "secret ***, number ***, url https://***@host.example/x" in caplog.text
    assert REDACTION.scrub("token%20s3cr3t-value") == "token%20***"


def test_a_replaced_configured_token_stays_secret_and_finished_clients_are_forgotten(fake, caplog):
    server = fake()
    client = client_for(server.config(access_token="00Dold!configured-token"))
    assert client.tokens.refresh("00Dold!configured-token") == TOKEN
    caplog.set_level(logging.INFO)
    logging.getLogger("tap-pardot-export").info("old %s new %s", "00Dold!configured-token", TOKEN)
    assert "old *** new ***" in caplog.text
    before = len(REDACTION.sources)
    gone = client_for(server.config(client_secret="a-secret-of-a-finished-client"))
    assert len(REDACTION.sources) == before + 1
    del gone
    gc.collect()
    assert "a-secret-of-a-finished-client" not in REDACTION.secrets()


def test_a_numeric_client_secret_is_never_printed(fresh_sandbox):
    secret = 98765432109876
    sb = fresh_sandbox(client_secret=str(secret), data=_small_data())
    cfg = sb.tap_config(client_secret=secret, window_days=200)
    run = run_tap(cfg, catalog=select_streams(discover(sb.tap_config()), ["list_membership"]))
    assert str(secret) not in run.everything
    assert "Traceback" not in run.stderr


def _small_data() -> DataConfig:
    utc = dt.timezone.utc
    return DataConfig(
        start=dt.datetime(2024, 1, 1, tzinfo=utc), end=dt.datetime(2025, 1, 1, tzinfo=utc), rows={"list_membership": 50}
    )


def test_user_info_in_api_url_is_never_printed_nor_sent(fresh_sandbox):
    sb = fresh_sandbox(data=_small_data())
    host = sb.base_url.split("://", 1)[1]
    cfg = sb.tap_config(api_url=f"http://bob:hunter2-pass@{host}", window_days=200)
    run = run_tap(cfg, catalog=select_streams(discover(sb.tap_config()), ["list_membership"]))
    assert run.returncode == 0, run.stderr[-2000:]
    assert "hunter2-pass" not in run.everything
    assert run.records("list_membership")


def test_redact():
    install_redaction(lambda: [TOKEN])
    text = f"Authorization: Bearer {TOKEN} and bu 0Uv000000000001AAA and access_token={TOKEN}"
    out = scrub_answer(text)
    assert TOKEN not in out
    assert "Bearer abcdefgh1234" not in scrub_answer("Bearer abcdefgh1234")
