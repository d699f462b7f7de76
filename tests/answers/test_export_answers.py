"""Export answers (create and read) checked: ids, states, ``createdAt``, result links; a bad one named with context.

An export id that is not a positive integer is refused; a ``createdAt`` in another form never
tracebacks; a result link listed twice is downloaded once; an answer the tap cannot read (not
JSON, an unknown state, a row that does not fit) fails naming the stream, export, file and line.
Every shape Pardot wraps an export in is unwrapped.
"""

from __future__ import annotations

import re

import pytest

from tap_pardot_export.errors import ResultFormatError
from tap_pardot_export.pardot.exports import export_id, result_refs, unwrap_export
from tests.fake_pardot import ROWS, STREAM, assert_exact, assert_refused, send
from tests.helpers import run_tap
from tests.sandbox_runs import assert_no_secrets, one_stream, small


@pytest.mark.parametrize("bad_id", ["abc", 1.5, None, -3, True])
def test_an_export_id_that_is_not_an_integer_is_refused(serve, bad_id):
    server, run = serve(export_id=bad_id)
    assert_refused(run, "list_membership", "create", "export id that is not a positive integer")
    assert server.count("download") == 0


def test_an_export_id_as_a_decimal_string_is_used(serve):
    _, run = serve(export_id="1")
    assert_exact(run)


@pytest.mark.parametrize("created_at", ["2024-01-01T19:00:05-05:00", "Tuesday", 1704153605, None])
def test_created_at_in_another_form_never_tracebacks(serve, created_at):
    """Without timezone the offset is inferred from createdAt where it can be parsed, else unknown."""
    _, run = serve(created_at=created_at, config={"timezone": None, "infer_timezone": True})
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    if isinstance(created_at, str) and created_at.endswith("-05:00"):
        assert_exact(run)  # the offset it carries is New York's in January
    elif run.returncode == 0:
        assert len(run.records(STREAM)) == len(ROWS)


@pytest.mark.usefixtures("instant_retries")
def test_a_result_link_listed_twice_is_downloaded_once(fake, catalog):
    """Found: each listed copy was downloaded and emitted: every row of the file twice, calls doubled."""
    rows = [{**row, "id": str(k)} for k, row in enumerate(ROWS, 1)]  # ids 1, 2 and 3
    server = fake(rows=rows, read=lambda c: send(c, 200, c.fake.export("Complete", resultRefs=c.fake.links * 3)))
    run = run_tap(server.config(), catalog=catalog)
    assert run.returncode == 0, run.stderr[-2000:]
    assert sorted(r["id"] for r in run.records()) == [1, 2, 3]
    assert server.hits("/dl/1") == 1


@pytest.mark.parametrize(
    ("kind", "op", "count", "words"),
    [
        ("not_json", "read", 20, "a body that is not JSON"),
        ("weird_state", "read", 1, "in a state the tap does not know ('Exploded')"),
        ("bad_row", "download", 1, "2 columns where the header has 6"),
        ("bad_value", "download", 1, "column 'id': not an integer: 'not-a-number'"),
    ],
)
def test_bad_api_answers_fail_with_context(fresh_sandbox, instant_retries, kind, op, count, words):
    sb = small(fresh_sandbox)
    sb.inject(kind, count=count, op=op)
    cfg, cat = one_stream(sb, "list_membership", window_days=400 // 2, max_retries=1)
    run = run_tap(cfg, catalog=cat)
    assert run.returncode != 0
    assert words in run.stderr
    assert "Traceback" not in run.stderr
    if op == "download":
        eid = min(sb.stats()["exports"])  # the window read; the next one's export was created ahead
        assert re.search(rf"list_membership.*: export {eid}, result file \d+, (line|row) \d+", run.stderr)
    assert_no_secrets(run, sb)


# -- units -----------------------------------------------------------------------------------------


def test_export_answers_are_validated():
    assert export_id(7, "x") == 7 and export_id(" 7 ", "x") == 7
    for bad in ("abc", 1.5, 7.0, None, True, 0, -1, "1e3", [1]):
        with pytest.raises(ResultFormatError, match=r"create: .*not a positive integer"):
            export_id(bad, "create")
    with pytest.raises(ResultFormatError, match="state the tap does not know"):
        unwrap_export({"export": {"id": 1, "state": "Sleeping"}}, "read")
    with pytest.raises(ResultFormatError, match="not the one asked for"):
        unwrap_export({"export": {"id": 2, "state": "Complete"}}, "read", expect_id=1)
    assert unwrap_export({"export": {"id": "3", "state": "Waiting", "createdAt": 5}}, "c") == {
        "id": 3,
        "state": "Waiting",
        "createdAt": None,
    }


@pytest.mark.parametrize(
    ("body", "refs"),
    [
        ({"export": {"id": 1, "state": "Complete"}}, []),
        (
            {"@attributes": {"stat": "ok"}, "export": {"id": 1, "state": "Complete", "resultRefs": "http://h/a"}},
            ["http://h/a"],
        ),
        ({"id": 1, "state": "Complete", "resultRefs": ["http://h/a", "http://h/b"]}, ["http://h/a", "http://h/b"]),
        ({"export": [{"id": 1, "state": "Complete", "resultsRef": "http://h/c"}]}, ["http://h/c"]),
    ],
)
def test_every_export_shape(body, refs):
    export = unwrap_export(body, "test")
    assert export["id"] == 1 and result_refs(export) == refs


def test_answers_without_an_export_are_refused():
    from tap_pardot_export.errors import ResultFormatError

    bodies: tuple[object, ...] = ({"result": {"total_results": 0}}, [], {"export": {"state": "Complete"}})
    for body in bodies:
        with pytest.raises(ResultFormatError):
            unwrap_export(body, "read")
