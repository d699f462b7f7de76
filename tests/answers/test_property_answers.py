"""Property: whatever sequence of answers Pardot (or something posing as it) gives, the tap either
exits 0 with exactly the truth, or exits non-zero with a clear message and no bookmark past a row it
did not emit; no secret is printed or sent to a host that is not configured.

A fake Pardot on loopback (tests/fake_pardot.py) answers each call (token, create, read, download)
from a script of faults drawn by hypothesis, then answers correctly. Its other host plays "another
host": redirects point there, and it must never receive a credential.
"""

from __future__ import annotations

import csv
import io
import typing as t

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.fake_pardot import SECRETS, Call, FakePardot, Route, reset, send
from tests.helpers import RecordedWaits, run_tap

END = "2024-02-01T00:00:00+00:00"
CREATED_AT = "2024-03-01 10:00:00"

# the truth: 24 list memberships, stamped in January (New York is UTC-5 then)
TRUTH: list[dict[str, t.Any]] = [
    {
        "id": 1000 + i,
        "list_id": 7 + i % 3,
        "prospect_id": 500 + i,
        "opted_out": i % 4 == 0,
        "created_at": (f"2024-01-{1 + i:02d} 0{i % 10}:15:00", f"2024-01-{1 + i:02d}T{5 + i % 10:02d}:15:00+00:00"),
        "updated_at": (f"2024-01-{2 + i:02d} 1{i % 8}:30:45", f"2024-01-{2 + i:02d}T{15 + i % 8:02d}:30:45+00:00"),
    }
    for i in range(24)
]

TOKEN_ANSWERS = ["http_500", "redirect", "html_200", "reset", "not_object", "invalid_grant"]
CREATE_ANSWERS = ["http_503", "code_66", "html_200", "code_122_at_200", "redirect", "reset", "bad_id"]
READ_ANSWERS = ["waiting", "http_500", "reset", "html_200", "weird_state", "failed", "expired"]
DOWNLOAD_ANSWERS = [
    "html_200",
    "envelope_200",
    "redirect",
    "cut",
    "other_case_header",
    "short_row",
    "open_quote",
    "reset",
    "http_503",
    "missing_column",
    "bad_datetime",
    "bom_crlf",
]


def csv_body(fields: list[str], rows: list[dict[str, t.Any]], *, header_case: str = "same") -> bytes:
    """The rows as Pardot writes them: local datetimes, booleans as true/false, LF line ends."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow([f.upper() if header_case == "upper" else f for f in fields])
    for r in rows:
        cells = []
        for f in fields:
            v = r.get(f)
            if isinstance(v, tuple):
                v = v[0]
            elif isinstance(v, bool):
                v = "true" if v else "false"
            cells.append("" if v is None else str(v))
        w.writerow(cells)
    return out.getvalue().encode()


def truth_file(c: Call, *, header_case: str = "same") -> bytes:
    """Result file k of the two: every other row of the truth, from the k-th."""
    return csv_body(c.fields, TRUTH[c.file - 1 :: 2], header_case=header_case)


def csv_answer(make: t.Callable[[Call], bytes]) -> Route:
    return lambda c: send(c, 200, make(c), {"Content-Type": "text/csv"})


def cut(c: Call) -> None:
    """Half the file, then a reset: shorter than its Content-Length."""
    body = truth_file(c)
    send(c, 200, body[: len(body) // 2], {"Content-Type": "text/csv", "Content-Length": str(len(body))})
    reset(c)


#: the faults of one kind of call (the fake has those every call may meet: reset, http_NNN, html_200, redirect)
FAULTS: dict[str, Route] = {
    "not_object": lambda c: send(c, 200, [1, 2]),
    "invalid_grant": lambda c: send(
        c, 400, {"error": "invalid_grant", "error_description": "expired access/refresh token"}
    ),
    "code_66": lambda c: send(c, 400, {"@attributes": {"stat": "fail", "err_code": 66}, "err": "concurrent limit"}),
    "code_122_at_200": lambda c: send(c, 200, {"@attributes": {"stat": "fail", "err_code": 122}, "err": "daily limit"}),
    "bad_id": lambda c: send(c, 200, {"export": {"id": "abc", "state": "Waiting", "createdAt": CREATED_AT}}),
    "waiting": lambda c: send(c, 200, {"export": {"id": 1, "state": "Waiting"}}),
    "weird_state": lambda c: send(c, 200, {"export": {"id": 1, "state": "Paused"}}),
    "failed": lambda c: send(c, 200, {"export": {"id": 1, "state": "Failed"}}),
    "expired": lambda c: send(c, 200, {"export": {"id": 1, "state": "Complete", "isExpired": True}}),
    "envelope_200": lambda c: send(c, 200, {"@attributes": {"stat": "fail", "err_code": 178}, "err": "export expired"}),
    "cut": cut,
    "other_case_header": csv_answer(lambda c: truth_file(c, header_case="upper")),
    "short_row": csv_answer(lambda c: truth_file(c) + b"1,2\n"),
    "open_quote": csv_answer(lambda c: truth_file(c) + b'9999,"unterminated'),
    "missing_column": csv_answer(
        lambda c: csv_body([f for f in c.fields if f != "updated_at"], TRUTH[c.file - 1 :: 2])
    ),
    "bad_datetime": csv_answer(lambda c: truth_file(c).replace(b":15:00", b":99:99", 1)),
    "bom_crlf": csv_answer(lambda c: b"\xef\xbb\xbf" + truth_file(c).replace(b"\n", b"\r\n")),
}


def faults_of(kinds: list[str], max_size: int, clean: int) -> st.SearchStrategy[list[str]]:
    """Fault lists, empty ``clean`` times in ``clean + 1``: faults on first contact end most runs at once."""
    return st.one_of(*[st.just([])] * clean, st.lists(st.sampled_from(kinds), min_size=1, max_size=max_size))


answers = st.fixed_dictionaries(
    {
        "token": faults_of(TOKEN_ANSWERS, 2, 3),
        "create": faults_of(CREATE_ANSWERS, 2, 2),
        "read": faults_of(READ_ANSWERS, 3, 1),
        "download": faults_of(DOWNLOAD_ANSWERS, 3, 0),
    }
)


def expected_records() -> dict[int, dict[str, t.Any]]:
    return {r["id"]: {k: (v[1] if isinstance(v, tuple) else v) for k, v in r.items()} for r in TRUTH}


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(faults=answers)
def test_any_sequence_of_answers_ends_in_the_truth_or_a_clear_failure(
    catalog: dict[str, t.Any], instant_retries: RecordedWaits, faults: dict[str, list[str]]
) -> None:
    download = csv_answer(truth_file)
    with FakePardot(script=faults, faults=FAULTS, files=2, created_at=CREATED_AT, download=download) as server:
        cfg = server.config(end_date=END, max_retries=3, request_timeout=2, download_timeout=5)
        run = run_tap(cfg, catalog=catalog, timeout=60)
        log, elsewhere = server.log, server.elsewhere.requests
    text = run.everything
    for secret in SECRETS:
        assert secret not in text, f"a secret was printed ({log})"
    assert elsewhere == [], f"a request reached a host that is not configured ({log})"
    assert "Traceback" not in run.stderr, f"{log}: {run.stderr[-1500:]}"
    event(f"exit {run.returncode}")
    if run.returncode == 0:
        records, truth = run.records("list_membership"), expected_records()
        assert {r["id"] for r in records} == set(truth), f"exit 0 without every row ({log})"
        wrong = [r for r in records if r != truth[r["id"]]]
        assert not wrong, f"exit 0 with wrong values, e.g. {wrong[:1]} ({log})"
        bookmark = run.final_state["bookmarks"]["list_membership"]["replication_key_value"]
        assert bookmark == END
    else:
        assert " ERROR " in run.stderr or "| ERROR" in run.stderr, f"no error message ({log})"
        bookmarks = run.final_state.get("bookmarks", {}).get("list_membership", {})
        value = bookmarks.get("replication_key_value")
        emitted = {r["id"] for r in run.records("list_membership") if r == expected_records()[r["id"]]}
        behind = {rid for rid, r in expected_records().items() if value is not None and r["updated_at"] < value}
        assert behind <= emitted, f"bookmark {value} moved past rows not emitted ({log})"
