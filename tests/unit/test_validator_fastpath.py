"""The regex fast path and the precise slow path must agree on every ASCII segment."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from translators.schemas import segment_dictionary
from translators.validation._compile import CSeg, Delims, compile_segment
from translators.validation._elements import element_problems

DELIMS = Delims("*", ">", "^", "~")
SAMPLES = [
    "850*0001", "00*SA*PO123**20240115", "BY*USD*1.2345", "DP*038", "DP**DESC*VN>1>PO>2",
    "BD*JOHN*TE*5551234", "01*3*2**30**60", "002*20240201*1230", "002***ZZ*D8*20240101",
    "****M*UPS", "ST*STORE*92*0001", "SPRINGFIELD*IL*62701*US", "1*3*EA*12.34**UP*0123*VN*A-1",
    "F****WIDGET", "12*1*EA", "1*-12345678.90", "1**I*5*EA>1", "1**S", "1*2*EA", "PO1",
    "CTN25*2", "B*2*UPSN", "GM*0001", "SA*4*2", "A*1*1*1", "BEG*2**8", "2>1*92*7*QQ",
    "20240101*INV1*20231231*PO1", "1250", "1*3*EA*12.34", "ZZ*X>Y", "WT*1*LB",
]
NOISE = ["", "A", "12", "-1", "1.5", "-.5", "1.", ".", "1.2.3", "20240230", "20240229", "240229",
         "230229", "2359", "2400", "123456", "12345", "X" * 50, "EA", "QQ", "1>2", "1^2", "^",
         ">", " ", "a b", "0001", "99999999999999999999", "-", "ZZ", "SA", "N/A", "1-2"]


def fast_ok(cseg: CSeg, elements: Sequence[str]) -> bool:
    return cseg.accepts(elements)


def slow_ok(cseg: CSeg, elements: list[str]) -> bool:
    found: list[str] = []
    element_problems(elements, cseg, DELIMS, lambda code, *_: found.append(code))
    return not found


def deferred(cseg: CSeg, elements: list[str]) -> bool:
    """Cases left to the slow path on purpose: empty trailing elements beyond the
    definition, and composites with syntax notes of their own."""
    assert cseg.defn.elements is not None
    if len(elements) > len(cseg.defn.elements):
        return True
    return any(r.composite is not None and r.composite.syntax and r.position <= len(elements)
               and elements[r.position - 1] for r in cseg.defn.elements)


def segments() -> list[CSeg]:
    out = []
    for defn in segment_dictionary("005010").values():
        if defn.elements is not None:
            out.append(compile_segment(defn, DELIMS, None))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_fast_path_accepts_exactly_what_the_slow_path_accepts(seed: int) -> None:
    rng = random.Random(seed)
    checked = 0
    for cseg in segments():
        for _ in range(150):
            elements = rng.choice(SAMPLES).split("*")
            for _ in range(rng.randint(0, 3)):
                k = rng.randrange(len(elements) + 2)
                while len(elements) <= k:
                    elements.append("")
                elements[k] = rng.choice(NOISE)
            if rng.random() < 0.3:
                while elements and elements[-1] == "":
                    elements.pop()
            if not elements:
                continue
            fast, slow = fast_ok(cseg, elements), slow_ok(cseg, elements)
            if fast != slow and not (slow and deferred(cseg, elements)):
                raise AssertionError((cseg.tag, elements, fast, slow))
            checked += 1
    assert checked > 1000
