"""The heap is frozen after start-up and after the first units of work, not on every one."""

from __future__ import annotations

import gc

import pytest

from gateway import runtime


def test_settling_moves_the_live_objects_out_of_the_collectors_reach() -> None:
    kept = [object() for _ in range(100)]
    before = gc.get_freeze_count()
    try:
        runtime.settle_heap()
        assert gc.get_freeze_count() >= before + len(kept)
    finally:
        gc.unfreeze()


def test_the_settler_freezes_after_the_first_unit_and_the_fiftieth(monkeypatch: pytest.MonkeyPatch) -> None:
    settled: list[int] = []
    settler = runtime.HeapSettler()
    monkeypatch.setattr(runtime, "settle_heap", lambda: settled.append(len(settled)))
    for _ in range(120):
        settler.tick()
    assert len(settled) == len(runtime.SETTLE_AFTER) == 2
