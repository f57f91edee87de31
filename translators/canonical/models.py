"""The canonical documents (DESIGN.md §6): partner-agnostic, snake_case, JSON-ready.

Money and quantities are decimal strings, dates ``YYYY-MM-DD``, times ``HH:MM[:SS]``, and
codes keep their X12 code. Every document carries ``references``, ``dates`` and ``notes``
for data without a dedicated field, ``extra_segments`` for segments its map does not know
(inbound only; informational) and ``invalid_values`` for X12 values that could not be
converted (a bad date, a non-numeric quantity), so nothing received is silently dropped.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from translators.canonical._types import DateString, DecimalString, TimeString


class CanonicalModel(BaseModel):
    """Base of every canonical object: unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid")


# --- shared pieces ------------------------------------------------------------------------

class Identifier(CanonicalModel):
    """A qualified identifier (N103/N104, PO1 product id pairs, MAN marks)."""

    qualifier: str
    value: str


class Reference(CanonicalModel):
    """A REF (or N9) reference: REF01 qualifier, REF02 value, REF03 description."""

    qualifier: str
    value: str | None = None
    description: str | None = None


class DateRef(CanonicalModel):
    """A DTM date/time: DTM01 qualifier, DTM02 date, DTM03 time."""

    qualifier: str
    date: DateString | None = None
    time: TimeString | None = None


class Note(CanonicalModel):
    """Free text: NTE (code NTE01) or MSG lines (code N902 of the enclosing N9*L1)."""

    code: str | None = None
    text: str


class Amount(CanonicalModel):
    """An AMT monetary amount: AMT01 qualifier, AMT02 amount."""

    qualifier: str
    amount: DecimalString


class Address(CanonicalModel):
    """N3/N4: street lines, city, state, postal code, country."""

    lines: list[str] = Field(default_factory=list)
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None


class Contact(CanonicalModel):
    """A PER contact: function code, name and communication numbers."""

    function: str | None = None
    name: str | None = None
    phone: str | None = None
    fax: str | None = None
    email: str | None = None
    other: list[Identifier] = Field(default_factory=list)  # other PER03/PER04 pairs


class Party(CanonicalModel):
    """An N1 loop: role (bill_to, ship_to, … or the raw N101 code), name, ids, address."""

    role: str
    name: str | None = None
    ids: list[Identifier] = Field(default_factory=list)  # N103/N104
    additional_names: list[str] = Field(default_factory=list)  # N2
    address: Address | None = None
    contacts: list[Contact] = Field(default_factory=list)
    references: list[Reference] = Field(default_factory=list)


class Item(CanonicalModel):
    """Product identification: named ids plus every qualifier/value pair as received."""

    buyer_part: str | None = None  # BP / IN
    vendor_part: str | None = None  # VP / VN
    upc: str | None = None  # UP / UA / UI / UK / UN
    gtin: str | None = None  # EN / EO
    sku: str | None = None  # SK
    description: str | None = None  # PID05
    ids: list[Identifier] = Field(default_factory=list)


class AllowanceCharge(CanonicalModel):
    """A SAC allowance or charge (SAC05 amount with its implied 2 decimals applied)."""

    indicator: str  # A allowance, C charge, N no allowance or charge
    code: str | None = None
    agency_qualifier: str | None = None
    agency_code: str | None = None
    amount: DecimalString | None = None
    percent_qualifier: str | None = None
    percent: DecimalString | None = None
    rate: DecimalString | None = None
    uom: str | None = None
    quantity: DecimalString | None = None
    handling: str | None = None
    reference: str | None = None
    description: str | None = None


class Terms(CanonicalModel):
    """An ITD terms of sale line."""

    type_code: str | None = None
    basis_date_code: str | None = None
    discount_percent: DecimalString | None = None
    discount_due_date: DateString | None = None
    discount_days: DecimalString | None = None
    net_due_date: DateString | None = None
    net_days: DecimalString | None = None
    discount_amount: DecimalString | None = None
    description: str | None = None


class Carrier(CanonicalModel):
    """TD5 routing, TD3 equipment and the carrier's tracking (PRO) number."""

    routing_sequence: str | None = None
    id_qualifier: str | None = None
    scac: str | None = None
    mode: str | None = None
    routing: str | None = None
    tracking_number: str | None = None  # REF*CN
    equipment_code: str | None = None
    equipment_initial: str | None = None
    equipment_number: str | None = None


class Tax(CanonicalModel):
    """A TXI tax."""

    type: str
    amount: DecimalString | None = None
    percent: DecimalString | None = None
    jurisdiction_qualifier: str | None = None
    jurisdiction_code: str | None = None
    exemption_code: str | None = None
    basis_amount: DecimalString | None = None


class Totals(CanonicalModel):
    """CTT: number of line items and the hash total."""

    line_count: DecimalString | None = None
    hash_total: DecimalString | None = None


class Packaging(CanonicalModel):
    """PO4 item physical details."""

    pack: DecimalString | None = None
    size: DecimalString | None = None
    size_uom: str | None = None
    packaging_code: str | None = None
    weight_qualifier: str | None = None
    gross_weight: DecimalString | None = None
    weight_uom: str | None = None


class Schedule(CanonicalModel):
    """SCH line item schedule."""

    quantity: DecimalString | None = None
    uom: str | None = None
    qualifier: str | None = None
    date: DateString | None = None
    time: TimeString | None = None


class LineStatus(CanonicalModel):
    """An ACK line status after the first one of a line."""

    status: str
    quantity: DecimalString | None = None
    uom: str | None = None
    date_qualifier: str | None = None
    date: DateString | None = None


class InvalidValue(CanonicalModel):
    """An X12 value the map could not convert, kept for the validator to report."""

    element: str  # e.g. "BEG05"
    value: str


class RawSegment(CanonicalModel):
    """A segment the map does not know, kept as received."""

    tag: str
    elements: list[str] = Field(default_factory=list)


class _Document(CanonicalModel):
    document_type: str
    schema_version: Literal["1"] = "1"
    parties: list[Party] = Field(default_factory=list)
    contacts: list[Contact] = Field(default_factory=list)
    references: list[Reference] = Field(default_factory=list)
    dates: list[DateRef] = Field(default_factory=list)
    notes: list[Note] = Field(default_factory=list)
    extra_segments: list[RawSegment] = Field(default_factory=list)
    invalid_values: list[InvalidValue] = Field(default_factory=list)


class _Line(CanonicalModel):
    line_number: str | None = None
    quantity: DecimalString | None = None
    uom: str | None = None
    unit_price: DecimalString | None = None
    price_basis: str | None = None
    item: Item = Field(default_factory=Item)
    packaging: Packaging | None = None
    references: list[Reference] = Field(default_factory=list)
    dates: list[DateRef] = Field(default_factory=list)
    notes: list[Note] = Field(default_factory=list)


# --- 850 ----------------------------------------------------------------------------------

class PurchaseOrderLine(_Line):
    """A PO1 loop."""

    schedules: list[Schedule] = Field(default_factory=list)
    allowances_charges: list[AllowanceCharge] = Field(default_factory=list)
    taxes: list[Tax] = Field(default_factory=list)


class PurchaseOrder(_Document):
    """An 850 purchase order."""

    document_type: Literal["purchase_order"] = "purchase_order"
    purpose: str | None = None
    order_type: str | None = None
    po_number: str | None = None
    release_number: str | None = None
    po_date: DateString | None = None
    contract_number: str | None = None
    currency: str | None = None
    terms: list[Terms] = Field(default_factory=list)
    carrier: Carrier | None = None
    allowances_charges: list[AllowanceCharge] = Field(default_factory=list)
    taxes: list[Tax] = Field(default_factory=list)
    lines: list[PurchaseOrderLine] = Field(default_factory=list)
    totals: Totals | None = None
    amounts: list[Amount] = Field(default_factory=list)


# --- 855 ----------------------------------------------------------------------------------

class OrderAcknowledgmentLine(_Line):
    """A PO1 loop of an 855 with its ACK line status (the first ACK; further ones follow)."""

    status: str | None = None  # ACK01
    status_quantity: DecimalString | None = None  # ACK02
    status_uom: str | None = None  # ACK03
    scheduled_date_qualifier: str | None = None  # ACK04
    scheduled_date: DateString | None = None  # ACK05
    additional_statuses: list[LineStatus] = Field(default_factory=list)
    schedules: list[Schedule] = Field(default_factory=list)


class OrderAcknowledgment(_Document):
    """An 855 purchase order acknowledgment."""

    document_type: Literal["order_acknowledgment"] = "order_acknowledgment"
    purpose: str | None = None
    ack_type: str | None = None
    po_number: str | None = None
    po_date: DateString | None = None
    release_number: str | None = None
    seller_order_number: str | None = None
    ack_date: DateString | None = None
    currency: str | None = None
    terms: list[Terms] = Field(default_factory=list)
    carrier: Carrier | None = None
    lines: list[OrderAcknowledgmentLine] = Field(default_factory=list)
    totals: Totals | None = None
    amounts: list[Amount] = Field(default_factory=list)


# --- 856 ----------------------------------------------------------------------------------

class _Measured(CanonicalModel):
    packaging_code: str | None = None  # TD101
    lading_quantity: DecimalString | None = None  # TD102
    weight_qualifier: str | None = None  # TD106
    weight: DecimalString | None = None  # TD107
    weight_uom: str | None = None  # TD108


class ShipItem(CanonicalModel):
    """An item (I) level: LIN ids, SN1 quantities, PID description."""

    line_number: str | None = None  # LIN01
    item: Item = Field(default_factory=Item)
    quantity: DecimalString | None = None  # SN102
    uom: str | None = None  # SN103
    ordered_quantity: DecimalString | None = None  # SN105
    ordered_uom: str | None = None  # SN106
    po_number: str | None = None  # PRF01 at item level (S-I structures)
    packaging: Packaging | None = None
    references: list[Reference] = Field(default_factory=list)
    dates: list[DateRef] = Field(default_factory=list)


class Pack(_Measured):
    """A pack (P) or tare (T) level; a tare holds its packs."""

    level: Literal["P", "T"] = "P"
    sscc: str | None = None  # MAN*GM
    marks: list[Identifier] = Field(default_factory=list)  # other MAN marks
    packaging: Packaging | None = None
    references: list[Reference] = Field(default_factory=list)
    dates: list[DateRef] = Field(default_factory=list)
    packs: list[Pack] = Field(default_factory=list)
    items: list[ShipItem] = Field(default_factory=list)


class ShipOrder(_Measured):
    """An order (O) level."""

    po_number: str | None = None  # PRF01
    release_number: str | None = None  # PRF02
    po_date: DateString | None = None  # PRF04
    parties: list[Party] = Field(default_factory=list)
    references: list[Reference] = Field(default_factory=list)
    dates: list[DateRef] = Field(default_factory=list)
    packs: list[Pack] = Field(default_factory=list)
    items: list[ShipItem] = Field(default_factory=list)


class ShipNotice(_Measured, _Document):
    """An 856 ship notice: shipment-level data and the HL tree as nested orders/packs/items."""

    document_type: Literal["ship_notice"] = "ship_notice"
    purpose: str | None = None  # BSN01
    shipment_id: str | None = None  # BSN02
    ship_date: DateString | None = None  # BSN03
    ship_time: TimeString | None = None  # BSN04
    structure: str | None = None  # BSN05
    carrier: Carrier | None = None
    bill_of_lading: str | None = None  # REF*BM
    orders: list[ShipOrder] = Field(default_factory=list)
    packs: list[Pack] = Field(default_factory=list)  # packs directly under the shipment
    items: list[ShipItem] = Field(default_factory=list)  # items directly under the shipment
    totals: Totals | None = None


# --- 810 ----------------------------------------------------------------------------------

class InvoiceLine(_Line):
    """An IT1 loop."""

    allowances_charges: list[AllowanceCharge] = Field(default_factory=list)
    taxes: list[Tax] = Field(default_factory=list)
    parties: list[Party] = Field(default_factory=list)


class Invoice(_Document):
    """An 810 invoice."""

    document_type: Literal["invoice"] = "invoice"
    invoice_date: DateString | None = None  # BIG01
    invoice_number: str | None = None  # BIG02
    po_date: DateString | None = None  # BIG03
    po_number: str | None = None  # BIG04
    release_number: str | None = None  # BIG05
    change_sequence: str | None = None  # BIG06
    invoice_type: str | None = None  # BIG07
    purpose: str | None = None  # BIG08
    currency: str | None = None
    terms: list[Terms] = Field(default_factory=list)
    lines: list[InvoiceLine] = Field(default_factory=list)
    allowances_charges: list[AllowanceCharge] = Field(default_factory=list)
    taxes: list[Tax] = Field(default_factory=list)
    total_amount: DecimalString | None = None  # TDS01, implied 2 decimals applied
    amounts: list[Amount] = Field(default_factory=list)
    totals: Totals | None = None
