"""855 Purchase Order Acknowledgment <-> order_acknowledgment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from translators.canonical.fresh import new_object
from translators.canonical.models import OrderAcknowledgment, OrderAcknowledgmentLine
from translators.maps._carrier import on_td5
from translators.maps._engine import (
    AMT,
    CTT,
    CUR,
    DTM,
    ITD,
    REF,
    SCH,
    TD3,
    Context,
    Data,
    Handlers,
    Scope,
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
from translators.maps._lines import LINE_LOOP, line_count, on_line, write_line
from translators.x12.model import Row
from translators.x12.writer import SegmentSpec

# --- tables (element position -> canonical field) -----------------------------------------

BAK = seg("BAK", {1: "purpose", 2: "ack_type", 3: "po_number", 4: date("po_date"),
                  5: "release_number", 8: "seller_order_number", 9: date("ack_date")})
PO1 = seg("PO1", {1: "line_number", 2: dec("quantity"), 3: "uom", 4: dec("unit_price"),
                  5: "price_basis"})  # PO106..PO125: product/service id pairs -> item
ACK = seg("ACK", {1: "status", 2: dec("status_quantity"), 3: "status_uom",
                  4: "scheduled_date_qualifier", 5: date("scheduled_date")})
ACK_MORE = seg("ACK", {1: "status", 2: dec("quantity"), 3: "uom", 4: "date_qualifier",
                       5: date("date")})


def on_ack(seg: Row, line: Data, ctx: Context) -> Scope | None:
    """ACK: the first is the line's status, later ones are additional statuses."""
    if "status" not in line:
        ACK.read(seg, ctx, line)
        if "status" not in line:
            line["status"] = ""
    else:
        more = ACK_MORE.read(seg, ctx)
        more.setdefault("status", "")
        line.setdefault("additional_statuses", []).append(more)
    return None


PO1_LOOP: Handlers = {**LINE_LOOP, "ACK": on_ack}
del PO1_LOOP["SAC"], PO1_LOOP["TXI"]

NEW_DOCUMENT = new_object(OrderAcknowledgment)

HEADER: Handlers = {
    "BAK": set_fields(BAK),
    "CUR": set_fields(CUR),
    "REF": append_to("references", REF),
    "PER": on_per,
    "ITD": append_to("terms", ITD),
    "DTM": append_to("dates", DTM),
    "TD5": on_td5,
    "TD3": set_object("carrier", TD3),
    "N9": on_n9,
    "MSG": on_msg,
    "NTE": on_nte,
    "N1": on_n1(),
    "PO1": on_line(PO1, PO1_LOOP, OrderAcknowledgmentLine),
    "CTT": set_object("totals", CTT),
    "AMT": append_to("amounts", AMT),
}


def read(segments: Sequence[Row], ctx: Context) -> Data:
    """The body segments of an 855 as order_acknowledgment data."""
    return run(segments, HEADER, NEW_DOCUMENT(), ctx)


def write(doc: Any, ctx: Context) -> list[SegmentSpec]:
    """The body segments of an 855 for an OrderAcknowledgment."""
    out: list[SegmentSpec] = [("BAK", BAK.elements(doc, ctx))]
    if doc.currency:
        out.append(("CUR", ["SE", doc.currency]))
    out += write_all("REF", REF, doc.references, ctx)
    out += [write_contact(c, ctx) for c in doc.contacts]
    out += write_all("ITD", ITD, doc.terms, ctx)
    out += write_dates(doc.dates, ctx)
    if doc.carrier is not None:
        out += write_carrier(doc.carrier, ctx)
    out += write_notes_n9(doc.notes, ctx)
    for party in doc.parties:
        out += write_party(party, ctx)
    for line in doc.lines:
        out += write_line(PO1, line, ctx)
        out += write_dates(line.dates, ctx)
        if line.status is not None:
            out.append(("ACK", ACK.elements(line, ctx)))
        out += write_all("ACK", ACK_MORE, line.additional_statuses, ctx)
        out += write_all("SCH", SCH, line.schedules, ctx)
    ctt = line_count(doc, doc.lines)
    if ctt:
        out.append(ctt)
    out += write_all("AMT", AMT, doc.amounts, ctx)
    return out
