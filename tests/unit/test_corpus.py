"""Every third-party file in ../shared/corpus goes through the pipeline without an exception.

Well-formed files translate with the right key fields (checked against the raw segments, not
against the maps); broken ones are rejected with the X12 code that names the problem.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from gateway.cli import main
from tests.conftest import CORPUS, corpus_files
from translators.pipeline import AckContext, TranslationReport, counter_from, translate
from translators.x12.reader import read_transactions

pytestmark = pytest.mark.corpus

ACCEPTED: list[tuple[str, str]] = []
# file -> the (level, code) errors it must be rejected with; ACCEPTED when it must pass.
EXPECTED: dict[str, list[tuple[str, str]]] = {
    "810/EDI.Net__x12.810a.edi": ACCEPTED,
    "810/EDI.Net__x12.810b.edi": ACCEPTED,
    "810/EDI.Net__x12.810c.edi": ACCEPTED,
    "810/X12Parser__Example2_ManualBilling.txt": ACCEPTED,
    "810/X12Parser__Example3_MultiInvoice.txt": ACCEPTED,
    "810/X12Parser__Example4_Adobe.txt": [("interchange", "017")],
    "810/X12Parser__Example5_Walmart.txt": [("interchange", "017"), ("segment", "3"), ("segment", "7")],
    "810/python-edi__test_edi.txt": ACCEPTED,
    "810/staedi__simple810.edi": ACCEPTED,
    "810/stupidedi__004010-IN810-pass-1.edi": [("element", "2")],
    "810/stupidedi__basic-invoice.edi": ACCEPTED,
    "810/stupidedi__ghx_sample.810": [("transaction", "4")],
    "850/EDI.Net__x12.850.edi": [("interchange", "001")],
    "850/EDI.Net__x12.850.issue135.edi": [
        ("element", "13"),
        ("group", "4"),
        ("interchange", "001"),
        ("transaction", "23"),
    ],
    "850/EDI.Net__x12.850a.edi": [("element", "5"), ("interchange", "001")],
    "850/EDI.Net__x12.Issue91.edi": [
        ("interchange", "001"),
        ("segment", "1"),
        ("segment", "3"),
        ("transaction", "4"),
    ],
    "850/EdiEngine__850.Composite.SLN.OK.edi": ACCEPTED,
    "850/EdiEngine__850.OK.edi": ACCEPTED,
    "850/EdiEngine__850.SyntaxNotes.ERR.edi": [("element", "2")],
    "850/X12Parser__Example1_PGWGlass.txt": ACCEPTED,
    "850/X12Parser__Example2_Adobe_TLP.txt": ACCEPTED,
    "850/X12Parser__Example3_Adobe_CLP.txt": ACCEPTED,
    "850/X12Parser__Example4_Adobe_ShrinkWrapped.txt": [("interchange", "004")],
    "850/X12Parser__From_aojuk.txt": ACCEPTED,
    "850/bootstrap-archived__input.edi": ACCEPTED,
    "850/gozer__po850.txt": [("transaction", "4")],
    "850/hedi__850_with_new_line_segment_terminator.txt": ACCEPTED,
    "850/hedi__850_with_tilde_segment_terminator.txt": ACCEPTED,
    "850/module-ballerina-edi__x12-sender.edi": [("element", "2"), ("element", "5")],
    "850/node-x12__850.edi": ACCEPTED,
    "850/node-x12__850_2.edi": ACCEPTED,
    "850/node-x12__850_3.edi": ACCEPTED,
    "850/node-x12__850_fat.edi": [("interchange", "025")],
    "850/stupidedi__003010-PO850-fail-1.edi": [("transaction", "4")],
    "850/stupidedi__003050-PO850-pass-1.edi": ACCEPTED,
    "850/stupidedi__004010-PO850-pass-1.edi": ACCEPTED,
    "850/stupidedi__basic-po.edi": ACCEPTED,
    "850/stupidedi__taxexempt-po.edi": ACCEPTED,
    "850/x12-types__004010_850.edi": ACCEPTED,
    "855/OBOE__lfTestCase.edi": ACCEPTED,
    "855/X12Parser__Example1_Adobe.txt": ACCEPTED,
    "855/node-x12__855.edi": ACCEPTED,
    "855/staedi__multi-tx-transaction-type.edi": ACCEPTED,
    "855/stupidedi__004010-PR855-fail-2.edi": [("element", "7"), ("interchange", "015")],
    "855/stupidedi__004010-PR855-pass-1.edi": ACCEPTED,
    "855/stupidedi__basic-po-ack-accepted.edi": ACCEPTED,
    "855/stupidedi__basic-po-ack-rejected.edi": ACCEPTED,
    "855/stupidedi__po-ack-ship-details.edi": ACCEPTED,
    "856/EdiEngine__856.Crossdock.OK.edi": ACCEPTED,
    "856/X12Parser__Example1.txt": ACCEPTED,
    "856/X12Parser__Example2.txt": ACCEPTED,
    "856/X12Parser__Example3.txt": ACCEPTED,
    "856/X12Parser__Example4.txt": [("element", "5")],
    "856/X12Parser__FromGregarican.txt": ACCEPTED,
    "856/X12Parser__edi1Source.txt": ACCEPTED,
    "856/gozer__asn856.txt": [("interchange", "001")],
    "856/stupidedi__004010-SH856-fail-2.edi": [
        ("element", "3"),
        ("element", "5"),
        ("element", "6"),
        ("interchange", "013"),
        ("segment", "7"),
        ("transaction", "4"),
    ],
    "856/stupidedi__004010-SH856-pass-1.edi": ACCEPTED,
    "856/x12-types__004060_856.edi": ACCEPTED,
    "997/edi-x12__997.edi": ACCEPTED,
    "997/staedi__empty997.edi": [("segment", "3"), ("transaction", "5")],
    "997/staedi__extraDelimiter997.edi": [
        ("element", "12"),
        ("element", "13"),
        ("element", "6"),
        ("element", "7"),
    ],
    "997/staedi__invalid997.edi": [("element", "5"), ("element", "7")],
    "997/staedi__invalid997_min.edi": [("element", "7"), ("group", "4"), ("interchange", "024")],
    "997/staedi__optionalInterchangeServices.edi": ACCEPTED,
    "997/staedi__simple997.edi": ACCEPTED,
    "997/stupidedi__004010-FA997-pass-1.edi": ACCEPTED,
    "997/stupidedi__005010-X230-FA997-pass-1.edi": [("input", "024")],
    "997/stupidedi__response-to-functional-group-containing-837s.edi": ACCEPTED,
    "999/X12Parser__DHS_Wisconsin_Sample.txt": [("element", "4")],
    "999/pyx12__834_ls_le_ls_5010.999.txt": ACCEPTED,
    "999/pyx12__834_lui_id_5010.999.txt": ACCEPTED,
    "999/staedi__invalid999.edi": [
        ("element", "12"),
        ("element", "3"),
        ("element", "7"),
        ("segment", "2"),
        ("segment", "5"),
        ("transaction", "4"),
        ("transaction", "5"),
    ],
    "999/stupidedi__005010-X231A1-FA999-pass-1.edi": ACCEPTED,
    "999/stupidedi__X231-FA999-1-bad.txt": ACCEPTED,
    "999/x12-parser__x12_999_accepted.txt": [("interchange", "001")],
    "999/x12-parser__x12_999_rejected.txt": ACCEPTED,
    "TA1/OBOE__withTA1TestCase.edi": [("transaction", "1")],
    "TA1/X12Parser__TechnicalAcknowledgment_Sample1.txt": [("interchange", "024")],
    "TA1/staedi__x12_interchange_ack.txt": [("interchange", "021")],
    "TA1/x12-parser-library__TA1.edi": [("interchange", "021")],
    "envelope/edi-x12__trimmed-isa-heading.edi": [("interchange", "017"), ("interchange", "023")],
    "envelope/gozer__x12.no.line.break.no.delim.txt": [("interchange", "004")],
    "envelope/gozer__x12.wrong.ISA.txt": [("input", "024")],
    "mixed/staedi__invoice810_po850_dual.edi": ACCEPTED,
}

KEY_ELEMENT = {"850": ("BEG", 3), "855": ("BAK", 3), "856": ("BSN", 2), "810": ("BIG", 2)}
KEY_FIELD = {"850": "po_number", "855": "po_number", "856": "shipment_id", "810": "invoice_number"}
LINE_TAG = {"850": "PO1", "855": "PO1", "810": "IT1"}


def _name(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def _report(path: Path) -> TranslationReport:
    return translate(path.read_bytes(), acks=AckContext(datetime(2026, 11, 22, 9, 30), counter_from(1)))


def _error_codes(data: dict[str, object]) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for issue in node.get("errors", []):
                found.add((issue["level"], issue["code"]))
            for child in node.values():
                if isinstance(child, list | dict):
                    walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(data)
    return found


def test_corpus_is_present_when_shared_exists() -> None:
    if not CORPUS.is_dir():
        pytest.skip("../shared/corpus is not beside this clone")
    assert len(corpus_files()) >= 80
    assert {_name(p) for p in corpus_files()} == set(EXPECTED)


@pytest.mark.parametrize("path", corpus_files(), ids=_name)
def test_corpus_file_is_accepted_or_rejected_with_the_code_that_names_the_problem(path: Path) -> None:
    report = _report(path)
    data = report.to_dict()
    json.dumps(data)  # the report is plain JSON
    expected = EXPECTED[_name(path)]
    if expected is ACCEPTED:
        assert report.accepted, _error_codes(data)
    else:
        assert not report.accepted
        assert set(expected) <= _error_codes(data)


@pytest.mark.parametrize("path", corpus_files(), ids=_name)
def test_corpus_key_fields_come_from_the_segments_the_guides_name(path: Path) -> None:
    by_control = {}
    for _interchange, sets in _report(path).interchanges:
        for result in sets:
            by_control[(result.group.control_number, result.control_number, result.offset)] = result
    for ts in read_transactions(path.read_bytes()):
        if ts.set_id not in KEY_ELEMENT:
            continue
        result = by_control[(ts.group.control_number, ts.control_number, ts.offset)]
        assert result.document is not None
        doc = result.document.model_dump(mode="json")
        tag, position = KEY_ELEMENT[ts.set_id]
        key_segment = next((s for s in ts.segments if s.tag == tag), None)
        expected_key = key_segment.get(position) if key_segment else ""
        assert (doc.get(KEY_FIELD[ts.set_id]) or "") == expected_key.strip()
        if ts.set_id in LINE_TAG:
            assert len(doc.get("lines") or []) == sum(1 for s in ts.segments if s.tag == LINE_TAG[ts.set_id])


@pytest.mark.parametrize("path", corpus_files(), ids=_name)
def test_edigate_translate_prints_json_and_exits_0_or_1_never_a_traceback(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["translate", str(path), "--format", "json"])
    out, err = capsys.readouterr()
    assert code == (0 if EXPECTED[_name(path)] is ACCEPTED else 1)
    assert "Traceback" not in err
    assert isinstance(json.loads(out)["interchanges"], list)
