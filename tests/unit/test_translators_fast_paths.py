"""The engine's fast paths must give exactly what their plain counterparts give.

Reader: each segment's ``raw`` is its tag and elements joined. Validator: matching on ``raw``
equals matching on the joined elements, and the generated syntax-note functions follow the
notes' definitions. Writer: the one-regex formatter equals the element-by-element path,
errors included. Maps: the compiled table writers equal the plain loop they replace.
"""

from __future__ import annotations

import itertools
import random
import re
from pathlib import Path
from typing import Any

import pydantic_core
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import corpus_files
from translators.errors import MappingError
from translators.maps import (
    _engine,
    ack855,
    asn856,
    inv810,
    po850,
    to_canonical_data,
    to_canonical_json,
)
from translators.maps._engine import MAX_LENGTH, TEXT, Context, SegmentTable
from translators.schemas import segment_dictionary
from translators.schemas.model import SyntaxNote
from translators.settings import MappingSettings
from translators.validation import validate_transaction
from translators.validation._compile import Slot, segment_pattern
from translators.x12.model import Delimiters, Segment, TransactionSet
from translators.x12.reader import read_transactions
from translators.x12.writer import WriteError, _format_checked, format_segment, format_transaction

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ISA = ("ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *240101*1200*U*00401*"
       "000000001*0*P*>~\n")


def _interchange(body: list[str]) -> bytes:
    segs = ["ST*850*0001", *body, f"SE*{len(body) + 2}*0001"]
    return (ISA + "GS*PO*SENDER*RECEIVER*20240101*1200*1*X*004010~\n"
            + "".join(s + "~\n" for s in segs) + "GE*1*1~\nIEA*1*000000001~\n").encode()


def _without_raw(ts: TransactionSet) -> TransactionSet:
    segments = [Segment(s.tag, s.elements, s.offset, s.position, s.component, s.repetition)
                for s in ts.segments]
    return TransactionSet(ts.group, ts.offset, segments, ts.set_id, ts.control_number,
                          ts.implementation_reference, ts.issues, ts.size)


def _check_set(ts: TransactionSet) -> None:
    element = ts.group.interchange.delimiters.element
    for seg in ts.segments:
        assert seg.raw == element.join([seg.tag, *seg.elements])
    assert validate_transaction(ts) == validate_transaction(_without_raw(ts))


# --- reader raw text and the validator's use of it ---------------------------------------

@pytest.mark.corpus
@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_raw_text_and_validation_agree(path: Path) -> None:
    for ts in read_transactions(path.read_bytes()):
        _check_set(ts)


_VALUE = st.text(alphabet="AB12 .-^>:", max_size=6)
_SEG = st.tuples(st.sampled_from(["BEG", "PO1", "PID", "N1", "N3", "N4", "REF", "DTM", "CTT", "ZZZ"]),
                 st.lists(_VALUE, max_size=8))


@PROPERTY
@given(st.lists(_SEG, max_size=12), st.sampled_from(["~\n", "~", "~\r\n"]))
def test_generated_sets_raw_text_and_validation_agree(body: list[tuple[str, list[str]]],
                                                      terminator: str) -> None:
    data = _interchange(["*".join([tag, *els]) for tag, els in body])
    data = data.replace(b"~\n", terminator.encode())
    for ts in read_transactions(data):
        _check_set(ts)


# --- syntax notes folded into the segment regex, against the notes' definitions -------

def _present(e: list[str], q: int) -> bool:
    return len(e) >= q and e[q - 1] != ""


def _note_holds(note: SyntaxNote, e: list[str]) -> bool:
    p = [_present(e, q) for q in note.positions]
    if note.kind == "P":
        return all(p) or not any(p)
    if note.kind == "R":
        return any(p)
    if note.kind == "E":
        return sum(p) <= 1
    if note.kind == "C":
        return not p[0] or all(p[1:])
    return not p[0] or any(p[1:])  # L


@pytest.mark.parametrize("version", ["004010", "005010"])
def test_segment_regex_notes_follow_the_note_definitions(version: str) -> None:
    rnd = random.Random(version)
    checked = 0
    for tag, defn in segment_dictionary(version).items():
        if defn.elements is None:
            continue
        composites = [r.position for r in defn.elements
                      if r.composite is not None and r.composite.syntax]
        if not defn.syntax and not composites:
            continue
        # Every element optional and any value valid: only the notes can reject a shape.
        slots = [Slot("X", False, "X?")] * len(defn.elements)
        for n in range(len(defn.elements) + 1):
            pattern = segment_pattern(defn, slots, "*", n)
            assert pattern is not None
            shape = re.compile(pattern)
            shapes: Any = (itertools.product(["", "X"], repeat=n) if n <= 10 else
                           (tuple(rnd.choice(["", "X"]) for _ in range(n)) for _ in range(500)))
            for e in map(list, shapes):
                expected = (all(_note_holds(note, e) for note in defn.syntax)
                            and not any(_present(e, q) for q in composites))
                assert (shape.fullmatch("*".join(e)) is not None) == expected, (tag, e)
                checked += 1
    assert checked > 10_000


# --- writer ----------------------------------------------------------------------------

_DELIMS = [Delimiters(), Delimiters("|", ":", "^", "\n", ""), Delimiters("*", ">", None, "~", "\r\n")]
_ELEMENT: Any = st.one_of(st.text(alphabet="AB1 *>^~|:\n-", max_size=5),
                          st.lists(st.text(alphabet="AB1>*:", max_size=3), max_size=3))


def _outcome(fn: Any, *args: Any) -> tuple[str, str]:
    try:
        return "ok", fn(*args)
    except WriteError as exc:
        return "error", str(exc)


@PROPERTY
@given(st.sampled_from(_DELIMS), st.lists(_ELEMENT, max_size=8), st.booleans())
def test_writer_fast_path_equals_element_by_element(delimiters: Delimiters, elements: list[Any],
                                                    as_tuple: bool) -> None:
    els = tuple(elements) if as_tuple else elements
    assert _outcome(format_segment, "REF", els, delimiters) == _outcome(
        _format_checked, "REF", list(els), delimiters)


# --- compiled table writers against the plain loop ---------------------------------------

def _reference_elements(table: SegmentTable, obj: Any, ctx: Context,
                        **override: str | None) -> list[Any]:
    """SegmentTable.elements as the loop it was before it was compiled."""
    out: list[Any] = [""] * table.size
    get = obj.get if isinstance(obj, dict) else obj.__dict__.get
    for i, name, kind, eid, code_list in table.fields:
        value = override[name] if name in override else get(name)
        if value is None or value == "":
            continue
        text = kind.outbound(value)
        if kind is TEXT:
            text = ctx.code_out(code_list, text)
            limit = MAX_LENGTH.get(eid)
            if limit and len(text) > limit[ctx.version]:
                raise MappingError(f"{name} is longer than {limit[ctx.version]} characters "
                                   f"({eid} in {ctx.version})", field=name)
        out[i] = text
    return out


def _tables() -> list[SegmentTable]:
    found: dict[int, SegmentTable] = {}
    for module in (_engine, po850, ack855, asn856, inv810):
        for value in vars(module).values():
            if isinstance(value, SegmentTable):
                found[id(value)] = value
    return list(found.values())


_SAMPLE = st.one_of(st.none(), st.just(""), st.sampled_from(["EA", "CA", "1", "12.5", "2024-01-02",
                                                             "12:30", "X" * 40, "X" * 61]))


@pytest.mark.parametrize("table", _tables(), ids=lambda t: t.tag)
@settings(max_examples=60, deadline=None)
@given(data=st.data(), version=st.sampled_from(["004010", "005010"]), coded=st.booleans())
def test_compiled_table_writer_equals_the_loop(table: SegmentTable, data: st.DataObject,
                                               version: str, coded: bool) -> None:
    settings_ = MappingSettings(uom={"CS": "CA"}, codes={"qualifier": {"ZZ": "EA"}}) if coded else None
    ctx = Context(settings_, version)
    obj = {name: data.draw(_SAMPLE) for _, name, *_ in table.fields}
    override = {k: v for k, v in data.draw(st.dictionaries(
        st.sampled_from([name for _, name, *_ in table.fields]), _SAMPLE, max_size=2)).items()}

    def run(fn: Any) -> Any:
        try:
            return fn(table, obj, ctx, **override)
        except (MappingError, ValueError, AttributeError) as exc:
            return type(exc), str(exc)

    assert run(SegmentTable.elements) == run(_reference_elements)


# --- compiled table readers against the plain loop ---------------------------------------

def _reference_read(table: SegmentTable, seg: list[str], ctx: Context,
                    d: dict[str, Any] | None = None) -> dict[str, Any]:
    """SegmentTable.read as the loop it was compiled from."""
    d = {} if d is None else d
    el = seg[1:]
    for i, name, kind, eid, code_list in table.fields:
        if len(el) <= i:
            break
        v = el[i]
        if not v:
            continue
        if kind.inbound is not None:
            c = kind.inbound(v)
            if c is None:
                ctx.bad(eid, v)
            else:
                d[name] = c
            continue
        if v[0] == " " or v[-1] == " ":
            v = v.strip()
        if v:
            table_ = ctx.codes_in.get(code_list)
            d[name] = table_.get(v, v) if table_ else v
    return d


_IN_VALUE = st.one_of(st.sampled_from(["", " ", "EA", " CS ", "CS", "ZZ", "12", "012", "0", "-1.50",
                                       "1.25", "+3", " 7 ", "1.", "20240229", "20230229", "240101",
                                       "1230", "123045", "2460", "A B", "\tX"]),
                      st.text(alphabet="0123456789. -AZ\t", max_size=6))


@pytest.mark.parametrize("table", _tables(), ids=lambda t: t.tag)
@settings(max_examples=60, deadline=None)
@given(elements=st.lists(_IN_VALUE, max_size=16), coded=st.booleans(), merge=st.booleans())
def test_compiled_table_reader_equals_the_loop(table: SegmentTable, elements: list[str],
                                               coded: bool, merge: bool) -> None:
    settings_ = (MappingSettings(uom={"CS": "CA"}, codes={"qualifier": {"ZZ": "EA"}})
                 if coded else None)
    seg = [table.tag, *elements]
    fast_ctx, slow_ctx = Context(settings_), Context(settings_)
    fast = table.read(seg, fast_ctx, {"kept": 1} if merge else None)
    slow = _reference_read(table, seg, slow_ctx, {"kept": 1} if merge else None)
    assert fast == slow
    assert list(fast) == list(slow)  # same key order: the JSON is written in reading order
    assert fast_ctx.invalid == slow_ctx.invalid


_TAG = st.sampled_from(["REF", "N1", "PO1", "", "A*", "B~"])


@PROPERTY
@given(st.sampled_from(_DELIMS), st.lists(st.tuples(_TAG, st.lists(_ELEMENT, max_size=6)), max_size=6),
       st.booleans())
def test_transaction_body_equals_segment_by_segment(delimiters: Delimiters,
                                                    body: list[tuple[str, list[Any]]],
                                                    as_tuples: bool) -> None:
    specs: list[Any] = [(tag, tuple(els) if as_tuples else els) for tag, els in body]

    def expected() -> tuple[str, int]:
        for tag, els in specs:
            if not any(els):
                raise WriteError(f"segment {tag} would carry no data: the document gives it no values")
        out = [_format_checked("ST", ["850", "0001"], delimiters)]
        out += [_format_checked(tag, list(els), delimiters) for tag, els in specs]
        out.append(_format_checked("SE", [str(len(out) + 1), "0001"], delimiters))
        return "".join(out), len(out)

    assert _outcome(format_transaction, "850", "0001", specs, delimiters) == _outcome(expected)


# --- compact control-number keys ------------------------------------------------------

@pytest.mark.parametrize(("first", "second", "duplicate"), [
    ("0001", "0001", True), ("0001", "1", False), ("0001", "00001", False), ("1", "\u0661", False),
    ("A001", "A001", True), ("123456789", "123456789", True), ("0012", "12", False)])
def test_duplicate_set_control_numbers_are_found_exactly(first: str, second: str,
                                                          duplicate: bool) -> None:
    data = (ISA + "GS*PO*SENDER*RECEIVER*20240101*1200*1*X*004010~\n"
            f"ST*850*{first}~\nBEG*00*SA*1**20240101~\nSE*3*{first}~\n"
            f"ST*850*{second}~\nBEG*00*SA*2**20240101~\nSE*3*{second}~\n"
            "GE*2*1~\nIEA*1*000000001~\n").encode()
    issues = [i for ts in read_transactions(data) for i in ts.issues]
    assert any("is used twice" in i.message for i in issues) == duplicate


# --- unrolled item pairs and the JSON encoder -------------------------------------------

def _reference_item(el: list[str], start: int, ctx: Context) -> dict[str, Any]:
    """read_item as the plain loop it was before it was unrolled."""
    ids: list[dict[str, Any]] = []
    item: dict[str, Any] = {"ids": ids}  # Item's defaults: a new item has its (empty) ids
    _engine._read_pairs(el, start, ctx, item, ids)
    if ctx.items_in:
        _engine._cross_reference(item, ctx)
    return item


_PAIR_VALUE = st.sampled_from(["", " ", "UP", "VP", "BP", "SK", "EN", "ZZ", "0123", " 12 ", "A B", "X"])


@PROPERTY
@given(st.lists(_PAIR_VALUE, max_size=45), st.sampled_from([1, 5]), st.booleans())
def test_unrolled_item_reader_equals_the_pair_loop(elements: list[str], start: int,
                                                   xref: bool) -> None:
    settings_ = MappingSettings.model_validate(
        {"items": {"0123": {"sku": "S-1"}}}) if xref else None
    fast_ctx, slow_ctx = Context(settings_), Context(settings_)
    fast = _engine.read_item(elements, start, fast_ctx)
    slow = _reference_item(elements, start, slow_ctx)
    assert fast == slow
    assert list(fast) == list(slow)
    assert fast_ctx.invalid == slow_ctx.invalid


@pytest.mark.corpus
@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_canonical_json_is_what_pydantic_core_writes(path: Path) -> None:
    orjson = pytest.importorskip("orjson")
    count = 0
    for ts in read_transactions(path.read_bytes()):
        if ts.set_id not in ("850", "855", "856", "810"):
            continue
        try:
            data = to_canonical_data(ts)
        except MappingError:
            continue
        assert orjson.dumps(data) == pydantic_core.to_json(data)
        assert to_canonical_json(ts) == pydantic_core.to_json(data)
        count += 1
    assert count or not any(ts.set_id in ("850", "855", "856", "810")
                            for ts in read_transactions(path.read_bytes()))


_JSON_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)


@PROPERTY
@given(st.recursive(st.one_of(st.none(), _JSON_TEXT), lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_JSON_TEXT, inner, max_size=4)), max_leaves=20))
def test_json_encoder_writes_the_bytes_pydantic_core_writes(value: Any) -> None:
    orjson = pytest.importorskip("orjson")
    assert orjson.dumps(value) == pydantic_core.to_json(value)
