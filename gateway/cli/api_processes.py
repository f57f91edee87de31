"""The API's uvicorn processes, each accepting on a socket of its own that shares the port.

One listening socket shared by several processes balances badly: whichever process is idle
when connections arrive accepts every pending one, and keep-alive connections stay where
they landed. In the AS2 benchmark all 16 connections went to one of two processes, which ran
at one core while the other idled. With ``SO_REUSEPORT`` every process listens on a socket of
its own and the kernel spreads new connections over them (16 became 8/8, 9/7, 7/9).

The supervisor binds and listens on all the sockets (so the port is known, also for port 0,
and connections queue for a process that is still starting or restarting), gives each
process its own, restarts a process that dies, and stops them all on SIGINT or SIGTERM.
Every socket is made with ``IPPROTO_TCP`` and TCP_NODELAY: a listener made without the
protocol loses Nagle-off on its accepted connections under asyncio (Kludex/uvicorn#3149,
~43 ms per keep-alive request).
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import time
from multiprocessing.process import BaseProcess
from types import FrameType

import uvicorn
from uvicorn.config import STARTUP_FAILURE  # a process that could not start exits with it

log = logging.getLogger("uvicorn.error")
STOP_TIMEOUT_SECONDS = 20.0
BACKLOG = 2048  # uvicorn's default
WATCH_SECONDS = 0.5


def listening_socket(host: str, port: int, *, share_port: bool = False) -> socket.socket:
    """A bound TCP socket whose accepted connections get TCP_NODELAY, for uvicorn's ``sockets=``.

    Python gives an accepted socket its listener's ``proto``, and asyncio only turns Nagle off
    when that is ``IPPROTO_TCP`` (so the listener is made with it); Linux also copies
    TCP_NODELAY from the listener to accepted connections, which covers other event loops.
    ``share_port`` sets ``SO_REUSEPORT``: other such sockets of this user may bind the port.
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if share_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def serve(app: str, *, host: str, port: int, processes: int, log_level: str = "info") -> int:
    """Run uvicorn for the ``app`` factory in ``processes`` processes until interrupted; the exit status."""
    if processes == 1:
        sock = listening_socket(host, port)
        _announce(sock, 1)
        try:
            uvicorn.Server(_config(app, sock, log_level)).run(sockets=[sock])
        finally:
            sock.close()
        return 0
    sockets = [listening_socket(host, port, share_port=True)]
    port = sockets[0].getsockname()[1]  # port 0 picked one: the others join it
    sockets += [listening_socket(host, port, share_port=True) for _ in range(processes - 1)]
    for sock in sockets:
        # Listening before the processes start puts every socket in the port's group at once:
        # otherwise all connections go to the first process up while the others still import.
        sock.listen(BACKLOG)
    _announce(sockets[0], processes)
    try:
        return _supervise(app, sockets, log_level)
    finally:
        for sock in sockets:
            sock.close()


def _announce(sock: socket.socket, processes: int) -> None:
    host, port = sock.getsockname()[:2]
    plural = "es" if processes > 1 else ""
    log.info("edigate API on http://%s:%d (%d process%s)", host, port, processes, plural)


def _config(app: str, sock: socket.socket, log_level: str) -> uvicorn.Config:
    host, port = sock.getsockname()[:2]
    return uvicorn.Config(app, factory=True, host=host, port=port, log_level=log_level, access_log=False)


def _serve_one(app: str, sock: socket.socket, log_level: str) -> None:
    """One API process: uvicorn on its own socket (the target of a spawned process)."""
    uvicorn.Server(_config(app, sock, log_level)).run(sockets=[sock])


def _supervise(app: str, sockets: list[socket.socket], log_level: str) -> int:
    """Start one process per socket, restart those that die, stop all on SIGINT/SIGTERM."""
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no state from here
    stopping: list[int] = []

    def start(sock: socket.socket) -> BaseProcess:
        process = context.Process(target=_serve_one, args=(app, sock, log_level), name="edigate-api")
        process.start()
        return process

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    running = [start(sock) for sock in sockets]
    status = 0
    try:
        while not stopping:
            time.sleep(WATCH_SECONDS)
            for index, process in enumerate(running):
                if process.is_alive() or stopping:
                    continue
                if process.exitcode == STARTUP_FAILURE:
                    log.error("API process %s could not start; stopping", process.pid)
                    stopping.append(0)
                    status = 1
                    break
                log.warning("API process %s exited (%s); starting another", process.pid, process.exitcode)
                running[index] = start(sockets[index])
    finally:
        for process in running:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn finishes the requests in flight
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for process in running:
            process.join(max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status
