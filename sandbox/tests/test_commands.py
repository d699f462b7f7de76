"""``pardot-export-sandbox counts`` and ``records``: the counts an export sees, and changes while running."""

from __future__ import annotations

import datetime as dt
import json
import typing as t

import pytest
from conftest import make_config

from pardot_export_sandbox import Sandbox, cli
from pardot_export_sandbox.changes import default_procedure

UTC = dt.timezone.utc
START, END = dt.datetime(2024, 3, 1, tzinfo=UTC), dt.datetime(2024, 9, 1, tzinfo=UTC)


@pytest.fixture
def sb() -> t.Iterator[Sandbox]:
    with Sandbox(make_config()) as started:
        yield started


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def truth(sb: Sandbox, stream: str, start: dt.datetime, end: dt.datetime, *, field: str | None = None) -> int:
    """Live rows with start <= field < end, counted the long way (every row, no candidate ranges)."""
    obj = sb.dataset.objects[stream]
    proc = default_procedure(obj)
    fn = obj.times[field or t.cast("str", proc.time_field)][0]
    lo, hi = int(start.timestamp()), int(end.timestamp())
    deleted = obj.is_deleted or (lambda _i: False)
    return sum(1 for i in range(obj.count + obj.added) if lo <= fn(i) < hi and not deleted(i))


def counts(capsys: pytest.CaptureFixture[str], sb: Sandbox, *extra: str) -> dict[str, int]:
    code, out, err = run(capsys, "counts", "--url", sb.base_url, "--json", *extra)
    assert code == 0, err
    return {c["object"]: c["count"] for c in json.loads(out)["counts"]}


def test_counts_are_the_rows_of_the_window_by_the_default_procedures_field(sb, capsys):
    got = counts(capsys, sb, "--start", START.isoformat(), "--end", END.isoformat())
    assert set(got) == set(sb.dataset.objects)
    for stream, n in got.items():
        assert n == truth(sb, stream, START, END), stream
    assert 0 < got["prospect"] < sb.dataset.objects["prospect"].count


def test_counts_by_another_procedure_and_as_a_table(sb, capsys):
    code, out, _ = run(
        capsys, "counts", "--url", sb.base_url, "--object", "visitorActivity", "--procedure", "filter_by_created_at"
    )
    assert code == 0
    head, columns, row = out.splitlines()
    assert head.startswith("live records with 2024-01-01T00:00:00+00:00 <= field < ")
    assert columns.split() == ["object", "procedure", "field", "rows"]
    stream, proc, field, n = row.split()
    assert (stream, proc, field) == ("visitor_activity", "filter_by_created_at", "created_at")
    assert int(n) == truth(sb, stream, dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2026, 1, 1, tzinfo=UTC))


def test_records_added_updated_and_deleted_change_the_counts(sb, capsys):
    window = ("--start", START.isoformat(), "--end", END.isoformat(), "--object", "prospect")
    before = counts(capsys, sb, *window)["prospect"]
    obj = sb.dataset.objects["prospect"]
    url = sb.base_url
    code, out, err = run(capsys, "records", "--url", url, "add", "prospect", "--count", "3", "--at", "2024-05-01")
    assert code == 0, err
    added = [int(x) for x in out.split(":")[-1].split()]
    assert out.startswith("prospect: added 3 record(s): ")
    assert added == [obj.base_id + obj.count + k for k in range(3)]
    # a live record outside the window, moved into it; a live record inside it, deleted
    fn = obj.times["updated_at"][0]
    outside = next(
        obj.base_id + i for i in range(obj.count) if fn(i) >= END.timestamp() and not t.cast("t.Any", obj.is_deleted)(i)
    )
    inside = next(
        obj.base_id + i
        for i in range(obj.count)
        if START.timestamp() <= fn(i) < END.timestamp() and not t.cast("t.Any", obj.is_deleted)(i)
    )
    assert run(capsys, "records", "--url", url, "update", "prospect", str(outside), "--at", "2024-06-01")[0] == 0
    assert run(capsys, "records", "--url", url, "delete", "prospect", str(inside))[0] == 0
    after = counts(capsys, sb, *window)["prospect"]
    assert after == before + 3 + 1 - 1 == truth(sb, "prospect", START, END)
    assert counts(capsys, sb, *window, "--deleted", "true")["prospect"] >= 1


def test_a_v5_change_goes_through(sb, capsys):
    change = json.dumps({"op": "add", "object": "campaign", "count": 1})
    code, out, err = run(capsys, "records", "--url", sb.base_url, "v5", change)
    assert code == 0, err
    assert len(json.loads(out)["records"]) == 1


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["records", "add", "nothing"], "unknown export object 'nothing'"),
        (["records", "update", "external_activity", "60000001"], "external_activity has no updated_at"),
        (["records", "delete", "prospect", "1"], "no prospect record has id 1"),
        (["records", "delete", "external_activity", "60000001"], "external_activity has no recycle bin"),
        (["counts", "--procedure", "filter_by_nothing", "--object", "prospect"], "prospect has no procedure"),
        (["counts", "--start", "March"], "start must be an ISO 8601 date or datetime"),
        (["records", "v5", "{"], "the change is not JSON"),
    ],
)
def test_a_refusal_is_one_line(sb, capsys, argv, said):
    command, *rest = argv
    code, out, err = run(capsys, command, "--url", sb.base_url, *rest)
    assert code == 1
    assert not out
    assert err.startswith("error: ") and said in err and err.count("\n") == 1


def test_a_sandbox_not_running_is_named(capsys):
    code, _, err = run(capsys, "counts", "--url", "http://127.0.0.1:9")
    assert code == 1
    assert "cannot reach the sandbox at http://127.0.0.1:9" in err
