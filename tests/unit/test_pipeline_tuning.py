"""current_tuning: built once per environment, rebuilt when an EDIGATE_ variable changes."""

from __future__ import annotations

import pytest

from gateway.processing.tuning import current_tuning


def test_the_same_environment_gives_the_same_tuning_and_a_change_is_seen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EDIGATE_TASK_LEASE_SECONDS", "42")
    first = current_tuning()
    assert first.task_lease_seconds == 42.0 and current_tuning() is first
    monkeypatch.setenv("EDIGATE_TASK_LEASE_SECONDS", "7")
    assert current_tuning().task_lease_seconds == 7.0
