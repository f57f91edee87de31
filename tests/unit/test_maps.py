"""X12 <-> canonical maps for 850/855/856/810: key fields, loops, settings, versions."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from translators.canonical import (
    Invoice,
    OrderAcknowledgment,
    PurchaseOrder,
    ShipNotice,
    parse_document,
    parse_document_json,
    to_json_bytes,
)
from translators.errors import MappingError
from translators.maps import (
    document_type_for,
    from_canonical,
    required_errors,
    segments_to_canonical,
    to_canonical,
    to_canonical_json,
)
from translators.maps.asn856 import MAX_PACK_DEPTH
from translators.pipeline import AckContext, counter_from, translate
from translators.settings import ItemCrossReference, MappingSettings
from translators.x12.model import Delimiters, Segment
from translators.x12.writer import SegmentSpec, format_transaction


def segments(text: str, component: str = ">") -> list[Segment]:
    """Segments from X12 text with * and ~ (whitespace around segments ignored)."""
    out = []
    for raw in text.split("~"):
        raw = raw.strip()
        if raw:
            tag, *elements = raw.split("*")
            out.append(Segment(tag, elements, component=component))
    return out


def read(set_id: str, text: str, settings: MappingSettings | None = None) -> Any:
    doc: Any = segments_to_canonical(set_id, segments(text), settings)
    return doc


def write_and_read(doc: Any, settings: MappingSettings | None = None,
                   version: str = "004010") -> Any:
    """canonical -> body segments -> X12 text (the writer) -> segments -> canonical."""
    set_id, body = from_canonical(doc, settings, version=version)
    delimiters = Delimiters(repetition="^" if version >= "005010" else None)
    text, _ = format_transaction(set_id, "0001", body, delimiters)
    parsed = segments(text)
    assert parsed[0].tag == "ST" and parsed[-1].tag == "SE"
    return segments_to_canonical(set_id, parsed[1:-1], settings)


PO_850 = """
BEG*00*SA*PO-1001**20240115*CN-7~CUR*BY*USD~REF*DP*038~PER*BD*JANE ROE*TE*5551234*EM*j@x.com~
ITD*01*3*2**30**60~DTM*002*20240201~DTM*010*240301*0930~TD5**2*UPSN*M*UPS GROUND~
N9*L1*GEN~MSG*LEAVE AT DOCK~MSG*CALL FIRST~
N1*ST*ACME STORE 12*92*0012~N2*RECEIVING~N3*100 MAIN ST*SUITE 5~N4*SPRINGFIELD*IL*62701*US~
N1*BY*ACME RETAIL~PER*BD*BUYER DESK*FX*555999~
N1*ZZ*ODD PARTY~
PO1*1*10*CS*9.250*PE*UP*012345678905*VN*V-1*BP*B-1*SK*S-1*EN*05012345678900~
PID*F****BLUE WIDGET~PID*F*08***SPARE NOTE~PO4*12*1*EA~SAC*A*C310***1500~DTM*002*20240210~
SCH*5*CS***002*20240210~
PO1*2*1*EA*100~PID*F****RED WIDGET~
CTT*2*11~AMT*TT*192.5
"""


def test_850_key_fields_header_and_terms() -> None:
    doc = read("850", PO_850)
    assert isinstance(doc, PurchaseOrder)
    assert (doc.po_number, doc.po_date, doc.purpose, doc.order_type) == (
        "PO-1001", "2024-01-15", "00", "SA")
    assert doc.contract_number == "CN-7" and doc.currency == "USD"
    assert doc.references[0].qualifier == "DP" and doc.references[0].value == "038"
    assert doc.contacts[0].name == "JANE ROE" and doc.contacts[0].phone == "5551234"
    assert doc.contacts[0].email == "j@x.com"
    terms = doc.terms[0]
    assert (terms.discount_percent, terms.discount_days, terms.net_days) == ("2", "30", "60")
    assert doc.carrier is not None and doc.carrier.scac == "UPSN" and doc.carrier.mode == "M"
    assert [(n.code, n.text) for n in doc.notes] == [("GEN", "LEAVE AT DOCK"),
                                                     ("GEN", "CALL FIRST")]
    assert doc.totals is not None and doc.totals.line_count == "2"
    assert doc.amounts[0].amount == "192.5"


def test_850_yymmdd_dates_are_windowed_and_times_formatted() -> None:
    doc = read("850", PO_850)
    assert doc.dates[1].date == "2024-03-01" and doc.dates[1].time == "09:30"


def test_850_n1_loops_become_parties_with_role_names_and_raw_unknown_codes() -> None:
    doc = read("850", PO_850)
    ship_to, buyer, odd = doc.parties
    assert ship_to.role == "ship_to" and ship_to.name == "ACME STORE 12"
    assert ship_to.ids[0].qualifier == "92" and ship_to.ids[0].value == "0012"
    assert ship_to.additional_names == ["RECEIVING"]
    assert ship_to.address is not None
    assert ship_to.address.lines == ["100 MAIN ST", "SUITE 5"]
    assert (ship_to.address.city, ship_to.address.state, ship_to.address.postal_code,
            ship_to.address.country) == ("SPRINGFIELD", "IL", "62701", "US")
    assert buyer.role == "buyer" and buyer.contacts[0].fax == "555999"
    assert odd.role == "ZZ"


def test_850_po1_lines_carry_item_ids_description_and_nested_segments() -> None:
    doc = read("850", PO_850)
    assert len(doc.lines) == 2
    line = doc.lines[0]
    assert (line.line_number, line.quantity, line.uom, line.unit_price, line.price_basis) == (
        "1", "10", "CS", "9.25", "PE")
    item = line.item
    assert (item.upc, item.vendor_part, item.buyer_part, item.sku, item.gtin) == (
        "012345678905", "V-1", "B-1", "S-1", "05012345678900")
    assert [i.qualifier for i in item.ids] == ["UP", "VN", "BP", "SK", "EN"]
    assert item.description == "BLUE WIDGET"
    assert [(n.code, n.text) for n in line.notes] == [("08", "SPARE NOTE")]
    assert line.packaging is not None and line.packaging.pack == "12"
    assert line.allowances_charges[0].amount == "15"  # SAC05 is N2
    assert line.dates[0].date == "2024-02-10"
    assert line.schedules[0].quantity == "5" and line.schedules[0].date == "2024-02-10"
    assert doc.lines[1].item.description == "RED WIDGET"


def test_bad_dates_and_numbers_are_kept_as_invalid_values_not_raised() -> None:
    doc = read("850", "BEG*00*SA*P1**20241340~DTM*002*2024XX01~PO1*1*ten*EA*1.2.3")
    assert doc.po_date is None and doc.lines[0].quantity is None
    assert [(v.element, v.value) for v in doc.invalid_values] == [
        ("BEG05", "20241340"), ("DTM02", "2024XX01"), ("PO102", "ten"), ("PO104", "1.2.3")]


def test_unknown_segments_are_kept_as_extra_segments() -> None:
    doc = read("850", "BEG*00*SA*P1~FOB*PP~PO1*1*1*EA~ZZZ*A*B")
    assert [(s.tag, s.elements) for s in doc.extra_segments] == [
        ("FOB", ["PP"]), ("ZZZ", ["A", "B"])]


def test_855_bak_and_line_statuses() -> None:
    doc = read("855", """BAK*00*AC*PO-9*20240110*****20240111~
        PO1*1*10*EA*2.5**BP*B-1~PID*F****THING~ACK*IA*8*EA*068*20240120~ACK*IB*2*EA~
        SCH*8*EA***068*20240120~PO1*2*3*EA~ACK*IR~CTT*2""")
    assert isinstance(doc, OrderAcknowledgment)
    assert (doc.po_number, doc.ack_type, doc.po_date, doc.ack_date) == (
        "PO-9", "AC", "2024-01-10", "2024-01-11")
    first = doc.lines[0]
    assert (first.status, first.status_quantity, first.status_uom,
            first.scheduled_date_qualifier, first.scheduled_date) == (
        "IA", "8", "EA", "068", "2024-01-20")
    assert first.additional_statuses[0].status == "IB"
    assert first.schedules[0].quantity == "8"
    assert doc.lines[1].status == "IR"


ASN_856 = """
BSN*00*SHIP-77*20240115*1530*0001~DTM*011*20240115~
HL*1**S~TD1*CTN*3****G*45.5*LB~TD5**2*UPSN*M~REF*BM*BOL-1~REF*CN*1Z999~REF*PK*PK-1~
N1*SF*DC EAST*92*DC1~N1*ST*STORE 4*92*0004~
HL*2*1*O~PRF*PO-1***20240101~N1*BY*STORE 4~
HL*3*2*T~MAN*GM*00000000000000000017~
HL*4*3*P~MAN*GM*00000000000000000024~
HL*5*4*I~LIN*1*UP*012345678905~SN1**6*EA~PID*F****WIDGET~
HL*6*3*P~MAN*GM*00000000000000000031~
HL*7*6*I~LIN*2*VN*V-2~SN1**4*CS**4*CS~
HL*8*2*I~LIN*3*UP*111111111117~SN1**1*EA~
HL*9*1*O~PRF*PO-2~HL*10*9*P~MAN*GM*00000000000000000048~MAN*CP*CARTON-1~
HL*11*10*I~LIN**SK*S-1~SN1**2*EA~
CTT*11
"""


def test_856_hl_tree_becomes_orders_packs_and_items_with_tare() -> None:
    doc = read("856", ASN_856)
    assert isinstance(doc, ShipNotice)
    assert (doc.shipment_id, doc.ship_date, doc.ship_time, doc.structure) == (
        "SHIP-77", "2024-01-15", "15:30", "0001")
    assert (doc.weight, doc.weight_uom, doc.lading_quantity) == ("45.5", "LB", "3")
    assert doc.carrier is not None
    assert (doc.carrier.scac, doc.carrier.mode, doc.carrier.tracking_number) == (
        "UPSN", "M", "1Z999")
    assert doc.bill_of_lading == "BOL-1" and doc.references[0].qualifier == "PK"
    assert [p.role for p in doc.parties] == ["ship_from", "ship_to"]
    assert doc.dates[0].qualifier == "011"
    first, second = doc.orders
    assert (first.po_number, first.po_date) == ("PO-1", "2024-01-01")
    assert first.parties[0].role == "buyer"
    tare = first.packs[0]
    assert tare.level == "T" and tare.sscc == "00000000000000000017"
    assert [p.sscc for p in tare.packs] == ["00000000000000000024", "00000000000000000031"]
    assert tare.packs[0].items[0].item.upc == "012345678905"
    assert tare.packs[0].items[0].item.description == "WIDGET"
    assert tare.packs[1].items[0].ordered_quantity == "4"
    assert first.items[0].item.upc == "111111111117"  # item directly under the order
    assert second.packs[0].marks[0].qualifier == "CP"
    assert second.packs[0].items[0].item.sku == "S-1"


def test_856_items_directly_under_the_shipment_keep_their_po_number() -> None:
    doc = read("856", "BSN*00*S1*20240101*1200~HL*1**S~HL*2*1*I~LIN**BP*X~SN1**1*EA~PRF*PO-5")
    assert doc.items[0].po_number == "PO-5" and doc.items[0].item.buyer_part == "X"


def test_856_unknown_level_is_transparent_and_forward_parents_do_not_loop() -> None:
    doc = read("856", "BSN*00*S1~HL*1**S~HL*2*1*Q~HL*3*2*I~LIN**SK*A~HL*4*9*O~HL*5*5*P")
    assert doc.items[0].item.sku == "A"
    assert len(doc.orders) == 1 and doc.packs[0].level == "P"


INVOICE_810 = """
BIG*20240120*INV-1*20240101*PO-1***DI*00~NTE*GEN*THANK YOU~CUR*SE*USD~REF*IA*V-9~
N1*RI*ACME REMIT~N3*PO BOX 1~N4*DALLAS*TX*75201~REF*AP*ACCT-1~
N1*BT*BUYER CO*92*B1~ITD*01*3*2**10**30*245****2% 10 NET 30~DTM*011*20240119~
IT1*1*2*EA*99.99**VP*ID001~PID*F****POWER CORD~SAC*C*G830***300~TXI*ST*15.99*8*VD*CA~
N1*SF*PHILADELPHIA~
IT1*2*1*EA*10~
TDS*2099950~TXI*ST*28.78~SAC*A*C310***-500**********DISCOUNT~CTT*2
"""


def test_810_total_amount_applies_the_implied_two_decimals() -> None:
    doc = read("810", INVOICE_810)
    assert isinstance(doc, Invoice)
    assert doc.total_amount == "20999.5"
    assert read("810", "BIG*20240101*I1~TDS*12345").total_amount == "123.45"
    assert read("810", "BIG*20240101*I1~TDS*5").total_amount == "0.05"
    assert read("810", "BIG*20240101*I1~TDS*-100").total_amount == "-1"


def test_810_header_lines_terms_allowances_taxes_and_line_parties() -> None:
    doc = read("810", INVOICE_810)
    assert (doc.invoice_number, doc.invoice_date, doc.po_number, doc.po_date) == (
        "INV-1", "2024-01-20", "PO-1", "2024-01-01")
    assert doc.invoice_type == "DI" and doc.purpose == "00"
    assert doc.notes[0].code == "GEN" and doc.notes[0].text == "THANK YOU"
    remit = doc.parties[0]
    assert remit.role == "remit_to" and remit.references[0].value == "ACCT-1"
    terms = doc.terms[0]
    assert terms.discount_amount == "2.45" and terms.description == "2% 10 NET 30"
    assert len(doc.lines) == 2
    line = doc.lines[0]
    assert line.item.vendor_part == "ID001" and line.item.description == "POWER CORD"
    assert line.allowances_charges[0].amount == "3"
    assert line.taxes[0].amount == "15.99" and line.taxes[0].jurisdiction_code == "CA"
    assert line.parties[0].role == "ship_from"
    assert [t.amount for t in doc.taxes] == ["28.78"]  # after TDS: invoice level
    assert doc.allowances_charges[0].amount == "-5"
    assert doc.allowances_charges[0].description == "DISCOUNT"


def test_unknown_transaction_set_is_a_mapping_error() -> None:
    with pytest.raises(MappingError):
        segments_to_canonical("940", [])
    with pytest.raises(MappingError):
        document_type_for("940")
    assert document_type_for("856") == "ship_notice"


def test_to_canonical_reads_a_transaction_set_from_the_reader() -> None:
    reader = pytest.importorskip("translators.x12.reader")
    text = ("ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *240115*1200*U*"
            "00401*000000001*0*P*>~GS*PO*S*R*20240115*1200*1*X*004010~ST*850*0001~"
            "BEG*00*SA*PO-1**20240115~PO1*1*1*EA*1~SE*4*0001~GE*1*1~IEA*1*000000001~")
    (ts,) = reader.read_transactions(text.encode())
    doc: Any = to_canonical(ts)
    assert doc.po_number == "PO-1" and len(doc.lines) == 1


@pytest.mark.parametrize(("set_id", "text"), [("850", PO_850), ("856", ASN_856),
                                              ("810", INVOICE_810)])
def test_fast_json_path_describes_the_same_document(set_id: str, text: str) -> None:
    class _Ts:
        def __init__(self) -> None:
            self.set_id = set_id
            self.body_rows = [[s.tag, *s.elements] for s in segments(text)]
    ts: Any = _Ts()
    fast = to_canonical_json(ts)
    assert parse_document_json(fast) == to_canonical(ts)
    assert json.loads(fast)["document_type"] == json.loads(to_json_bytes(to_canonical(ts)))[
        "document_type"]


# --- settings ---------------------------------------------------------------------------

SETTINGS = MappingSettings(
    uom={"CS": "CA", "EA": "EA"},
    codes={"order_type": {"SA": "stand_alone"}, "role": {"ZZ": "BY"}},
    items={"B-1": ItemCrossReference(sku="SKU-9", gtin="00012345678905")},
    defaults={"purchase_order": {"currency": "EUR", "lines[].price_basis": "PE"}},
    required={"purchase_order": ["lines[].item.upc"]},
)


def test_settings_translate_uom_codes_and_fill_item_cross_reference() -> None:
    doc = read("850", "BEG*00*SA*P1~CUR*BY*USD~N1*ZZ*X~PO1*1*2*CS*1**BP*B-1~PO1*2*1*EA", SETTINGS)
    assert doc.order_type == "stand_alone"
    assert doc.parties[0].role == "buyer"  # ZZ -> BY (codes) -> buyer
    assert [line.uom for line in doc.lines] == ["CA", "EA"]
    item = doc.lines[0].item
    assert (item.buyer_part, item.sku, item.gtin) == ("B-1", "SKU-9", "00012345678905")
    assert doc.currency == "USD"  # present: no default
    assert [line.price_basis for line in doc.lines] == ["PE", "PE"]  # defaults fill empties
    assert required_errors(doc, SETTINGS) == [
        "lines[0].item.upc is required", "lines[1].item.upc is required"]


def test_settings_translate_back_on_output() -> None:
    doc = parse_document({"document_type": "purchase_order", "order_type": "stand_alone",
                          "lines": [{"quantity": "1", "uom": "CA",
                                     "item": {"sku": "SKU-9"}}]})
    _, body = from_canonical(doc, SETTINGS)
    tags: dict[str, SegmentSpec] = {tag: (tag, els) for tag, els in body}
    assert tags["BEG"][1][1] == "SA"
    po1 = list(tags["PO1"][1])
    assert po1[2] == "CS"
    assert po1[5:9] == ["BP", "B-1", "SK", "SKU-9"]  # partner item number from the cross-ref
    assert ("CUR", ["BY", "EUR"]) in body  # default applied outbound


# --- output and versions -------------------------------------------------------------------

def test_from_canonical_returns_the_set_id_and_body_without_envelope() -> None:
    set_id, body = from_canonical(read("810", INVOICE_810))
    assert set_id == "810"
    assert body[0][0] == "BIG" and all(tag not in ("ST", "SE") for tag, _ in body)
    assert ("TDS", ["2099950"]) in body


def test_longer_names_fit_005010_but_not_004010() -> None:
    doc = parse_document({"document_type": "invoice", "invoice_number": "I1", "total_amount": "1",
                          "parties": [{"role": "bill_to", "name": "N" * 50}]})
    with pytest.raises(MappingError) as err:
        from_canonical(doc, version="004010")
    assert err.value.field == "name"
    _, body = from_canonical(doc, version="005010")
    assert ("N1", ["BT", "N" * 50]) in body


def test_unsupported_version_is_a_mapping_error() -> None:
    with pytest.raises(MappingError):
        from_canonical(parse_document({"document_type": "invoice"}), version="003010")


def test_amounts_with_more_than_two_decimals_cannot_be_written_as_n2() -> None:
    doc = parse_document({"document_type": "invoice", "total_amount": "1.005"})
    with pytest.raises(MappingError):
        from_canonical(doc)


@pytest.mark.parametrize("version", ["004010", "005010"])
@pytest.mark.parametrize(("set_id", "text"), [
    ("850", PO_850), ("856", ASN_856), ("810", INVOICE_810),
    ("855", "BAK*00*AC*PO-9*20240110~PO1*1*10*EA*2.5**BP*B-1~PID*F****T~ACK*IA*8*EA~CTT*1")])
def test_examples_round_trip_through_x12(set_id: str, text: str, version: str) -> None:
    doc = read(set_id, text)
    doc = doc.model_copy(update={"extra_segments": [], "invalid_values": []})
    again = write_and_read(doc, version=version)
    assert again == doc


def _nested_packs(depth: int) -> str:
    """An 856 whose packs nest ``depth`` levels deep under one order."""
    hls = ["HL*1**S", "HL*2*1*O", "PRF*PO-1"]
    hls += [f"HL*{n}*{n - 1}*P" for n in range(3, depth + 3)]
    hls += [f"HL*{depth + 3}*{depth + 2}*I", "LIN**UP*012345678905", "SN1**1*EA"]
    return "BSN*00*S1*20240101*1200~" + "~".join(hls)


def test_856_packs_may_nest_up_to_the_limit_and_no_deeper() -> None:
    doc = read("856", _nested_packs(MAX_PACK_DEPTH))
    pack, depth = doc.orders[0].packs[0], 1
    while pack.packs:
        pack, depth = pack.packs[0], depth + 1
    assert depth == MAX_PACK_DEPTH and pack.items[0].item.upc == "012345678905"
    with pytest.raises(MappingError, match=f"more than {MAX_PACK_DEPTH} levels"):
        read("856", _nested_packs(MAX_PACK_DEPTH + 1))


def test_an_856_nested_thousands_deep_is_rejected_with_a_997_not_raised() -> None:
    body = _nested_packs(5000).replace("~", "~\n")
    count = body.count("~") + 3  # the body's segments, ST and SE
    x12 = (
        "ISA*00*          *00*          *ZZ*DISTCO         *ZZ*ACMERETAIL     *261122*1100*U*00401*"
        "000000301*0*T*>~\nGS*SH*DISTCO*ACMERETAIL*20261122*1100*301*X*004010~\nST*856*0001~\n"
        f"{body}~\nSE*{count}*0001~\nGE*1*301~\nIEA*1*000000301~\n"
    )
    report = translate(x12.encode(), acks=AckContext(datetime(2026, 11, 22), counter_from(1)))
    data = report.to_dict()
    assert not report.accepted
    assert "AK5*R*5~" in report.acknowledgments[0].text
    assert "levels deep" in json.dumps(data)
