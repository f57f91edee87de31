"""850 Purchase Order <-> purchase_order, as an implementation guide would list it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from translators.canonical.fresh import new_object
from translators.canonical.models import PurchaseOrder, PurchaseOrderLine
from translators.maps._carrier import on_td5
from translators.maps._engine import (
    AMT,
    CTT,
    CUR,
    DTM,
    ITD,
    REF,
    SAC,
    TD3,
    TXI,
    Context,
    Data,
    Handlers,
    append_to,
    date,
    dec,
    on_msg,
    on_n1,
    on_n9,
    on_nte,
    on_per,
    run,
    seg,
    set_fields,
    set_object,
    write_all,
    write_carrier,
    write_contact,
    write_dates,
    write_notes_n9,
    write_party,
)
from translators.maps._lines import LINE_LOOP, line_count, on_line, write_line, write_line_tail
from translators.x12.model import Row
from translators.x12.writer import SegmentSpec

# --- tables (element position -> canonical field) -----------------------------------------

BEG = seg("BEG", {1: "purpose", 2: "order_type", 3: "po_number", 4: "release_number",
                  5: date("po_date"), 6: "contract_number"})
PO1 = seg("PO1", {1: "line_number", 2: dec("quantity"), 3: "uom", 4: dec("unit_price"),
                  5: "price_basis"})  # PO106..PO125: product/service id pairs -> item

PO1_LOOP: Handlers = dict(LINE_LOOP)

NEW_DOCUMENT = new_object(PurchaseOrder)

HEADER: Handlers = {
    "BEG": set_fields(BEG),
    "CUR": set_fields(CUR),
    "REF": append_to("references", REF),
    "PER": on_per,
    "SAC": append_to("allowances_charges", SAC),
    "ITD": append_to("terms", ITD),
    "DTM": append_to("dates", DTM),
    "TD5": on_td5,
    "TD3": set_object("carrier", TD3),
    "TXI": append_to("taxes", TXI),
    "N9": on_n9,
    "MSG": on_msg,
    "NTE": on_nte,
    "N1": on_n1(),
    "PO1": on_line(PO1, PO1_LOOP, PurchaseOrderLine),
    "CTT": set_object("totals", CTT),
    "AMT": append_to("amounts", AMT),
}


def read(segments: Sequence[Row], ctx: Context) -> Data:
    """The body segments of an 850 as purchase_order data."""
    return run(segments, HEADER, NEW_DOCUMENT(), ctx)


def write(doc: Any, ctx: Context) -> list[SegmentSpec]:
    """The body segments of an 850 for a PurchaseOrder."""
    out: list[SegmentSpec] = [("BEG", BEG.elements(doc, ctx))]
    if doc.currency:
        out.append(("CUR", ["BY", doc.currency]))
    out += write_all("REF", REF, doc.references, ctx)
    out += [write_contact(c, ctx) for c in doc.contacts]
    out += write_all("SAC", SAC, doc.allowances_charges, ctx)
    out += write_all("ITD", ITD, doc.terms, ctx)
    out += write_dates(doc.dates, ctx)
    if doc.carrier is not None:
        out += write_carrier(doc.carrier, ctx)
    out += write_all("TXI", TXI, doc.taxes, ctx)
    out += write_notes_n9(doc.notes, ctx)
    for party in doc.parties:
        out += write_party(party, ctx)
    for line in doc.lines:
        out += write_line(PO1, line, ctx)
        out += write_line_tail(line, ctx)
    ctt = line_count(doc, doc.lines)
    if ctt:
        out.append(ctt)
    out += write_all("AMT", AMT, doc.amounts, ctx)
    return out
