"""Spot checks of the maps on real third-party X12 files (skipped when the corpus is absent)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from translators.canonical import parse_document_json
from translators.maps import to_canonical, to_canonical_json

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
pytestmark = [pytest.mark.corpus,
              pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present")]


def transactions(name: str) -> list[Any]:
    reader = pytest.importorskip("translators.x12.reader")
    return [ts for ts in reader.read_transactions((CORPUS / name).read_bytes())
            if ts.set_id in ("850", "855", "856", "810")]


def test_every_corpus_set_maps_and_the_fast_json_agrees() -> None:
    count = 0
    for folder in ("850", "855", "856", "810", "mixed"):
        for path in sorted((CORPUS / folder).iterdir()):
            for ts in transactions(f"{folder}/{path.name}"):
                doc: Any = to_canonical(ts)
                assert parse_document_json(to_canonical_json(ts)) == doc
                count += 1
    assert count > 50


def test_vics_850_lines_items_and_ship_to() -> None:
    (ts,) = transactions("850/EdiEngine__850.OK.edi")
    doc: Any = to_canonical(ts)
    assert doc.po_number == "08292233294" and doc.po_date == "2010-11-27"
    assert len(doc.lines) == 6
    assert doc.lines[0].item.vendor_part == "AB3542" and doc.lines[0].unit_price == "9.25"
    assert doc.lines[0].item.description == "SMALL WIDGET"
    assert doc.parties[0].role == "ship_to" and doc.parties[0].address.city == "SOLON"
    assert doc.amounts[0].amount == "13045.94"


def test_855_adobe_line_and_extra_routing_kept() -> None:
    (ts,) = transactions("855/X12Parser__Example1_Adobe.txt")
    doc: Any = to_canonical(ts)
    assert doc.po_number == "0132710645" and doc.ack_type == "AD"
    assert doc.lines[0].item.buyer_part == "T05249"
    assert [s.tag for s in doc.extra_segments] == ["TD5"] * 4


def test_856_crossdock_orders_and_packs() -> None:
    (ts,) = transactions("856/EdiEngine__856.Crossdock.OK.edi")
    doc: Any = to_canonical(ts)
    assert doc.shipment_id == "000009" and doc.structure == "0001"
    assert doc.bill_of_lading == "000001" and doc.carrier.scac == "OVNT"
    assert [o.po_number for o in doc.orders] == ["POREF00", "POREF01"]
    assert len(doc.orders[0].packs) == 4
    assert doc.orders[0].packs[0].sscc == "00000715670002152360"
    assert doc.orders[0].packs[0].items[0].item.upc == "0000000000642"


def test_810_ariba_tax_invoice_totals_and_line_charges() -> None:
    (ts,) = transactions("810/EDI.Net__x12.810b.edi")
    doc: Any = to_canonical(ts)
    assert doc.invoice_number == "DO091003TESTINV01TAX" and doc.total_amount == "401.92"
    assert len(doc.terms) == 5 and len(doc.lines) == 2
    assert doc.lines[0].allowances_charges[0].amount == "219.96"
    assert [t.type for t in doc.lines[0].taxes] == ["ST", "FD"]
    assert [t.amount for t in doc.taxes] == ["28.78", "7.18"]
    assert doc.lines[0].parties[0].role == "ship_from"


def test_810_caret_delimited_production_invoice_has_all_lines() -> None:
    (ts,) = transactions("810/python-edi__test_edi.txt")
    doc: Any = to_canonical(ts)
    assert doc.invoice_number == "12973821" and len(doc.lines) == 124
    assert doc.lines[0].item.buyer_part == "000018" and doc.lines[0].unit_price == "25.6"
