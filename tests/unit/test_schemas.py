"""Schemas kept as data: loading, version resolution, layering and the 856 hierarchy."""

from __future__ import annotations

import pytest

from translators.schemas import (
    LoopDef,
    SegmentUse,
    element_dictionary,
    get_schema,
    known_sets,
    resolve_version,
    segment_dictionary,
)

SETS = ("850", "855", "856", "810", "997")


@pytest.mark.parametrize("version", ["004010", "005010"])
@pytest.mark.parametrize("set_id", SETS)
def test_every_supported_set_loads_in_both_versions(set_id: str, version: str) -> None:
    schema = get_schema(set_id, version)
    assert schema is not None and schema.version == version and schema.set_id == set_id
    first, last = schema.root.children[0], schema.root.children[-1]
    assert isinstance(first, SegmentUse) and first.tag == "ST"
    assert isinstance(last, SegmentUse) and last.tag == "SE"


def test_999_exists_in_005010() -> None:
    assert known_sets()["999"] == ("005010",)


def test_schemas_are_parsed_once_and_cached() -> None:
    assert get_schema("850", "004010") is get_schema("850", "004010VICS")


def test_version_uses_its_first_six_characters() -> None:
    assert resolve_version("850", "005010X220A1") == ("005010", True)


def test_version_falls_back_to_newest_known_not_above_it() -> None:
    assert resolve_version("856", "004060") == ("004010", False)
    assert resolve_version("850", "006020") == ("005010", False)


def test_version_older_than_every_schema_falls_back_to_the_oldest() -> None:
    assert resolve_version("850", "003050") == ("004010", False)
    assert resolve_version("999", "004010") == ("005010", False)


def test_unknown_set_resolves_to_none() -> None:
    assert resolve_version("204", "004010") is None
    assert get_schema("204", "004010") is None


def test_005010_dictionary_layers_over_004010() -> None:
    assert element_dictionary("004010")["127"].max == 30
    assert element_dictionary("005010")["127"].max == 50
    assert element_dictionary("005010")["353"] == element_dictionary("004010")["353"]
    ak4 = segment_dictionary("005010")["AK4"].elements
    assert ak4 is not None and ak4[0].composite is not None
    assert [c.element.id for c in ak4[0].composite.components] == ["722", "1528", "1686"]


def test_syntax_notes_keep_1_based_positions() -> None:
    n1 = segment_dictionary("004010")["N1"]
    assert [str(n) for n in n1.syntax] == ["R0203", "P0304"]
    assert n1.syntax[0].positions == (2, 3)


def test_code_lists_are_frozensets_for_id_elements() -> None:
    beg02 = element_dictionary("004010")["92"]
    assert beg02.type == "ID" and beg02.codes is not None and "SA" in beg02.codes


def test_856_has_one_recursive_hl_loop_with_levels() -> None:
    schema = get_schema("856", "004010")
    assert schema is not None and schema.hierarchy is not None
    assert dict(schema.hierarchy.levels) == {"S": "Shipment", "O": "Order", "T": "Tare",
                                             "P": "Pack", "I": "Item"}
    hl = [c for c in schema.root.children if isinstance(c, LoopDef)]
    assert [loop.id for loop in hl] == ["HL"] and hl[0].requirement == "M"
    assert hl[0].max_repeat == 200000


def test_850_po1_loop_has_nested_loops() -> None:
    schema = get_schema("850", "004010")
    assert schema is not None
    po1 = next(c for c in schema.root.children if isinstance(c, LoopDef) and c.id == "PO1")
    assert po1.trigger == "PO1" and po1.max_repeat == 100000
    assert {c.id for c in po1.children if isinstance(c, LoopDef)} >= {"PID", "SAC", "N1", "SLN"}


def test_unbounded_max_use_is_none() -> None:
    schema = get_schema("850", "004010")
    assert schema is not None
    ref = next(c for c in schema.root.children if isinstance(c, SegmentUse) and c.tag == "REF")
    assert ref.max_use is None
