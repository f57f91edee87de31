"""Precise element checks: the slow path that explains what the fast regex rejected."""

from __future__ import annotations

from collections.abc import Callable

from translators.errors import ElementError
from translators.schemas.model import ElementDef, SyntaxNote
from translators.validation._compile import CSeg, Delims, ElementRule

# (code, message, element_position, component_position, repetition, element_reference, value)
Problem = tuple[str, str, int, int | None, int | None, str, str | None]
Report = Callable[[str, str, int, int | None, int | None, str, str | None], None]


def _valid_date(v: str) -> bool:
    if len(v) == 8:
        year, month, day = int(v[:4]), int(v[4:6]), int(v[6:])
    else:
        year, month, day = 2000 + int(v[:2]), int(v[2:4]), int(v[4:])
    if not 1 <= month <= 12 or day < 1:
        return False
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return day <= (29 if leap else 28)
    return day <= (30 if month in (4, 6, 9, 11) else 31)


def _valid_time(v: str) -> bool:
    if len(v) not in (4, 6, 7, 8):
        return False
    if int(v[:2]) > 23 or int(v[2:4]) > 59:
        return False
    return len(v) == 4 or int(v[4:6]) <= 59


def check_value(value: str, el: ElementDef, codes: frozenset[str] | None, partner_codes: bool,
                bad_chars: str) -> tuple[str, str] | None:
    """(code, message) of the first thing wrong with a non-empty value, or None."""
    for ch in value:
        if ch in bad_chars or not ch.isprintable():
            return ElementError.INVALID_CHARACTER, f"invalid character {ch!r}"
    t = el.type
    if t == "ID" and codes is not None:
        if value in codes:
            return None
        who = "the partner's list" if partner_codes else "the code list"
        return ElementError.INVALID_CODE, f"code {value!r} is not in {who} for element {el.id}"
    if t in ("DT", "TM"):
        if not value.isascii() or not value.isdigit():
            return ((ElementError.INVALID_DATE, "date is not numeric") if t == "DT"
                    else (ElementError.INVALID_TIME, "time is not numeric"))
        length = len(value)
    elif t == "R" or (t[0] == "N" and len(t) == 2):
        digits = value[1:] if value.startswith("-") else value
        if t == "R" and digits.count(".") == 1:
            digits = digits.replace(".", "")
        if not digits or not digits.isascii() or not digits.isdigit():
            return ElementError.INVALID_CHARACTER, f"not a valid {'decimal' if t == 'R' else 'number'}"
        length = len(digits)
    else:
        length = len(value)
    if length < el.min:
        return ElementError.TOO_SHORT, f"shorter than the minimum length {el.min}"
    if length > el.max:
        return ElementError.TOO_LONG, f"longer than the maximum length {el.max}"
    if t == "DT":
        if length not in (6, 8) or not _valid_date(value):
            return ElementError.INVALID_DATE, "not a valid date (CCYYMMDD or YYMMDD)"
    elif t == "TM" and not _valid_time(value):
        return ElementError.INVALID_TIME, "not a valid time (HHMM[SS[dd]])"
    return None


def _present(values: list[str], position: int) -> bool:
    return position <= len(values) and values[position - 1] != ""


def _note_problems(notes: tuple[SyntaxNote, ...], values: list[str],
                   report: Callable[[str, str, int], None]) -> None:
    for note in notes:
        pos = note.positions
        present = [_present(values, p) for p in pos]
        if note.kind == "P" and any(present) and not all(present):
            for p, ok in zip(pos, present, strict=True):
                if not ok:
                    report(ElementError.CONDITIONAL_MISSING,
                           f"required by syntax note {note} (paired)", p)
        elif note.kind == "R" and not any(present):
            report(ElementError.CONDITIONAL_MISSING,
                   f"at least one required by syntax note {note}", pos[0])
        elif note.kind == "E" and sum(present) > 1:
            for p in [p for p, ok in zip(pos, present, strict=True) if ok][1:]:
                report(ElementError.EXCLUSION_VIOLATED,
                       f"excluded by syntax note {note}", p)
        elif note.kind == "C" and present[0]:
            for p, ok in zip(pos[1:], present[1:], strict=True):
                if not ok:
                    report(ElementError.CONDITIONAL_MISSING,
                           f"required by syntax note {note}", p)
        elif note.kind == "L" and present[0] and not any(present[1:]):
            report(ElementError.CONDITIONAL_MISSING,
                   f"one of them required by syntax note {note}", pos[1])


def element_problems(elements: list[str], cseg: CSeg, delims: Delims,
                     report: Report) -> None:
    """Report every element error of one segment through ``report``."""
    rules = cseg.rules
    if rules is None:
        return
    tag = cseg.tag
    bad = delims.all()
    rep_sep = delims.repetition
    comp_sep = delims.component
    for er in rules:
        ref = er.ref
        pos = ref.position
        value = elements[pos - 1] if pos <= len(elements) else ""
        reference = ref.reference
        if value == "":
            if er.mandatory:
                why = ("required by the partner's rules" if er.partner_required
                       else "mandatory element missing")
                report(ElementError.MANDATORY_MISSING, f"{tag}{pos:02d}: {why}", pos, None, None,
                       reference, None)
            continue
        repeats = value.split(rep_sep) if rep_sep and rep_sep in value else [value]
        if len(repeats) > ref.repeat:
            report(ElementError.TOO_MANY_REPETITIONS,
                   f"{tag}{pos:02d}: {len(repeats)} repetitions, at most {ref.repeat}",
                   pos, None, None, reference, value)
            repeats = repeats[: ref.repeat]
        for r, rep_value in enumerate(repeats, start=1):
            rep_no = r if len(repeats) > 1 else None
            _check_repeat(rep_value, er, tag, pos, rep_no, comp_sep, bad, report)
    values = elements
    _note_problems(cseg.defn.syntax, values, lambda code, msg, p: report(
        code, f"{tag}{p:02d}: {msg}", p, None, None, _ref_at(cseg, p),
        values[p - 1] if p <= len(values) and values[p - 1] else None))
    if len(elements) > len(rules) and any(elements[len(rules):]):
        extra = len(rules) + 1
        report(ElementError.TOO_MANY_ELEMENTS,
               f"{tag} has {len(elements)} elements, at most {len(rules)}", extra, None, None,
               "", elements[extra - 1] or None)


def _ref_at(cseg: CSeg, position: int) -> str:
    rules = cseg.rules
    if rules and 0 < position <= len(rules):
        return rules[position - 1].ref.reference
    return ""


def _check_repeat(value: str, er: ElementRule, tag: str, pos: int, rep_no: int | None,
                  comp_sep: str, bad: str, report: Report) -> None:
    ref = er.ref
    if value == "":
        if er.mandatory:
            report(ElementError.MANDATORY_MISSING, f"{tag}{pos:02d}: empty repetition", pos,
                   None, rep_no, ref.reference, None)
        return
    if ref.composite is None:
        assert ref.element is not None
        if comp_sep in value:
            report(ElementError.TOO_MANY_COMPONENTS,
                   f"{tag}{pos:02d}: a simple element has components", pos, None, rep_no,
                   ref.reference, value)
            return
        problem = check_value(value, ref.element, er.codes, er.partner_codes, bad)
        if problem:
            report(problem[0], f"{tag}{pos:02d}: {problem[1]}", pos, None, rep_no,
                   ref.reference, value)
        return
    comp = ref.composite
    parts = value.split(comp_sep)
    if len(parts) > len(comp.components) and any(parts[len(comp.components):]):
        report(ElementError.TOO_MANY_COMPONENTS,
               f"{tag}{pos:02d}: {len(parts)} components, at most {len(comp.components)}",
               pos, len(comp.components) + 1, rep_no, comp.id, value)
    for c in comp.components:
        part = parts[c.position - 1] if c.position <= len(parts) else ""
        if part == "":
            if c.requirement == "M":
                report(ElementError.MANDATORY_MISSING,
                       f"{tag}{pos:02d}-{c.position:02d}: mandatory component missing", pos,
                       c.position, rep_no, c.element.id, None)
            continue
        problem = check_value(part, c.element, c.element.codes, False, bad)
        if problem:
            report(problem[0], f"{tag}{pos:02d}-{c.position:02d}: {problem[1]}", pos,
                   c.position, rep_no, c.element.id, part)
    _note_problems(comp.syntax, parts, lambda code, msg, p: report(
        code, f"{tag}{pos:02d}-{p:02d}: {msg}", pos, p, rep_no,
        comp.components[p - 1].element.id if p <= len(comp.components) else comp.id,
        parts[p - 1] if p <= len(parts) and parts[p - 1] else None))
