"""The stream specs: what is derived from them, and the sandbox (the oracle, which imports nothing
from the tap) agreeing with them object by object."""

from __future__ import annotations

import datetime as dt

import pytest
from pardot_export_sandbox import DataConfig
from pardot_export_sandbox.data import Dataset

from tap_pardot_export.settings.schema import settings_schema
from tap_pardot_export.spec import ARGUMENTS, SPECS, SPELLINGS
from tap_pardot_export.streams import load_schema

UTC = dt.timezone.utc
DATASET = Dataset(DataConfig(start=dt.datetime(2024, 1, 1, tzinfo=UTC), end=dt.datetime(2024, 2, 1, tzinfo=UTC)))


EXPORTS = sorted(name for name, spec in SPECS.items() if spec.kind == "export")


@pytest.mark.parametrize("name", EXPORTS)
def test_the_sandbox_serves_each_object_as_the_spec_declares_it(name):
    spec, obj = SPECS[name], DATASET.objects[name]
    assert obj.name == spec.api_object
    assert set(obj.procedures) == {p.name for p in spec.procedures}
    for procedure in spec.procedures:
        served = obj.procedures[procedure.name]
        assert (served.after, served.before) == (procedure.after, procedure.before), procedure.name
        assert served.time_field == procedure.filters, procedure.name
        assert set(served.extra) == set(procedure.arguments), procedure.name
    assert spec.replication_key in obj.field_names
    schema = load_schema(name)["properties"]
    assert set(schema) <= set(obj.field_names), f"{name}: schema fields the sandbox does not export"
    assert spec.protected_fields <= set(schema), f"{name}: a protected field is not in the schema"


def test_the_streams_that_capture_deletes_are_those_with_a_recycle_bin():
    assert {n for n, s in SPECS.items() if s.captures_deletes and s.kind == "export"} == {
        n for n, o in DATASET.objects.items() if o.is_deleted
    }


def test_every_argument_a_spec_names_has_a_schema_and_spellings_pair_up():
    named = {a for s in SPECS.values() for p in s.procedures for a in p.arguments}
    assert named == set(ARGUMENTS)
    assert all(SPELLINGS[SPELLINGS[a]] == a for a in SPELLINGS)


def test_the_settings_schema_is_derived_from_the_specs():
    options = settings_schema()["properties"]["stream_options"]["properties"]
    assert set(options) == {n for n, s in SPECS.items() if s.kind == "export" or s.windowed}
    for name in EXPORTS:
        spec = SPECS[name]
        procedure = options[name]["properties"]["procedure"]
        assert procedure["enum"] == [p.name for p in spec.procedures]
        assert procedure["default"] == spec.default_procedure
    custom = settings_schema()["properties"]["custom_fields"]["properties"]
    assert set(custom) == set(EXPORTS)


@pytest.mark.parametrize("name", EXPORTS)
def test_a_field_is_never_null_only_where_a_source_says_so(name):
    """Nullability from evidence: the schema's never-null fields are the spec's, each with its source."""
    properties = load_schema(name)["properties"]
    never_null = {f for f, p in properties.items() if "null" not in p["type"]}
    assert never_null == set(SPECS[name].never_null_fields)
    assert all(SPECS[name].never_null_fields.values())
