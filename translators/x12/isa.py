"""Detect delimiters from an ISA and check its sixteen fields (TA1 note codes on failure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from translators.errors import Level, Severity, TA1Note, X12Issue
from translators.x12.model import Delimiters

ISA_LENGTH = 106
# ISA01..ISA16 widths of a correctly padded interchange header.
ISA_WIDTHS = (2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1, 1)
# How far past "ISA" we look for the sixteenth separator; generous for padding in
# multi-byte characters (seen: U+00A0 no-break spaces) yet bounded.
ISA_SCAN_LIMIT = 400

CONTROL_VERSIONS = frozenset({
    "00200", "00201", "00204", "00300", "00301", "00302", "00303", "00304", "00305", "00306",
    "00307", "00400", "00401", "00402", "00403", "00404", "00405", "00406", "00500", "00501",
    "00502", "00503", "00504", "00505", "00600", "00601", "00602", "00603", "00604", "00605",
    "00700", "00701", "00702", "00703", "00704", "00705", "00800", "00801",
})
ID_QUALIFIERS = frozenset({
    "01", "02", "03", "04", "07", "08", "09", "10", "11", "12", "13", "14", "15", "16", "17",
    "18", "19", "20", "21", "22", "23", "24", "25", "26", "27", "28", "29", "30", "31", "32",
    "33", "34", "35", "36", "37", "38", "AM", "NR", "SA", "SN", "ZZ",
})
AUTHORIZATION_QUALIFIERS = frozenset({"00", "01", "02", "03", "04", "05", "06"})
SECURITY_QUALIFIERS = frozenset({"00", "01"})
_WHITESPACE = frozenset(b" \t\r\n")


class IsaParseError(Exception):
    """The bytes at hand cannot be an ISA: the delimiters cannot be told."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(slots=True)
class ParsedIsa:
    """What the ISA told us: its fields, the delimiters and where the next segment starts."""

    fields: list[str]  # ISA01..ISA16 as written (not stripped)
    delimiters: Delimiters
    terminator: bytes  # the segment terminator as bytes (one byte, or one UTF-8 character)
    length: int  # bytes from "ISA" through the terminator
    warnings: list[str] = field(default_factory=list)


def _utf8_width(lead: int) -> int:
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    return 0


def parse_isa(buf: bytes, start: int) -> ParsedIsa:
    """Read the ISA at ``buf[start:]``; raises IsaParseError when the delimiters are unclear."""
    if len(buf) < start + 4:
        raise IsaParseError(TA1Note.PREMATURE_END, "input ends inside the ISA segment")
    sep = buf[start + 3]
    if sep in _WHITESPACE or chr(sep).isalnum() or sep > 0x7F:
        raise IsaParseError(TA1Note.INVALID_ELEMENT_SEPARATOR,
                            f"ISA element separator {chr(sep)!r} is not a usable delimiter")
    seps: list[int] = []
    i = start + 3
    limit = min(len(buf), start + ISA_SCAN_LIMIT)
    while len(seps) < 16:
        i = buf.find(sep, i, limit)
        if i < 0:
            raise IsaParseError(TA1Note.INVALID_CONTROL_STRUCTURE,
                                f"garbled ISA: found {len(seps)} of 16 element separators")
        seps.append(i)
        i += 1
    comp_at = seps[15] + 1
    if comp_at + 1 >= len(buf) + 1 or comp_at >= len(buf):
        raise IsaParseError(TA1Note.PREMATURE_END, "input ends inside the ISA segment")
    component = buf[comp_at]
    term_at = comp_at + 1
    if term_at >= len(buf):
        raise IsaParseError(TA1Note.INVALID_SEGMENT_TERMINATOR, "no segment terminator after ISA16")
    lead = buf[term_at]
    warnings: list[str] = []
    if lead < 0x80:
        terminator = bytes([lead])
    else:
        width = _utf8_width(lead)
        terminator = buf[term_at:term_at + width] if width else b""
        try:
            terminator.decode("utf-8")
        except UnicodeDecodeError:
            terminator = b""
        if not terminator:
            raise IsaParseError(TA1Note.INVALID_SEGMENT_TERMINATOR,
                                f"segment terminator byte 0x{lead:02X} is not a character")
        warnings.append(f"segment terminator is the multi-byte character "
                        f"U+{ord(terminator.decode('utf-8')):04X}")
    term_char = terminator.decode("utf-8")
    if term_char.isalnum() or term_char == " ":
        raise IsaParseError(TA1Note.INVALID_SEGMENT_TERMINATOR,
                            f"segment terminator {term_char!r} after ISA16 is not a delimiter "
                            f"(no terminator, or a garbled ISA)")
    if component in _WHITESPACE or chr(component).isalnum() or component > 0x7F:
        raise IsaParseError(TA1Note.INVALID_COMPONENT_SEPARATOR,
                            f"ISA16 component separator {chr(component)!r} is not a usable delimiter")
    element_char, component_char = chr(sep), chr(component)
    if len({element_char, component_char, term_char}) != 3:
        raise IsaParseError(TA1Note.INVALID_CONTROL_STRUCTURE,
                            "element separator, component separator and terminator are not distinct")
    raw = buf[start + 4:seps[15]].decode("utf-8", "replace")
    fields = raw.split(element_char)
    fields.append(component_char)
    isa11 = fields[10]
    repetition: str | None = None
    if len(isa11) == 1 and not isa11.isalnum() and isa11 not in (element_char, component_char,
                                                                  term_char, " "):
        repetition = isa11
        if fields[11] < "00501":
            warnings.append(f"ISA11 {isa11!r} used as repetition separator before version 00501")
    length = term_at + len(terminator) - start
    if length != ISA_LENGTH:
        widths = [f"ISA{n:02d}({len(v)}!={w})" for n, (v, w) in
                  enumerate(zip(fields, ISA_WIDTHS, strict=True), 1) if len(v) != w]
        warnings.append(f"ISA is {length} bytes, not {ISA_LENGTH}"
                        + (f"; wrong-width fields: {', '.join(widths)}" if widths else ""))
    if any(ord(ch) > 0x7E for f in fields for ch in f):
        warnings.append("ISA contains non-ASCII characters (padding tolerated)")
    after = term_at + len(terminator)
    suffix = next((s for s in ("\r\n", "\n", "\r") if buf.startswith(s.encode(), after)), "")
    return ParsedIsa(fields, Delimiters(element_char, component_char, repetition, term_char, suffix),
                     terminator, length, warnings)


def _valid_date(value: str) -> bool:
    try:
        datetime.strptime(value, "%y%m%d")
    except ValueError:
        return False
    return len(value) == 6


def _valid_time(value: str) -> bool:
    if len(value) != 4 or not value.isdigit():
        return False
    return int(value[:2]) < 24 and int(value[2:]) < 60


def check_isa_fields(fields: list[str]) -> list[tuple[str, str, Severity]]:
    """(TA1 note code, message, severity) for each ISA field that breaks the standard."""
    f = [v.strip() for v in fields]
    problems: list[tuple[str, str, Severity]] = []

    def bad(code: str, message: str, severity: Severity = Severity.ERROR) -> None:
        problems.append((code, message, severity))

    if f[0] not in AUTHORIZATION_QUALIFIERS:
        bad(TA1Note.INVALID_AUTH_QUALIFIER, f"ISA01 authorization qualifier {f[0]!r} is invalid")
    if f[0] == "00" and f[1]:
        bad(TA1Note.INVALID_AUTH_VALUE, "ISA02 should be blank when ISA01 is 00",
            Severity.WARNING)
    if f[2] not in SECURITY_QUALIFIERS:
        bad(TA1Note.INVALID_SECURITY_QUALIFIER, f"ISA03 security qualifier {f[2]!r} is invalid")
    elif f[2] == "01" and not f[3]:
        bad(TA1Note.INVALID_SECURITY_VALUE, "ISA04 password is blank although ISA03 is 01")
    if f[4] not in ID_QUALIFIERS:
        bad(TA1Note.INVALID_SENDER_QUALIFIER, f"ISA05 sender id qualifier {f[4]!r} is invalid")
    if not f[5]:
        bad(TA1Note.INVALID_SENDER_ID, "ISA06 sender id is blank")
    if f[6] not in ID_QUALIFIERS:
        bad(TA1Note.INVALID_RECEIVER_QUALIFIER, f"ISA07 receiver id qualifier {f[6]!r} is invalid")
    if not f[7]:
        bad(TA1Note.INVALID_RECEIVER_ID, "ISA08 receiver id is blank")
    if not _valid_date(f[8]):
        bad(TA1Note.INVALID_DATE, f"ISA09 date {f[8]!r} is not a valid YYMMDD date")
    if not _valid_time(f[9]):
        bad(TA1Note.INVALID_TIME, f"ISA10 time {f[9]!r} is not a valid HHMM time")
    if f[11] not in CONTROL_VERSIONS:
        bad(TA1Note.INVALID_VERSION_ID, f"ISA12 version {f[11]!r} is not a known control version")
    elif f[11] < "00501" and fields[10] != "U" and fields[10].isalnum():
        bad(TA1Note.INVALID_STANDARDS_ID, f"ISA11 standards id {fields[10]!r} must be U")
    if not (len(f[12]) == 9 and f[12].isdigit()):
        bad(TA1Note.INVALID_CONTROL_NUMBER, f"ISA13 control number {f[12]!r} is not 9 digits")
    if f[13] not in ("0", "1"):
        bad(TA1Note.INVALID_ACK_REQUESTED, f"ISA14 acknowledgment requested {f[13]!r} is not 0 or 1")
    if f[14] not in ("P", "T", "I"):
        bad(TA1Note.INVALID_TEST_INDICATOR, f"ISA15 usage indicator {f[14]!r} is not P, T or I")
    return problems


def isa_issue(code: str, message: str, *, offset: int, index: int, control: str | None,
              severity: Severity = Severity.ERROR) -> X12Issue:
    """An interchange-level issue about an ISA."""
    return X12Issue(Level.INTERCHANGE, code, message, severity, offset=offset,
                    interchange_index=index, interchange_control=control, segment_tag="ISA")
