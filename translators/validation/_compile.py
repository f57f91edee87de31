"""Schemas compiled for speed: a dict-driven loop state machine and one regex per segment.

The regex of a segment fullmatches only element text that is valid in every respect a regex
can see (characters, lengths, numeric and date/time shapes, code lists, repetitions,
components) and that satisfies the segment's relational syntax notes, which the regex checks
at its end with conditionals on empty groups marking the elements that are present. Anything
the fast path rejects goes to the precise checks in ``_elements``, which say what is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

from translators.schemas.model import (
    CompositeDef,
    ElementDef,
    ElementRef,
    LoopDef,
    SegmentDef,
    SegmentUse,
    TransactionSchema,
)
from translators.validation.rules import PartnerRules, split_segment_id

SEG = 0
LOOP = 1

_DAY_MMDD = (r"(?:(?:0[13578]|1[02])(?:0[1-9]|[12][0-9]|3[01])"
             r"|(?:0[469]|11)(?:0[1-9]|[12][0-9]|30)|02(?:0[1-9]|1[0-9]|2[0-8]))")
_LEAP_YY = r"(?:0[48]|[2468][048]|[13579][26])"
_DATE8 = (rf"(?:[0-9]{{4}}{_DAY_MMDD}|(?:[0-9]{{2}}{_LEAP_YY}|{_LEAP_YY}00)0229)")
_DATE6 = rf"(?:[0-9]{{2}}{_DAY_MMDD}|{_LEAP_YY}0229)"


@dataclass(frozen=True, slots=True)
class Delims:
    """The separators that matter to the compiled patterns."""

    element: str
    component: str
    repetition: str | None
    segment: str

    def all(self) -> str:
        """Every delimiter character, as one string."""
        return self.element + self.component + (self.repetition or "") + self.segment


@dataclass(frozen=True, slots=True)
class ElementRule:
    """One element position after partner rules: what the slow path checks."""

    ref: ElementRef
    mandatory: bool
    partner_required: bool
    codes: frozenset[str] | None
    partner_codes: bool


Matcher = Callable[..., object]
"""``fullmatch(text, pos=0)`` of a compiled segment regex: None when the text is rejected."""


class Slot(NamedTuple):
    """One element position as regex text: its value, whether it is mandatory, "empty or value"."""

    value: str
    mandatory: bool
    optional: str


class CSeg:
    """A segment definition compiled for one delimiter set and one set of partner rules.

    ``by_count[n]`` matches the element text (without the tag) of the segment when it has
    exactly ``n`` elements; each regex is compiled on first use. None: no element checks."""

    __slots__ = ("by_count", "defn", "element_sep", "rules", "slots", "tag")

    def __init__(self, defn: SegmentDef, rules: tuple[ElementRule, ...] | None,
                 slots: list[Slot] | None, element_sep: str) -> None:
        self.tag = defn.tag
        self.defn = defn
        self.rules = rules
        self.slots = slots
        self.element_sep = element_sep
        self.by_count: list[Matcher] | None = (
            None if slots is None else [self._first_use(n) for n in range(len(slots) + 1)])

    def _first_use(self, count: int) -> Matcher:
        def match(text: str, pos: int = 0) -> object:
            assert self.slots is not None and self.by_count is not None
            pattern = segment_pattern(self.defn, self.slots, self.element_sep, count)
            fn = reject if pattern is None else re.compile(pattern, re.DOTALL).fullmatch
            self.by_count[count] = fn
            return fn(text, pos)
        return match

    def accepts(self, elements: Sequence[str]) -> bool:
        """True when the fast path finds nothing wrong with these elements."""
        if self.by_count is None:
            return True
        if len(elements) >= len(self.by_count):
            return False
        return self.by_count[len(elements)](self.element_sep.join(elements)) is not None


def reject(text: str, pos: int = 0) -> None:
    """The matcher of an element count that can never be valid (a mandatory element is absent)."""
    return None


class CLoop:
    """A loop compiled into index tables; states of the machine are (loop, index) pairs."""

    __slots__ = ("children", "depth", "id", "kinds", "mandatory", "maxes", "next_for", "parent",
                 "position", "states", "tags", "trigger")

    depth: int
    trigger: str

    def __init__(self, loop: LoopDef, parent: CLoop | None, position: int) -> None:
        self.id = loop.id
        self.parent = parent
        self.position = position  # index of this loop among its parent's children
        self.depth = 0 if parent is None else parent.depth + 1
        children: list[CLoop | str] = []
        kinds: list[int] = []
        tags: list[str] = []
        for k, child in enumerate(loop.children):
            if isinstance(child, SegmentUse):
                children.append(child.tag)
                kinds.append(SEG)
                tags.append(child.tag)
            else:
                sub = CLoop(child, self, k)
                children.append(sub)
                kinds.append(LOOP)
                tags.append(sub.trigger)
        self.trigger = tags[0]
        self.children = tuple(children)
        self.kinds = tuple(kinds)
        self.tags = tuple(tags)
        self.maxes = tuple(_max_of(c) for c in loop.children)
        self.mandatory = tuple(c.requirement == "M" for c in loop.children)
        n = len(tags)
        first = 0 if parent is None else 1  # a loop's trigger only starts a new repetition
        next_for: dict[int, dict[str, int]] = {}
        for idx in range(-1, n):
            table: dict[str, int] = {}
            for j in range(n - 1, max(idx, first) - 1, -1):
                table[tags[j]] = j
            next_for[idx] = table
        self.next_for = next_for
        self.states: dict[int, State] = {}

    def state(self, idx: int) -> State:
        """The machine state "just read child ``idx`` of this loop" (-1: nothing yet)."""
        st = self.states.get(idx)
        if st is None:
            st = self.states[idx] = State(self, idx)
        return st

    def missing_after(self, idx: int, stop: int) -> list[tuple[str, str, bool]]:
        """(tag, loop id, is loop) of the mandatory children strictly between the two."""
        out = []
        for k in range(idx + 1, stop):
            if self.mandatory[k]:
                child = self.children[k]
                if isinstance(child, CLoop):
                    out.append((self.tags[k], child.id, True))
                else:
                    out.append((self.tags[k], self.id, False))
        return out


Missing = tuple[tuple[str, str, bool], ...]
"""The mandatory (tag, loop id, is loop) children a move skips."""

Checks = tuple[int, bool, int, "tuple[bool, Missing] | None"]
"""The structural checks of a move: (depth of the loop frame whose child it is, same (it
repeats the child just read, so counts go on), the child's maximum use or repeat (0:
unbounded), None or, for the rare move that reports something, (placed (False: the segment
cannot be placed here, the state does not change), what it skips)). Counting, the common
check, comes first so the walk unpacks little for it."""

Move = tuple["State", dict[str, Any], "list[Matcher] | None", int, "Checks | None",
             "tuple[str, bool, CSeg | None]"]
"""Where a tag leads from a state: (the state after the segment, that state's ``trans``, the
element matchers (CSeg.by_count; None: no element checks), offset of element 01 in the
segment's text, its Checks or None when it needs none (most moves), (loop id, is loop, CSeg)
which is read only on errors). Plain tuples: the walk unpacks one per segment."""


class State:
    """A position in the schema. ``trans`` memoizes tag -> Move."""

    __slots__ = ("at_end", "frames", "idx", "loop", "trans")

    def __init__(self, loop: CLoop, idx: int) -> None:
        self.loop = loop
        self.idx = idx
        frames: list[tuple[CLoop, int]] = [(loop, idx)]
        node = loop
        while node.parent is not None:
            frames.append((node.parent, node.position))
            node = node.parent
        self.frames = tuple(reversed(frames))  # root first
        self.trans: dict[str, Move] = {}
        at_end: list[tuple[str, str, bool]] = []
        for fl, fi in reversed(self.frames):
            at_end.extend(fl.missing_after(fi, len(fl.tags)))
        self.at_end = tuple(at_end)

    def move(self, tag: str, segs: dict[str, CSeg]) -> Move:
        """Where ``tag`` leads from here (computed once, then memoized).

        A tag that cannot be placed here leads back to this state, with ``placed`` False."""
        cseg = segs.get(tag)
        match: list[Matcher] | None = None
        check: CSeg | None = None
        if cseg is not None and tag not in ("ST", "SE"):
            match, check = cseg.by_count, cseg
        skip = len(tag) + 1
        result: Move = (self, self.trans, match, skip, (0, False, 0, (False, ())),
                        (self.loop.id, False, check))
        missing: list[tuple[str, str, bool]] = []
        for depth in range(len(self.frames) - 1, -1, -1):
            fl, fi = self.frames[depth]
            j = fl.next_for[fi].get(tag)
            if j is None:
                missing.extend(fl.missing_after(fi, len(fl.tags)))
                continue
            if j != fi:
                missing.extend(fl.missing_after(fi, j))
            child = fl.children[j]
            target = child.state(0) if isinstance(child, CLoop) else fl.state(j)
            where = (child.id, True, check) if isinstance(child, CLoop) else (fl.id, False, check)
            mx = fl.maxes[j]
            rare = (True, tuple(missing)) if missing else None
            checks: Checks | None = (depth, j == fi, mx, rare) if mx or missing else None
            result = (target, target.trans, match, skip, checks, where)
            break
        self.trans[tag] = result
        return result

    def passed(self, tag: str) -> bool:
        """True when ``tag`` belongs earlier in one of the open loops (out of sequence)."""
        return any(tag in fl.tags[: max(fi, 0)] for fl, fi in self.frames)


def _max_of(child: SegmentUse | LoopDef) -> int:
    value = child.max_use if isinstance(child, SegmentUse) else child.max_repeat
    return 0 if value is None else value  # 0: unbounded


class CompiledSet:
    """Everything the engine needs for one set, version, delimiter set and partner rules."""

    __slots__ = ("delims", "required_segments", "root", "schema", "segs")

    def __init__(self, schema: TransactionSchema, delims: Delims,
                 rules: PartnerRules | None) -> None:
        self.schema = schema
        self.delims = delims
        self.root = CLoop(schema.root, None, 0)
        self.segs = {tag: compile_segment(defn, delims, rules)
                     for tag, defn in schema.dictionary.items()}
        self.required_segments = tuple(split_segment_id(s) for s in sorted(
            rules.required_segments)) if rules else ()


@lru_cache(maxsize=256)
def compile_set(schema: TransactionSchema, delims: Delims,
                rules: PartnerRules | None) -> CompiledSet:
    """The compiled form of ``schema``; cached per schema, delimiters and rules."""
    return CompiledSet(schema, delims, rules)


# --- segment regexes ------------------------------------------------------------------------

def _char_class(delims: Delims) -> str:
    """Printable ASCII minus the delimiters, as a positive class (a fast bitmap in sre).

    Other printable characters fail the fast path; the slow path accepts them."""
    banned = set(delims.all())
    allowed = [c for c in map(chr, range(0x20, 0x7F)) if c not in banned]
    parts: list[str] = []
    start = prev = allowed[0]
    for c in [*allowed[1:], "\x00"]:
        if ord(c) == ord(prev) + 1:
            prev = c
            continue
        parts.append(re.escape(start) if start == prev else f"{re.escape(start)}-{re.escape(prev)}")
        start = prev = c
    return "[" + "".join(parts) + "]"


def _trie(codes: frozenset[str]) -> str:
    root: dict[str, dict] = {}  # type: ignore[type-arg]
    for code in codes:
        node = root
        for ch in code:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict) -> str:  # type: ignore[type-arg]
        ends = "" in node
        leaves = sorted(ch for ch, sub in node.items() if ch and list(sub) == [""])
        branches = sorted(ch for ch, sub in node.items() if ch and list(sub) != [""])
        alts = [re.escape(ch) + emit(node[ch]) for ch in branches]
        if len(leaves) == 1:
            alts.append(re.escape(leaves[0]))
        elif leaves:
            alts.append("[" + "".join(re.escape(c) for c in leaves) + "]")
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 and not branches else "(?:" + "|".join(alts) + ")"
        return f"(?:{body})?" if ends else body

    return emit(root)


def _value_pattern(el: ElementDef, codes: frozenset[str] | None, cc: str) -> str:
    """Regex of a non-empty valid value of ``el``."""
    t, lo, hi = el.type, el.min, el.max
    if t == "ID" and codes is not None:
        return "(?:" + _trie(codes) + ")" if codes else "(?!)"
    if t in ("AN", "ID", "B"):
        return f"{cc}{{{lo},{hi}}}"
    if t == "DT":
        options = []
        if lo <= 8 <= hi:
            options.append(_DATE8)
        if lo <= 6 <= hi:
            options.append(_DATE6)
        return "(?:" + "|".join(options) + ")" if options else "(?!)"
    if t == "TM":
        return (f"(?=[0-9]{{{lo},{hi}}}(?![0-9]))(?:[01][0-9]|2[0-3])[0-5][0-9]"
                r"(?:[0-5][0-9][0-9]{0,2})?")
    if t == "R":
        return (f"-?(?:[0-9]{{{lo},{hi}}}(?![0-9.])|(?=[0-9.]{{{lo + 1},{hi + 1}}}(?![0-9.]))"
                r"(?:[0-9]+\.[0-9]*|\.[0-9]+))")
    if t[0] == "N":
        return f"-?[0-9]{{{lo},{hi}}}"
    return f"{cc}{{{lo},{hi}}}"


def _sequence(items: list[tuple[str, bool]], sep: str) -> str:
    """Items joined by ``sep``; trailing optional items may be left out entirely.

    Possessive: each optional item takes its separator whenever one is there, so the regex
    never backtracks across elements. That is exact because every value pattern consumes its
    whole value (up to the next delimiter) or fails. An optional item before a mandatory one
    needs its separator anyway; the trailing optional ones nest, so the first one that is
    absent ends the match without trying the rest (fewer steps for sre)."""
    last_mandatory = max((k for k, (_, mandatory) in enumerate(items) if mandatory), default=-1)
    tail = ""
    for k in range(len(items) - 1, last_mandatory, -1):
        pat = items[k][0]
        tail = f"(?:{sep}(?:{pat})?+{tail})?+" if k else f"(?:{pat})?+{tail}"
    out = []
    for k, (pat, mandatory) in enumerate(items[: last_mandatory + 1]):
        lead = sep if k else ""
        out.append(f"{lead}(?>{pat})" if mandatory else f"{lead}(?:{pat})?+")
    return "".join(out) + tail


def _composite_pattern(comp: CompositeDef, delims: Delims, cc: str) -> str:
    items = [(_value_pattern(c.element, c.element.codes, cc), c.requirement == "M")
             for c in comp.components]
    return _sequence(items, re.escape(delims.component))


def element_rules(defn: SegmentDef, rules: PartnerRules | None) -> tuple[ElementRule, ...]:
    """The element positions of ``defn`` with the partner's requirements and codes applied."""
    assert defn.elements is not None
    out = []
    for ref in defn.elements:
        key = f"{defn.tag}{ref.position:02d}"
        partner_required = bool(rules and key in rules.required_elements)
        partner_codes = bool(rules and key in rules.allowed_codes and ref.element is not None)
        codes = ref.element.codes if ref.element is not None else None
        if partner_codes:
            assert rules is not None
            codes = rules.allowed_codes[key]
        out.append(ElementRule(ref, ref.requirement == "M" or partner_required,
                               partner_required, codes, partner_codes))
    return tuple(out)


def compile_segment(defn: SegmentDef, delims: Delims, rules: PartnerRules | None) -> CSeg:
    """The fast checks of one segment definition."""
    if defn.elements is None:
        return CSeg(defn, None, None, delims.element)
    erules = element_rules(defn, rules)
    cc = _char_class(delims)
    simple = re.compile(re.escape(cc) + r"\{(\d+),(\d+)\}")
    slots = []
    for er in erules:
        ref = er.ref
        if ref.composite is not None:
            pat = _composite_pattern(ref.composite, delims, cc)
        else:
            assert ref.element is not None
            pat = _value_pattern(ref.element, er.codes, cc)
        bounds = simple.fullmatch(pat)
        if ref.repeat > 1 and delims.repetition:
            pat = (f"(?>{pat})(?:{re.escape(delims.repetition)}(?>{pat}))"
                   f"{{0,{ref.repeat - 1}}}+")
        elif bounds is not None:
            # One possessive character-class run: no backtracking state in sre at all.
            lo, hi = bounds.groups()
            pat = f"{pat}+"
            if int(lo) <= 1:
                slots.append(Slot(pat, er.mandatory, f"{cc}{{0,{hi}}}+"))
                continue
        slots.append(Slot(pat, er.mandatory, f"(?:{pat})?+"))
    return CSeg(defn, erules, slots, delims.element)


_FAIL = "(?!)"


def segment_pattern(defn: SegmentDef, slots: Sequence[Slot], element_sep: str,
                    count: int) -> str | None:
    """The regex of the segment's element text when it has exactly ``count`` elements.

    None when a mandatory element would be absent. Without trailing optional elements to
    allow for, the pattern is flat: each position's value or "empty or value", joined by the
    separator, which no value can contain, so sre never backtracks across elements.

    Syntax notes: a paired note on two neighbouring optional elements becomes one alternation
    ("both, or neither"); for the other notes every position they name gets a group that is
    set only when the element is present, and the notes follow as conditionals on those groups.
    A composite that has syntax notes of its own fails the match when present, so the precise
    checks see it."""
    assert defn.elements is not None
    if count > len(slots) or any(slot.mandatory for slot in slots[count:]):
        return None
    sep = re.escape(element_sep)
    composites = [r.position for r in defn.elements
                  if r.composite is not None and r.composite.syntax and r.position <= count]
    uses: dict[int, int] = {}
    for note in defn.syntax:
        for p in note.positions:
            uses[p] = uses.get(p, 0) + 1
    for p in composites:
        uses[p] = uses.get(p, 0) + 1
    fused: dict[int, int] = {}  # first position -> second, of paired neighbours
    for note in defn.syntax:
        a, *rest = note.positions
        if (note.kind == "P" and rest == [a + 1] and a + 1 <= count and uses[a] == uses[a + 1] == 1
                and not slots[a - 1].mandatory and not slots[a].mandatory
                and re.fullmatch(slots[a - 1].value, "") is None
                and re.fullmatch(slots[a].value, "") is None):
            fused[a] = a + 1
    always = {k for k in range(1, count + 1) if slots[k - 1].mandatory}
    marked = {p for p in uses if p <= count and p not in always} - set(fused) - set(fused.values())
    items = []
    k = 1
    while k <= count:
        slot = slots[k - 1]
        if k in fused:
            items.append(f"(?:{slot.value}{sep}{slots[k].value}|{sep})")
            k += 2
            continue
        if k in marked:
            if re.fullmatch(slot.value, "") is None:
                items.append(f"(?P<p{k}>{slot.value})?+")
            else:  # a value pattern that matches empty text needs a lookahead to mean "present"
                items.append(f"(?:(?=[^{sep}])(?P<p{k}>){slot.value})?+")
        else:
            items.append(slot.value if slot.mandatory else slot.optional)
        k += 1
    notes = [note for note in defn.syntax if note.positions[0] not in fused]
    return (sep.join(items)
            + "".join(_note_condition(n.kind, n.positions, always, marked) for n in notes)
            + "".join(_if(p, _FAIL, "", always, marked) for p in composites))


def _if(position: int, yes: str, no: str, always: set[int], marked: set[int]) -> str:
    """``yes`` when element ``position`` is present, else ``no``."""
    if position in always:
        return yes
    return f"(?(p{position}){yes}|{no})" if position in marked else no


def _note_condition(kind: str, positions: Sequence[int], always: set[int], marked: set[int]) -> str:
    """A zero-width pattern that fails exactly when the note is broken."""

    def when(p: int, yes: str, no: str) -> str:
        return _if(p, yes, no, always, marked)

    def every(ps: Sequence[int]) -> str:
        return when(ps[0], every(ps[1:]), _FAIL) if ps else ""

    def none(ps: Sequence[int]) -> str:
        return when(ps[0], _FAIL, none(ps[1:])) if ps else ""

    def some(ps: Sequence[int]) -> str:
        return when(ps[0], "", some(ps[1:])) if ps else _FAIL

    def at_most_one(ps: Sequence[int]) -> str:
        return when(ps[0], none(ps[1:]), at_most_one(ps[1:])) if ps else ""

    first, rest = positions[0], positions[1:]
    if kind == "P":
        return when(first, every(rest), none(rest))
    if kind == "R":
        return some(positions)
    if kind == "E":
        return at_most_one(positions)
    if kind == "C":
        return when(first, every(rest), "")
    return when(first, some(rest), "")  # L
