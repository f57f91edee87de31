"""Property tests: canonical -> X12 -> canonical is the identity; mutated X12 never crashes."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.test_maps import ASN_856, INVOICE_810, PO_850, segments, write_and_read
from translators.canonical import (
    Address,
    AllowanceCharge,
    Amount,
    Carrier,
    Contact,
    DateRef,
    Identifier,
    Invoice,
    InvoiceLine,
    Item,
    LineStatus,
    Note,
    OrderAcknowledgment,
    OrderAcknowledgmentLine,
    Pack,
    Packaging,
    Party,
    PurchaseOrder,
    PurchaseOrderLine,
    Reference,
    Schedule,
    ShipItem,
    ShipNotice,
    ShipOrder,
    Tax,
    Terms,
    Totals,
    parse_document_json,
    to_json_bytes,
)
from translators.canonical._types import normalise_decimal
from translators.errors import MappingError
from translators.maps import (
    from_canonical,
    segments_to_canonical,
    to_canonical_data,
    to_canonical_json,
)
from translators.x12.model import Segment
from translators.x12.writer import WriteError

PROPERTY = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# --- value strategies (the model's domain in normal form) ---------------------------------

_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 -./#&"


def text(max_size: int = 20) -> st.SearchStrategy[str]:
    return st.text(_CHARS, min_size=1, max_size=max_size).map(str.strip).filter(bool)


def code(*choices: str) -> st.SearchStrategy[str]:
    return st.sampled_from(choices)


def decimal(max_scale: int = 4) -> st.SearchStrategy[str]:
    def build(n: int, scale: int) -> str:
        sign, digits = ("-" if n < 0 else ""), str(abs(n)).rjust(scale + 1, "0")
        return normalise_decimal(f"{sign}{digits[:len(digits) - scale]}.{digits[len(digits) - scale:]}"
                                 if scale else f"{sign}{digits}")
    return st.builds(build, st.integers(-10**9, 10**9), st.integers(0, max_scale))


def quantity() -> st.SearchStrategy[str]:
    return decimal(3).map(lambda d: d.lstrip("-"))


DATE = st.dates().map(lambda d: d.isoformat()).filter(lambda d: d[:4] >= "1000")
TIME = st.times().map(lambda t: t.strftime((t.second and "%H:%M:%S") or "%H:%M"))
UOM = code("EA", "CA", "CS", "LB", "PC", "BX")


def opt(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


def few(strategy: st.SearchStrategy[Any], n: int = 2) -> st.SearchStrategy[list[Any]]:
    return st.lists(strategy, max_size=n)


# --- shared pieces ---------------------------------------------------------------------------

REFERENCE = st.builds(Reference, qualifier=code("DP", "IA", "VR", "PK", "IV"), value=text(),
                      description=opt(text()))
DATEREF = st.builds(DateRef, qualifier=code("002", "010", "011", "017"), date=DATE,
                    time=opt(TIME))
IDENTIFIER = st.builds(Identifier, qualifier=code("92", "1", "9", "ZZ"), value=text())


@st.composite
def contacts(draw: st.DrawFn) -> Contact:
    named = {k: draw(opt(text())) for k in ("phone", "fax", "email")}
    room = 3 - sum(v is not None for v in named.values())
    other = draw(st.lists(st.builds(Identifier, qualifier=code("UR", "IT", "BN"), value=text()),
                          max_size=room))
    return Contact(function=draw(code("BD", "IC", "CN")), name=draw(opt(text())),
                   other=other, **named)


ADDRESS = st.builds(Address, lines=few(text(), 3), city=text(), state=opt(code("IL", "TX")),
                    postal_code=opt(text(9)), country=opt(code("US", "CA")))
PARTY = st.builds(Party, role=code("bill_to", "ship_to", "buyer", "seller", "remit_to",
                                   "ship_from", "supplier", "ZZ", "XX"),
                  name=opt(text(30)), ids=few(IDENTIFIER, 1), additional_names=few(text(), 3),
                  address=opt(ADDRESS), contacts=few(contacts(), 2), references=few(REFERENCE))


@st.composite
def items(draw: st.DrawFn, max_pairs: int = 10) -> Item:
    qualifiers = {"buyer_part": "BP", "vendor_part": "VP", "upc": "UP", "gtin": "EN",
                  "sku": "SK"}
    named = {k: draw(opt(text())) for k in qualifiers}
    ids = [Identifier(qualifier=qualifiers[k], value=v) for k, v in named.items() if v]
    ids += draw(few(st.builds(Identifier, qualifier=code("CB", "MG", "PD"), value=text()),
                    max_pairs - len(ids)))
    return Item(ids=ids, description=draw(opt(text(40))), **named)


PACKAGING = st.builds(Packaging, pack=quantity(), size=opt(quantity()), size_uom=opt(UOM),
                      packaging_code=opt(code("CTN25", "PLT94")), weight_qualifier=opt(code("G")),
                      gross_weight=opt(quantity()), weight_uom=opt(UOM))
SAC_ = st.builds(AllowanceCharge, indicator=code("A", "C", "N"), code=opt(code("C310", "D240")),
                 amount=opt(decimal(2)), percent_qualifier=opt(code("1", "3")),
                 percent=opt(quantity()), rate=opt(decimal()), uom=opt(UOM),
                 quantity=opt(quantity()), handling=opt(code("02", "06")),
                 reference=opt(text()), description=opt(text(40)))
TERMS = st.builds(Terms, type_code=code("01", "05", "14"), basis_date_code=opt(code("3", "1")),
                  discount_percent=opt(quantity()), discount_due_date=opt(DATE),
                  discount_days=opt(st.integers(0, 99).map(str)), net_due_date=opt(DATE),
                  net_days=opt(st.integers(0, 999).map(str)), discount_amount=opt(decimal(2)),
                  description=opt(text(40)))
TAX = st.builds(Tax, type=code("ST", "FD", "LS"), amount=opt(decimal(2)), percent=opt(quantity()),
                jurisdiction_qualifier=opt(code("VD", "CD")), jurisdiction_code=opt(code("CA")),
                exemption_code=opt(code("1", "2")), basis_amount=opt(decimal(2)))
CARRIER = st.builds(Carrier, routing_sequence=opt(code("B", "O")), id_qualifier=code("2"),
                    scac=text(4), mode=opt(code("M", "A", "U")), routing=opt(text(30)),
                    equipment_code=opt(code("TL", "CN")), equipment_number=opt(text(10)))
AMOUNT = st.builds(Amount, qualifier=code("TT", "1"), amount=decimal(2))
NOTE_N9 = st.builds(Note, code=opt(code("GEN", "SPE")), text=text(60))
LINE_NOTE = st.builds(Note, code=opt(code("08", "GEN")), text=text(60))
SCHEDULE = st.builds(Schedule, quantity=quantity(), uom=opt(UOM), qualifier=code("002", "068"),
                     date=DATE, time=opt(TIME))


def line_fields(draw: st.DrawFn) -> dict[str, Any]:
    item = draw(items())
    return {"line_number": draw(opt(st.integers(1, 999).map(str))),
            "quantity": draw(opt(quantity())), "uom": draw(opt(UOM)),
            "unit_price": draw(opt(decimal())), "price_basis": draw(opt(code("PE", "CT"))),
            "item": item, "packaging": draw(opt(PACKAGING)), "references": draw(few(REFERENCE)),
            "dates": draw(few(DATEREF)),
            "notes": draw(few(LINE_NOTE)) if item.description else []}


def totals(draw: st.DrawFn, lines: list[Any]) -> Totals | None:
    return Totals(line_count=str(len(lines)), hash_total=draw(opt(quantity()))) if lines else None


def header(draw: st.DrawFn) -> dict[str, Any]:
    return {"parties": draw(few(PARTY, 3)), "contacts": draw(few(contacts())),
            "references": draw(few(REFERENCE)), "dates": draw(few(DATEREF))}


@st.composite
def purchase_orders(draw: st.DrawFn) -> PurchaseOrder:
    lines = draw(few(st.builds(lambda f, s, a, t: PurchaseOrderLine(
        **f, schedules=s, allowances_charges=a, taxes=t), st.composite(line_fields)(),
        few(SCHEDULE), few(SAC_), few(TAX)), 4))
    return PurchaseOrder(
        **header(draw), purpose=draw(code("00", "05")), order_type=draw(opt(code("SA", "DS"))),
        po_number=draw(text(22)), release_number=draw(opt(text())),
        po_date=draw(opt(DATE)), contract_number=draw(opt(text())), currency=draw(opt(code("USD"))),
        terms=draw(few(TERMS)), carrier=draw(opt(CARRIER)), allowances_charges=draw(few(SAC_)),
        taxes=draw(few(TAX)), notes=draw(few(NOTE_N9, 3)), lines=lines,
        totals=totals(draw, lines), amounts=draw(few(AMOUNT)))


@st.composite
def acknowledgments(draw: st.DrawFn) -> OrderAcknowledgment:
    def ack_line(draw: st.DrawFn) -> OrderAcknowledgmentLine:
        status = draw(opt(code("IA", "IB", "IR")))
        more = draw(few(st.builds(LineStatus, status=code("IA", "IB"), quantity=opt(quantity()),
                                  uom=opt(UOM), date_qualifier=opt(code("068")),
                                  date=opt(DATE)))) if status else []
        return OrderAcknowledgmentLine(
            **line_fields(draw), status=status,
            status_quantity=draw(opt(quantity())) if status else None,
            status_uom=draw(opt(UOM)) if status else None,
            scheduled_date_qualifier=draw(opt(code("068"))) if status else None,
            scheduled_date=draw(opt(DATE)) if status else None,
            additional_statuses=more, schedules=draw(few(SCHEDULE)))
    lines = draw(few(st.composite(ack_line)(), 4))
    return OrderAcknowledgment(
        **header(draw), purpose=draw(code("00", "06")), ack_type=draw(code("AC", "AD", "RJ")),
        po_number=draw(text(22)), po_date=draw(opt(DATE)), release_number=draw(opt(text())),
        seller_order_number=draw(opt(text())), ack_date=draw(opt(DATE)),
        currency=draw(opt(code("USD"))), terms=draw(few(TERMS)), carrier=draw(opt(CARRIER)),
        notes=draw(few(NOTE_N9, 3)), lines=lines, totals=totals(draw, lines),
        amounts=draw(few(AMOUNT)))


@st.composite
def invoices(draw: st.DrawFn) -> Invoice:
    def inv_line(draw: st.DrawFn) -> InvoiceLine:
        return InvoiceLine(**line_fields(draw), allowances_charges=draw(few(SAC_)),
                           taxes=draw(few(TAX)), parties=draw(few(PARTY)))
    lines = draw(few(st.composite(inv_line)(), 4))
    return Invoice(
        **header(draw), invoice_date=draw(DATE), invoice_number=draw(text(22)),
        po_date=draw(opt(DATE)), po_number=draw(opt(text(22))), release_number=draw(opt(text())),
        change_sequence=draw(opt(text(8))), invoice_type=draw(opt(code("DI", "CR"))),
        purpose=draw(opt(code("00"))), currency=draw(opt(code("USD"))), terms=draw(few(TERMS)),
        notes=draw(few(st.builds(Note, code=opt(code("GEN", "ADD")), text=text(60)))),
        lines=lines, allowances_charges=draw(few(SAC_)), taxes=draw(few(TAX)),
        total_amount=draw(decimal(2)), amounts=draw(few(AMOUNT)), totals=totals(draw, lines))


def measured(draw: st.DrawFn) -> dict[str, Any]:
    return {"packaging_code": draw(opt(code("CTN25", "PLT90"))),
            "lading_quantity": draw(opt(quantity())), "weight_qualifier": draw(opt(code("G"))),
            "weight": draw(opt(quantity())), "weight_uom": draw(opt(code("LB", "KG")))}


SHIP_ITEM = st.builds(ShipItem, line_number=opt(st.integers(1, 99).map(str)),
                      item=items(15), quantity=opt(quantity()), uom=opt(UOM),
                      ordered_quantity=opt(quantity()), ordered_uom=opt(UOM),
                      po_number=opt(text(22)), packaging=opt(PACKAGING),
                      references=few(REFERENCE), dates=few(DATEREF))


@st.composite
def packs(draw: st.DrawFn, level: str = "P") -> Pack:
    inner = draw(few(packs(), 2)) if level == "T" else []
    return Pack(**measured(draw), level=level, sscc=draw(opt(text(20))),
                marks=draw(few(st.builds(Identifier, qualifier=code("CP", "L"), value=text()))),
                packaging=draw(opt(PACKAGING)), references=draw(few(REFERENCE)),
                dates=draw(few(DATEREF)), packs=inner, items=draw(few(SHIP_ITEM, 2)))


@st.composite
def ship_notices(draw: st.DrawFn) -> ShipNotice:
    any_pack = packs() | packs("T")
    orders = draw(few(st.builds(
        lambda m, **kw: ShipOrder(**m, **kw), st.composite(measured)(),
        po_number=opt(text(22)), release_number=opt(text()), po_date=opt(DATE),
        parties=few(PARTY), references=few(REFERENCE), dates=few(DATEREF),
        packs=few(any_pack, 2), items=few(SHIP_ITEM, 2)), 3))
    carrier = draw(opt(st.builds(lambda c, t: c.model_copy(update={"tracking_number": t}),
                                 CARRIER, opt(text()))))
    return ShipNotice(
        **measured(draw), parties=draw(few(PARTY, 3)), references=draw(few(REFERENCE)),
        dates=draw(few(DATEREF)), purpose=draw(code("00", "06")), shipment_id=draw(text(30)),
        ship_date=draw(DATE), ship_time=draw(opt(TIME)), structure=draw(opt(code("0001", "0002"))),
        carrier=carrier, bill_of_lading=draw(opt(text())), orders=orders,
        packs=draw(few(any_pack, 1)), items=draw(few(SHIP_ITEM, 1)),
        totals=draw(opt(st.builds(Totals, line_count=quantity(), hash_total=opt(quantity())))))


DOCUMENTS = st.one_of(purchase_orders(), acknowledgments(), invoices(), ship_notices())


@pytest.mark.parametrize("version", ["004010", "005010"])
@pytest.mark.parametrize("strategy", [purchase_orders(), acknowledgments(), invoices(),
                                      ship_notices()],
                         ids=["850", "855", "810", "856"])
def test_canonical_to_x12_and_back_is_the_identity(strategy: Any, version: str) -> None:
    @PROPERTY
    @given(strategy)
    def check(doc: Any) -> None:
        try:
            again = write_and_read(doc, version=version)
        except WriteError as exc:  # a part with no values would be an empty segment: refused
            assert "would carry no data" in str(exc)
            return
        assert again == doc

    check()


# --- robustness: mutated and truncated X12 -------------------------------------------------

SAMPLES = [("850", PO_850), ("856", ASN_856), ("810", INVOICE_810),
           ("855", "BAK*00*AC*PO-9*20240110~PO1*1*10*EA*2.5**BP*B-1~PID*F****T~ACK*IA*8*EA~CTT*1")]
JUNK = st.sampled_from(["", " ", "X", "-", "0", "99999999", "2024-01", "1.2.3", "F", "GM", "S",
                        "O", "P", "I", "T", "L1", "BM", "CN", "1", "3", "-5", "1E5", "é"])


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, list[Segment]]:
    set_id, text = draw(st.sampled_from(SAMPLES))
    segs = [Segment(s.tag, list(s.elements)) for s in segments(text)]
    for _ in range(draw(st.integers(1, 6))):
        if not segs:
            break
        i = draw(st.integers(0, len(segs) - 1))
        action = draw(st.sampled_from(["drop", "dup", "swap", "truncate", "replace", "extend",
                                       "retag"]))
        seg = segs[i]
        if action == "drop":
            del segs[i]
        elif action == "dup":
            segs.insert(i, Segment(seg.tag, list(seg.elements)))
        elif action == "swap":
            j = draw(st.integers(0, len(segs) - 1))
            segs[i], segs[j] = segs[j], segs[i]
        elif action == "truncate":
            seg.elements = seg.elements[:draw(st.integers(0, len(seg.elements)))]
        elif action == "replace" and seg.elements:
            seg.elements[draw(st.integers(0, len(seg.elements) - 1))] = draw(JUNK)
        elif action == "extend":
            seg.elements = seg.elements + draw(st.lists(JUNK, max_size=30))
        elif action == "retag":
            seg.tag = draw(st.sampled_from(["HL", "N1", "PO1", "IT1", "TDS", "PID", "MAN", "LIN",
                                            "ACK", "N9", "MSG", "SAC", "REF", "DTM", "TD5"]))
    return set_id, segs[:draw(st.integers(0, len(segs)))]


@PROPERTY
@given(mutated())
def test_mutated_or_truncated_segments_never_raise_anything_but_mapping_error(
        case: tuple[str, list[Segment]]) -> None:
    set_id, segs = case
    try:
        doc = segments_to_canonical(set_id, segs)
    except MappingError:
        return

    class _Ts:
        pass
    ts: Any = _Ts()
    ts.set_id, ts.body_rows = set_id, [[s.tag, *s.elements] for s in segs]
    assert parse_document_json(to_canonical_json(ts)) == doc
    # the maps' data as read (what a set without issues gets) is the model's dump
    assert to_canonical_data(ts, issues=[]) == json.loads(to_json_bytes(doc))
    # writing what was read fails only with MappingError (e.g. a 4th PER number)
    with contextlib.suppress(MappingError):
        from_canonical(doc.model_copy(update={"extra_segments": [], "invalid_values": []}))
