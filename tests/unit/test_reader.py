"""The streaming X12 reader: delimiters, tolerance, envelope checks and bounded memory."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from tests.conftest import FIXTURES
from translators.errors import GroupError, Level, SetError, Severity, TA1Note, X12Issue
from translators.x12.model import (
    GroupEnd,
    InputProblem,
    InterchangeEnd,
    InterchangeStart,
    TransactionSet,
)
from translators.x12.reader import ReaderLimits, iter_events, read_transactions

ISA = "ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *261122*0930*U*00401*{cn}*0*T*>~"


def interchange(body: str, cn: str = "000000001", gs: str = "1", count: int | None = None,
                sets: int | None = None) -> str:
    """An interchange around ``body`` (ST..SE text with ~ terminators)."""
    n_sets = body.count("ST*") if sets is None else sets
    return (ISA.format(cn=cn) + f"GS*PO*SENDER*RECEIVER*20261122*0930*{gs}*X*004010~" + body
            + f"GE*{n_sets}*{gs}~IEA*{1 if count is None else count}*{cn}~")


PO = "ST*850*0001~BEG*00*SA*PO1**20261122~PO1*1*1*EA*1**UP*012345678905~CTT*1~SE*5*0001~"


def all_issues(data: bytes | str, limits: ReaderLimits | None = None) -> list[X12Issue]:
    """Every issue the reader reports for an input."""
    raw = data.encode() if isinstance(data, str) else data
    out: list[X12Issue] = []
    for event in iter_events(raw, limits):
        if isinstance(event, TransactionSet | GroupEnd):
            out.extend(event.issues)
        elif isinstance(event, InterchangeEnd):
            out.extend(event.header.issues)
            out.extend(event.issues)
        elif isinstance(event, InputProblem):
            out.append(event.issue)
    return out


def errors(data: bytes | str) -> list[tuple[str, str]]:
    """(level, code) of each error."""
    return [(i.level.value, i.code) for i in all_issues(data) if i.severity is Severity.ERROR]


def test_well_formed_interchange_yields_sets_with_positions_and_no_issues() -> None:
    data = (FIXTURES / "po_004010.x12").read_bytes()
    events = list(iter_events(data))
    sets = [e for e in events if isinstance(e, TransactionSet)]
    assert [type(e).__name__ for e in events] == [
        "InterchangeStart", "GroupStart", "TransactionSet", "GroupEnd", "InterchangeEnd"]
    assert all_issues(data) == []
    ts = sets[0]
    assert (ts.set_id, ts.control_number, ts.group.control_number) == ("850", "0001", "101")
    assert [s.position for s in ts.segments][:3] == [1, 2, 3]
    assert ts.segments[1].tag == "BEG" and ts.segments[1].get(3) == "PO-10001"
    assert data[ts.segments[1].offset:].startswith(b"BEG*")
    header = events[0].header  # type: ignore[union-attr]
    assert (header.sender_id, header.receiver_id, header.ack_requested) == ("ACMERETAIL", "DISTCO", "1")


def test_delimiters_come_from_the_isa_including_repetition_from_00501() -> None:
    data = (FIXTURES / "po_005010.x12").read_bytes()
    start = next(e for e in iter_events(data) if isinstance(e, InterchangeStart))
    d = start.header.delimiters
    assert (d.element, d.component, d.repetition, d.segment) == ("*", ":", "^", "~")
    ts = read_transactions(data)[0]
    assert ts.implementation_reference == "005010"


@pytest.mark.parametrize("element,component,terminator,suffix", [
    ("*", ">", "~", "\n"), ("|", "^", "\n", ""), ("\x1d", "\x1f", "\x1c", ""), ("^", "|", "~", "\r\n"),
    ("*", ":", "'", ""),
])
def test_any_distinct_delimiters_read_the_same(element: str, component: str, terminator: str,
                                               suffix: str) -> None:
    text = interchange(PO).replace("~", "\x00").replace("*", element).replace(">", component)
    text = text.replace("\x00", terminator + suffix)
    sets = read_transactions(text.encode())
    assert len(sets) == 1 and sets[0].segments[1].get(3) == "PO1"
    assert [i for i in all_issues(text) if i.is_error] == []


def test_bom_line_breaks_and_indentation_are_tolerated() -> None:
    text = "\ufeff" + interchange(PO).replace("~", "~\r\n\t  ")
    assert errors(text) == []
    assert read_transactions(text.encode())[0].segments[2].tag == "PO1"


def test_unpadded_isa_is_read_with_a_warning() -> None:
    text = interchange(PO).replace("*          *", "**").replace("SENDER         ", "SENDER")
    issues = all_issues(text)
    assert [i for i in issues if i.is_error] == []
    assert any("not 106" in i.message and i.severity is Severity.WARNING for i in issues)


def test_several_interchanges_back_to_back_each_with_own_delimiters() -> None:
    first = interchange(PO, cn="000000001")
    second = interchange(PO, cn="000000002").replace("*", "|").replace("~", "\n")
    events = list(iter_events((first + "\n" + second).encode()))
    starts = [e for e in events if isinstance(e, InterchangeStart)]
    assert [s.header.control_number for s in starts] == ["000000001", "000000002"]
    assert starts[1].header.delimiters.element == "|"
    assert len([e for e in events if isinstance(e, TransactionSet)]) == 2


def test_streaming_in_tiny_chunks_gives_identical_events() -> None:
    data = (FIXTURES / "po_004010.x12").read_bytes() * 2
    whole = [(type(e).__name__, getattr(e, "offset", None)) for e in iter_events(data)]
    for size in (1, 3, 17):
        chunked = [(type(e).__name__, getattr(e, "offset", None))
                   for e in iter_events(io.BytesIO(data), ReaderLimits(chunk_size=size))]
        assert chunked == whole


def test_memory_is_bounded_by_one_set_for_a_generator_source() -> None:
    def chunks() -> Iterator[bytes]:
        yield (ISA.format(cn="000000001") + "GS*PO*S*R*20261122*0930*1*X*004010~").encode()
        for n in range(2000):
            yield f"ST*850*{n:04d}~BEG*00*SA*P{n}**20261122~SE*3*{n:04d}~".encode()
        yield b"GE*2000*1~IEA*1*000000001~"

    reader = iter_events(chunks(), ReaderLimits(chunk_size=64))
    count = 0
    for event in reader:
        if isinstance(event, TransactionSet):
            count += 1
            assert event.issues == []
    assert count == 2000


def test_no_isa_is_an_input_problem() -> None:
    assert errors("XXX*01*garbage~") == [("input", TA1Note.INVALID_CONTENT)]
    assert errors("") == [("input", TA1Note.PREMATURE_END)]


def test_text_before_the_isa_is_reported_but_the_interchange_is_read() -> None:
    text = "Example follows.\n" + interchange(PO)
    assert errors(text) == [("input", TA1Note.INVALID_CONTENT)]
    assert len(read_transactions(text.encode())) == 1


def test_garbled_isa_is_a_syntax_problem() -> None:
    assert errors("ISA*00*short~") == [("interchange", TA1Note.INVALID_CONTROL_STRUCTURE)]


def test_alphanumeric_terminator_means_no_terminator() -> None:
    text = interchange(PO).replace("~", "")
    assert ("interchange", TA1Note.INVALID_SEGMENT_TERMINATOR) in errors(text)


def test_missing_iea_is_premature_end() -> None:
    text = interchange(PO).rsplit("IEA", 1)[0]
    assert ("interchange", TA1Note.PREMATURE_END) in errors(text)


def test_iea_count_and_control_number_are_checked() -> None:
    assert ("interchange", TA1Note.INVALID_GROUP_COUNT) in errors(interchange(PO, count=2))
    bad = interchange(PO).replace("IEA*1*000000001", "IEA*1*000000009")
    assert ("interchange", TA1Note.CONTROL_NUMBER_MISMATCH) in errors(bad)


def test_ge_count_and_control_number_are_checked() -> None:
    assert ("group", GroupError.SET_COUNT_MISMATCH) in errors(interchange(PO, sets=2))
    bad = interchange(PO).replace("GE*1*1~", "GE*1*7~")
    assert ("group", GroupError.CONTROL_NUMBER_MISMATCH) in errors(bad)


def test_missing_ge_is_reported_for_the_group() -> None:
    text = interchange(PO).replace("GE*1*1~", "")
    assert ("group", GroupError.TRAILER_MISSING) in errors(text)


def test_se_count_control_number_and_missing_se_are_checked() -> None:
    assert ("transaction", SetError.SEGMENT_COUNT_MISMATCH) in errors(
        interchange(PO.replace("SE*5", "SE*6")))
    assert ("transaction", SetError.CONTROL_NUMBER_MISMATCH) in errors(
        interchange(PO.replace("SE*5*0001", "SE*5*0002")))
    assert ("transaction", SetError.TRAILER_MISSING) in errors(
        interchange(PO.replace("SE*5*0001~", "")))


def test_duplicate_st02_and_gs06_and_isa13_are_flagged() -> None:
    assert ("transaction", SetError.CONTROL_NUMBER_NOT_UNIQUE) in errors(interchange(PO + PO))
    group = "GS*PO*SENDER*RECEIVER*20261122*0930*1*X*004010~" + PO + "GE*1*1~"
    twice = ISA.format(cn="000000001") + group + group + "IEA*2*000000001~"
    assert ("group", GroupError.DUPLICATE_CONTROL_NUMBER) in errors(twice)
    again = interchange(PO) + interchange(PO)
    assert ("interchange", TA1Note.DUPLICATE_CONTROL_NUMBER) in errors(again)


def test_empty_segment_is_reported_in_its_set() -> None:
    text = interchange(PO.replace("CTT*1~", "CTT*1~~"))
    assert ("transaction", SetError.SEGMENTS_IN_ERROR) in errors(text)


def test_isa_field_errors_carry_ta1_note_codes() -> None:
    bad = interchange(PO).replace("*261122*0930*", "*261322*0961*").replace("*0*T*", "*2*X*")
    codes = {code for level, code in errors(bad) if level == "interchange"}
    assert {TA1Note.INVALID_DATE, TA1Note.INVALID_TIME, TA1Note.INVALID_ACK_REQUESTED,
            TA1Note.INVALID_TEST_INDICATOR} <= codes


def test_segment_limit_keeps_memory_bounded_and_rejects_the_set() -> None:
    body = "ST*850*0001~" + "REF*ZZ*1~" * 50 + "SE*52*0001~"
    issues = all_issues(interchange(body), ReaderLimits(max_transaction_segments=10))
    assert any(i.level is Level.TRANSACTION and "limit" in i.message for i in issues)
    ts = read_transactions(interchange(body).encode(), ReaderLimits(max_transaction_segments=10))[0]
    assert len(ts.segments) == 10


def test_ta1_segments_are_collected_at_interchange_level() -> None:
    text = ISA.format(cn="000000001") + "TA1*000000005*261121*1200*A*000~IEA*0*000000001~"
    end = next(e for e in iter_events(text.encode()) if isinstance(e, InterchangeEnd))
    assert [s.tag for s in end.ta1_segments] == ["TA1"] and errors(text) == []


# --- rows, texts and segments of a read set ------------------------------------------------

def _views(ts: TransactionSet) -> list[tuple[list[str], str, int, int]]:
    """Each segment as (row, text, offset, position), from the three views of the set."""
    assert [[s.tag, *s.elements] for s in ts.segments] == ts.rows
    assert [s.raw for s in ts.segments] == ts.texts
    return [(row, text, s.offset, s.position)
            for row, text, s in zip(ts.rows, ts.texts, ts.segments, strict=True)]


def _assert_offsets_point_at_the_text(data: bytes, ts: TransactionSet) -> None:
    for row, text, offset, position in _views(ts):
        assert data[offset:].startswith(text.encode()), (row, offset)
        assert position == ts.rows.index(row) + 1


@pytest.mark.parametrize("separator", ["~", "~\n", "~\r\n"])
@pytest.mark.parametrize("chunk_size", [1 << 20, 5, 64])
@pytest.mark.parametrize("extra", ["", "N3*CAFÉ CRÈME~", "\n\nN3*WITH BLANK LINES BEFORE~"])
def test_rows_texts_and_offsets_of_every_segment_agree_with_the_input(
        separator: str, chunk_size: int, extra: str) -> None:
    body = (PO + PO.replace("0001", "0002")).replace("CTT*1~", extra + "CTT*1~")
    data = interchange(body).replace("~", separator).encode()
    sets = read_transactions(data, ReaderLimits(chunk_size=chunk_size))
    assert len(sets) == 2
    for ts in sets:
        _assert_offsets_point_at_the_text(data, ts)
        assert ts.rows[0][:2] == ["ST", "850"] and ts.rows[-1][0] == "SE"
        assert ts.body_rows == ts.rows[1:-1]
        assert ts.size == len(data[ts.offset:ts.offset + ts.size])
        assert data[ts.offset:ts.offset + ts.size].rstrip(b"\r\n").endswith(b"~")


def test_a_set_read_in_one_run_equals_the_same_set_read_segment_by_segment() -> None:
    # A blank line makes the reader take that batch one segment at a time.
    clean = interchange(PO).replace("~", "~\n").encode()
    blank = clean.replace(b"BEG*", b"\nBEG*")
    (fast,) = read_transactions(clean)
    (slow,) = read_transactions(blank)
    assert fast.rows == slow.rows and fast.texts == slow.texts
    # The blank line moves every segment after ST one byte on.
    shifted = [o if o == fast.offset else o + 1 for *_, o, _ in _views(fast)]
    assert shifted == [o for *_, o, _ in _views(slow)]


def test_a_set_without_se_ends_at_the_next_st_in_the_same_run() -> None:
    body = PO.replace("SE*5*0001~", "") + PO.replace("0001", "0002")
    sets = read_transactions(interchange(body).encode())
    assert [ts.rows[-1][0] for ts in sets] == ["CTT", "SE"]
    assert any(i.code == SetError.TRAILER_MISSING for i in sets[0].issues)


def test_segment_limit_in_a_run_keeps_the_segments_before_it() -> None:
    body = "ST*850*0001~" + "".join(f"REF*ZZ*{n}~" for n in range(20)) + "SE*22*0001~"
    (ts,) = read_transactions(interchange(body).encode(), ReaderLimits(max_transaction_segments=5))
    assert [row[2] for row in ts.rows[1:]] == ["0", "1", "2", "3"]
    assert any("limit" in i.message for i in ts.issues)


def test_a_set_built_from_segments_has_the_same_rows_and_texts() -> None:
    (read,) = read_transactions(interchange(PO).encode())
    built = TransactionSet(read.group, read.offset, list(read.segments), read.set_id,
                           read.control_number)
    assert built.rows == read.rows and built.texts == read.texts
    for seg in built.segments:
        seg.raw = None
    rebuilt = TransactionSet(read.group, read.offset, built.segments, read.set_id,
                             read.control_number)
    assert rebuilt.texts == read.texts
