"""``edigate api --workers 2``: two uvicorn processes sharing the port, connections spread over both,
keep-alive without Nagle stalls."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _api_processes(pid: int) -> list[int]:
    """The uvicorn worker processes (multiprocessing spawns) under a supervisor."""
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(int(child))
        except OSError:
            continue
    return found


def _connections(pids: list[int], port: int) -> dict[int, int]:
    """How many established connections to ``port`` each process holds."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":  # local port, ESTABLISHED
            inodes.add(f"socket:[{fields[9]}]")
    held = {}
    for pid in pids:
        links = []
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                links.append(str(fd.readlink()))
            except OSError:
                continue
        held[pid] = sum(link in inodes for link in links)
    return held


def _running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def two_worker_api(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``edigate api --workers 2`` on the embedded default in ``tmp_path``; the process and base URL."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDIGATE_")}
    env.update({"EDIGATE_DATA_DIR": str(tmp_path / "data"), "EDIGATE_SECRET_KEY": "t" * 40})
    command = [sys.executable, "-m", "gateway.cli.server_commands", "api", "--workers", "2"]
    process = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while len(_api_processes(process.pid)) < 2 or not _answers(base):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("edigate api --workers 2 did not start")
            time.sleep(0.2)
        yield process, base
    finally:
        process.terminate()
        process.wait(timeout=30)


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/api/v1/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_two_api_processes_answer_keep_alive_requests_without_delayed_ack_stalls(
    two_worker_api: tuple[subprocess.Popen[bytes], str],
) -> None:
    process, base = two_worker_api
    assert len(_api_processes(process.pid)) == 2
    timings = []
    with httpx.Client(base_url=base, timeout=10) as client:
        for _ in range(30):
            started = time.perf_counter()
            assert client.get("/api/v1/healthz").status_code == 200
            timings.append(time.perf_counter() - started)
    # With Nagle on, every request after the first waits ~40 ms for the client's delayed ACK.
    assert statistics.median(timings) < 0.03


def test_keep_alive_connections_arriving_together_are_spread_over_the_api_processes(
    two_worker_api: tuple[subprocess.Popen[bytes], str],
) -> None:
    """A shared listening socket let the first idle process accept all 16 (the other idled)."""
    process, base = two_worker_api
    clients = [httpx.Client(base_url=base, timeout=10) for _ in range(16)]
    try:
        barrier = threading.Barrier(len(clients))

        def first_request(client: httpx.Client) -> None:
            barrier.wait()
            client.get("/api/v1/healthz").raise_for_status()

        threads = [threading.Thread(target=first_request, args=(client,)) for client in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        held = _connections(_api_processes(process.pid), int(base.rsplit(":", 1)[1]))
        assert sum(held.values()) == len(clients)
        assert all(count > 0 for count in held.values()), held
    finally:
        for client in clients:
            client.close()


def test_an_api_process_that_dies_is_replaced_on_its_socket(
    two_worker_api: tuple[subprocess.Popen[bytes], str],
) -> None:
    process, base = two_worker_api
    victim = _api_processes(process.pid)[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while victim in _api_processes(process.pid) or len(_api_processes(process.pid)) < 2:
        assert time.monotonic() < deadline, "no replacement process"
        time.sleep(0.2)
    # Every connection is answered, whichever socket the kernel hashes it to.
    for _ in range(20):
        with httpx.Client(base_url=base, timeout=30) as client:
            assert client.get("/api/v1/healthz").status_code == 200


def test_stopping_the_supervisor_stops_every_api_process(
    two_worker_api: tuple[subprocess.Popen[bytes], str],
) -> None:
    process, base = two_worker_api
    workers = _api_processes(process.pid)
    process.terminate()
    assert process.wait(timeout=30) == 0
    assert not any(_running(pid) for pid in workers)
    assert not _answers(base)


def test_the_embedded_broker_is_made_before_the_api_processes_first_publish(
    two_worker_api: tuple[subprocess.Popen[bytes], str], tmp_path: Path
) -> None:
    """Two processes creating the broker's table on their first publish must not race."""
    with sqlite3.connect(tmp_path / "data" / "broker.sqlite3") as broker:
        tables = {name for (name,) in broker.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "broker_messages" in tables
