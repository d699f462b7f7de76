"""Answers consistent over time: one export id for one request, links that come late, one file under several links.

An export id answering for another window (or for an export a state records for another request)
is refused before anything reads it; a state naming one export for two windows is corrupted. A
``Complete`` without result links is read once more before its window counts as empty. Links RFC
3986 makes equivalent are one file, downloaded once; a file whose bytes repeat another is read
once. Against a fake Pardot on loopback (``tests/fake_pardot.py``): exit 0 with exactly the rows
served, or a non-zero exit with a clear message and no bookmark past a row not emitted.
"""

from __future__ import annotations

import datetime as dt
import typing as t

import pytest

from tap_pardot_export.engine.state import state_errors
from tap_pardot_export.pardot.exports import result_refs
from tap_pardot_export.pardot.urls import link_key, remove_dot_segments
from tests.fake_pardot import (
    END,
    START,
    STREAM,
    Call,
    Route,
    assert_exact,
    assert_no_secret,
    assert_refused,
    bookmarks,
    csv_body,
    many,
    send,
)

UTC = dt.timezone.utc

ROWS, TYPED = many()

QUARTER = dt.timedelta(hours=6)  # window_days 0.25: four windows in the day

ABSENT = object()


# -- one export id, one request --------------------------------------------------------------------


def data(c: Call, rows: list[dict[str, str]] = ROWS) -> bytes:
    return csv_body(c.fields, rows)


def in_window(rows: list[dict[str, str]], start: dt.datetime, end: dt.datetime) -> list[dict[str, str]]:
    """The rows whose updated_at (New York's wall clock) falls in ``[start, end)``."""

    def utc(row: dict[str, str]) -> dt.datetime:
        local = dt.datetime.strptime(row["updated_at"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        return local + dt.timedelta(hours=5)

    return [r for r in rows if start <= utc(r) < end]


def first_window_file(c: Call) -> bytes:
    """Export 1's file: the rows of the window its first create asked for (every create answers export 1)."""
    return data(c, in_window(ROWS, START, START + QUARTER))


@pytest.mark.parametrize("ahead", [0, 1], ids=["one at a time", "created ahead"])
def test_an_export_id_answering_for_another_window_is_refused(serve, ahead):
    """Found: every create answered export 1: window 1's file was read four times, 225 of 300 rows lost, exit 0."""
    server, run = serve(first_window_file, config={"window_days": 0.25, "max_queued_exports": ahead})
    assert run.returncode != 0 and "Traceback" not in run.stderr, run.stderr[-3000:]
    assert "export 1, which this run already reads for another request" in run.stderr, run.stderr[-3000:]
    assert "list_membership [2024-01-01T06:00:00+00:00 .. 2024-01-01T12:00:00+00:00)" in run.stderr
    assert_no_secret(run)
    ids = [r["id"] for r in run.records(STREAM)]
    assert len(ids) == len(set(ids)), "a file was read twice"
    assert set(ids) <= {int(r["id"]) for r in in_window(ROWS, START, START + QUARTER)}
    marks = [dt.datetime.fromisoformat(m) for m in bookmarks(run)]
    assert all(m <= START + QUARTER for m in marks), marks
    assert server.count("download") <= 1


def test_an_export_id_a_state_records_for_another_request_is_never_read_for_this_one(serve):
    """A state's export (here of a query this run no longer asks: other fields) is bound before any call."""
    entry = {"id": 1, "after": "2023-12-31T23:59:59+00:00", "before": "2024-01-02T00:00:00+00:00", "query": "0" * 16}
    state = {"bookmarks": {STREAM: {"replication_key": "updated_at", "pending_export": entry}}}
    server, run = serve(data, state=state)
    assert_refused(run, "export 1, which this run already reads for another request", "from state")
    assert server.count("download") == 0 and not run.records(STREAM)


def test_a_state_naming_one_export_for_two_windows_is_corrupted(serve):
    entry = {"after": "2023-12-31T23:59:59+00:00", "before": "2024-01-01T12:00:00+00:00", "query": "a" * 16}
    later = {**entry, "after": "2024-01-01T11:59:59+00:00", "before": "2024-01-02T00:00:00+00:00", "query": "b" * 16}
    state = {"bookmarks": {STREAM: {"pending_export": {**entry, "id": 7}, "queued_exports": [{**later, "id": 7}]}}}
    server, run = serve(data, state=state)
    assert_refused(run, "The state is corrupted", "export 7 is recorded for two windows", "meltano state clear")
    assert server.count("create") == 0 and server.count("download") == 0
    other = {
        "bookmarks": {STREAM: {"pending_export": {**entry, "id": 7}}, "visitor": {"pending_export": {**later, "id": 7}}}
    }
    assert state_errors(other) == [
        "export 7 is recorded for two windows (list_membership [2023-12-31T23:59:59+00:00 .. "
        "2024-01-01T12:00:00+00:00] and visitor [2024-01-01T11:59:59+00:00 .. 2024-01-02T00:00:00+00:00])"
    ]


# -- result links ----------------------------------------------------------------------------------


def complete_with(refs: t.Callable[[Call], t.Any]) -> Route:
    """A read answering the export Complete with ``refs(call)`` as its ``resultRefs`` (ABSENT: none)."""

    def read(c: Call) -> None:
        answer = c.fake.export("Complete", resultRefs=refs(c))
        if answer["export"]["resultRefs"] is ABSENT:
            del answer["export"]["resultRefs"]
        send(c, 200, answer)

    return read


@pytest.mark.parametrize("empty", [ABSENT, "", [], [""]], ids=["absent", "empty string", "empty list", "[''"])
def test_a_complete_export_whose_links_come_in_a_later_read_is_read_whole(serve, empty):
    """Found: the first Complete listed no link, the next did: 0 of 300 rows, bookmark moved."""
    server, run = serve(data, read=complete_with(lambda c: empty if c.attempt == 1 else c.fake.links))
    assert_exact(run, TYPED)
    assert server.count("read") == 2 and server.count("download") == 1


def test_a_complete_export_without_links_twice_is_an_empty_window(serve):
    server, run = serve(data, read=complete_with(lambda c: ABSENT))
    assert run.returncode == 0, run.stderr[-3000:]
    assert not run.records(STREAM)
    assert bookmarks(run)[-1] == END.isoformat()
    assert server.count("read") == 2, "read once more, not more"
    assert "Complete without result files; reading it once more" in run.stderr


def spellings(c: Call) -> list[str]:
    """One file's link in spellings RFC 3986 makes equivalent."""
    base = c.fake.url
    return [
        f"{base}/dl/1",
        f"{base}/dl/1#part-2",
        f"HTTP://127.0.0.1:{c.fake.port}/dl/1",
        f"{base}/dl/x/../1",
        f"{base}/dl/./1",
        f"{base}/%64l/%31",
    ]


def test_one_file_under_equivalent_spellings_of_its_link_is_downloaded_once(serve):
    """Found: the same file under three spellings of its link: every row emitted three times."""
    server, run = serve(data, read=complete_with(spellings))
    assert_exact(run, TYPED)
    assert server.count("download") == 1


def test_one_file_under_links_that_differ_is_read_once_by_its_content(serve):
    """``//`` is not an RFC 3986 equivalence (nor ``/dl/2``): both are fetched, and the repeat is read once."""
    links = complete_with(lambda c: [f"{c.fake.url}/dl/1", f"{c.fake.url}//dl/1", f"{c.fake.url}/dl/2"])
    server, run = serve(data, read=links)
    assert_exact(run, TYPED)
    assert server.count("download") == 3
    assert run.stderr.count("has the same bytes as result file") == 2


def test_links_that_differ_in_their_query_are_other_files(serve):
    """``?x=1`` may name another file: both are downloaded and read, each its own rows."""
    half = len(ROWS) // 2

    def body(c: Call) -> bytes:
        return data(c, ROWS[half:] if "x=1" in c.path else ROWS[:half])

    server, run = serve(body, read=complete_with(lambda c: [f"{c.fake.url}/dl/1", f"{c.fake.url}/dl/1?x=1"]))
    assert_exact(run, TYPED)
    assert server.count("download") == 2


def test_link_keys_follow_rfc_3986():
    base = "https://pi.pardot.com/dl/1"
    same = [
        "https://pi.pardot.com/dl/1#frag",
        "HTTPS://PI.Pardot.COM:443/dl/1",
        "https://pi.pardot.com/x/../dl/1",
        "https://pi.pardot.com/dl/./1",
        "https://pi.pardot.com/%64l/%31",
        "https://pi.pardot.com/dl/%2E/1",
        " https://pi.pardot.com/dl/1",
    ]
    other = [
        "https://pi.pardot.com/dl/1?x=1",
        "https://pi.pardot.com//dl/1",
        "https://pi.pardot.com:8443/dl/1",
        "http://pi.pardot.com/dl/1",
        "https://pi.pardot.com/dl/1/",
        "https://pi.pardot.com/DL/1",
        "https://pi.pardot.com/dl/1%2F",
    ]
    assert {link_key(u) for u in same} == {link_key(base)}
    assert all(link_key(u) != link_key(base) for u in other)
    assert link_key("http://h/a%2fb?q=%7e") == "http://h/a%2Fb?q=~"
    assert link_key("HTTP://[::1]:80") == "http://[::1]/"
    assert remove_dot_segments("/a/b/c/./../../g") == "/a/g" and remove_dot_segments("mid/content=5/../6") == "mid/6"
    refs = result_refs({"id": 1, "resultRefs": [base, "", "https://pi.pardot.com:443/dl/1", base + "?x=1"]})
    assert refs == [base, base + "?x=1"], "the first spelling, as given"
