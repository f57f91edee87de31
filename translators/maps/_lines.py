"""The line loops shared by 850, 855 and 810 (PO1 / IT1 and what nests in them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from translators.canonical.fresh import new_object
from translators.maps._engine import (
    DTM,
    PO4,
    REF,
    SAC,
    SCH,
    TXI,
    Context,
    Handler,
    Handlers,
    SegmentTable,
    append_to,
    item_pairs,
    line_handler,
    on_msg,
    on_n9,
    on_nte,
    on_pid,
    set_object,
    write_all,
    write_dates,
    write_description,
)
from translators.x12.writer import SegmentSpec

# What a line loop may hold, shared by PO1 and IT1; the maps add their own segments.
LINE_LOOP: Handlers = {
    "PID": on_pid,
    "PO4": set_object("packaging", PO4),
    "REF": append_to("references", REF),
    "DTM": append_to("dates", DTM),
    "SAC": append_to("allowances_charges", SAC),
    "TXI": append_to("taxes", TXI),
    "SCH": append_to("schedules", SCH),
    "N9": on_n9,
    "MSG": on_msg,
    "NTE": on_nte,
}

ITEM_PAIRS_AT = 6  # PO106 / IT106: the first product/service id qualifier
MAX_PAIRS = 10  # PO106..PO125


def on_line(table: SegmentTable, loop: Handlers, model: type[BaseModel]) -> Handler:
    """Handler for PO1/IT1: a new line (a ``model``) in ``target["lines"]``, opening its loop;
    PO106/IT106 on are the item's product/service id pairs."""
    return line_handler(table, ITEM_PAIRS_AT, new_object(model), loop)


def write_line(table: SegmentTable, line: Any, ctx: Context) -> list[SegmentSpec]:
    """PO1/IT1 with its item pairs, PID, PO4, REF and DTM."""
    els = table.elements(line, ctx)
    pairs = item_pairs(line.item, ctx, MAX_PAIRS)
    if pairs:
        els = [*els, *([""] * (ITEM_PAIRS_AT - 1 - len(els))), *pairs]
    out: list[SegmentSpec] = [(table.tag, els)]
    out += write_description(line, ctx)
    if line.packaging is not None:
        spec = PO4.write(line.packaging, ctx)
        if spec:
            out.append(spec)
    out += write_all("REF", REF, line.references, ctx)
    return out


def write_line_tail(line: Any, ctx: Context, *, schedules: bool = True) -> list[SegmentSpec]:
    """SAC, TXI, DTM and SCH of a line (those it has)."""
    out: list[SegmentSpec] = []
    charges = getattr(line, "allowances_charges", ())
    if charges:
        out += write_all("SAC", SAC, charges, ctx)
    taxes = getattr(line, "taxes", ())
    if taxes:
        out += write_all("TXI", TXI, taxes, ctx)
    if line.dates:
        out += write_dates(line.dates, ctx)
    planned = getattr(line, "schedules", ()) if schedules else ()
    if planned:
        out += write_all("SCH", SCH, planned, ctx)
    return out


def line_count(doc: Any, lines: Sequence[Any]) -> SegmentSpec | None:
    """CTT from the document's totals, or the number of lines when it has none."""
    totals = doc.totals
    if totals is not None:
        return ("CTT", [totals.line_count or "", totals.hash_total or ""])
    return ("CTT", [str(len(lines))]) if lines else None
