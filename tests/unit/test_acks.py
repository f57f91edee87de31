"""Building TA1, 997 and 999 acknowledgments from what the pipeline found in an interchange."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from pyx12.x12file import X12Reader

from translators.acks import (
    AckCode,
    Acknowledgment,
    GroupOutcome,
    InterchangeOutcome,
    TransactionOutcome,
    build_997,
    build_999,
    build_acknowledgments,
    build_ta1,
    group_counts,
    parse_functional_ack,
    parse_ta1,
)
from translators.errors import (
    ElementError,
    GroupError,
    Level,
    SegmentError,
    SetError,
    Severity,
    TA1Note,
    X12Issue,
)
from translators.settings import AcknowledgmentSettings
from translators.x12.model import (
    Delimiters,
    GroupEnd,
    GroupHeader,
    InterchangeEnd,
    InterchangeHeader,
    Segment,
    TransactionSet,
)
from translators.x12.reader import iter_events

NOW = datetime(2024, 5, 6, 7, 8)
D4010 = Delimiters("*", ">", None, "~", "\n")
D5010 = Delimiters("*", ":", "^", "~", "\n")


def codes_of(table: type) -> list[str]:
    """Every code constant of an errors.py code table."""
    return [v for k, v in vars(table).items() if k.isupper() and isinstance(v, str)]


def counter() -> Callable[[str], int]:
    """A next_control_number like the CLI's: one counter per kind, starting at 1."""
    seen: dict[str, int] = {}

    def next_number(kind: str) -> int:
        assert kind in ("interchange", "group", "transaction")
        seen[kind] = seen.get(kind, 0) + 1
        return seen[kind]

    return next_number


def isa(*, version: str = "00401", ack_requested: str = "0", usage: str = "T",
        delimiters: Delimiters = D4010, control: str = "000000123") -> InterchangeHeader:
    return InterchangeHeader(
        index=1, offset=0, segment=Segment("ISA", []), delimiters=delimiters,
        authorization_qualifier="00", authorization="", security_qualifier="00", security="",
        sender_qualifier="ZZ", sender_id="PARTNER", receiver_qualifier="01",
        receiver_id="US123456789", date="240101", time="1200",
        standards_id=delimiters.repetition or "U", version=version, control_number=control,
        ack_requested=ack_requested, usage=usage,
    )


def gs(header: InterchangeHeader | None = None, *, version: str = "004010",
       functional_id: str = "PO", control: str = "42") -> GroupHeader:
    return GroupHeader(
        interchange=header or isa(), offset=0, segment=Segment("GS", []),
        functional_id=functional_id, sender="PARTAPP", receiver="OURAPP", date="20240101",
        time="1200", control_number=control, agency="X", version=version,
    )


def gs5010(version: str = "005010X222A1", functional_id: str = "HC") -> GroupHeader:
    return gs(isa(version="00501", delimiters=D5010), version=version,
              functional_id=functional_id)


def issue(level: Level, code: str, **kw: object) -> X12Issue:
    return X12Issue(level, code, f"test {level} {code}", **kw)  # type: ignore[arg-type]


def element_issue(code: str, **kw: object) -> X12Issue:
    base: dict[str, object] = dict(segment_tag="BEG", segment_position=2, loop_id="",
                                   element_position=3, element_reference="324",
                                   bad_value="PO#1")
    base.update(kw)
    return issue(Level.ELEMENT, code, **base)


def segment_issue(code: str, **kw: object) -> X12Issue:
    base: dict[str, object] = dict(segment_tag="N1", segment_position=5, loop_id="N1")
    base.update(kw)
    return issue(Level.SEGMENT, code, **base)


def one_set_group(*issues: X12Issue, header: GroupHeader | None = None,
                  set_id: str = "850", st03: str = "") -> GroupOutcome:
    return GroupOutcome(header or gs(), [TransactionOutcome(set_id, "0001", st03, list(issues))],
                        [], 1)


def read_back(ack: Acknowledgment) -> tuple[list[TransactionSet], InterchangeEnd]:
    """Our own reader on an ack we built: its sets, and its IEA event (which must be clean)."""
    sets: list[TransactionSet] = []
    end: InterchangeEnd | None = None
    for event in iter_events(ack.text.encode("ascii")):
        if isinstance(event, TransactionSet):
            assert event.issues == []
            sets.append(event)
        elif isinstance(event, InterchangeEnd):
            end = event
    assert end is not None
    assert end.issues == []
    return sets, end


def segments(ack: Acknowledgment, tag: str) -> list[Segment]:
    sets, _ = read_back(ack)
    return [s for ts in sets for s in ts.segments if s.tag == tag]


def only(ack: Acknowledgment, tag: str) -> Segment:
    found = segments(ack, tag)
    assert len(found) == 1, f"{tag}: {found}"
    return found[0]


def envelope(ack: Acknowledgment) -> tuple[list[str], list[str]]:
    """ISA and GS elements of an ack, split with its own element separator."""
    text = ack.text
    sep = text[3]
    lines = [seg.strip() for seg in text.split(text[105]) if seg.strip()]
    isa_fields = lines[0].split(sep)
    gs_fields = next((line.split(sep) for line in lines if line.startswith("GS")), [])
    return isa_fields, gs_fields


def pyx12_errors(text: str) -> list[tuple[object, ...]]:
    reader = X12Reader(io.StringIO(text))
    try:
        list(reader)
        reader.cleanup()
        return [tuple(e) for e in reader.pop_errors()]
    finally:
        reader.close()


def build(kind: str, group: GroupOutcome, version: str | None = None) -> Acknowledgment:
    builder = build_997 if kind == "997" else build_999
    return builder(group, now=NOW, next_control_number=counter(), version=version)


# --- statuses -----------------------------------------------------------------------------

def test_clean_set_and_group_are_accepted() -> None:
    ack = build("997", one_set_group())
    assert only(ack, "AK5").elements == ["A"]
    assert only(ack, "AK9").elements == ["A", "1", "1", "1"]
    assert ack.status == AckCode.ACCEPTED


def test_set_with_only_warnings_is_accepted_with_errors_noted() -> None:
    warning = X12Issue(Level.ELEMENT, ElementError.TOO_LONG, "long", Severity.WARNING,
                       segment_tag="BEG", segment_position=2, element_position=3)
    ack = build("997", one_set_group(warning))
    assert only(ack, "AK5").elements == ["E", "5"]
    assert only(ack, "AK9").elements == ["E", "1", "1", "1"]
    assert only(ack, "AK3").elements == ["BEG", "2", "", "8"]


def test_one_rejected_set_of_two_makes_the_group_partially_accepted() -> None:
    group = GroupOutcome(gs(), [
        TransactionOutcome("850", "0001", "", [element_issue(ElementError.INVALID_CODE)]),
        TransactionOutcome("850", "0002"),
    ], [], 2)
    ack = build("997", group)
    assert [s.elements for s in segments(ack, "AK5")] == [["R", "5"], ["A"]]
    assert only(ack, "AK9").elements == ["P", "2", "2", "1"]


def test_a_set_without_st01_or_st02_gets_no_ak2_but_the_ak9_counts_it_rejected() -> None:
    unnamed = segment_issue(SegmentError.MANDATORY_SEGMENT_MISSING, segment_tag="ST")
    group = GroupOutcome(gs(), [
        TransactionOutcome("", "", "", [unnamed]),
        TransactionOutcome("850", "0002"),
    ], [], 2)
    for kind in ("997", "999"):
        ack = build(kind, group)
        assert [s.elements[:2] for s in segments(ack, "AK2")] == [["850", "0002"]]
        assert only(ack, "AK9").elements[:4] == ["P", "2", "2", "1"]
        assert pyx12_errors(ack.text) == []


def test_all_sets_rejected_makes_the_group_rejected() -> None:
    ack = build("999", one_set_group(segment_issue(SegmentError.UNEXPECTED_SEGMENT),
                                     header=gs5010()))
    assert only(ack, "IK5").elements == ["R", "5"]
    assert only(ack, "AK9").elements == ["R", "1", "1", "0"]


def test_group_with_missing_trailer_is_rejected_with_ak905_3_and_counted_sets() -> None:
    group = GroupOutcome(gs(), [TransactionOutcome("850", "0001"),
                                TransactionOutcome("850", "0002")],
                         [issue(Level.GROUP, GroupError.TRAILER_MISSING)], None)
    assert only(build("997", group), "AK9").elements == ["R", "2", "2", "0", "3"]


def test_ak902_reports_ge01_while_ak903_counts_the_sets_received() -> None:
    group = GroupOutcome(gs(), [TransactionOutcome("850", "0001")],
                         [issue(Level.GROUP, GroupError.SET_COUNT_MISMATCH)], 3)
    assert only(build("997", group), "AK9").elements == ["R", "3", "1", "0", "5"]


def test_group_issue_filed_under_a_set_still_reaches_ak905() -> None:
    group = one_set_group(issue(Level.GROUP, GroupError.CONTROL_NUMBER_MISMATCH))
    assert only(build("997", group), "AK9").elements == ["R", "1", "1", "0", "4"]
    assert group_counts(group).codes == ["4"]


def test_at_most_five_group_codes_without_repeats() -> None:
    codes = ["1", "2", "3", "4", "4", "5", "6"]
    group = GroupOutcome(gs(), [], [issue(Level.GROUP, c) for c in codes], 0)
    assert only(build("997", group), "AK9").elements[4:] == ["1", "2", "3", "4", "5"]


def test_at_most_five_set_codes_without_repeats() -> None:
    codes = ["1", "2", "3", "3", "4", "6", "7"]
    ack = build("997", one_set_group(*[issue(Level.TRANSACTION, c) for c in codes]))
    assert only(ack, "AK5").elements == ["R", "1", "2", "3", "4", "6"]


# --- every code lands in the right segment and element --------------------------------

@pytest.mark.parametrize("code", codes_of(GroupError))
@pytest.mark.parametrize("kind", ["997", "999"])
def test_group_error_code_is_reported_in_ak905(kind: str, code: str) -> None:
    group = GroupOutcome(gs5010(), [TransactionOutcome("837", "0001")],
                         [issue(Level.GROUP, code)], 1)
    ak9 = only(build(kind, group), "AK9")
    assert ak9.elements == ["R", "1", "1", "0", code]


def test_ak905_19_becomes_6_in_a_004010_997_where_19_means_a_security_error() -> None:
    group = GroupOutcome(gs(), [], [issue(Level.GROUP, GroupError.DUPLICATE_CONTROL_NUMBER)], 0)
    assert only(build("997", group), "AK9").elements[4] == GroupError.CONTROL_NUMBER_SYNTAX


@pytest.mark.parametrize("code", [c for c in codes_of(SetError) if not c.startswith("I")])
@pytest.mark.parametrize("kind", ["997", "999"])
def test_set_error_code_is_reported_in_ak502_or_ik502(kind: str, code: str) -> None:
    ack = build(kind, one_set_group(issue(Level.TRANSACTION, code), header=gs5010()))
    assert only(ack, "AK5" if kind == "997" else "IK5").elements == ["R", code]


def test_implementation_only_segment_errors_give_ik502_i5_in_a_999_and_5_in_a_997() -> None:
    impl = segment_issue("I4")
    assert only(build("999", one_set_group(impl, header=gs5010())), "IK5").elements == [
        "R", SetError.IMPLEMENTATION_ONE_OR_MORE_SEGMENTS]
    assert only(build("997", one_set_group(impl)), "AK5").elements == ["R", "5"]


@pytest.mark.parametrize("code", codes_of(SegmentError))
def test_segment_error_code_is_reported_in_ak304_with_its_position(code: str) -> None:
    ack = build("997", one_set_group(segment_issue(code, segment_position=17)))
    assert only(ack, "AK3").elements == ["N1", "17", "N1", code]
    assert only(ack, "AK5").elements == ["R", "5"]


@pytest.mark.parametrize("code", codes_of(SegmentError))
def test_segment_error_code_is_reported_in_ik304_with_its_position(code: str) -> None:
    ack = build("999", one_set_group(segment_issue(code, segment_position=17, loop_id="2010AA"),
                                     header=gs5010()))
    assert only(ack, "IK3").elements == ["N1", "17", "2010AA", code]


@pytest.mark.parametrize(("implementation", "syntax"),
                         [("I4", "2"), ("I6", "3"), ("I7", "3"), ("I8", "3"), ("I9", "2")])
def test_implementation_segment_codes_pass_to_ik304_and_map_to_syntax_codes_in_ak304(
        implementation: str, syntax: str) -> None:
    assert only(build("999", one_set_group(segment_issue(implementation), header=gs5010())),
                "IK3").elements[3] == implementation
    assert only(build("997", one_set_group(segment_issue(implementation))),
                "AK3").elements[3] == syntax


@pytest.mark.parametrize("code", codes_of(ElementError))
def test_element_error_code_is_reported_in_ak403_under_an_ak3_with_code_8(code: str) -> None:
    ack = build("997", one_set_group(element_issue(code), header=gs5010()))
    assert only(ack, "AK3").elements == ["BEG", "2", "", SegmentError.HAS_ELEMENT_ERRORS]
    assert only(ack, "AK4").elements == ["3", "324", code, "PO#1"]


@pytest.mark.parametrize("code", codes_of(ElementError))
def test_element_error_code_is_reported_in_ik403_under_an_ik3_with_code_8(code: str) -> None:
    ack = build("999", one_set_group(element_issue(code), header=gs5010()))
    assert only(ack, "IK3").elements == ["BEG", "2", "", "8"]
    assert only(ack, "IK4").elements == ["3", "324", code, "PO#1"]


@pytest.mark.parametrize(("code", "old"), [(ElementError.TOO_MANY_REPETITIONS, "3"),
                                           (ElementError.TOO_MANY_COMPONENTS, "3")])
def test_element_codes_added_in_005010_map_to_too_many_elements_in_a_004010_997(
        code: str, old: str) -> None:
    assert only(build("997", one_set_group(element_issue(code))), "AK4").elements[2] == old


@pytest.mark.parametrize(("implementation", "syntax"), [
    ("I6", "7"), ("I9", "2"), ("I10", "10"), ("I11", "1"), ("I12", "6"), ("I13", "10")])
def test_implementation_element_codes_pass_to_ik403_and_map_to_syntax_codes_in_ak403(
        implementation: str, syntax: str) -> None:
    assert only(build("999", one_set_group(element_issue(implementation), header=gs5010())),
                "IK4").elements[2] == implementation
    assert only(build("997", one_set_group(element_issue(implementation))),
                "AK4").elements[2] == syntax


def test_ak401_carries_component_and_repetition_positions_in_005010() -> None:
    bad = element_issue(ElementError.INVALID_CODE, element_position=5, component_position=2,
                        repetition=3, element_reference="1331", bad_value="99")
    assert only(build("999", one_set_group(bad, header=gs5010())), "IK4").elements == [
        "5:2:3", "1331", "7", "99"]
    assert only(build("997", one_set_group(bad, header=gs5010())), "AK4").elements == [
        "5:2:3", "1331", "7", "99"]


def test_ak401_has_no_repetition_position_in_004010() -> None:
    bad = element_issue(ElementError.INVALID_CODE, element_position=5, component_position=2,
                        repetition=3)
    assert only(build("997", one_set_group(bad)), "AK4").elements[0] == "5>2"


def test_missing_element_has_no_ak404_and_delimiters_are_removed_from_bad_values() -> None:
    missing = element_issue(ElementError.MANDATORY_MISSING, bad_value=None)
    assert only(build("997", one_set_group(missing)), "AK4").elements == ["3", "324", "1"]
    dirty = element_issue(ElementError.INVALID_CHARACTER, bad_value="A*B~C>D")
    assert only(build("997", one_set_group(dirty)), "AK4").elements[3] == "ABCD"


def test_segment_and_element_problems_share_one_ak3_in_position_order() -> None:
    ack = build("997", one_set_group(
        element_issue(ElementError.TOO_LONG, segment_tag="PO1", segment_position=9,
                      element_position=2),
        segment_issue(SegmentError.MANDATORY_SEGMENT_MISSING, segment_position=4,
                      segment_tag="DTM", loop_id=""),
        element_issue(ElementError.INVALID_CODE, segment_tag="PO1", segment_position=9,
                      element_position=3),
    ))
    sets, _ = read_back(ack)
    body = [(s.tag, s.elements[:4]) for s in sets[0].body]
    assert body == [
        ("AK1", ["PO", "42"]),
        ("AK2", ["850", "0001"]),
        ("AK3", ["DTM", "4", "", "3"]),
        ("AK3", ["PO1", "9", "", "8"]),
        ("AK4", ["2", "324", "5", "PO#1"]),
        ("AK4", ["3", "324", "7", "PO#1"]),
        ("AK5", ["R", "5"]),
        ("AK9", ["R", "1", "1", "0"]),
    ]


def test_999_writes_the_business_unit_ctx_after_each_ik3() -> None:
    group = GroupOutcome(gs5010(), [TransactionOutcome(
        "837", "0002", "005010X222A1", [element_issue(ElementError.INVALID_CODE,
                                                      segment_tag="CLM", segment_position=22)],
        business_unit=("CLM01", "123456789"))], [], 1)
    ack = build("999", group)
    sets, _ = read_back(ack)
    tags = [s.tag for s in sets[0].body]
    assert tags == ["AK1", "AK2", "IK3", "CTX", "IK4", "IK5", "AK9"]
    ctx = only(ack, "CTX")
    assert ctx.components(1) == ["CLM01", "123456789"]
    parsed = parse_functional_ack(sets[0])
    assert parsed.sets[0].segments[0].contexts[0].reference == "123456789"


def test_issue_without_segment_position_still_rejects_the_set_but_writes_no_ak3() -> None:
    ack = build("997", one_set_group(issue(Level.SEGMENT, "2", segment_tag="ZZZ")))
    assert segments(ack, "AK3") == []
    assert only(ack, "AK5").elements == ["R", "5"]


@pytest.mark.parametrize("code", codes_of(TA1Note)[1:])
def test_interchange_error_note_is_reported_in_ta105_with_ta104_r(code: str) -> None:
    outcome = InterchangeOutcome(isa(), [one_set_group()], [issue(Level.INTERCHANGE, code)])
    acks = build_acknowledgments(outcome, AcknowledgmentSettings(), now=NOW,
                                 next_control_number=counter())
    assert [a.kind for a in acks] == ["TA1"]
    ta1 = parse_ta1(_ta1_segments(acks[0])[0])
    assert (ta1.control_number, ta1.date, ta1.time) == ("000000123", "240101", "1200")
    assert (ta1.ack_code, ta1.note_code) == ("R", code)


def test_ta1_requested_by_isa14_is_accepted_with_note_000_and_the_997_still_follows() -> None:
    outcome = InterchangeOutcome(isa(ack_requested="1"), [one_set_group()])
    acks = build_acknowledgments(outcome, AcknowledgmentSettings(), now=NOW,
                                 next_control_number=counter())
    assert [a.kind for a in acks] == ["TA1", "997"]
    segment = _ta1_segments(acks[0])[0]
    assert segment.elements == ["000000123", "240101", "1200", "A", "000"]


def test_interchange_warning_gives_ta104_e_and_the_groups_are_still_acknowledged() -> None:
    warning = X12Issue(Level.INTERCHANGE, TA1Note.INVALID_GROUP_COUNT, "IEA01", Severity.WARNING)
    outcome = InterchangeOutcome(isa(), [one_set_group()], [warning])
    acks = build_acknowledgments(outcome, AcknowledgmentSettings(), now=NOW,
                                 next_control_number=counter())
    assert [(a.kind, a.status) for a in acks] == [("TA1", "E"), ("997", "A")]
    assert _ta1_segments(acks[0])[0].elements[3:] == ["E", "021"]


def test_ta1_interchange_has_no_groups_and_iea01_zero() -> None:
    ack = build_ta1(isa(), TA1Note.INVALID_CONTENT, now=NOW, next_control_number=counter())
    assert ack.text.rstrip().endswith("IEA*0*000000001~")
    assert ack.status == "R"
    assert pyx12_errors(ack.text) == []


def _ta1_segments(ack: Acknowledgment) -> list[Segment]:
    ends = [e for e in iter_events(ack.text.encode()) if isinstance(e, InterchangeEnd)]
    assert len(ends) == 1
    assert ends[0].issues == []
    return ends[0].ta1_segments


# --- TA1 policy -----------------------------------------------------------------------------

@pytest.mark.parametrize(("setting", "requested", "error", "expected"), [
    ("on_request", "0", False, ["997"]),
    ("on_request", "1", False, ["TA1", "997"]),
    ("on_request", "0", True, ["TA1"]),
    ("always", "0", False, ["TA1", "997"]),
    ("on_error", "1", False, ["997"]),
    ("on_error", "0", True, ["TA1"]),
    ("never", "1", False, ["997"]),
    ("never", "0", True, []),
])
def test_ta1_setting_decides_when_a_ta1_is_sent_and_a_rejection_replaces_the_997(
        setting: str, requested: str, error: bool, expected: list[str]) -> None:
    issues = [issue(Level.INTERCHANGE, TA1Note.CONTROL_NUMBER_MISMATCH)] if error else []
    outcome = InterchangeOutcome(isa(ack_requested=requested), [one_set_group()], issues)
    settings = AcknowledgmentSettings(ta1=setting)
    acks = build_acknowledgments(outcome, settings, now=NOW, next_control_number=counter())
    assert [a.kind for a in acks] == expected


# --- 997 or 999, and their versions ---------------------------------------------------------

def _kinds(outcome: InterchangeOutcome, **settings: object) -> list[tuple[str, str]]:
    acks = build_acknowledgments(outcome, AcknowledgmentSettings(**settings),
                                 now=NOW, next_control_number=counter())
    return [(a.kind, envelope(a)[1][8]) for a in acks]


def test_auto_sends_997_for_004010_groups_and_999_for_005010_groups() -> None:
    assert _kinds(InterchangeOutcome(isa(), [one_set_group()])) == [("997", "004010")]
    assert _kinds(InterchangeOutcome(isa(version="00501", delimiters=D5010),
                                     [one_set_group(header=gs5010())])) == [
        ("999", "005010X231A1")]


def test_997_mirrors_a_vics_gs08_and_uses_x230_for_a_hipaa_005010_group() -> None:
    assert _kinds(InterchangeOutcome(isa(), [one_set_group(header=gs(version="004010VICS"))])) \
        == [("997", "004010VICS")]
    assert _kinds(InterchangeOutcome(isa(version="00501"), [one_set_group(header=gs5010())]),
                  type="997") == [("997", "005010X230")]


def test_a_garbled_gs08_is_not_mirrored_into_the_997() -> None:
    """``^05010`` (a repetition separator in GS08) once made the writer raise instead of answering."""
    for garbled in ("^05010", "00 4010", "004010*X"):
        outcome = InterchangeOutcome(isa(version="00501", delimiters=D5010),
                                     [one_set_group(header=gs(version=garbled))])
        assert _kinds(outcome) == [("997", "004010")]


def test_type_setting_and_version_override_win_over_gs08() -> None:
    outcome = InterchangeOutcome(isa(), [one_set_group()])
    assert _kinds(outcome, type="999") == [("999", "005010X231A1")]
    assert _kinds(outcome, type="none") == []
    assert _kinds(outcome, version="004030") == [("997", "004030")]
    assert _kinds(outcome, version="005010") == [("999", "005010")]


def test_one_acknowledgment_per_functional_group() -> None:
    header = isa()
    groups = [one_set_group(header=gs(header, control="1")),
              one_set_group(header=gs(header, control="2", functional_id="IN"), set_id="810")]
    acks = build_acknowledgments(InterchangeOutcome(header, groups), AcknowledgmentSettings(),
                                 now=NOW, next_control_number=counter())
    assert [(a.acknowledged_group, only(a, "AK1").elements) for a in acks] == [
        ("1", ["PO", "1"]), ("2", ["IN", "2"])]
    assert [(a.interchange_control_number, a.group_control_number) for a in acks] == [
        (1, 1), (2, 2)]


def test_005010_ack_echoes_gs08_in_ak103_and_st03_in_ak203_and_sets_its_own_st03() -> None:
    group = one_set_group(header=gs5010("005010X222A1"), set_id="837", st03="005010X222A1")
    for kind, gs08 in (("999", "005010X231A1"), ("997", "005010X230")):
        ack = build(kind, group)
        sets, _ = read_back(ack)
        assert sets[0].implementation_reference == gs08
        assert only(ack, "AK1").elements == ["HC", "42", "005010X222A1"]
        assert only(ack, "AK2").elements == ["837", "0001", "005010X222A1"]


def test_004010_997_has_no_ak103_ak203_or_st03() -> None:
    ack = build("997", one_set_group(st03="X"))
    sets, _ = read_back(ack)
    assert sets[0].implementation_reference == ""
    assert only(ack, "AK1").elements == ["PO", "42"]
    assert only(ack, "AK2").elements == ["850", "0001"]


# --- envelope mirroring ---------------------------------------------------------------------

def test_envelope_mirrors_the_inbound_ids_qualifiers_version_and_usage() -> None:
    ack = build("997", one_set_group())
    isa_fields, gs_fields = envelope(ack)
    assert isa_fields[5:9] == ["01", "US123456789    ", "ZZ", "PARTNER        "]
    assert isa_fields[9:11] == ["240506", "0708"]
    assert isa_fields[11:16] == ["U", "00401", "000000001", "0", "T"]
    assert isa_fields[16].startswith(">")
    assert gs_fields[:8] == ["GS", "FA", "OURAPP", "PARTAPP", "20240506", "0708", "1", "X"]


def test_envelope_mirrors_the_inbound_delimiters() -> None:
    odd = Delimiters("|", "<", "!", "\n", "")
    ack = build("999", one_set_group(
        element_issue(ElementError.INVALID_CODE, component_position=2),
        header=gs(isa(version="00501", delimiters=odd), version="005010")))
    assert ack.text.startswith("ISA|00|")
    assert ack.text[82:84] == "!|" and ack.text[104:106] == "<\n"
    assert "IK4|3<2|324|7|PO#1\n" in ack.text
    assert "~" not in ack.text


def test_non_ascii_delimiters_are_replaced_so_acks_stay_ascii() -> None:
    odd = Delimiters("*", ":", None, "\u2026", "\r\n")
    ack = build("997", one_set_group(header=gs(isa(delimiters=odd))))
    assert ack.text.isascii()
    assert "AK1*PO*42~\r\n" in ack.text
    read_back(ack)


def test_control_numbers_come_from_the_callers_allocator() -> None:
    numbers = {"interchange": 77, "group": 5, "transaction": 9}
    ack = build_997(one_set_group(), now=NOW, next_control_number=lambda kind: numbers[kind])
    isa_fields, gs_fields = envelope(ack)
    assert isa_fields[13] == "000000077" and gs_fields[6] == "5"
    assert (ack.interchange_control_number, ack.group_control_number) == (77, 5)
    assert ack.transaction_control_number == "0009"
    assert ack.text.rstrip().endswith("GE*1*5~\nIEA*1*000000077~")


# --- never an acknowledgment of an acknowledgment ------------------------------------------

def test_no_997_or_999_for_a_group_of_functional_acknowledgments() -> None:
    fa = one_set_group(header=gs(functional_id="FA"), set_id="997")
    sneaky = one_set_group(header=gs(functional_id="PO"), set_id="999")
    outcome = InterchangeOutcome(isa(), [fa, sneaky, one_set_group()])
    acks = build_acknowledgments(outcome, AcknowledgmentSettings(type="997"), now=NOW,
                                 next_control_number=counter())
    assert [a.kind for a in acks] == ["997"]
    assert only(acks[0], "AK1").elements[0] == "PO"


def test_no_ta1_answers_an_interchange_of_ta1s_even_when_asked_or_broken() -> None:
    broken = [issue(Level.INTERCHANGE, TA1Note.INVALID_GROUP_COUNT)]
    for issues in ([], broken):
        outcome = InterchangeOutcome(isa(ack_requested="1"), [], issues, ta1_count=1)
        for setting in ("on_request", "always", "on_error"):
            acks = build_acknowledgments(outcome, AcknowledgmentSettings(ta1=setting),
                                         now=NOW, next_control_number=counter())
            assert acks == []


def test_acks_we_build_are_not_acknowledged_when_read_back() -> None:
    ack = build("997", one_set_group(element_issue(ElementError.INVALID_CODE)))
    sets, _ = read_back(ack)
    group = GroupOutcome(sets[0].group, [TransactionOutcome("997", sets[0].control_number)], [], 1)
    outcome = InterchangeOutcome(sets[0].group.interchange, [group])
    assert build_acknowledgments(outcome, AcknowledgmentSettings(ta1="on_request"), now=NOW,
                                 next_control_number=counter()) == []


# --- round trip and third-party readers -----------------------------------------------------

def _all_scenarios() -> list[Acknowledgment]:
    out: list[Acknowledgment] = []
    for kind in ("997", "999"):
        for header in (gs(), gs5010()):
            out.append(build(kind, one_set_group(header=header)))
            out.append(build(kind, one_set_group(
                *(element_issue(c) for c in codes_of(ElementError)),
                *(segment_issue(c, segment_position=4 + n)
                  for n, c in enumerate(codes_of(SegmentError))),
                *(issue(Level.TRANSACTION, c) for c in codes_of(SetError)),
                header=header)))
            out.append(build(kind, GroupOutcome(header, [
                TransactionOutcome("850", f"{n:04d}") for n in range(1, 4)],
                [issue(Level.GROUP, c) for c in codes_of(GroupError)], None)))
    for note in codes_of(TA1Note):
        out.append(build_ta1(isa(), note, now=NOW, next_control_number=counter()))
    return out


def test_pyx12_reads_every_ack_we_build_without_envelope_count_or_control_errors() -> None:
    for ack in _all_scenarios():
        assert pyx12_errors(ack.text) == [], ack.text


def test_every_ack_we_build_reads_back_cleanly_and_parses_to_its_own_status() -> None:
    for ack in _all_scenarios():
        if ack.kind == "TA1":
            assert parse_ta1(_ta1_segments(ack)[0]).ack_code == ack.status
            continue
        sets, _ = read_back(ack)
        parsed = parse_functional_ack(sets[0])
        assert parsed.status == ack.status
        assert parsed.problems == []


# --- end to end over the third-party corpus ------------------------------------------------

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"


def _outcomes(data: bytes) -> list[InterchangeOutcome]:
    """Reader events folded into outcomes the way the pipeline does (no validation here)."""
    out: list[InterchangeOutcome] = []
    groups: list[GroupOutcome] = []
    current: list[TransactionOutcome] = []
    for event in iter_events(data):
        if isinstance(event, TransactionSet):
            current.append(TransactionOutcome(event.set_id, event.control_number,
                                              event.implementation_reference, event.issues))
        elif isinstance(event, GroupEnd):
            count = event.trailer.get(1) if event.trailer else ""
            groups.append(GroupOutcome(event.header, current, list(event.issues),
                                       int(count) if count.isdigit() else None))
            current = []
        elif isinstance(event, InterchangeEnd):
            out.append(InterchangeOutcome(event.header, groups,
                                          [*event.header.issues, *event.issues],
                                          len(event.ta1_segments)))
            groups, current = [], []
    return out


def _corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.glob("*/*") if p.is_file() and p.suffix != ".tsv")


@pytest.mark.corpus
@pytest.mark.parametrize("path", _corpus_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_acks_for_every_corpus_file_read_cleanly_in_pyx12_and_our_reader(path: Path) -> None:
    for outcome in _outcomes(path.read_bytes()):
        acks = build_acknowledgments(outcome, AcknowledgmentSettings(ta1="always"), now=NOW,
                                     next_control_number=counter())
        if outcome.carries_only_ta1:
            assert acks == []
        for ack in acks:
            if outcome.header.version in ("00401", "00501"):  # the only ISA12 pyx12 knows
                assert pyx12_errors(ack.text) == [], ack.text
            if ack.kind == "TA1":
                _ta1_segments(ack)
            else:
                read_back(ack)
                assert outcome.header.control_number == ack.acknowledged_interchange


@pytest.mark.corpus
@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is absent")
def test_corpus_810_with_wrong_se01_is_rejected_with_ak502_4() -> None:
    (outcome,) = _outcomes((CORPUS / "810/stupidedi__ghx_sample.810").read_bytes())
    acks = build_acknowledgments(outcome, AcknowledgmentSettings(), now=NOW,
                                 next_control_number=counter())
    assert [a.kind for a in acks] == ["997"]
    assert only(acks[0], "AK5").elements == ["R", SetError.SEGMENT_COUNT_MISMATCH]
    assert only(acks[0], "AK9").elements == ["R", "1", "1", "0"]


@pytest.mark.corpus
@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is absent")
def test_corpus_850_with_iea02_not_matching_isa13_gets_a_ta1_rejection_only() -> None:
    (outcome,) = _outcomes((CORPUS / "850/EDI.Net__x12.850.edi").read_bytes())
    acks = build_acknowledgments(outcome, AcknowledgmentSettings(), now=NOW,
                                 next_control_number=counter())
    assert [(a.kind, a.status) for a in acks] == [("TA1", "R")]
    assert _ta1_segments(acks[0])[0].elements[3:] == ["R", TA1Note.CONTROL_NUMBER_MISMATCH]
