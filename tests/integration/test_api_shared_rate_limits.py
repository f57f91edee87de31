"""Rate limits shared through a real Redis: API processes spend from one budget per key."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient

from gateway.api import shared_buckets
from gateway.api.app import create_app
from gateway.api.shared_buckets import KEY_PREFIX, SharedTokenBuckets, shared_buckets_factory
from gateway.settings import Settings
from tests.conftest_api import API, ApiKeys, settings_with_key

pytestmark = pytest.mark.integration


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


def test_two_limiters_on_one_redis_share_a_key_s_budget(client: redis.Redis) -> None:
    first, second = (SharedTokenBuckets(client, "requests", 0.5, 3) for _ in range(2))
    spent = [first.take("key-1"), second.take("key-1"), first.take("key-1")]
    assert spent == [0.0, 0.0, 0.0]
    wait = second.take("key-1")
    assert 1.9 < wait <= 2.0  # one token at 0.5 per second
    assert first.take("key-2") == 0.0  # other keys have their own bucket


def test_wait_spends_nothing_and_leaves_no_bucket_behind(client: redis.Redis) -> None:
    buckets = SharedTokenBuckets(client, "failed-logins", 1.0, 1)
    assert buckets.wait("10.0.0.1") == 0.0
    assert not client.exists(f"{KEY_PREFIX}:failed-logins:10.0.0.1")
    buckets.take("10.0.0.1")
    assert 0.9 < buckets.wait("10.0.0.1") <= 1.0
    assert 0.9 < buckets.wait("10.0.0.1") <= 1.0  # looking twice did not spend


def test_an_idle_bucket_expires_once_it_would_be_full_again(client: redis.Redis) -> None:
    buckets = SharedTokenBuckets(client, "requests", 2.0, 4)
    buckets.take("k", 4)
    ttl = client.pttl(f"{KEY_PREFIX}:requests:k")
    assert 2000 < ttl <= 3000  # 4 tokens at 2 per second, plus a second


class SilentServer:
    """A TCP server that accepts connections and never answers (a hung Redis); counts them."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                self.accepted.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()
        for connection in self.accepted:
            connection.close()


def test_without_redis_the_process_limits_alone_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    hung = SilentServer()
    buckets = shared_buckets_factory(f"redis://127.0.0.1:{hung.port}/0")("requests", 0.5, 2)
    try:
        with caplog.at_level(logging.WARNING, logger=shared_buckets.__name__):
            assert [buckets.take("k"), buckets.take("k")] == [0.0, 0.0]  # the local bucket
            assert buckets.take("k") > 0
        assert len(hung.accepted) == 1  # after the first timeout Redis was left alone
    finally:
        hung.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "per process" in warnings[0]


@pytest.fixture
def api_settings(embedded_settings: Settings, redis_url: str) -> Settings:
    """Three requests at once per key, then one every 100 s, shared through the test Redis."""
    return settings_with_key(embedded_settings.data_dir, api_rate_per_second=0.01, api_rate_burst=3,
                             api_failed_logins_per_minute=2, rate_limit_url=redis_url)


def test_two_api_processes_admit_a_key_s_burst_once(
    api_app: FastAPI, api_settings: Settings, api_keys: ApiKeys
) -> None:
    other = create_app(api_settings)  # a second process's app: nothing shared but Redis
    headers = api_keys.headers("erp")
    try:
        with TestClient(api_app) as one, TestClient(other) as two:
            statuses = [client.get(f"{API}/schemas", headers=headers).status_code
                        for client in (one, two, one, two)]
            assert statuses == [200, 200, 200, 429]
            bad = {"Authorization": "Bearer not-a-key"}
            assert [c.get(f"{API}/schemas", headers=bad).status_code for c in (one, two)] == [401, 401]
            locked = one.get(f"{API}/schemas", headers=api_keys.headers("auditor"))
            assert locked.status_code == 429 and "failed logins" in locked.json()["error"]["message"]
    finally:
        other.state.db.dispose()
