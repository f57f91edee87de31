"""The archive audit: every catalogued blob re-hashed, the event chain walked end to end."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from gateway.archive.blob_store import BlobProblem, BlobRef, BlobStore
from gateway.store.blobs import iter_blob_refs
from gateway.store.db import Database
from gateway.store.events import ChainBreak, verify_chain
from gateway.store.models import EventChainHead


@dataclass
class ArchiveReport:
    """What ``verify_archive`` checked and what it found broken."""

    blobs_checked: int = 0
    events_checked: int = 0
    blob_problems: list[BlobProblem] = field(default_factory=list)
    chain_breaks: list[ChainBreak] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is broken."""
        return not self.blob_problems and not self.chain_breaks

    def lines(self) -> list[str]:
        """A human-readable account, one finding per line."""
        found = [str(problem) for problem in self.blob_problems]
        found += [str(chain_break) for chain_break in self.chain_breaks]
        status = "OK" if self.ok else f"BROKEN ({len(found)} problem(s))"
        summary = (
            f"archive {status}: {self.blobs_checked} blob(s) re-hashed, "
            f"{self.events_checked} event(s) in the chain"
        )
        return [*found, summary]


def verify_archive(database: Database, store: BlobStore) -> ArchiveReport:
    """Recompute every catalogued blob's hash and size, then verify the event chain."""
    report = ArchiveReport()

    def counted(refs: Iterator[BlobRef]) -> Iterator[BlobRef]:
        for ref in refs:
            report.blobs_checked += 1
            yield ref

    with database.unit_of_work(read_only=True) as session:
        report.blob_problems = store.verify(counted(iter_blob_refs(session)))
    with database.unit_of_work(read_only=True) as session:
        report.chain_breaks = verify_chain(session)
        head = session.get(EventChainHead, 1)
        report.events_checked = head.last_event_id if head is not None else 0
    return report
