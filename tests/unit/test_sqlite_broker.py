"""The embedded broker: kombu publishes and consumes through one SQLite table, and keeps nothing."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from kombu import Connection, Exchange, Queue

from gateway.processing.sqla_broker import broker_url

QUEUE = Queue("inbound", Exchange("inbound", type="direct"), routing_key="inbound")


def _connection(path: Path) -> Connection:
    return Connection(broker_url(f"sqla+sqlite:///{path}"), transport_options={"polling_interval": 0.01})


def _publish(path: Path, bodies: list[int]) -> None:
    with _connection(path) as connection:
        producer = connection.Producer()
        for body in bodies:
            producer.publish({"n": body}, exchange=QUEUE.exchange, routing_key="inbound", declare=[QUEUE])


def _consume(path: Path, count: int) -> list[int]:
    got: list[int] = []
    with _connection(path) as connection, connection.SimpleQueue(QUEUE) as queue:
        for _ in range(count):
            message = queue.get(timeout=5)
            got.append(message.payload["n"])
            message.ack()
    return got


def test_messages_come_out_in_order_and_leave_the_table(tmp_path: Path) -> None:
    path = tmp_path / "broker.sqlite3"
    _publish(path, [1, 2, 3])
    assert _consume(path, 3) == [1, 2, 3]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM broker_messages").fetchone() == (0,)


def test_two_consumers_never_get_the_same_message(tmp_path: Path) -> None:
    path = tmp_path / "broker.sqlite3"
    _publish(path, list(range(200)))
    results: list[list[int]] = [[], []]
    threads = [threading.Thread(target=lambda i=i: results[i].extend(_consume(path, 100))) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results[0] + results[1]) == list(range(200))


def test_other_sqlalchemy_urls_keep_kombus_transport() -> None:
    assert broker_url("sqla+postgresql://h/db").startswith("edigate-sqla+postgresql://")
    assert broker_url("redis://h:6379/0") == "redis://h:6379/0"
