"""Columns: the API's names in snake_case, one rule for every stream; two names making one column."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from pardot_export_sandbox import DataConfig

from tap_pardot_export.columns import Columns, column_name
from tests.helpers import run_tap, select_streams

UTC = dt.timezone.utc


@pytest.mark.parametrize(
    ("api", "column"),
    [
        ("prospectId", "prospect_id"),
        ("isDeleted", "is_deleted"),
        ("salesforceCmsId", "salesforce_cms_id"),
        ("Favorite_Color", "favorite_color"),
        ("value1", "value1"),
        ("updated_at", "updated_at"),
        ("UniqueId__c", "unique_id__c"),
        ("addressOne", "address_one"),
    ],
)
def test_the_one_rule(api, column):
    assert column_name(api) == column


def test_a_later_name_making_a_taken_column_keeps_its_api_name():
    cols = Columns("prospect")
    assert cols.add("first_name") == "first_name"
    assert cols.add("First_Name") == "First_Name"
    assert cols.add("first_name") is None  # known already
    assert cols.api_name("First_Name") == "First_Name" and cols.column_of("first_name") == "first_name"


def test_a_custom_field_named_like_a_built_in_one_keeps_its_api_name_with_a_warning(fresh_sandbox):
    data = DataConfig(
        start=dt.datetime(2024, 1, 1, tzinfo=UTC),
        end=dt.datetime(2025, 1, 1, tzinfo=UTC),
        custom_fields=("First_Name", "Favorite_Color"),
        rows={"prospect": 60},
    )
    sb = fresh_sandbox(data=data)
    cfg = sb.tap_config(window_days=365)
    found = run_tap(cfg, args=["--discover"])
    assert "fields 'first_name' and 'First_Name' both make column 'first_name'" in found.stderr
    run = run_tap(cfg, catalog=select_streams(json.loads(found.stdout), ["prospect"]))
    assert run.returncode == 0, run.stderr[-3000:]
    schema = next(m for m in run.messages if m["type"] == "SCHEMA")["schema"]["properties"]
    assert {"first_name", "First_Name", "favorite_color"} <= set(schema)
    assert schema["favorite_color"]["title"] == "Favorite_Color" and "title" not in schema["First_Name"]
    obj = sb.dataset.objects["prospect"]
    for rec in run.records("prospect"):
        truth = obj.typed_row(rec["id"] - 10_000_000)
        assert (rec["first_name"], rec["First_Name"], rec["favorite_color"]) == (
            truth["first_name"],
            truth["First_Name"],
            truth["Favorite_Color"],
        )
