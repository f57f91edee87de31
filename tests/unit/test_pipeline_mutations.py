"""Mutated input gives coded errors, never an exception, anywhere in read → validate → translate → ack."""

from __future__ import annotations

from datetime import datetime

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.conftest import FIXTURES
from translators.pipeline import AckContext, counter_from, translate

VALID = [(FIXTURES / name).read_bytes() for name in (
    "po_004010.x12", "po_005010.x12", "poack_004010.x12", "asn_004010.x12", "invoice_004010.x12")]
DELIMITERS = b"*~>^:\n\r|'"


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid fixture with a few random byte edits, insertions, deletions or a truncation."""
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(["replace", "insert", "delete", "truncate", "delimiter"]))
        if kind == "replace":
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 30))]
        elif kind == "truncate":
            del data[at:]
        else:
            data[at] = draw(st.sampled_from(DELIMITERS))
    return bytes(data)


def run(data: bytes) -> None:
    """Translate with acknowledgments and serialise the report, as the CLI and workers do."""
    report = translate(data, acks=AckContext(datetime(2026, 11, 22), counter_from(1)))
    report.to_dict()


@settings(max_examples=300, deadline=None)
@given(data=mutated())
@example(  # found by hypothesis: a repetition separator in GS08 reached the 997's envelope
    data=(FIXTURES / "po_005010.x12").read_bytes().replace(b"*X*005010", b"*X*^05010", 1)
)
def test_any_mutation_is_reported_never_raised(data: bytes) -> None:
    run(data)


@settings(max_examples=100, deadline=None)
@given(fixture=st.sampled_from(VALID), data=st.data())
def test_removing_any_segment_terminator_is_rejected(fixture: bytes, data: st.DataObject) -> None:
    positions = [i for i, b in enumerate(fixture) if b in b"~'"][1:]  # keep the ISA's own
    at = data.draw(st.sampled_from(positions))
    report = translate(fixture[:at] + fixture[at + 1:])
    assert not report.accepted


@settings(max_examples=100, deadline=None)
@given(fixture=st.sampled_from(VALID), data=st.data())
def test_dropping_any_segment_is_rejected(fixture: bytes, data: st.DataObject) -> None:
    terminator = b"'" if fixture[105:106] == b"'" else b"~"
    segments = fixture.split(terminator)
    index = data.draw(st.integers(1, len(segments) - 2))  # never the ISA, never the tail
    report = translate(terminator.join(segments[:index] + segments[index + 1:]))
    assert not report.accepted
