"""The business unit's queue, seen and tended (issue 19.8): other users' exports in the sandbox's queue.

``--list-exports`` and ``--cancel-exports`` as an operator runs them (a process of the real
command line), with and without the "Admin > Exports > View" ability (the sandbox refuses the
export query with error 46 or 49); the long-wait lines and ``--check`` count the exports ahead.
Other users' exports come from ``Sandbox.add_foreign_exports``: they hold the queue until
released. The Meltano commands are in ``tests/meltano/test_export_record.py``.
"""

from __future__ import annotations

import re
import threading
import time
import typing as t

import pytest
import requests

from tap_pardot_export.pardot import polling
from tests.helpers import BackgroundTap, discover, record_file, recorded_ids, run_command, run_tap, select_streams

if t.TYPE_CHECKING:
    from pardot_export_sandbox import Sandbox

LM = "list_membership"


def rows(out: str) -> dict[int, list[str]]:
    """The table's rows by export id (cells split on runs of two or more spaces)."""
    found = {}
    for line in out.splitlines():
        if re.match(r"^\d+\s{2,}", line):
            cells = re.split(r"\s{2,}", line.strip())
            found[int(cells[0])] = cells
    return found


def state_of(sb: Sandbox, export_id: int) -> str:
    with sb.state.lock:
        return sb.state.exports[export_id].state


def ours_waiting_behind(sb: Sandbox, foreign: int = 2) -> tuple[dict[str, t.Any], list[int], int]:
    """Other users' exports hold the queue; a tap run created its first export behind them and was killed.

    Returns the config, the foreign ids, and the id of the tap's export (Waiting, in its record).
    """
    ids = sb.add_foreign_exports(foreign, seconds=None, object_name="visitorActivity")
    config = sb.tap_config(window_days=200)
    tap = BackgroundTap(config, select_streams(discover(config), [LM]))
    assert tap.read_until(lambda m: m["type"] == "STATE" and "pending_export" in m["value"]["bookmarks"].get(LM, {}))
    tap.proc.kill()
    tap.finish()
    (mine,) = set(sb.stats()["exports"]) - set(ids)
    assert state_of(sb, mine) == "Waiting"
    return config, ids, mine


# -- the sandbox -------------------------------------------------------------------------------------------


def test_other_users_exports_hold_the_queue_and_show_in_the_query(fresh_sandbox):
    sb = fresh_sandbox()
    answer = requests.post(f"{sb.base_url}/_sandbox/foreign", json={"count": 2, "object": "prospect"}, timeout=10)
    foreign = answer.json()["ids"]  # the control route, as a demo or a test in another language uses it
    config = sb.tap_config(window_days=365, end_date="2024-02-01T00:00:00+00:00")
    tap = BackgroundTap(config, select_streams(discover(config), [LM]))
    assert tap.read_until(lambda m: m["type"] == "STATE")
    (mine,) = set(sb.stats()["exports"]) - set(foreign)
    assert state_of(sb, mine) == "Waiting" and state_of(sb, foreign[0]) == "Processing"
    assert requests.post(f"{sb.base_url}/_sandbox/foreign/release", timeout=10).ok
    run = tap.finish()
    assert run.returncode == 0, run.stderr[-2000:]
    assert {state_of(sb, i) for i in [*foreign, mine]} == {"Complete"}


# -- listing ---------------------------------------------------------------------------------------------


def test_list_exports_shows_every_users_exports_and_which_the_record_holds(fresh_sandbox, tmp_path):
    sb = fresh_sandbox()
    config, foreign, mine = ours_waiting_behind(sb)
    proc = run_command(config, "--list-exports")
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = rows(proc.stdout)
    assert list(table) == [*foreign, mine], proc.stdout  # oldest first
    assert table[foreign[0]][1:3] == ["Processing", "visitorActivity"]
    assert table[foreign[1]][1:3] == ["Waiting", "visitorActivity"]
    assert table[mine][1:3] == ["Waiting", "listMembership"]
    assert [table[i][5][:3] for i in table] == ["no", "no", "yes"]
    assert f"yes: {LM} [2023-12-31T23:59:59 .. 2024-07-19T00:00:00)" in table[mine][5]
    assert "3 export(s), 3 of them Waiting or Processing; 1 in this tap's record" in proc.stdout
    assert sb.config.client_secret not in proc.stdout + proc.stderr


@pytest.mark.parametrize("code", [46, 49])
def test_list_exports_without_the_ability_lists_the_record_and_says_why(fresh_sandbox, tmp_path, code):
    sb = fresh_sandbox()
    config, _, mine = ours_waiting_behind(sb)
    sb.config.export_view_refusal = code
    proc = run_command(config, "--list-exports")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert list(rows(proc.stdout)) == [mine]
    assert f"lacks the Admin > Exports > View ability, so Pardot lists no export (error {code})" in proc.stdout
    assert "Traceback" not in proc.stderr


# -- canceling -------------------------------------------------------------------------------------------


def test_cancel_exports_cancels_those_in_the_record_and_no_one_elses(fresh_sandbox, tmp_path, record_dir):
    sb = fresh_sandbox()
    config, foreign, mine = ours_waiting_behind(sb)
    proc = run_command(config, "--cancel-exports")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert rows(proc.stdout)[mine][-1] == "canceled (was Waiting)"
    assert state_of(sb, mine) == "Canceled"
    assert [state_of(sb, i) for i in foreign] == ["Processing", "Waiting"]
    assert recorded_ids(record_dir, sb) == set(), "a canceled export leaves the record"
    again = run_command(config, "--cancel-exports")
    assert again.returncode == 0 and "the record holds none" in again.stdout


def test_cancel_exports_by_id_for_a_record_on_another_machine(fresh_sandbox, tmp_path):
    sb = fresh_sandbox()
    foreign = sb.add_foreign_exports(3, seconds=None)
    config = sb.tap_config()
    proc = run_command(config, "--cancel-exports", str(foreign[1]), f"{foreign[2]},{foreign[0]}")
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    table = rows(proc.stdout)
    assert table[foreign[1]][-1] == table[foreign[2]][-1] == "canceled (was Waiting)"
    assert table[foreign[0]][-1] == "canceled (was Processing)"
    assert [state_of(sb, i) for i in foreign] == ["Canceled"] * 3
    done = run_command(config, "--cancel-exports", str(foreign[0]))
    assert done.returncode == 0 and "nothing to cancel: it is Canceled" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cancel-exports", "abc"], "'abc' is not an export id"),
        (["--cancel-exports", "1001,-3"], "'-3' is not an export id"),
        (["1001"], "unexpected argument(s) 1001: export ids go after --cancel-exports"),
        (["--list-exports", "--cancel-exports"], "one at a time"),
    ],
)
def test_a_wrong_command_line_is_one_clear_line(sandbox, tmp_path, args, message):
    proc = run_command(sandbox.tap_config(), *args)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_cancel_exports_says_what_it_could_not_do_and_exits_1(fresh_sandbox, tmp_path):
    sb = fresh_sandbox(export_view_refusal=49)
    foreign = sb.add_foreign_exports(1, seconds=None)
    proc = run_command(sb.tap_config(), "--cancel-exports", str(foreign[0]), "999999")
    assert proc.returncode == 1
    table = rows(proc.stdout)
    assert table[foreign[0]][-1].startswith("NOT canceled: cancel failed: the API user lacks an ability"), proc.stdout
    assert table[999999][-1].startswith("cannot be read: read failed"), proc.stdout
    assert "some exports could not be canceled" in proc.stdout
    assert state_of(sb, foreign[0]) == "Processing"


def test_a_settings_error_is_named(sandbox, tmp_path):
    proc = run_command({**sandbox.tap_config(), "max_concurrency": 99}, "--list-exports")
    assert proc.returncode == 1
    assert "max_concurrency" in proc.stderr and "Traceback" not in proc.stderr


# -- the exports ahead -----------------------------------------------------------------------------------


def test_a_long_wait_says_how_many_exports_are_ahead(fresh_sandbox, monkeypatch):
    """Two other users' exports are held ahead of ours, then released one at a time, each after a count."""
    monkeypatch.setattr(polling, "HEARTBEAT_SECONDS", 0.3)
    sb = fresh_sandbox()
    foreign = sb.add_foreign_exports(2, seconds=None)

    def queries() -> int:
        return int(sb.stats()["calls"].get("query", 0))

    def until(done: t.Callable[[], bool]) -> None:
        end = time.monotonic() + 120
        while not done() and time.monotonic() < end:
            time.sleep(0.02)

    def release_after_each_count() -> None:
        seen = 0
        for ahead in foreign:  # a heartbeat counts the exports ahead (an export query), then one of them ends
            # two counts: the first was answered after the last release, and logged before the second was asked
            until(lambda: queries() > seen + 1)  # noqa: B023 - seen is read while this iteration waits
            sb.release_foreign_exports([ahead])
            until(lambda: sb.stats()["exports"][ahead]["state"] == "Complete")  # noqa: B023 - likewise
            seen = queries()  # the next count is taken with one export fewer ahead

    releaser = threading.Thread(target=release_after_each_count, daemon=True)
    releaser.start()
    cfg = sb.tap_config(window_days=365, end_date="2024-02-01T00:00:00+00:00")
    run = run_tap(cfg, catalog=select_streams(discover(cfg), [LM]))
    releaser.join(timeout=10)
    sb.release_foreign_exports()
    assert run.returncode == 0, run.stderr[-2000:]
    (mine,) = set(sb.stats()["exports"]) - set(foreign)
    said = re.findall(rf"still waiting for export {mine}: Waiting for \d+s \(.*?: (\d) other export", run.stderr)
    assert said and said[0] == "2", run.stderr[-3000:]
    assert "1" in said, "the count falls as the exports ahead finish"


def test_a_long_wait_without_the_ability_says_so_once(fresh_sandbox, monkeypatch):
    monkeypatch.setattr(polling, "HEARTBEAT_SECONDS", 0.2)
    sb = fresh_sandbox(export_view_refusal=46)
    sb.add_foreign_exports(2, seconds=1.5)
    cfg = sb.tap_config(window_days=365, end_date="2024-02-01T00:00:00+00:00")
    run = run_tap(cfg, catalog=select_streams(discover(cfg), [LM]))
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stderr.count("still waiting for export") >= 2, run.stderr[-3000:]
    assert run.stderr.count("the exports ahead of it cannot be counted") == 1
    assert sb.stats()["calls"]["query"] == 1, "the query is not asked again once refused"


def test_check_counts_the_exports_in_the_queue(fresh_sandbox, tmp_path, record_dir):
    sb = fresh_sandbox()
    config, _, _ = ours_waiting_behind(sb)
    proc = run_command(config, "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    assert "queue: 3 export(s) Waiting or Processing in the business unit (1 of them in the tap's" in proc.stdout
    assert f"record_dir: {record_file(record_dir, sb)} can be written (1 export(s)" in proc.stdout
    sb.config.export_view_refusal = 49
    blind = run_command(config, "--check")
    assert blind.returncode == 0, blind.stdout
    assert "NOTE  queue: the API user lacks the Admin > Exports > View ability" in blind.stdout
