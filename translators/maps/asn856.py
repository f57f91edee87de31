"""856 Ship Notice/Manifest <-> ship_notice: the HL tree as nested orders, packs and items.

Levels: S shipment (its data is the document's), O order, T tare, P pack, I item. Orders
are listed at the top (an O under a P is listed there too); packs nest under their order,
tare or the shipment; items under their pack, order or the shipment. Unknown levels are
transparent: their children attach to the nearest known ancestor. The writer emits the
S-O-(T)-P-I structure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from translators.canonical.fresh import new_object
from translators.canonical.models import Pack, ShipItem, ShipNotice, ShipOrder
from translators.errors import MappingError
from translators.maps._carrier import on_td5
from translators.maps._engine import (
    CTT,
    DTM,
    PID,
    PO4,
    REF,
    TD1,
    TD3,
    Context,
    Data,
    Handlers,
    Scope,
    append_to,
    date,
    dec,
    item_pairs,
    on_n1,
    read_item,
    run,
    seg,
    set_fields,
    set_object,
    time,
    write_all,
    write_carrier,
    write_dates,
    write_party,
)
from translators.x12.model import Row
from translators.x12.writer import SegmentSpec

# --- tables (element position -> canonical field) -----------------------------------------

BSN = seg("BSN", {1: "purpose", 2: "shipment_id", 3: date("ship_date"), 4: time("ship_time"),
                  5: "structure"})
HL = seg("HL", {1: "id", 2: "parent", 3: "level"})
PRF = seg("PRF", {1: "po_number", 2: "release_number", 4: date("po_date")})
PRF_ITEM = seg("PRF", {1: "po_number"})
LIN = seg("LIN", {1: "line_number"})  # LIN02..LIN31: product/service id pairs -> item
SN1 = seg("SN1", {2: dec("quantity"), 3: "uom", 5: dec("ordered_quantity"),
                  6: "ordered_uom"})
MAN = seg("MAN", {1: "qualifier", 2: "value"})

LIN_PAIRS_AT = 2  # LIN02: the first product/service id qualifier
MAX_LIN_PAIRS = 15


def on_shipment_ref(seg: Row, doc: Data, ctx: Context) -> Scope | None:
    """REF at the shipment: BM bill of lading, CN carrier tracking (PRO) number, else kept."""
    ref = REF.read(seg, ctx)
    qualifier, value = ref.get("qualifier"), ref.get("value")
    if qualifier == "BM" and value and "bill_of_lading" not in doc and len(ref) == 2:
        doc["bill_of_lading"] = value
    elif qualifier == "CN" and value and len(ref) == 2 and "tracking_number" not in (
            doc.get("carrier") or {}):
        doc.setdefault("carrier", {})["tracking_number"] = value
    else:
        doc.setdefault("references", []).append(ref)
    return None


def on_man(seg: Row, pack: Data, ctx: Context) -> Scope | None:
    """MAN: the first GM mark is the SSCC, other marks are kept as ids."""
    mark = MAN.read(seg, ctx)
    if mark.get("qualifier") == "GM" and "value" in mark and "sscc" not in pack:
        pack["sscc"] = mark["value"]
    elif "value" in mark:
        mark.setdefault("qualifier", "")
        pack.setdefault("marks", []).append(mark)
    else:
        ctx.unknown(seg)
    return None


def on_lin(seg: Row, item: Data, ctx: Context) -> Scope | None:
    """LIN: line number and the item's id pairs."""
    LIN.read(seg, ctx, item)
    item["item"] = read_item(seg, LIN_PAIRS_AT, ctx)
    return None


def on_item_pid(seg: Row, item: Data, ctx: Context) -> Scope | None:
    """PID: the item description (further PIDs are kept as extra segments)."""
    pid = PID.read(seg, ctx)
    target = item.setdefault("item", {})
    if pid.get("type") == "F" and "text" in pid and "description" not in target:
        target["description"] = pid["text"]
    else:
        ctx.unknown(seg)
    return None


_COMMON: Handlers = {
    "REF": append_to("references", REF),
    "DTM": append_to("dates", DTM),
}
SHIPMENT: Handlers = {
    "TD1": set_fields(TD1),
    "TD5": on_td5,
    "TD3": set_object("carrier", TD3),
    "REF": on_shipment_ref,
    "DTM": append_to("dates", DTM),
    "N1": on_n1(),
}
ORDER: Handlers = {**_COMMON, "PRF": set_fields(PRF), "TD1": set_fields(TD1), "N1": on_n1()}
PACK: Handlers = {**_COMMON, "MAN": on_man, "PO4": set_object("packaging", PO4),
                  "TD1": set_fields(TD1)}
ITEM: Handlers = {**_COMMON, "LIN": on_lin, "SN1": set_fields(SN1), "PID": on_item_pid,
                  "PO4": set_object("packaging", PO4), "PRF": set_fields(PRF_ITEM)}
LEVELS: dict[str, Handlers] = {"S": SHIPMENT, "O": ORDER, "T": PACK, "P": PACK, "I": ITEM}


NEW_DOCUMENT = new_object(ShipNotice)
NEW_ORDER = new_object(ShipOrder)
NEW_PACK = new_object(Pack)
NEW_ITEM = new_object(ShipItem)


# Packs nest in packs (pallet, carton, inner pack...): a handful of levels in real files. The
# bound keeps a broken or hostile HL chain from building a document too deep to validate,
# serialise or send (Python and pydantic recurse over it).
MAX_PACK_DEPTH = 16


def on_hl(seg: Row, doc: Data, ctx: Context) -> Scope | None:
    """HL: a new level, attached to its parent (which must come earlier)."""
    hl = HL.read(seg, ctx)
    # HL01 -> (level, object, the list it is in, how deep it nests if a pack)
    nodes: dict[str, tuple[str, Data, list[Data] | None, int]] = doc["_hl"]
    level = hl.get("level", "")
    parent_level, parent, parent_list, parent_depth = nodes.get(hl.get("parent", ""), ("S", doc, None, 0))
    obj: Data
    own_list: list[Data] | None = None
    depth = 0
    if level == "S":
        obj = doc
    elif level == "O":
        obj = NEW_ORDER()
        doc.setdefault("orders", []).append(obj)
    elif level in ("P", "T"):
        obj = NEW_PACK()
        obj["level"] = level
        container = parent if parent_level in ("O", "P", "T") else doc
        depth = parent_depth + 1 if parent_level in ("P", "T") else 1
        if depth > MAX_PACK_DEPTH:
            raise MappingError(f"HL {hl.get('id', '')!r}: packs nest more than {MAX_PACK_DEPTH} levels deep")
        own_list = container.setdefault("packs", [])
        own_list.append(obj)
    elif level == "I":
        obj = NEW_ITEM()
        if parent_level == "I" and parent_list is not None:
            own_list = parent_list
        else:
            own_list = (parent if parent_level in ("O", "P", "T") else doc).setdefault("items", [])
        own_list.append(obj)
    else:
        ctx.unknown(seg)
        if "id" in hl:
            nodes[hl["id"]] = (parent_level, parent, parent_list, parent_depth)
        return ({}, {})
    if "id" in hl:
        nodes[hl["id"]] = (level, obj, own_list, depth)
    return (LEVELS[level], obj)


HEADER: Handlers = {
    "BSN": set_fields(BSN),
    "DTM": append_to("dates", DTM),
    "HL": on_hl,
    "CTT": set_object("totals", CTT),
}


def read(segments: Sequence[Row], ctx: Context) -> Data:
    """The body segments of an 856 as ship_notice data."""
    doc = NEW_DOCUMENT()
    doc["_hl"] = {}
    run(segments, HEADER, doc, ctx)
    del doc["_hl"]
    return doc


# --- writer -------------------------------------------------------------------------------


class _Writer:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.out: list[SegmentSpec] = []
        self.count = 0

    def hl(self, parent: int, level: str, has_children: bool) -> int:
        self.count += 1
        self.out.append(("HL", [str(self.count), str(parent) if parent else "", level,
                                "1" if has_children else "0"]))
        return self.count

    def measured(self, obj: Any) -> None:
        spec = TD1.write(obj, self.ctx)
        if spec:
            self.out.append(spec)

    def item(self, parent: int, item: Any) -> None:
        ctx = self.ctx
        self.hl(parent, "I", False)
        lin = LIN.elements(item, ctx)
        pairs = item_pairs(item.item, ctx, MAX_LIN_PAIRS)
        if lin[0] or pairs:
            self.out.append(("LIN", [*lin, *pairs]))
        spec = SN1.write(item, ctx)
        if spec:
            self.out.append(spec)
        if item.po_number:
            self.out.append(("PRF", [item.po_number]))
        if item.packaging is not None:
            spec = PO4.write(item.packaging, ctx)
            if spec:
                self.out.append(spec)
        if item.item.description:
            self.out.append(("PID", ["F", "", "", "", item.item.description]))
        self.out += write_all("REF", REF, item.references, ctx)
        self.out += write_dates(item.dates, ctx)

    def pack(self, parent: int, pack: Any) -> None:
        ctx = self.ctx
        me = self.hl(parent, pack.level, bool(pack.packs or pack.items))
        if pack.packaging is not None:
            spec = PO4.write(pack.packaging, ctx)
            if spec:
                self.out.append(spec)
        self.measured(pack)
        self.out += write_all("REF", REF, pack.references, ctx)
        if pack.sscc:
            self.out.append(("MAN", ["GM", pack.sscc]))
        self.out += write_all("MAN", MAN, pack.marks, ctx)
        self.out += write_dates(pack.dates, ctx)
        self.children(me, pack)

    def children(self, me: int, obj: Any) -> None:
        for item in obj.items:
            self.item(me, item)
        for pack in obj.packs:
            self.pack(me, pack)

    def order(self, parent: int, order: Any) -> None:
        ctx = self.ctx
        me = self.hl(parent, "O", bool(order.packs or order.items))
        spec = PRF.write(order, ctx)
        if spec:
            self.out.append(spec)
        self.measured(order)
        self.out += write_all("REF", REF, order.references, ctx)
        self.out += write_dates(order.dates, ctx)
        for party in order.parties:
            self.out += write_party(party, ctx)
        self.children(me, order)


def write(doc: Any, ctx: Context) -> list[SegmentSpec]:
    """The body segments of an 856 for a ShipNotice."""
    if doc.notes:
        raise MappingError("an 856 has no place for notes", field="notes")
    if doc.contacts:
        raise MappingError("an 856 has no place for document contacts", field="contacts")
    w = _Writer(ctx)
    w.out.append(("BSN", BSN.elements(doc, ctx)))
    s = w.hl(0, "S", bool(doc.orders or doc.packs or doc.items))
    w.measured(doc)
    carrier = doc.carrier
    if carrier is not None:
        w.out += write_carrier(carrier, ctx)
    if doc.bill_of_lading:
        w.out.append(("REF", ["BM", doc.bill_of_lading]))
    if carrier is not None and carrier.tracking_number:
        w.out.append(("REF", ["CN", carrier.tracking_number]))
    w.out += write_all("REF", REF, doc.references, ctx)
    w.out += write_dates(doc.dates, ctx)
    for party in doc.parties:
        w.out += write_party(party, ctx)
    w.children(s, doc)
    for order in doc.orders:
        w.order(s, order)
    if doc.totals is not None:
        w.out.append(("CTT", CTT.elements(doc.totals, ctx)))
    return w.out
