"""Reading inbound 997, 999 and TA1 acknowledgments, including the third-party corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from translators.acks import (
    AcknowledgmentParseError,
    FunctionalAck,
    parse_functional_ack,
    parse_ta1,
)
from translators.x12.model import InterchangeEnd, Segment, TransactionSet
from translators.x12.reader import iter_events, read_transactions

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is absent")


def corpus_sets(name: str) -> list[TransactionSet]:
    return read_transactions((CORPUS / name).read_bytes())


def corpus_ack(name: str) -> FunctionalAck:
    sets = corpus_sets(name)
    assert len(sets) == 1
    return parse_functional_ack(sets[0])


def corpus_ta1s(name: str) -> list[Segment]:
    events = iter_events((CORPUS / name).read_bytes())
    return [s for e in events if isinstance(e, InterchangeEnd) for s in e.ta1_segments]


def ack_set(text: str) -> TransactionSet:
    """One 997/999 from body text (segments separated by '~'), wrapped in a 005010 envelope."""
    body = [s for s in text.split("~") if s]
    kind = body[0].split("*")[1]
    count = len(body) + 1
    data = (
        "ISA*00*          *00*          *ZZ*A              *ZZ*B              *240101*1200*^*"
        "00501*000000001*0*P*:~GS*FA*A*B*20240101*1200*1*X*005010X231A1~"
        + "~".join(body) + f"~SE*{count}*0001~GE*1*1~IEA*1*000000001~"
    )
    sets = read_transactions(data.encode())
    assert sets[0].set_id == kind
    return sets[0]


# --- corpus: well-formed acknowledgments ----------------------------------------------------

pytestmark = [pytest.mark.corpus]


@needs_corpus
def test_corpus_997_without_set_detail_acknowledges_the_group() -> None:
    ack = corpus_ack("997/edi-x12__997.edi")
    assert (ack.kind, ack.functional_id, ack.group_control_number) == ("997", "SM", "1")
    assert (ack.status, ack.included, ack.received, ack.accepted) == ("A", 1, 1, 1)
    assert ack.sets == [] and ack.problems == [] and ack.outcome == "accepted"


@needs_corpus
def test_corpus_004010_997_with_lf_terminators_reports_the_accepted_824() -> None:
    ack = corpus_ack("997/stupidedi__004010-FA997-pass-1.edi")
    assert (ack.functional_id, ack.group_control_number, ack.version) == ("AG", "160", "")
    assert [(s.set_id, s.control_number, s.status) for s in ack.sets] == [("824", "0160", "A")]


@pytest.mark.parametrize("name", [
    "997/stupidedi__005010-X230-FA997-pass-1.edi",
    "997/stupidedi__response-to-functional-group-containing-837s.edi",
])
@needs_corpus
def test_corpus_x230_997_reports_a_partially_accepted_group_with_element_detail(
        name: str) -> None:
    ack = corpus_ack(name)
    assert (ack.functional_id, ack.group_control_number, ack.version) == ("HC", "17456", "005010")
    assert (ack.status, ack.outcome, ack.included, ack.received, ack.accepted) == (
        "P", "partially_accepted", 2, 2, 1)
    first, second = ack.sets
    assert (first.control_number, first.status, first.codes) == ("0001", "A", [])
    assert (second.control_number, second.status, second.codes) == ("0002", "R", ["5"])
    note = second.segments[0]
    assert (note.segment_tag, note.segment_position, note.loop_id, note.code) == (
        "CLM", 22, "", "8")
    element = note.elements[0]
    assert (element.element_position, element.element_reference, element.code) == (1, "1028", "1")


@needs_corpus
def test_corpus_simple997_reports_the_rejected_837_and_its_bad_element() -> None:
    ack = corpus_ack("997/staedi__simple997.edi")
    (rejected,) = ack.sets
    assert (rejected.set_id, rejected.control_number, rejected.status) == ("837", "0021", "R")
    element = rejected.segments[0].elements[0]
    assert (element.element_position, element.element_reference, element.code,
            element.bad_value) == (8, "66", "7", "MI")
    assert ack.outcome == "rejected"


@needs_corpus
def test_corpus_997_after_isb_and_ise_service_segments_parses() -> None:
    ack = corpus_ack("997/staedi__optionalInterchangeServices.edi")
    assert (ack.functional_id, ack.group_control_number, ack.status) == ("HC", "000001", "A")


@pytest.mark.parametrize("name", [
    "999/X12Parser__DHS_Wisconsin_Sample.txt",
    "999/stupidedi__005010-X231A1-FA999-pass-1.edi",
    "999/stupidedi__X231-FA999-1-bad.txt",
])
@needs_corpus
def test_corpus_x231_999_example_reports_ik3_ik4_and_ctx_detail(name: str) -> None:
    ack = corpus_ack(name)
    assert (ack.kind, ack.functional_id, ack.version, ack.status) == (
        "999", "HC", "004010X098A1", "P")
    # the Wisconsin reprint writes the second ST02 as 002, the x12.org original as 0002
    assert [(int(s.control_number), s.status, s.codes) for s in ack.sets] == [
        (1, "A", []), (2, "R", ["5"]), (3, "R", ["5"])]
    clm = ack.sets[1].segments[0]
    assert (clm.segment_tag, clm.segment_position, clm.code) == ("CLM", 22, "8")
    assert [(c.name, c.reference) for c in clm.contexts] == [("CLM01", "123456789")]
    assert [(e.element_position, e.element_reference, e.code) for e in clm.elements] == [
        (2, "782", "1")]
    ref = ack.sets[2].segments[0]
    assert (ref.segment_tag, ref.segment_position, ref.code) == ("REF", 57, "3")
    trigger, business = ref.contexts
    assert (trigger.name, trigger.segment_tag, trigger.segment_position) == (
        "SITUATIONAL TRIGGER", "CLM", 43)
    assert (trigger.element_position, trigger.component_position) == (5, 3)
    assert (business.name, business.reference) == ("CLM01", "987654321")
    assert ack.problems == []


@needs_corpus
def test_corpus_999_rejecting_an_837_with_pipe_component_separator() -> None:
    ack = corpus_ack("999/x12-parser__x12_999_rejected.txt")
    assert (ack.status, ack.included, ack.received, ack.accepted) == ("R", 1, 1, 0)
    note = ack.sets[0].segments[0]
    assert (note.segment_tag, note.segment_position, note.code) == ("NM", 17, "1")


@pytest.mark.parametrize("name", [
    "999/x12-parser__x12_999_accepted.txt", "999/pyx12__834_ls_le_ls_5010.999.txt"])
@needs_corpus
def test_corpus_999_accepting_one_set_echoes_its_implementation_reference(name: str) -> None:
    ack = corpus_ack(name)
    assert ack.outcome == "accepted" and len(ack.sets) == 1
    assert ack.sets[0].implementation_reference.startswith("005010X2")


@needs_corpus
def test_corpus_999_file_with_two_groups_of_two_999s_parses_each() -> None:
    sets = corpus_sets("999/pyx12__834_lui_id_5010.999.txt")
    acks = [parse_functional_ack(ts) for ts in sets]
    assert [a.control_number for a in acks] == ["0001", "0002", "0003", "0004"]
    assert {(a.functional_id, a.group_control_number, a.status) for a in acks} == {
        ("BE", "13360001", "A")}


# --- corpus: sloppy and malformed acknowledgments -------------------------------------------

@needs_corpus
def test_corpus_997_without_ak1_and_ak9_raises_a_parse_error_naming_ak1() -> None:
    with pytest.raises(AcknowledgmentParseError, match="no AK1") as info:
        corpus_ack("997/staedi__empty997.edi")
    assert info.value.field == "AK1"


@needs_corpus
def test_corpus_999_with_ik5_before_ak1_raises_a_parse_error_naming_it() -> None:
    with pytest.raises(AcknowledgmentParseError, match="IK5 before AK1") as info:
        corpus_ack("999/staedi__invalid999.edi")
    assert info.value.field == "IK5"


@pytest.mark.parametrize("name", ["997/staedi__invalid997.edi", "997/staedi__invalid997_min.edi"])
@needs_corpus
def test_corpus_997_with_a_bad_ak101_is_read_and_the_problem_noted(name: str) -> None:
    ack = corpus_ack(name)
    assert ack.status == "R"
    assert any("AK101" in p for p in ack.problems)


@needs_corpus
def test_corpus_997_with_repeated_values_in_ak3_keeps_the_first_and_notes_the_rest() -> None:
    ack = corpus_ack("997/staedi__extraDelimiter997.edi")
    note = ack.sets[0].segments[0]
    assert (note.segment_tag, note.segment_position, note.code) == ("NM1", None, "AK304-R1")
    assert any("AK302" in p for p in ack.problems)
    element = note.elements[0]
    assert (element.element_position, element.element_reference, element.code) == (8, "66", "7")
    assert element.bad_value.startswith("AK404-R1-COMP1")


# --- corpus: TA1 -----------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "expected"), [
    ("TA1/OBOE__withTA1TestCase.edi", ("723010535", "061024", "1006", "R", "024")),
    ("TA1/staedi__x12_interchange_ack.txt", ("000000050", "200229", "1200", "A", "000")),
    ("TA1/x12-parser-library__TA1.edi", ("000000100", "030809", "0823", "R", "024")),
])
@needs_corpus
def test_corpus_ta1_gives_control_number_date_time_and_codes(
        name: str, expected: tuple[str, ...]) -> None:
    (segment,) = corpus_ta1s(name)
    result = parse_ta1(segment)
    assert (result.control_number, result.date, result.time, result.ack_code,
            result.note_code) == expected
    assert result.problems == []
    assert result.accepted is (expected[3] == "A")


@needs_corpus
def test_corpus_ta1_with_short_control_number_and_no_note_is_read_with_problems() -> None:
    results = [parse_ta1(s) for s in corpus_ta1s(
        "TA1/X12Parser__TechnicalAcknowledgment_Sample1.txt")]
    assert [(r.control_number, r.ack_code, r.note_code) for r in results] == [
        ("000000659", "A", ""), ("000000660", "A", "")]
    problems = results[0].problems
    assert any("TA101" in p for p in problems) and any("TA102" in p for p in problems)
    assert any("TA105" in p for p in problems)


@needs_corpus
def test_every_corpus_ack_either_parses_or_raises_a_parse_error() -> None:
    for path in sorted(CORPUS.glob("99[79]/*")):
        for ts in read_transactions(path.read_bytes()):
            try:
                parse_functional_ack(ts)
            except AcknowledgmentParseError as exc:
                assert str(exc)


# --- synthetic malformed input --------------------------------------------------------------

def test_ak4_without_an_ak3_raises_a_parse_error() -> None:
    ts = ack_set("ST*997*0001~AK1*PO*1~AK2*850*0001~AK4*1**7~AK5*R*5~AK9*R*1*1*0~")
    with pytest.raises(AcknowledgmentParseError, match="AK4 without a preceding AK3"):
        parse_functional_ack(ts)


def test_missing_ak9_raises_a_parse_error() -> None:
    with pytest.raises(AcknowledgmentParseError, match="no AK9"):
        parse_functional_ack(ack_set("ST*997*0001~AK1*PO*1~AK2*850*0001~AK5*A~"))


def test_unknown_statuses_raise_a_parse_error() -> None:
    with pytest.raises(AcknowledgmentParseError, match="IK501 status 'Q'"):
        parse_functional_ack(ack_set("ST*999*0001~AK1*PO*1~AK2*850*0001~IK5*Q~AK9*R*1*1*0~"))
    with pytest.raises(AcknowledgmentParseError, match="AK901 status 'Z'"):
        parse_functional_ack(ack_set("ST*997*0001~AK1*PO*1~AK9*Z*1*1*0~"))


def test_segment_after_ak9_raises_a_parse_error() -> None:
    with pytest.raises(AcknowledgmentParseError, match="AK2 after AK9"):
        parse_functional_ack(ack_set("ST*997*0001~AK1*PO*1~AK9*A*0*0*0~AK2*850*1~"))


def test_a_set_that_is_no_acknowledgment_is_refused() -> None:
    ts = ack_set("ST*997*0001~AK1*PO*1~AK9*A*0*0*0~")
    ts.set_id = "850"
    with pytest.raises(AcknowledgmentParseError, match="not a 997 or 999"):
        parse_functional_ack(ts)


def test_missing_ak5_and_997_tags_in_a_999_are_tolerated_and_noted() -> None:
    ack = parse_functional_ack(ack_set(
        "ST*999*0001~AK1*PO*1*005010~AK2*850*0001~AK3*N1*5**3~AK2*850*0002~IK5*A~"
        "AK9*P*2*2*1*5~"))
    assert [(s.control_number, s.status) for s in ack.sets] == [("0001", ""), ("0002", "A")]
    assert ack.sets[0].segments[0].code == "3"
    assert ack.group_codes == ["5"]
    assert any("no AK5" in p for p in ack.problems) and any("AK3" in p for p in ack.problems)


def test_parse_ta1_refuses_other_segments_and_unknown_ack_codes() -> None:
    with pytest.raises(AcknowledgmentParseError, match="not a TA1"):
        parse_ta1(Segment("AK1", ["PO", "1"]))
    with pytest.raises(AcknowledgmentParseError, match="TA104"):
        parse_ta1(Segment("TA1", ["000000001", "240101", "1200", "Q", "000"]))


def test_parsed_acknowledgments_serialise_to_json_ready_dicts() -> None:
    ack = parse_functional_ack(ack_set(
        "ST*999*0001~AK1*HC*7*005010X222A1~AK2*837*0001~IK3*CLM*22**8~CTX*CLM01:99~"
        "IK4*2*782*1~IK5*R*5~AK9*R*1*1*0~"))
    data = ack.to_dict()
    assert data["outcome"] == "rejected"
    assert data["sets"][0]["segments"][0]["contexts"][0] == {
        "name": "CLM01", "reference": "99", "segment_tag": "", "segment_position": None,
        "loop_id": "", "element_position": None, "component_position": None,
        "element_reference": ""}
    assert data["sets"][0]["segments"][0]["elements"][0]["element_reference"] == "782"
    ta1 = parse_ta1(Segment("TA1", ["000000001", "240101", "1200", "A", "000"]))
    assert ta1.to_dict()["note_code"] == "000"
