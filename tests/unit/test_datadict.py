"""The data dictionary is generated from the schemas and must be current."""

from cfxlib.contract import datadict
from cfxlib.contract.schemas import TABLES
from tests.conftest import REPO


def test_data_dictionary_is_current():
    committed = (REPO / "docs" / "data-dictionary.md").read_text(encoding="utf-8")
    assert committed == datadict.render(), "docs/data-dictionary.md is stale: run `cfx docs`"


def test_every_column_is_described_with_a_kind():
    for spec in TABLES.values():
        assert spec.description
        for name, column in spec.columns.items():
            assert column.description, f"{spec.name}.{name} has no description"
            assert column.metadata["kind"] in datadict.KIND_TEXT


def test_snapshot_schema_is_current():
    from cfxlib.publish import snapshot

    committed = (REPO / "docs" / "metrics_snapshot.schema.json").read_text(encoding="utf-8")
    assert committed == snapshot.schema_json(), "docs/metrics_snapshot.schema.json is stale: run `cfx docs`"
