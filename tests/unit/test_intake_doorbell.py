"""The intake doorbell: received messages queued together are published as one task, never waiting to fill."""

from __future__ import annotations

import time
import uuid
from typing import Any

from gateway.archive.blob_store import BlobRef
from gateway.intake.doorbell import Doorbell
from gateway.intake.service import Received
from gateway.processing.publisher import PROCESS_MESSAGE, RecordingPublisher


def _received(n: int) -> Received:
    return Received(uuid.UUID(int=n), f"corr-{n}", BlobRef("0" * 64, 1), outbox_id=n)


def _wait_for(publisher: RecordingPublisher, count: int) -> None:
    deadline = time.monotonic() + 5
    while len(publisher.published) < count and time.monotonic() < deadline:
        time.sleep(0.005)


def _ids(kwargs: dict[str, Any]) -> list[str]:
    return kwargs.get("message_ids") or [kwargs["message_id"]]


def test_a_lone_message_is_published_at_once_in_the_one_message_form() -> None:
    publisher = RecordingPublisher()
    bell = Doorbell(None, publisher, min_interval=10.0)  # type: ignore[arg-type]  # no db: publishing works
    started = time.monotonic()
    bell.ring(_received(1))
    _wait_for(publisher, 1)
    assert time.monotonic() - started < 1.0  # an interval only ever follows a publish
    assert publisher.published == [(PROCESS_MESSAGE, {"message_id": str(uuid.UUID(int=1)), "outbox_id": 1})]
    bell.stop()


def test_messages_arriving_within_the_interval_after_a_publish_share_one_task() -> None:
    publisher = RecordingPublisher()
    bell = Doorbell(None, publisher, min_interval=0.3)  # type: ignore[arg-type]
    bell.ring(_received(1))
    _wait_for(publisher, 1)
    for n in range(2, 6):
        bell.ring(_received(n))
    _wait_for(publisher, 2)
    bell.stop()
    assert [name for name, _ in publisher.published] == [PROCESS_MESSAGE, PROCESS_MESSAGE]
    assert _ids(publisher.published[1][1]) == [str(uuid.UUID(int=n)) for n in range(2, 6)]


def test_a_batch_is_capped_and_stop_publishes_what_is_queued() -> None:
    publisher = RecordingPublisher()
    bell = Doorbell(None, publisher, batch_size=3, min_interval=0.2)  # type: ignore[arg-type]
    bell.ring(_received(1))
    _wait_for(publisher, 1)
    for n in range(2, 9):
        bell.ring(_received(n))
    bell.stop()
    published = [_ids(kwargs) for _, kwargs in publisher.published]
    assert [len(ids) for ids in published] == [1, 3, 3, 1]
    assert [i for ids in published for i in ids] == [str(uuid.UUID(int=n)) for n in range(1, 9)]
