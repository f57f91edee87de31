"""What we generate is read cleanly by pyx12, an independent X12 reader nobody here wrote."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from pyx12.x12file import X12Reader

from partner_profiles.schema import parse_profile
from tests.conftest import FIXTURES
from tests.unit.test_maps_properties import DOCUMENTS
from translators.generate import GenerationError, generate_interchange
from translators.pipeline import AckContext, counter_from, translate
from translators.settings import TranslationSettings

NOW = datetime(2026, 11, 22, 9, 30)
PROFILES = {name: parse_profile((FIXTURES / name).read_text()).translation_settings()
            for name in ("acme-retail.yaml", "acme-5010.yaml")}


def pyx12_errors(x12: str) -> list[Any]:
    """Every error pyx12's X12Reader reports while reading ``x12``."""
    reader = X12Reader(io.StringIO(x12))
    errors: list[Any] = []
    for _ in reader:
        errors.extend(reader.pop_errors())
    errors.extend(reader.pop_errors())
    return errors


def generate(docs: list[Any], settings: TranslationSettings, start: int = 7) -> str:
    """One interchange for ``docs`` with control numbers counting from ``start``."""
    return generate_interchange(docs, settings, now=NOW, interchange_control=start,
                                group_control=start, transaction_control=start)


@pytest.mark.parametrize("profile", sorted(PROFILES))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=DOCUMENTS)
def test_pyx12_reads_every_generated_interchange_without_envelope_errors(profile: str, doc: Any) -> None:
    try:
        x12 = generate([doc], PROFILES[profile])
    except GenerationError as exc:  # e.g. a line with no values: X12 has no empty segments
        assert "would carry no data" in str(exc)
        return
    assert pyx12_errors(x12) == []
    report = translate(x12.encode())
    interchange, sets = report.interchanges[0]
    assert [i for i in interchange.outcome.issues if i.is_error] == []
    assert all(not g.issues for g in interchange.outcome.groups)
    assert [s.set_id for s in sets] and not any(
        i.is_error and i.level.value == "transaction" for s in sets for i in s.issues)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_mixed_documents_go_out_as_one_group_per_type_with_consecutive_control_numbers(
        profile: str) -> None:
    docs = []
    for fixture in ("po_004010.x12", "poack_004010.x12", "asn_004010.x12", "invoice_004010.x12"):
        docs.extend(s.document for _, sets in translate((FIXTURES / fixture).read_bytes()).interchanges
                    for s in sets)
    x12 = generate(docs + docs[:1], PROFILES[profile], start=100)
    assert pyx12_errors(x12) == []
    report = translate(x12.encode(), acks=AckContext(NOW, counter_from(1)))
    assert report.accepted, report.to_dict()
    interchange, sets = report.interchanges[0]
    assert [g.header.functional_id for g in interchange.outcome.groups] == ["PO", "PR", "SH", "IN"]
    assert [g.header.control_number for g in interchange.outcome.groups] == ["100", "101", "102", "103"]
    assert sorted(s.control_number for s in sets) == ["0100", "0101", "0102", "0103", "0104"]


def test_our_acknowledgments_are_read_cleanly_by_pyx12() -> None:
    for fixture in ("po_004010.x12", "po_005010.x12", "broken_counts.x12"):
        report = translate((FIXTURES / fixture).read_bytes(), acks=AckContext(NOW, counter_from(1)))
        assert report.acknowledgments
        for ack in report.acknowledgments:
            assert pyx12_errors(ack.text) == [], ack.text


def test_a_document_part_that_would_make_an_empty_segment_is_refused_not_written() -> None:
    po = next(s.document for _, sets in translate((FIXTURES / "po_004010.x12").read_bytes()).interchanges
              for s in sets)
    assert po is not None
    empty_line = po.lines[0].model_copy(update={  # type: ignore[attr-defined]
        "line_number": None, "quantity": None, "uom": None, "unit_price": None,
        "item": po.lines[0].item.model_copy(update={  # type: ignore[attr-defined]
            "upc": None, "vendor_part": None, "buyer_part": None, "description": None, "ids": []})})
    broken = po.model_copy(update={"lines": [empty_line]})
    with pytest.raises(GenerationError, match="PO1 would carry no data"):
        generate([broken], PROFILES["acme-retail.yaml"])


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_a_document_mapped_already_is_written_as_if_it_were_mapped_here(profile: str) -> None:
    from tests.conftest_outbound import sample_document
    from translators.canonical import parse_document
    from translators.maps import from_canonical

    settings = PROFILES[profile]
    assert settings.envelope is not None
    docs = [parse_document(sample_document(kind)) for kind in ("order_acknowledgment", "invoice")]
    mapped = [from_canonical(doc, settings.mapping, version=settings.envelope.version) for doc in docs]
    assert generate([mapped[0], docs[1]], settings) == generate(docs, settings)
