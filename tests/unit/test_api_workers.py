"""How many API processes ``edigate api``/``serve`` run, and the socket they share."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from gateway.cli import UsageError
from gateway.cli.api_processes import listening_socket
from gateway.cli.server_commands import API_WORKERS_VARIABLE, MAX_DEFAULT_API_WORKERS, api_worker_count


@pytest.fixture(autouse=True)
def no_worker_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(API_WORKERS_VARIABLE, raising=False)


def test_default_is_one_api_process_per_usable_core_up_to_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1})
    assert api_worker_count() == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(64)))
    assert api_worker_count() == MAX_DEFAULT_API_WORKERS
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0})
    assert api_worker_count() == 1


def test_the_variable_overrides_the_default_and_the_option_overrides_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(API_WORKERS_VARIABLE, "6")
    assert api_worker_count() == 6
    assert api_worker_count(3) == 3


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_worker_count_that_is_not_a_positive_whole_number_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(API_WORKERS_VARIABLE, value)
    with pytest.raises(UsageError, match=API_WORKERS_VARIABLE):
        api_worker_count()
    with pytest.raises(UsageError, match="--workers"):
        api_worker_count(0)


def test_serve_refuses_a_bad_worker_count_before_starting_anything(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.cli.server_commands import main

    monkeypatch.setenv("EDIGATE_DATA_DIR", str(tmp_path))  # restored afterwards: serve sets it
    monkeypatch.setenv(API_WORKERS_VARIABLE, "none")
    assert main(["serve"]) == 2
    assert API_WORKERS_VARIABLE in capsys.readouterr().err
    assert not any(os.scandir(tmp_path))  # no database was made


async def _accepted_socket_options(sock: socket.socket) -> tuple[int, int]:
    """Accept one connection on ``sock`` with the running loop; its (proto, TCP_NODELAY)."""
    accepted: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            conn = transport.get_extra_info("socket")
            accepted.set_result((conn.proto, conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)))
            transport.close()

    server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
    port = sock.getsockname()[1]
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return await asyncio.wait_for(accepted, 5)
    finally:
        writer.close()
        server.close()


@pytest.mark.parametrize("share_port", [False, True])
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_connections_accepted_on_an_api_socket_have_nagle_off(loop: str, share_port: bool) -> None:
    """What uvicorn#3149 lost with ``--workers``: each keep-alive request then waits ~43 ms."""
    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    else:
        runner = asyncio.Runner()
    sock = listening_socket("127.0.0.1", 0, share_port=share_port)
    with runner:
        proto, nodelay = runner.run(_accepted_socket_options(sock))
    assert nodelay != 0
    if loop == "asyncio":
        assert proto == socket.IPPROTO_TCP


def test_the_listening_socket_is_tcp_bound_and_inheritable_by_worker_processes() -> None:
    sock = listening_socket("localhost", 0)
    try:
        assert sock.type == socket.SOCK_STREAM
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockname()[1] != 0
        assert sock.get_inheritable()
    finally:
        sock.close()


def test_each_api_process_gets_a_socket_of_its_own_on_the_same_port() -> None:
    first = listening_socket("127.0.0.1", 0, share_port=True)
    port = first.getsockname()[1]
    second = listening_socket("127.0.0.1", port, share_port=True)
    try:
        assert second.getsockname()[1] == port
        first.listen()
        second.listen()
        with pytest.raises(OSError):  # without SO_REUSEPORT a listening port stays taken
            listening_socket("127.0.0.1", port).close()
    finally:
        first.close()
        second.close()
