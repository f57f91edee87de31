"""810 Invoice <-> invoice."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from translators.canonical.fresh import new_object
from translators.canonical.models import Invoice, InvoiceLine
from translators.errors import MappingError
from translators.maps._engine import (
    AMT,
    CTT,
    CUR,
    DTM,
    ITD,
    REF,
    SAC,
    TXI,
    Context,
    Data,
    Handlers,
    Scope,
    append_to,
    date,
    dec,
    n2,
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
    write_contact,
    write_dates,
    write_party,
)
from translators.maps._lines import LINE_LOOP, line_count, on_line, write_line, write_line_tail
from translators.x12.model import Row
from translators.x12.writer import SegmentSpec

# --- tables (element position -> canonical field) -----------------------------------------

BIG = seg("BIG", {1: date("invoice_date"), 2: "invoice_number", 3: date("po_date"),
                  4: "po_number", 5: "release_number", 6: "change_sequence",
                  7: "invoice_type", 8: "purpose"})
IT1 = seg("IT1", {1: "line_number", 2: dec("quantity"), 3: "uom", 4: dec("unit_price"),
                  5: "price_basis"})  # IT106..IT125: product/service id pairs -> item
TDS = seg("TDS", {1: n2("total_amount")})  # TDS01 N2: "12345" is 123.45

IT1_LOOP: Handlers = {**LINE_LOOP, "N1": on_n1()}
del IT1_LOOP["SCH"]

# After TDS the summary area: SAC and TXI there are invoice-level again.
SUMMARY: Handlers = {
    "TXI": append_to("taxes", TXI),
    "SAC": append_to("allowances_charges", SAC),
    "AMT": append_to("amounts", AMT),
    "CTT": set_object("totals", CTT),
}


def on_tds(seg: Row, doc: Data, ctx: Context) -> Scope | None:
    """TDS: the invoice total; opens the summary area."""
    TDS.read(seg, ctx, doc)
    return (SUMMARY, doc)


NEW_DOCUMENT = new_object(Invoice)

HEADER: Handlers = {
    "BIG": set_fields(BIG),
    "NTE": on_nte,
    "CUR": set_fields(CUR),
    "REF": append_to("references", REF),
    "PER": on_per,
    "N1": on_n1(),
    "ITD": append_to("terms", ITD),
    "DTM": append_to("dates", DTM),
    "N9": on_n9,
    "MSG": on_msg,
    "IT1": on_line(IT1, IT1_LOOP, InvoiceLine),
    "TDS": on_tds,
    **SUMMARY,
}


def read(segments: Sequence[Row], ctx: Context) -> Data:
    """The body segments of an 810 as invoice data."""
    return run(segments, HEADER, NEW_DOCUMENT(), ctx)


def write(doc: Any, ctx: Context) -> list[SegmentSpec]:
    """The body segments of an 810 for an Invoice."""
    out: list[SegmentSpec] = [("BIG", BIG.elements(doc, ctx))]
    out += [("NTE", [n.code or "", n.text]) for n in doc.notes]
    if doc.currency:
        out.append(("CUR", ["SE", doc.currency]))
    out += write_all("REF", REF, doc.references, ctx)
    out += [write_contact(c, ctx) for c in doc.contacts]
    for party in doc.parties:
        out += write_party(party, ctx)
    out += write_all("ITD", ITD, doc.terms, ctx)
    out += write_dates(doc.dates, ctx)
    for line in doc.lines:
        out += write_line(IT1, line, ctx)
        out += write_line_tail(line, ctx, schedules=False)
        for party in line.parties:
            out += write_party(party, ctx)
    if doc.total_amount is None:
        raise MappingError("an 810 needs total_amount (TDS01 is mandatory)", field="total_amount")
    out.append(("TDS", TDS.elements(doc, ctx)))
    out += write_all("TXI", TXI, doc.taxes, ctx)
    out += write_all("AMT", AMT, doc.amounts, ctx)
    out += write_all("SAC", SAC, doc.allowances_charges, ctx)
    ctt = line_count(doc, doc.lines)
    if ctt:
        out.append(ctt)
    return out
