"""A state the tap cannot use is refused before any call: "The state is corrupted", naming the key and a way out.

A state file cut short, not JSON (NaN, Infinity, nesting past the parser), a bookmark that is not
a date or lies in antiquity or the future, a learned rate out of range, a recycle-bin pass inside
a pass, exports queued ahead that are not exports; each message says how to start over (delete
the state file, ``meltano state clear``). What the tap writes, it reads back.
"""

from __future__ import annotations

import json
import typing as t

import pytest

from tap_pardot_export.engine.state import parse_state, state_errors
from tap_pardot_export.errors import PardotConfigError
from tap_pardot_export.tap import TapPardotExport
from tests.fake_pardot import assert_clean_failure
from tests.helpers import run_tap
from tests.settings_helpers import LOOPBACK, config, tap_cli


def test_a_truncated_state_file_is_refused_with_how_to_start_over(tmp_path):
    cfg_path = tmp_path / "config.json"
    cfg_path.write_text(json.dumps(config(**LOOPBACK)))
    state_path = tmp_path / "state.json"
    state_path.write_text('{"bookmarks": {"prospect": {"replication_key": "updated_at", "replication_key_val')
    proc = tap_cli("--config", str(cfg_path), "--state", str(state_path))
    assert proc.returncode == 1
    assert "The state is not valid JSON" in proc.stderr
    assert "delete the state file" in proc.stderr
    assert "meltano state clear" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize(
    ("state", "words"),
    [
        ({"bookmarks": {"prospect": {"replication_key_value": "last week"}}}, "bookmark of prospect ('last week')"),
        ({"bookmarks": {"prospect": {"replication_key_value": 17}}}, "bookmark of prospect ('17') is not a date"),
        ({"bookmarks": {"prospect": "2024-01-01"}}, "the bookmark of prospect is not an object"),
        ({"bookmarks": []}, "its bookmarks are not an object"),
        ({"bookmarks": {"visitor": {"pending_export": {"id": "abc"}}}}, "export in flight recorded for visitor"),
        (
            {"bookmarks": {"visitor": {"replication_key_value": "2099-01-01T00:00:00+00:00"}}},
            "the bookmark of visitor (2099-01-01T00:00:00+00:00) is later than now",
        ),
    ],
)
def test_a_corrupted_bookmark_is_refused_with_how_to_start_over(state, words):
    with pytest.raises(PardotConfigError) as info:
        TapPardotExport(config=config(), state=state, parse_env_config=False)
    message = str(info.value)
    assert words in message
    assert "meltano state clear" in message


def test_a_good_state_is_accepted():
    state = {
        "bookmarks": {
            "prospect": {"replication_key": "updated_at", "replication_key_value": "2024-05-01T00:00:00+00:00"},
            "visitor": {"pending_export": {"id": 42, "after": "x", "before": "y", "query": "q"}},
        }
    }
    tap = TapPardotExport(config=config(), state=state, parse_env_config=False)
    assert tap.state["bookmarks"]["prospect"]["replication_key_value"] == "2024-05-01T00:00:00+00:00"
    assert parse_state("") == {}


@pytest.mark.usefixtures("instant_retries")
def test_a_bookmark_in_antiquity_is_a_corrupted_state(fake, catalog):
    server = fake()
    state = {"bookmarks": {"list_membership": {"replication_key": "updated_at", "replication_key_value": "0001-01-01"}}}
    run = run_tap(server.config(), catalog=catalog, state=state)
    assert_clean_failure(run, "The state is corrupted", "list_membership")
    assert server.requests == []


@pytest.mark.parametrize(
    ("bookmark", "words"),
    [
        ({"rows_per_year": 1e-300}, "rows_per_year learned for prospect"),
        ({"rows_per_year": 1e300}, "rows_per_year learned for prospect"),
        ({"rows_per_year": "fast"}, "rows_per_year learned for prospect"),
        ({"rows_per_year": -5}, "rows_per_year learned for prospect"),
        ({"deletes_pass_at": "yesterday"}, "last recycle-bin pass (deletes_pass_at) of prospect"),
        ({"deletes_pass": {"replication_key_value": "soon"}}, "recycle-bin pass (deletes_pass)"),
        ({"deletes_pass": {"deletes_pass": {}}}, "of its own, which a pass never has"),
        ({"deletes_pass": "x"}, "recycle-bin pass (deletes_pass) is not an object"),
    ],
)
def test_a_state_the_tap_cannot_use_is_corrupted_naming_the_key(bookmark, words):
    state = {"bookmarks": {"prospect": {"replication_key": "updated_at", **bookmark}}}
    with pytest.raises(PardotConfigError) as info:
        parse_state(json.dumps(state))
    assert "The state is corrupted" in str(info.value) and words in str(info.value)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"bookmarks": {"prospect": {"rows_per_year": NaN}}}', "NaN is not JSON"),
        ('{"bookmarks": {"prospect": {"replication_key_value": Infinity}}}', "Infinity is not JSON"),
        ("[" * 100_000 + "]" * 100_000, "nested deeper than JSON parsers go"),
    ],
)
def test_a_state_file_the_tap_cannot_read_is_refused_without_a_traceback(tmp_path, text, words):
    (tmp_path / "config.json").write_text(
        json.dumps(config(api_url="http://127.0.0.1:9", login_url="http://127.0.0.1:9"))
    )
    (tmp_path / "state.json").write_text(text)
    proc = tap_cli("--config", str(tmp_path / "config.json"), "--state", str(tmp_path / "state.json"))
    assert proc.returncode == 1
    assert words in proc.stderr and "meltano state clear" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_rate_the_tap_writes_is_one_it_reads_back():
    from tap_pardot_export.engine.state import StreamState

    for rows_per_day in (0.0, 1e-9, 12.5, 1e12):
        state = StreamState({})
        state.set_learned_rate(rows_per_day)
        assert parse_state(json.dumps({"bookmarks": {"s": state.data}})) is not None
        assert state.learned_rate() is not None


def test_a_good_nested_pass_is_accepted() -> None:
    state: dict[str, t.Any] = {
        "bookmarks": {
            "prospect": {
                "replication_key": "updated_at",
                "replication_key_value": "2024-05-01T00:00:00+00:00",
                "rows_per_year": 1000,
                "deletes_pass_at": "2024-04-01T00:00:00+00:00",
                "deletes_pass": {"replication_key_value": "2024-02-01T00:00:00+00:00", "pending_export": {"id": 5}},
            }
        }
    }
    assert parse_state(json.dumps(state)) == state


def test_a_state_with_exports_queued_ahead_is_checked():
    good = {"bookmarks": {"visitor": {"pending_export": {"id": 7}, "queued_exports": [{"id": 8}, {"id": "9"}]}}}
    assert state_errors(good) == []
    bad = {"bookmarks": {"visitor": {"queued_exports": [{"id": "x"}]}}}
    assert state_errors(bad) == [
        "the exports queued ahead recorded for visitor are not a list of exports with valid ids"
    ]
