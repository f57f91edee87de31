"""The validator engine: one test per error code, loops/HL, fallback, partner rules, corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from translators.errors import (
    ElementError,
    Level,
    SegmentError,
    SetError,
    Severity,
    WarningCode,
    X12Issue,
)
from translators.schemas import segment_dictionary
from translators.settings import MappingSettings
from translators.validation import (
    PartnerRules,
    rules_from_settings,
    validate_segment_elements,
    validate_transaction,
)
from translators.x12.model import (
    Delimiters,
    GroupHeader,
    InterchangeHeader,
    Segment,
    TransactionSet,
)

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"


def make_ts(lines: list[str], *, version: str = "004010", repetition: str | None = None,
            element: str = "*") -> TransactionSet:
    """A transaction set built by hand from segment texts (ST first; SE added when absent)."""
    delims = Delimiters(element=element, repetition=repetition)
    isa = Segment("ISA", [])
    ich = InterchangeHeader(
        index=1, offset=0, segment=isa, delimiters=delims, authorization_qualifier="00",
        authorization="", security_qualifier="00", security="", sender_qualifier="ZZ",
        sender_id="SENDER", receiver_qualifier="ZZ", receiver_id="RECEIVER", date="240101",
        time="1200", standards_id="U", version="00401", control_number="000000001",
        ack_requested="0", usage="T")
    group = GroupHeader(
        interchange=ich, offset=0, segment=Segment("GS", []), functional_id="PO",
        sender="S", receiver="R", date="20240101", time="1200", control_number="7",
        agency="X", version=version)
    if not lines[-1].startswith("SE" + element):
        lines = [*lines, f"SE{element}{len(lines) + 1}{element}0001"]
    segments = []
    offset = 0
    for pos, text in enumerate(lines, start=1):
        tag, *elements = text.split(element)
        segments.append(Segment(tag, elements, offset=offset, position=pos, component=">",
                                repetition=repetition))
        offset += len(text) + 1
    st = segments[0]
    return TransactionSet(group=group, offset=0, segments=segments, set_id=st.get(1),
                          control_number=st.get(2), implementation_reference=st.get(3))


PO_HEAD = ["ST*850*0001", "BEG*00*SA*PO1**20240115"]
PO_LINE = ["PO1*1*10*EA*9.95**UP*012345678905", "PID*F****WIDGET"]
PO_TAIL = ["CTT*1"]


def po(*middle: str, head: list[str] | None = None, lines: list[str] | None = None,
       tail: list[str] | None = None) -> list[str]:
    return [*(head or PO_HEAD), *middle, *(PO_LINE if lines is None else lines),
            *(PO_TAIL if tail is None else tail)]


def codes(issues: list[X12Issue], level: Level | None = None) -> list[str]:
    return [i.code for i in issues if level is None or i.level == level]


def only(issues: list[X12Issue], level: Level, code: str) -> X12Issue:
    found = [i for i in issues if i.level == level and i.code == code]
    assert len(found) == 1, issues
    return found[0]


# --- valid input ------------------------------------------------------------------------

def test_valid_850_has_no_issues() -> None:
    lines = po("CUR*BY*USD", "REF*DP*038", "DTM*002*20240201*1230", "N1*ST*STORE*92*0001",
               "N3*1 MAIN ST", "N4*SPRINGFIELD*IL*62701*US")
    assert validate_transaction(make_ts(lines)) == []


def test_issue_positions_carry_envelope_control_numbers() -> None:
    issue = only(validate_transaction(make_ts(po("DTM*XXX*20240115"))), Level.ELEMENT, "7")
    assert (issue.interchange_index, issue.interchange_control, issue.group_control,
            issue.transaction_control) == (1, "000000001", "7", "0001")
    assert issue.offset is not None and issue.offset > 0


# --- transaction level ------------------------------------------------------------------

def test_unknown_transaction_set_is_not_supported() -> None:
    issues = validate_transaction(make_ts(["ST*123*0001", "BEG*00*SA*PO1**20240115"]))
    assert [(i.level, i.code) for i in issues] == [(Level.TRANSACTION, SetError.NOT_SUPPORTED)]


def test_unknown_version_falls_back_with_a_warning() -> None:
    issues = validate_transaction(make_ts(po(), version="004060"))
    assert len(issues) == 1
    assert issues[0].code == WarningCode.VERSION_FALLBACK and issues[0].severity is Severity.WARNING
    assert "004010" in issues[0].message


def test_industry_suffix_of_version_is_ignored() -> None:
    assert validate_transaction(make_ts(po(), version="004010VICS")) == []


# --- segment codes ----------------------------------------------------------------------

def test_unrecognized_segment_is_code_1() -> None:
    issue = only(validate_transaction(make_ts(po("XYZ*1"))), Level.SEGMENT, "1")
    assert issue.segment_tag == "XYZ" and issue.segment_position == 3


def test_segment_of_the_set_in_a_closed_loop_is_unexpected_code_2() -> None:
    # MSG belongs to the N9 loop; after N1 it cannot be reached
    issues = validate_transaction(make_ts(po("N1*ST*STORE", "MSG*HELLO")))
    assert only(issues, Level.SEGMENT, SegmentError.UNEXPECTED_SEGMENT).segment_tag == "MSG"


def test_missing_mandatory_segment_is_code_3() -> None:
    issues = validate_transaction(make_ts(["ST*850*0001", *PO_LINE]))
    issue = only(issues, Level.SEGMENT, SegmentError.MANDATORY_SEGMENT_MISSING)
    assert issue.segment_tag == "BEG" and issue.segment_position == 2


def test_missing_mandatory_loop_is_code_3_with_its_loop_id() -> None:
    issues = validate_transaction(make_ts(po(lines=[])))
    issue = only(issues, Level.SEGMENT, SegmentError.MANDATORY_SEGMENT_MISSING)
    assert (issue.segment_tag, issue.loop_id) == ("PO1", "PO1")


def test_loop_over_maximum_is_code_4() -> None:
    n9 = [f"N9*ZZ*{i}" for i in range(1001)]
    issues = validate_transaction(make_ts(po(*n9)))
    issue = only(issues, Level.SEGMENT, SegmentError.LOOP_OVER_MAXIMUM)
    assert (issue.loop_id, issue.segment_position) == ("N9", 3 + 1000)


def test_segment_over_maximum_use_is_code_5() -> None:
    issues = validate_transaction(make_ts(po("CUR*BY*USD", "CUR*BY*USD")))
    issue = only(issues, Level.SEGMENT, SegmentError.SEGMENT_OVER_MAXIMUM_USE)
    assert issue.segment_tag == "CUR" and issue.segment_position == 4


def test_known_segment_not_in_the_set_is_code_6() -> None:
    issues = validate_transaction(make_ts(po("BSN*00*SHIP1*20240101*1200")))
    assert only(issues, Level.SEGMENT, SegmentError.NOT_IN_DEFINED_SET).segment_tag == "BSN"


def test_segment_after_its_place_is_out_of_sequence_code_7() -> None:
    issues = validate_transaction(make_ts(po("N1*ST*STORE", "CUR*BY*USD")))
    assert only(issues, Level.SEGMENT, SegmentError.NOT_IN_SEQUENCE).segment_tag == "CUR"


def test_segment_with_element_errors_gets_code_8_alongside_element_issues() -> None:
    issues = validate_transaction(make_ts(po("DTM*XXX*20240115")))
    seg = only(issues, Level.SEGMENT, SegmentError.HAS_ELEMENT_ERRORS)
    el = only(issues, Level.ELEMENT, ElementError.INVALID_CODE)
    assert (seg.segment_tag, seg.segment_position) == (el.segment_tag, el.segment_position)
    assert issues.index(seg) < issues.index(el)


# --- element codes ----------------------------------------------------------------------

def element_issue(lines: list[str], code: str, **kw: object) -> X12Issue:
    issue = only(validate_transaction(make_ts(lines, **kw)), Level.ELEMENT, code)  # type: ignore[arg-type]
    return issue


def test_mandatory_element_missing_is_code_1() -> None:
    issue = element_issue(po(head=["ST*850*0001", "BEG*00**PO1**20240115"]), "1")
    assert (issue.segment_tag, issue.element_position, issue.element_reference) == (
        "BEG", 2, "92")


def test_paired_element_missing_is_conditional_code_2() -> None:
    issue = element_issue(po(lines=["PO1*1*10*EA*9.95**UP"]), "2")
    assert (issue.element_position, issue.loop_id) == (7, "PO1")


def test_required_note_with_nothing_present_is_code_2_on_the_first_position() -> None:
    issue = element_issue(po("REF*DP"), "2")
    assert (issue.segment_tag, issue.element_position) == ("REF", 2)


def test_too_many_elements_is_code_3() -> None:
    issue = element_issue(po("CUR*BY*USD" + "*" * 19 + "*X"), "3")
    assert issue.element_position == 22 and issue.bad_value == "X"


def test_too_short_is_code_4() -> None:
    issue = element_issue(po("N1*ST*STORE*92*1"), "4")
    assert (issue.element_position, issue.bad_value, issue.element_reference) == (4, "1", "67")


def test_too_long_is_code_5_and_bad_value_is_truncated_to_99() -> None:
    issue = element_issue(po("MSG*" + "A" * 300, head=[*PO_HEAD, "N9*ZZ*1"]), "5")
    assert issue.bad_value == "A" * 99


def test_control_character_is_invalid_character_code_6() -> None:
    issue = element_issue(po("N1*ST*ST\x07ORE"), "6")
    assert issue.element_position == 2


def test_numeric_with_letters_is_invalid_character_code_6() -> None:
    issue = element_issue(po(lines=["PO1*1*1O*EA*9.95**UP*012345678905"]), "6")
    assert (issue.element_position, issue.bad_value) == (2, "1O")


def test_code_outside_the_list_is_code_7() -> None:
    issue = element_issue(po(head=["ST*850*0001", "BEG*00*QQ*PO1**20240115"]), "7")
    assert (issue.element_position, issue.element_reference, issue.bad_value) == (2, "92", "QQ")


def test_impossible_calendar_date_is_code_8() -> None:
    issue = element_issue(po("DTM*002*20230229"), "8")
    assert issue.element_position == 2


def test_leap_day_is_a_valid_date() -> None:
    assert validate_transaction(make_ts(po("DTM*002*20240229"))) == []


def test_invalid_time_is_code_9() -> None:
    issue = element_issue(po("DTM*002*20240101*2460"), "9")
    assert issue.element_position == 3


def test_exclusion_violated_is_code_10() -> None:
    issue = element_issue(po("MEA**WT*1*LB****ZZ"), "10")
    assert (issue.segment_tag, issue.element_position) == ("MEA", 3)


def test_too_many_repetitions_is_code_12() -> None:
    lines = po("REF*DP*1^2", head=["ST*850*0001*005010", "BEG*00*SA*PO1**20240115"])
    issue = element_issue(lines, "12", version="005010", repetition="^")
    assert (issue.element_position, issue.bad_value) == (2, "1^2")


def test_components_in_a_simple_element_are_too_many_components_code_13() -> None:
    issue = element_issue(po("REF*DP*1>2"), "13")
    assert issue.element_position == 2


def test_composite_component_errors_carry_the_component_position() -> None:
    issue = element_issue(po(lines=[*PO_LINE, "SLN*1**I*5*Q9>1"]), "7")
    assert (issue.element_position, issue.component_position, issue.element_reference) == (
        5, 1, "355")


# --- numbers ---------------------------------------------------------------------------

def test_minus_sign_and_decimal_point_do_not_count_in_length() -> None:
    # CTT02 hash total is R 1/10: ten digits plus sign and point are fine
    assert validate_transaction(make_ts(po(tail=["CTT*1*-12345678.90"]))) == []


def test_decimal_with_two_points_is_invalid() -> None:
    issue = element_issue(po(tail=["CTT*1*1.2.3"]), "6")
    assert issue.element_position == 2


def test_implied_decimal_number_rejects_a_point() -> None:
    lines = ["ST*810*0001", "BIG*20240101*INV1", "TDS*12.50"]
    issue = element_issue(lines, "6")
    assert (issue.segment_tag, issue.element_reference) == ("TDS", "610")


# --- loops and HL ------------------------------------------------------------------------

def test_loop_ids_are_reported_for_segments_inside_loops() -> None:
    issue = element_issue(po("N1*ST*STORE", "N4*CITY*ILL"), "5")
    assert issue.loop_id == "N1"


SHIP = ["ST*856*0001", "BSN*00*SHIP1*20240101*1200*0001"]


def test_856_hl_tree_validates() -> None:
    lines = [*SHIP, "HL*1**S", "TD1*CTN25*2", "TD5*B*2*UPSN", "REF*BM*123", "N1*ST*STORE",
             "HL*2*1*O", "PRF*PO1", "HL*3*2*P", "MAN*GM*00000123456789012345",
             "HL*4*3*I", "LIN**UP*012345678905", "SN1**2*EA", "CTT*4"]
    assert validate_transaction(make_ts(lines)) == []


def test_856_hl_parent_must_be_an_earlier_hl() -> None:
    lines = [*SHIP, "HL*1**S", "HL*2*9*O", "CTT*2"]
    issue = only(validate_transaction(make_ts(lines)), Level.ELEMENT, WarningCode.HIERARCHY)
    assert issue.severity is Severity.WARNING and issue.bad_value == "9"


def test_856_without_hl_misses_the_mandatory_loop() -> None:
    issues = validate_transaction(make_ts([*SHIP, "CTT*0"]))
    assert only(issues, Level.SEGMENT, "3").loop_id == "HL"


def test_997_nested_loops_validate() -> None:
    lines = ["ST*997*0001", "AK1*PO*1", "AK2*850*0001", "AK3*BEG*2**8", "AK4*2*92*7*QQ",
             "AK5*R*5", "AK9*R*1*1*0"]
    assert validate_transaction(make_ts(lines)) == []


def test_999_validates_against_005010() -> None:
    lines = ["ST*999*0001*005010X231A1", "AK1*HC*1*005010X222A1", "AK2*837*0001*005010X222A1",
             "IK3*NM1*8*2010*8", "CTX*SITUATIONAL TRIGGER*CLM*14**5>1", "IK4*3*66*7*XX",
             "IK5*R*5", "AK9*R*1*1*0"]
    assert validate_transaction(make_ts(lines, version="005010X231A1")) == []


# --- partner rules ----------------------------------------------------------------------

def test_partner_codes_restrict_the_standard_list() -> None:
    rules = PartnerRules(allowed_codes={"BEG02": frozenset({"SA"})})
    lines = po(head=["ST*850*0001", "BEG*00*DS*PO1**20240115"])
    issue = only(validate_transaction(make_ts(lines), rules=rules), Level.ELEMENT, "7")
    assert "partner" in issue.message


def test_partner_codes_can_add_codes_the_standard_lacks() -> None:
    rules = PartnerRules(allowed_codes={"BEG02": frozenset({"SA", "Q1"})})
    lines = po(head=["ST*850*0001", "BEG*00*Q1*PO1**20240115"])
    assert validate_transaction(make_ts(lines), rules=rules) == []


def test_partner_required_element_missing_is_code_1() -> None:
    rules = PartnerRules(required_elements=frozenset({"PO107"}))
    issue = only(validate_transaction(make_ts(po(lines=["PO1*1*10*EA*9.95"])), rules=rules),
                 Level.ELEMENT, "1")
    assert issue.element_position == 7 and "partner" in issue.message


def test_partner_required_segment_with_qualifier() -> None:
    rules = PartnerRules(required_segments=frozenset({"REF*DP"}))
    issues = validate_transaction(make_ts(po("REF*IA*1")), rules=rules)
    issue = only(issues, Level.SEGMENT, "3")
    assert issue.segment_tag == "REF" and "partner" in issue.message
    assert validate_transaction(make_ts(po("REF*DP*1")), rules=rules) == []


def test_rules_from_settings_use_allowed_codes() -> None:
    rules = rules_from_settings(MappingSettings(allowed_codes={"beg02": ["SA"]}))
    assert rules.allowed_codes["BEG02"] == frozenset({"SA"})


def test_bad_rule_ids_are_refused() -> None:
    with pytest.raises(ValueError):
        PartnerRules(required_elements=frozenset({"not an id"}))


# --- envelope helper ----------------------------------------------------------------------

def test_validate_segment_elements_checks_envelope_segments() -> None:
    gs = Segment("GS", ["PO", "SENDER", "RECEIVER", "20241301", "1200", "1", "X", "004010"])
    issues = validate_segment_elements(gs, segment_dictionary("004010")["GS"])
    assert codes(issues, Level.ELEMENT) == ["8"]
    assert codes(issues, Level.SEGMENT) == ["8"]


# --- corpus -----------------------------------------------------------------------------

@pytest.mark.corpus
def test_every_corpus_transaction_validates_without_raising() -> None:
    from translators.x12.reader import read_transactions

    files = [p for p in CORPUS.glob("*/*") if p.is_file() and p.suffix != ".tsv"]
    if not files:
        pytest.skip("corpus not available")
    count = 0
    for path in files:
        for ts in read_transactions(path.read_bytes()):
            for issue in validate_transaction(ts):
                assert issue.code and issue.message
            count += 1
    assert count > 50


def test_open_code_lists_accept_codes_we_do_not_list_but_partner_rules_still_restrict() -> None:
    assert validate_transaction(make_ts(po("REF*7I*ABC"))) == []
    rules = PartnerRules(allowed_codes={"REF01": frozenset({"DP"})}, required_elements=frozenset(),
                         required_segments=frozenset())
    issue = only(validate_transaction(make_ts(po("REF*7I*ABC")), rules=rules), Level.ELEMENT, "7")
    assert issue.element_reference == "128"


def test_problems_found_with_another_versions_schema_are_warnings() -> None:
    lines = po("DTM*XXX*20240115")
    ts = make_ts(lines, version="004060")
    issues = validate_transaction(ts)
    assert any(i.code == "7" for i in issues)
    assert not any(i.is_error for i in issues)
