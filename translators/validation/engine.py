"""The validator: one engine walks any transaction set schema.

Structure is checked by a loop state machine over the compiled schema (dict lookups per
segment); elements and syntax notes by one precompiled regex per segment definition, with
precise checks only for the segments the regex rejects. Every issue carries the positions a 997/999 needs.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from typing import Any

from translators.errors import (
    ElementError,
    Level,
    SegmentError,
    SetError,
    Severity,
    WarningCode,
    X12Issue,
)
from translators.schemas import get_schema, resolve_version
from translators.schemas.model import SegmentDef
from translators.validation._compile import (
    CompiledSet,
    CSeg,
    Delims,
    State,
    compile_segment,
    compile_set,
    reject,
)
from translators.validation._elements import element_problems
from translators.validation.rules import PartnerRules
from translators.x12.model import Delimiters, Row, Segment, TransactionSet

_ENVELOPE = frozenset({"ST", "SE"})
_MAX_BAD = 99


def validate_transaction(ts: TransactionSet, *,
                         rules: PartnerRules | None = None) -> list[X12Issue]:
    """Every structure and element problem of ``ts`` against its schema and partner rules.

    ST/SE counts and control numbers are the reader's business and are not re-checked."""
    group = ts.group
    ich = group.interchange
    ctx: dict[str, Any] = {
        "interchange_index": ich.index, "interchange_control": ich.control_number,
        "group_control": group.control_number, "transaction_control": ts.control_number}
    d = ich.delimiters
    component = ts.component
    repetition = ts.repetition
    if rules is not None and rules.is_empty:
        rules = None
    key = (ts.set_id, ts.version, d.element, component, repetition, d.segment, rules)
    entry = _COMPILED.get(key)
    if entry is None:
        entry = _compile_entry(ts.set_id, ts.version, Delims(d.element, component, repetition,
                                                             d.segment), rules)
        if len(_COMPILED) >= _MAX_COMPILED:
            _COMPILED.clear()
        _COMPILED[key] = entry
    compiled, exact = entry
    if compiled is None:
        return [X12Issue(Level.TRANSACTION, SetError.NOT_SUPPORTED,
                         f"transaction set {ts.set_id!r} is not supported",
                         offset=ts.offset, **ctx)]
    issues: list[X12Issue] = []
    if not exact:
        issues.append(X12Issue(
            Level.TRANSACTION, WarningCode.VERSION_FALLBACK,
            f"no {ts.set_id} schema for version {ts.version!r}; "
            f"validated against {compiled.schema.version}",
            severity=Severity.WARNING, offset=ts.offset, **ctx))
    _Walk(compiled, ctx, issues, ts).run()
    if compiled.required_segments:
        _check_required_segments(compiled, ts, ctx, issues)
    if not exact:
        # Another version's schema can only suggest problems, not prove them: report, don't reject.
        issues = [replace(i, severity=Severity.WARNING) if i.is_error else i for i in issues]
    return issues


_COMPILED: dict[tuple[object, ...], tuple[CompiledSet | None, bool]] = {}
_MAX_COMPILED = 512


def _compile_entry(set_id: str, version: str, delims: Delims,
                   rules: PartnerRules | None) -> tuple[CompiledSet | None, bool]:
    resolved = resolve_version(set_id, version)
    schema = get_schema(set_id, version) if resolved else None
    if resolved is None or schema is None:
        return None, False
    return compile_set(schema, delims, rules), resolved[1]


def validate_segment_elements(segment: Segment, segment_schema: SegmentDef, *,
                              delimiters: Delimiters | None = None,
                              rules: PartnerRules | None = None,
                              context: dict[str, Any] | None = None) -> list[X12Issue]:
    """Element problems of one segment (envelope segments such as GS included).

    ``context`` may hold X12Issue position fields (interchange_control, group_control...)."""
    d = delimiters or Delimiters()
    delims = Delims(d.element, segment.component, segment.repetition, d.segment)
    cseg = _compiled_segment(segment_schema, delims, rules)
    issues: list[X12Issue] = []
    _Walk.check_elements(cseg, segment, delims, "", dict(context or {}), issues)
    return issues


@lru_cache(maxsize=512)
def _compiled_segment(defn: SegmentDef, delims: Delims, rules: PartnerRules | None) -> CSeg:
    return compile_segment(defn, delims, rules)


def _bad(value: str | None) -> str | None:
    return value[:_MAX_BAD] if value else None


class _Walk:
    """One pass over a transaction set's segments."""

    __slots__ = ("_hint", "compiled", "ctx", "issues", "ts")

    def __init__(self, compiled: CompiledSet, ctx: dict[str, Any], issues: list[X12Issue],
                 ts: TransactionSet) -> None:
        self.compiled = compiled
        self.ctx = ctx
        self.issues = issues
        self.ts = ts
        self._hint = 0  # where the last issue's row was: issues mostly come in row order

    def run(self) -> None:
        """Walk every segment (ST through SE)."""
        segs = self.compiled.segs
        rows = self.ts.rows
        state = self.compiled.root.state(-1)
        trans = state.trans
        counts = [0] * 64
        for row, text in zip(rows, self.ts.texts, strict=False):  # the same length by construction
            # Subscripts, not .get(): a miss is once per state and tag, and try costs nothing.
            try:
                mv = trans[row[0]]
            except KeyError:
                mv = state.move(row[0], segs)
            state, trans, matchers, skip, checks, where = mv
            if checks is not None:
                depth, same, mx, rare = checks
                if rare is not None:
                    placed, missing = rare
                    if not placed:  # then the state is unchanged (and mx is 0)
                        if not self._misplaced(state, row):
                            continue
                    else:
                        self._missing(missing, self._index(row))
                if mx:  # counts matter only where a maximum applies
                    if same:
                        count = counts[depth] + 1
                        counts[depth] = count
                        if count > mx:
                            self._over(where[1], where[0], mx, self._index(row))
                    else:
                        counts[depth] = 1
            if matchers is not None:
                # One regex per element count over the segment's text after its tag.
                try:
                    match = matchers[len(row) - 1]
                except IndexError:  # more elements than the segment has
                    match = reject
                if match(text, skip) is None:
                    cseg = where[2]
                    assert cseg is not None  # matchers come from it
                    self.check_elements(cseg, self.ts.segments[self._index(row)],
                                        self.compiled.delims, where[0], self.ctx, self.issues)
        if state.at_end:
            self._missing(state.at_end, len(rows) - 1 if rows else None)
        if self.compiled.schema.hierarchy is not None and "HL" in segs:
            # Checked after the walk: a known tag, so the walk never skips an HL.
            self._check_hierarchy([k for k, row in enumerate(rows) if row[0] == "HL"])

    def _index(self, row: Row) -> int:
        """The position (0-based) of ``row`` in the set (for issues, so only on errors)."""
        rows = self.ts.rows
        k = next((k for k in range(self._hint, len(rows)) if rows[k] is row), None)
        if k is None:  # an issue about an earlier row
            k = next(k for k, r in enumerate(rows) if r is row)
        self._hint = k
        return k

    # --- structure ----------------------------------------------------------------------

    def _over(self, is_loop: bool, loop_id: str, mx: int, k: int) -> None:
        seg = self.ts.segments[k]
        if is_loop:
            self._segment_issue(SegmentError.LOOP_OVER_MAXIMUM,
                                f"loop {loop_id} repeats more than {mx} times", seg, loop_id)
        else:
            self._segment_issue(SegmentError.SEGMENT_OVER_MAXIMUM_USE,
                                f"{seg.tag} occurs more than {mx} times", seg, loop_id)

    def _missing(self, missing: tuple[tuple[str, str, bool], ...], k: int | None) -> None:
        seg = self.ts.segments[k] if k is not None else None
        for tag, loop_id, is_loop in missing:
            what = (f"mandatory loop {loop_id} is missing" if is_loop
                    else f"mandatory segment {tag} is missing")
            self.issues.append(X12Issue(
                Level.SEGMENT, SegmentError.MANDATORY_SEGMENT_MISSING,
                what + (f" before {seg.tag} at position {seg.position}" if seg else ""),
                offset=seg.offset if seg else None, segment_tag=tag,
                segment_position=seg.position if seg else None, loop_id=loop_id or None,
                **self.ctx))

    def _misplaced(self, state: State, row: Row) -> bool:
        """Report a segment that cannot be placed; True when its elements can be checked."""
        tag = row[0]
        seg = self.ts.segments[self._index(row)]
        schema = self.compiled.schema
        loop_id = state.loop.id
        if tag not in self.compiled.segs:
            self._segment_issue(SegmentError.UNRECOGNIZED_SEGMENT,
                                f"unrecognized segment {tag!r}", seg, loop_id)
            return False
        if tag not in schema.segments:
            self._segment_issue(SegmentError.NOT_IN_DEFINED_SET,
                                f"{tag} is not used in transaction set {schema.set_id}",
                                seg, loop_id)
        elif state.passed(tag):
            self._segment_issue(SegmentError.NOT_IN_SEQUENCE,
                                f"{tag} is out of sequence", seg, loop_id)
        else:
            self._segment_issue(SegmentError.UNEXPECTED_SEGMENT,
                                f"{tag} is not expected here", seg, loop_id)
        return True

    def _segment_issue(self, code: str, message: str, seg: Segment, loop_id: str | None,
                       severity: Severity = Severity.ERROR) -> None:
        self.issues.append(X12Issue(
            Level.SEGMENT, code, f"{message} (position {seg.position})", severity=severity,
            offset=seg.offset, segment_tag=seg.tag, segment_position=seg.position,
            loop_id=loop_id or None, **self.ctx))

    # --- elements -----------------------------------------------------------------------

    @staticmethod
    def check_elements(cseg: CSeg, seg: Segment, delims: Delims, loop_id: str,
                       ctx: dict[str, Any], issues: list[X12Issue]) -> None:
        """The precise element checks of one segment, with the extra segment issue "8"."""
        found: list[X12Issue] = []

        def report(code: str, message: str, element: int, component: int | None,
                   repetition: int | None, reference: str, value: str | None) -> None:
            found.append(X12Issue(
                Level.ELEMENT, code, message, offset=seg.offset, segment_tag=seg.tag,
                segment_position=seg.position, loop_id=loop_id or None,
                element_position=element, component_position=component, repetition=repetition,
                element_reference=reference or None, bad_value=_bad(value), **ctx))

        element_problems(seg.elements, cseg, delims, report)
        if found:
            issues.append(X12Issue(
                Level.SEGMENT, SegmentError.HAS_ELEMENT_ERRORS,
                f"{seg.tag} at position {seg.position} has data element errors",
                offset=seg.offset, segment_tag=seg.tag, segment_position=seg.position,
                loop_id=loop_id or None, **ctx))
            issues.extend(found)

    # --- hierarchy and partner rules ----------------------------------------------------

    def _check_hierarchy(self, hl: list[int]) -> None:
        seen: set[str] = set()
        rows = self.ts.rows
        for k in hl:
            row = rows[k]
            hl_id = row[1] if len(row) > 1 else ""
            parent = row[2] if len(row) > 2 else ""
            if hl_id and hl_id in seen:
                self._hl_issue(k, 1, "628", hl_id, f"HL01 {hl_id!r} is used twice")
            if parent and parent not in seen:
                self._hl_issue(k, 2, "734", parent,
                               f"HL02 parent {parent!r} is not an earlier HL01")
            if hl_id:
                seen.add(hl_id)

    def _hl_issue(self, k: int, pos: int, ref: str, value: str, message: str) -> None:
        seg = self.ts.segments[k]
        self.issues.append(X12Issue(
            Level.ELEMENT, WarningCode.HIERARCHY, message, severity=Severity.WARNING, offset=seg.offset,
            segment_tag="HL", segment_position=seg.position, loop_id="HL",
            element_position=pos, element_reference=ref, bad_value=_bad(value), **self.ctx))


def _check_required_segments(compiled: CompiledSet, ts: TransactionSet,
                             ctx: dict[str, Any], issues: list[X12Issue]) -> None:
    rows = ts.rows
    for tag, qualifier in compiled.required_segments:
        if any(row[0] == tag and (qualifier is None or (row[1:2] or [""])[0] == qualifier)
               for row in rows):
            continue
        last = ts.segments[-1] if rows else None
        name = f"{tag}*{qualifier}" if qualifier else tag
        issues.append(X12Issue(
            Level.SEGMENT, SegmentError.MANDATORY_SEGMENT_MISSING,
            f"segment {name} is required by the partner's rules",
            offset=last.offset if last else None, segment_tag=tag,
            segment_position=last.position if last else None, **ctx))


__all__ = ["ElementError", "validate_segment_elements", "validate_transaction"]
