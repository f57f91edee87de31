"""The canonical document as data: the fast path, the model and the gateway agree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.processing.x12_parse import document_data, result_data
from tests.conftest import FIXTURES, corpus_files
from translators.canonical import SET_DOCUMENT_TYPES, parse_document, to_json_bytes
from translators.canonical.complete import complete_document
from translators.errors import MappingError
from translators.maps import to_canonical, to_canonical_data, to_canonical_json
from translators.pipeline import TransactionResult, iter_results
from translators.settings import MappingSettings, TranslationSettings
from translators.x12.model import TransactionSet
from translators.x12.reader import read_transactions

FIXTURE_FILES = sorted(FIXTURES.glob("*.x12"))
SETTINGS = MappingSettings(uom={"CS": "CA"}, codes={"order_type": {"SA": "stand_alone"}},
                           items={"ACME-123": {"sku": "SKU-9"}},
                           defaults={"purchase_order": {"currency": "USD", "lines[].uom": "EA"}})


def _mapped(path: Path) -> list[TransactionSet]:
    return [ts for ts in read_transactions(path.read_bytes()) if ts.set_id in SET_DOCUMENT_TYPES]


def _as_today(ts: TransactionSet, settings: MappingSettings | None = None) -> dict[str, Any]:
    """What the gateway stored before the fast path: the model dumped to JSON and loaded."""
    loaded: dict[str, Any] = json.loads(to_json_bytes(to_canonical(ts, settings)))
    return loaded


def _check(ts: TransactionSet, settings: MappingSettings | None = None) -> None:
    try:
        expected = _as_today(ts, settings)
    except MappingError:
        with pytest.raises(MappingError):
            to_canonical_data(ts, settings)
        return
    assert to_canonical_data(ts, settings) == expected
    assert json.loads(to_canonical_json(ts, settings)) == expected


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
@pytest.mark.parametrize("settings", [None, SETTINGS], ids=["plain", "partner"])
def test_fixture_data_is_the_models_dump(path: Path, settings: MappingSettings | None) -> None:
    for ts in _mapped(path):
        _check(ts, settings)


@pytest.mark.corpus
@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_data_is_the_models_dump(path: Path) -> None:
    for ts in _mapped(path):
        _check(ts)


def test_data_keeps_empty_lists_and_default_objects() -> None:
    (ts,) = _mapped(FIXTURES / "po_004010.x12")
    data = to_canonical_data(ts)
    assert data["schema_version"] == "1" and data["notes"] == [] and data["terms"] == []
    line = data["lines"][0]
    assert line["dates"] == [] and line["schedules"] == [] and line["item"]["ids"]
    assert data["parties"][0]["contacts"] == []


def test_complete_document_fills_nested_objects_like_the_model() -> None:
    data: dict[str, Any] = {"document_type": "ship_notice", "orders": [
        {"po_number": "1", "packs": [{"level": "T", "packs": [{"level": "P", "items": [{}]}]}]}],
        "parties": [{"role": "ship_to", "address": {"city": "X"}, "contacts": [{"name": "A"}]}]}
    model_dump = parse_document(json.loads(json.dumps(data))).model_dump(mode="json",
                                                                         exclude_none=True)
    assert complete_document(data) == model_dump
    # default lists are new objects, never shared between documents
    again = complete_document({"document_type": "ship_notice"})
    assert again["orders"] is not complete_document({"document_type": "ship_notice"})["orders"]


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
def test_gateway_stores_the_same_document_as_before_the_fast_path(path: Path) -> None:
    settings = TranslationSettings(mapping=SETTINGS)
    sets = iter(_mapped(path))
    for item in iter_results(path.read_bytes(), settings):
        if not isinstance(item, TransactionResult):
            continue
        if item.document_type == "functional_acknowledgment":
            assert result_data(item) == (document_data(item.document) if item.accepted
                                         and item.document is not None else None)
            continue
        ts = next(sets)
        assert result_data(item) == (_as_today(ts, SETTINGS) if item.accepted else None)
