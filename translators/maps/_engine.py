"""The small engine the maps share: element tables, value conversion, loops and writers.

A map is a set of tables, one per segment, in implementation-guide order::

    BEG = seg("BEG", {1: "purpose", 2: "order_type", 3: "po_number", 5: date("po_date")})

Each table reads a segment into a plain dict (inbound) and writes a model back into
elements (outbound). Loops are scopes: a segment is handled by the innermost open scope
that knows its tag (closing the inner ones), and a loop's first segment opens a new scope.
Inbound documents are built as plain dicts and validated once at the end.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from operator import attrgetter
from typing import Any, NamedTuple, Protocol

from translators.canonical._types import decimal_or_none
from translators.canonical.fresh import new_object
from translators.canonical.models import Address, Contact, Item, Party
from translators.errors import MappingError
from translators.settings import MappingSettings
from translators.x12.model import Row
from translators.x12.writer import Element, SegmentSpec

Data = dict[str, Any]

# --- value conversion ---------------------------------------------------------------------

_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

# Dates and times repeat within any stream (a batch of orders shares a handful of days), and
# a cached answer costs a tenth of checking and formatting the value again.
_MEMO = 4096


@lru_cache(maxsize=_MEMO)
def x12_date(value: str) -> str | None:
    """CCYYMMDD or YYMMDD (years below 50 are 20xx) as YYYY-MM-DD, None when not a date."""
    if len(value) == 8 and value.isdigit():
        year, month, day = value[:4], value[4:6], value[6:]
    elif len(value) == 6 and value.isdigit():
        year = ("20" if value[:2] < "50" else "19") + value[:2]
        month, day = value[2:4], value[4:]
    else:
        return None
    m, d = int(month), int(day)
    if not (0 < m < 13 and 0 < d <= _DAYS[m]):
        return None
    if m == 2 and d == 29:
        y = int(year)
        if y % 4 or (y % 100 == 0 and y % 400):
            return None
    return f"{year}-{month}-{day}"


@lru_cache(maxsize=_MEMO)
def x12_time(value: str) -> str | None:
    """HHMM or HHMMSS[d..] as HH:MM[:SS] (decimal seconds dropped), None when not a time."""
    n = len(value)
    if n < 4 or n > 8 or not value.isdigit() or value[:2] > "23" or value[2:4] > "59":
        return None
    if n == 4:
        return f"{value[:2]}:{value[2:]}"
    if n == 5 or value[4:6] > "59":
        return None
    return f"{value[:2]}:{value[2:4]}:{value[4:6]}"


def implied_2(value: str) -> str | None:
    """An N2 value ("12345") with its implied two decimals applied ("123.45")."""
    value = value.strip()
    sign = ""
    if value[:1] in ("-", "+"):
        sign, value = ("-" if value[0] == "-" else ""), value[1:]
    if not value.isdigit() or not value.isascii():
        return None
    return decimal_or_none(f"{sign}{value[:-2] or '0'}.{value[-2:].rjust(2, '0')}")


def out_date(value: str) -> str:
    """YYYY-MM-DD as CCYYMMDD."""
    return value.replace("-", "")


def out_time(value: str) -> str:
    """HH:MM[:SS] as HHMM[SS]."""
    return value.replace(":", "")


def out_implied_2(value: str) -> str:
    """A decimal string as an N2 value: "123.45" -> "12345"; more than 2 decimals is an error."""
    sign = "-" if value.startswith("-") else ""
    whole, _, frac = value.lstrip("-").partition(".")
    if len(frac) > 2:
        raise MappingError(f"{value} has more than 2 decimal places")
    digits = (whole + frac.ljust(2, "0")).lstrip("0") or "0"
    return sign + digits if digits != "0" else "0"


def _same(value: str) -> str:
    return value


class Kind(NamedTuple):
    """How an element converts: inbound converter (None = plain text) and outbound formatter."""

    inbound: Callable[[str], str | None] | None
    outbound: Callable[[str], str]


TEXT = Kind(None, _same)
DECIMAL = Kind(decimal_or_none, _same)
IMPLIED_2 = Kind(implied_2, out_implied_2)
DATE = Kind(x12_date, out_date)
TIME = Kind(x12_time, out_time)


class Field(NamedTuple):
    """One element of a table: the canonical field it fills and how it converts."""

    name: str
    kind: Kind = TEXT


def dec(name: str) -> Field:
    """A decimal (R or N0) element."""
    return Field(name, DECIMAL)


def n2(name: str) -> Field:
    """An N2 element (two implied decimals)."""
    return Field(name, IMPLIED_2)


def date(name: str) -> Field:
    """A DT element."""
    return Field(name, DATE)


def time(name: str) -> Field:
    """A TM element."""
    return Field(name, TIME)


# Maximum lengths that differ between versions (element id -> {version: max}); checked on
# output. Element lengths not listed are the same in 004010 and 005010 for these sets.
MAX_LENGTH: dict[str, dict[str, int]] = {
    "N102": {"004010": 35, "005010": 60},
    "N201": {"004010": 35, "005010": 60},
    "N202": {"004010": 35, "005010": 60},
    "PER02": {"004010": 35, "005010": 60},
    "REF02": {"004010": 30, "005010": 50},
    "N902": {"004010": 30, "005010": 50},
}

# --- mapping context (settings) ----------------------------------------------------------


class Context:
    """Per-translation state: the partner's code translations and what could not be mapped."""

    __slots__ = ("codes_in", "codes_out", "extra", "invalid", "items_in", "items_out", "version")

    def __init__(self, settings: MappingSettings | None = None, version: str = "004010") -> None:
        self.invalid: list[Data] = []
        self.extra: list[Data] = []
        self.version = "005010" if version[:6] >= "005010" else "004010"
        self.codes_in: dict[str, dict[str, str]] = {}
        self.codes_out: dict[str, dict[str, str]] = {}
        self.items_in: dict[str, Data] = {}
        self.items_out: dict[str, str] = {}
        if settings is None:
            return
        lists = dict(settings.codes)
        if settings.uom:
            lists["uom"] = dict(settings.uom)
        self.codes_in = {name: dict(table) for name, table in lists.items() if table}
        self.codes_out = {name: {ours: theirs for theirs, ours in table.items()}
                          for name, table in self.codes_in.items()}
        for partner_item, xref in settings.items.items():
            ours = xref.model_dump(exclude_none=True)
            self.items_in[partner_item] = ours
            for value in ours.values():
                self.items_out.setdefault(value, partner_item)

    def bad(self, element: str, value: str) -> None:
        """Keep a value that could not be converted, for the validator to report."""
        self.invalid.append({"element": element, "value": value})

    def unknown(self, seg: Row) -> None:
        """Keep a segment the map does not know."""
        self.extra.append({"tag": seg[0], "elements": seg[1:]})

    def code_out(self, code_list: str, value: str) -> str:
        """Our code as the partner's code."""
        table = self.codes_out.get(code_list)
        return table.get(value, value) if table else value


def _code_list(name: str) -> str:
    return "uom" if name.endswith("uom") else name


# --- segment tables ----------------------------------------------------------------------


class Reader(Protocol):
    """A compiled table reader: ``read(seg, ctx, out=None)``."""

    def __call__(self, seg: Row, ctx: Context, d: Data | None = None, /) -> Data:
        """The segment's fields, merged into ``d`` when given."""
        ...


Writer = Callable[[Callable[[str], Any], Context], list[Element]]


@dataclass(frozen=True, slots=True)
class SegmentTable:
    """The canonical field of each element of one segment."""

    tag: str
    fields: tuple[tuple[int, str, Kind, str, str], ...]  # (index, name, kind, id, code list)
    size: int
    # read(seg, ctx, out=None): the segment's elements as canonical fields (empty elements
    # left out), merged into ``out`` when given; the compiled function itself, no wrapper call.
    read: Reader
    writer: Writer

    def elements(self, obj: Any, ctx: Context, **override: str | None) -> list[Element]:
        """The elements for a model (or dict) ``obj``; ``override`` replaces field values."""
        values = obj if isinstance(obj, dict) else obj.__dict__
        if override:
            values = {**values, **override}
        return self.writer(values.get, ctx)

    def write(self, obj: Any, ctx: Context, **override: str | None) -> SegmentSpec | None:
        """The segment for ``obj``, or None when all its elements are empty."""
        els = self.elements(obj, ctx, **override)
        return (self.tag, els) if any(els) else None


def seg(tag: str, table: Mapping[int, str | Field]) -> SegmentTable:
    """Compile a table ``{element position: field}`` for segment ``tag``."""
    fields = []
    for pos, spec in sorted(table.items()):
        f = Field(spec) if isinstance(spec, str) else spec
        fields.append((pos - 1, f.name, f.kind, f"{tag}{pos:02d}", _code_list(f.name)))
    size = max(table)
    return SegmentTable(tag, tuple(fields), size, _compile_reader(fields),
                        _compile_writer(fields, size))


def _too_long(name: str, eid: str, ctx: Context) -> MappingError:
    limit = MAX_LENGTH[eid][ctx.version]
    return MappingError(f"{name} is longer than {limit} characters ({eid} in {ctx.version})",
                        field=name)


def _compile_writer(fields: Sequence[tuple[int, str, Kind, str, str]], size: int) -> Writer:
    """A writer function specialised for one table, the outbound twin of ``_compile_reader``.

    It does what this loop would::

        for i, name, kind, eid, code_list in fields:
            v = get(name)
            if v is None or v == "": continue
            out[i] = kind.outbound(v), for TEXT translated by the partner's code list
                     and checked against the version's MAX_LENGTH
    """
    lines = ["def write(get, ctx):", f"    out = [''] * {size}", "    codes = ctx.codes_out"]
    env: dict[str, Any] = {"MAX_LENGTH": MAX_LENGTH, "too_long": _too_long}
    for i, name, kind, eid, code_list in fields:
        lines += [f"    v = get({name!r})", "    if v is not None and v != '':"]
        if kind is TEXT:
            lines += ["        if codes:", f"            t = codes.get({code_list!r})",
                      "            if t:", "                v = t.get(v, v)"]
            if eid in MAX_LENGTH:
                lines += [f"        if len(v) > MAX_LENGTH[{eid!r}][ctx.version]:",
                          f"            raise too_long({name!r}, {eid!r}, ctx)"]
            lines.append(f"        out[{i}] = v")
        else:
            env[f"conv{i}"] = kind.outbound
            lines.append(f"        out[{i}] = conv{i}(v)")
    lines.append("    return out")
    exec("\n".join(lines), env)  # generated from the table above, no input
    writer: Writer = env["write"]
    return writer


def _compile_reader(fields: Sequence[tuple[int, str, Kind, str, str]]) -> Reader:
    """A reader function specialised for one table (straight-line code, no per-field loop).

    It does what this loop would, only faster (the maps' hot path)::

        for i, name, kind, eid, code_list in fields:
            v = seg[i + 1] if i + 1 < len(seg) else ""   # seg[n] is element n
            if v: out[name] = convert(v) or (report eid as invalid and skip)
    """
    env: dict[str, Any] = {}
    steps = _field_steps(fields, env)
    # The usual segment has every position of the table: that copy skips the length checks.
    last = steps[-1][0] if steps else 0
    lines = ["def read(seg, ctx, d=None):", "    if d is None:", "        d = {}",
             "    n = len(seg)", "    codes = ctx.codes_in", f"    if n > {last}:"]
    lines += ["        " + line for _, step in steps for line in step]
    lines.append("        return d")
    for position, step in steps:
        lines += [f"    if n <= {position}:", "        return d",
                  *("    " + line for line in step)]
    lines.append("    return d")
    exec("\n".join(lines), env)  # generated from the table above, no input
    reader: Reader = env["read"]
    return reader


_PLAIN_DECIMAL = re.compile(r"(?:0|[1-9][0-9]*)\.[0-9]*[1-9]").fullmatch
"""Canonical decimal text with a fraction: no leading zero but the units', no trailing zero."""


def _field_steps(fields: Sequence[tuple[int, str, Kind, str, str]], env: dict[str, Any],
                 store: Callable[[int, str], str] | None = None) -> list[tuple[int, list[str]]]:
    """(element position, the code that reads it into ``d``) for each field of a table;
    ``store(index, name)`` names where a value goes instead (``d[name]`` by default)."""
    steps: list[tuple[int, list[str]]] = []
    for i, name, kind, eid, code_list in fields:
        to = f"d[{name!r}]" if store is None else store(i, name)
        step = [f"v = seg[{i + 1}]", "if v:"]
        if kind.inbound is not None:
            env[f"conv{i}"] = kind.inbound
            convert = [f"    c = conv{i}(v)", "    if c is None:", f"        ctx.bad({eid!r}, v)",
                       "    else:", f"        {to} = c"]
            if kind is DECIMAL:  # text already canonical is what decimal_or_none returns
                # Canonical integers ("12") are recognised with string methods, which cost less
                # than a regex call; plain decimals ("1.25") by one regex, which costs less than
                # the six string checks that would say the same; anything else is converted.
                env["plain_decimal"] = _PLAIN_DECIMAL
                convert = ["    if v.isdigit() and v.isascii() and (v[0] != '0' or len(v) == 1):",
                           f"        {to} = v", "    elif plain_decimal(v) is not None:",
                           f"        {to} = v", "    else:", *("    " + line for line in convert)]
            step += convert
        else:
            step += ["    if ' ' in v and (v[0] == ' ' or v[-1] == ' '):", "        v = v.strip()",
                     "    if v:", "        if codes:", f"            t = codes.get({code_list!r})",
                     "            if t:", "                v = t.get(v, v)", f"        {to} = v"]
        steps.append((i + 1, step))
    return steps


# --- the shared segment tables -------------------------------------------------------------

REF = seg("REF", {1: "qualifier", 2: "value", 3: "description"})
N9 = seg("N9", {1: "qualifier", 2: "value", 3: "description"})
DTM = seg("DTM", {1: "qualifier", 2: date("date"), 3: time("time")})
NTE = seg("NTE", {1: "code", 2: "text"})
MSG = seg("MSG", {1: "text"})
CUR = seg("CUR", {2: "currency"})
N1 = seg("N1", {1: "role", 2: "name"})
N2 = seg("N2", {1: "name", 2: "name2"})
N3 = seg("N3", {1: "line1", 2: "line2"})
N4 = seg("N4", {1: "city", 2: "state", 3: "postal_code", 4: "country"})
PER = seg("PER", {1: "function", 2: "name"})
ITD = seg("ITD", {1: "type_code", 2: "basis_date_code", 3: dec("discount_percent"),
                  4: date("discount_due_date"), 5: dec("discount_days"),
                  6: date("net_due_date"), 7: dec("net_days"), 8: n2("discount_amount"),
                  12: "description"})
TD5 = seg("TD5", {1: "routing_sequence", 2: "id_qualifier", 3: "scac", 4: "mode", 5: "routing"})
TD3 = seg("TD3", {1: "equipment_code", 2: "equipment_initial", 3: "equipment_number"})
TD1 = seg("TD1", {1: "packaging_code", 2: dec("lading_quantity"), 6: "weight_qualifier",
                  7: dec("weight"), 8: "weight_uom"})
SAC = seg("SAC", {1: "indicator", 2: "code", 3: "agency_qualifier", 4: "agency_code",
                  5: n2("amount"), 6: "percent_qualifier", 7: dec("percent"), 8: dec("rate"),
                  9: "uom", 10: dec("quantity"), 12: "handling", 13: "reference",
                  15: "description"})
TXI = seg("TXI", {1: "type", 2: dec("amount"), 3: dec("percent"), 4: "jurisdiction_qualifier",
                  5: "jurisdiction_code", 6: "exemption_code", 8: dec("basis_amount")})
PID = seg("PID", {1: "type", 2: "code", 5: "text"})
PO4 = seg("PO4", {1: dec("pack"), 2: dec("size"), 3: "size_uom", 4: "packaging_code",
                  5: "weight_qualifier", 6: dec("gross_weight"), 7: "weight_uom"})
SCH = seg("SCH", {1: dec("quantity"), 2: "uom", 5: "qualifier", 6: date("date"),
                  7: time("time")})
CTT = seg("CTT", {1: dec("line_count"), 2: dec("hash_total")})
AMT = seg("AMT", {1: "qualifier", 2: dec("amount")})

# New canonical objects with their defaults (empty lists...), filled in as segments come.
NEW_ITEM = new_object(Item)
NEW_PARTY = new_object(Party)
NEW_ADDRESS = new_object(Address)
NEW_CONTACT = new_object(Contact)

# --- product/service id pairs --------------------------------------------------------------

# PO1/IT1/LIN qualifier -> the named Item field it fills (the first pair of a kind wins).
ITEM_QUALIFIERS: dict[str, str] = {
    "BP": "buyer_part", "IN": "buyer_part",
    "VP": "vendor_part", "VN": "vendor_part",
    "UP": "upc", "UA": "upc", "UI": "upc", "UN": "upc",
    "EN": "gtin", "EO": "gtin", "UK": "gtin",
    "SK": "sku",
}
# The qualifier written for a named Item field that no pair carries yet.
ITEM_FIELDS_OUT: dict[str, str] = {
    "buyer_part": "BP", "vendor_part": "VP", "upc": "UP", "gtin": "EN", "sku": "SK",
}


def read_item(seg: Row, start: int, ctx: Context) -> Data:
    """Item from the qualifier/value pairs of ``seg`` from element ``start`` on."""
    return item_reader(start)(seg, ctx)


def item_reader(start: int) -> Callable[[list[str], Context], Data]:
    """``read_item`` for pairs from element ``start`` on, as one function ``(seg, ctx)``."""
    reader = _ITEM_READERS.get(start)
    if reader is None:
        reader = _ITEM_READERS[start] = _compile_item_reader(start)
    return reader


def _read_pairs(seg: Row, start: int, ctx: Context, item: Data, ids: list[Data]) -> None:
    """The pairs from element ``start`` on into ``item`` and ``ids`` (the first of a kind names)."""
    names = ITEM_QUALIFIERS
    for i in range(start, len(seg) - 1, 2):
        q, v = seg[i], seg[i + 1]
        if not v:
            if q:
                ctx.bad(f"pair@{i:02d}", q)
            continue
        if " " in v and (v[0] == " " or v[-1] == " "):  # the C scan first: few values have spaces
            v = v.strip()
            if not v:
                continue
        ids.append({"qualifier": q, "value": v})
        name = names.get(q)
        if name is not None and name not in item:
            item[name] = v


_UNROLLED_PAIRS = 15  # LIN02..LIN31; PO1/IT1 have 10
_ITEM_READERS: dict[int, Callable[[Row, Context], Data]] = {}


def _compile_item_reader(start: int) -> Callable[[Row, Context], Data]:
    """``read_item`` for one start index, the pair loop unrolled (the maps' hottest code).

    It does what ``_read_pairs`` does, then the partner's cross-reference."""
    env = _item_env()
    lines = ["def read_item(seg, ctx):", "    n = len(seg)",
             *("    " + line for line in _item_code(start)), "    return item"]
    exec("\n".join(lines), env)  # generated from the constants above, no input
    reader: Callable[[Row, Context], Data] = env["read_item"]
    return reader


def _item_env() -> dict[str, Any]:
    return {"names_get": ITEM_QUALIFIERS.get, "cross": _cross_reference,
            "read_pairs": _read_pairs}


def _item_code(start: int) -> list[str]:
    """Code that reads the pairs from element ``start`` on into a new ``item`` (``n`` is the
    row's length): each pair nested in the test for the one before, so a row stops it."""
    # The display of NEW_ITEM() itself: a call costs more than the dict it returns.
    lines = [f"item = {NEW_ITEM()!r}", "ids = item['ids']"]
    indent = ""
    for k in range(_UNROLLED_PAIRS):
        i = start + 2 * k
        lines += [f"{indent}if n > {i + 1}:"]
        indent += "    "
        lines += [f"{indent}{line}" for line in (
            f"q = seg[{i}]", f"v = seg[{i + 1}]", "if v:",
            "    if ' ' in v and (v[0] == ' ' or v[-1] == ' '):", "        v = v.strip()",
            "    if v:", "        ids.append({'qualifier': q, 'value': v})",
            "        name = names_get(q)", "        if name is not None and name not in item:",
            "            item[name] = v", "elif q:", f"    ctx.bad('pair@{i:02d}', q)")]
    lines += [f"{indent}read_pairs(seg, {start + 2 * _UNROLLED_PAIRS}, ctx, item, ids)",
              "if ctx.items_in:", "    cross(item, ctx)"]
    return lines


def line_handler(table: SegmentTable, item_start: int, new_line: Callable[[], Data],
                 loop: Handlers) -> Handler:
    """Handler for PO1/IT1: a new line from ``new_line()`` with the table's fields and its
    item's pairs from element ``item_start`` on, appended to ``target["lines"]``; it opens
    ``loop``. One generated function: a line is the maps' most frequent segment."""
    env = _item_env()
    env.update(read=table.read, new_line=new_line, loop=loop)
    steps = _field_steps(table.fields, env, lambda i, name: f"f{i}")
    last = steps[-1][0] if steps else 0
    lines = ["def handler(seg, target, ctx):", "    n = len(seg)", f"    if n <= {last}:",
             "        d = new_line()", "        read(seg, ctx, d)",
             *("        " + line for line in _item_code(item_start)),
             "        d['item'] = item", "    else:", "        codes = ctx.codes_in",
             *(f"        f{i} = None" for i, *_ in table.fields),
             *("        " + line for _, step in steps for line in step),
             *("        " + line for line in _item_code(item_start)),
             *("        " + line for line in _line_display(table, new_line())),
             "    lines = target.get('lines')", "    if lines is None:",
             "        target['lines'] = [d]", "    else:", "        lines.append(d)",
             "    return (loop, d)"]
    exec("\n".join(lines), env)  # generated from the table and the constants above, no input
    handler: Handler = env["handler"]
    return handler


def _line_display(table: SegmentTable, defaults: Data) -> list[str]:
    """Code that builds the line ``d`` in one dict display: the defaults with ``item`` in its
    place, then the fields read into ``f<index>`` (those left None deleted again).

    The same keys in the same order as filling ``new_line()``, without its throwaway item
    and without the dict growing (a resize) as the fields come in."""
    shown = [f"{name!r}: {'item' if name == 'item' else repr(value)}"
             for name, value in defaults.items()]
    inline = [(i, name) for i, name, *_ in table.fields if name not in defaults]
    shown += [f"{name!r}: f{i}" for i, name in inline]
    lines = [f"d = {{{', '.join(shown)}}}"]
    lines += [line for i, name in inline for line in (f"if f{i} is None:", f"    del d[{name!r}]")]
    # A field that also has a default keeps the default's place and value when absent.
    lines += [line for i, name, *_ in table.fields if name in defaults
              for line in (f"if f{i} is not None:", f"    d[{name!r}] = f{i}")]
    if "item" not in defaults:
        lines.append("d['item'] = item")
    return lines


def _cross_reference(item: Data, ctx: Context) -> None:
    for pair in item.get("ids", ()):
        ours = ctx.items_in.get(pair["value"])
        if ours:
            for name, value in ours.items():
                item.setdefault(name, value)
            return


_ITEM_FIELDS_OUT = tuple(ITEM_FIELDS_OUT.items())
_QUALIFIER = attrgetter("qualifier")
_QUALIFIER_VALUE = attrgetter("qualifier", "value")


def item_pairs(item: Any, ctx: Context, limit: int) -> list[Element]:
    """The qualifier/value pairs for an Item: its ids, then named fields no pair carries."""
    ids = item.ids
    out: list[Element] = list(chain.from_iterable(map(_QUALIFIER_VALUE, ids)))
    named = set(map(ITEM_QUALIFIERS.get, map(_QUALIFIER, ids)))
    fields = item.__dict__
    extra: list[str] = []
    for name, qualifier in _ITEM_FIELDS_OUT:
        if name not in named:
            value = fields[name]
            if value:
                extra += (qualifier, value)
    if ctx.items_out and not item.buyer_part:
        for value in (item.sku, item.upc, item.gtin, item.vendor_part):
            partner_item = ctx.items_out.get(value) if value else None
            if partner_item:
                extra[:0] = ("BP", partner_item)
                break
    count = (len(out) + len(extra)) // 2
    if count > limit:
        raise MappingError(f"item has {count} ids; at most {limit} fit", field="item.ids")
    if extra:
        out += extra
    return out


# --- party (N1 loop), contacts, notes -----------------------------------------------------

# N101 entity identifier code -> canonical role. Codes not listed are kept as the raw code.
PARTY_ROLES: dict[str, str] = {
    "BT": "bill_to", "BY": "buyer", "BS": "bill_and_ship_to", "CA": "carrier",
    "MF": "manufacturer", "OB": "ordered_by", "PE": "payee", "PR": "payer", "RI": "remit_to",
    "SE": "seller", "SF": "ship_from", "SH": "shipper", "SN": "store", "SO": "sold_to",
    "ST": "ship_to", "SU": "supplier", "VN": "vendor", "WH": "warehouse", "Z7": "mark_for",
    "II": "issuer_of_invoice", "CN": "consignee", "DA": "delivery_address",
}
PARTY_CODES: dict[str, str] = {v: k for k, v in PARTY_ROLES.items()}

_PER_NAMED = {"TE": "phone", "FX": "fax", "EM": "email"}


def read_contact(seg: Row, ctx: Context) -> Data:
    """PER: function, name, and its communication number pairs (PER03/04, 05/06, 07/08)."""
    contact = PER.read(seg, ctx, NEW_CONTACT())
    other: list[Data] = []
    for i in (3, 5, 7):
        if i + 1 < len(seg) and seg[i + 1]:
            q, v = seg[i], seg[i + 1].strip()
            name = _PER_NAMED.get(q)
            if name and name not in contact:
                contact[name] = v
            else:
                other.append({"qualifier": q, "value": v})
    if other:
        contact["other"] = other
    return contact


def write_contact(contact: Any, ctx: Context) -> SegmentSpec:
    """PER for a Contact (at most three communication numbers)."""
    els = PER.elements(contact, ctx)
    pairs = [(q, getattr(contact, name)) for q, name in
             (("TE", "phone"), ("FX", "fax"), ("EM", "email")) if getattr(contact, name)]
    pairs += [(o.qualifier, o.value) for o in contact.other]
    if len(pairs) > 3:
        raise MappingError("a contact has more than 3 communication numbers", field="contacts")
    for q, v in pairs:
        els += [q, v]
    return ("PER", els)


def _party_address(party: Data) -> Data:
    address: Data | None = party.get("address")
    if address is None:
        address = party["address"] = NEW_ADDRESS()
    return address


def _on_n2(seg: Row, party: Data, ctx: Context) -> Scope | None:
    names = party.setdefault("additional_names", [])
    names += N2.read(seg, ctx).values()  # name, name2: the ones present, in order
    return None


def _on_n3(seg: Row, party: Data, ctx: Context) -> Scope | None:
    lines = _party_address(party).setdefault("lines", [])
    lines += N3.read(seg, ctx).values()  # line1, line2: the ones present, in order
    return None


def _on_n4(seg: Row, party: Data, ctx: Context) -> Scope | None:
    N4.read(seg, ctx, _party_address(party))
    return None


def _on_party_ref(seg: Row, party: Data, ctx: Context) -> Scope | None:
    party.setdefault("references", []).append(REF.read(seg, ctx))
    return None


def _on_party_per(seg: Row, party: Data, ctx: Context) -> Scope | None:
    party.setdefault("contacts", []).append(read_contact(seg, ctx))
    return None


Handler = Callable[[Row, Data, Context], "Scope | None"]
Handlers = dict[str, Handler]
Scope = tuple[Handlers, Data]

PARTY_LOOP: Handlers = {"N2": _on_n2, "N3": _on_n3, "N4": _on_n4, "REF": _on_party_ref,
                        "PER": _on_party_per}


def on_n1(key: str = "parties") -> Handler:
    """Handler for N1: a new party in ``target[key]``, opening the N1 loop."""
    def handler(seg: Row, target: Data, ctx: Context) -> Scope | None:
        party = N1.read(seg, ctx, NEW_PARTY())
        code = party.get("role")
        if code is None:
            party["role"] = ""
            ctx.bad("N101", "")
        else:
            party["role"] = PARTY_ROLES.get(code, code)
        if len(seg) > 4 and seg[4]:  # N103/N104
            party["ids"] = [{"qualifier": seg[3], "value": seg[4].strip()}]
        target.setdefault(key, []).append(party)
        return (PARTY_LOOP, party)
    return handler


def write_party(party: Any, ctx: Context) -> list[SegmentSpec]:
    """The N1 loop of a Party."""
    code = PARTY_CODES.get(party.role, party.role)
    ids = party.ids
    if len(ids) > 1:
        raise MappingError("a party has more than one id (N103/N104)", field="parties[].ids")
    n1 = N1.elements(party, ctx, role=code)
    if ids:
        n1 += [ids[0].qualifier, ids[0].value]
    out: list[SegmentSpec] = [("N1", n1)]
    names = party.additional_names
    for i in range(0, len(names), 2):
        out.append(("N2", N2.elements({"name": names[i], "name2": _at(names, i + 1)}, ctx)))
    address = party.address
    if address is not None:
        lines = address.lines
        for i in range(0, len(lines), 2):
            out.append(("N3", N3.elements({"line1": lines[i], "line2": _at(lines, i + 1)}, ctx)))
        n4 = N4.write(address, ctx)
        if n4:
            out.append(n4)
    out.extend(("REF", REF.elements(r, ctx)) for r in party.references)
    out.extend(write_contact(c, ctx) for c in party.contacts)
    return out


def _at(values: Sequence[str], i: int) -> str | None:
    return values[i] if i < len(values) else None


# --- common header handlers ---------------------------------------------------------------


def append_to(key: str, table: SegmentTable) -> Handler:
    """Handler that appends the segment read by ``table`` to ``target[key]``."""
    def handler(seg: Row, target: Data, ctx: Context) -> Scope | None:
        target.setdefault(key, []).append(table.read(seg, ctx))
        return None
    return handler


def set_fields(table: SegmentTable) -> Handler:
    """Handler that merges the fields of the segment into the target."""
    def handler(seg: Row, target: Data, ctx: Context) -> Scope | None:
        table.read(seg, ctx, target)
        return None
    return handler


def set_object(key: str, table: SegmentTable) -> Handler:
    """Handler that merges the fields of the segment into ``target[key]`` (created if absent)."""
    def handler(seg: Row, target: Data, ctx: Context) -> Scope | None:
        obj = target.get(key)
        if obj is None:
            obj = target[key] = {}
        table.read(seg, ctx, obj)
        return None
    return handler


def on_per(seg: Row, target: Data, ctx: Context) -> Scope | None:
    """PER outside a party: a document contact."""
    target.setdefault("contacts", []).append(read_contact(seg, ctx))
    return None


def on_nte(seg: Row, target: Data, ctx: Context) -> Scope | None:
    """NTE: a note with its reference code."""
    note = NTE.read(seg, ctx)
    if "text" in note:
        target.setdefault("notes", []).append(note)
    return None


def on_msg(seg: Row, target: Data, ctx: Context) -> Scope | None:
    """MSG: a note line (coded by an enclosing N9*L1)."""
    note = MSG.read(seg, ctx)
    if "text" in note:
        code = target.get("_note_code")
        if code:
            note["code"] = code
        target.setdefault("notes", []).append(note)
    return None


def on_n9(seg: Row, target: Data, ctx: Context) -> Scope | None:
    """N9: L1 opens a block of coded notes; any other qualifier is a reference."""
    ref = N9.read(seg, ctx)
    if ref.get("qualifier") == "L1":
        return (N9_LOOP, {"notes": target.setdefault("notes", []), "_note_code": ref.get("value")})
    target.setdefault("references", []).append(ref)
    return (N9_LOOP, {"notes": target.setdefault("notes", []), "_note_code": None})


N9_LOOP: Handlers = {"MSG": on_msg}


def on_pid(seg: Row, target: Data, ctx: Context) -> Scope | None:
    """PID: the first free-form description is the item's; later ones are line notes."""
    text = seg[5].strip() if len(seg) > 5 else ""
    if seg[1] != "F" or not text:
        ctx.unknown(seg)
        return None
    item = target["item"]
    if "description" not in item:
        item["description"] = text
    else:
        note: Data = {"text": text}
        if len(seg) > 2 and seg[2]:
            note["code"] = seg[2]
        target.setdefault("notes", []).append(note)
    return None


def write_notes_n9(notes: Sequence[Any], ctx: Context) -> list[SegmentSpec]:
    """Notes as N9*L1 blocks of MSG lines, one block per run of notes with the same code."""
    out: list[SegmentSpec] = []
    code: object = object()
    for note in notes:
        if note.code != code:
            code = note.code
            out.append(("N9", ["L1", note.code or "", "" if note.code else "NOTES"]))
        out.append(("MSG", [note.text]))
    return out


def write_description(line: Any, ctx: Context) -> list[SegmentSpec]:
    """PID for the item description, then one PID per line note."""
    out: list[SegmentSpec] = []
    if line.item.description:
        out.append(("PID", ["F", "", "", "", line.item.description]))
    elif getattr(line, "notes", None):
        raise MappingError("line notes need an item description", field="lines[].notes")
    for note in getattr(line, "notes", ()):
        out.append(("PID", ["F", note.code or "", "", "", note.text]))
    return out


def write_dates(dates: Sequence[Any], ctx: Context) -> list[SegmentSpec]:
    """One DTM per DateRef."""
    return write_all("DTM", DTM, dates, ctx)


def write_all(tag: str, table: SegmentTable, objs: Sequence[Any], ctx: Context
              ) -> list[SegmentSpec]:
    """One segment per object."""
    if not objs:
        return []
    return [(tag, table.elements(o, ctx)) for o in objs]


def write_carrier(carrier: Any, ctx: Context) -> list[SegmentSpec]:
    """TD5 and TD3 of a Carrier (its tracking number is written by the caller as REF*CN)."""
    out: list[SegmentSpec] = []
    for table in (TD5, TD3):
        spec = table.write(carrier, ctx)
        if spec:
            out.append(spec)
    return out


# --- the reader loop ----------------------------------------------------------------------


def run(segments: Sequence[Row], header: Handlers, doc: Data, ctx: Context) -> Data:
    """Dispatch each segment to the innermost open scope that handles its tag."""
    stack: list[Scope] = [(header, doc)]
    handlers, target = header, doc  # the innermost scope, stack[-1]
    for segment in segments:
        tag = segment[0]
        handler = handlers.get(tag)
        if handler is None:
            depth = len(stack) - 1
            while depth > 0:
                depth -= 1
                handler = stack[depth][0].get(tag)
                if handler is not None:
                    del stack[depth + 1:]
                    handlers, target = stack[depth]
                    break
            if handler is None:
                if tag not in ("ST", "SE"):
                    ctx.unknown(segment)
                continue
        scope = handler(segment, target, ctx)
        if scope is not None:
            stack.append(scope)
            handlers, target = scope
    return doc
