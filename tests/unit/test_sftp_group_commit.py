"""Concurrent SFTP closes share one intake transaction; one refused close fails only itself."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.store.db import Database
from gateway.store.enums import PartnerStatus
from gateway.store.models import Partner
from gateway.transports.sftp.group_commit import GroupCommit


def _add_partner(name: str, sessions: list[int]) -> Any:
    def work(session: Session) -> str:
        sessions.append(id(session))
        if name == "refused":
            raise ValueError("refused upload")
        session.add(Partner(id=name, name=name, status=PartnerStatus.TEST, current_version=0))
        session.flush()
        return name

    return work


def test_closes_waiting_together_commit_in_one_transaction_and_a_refused_one_fails_alone(
    sqlite_database: Database,
) -> None:
    group = GroupCommit(sqlite_database)
    release, started = threading.Event(), threading.Event()
    sessions: list[int] = []

    def blocking(session: Session) -> str:
        started.set()
        release.wait(5)
        return "first"

    with ThreadPoolExecutor(6) as pool:
        first = pool.submit(group.run, blocking)
        assert started.wait(5)  # the thread is busy: the next closes queue up meanwhile
        names = ["p1", "p2", "refused", "p3"]
        futures = [pool.submit(group.run, _add_partner(name, sessions)) for name in names]
        deadline = time.monotonic() + 5
        while group.waiting() < len(names) and time.monotonic() < deadline:
            time.sleep(0.01)
        release.set()
        assert first.result(5) == "first"
        assert [f.result(5) for f in futures if f is not futures[2]] == ["p1", "p2", "p3"]
        with pytest.raises(ValueError, match="refused upload"):
            futures[2].result(5)
    group.stop()
    # Together in one session until the refused one failed the group, then each alone.
    assert len(sessions) == 3 + 4 and len(set(sessions[:3])) == 1
    with sqlite_database.unit_of_work(read_only=True) as session:
        assert session.scalar(select(func.count()).select_from(Partner)) == 3


def test_a_lone_close_commits_at_once(sqlite_database: Database) -> None:
    group = GroupCommit(sqlite_database)
    sessions: list[int] = []
    assert group.run(_add_partner("alone", sessions)) == "alone"
    group.stop()
    with sqlite_database.unit_of_work(read_only=True) as session:
        assert session.scalar(select(Partner.id)) == "alone"
