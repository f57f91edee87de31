"""The canonical document as data: the fast path, the model and the gateway agree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from gateway.processing.x12_parse import document_data, result_data
from tests.conftest import FIXTURES, corpus_files
from translators.canonical import MODELS, SET_DOCUMENT_TYPES, to_json_bytes
from translators.canonical.fresh import new_object
from translators.canonical.models import Pack, Party, PurchaseOrderLine, ShipItem
from translators.errors import MappingError
from translators.maps import to_canonical, to_canonical_data, to_canonical_json
from translators.pipeline import TransactionResult, iter_results
from translators.settings import MappingSettings, TranslationSettings
from translators.validation import validate_transaction
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
    # checked by the model, and as read (what a set without issues gets)
    assert to_canonical_data(ts, settings) == expected
    assert to_canonical_data(ts, settings, issues=[]) == expected
    assert json.loads(to_canonical_json(ts, settings, issues=[])) == expected


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


@pytest.mark.parametrize("model", [*MODELS.values(), PurchaseOrderLine, Party, Pack, ShipItem],
                         ids=lambda m: m.__name__)
def test_a_new_object_is_what_its_model_dumps_with_nothing_set(model: type[BaseModel]) -> None:
    new = new_object(model)
    required = {name: "x" for name, field in model.model_fields.items() if field.is_required()}
    dumped = model.model_validate(required).model_dump(mode="json", exclude_none=True)
    assert {**new(), **required} == dumped
    first, second = new(), new()
    assert all(first[k] is not second[k] for k in first if isinstance(first[k], list | dict))


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


AMT_WITHOUT_AMOUNT = (
    "ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *240101*1200*U*00401*"
    "000000001*0*P*>~GS*IN*S*R*20240101*1200*1*X*004010~ST*810*0001~BIG*20240101*INV-1~"
    "TDS*100~AMT*N~SE*5*0001~GE*1*1~IEA*1*000000001~")


def test_a_set_with_issues_is_checked_by_the_model_like_before() -> None:
    (ts,) = read_transactions(AMT_WITHOUT_AMOUNT.encode())
    issues = validate_transaction(ts)
    assert any(i.is_error for i in issues)  # AMT02 is mandatory
    with pytest.raises(MappingError):
        to_canonical(ts)
    with pytest.raises(MappingError):
        to_canonical_data(ts, issues=issues)
    with pytest.raises(MappingError):
        to_canonical_data(ts)
    # as read, the data would lack Amount.amount: that is why issues decide
    assert to_canonical_data(ts, issues=[])["amounts"] == [{"qualifier": "N"}]
    (result,) = [r for r in iter_results(AMT_WITHOUT_AMOUNT.encode())
                 if isinstance(r, TransactionResult)]
    assert result.data is None and not result.accepted
    assert any("cannot translate" in i.message for i in result.issues)
