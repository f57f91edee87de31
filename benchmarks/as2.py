"""AS2 receive throughput: signed (SHA-256) + encrypted (AES-256-CBC) 850s, sync signed MDNs.

Starts the API (uvicorn, its own process, AS2 mounted at /as2) on a fresh data dir — the
embedded SQLite default, or PostgreSQL (+ Redis broker) with ``--database-url``/``--broker-url``
— stores our key pair and an AS2 partner, pre-builds the messages, then POSTs them at
concurrency 1, 4 and 16 and verifies every MDN (signature, disposition, MIC). Prints messages/s,
p50/p99 MDN latency and the CPU time per message of the server and of this client per
concurrency (CPU time, unlike wall time, holds up on a shared machine). ``--quick`` sends a few
messages (what CI runs). No worker runs: the benchmark measures what the partner waits for
(archive, commit, MDN).

``--large-mb 50`` instead sends one signed + encrypted payload of that size and prints the
server's peak RSS growth while it receives it (the target: at most 100 MB for 50 MB), after
checking its MDN and that the archived payload is the one sent.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from gateway.transports.as2.algorithms import same_mic
from gateway.transports.as2.building import BuildOptions, BuiltMessage, build_message
from gateway.transports.as2.certificates import self_signed
from gateway.transports.as2.cms import KeyPair
from gateway.transports.as2.mdn import parse_mdn

OUR_ID, PARTNER_ID = "DISTCO", "ACMEAS2"
SECRET = "benchmark-secret-key-0123456789abcdef"


def app_factory() -> Any:
    """The gateway app with the AS2 routers mounted (uvicorn ``--factory`` target)."""
    from gateway.api.app import API_PREFIX
    from gateway.cli.server_commands import app_factory as gateway_app
    from gateway.transports.as2 import management_views, views

    app = gateway_app()
    paths = {getattr(route, "path", "") for route in app.routes}
    if "/as2" not in paths:
        app.include_router(views.router)
        app.include_router(management_views.router, prefix=API_PREFIX)
    return app


def _po(n: int) -> bytes:
    segments = [
        "ISA*00*          *00*          *ZZ*ACMERETAIL     *ZZ*DISTCO         *261122*0930*U*00401*"
        f"{n:09d}*0*P*>",
        f"GS*PO*ACMERETAIL*DISTCO*20261122*0930*{n}*X*004010",
        "ST*850*0001",
        f"BEG*00*SA*PO{n:08d}**20261122",
    ]
    segments += [f"PO1*{i}*10*EA*9.99**UP*0{i:011d}" for i in range(1, 13)]
    segments += ["CTT*12", f"SE*{len(segments) - 1}*0001", f"GE*1*{n}", f"IEA*1*{n:09d}"]
    return "~\n".join(segments).encode() + b"~\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _setup(env: dict[str, str], partner: KeyPair, ours: KeyPair) -> None:
    """Migrate, store our key pair and the AS2 partner (in this process, same settings as the server)."""
    os.environ.update(env)
    from gateway.secrets import SecretBox
    from gateway.settings import Settings
    from gateway.store.db import Database
    from gateway.store.migrate import upgrade_to_head
    from gateway.transports.as2.certificates import add_key_pair, cert_pem
    from partner_profiles.service import save_profile, validate_profile_data

    settings = Settings()
    db = Database.from_settings(settings)
    upgrade_to_head(db)
    box = SecretBox.from_settings(settings)
    profile = {
        "id": "acme-retail",
        "name": "ACME Retail",
        "status": "active",
        "x12": {
            "interchange_id": {"qualifier": "ZZ", "id": "ACMERETAIL"},
            "our_id": {"qualifier": "ZZ", "id": OUR_ID},
            "version": "004010",
        },
        "transports": {
            "as2": {
                "as2_id": PARTNER_ID,
                "partner_cert": cert_pem(partner.cert),
                "sign": "sha256",
                "encrypt": "aes256-cbc",
                "mdn": {"mode": "sync", "signed": True},
            }
        },
    }
    with db.unit_of_work() as session:
        save_profile(session, validate_profile_data(profile), box=box, actor="benchmark")
        add_key_pair(
            session, name="bench", as2_id=OUR_ID, key=ours.key, cert=ours.cert, box=box, actor="benchmark"
        )
    db.dispose()


def _messages(count: int, partner: KeyPair, ours: KeyPair) -> list[BuiltMessage]:
    options = BuildOptions(sign="sha256", encrypt="aes256-cbc", mdn_signed=True, mdn_digests=("sha256",))
    return [
        build_message(
            _po(n),
            content_type="application/EDI-X12",
            filename=f"po_{n}.edi",
            as2_from=PARTNER_ID,
            as2_to=OUR_ID,
            message_id=f"<{uuid.uuid4().hex}@{PARTNER_ID}>",
            options=options,
            signer=partner,
            recipients=[ours.cert],
        )
        for n in range(1, count + 1)
    ]


def _run(
    url: str, messages: list[BuiltMessage], concurrency: int, ours: KeyPair
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    lock = threading.Lock()
    queue = list(messages)
    failures: list[str] = []

    def worker() -> None:
        with httpx.Client(timeout=60) as client:
            while True:
                with lock:
                    if not queue:
                        return
                    message = queue.pop()
                started = time.perf_counter()
                response = client.post(url, content=message.body, headers=message.headers)
                elapsed = time.perf_counter() - started
                mdn = parse_mdn(
                    response.headers.get("content-type", ""), response.content, partner_certs=[ours.cert]
                )
                ok = (
                    mdn.signed
                    and mdn.disposition.ok
                    and mdn.mic is not None
                    and same_mic(mdn.mic, message.mic)
                )
                with lock:
                    latencies.append(elapsed)
                    if not ok:
                        failures.append(f"{message.message_id}: {mdn.disposition} {mdn.mic}")

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} MDNs did not verify, e.g. {failures[0]}")
    return len(messages) / total, latencies


def _cpu_seconds(pid: int) -> float:
    """CPU (user + system) of a process and its descendants, from /proc (0 where unreadable)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for current in _tree(pid):
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _tree(pid: int) -> list[int]:
    """A process and its descendants."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text()
        except OSError:
            continue
        pending.extend(int(child) for child in children.split())
    return found


def _memory_kb(pid: int, field: str) -> int:
    """``VmRSS`` or ``VmHWM`` (peak RSS) of a process, in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def _large(
    url: str, server_pid: int, megabytes: int, partner: KeyPair, ours: KeyPair, env: dict[str, str]
) -> None:
    """Send one large signed+encrypted payload; print the server's peak RSS growth while receiving it."""
    line = b"PO1*1*10*EA*9.99**UP*012345678901~\n"
    payload = line * (megabytes * 1024 * 1024 // len(line) + 1)
    options = BuildOptions(sign="sha256", encrypt="aes256-cbc", mdn_signed=True, mdn_digests=("sha256",))
    message = build_message(
        payload,
        content_type="application/EDI-X12",
        filename="large.edi",
        as2_from=PARTNER_ID,
        as2_to=OUR_ID,
        message_id=f"<{uuid.uuid4().hex}@{PARTNER_ID}>",
        options=options,
        signer=partner,
        recipients=[ours.cert],
    )
    pids = _tree(server_pid)
    baseline = {pid: _memory_kb(pid, "VmRSS") for pid in pids}
    for pid in pids:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    started = time.perf_counter()
    response = httpx.post(url, content=message.body, headers=message.headers, timeout=600)
    elapsed = time.perf_counter() - started
    growth = max(_memory_kb(pid, "VmHWM") - baseline[pid] for pid in pids) / 1024
    mdn = parse_mdn(response.headers.get("content-type", ""), response.content, partner_certs=[ours.cert])
    if not (mdn.signed and mdn.disposition.ok and mdn.mic and same_mic(mdn.mic, message.mic)):
        raise SystemExit(f"the large message's MDN did not verify: {mdn.disposition} {mdn.mic}")
    os.environ.update({k: v for k, v in env.items() if k.startswith("EDIGATE_")})
    from sqlalchemy import select

    from gateway.settings import Settings
    from gateway.store.db import Database
    from gateway.store.models import Message

    db = Database.from_settings(Settings())
    with db.unit_of_work(read_only=True) as session:
        stored = session.scalars(select(Message.content_sha256)).all()
    db.dispose()
    if stored != [hashlib.sha256(payload).hexdigest()]:
        raise SystemExit("the archived payload is not the one sent")
    base = sum(baseline.values()) / 1024
    print(
        f"{len(payload) / 2**20:.1f} MB signed+encrypted payload "
        f"({len(message.body) / 2**20:.1f} MB on the wire): MDN verified in {elapsed:.1f} s, "
        f"archived payload identical; server peak RSS growth {growth:.1f} MB (baseline {base:.0f} MB)"
    )


def main() -> int:
    """Run the benchmark and print one line per concurrency."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few messages per level (CI)")
    parser.add_argument("--messages", type=int, default=400, help="messages per concurrency level")
    parser.add_argument("--database-url", help="PostgreSQL URL (default: the embedded SQLite)")
    parser.add_argument("--database-schema", help="PostgreSQL schema")
    parser.add_argument("--broker-url", help="Celery broker (e.g. redis://127.0.0.1:6379/15)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--large-mb", type=int, help="send one payload of this size and report peak RSS")
    args = parser.parse_args()
    count = 10 if args.quick else args.messages
    partner, ours = (KeyPair(*self_signed(PARTNER_ID)), KeyPair(*self_signed(OUR_ID)))
    with tempfile.TemporaryDirectory(prefix="edigate-as2-bench-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDIGATE_")}
        env.update({"EDIGATE_DATA_DIR": str(Path(tmp) / "data"), "EDIGATE_SECRET_KEY": SECRET})
        for option, name in (
            (args.database_url, "EDIGATE_DATABASE_URL"),
            (args.database_schema, "EDIGATE_DATABASE_SCHEMA"),
            (args.broker_url, "EDIGATE_BROKER_URL"),
        ):
            if option:
                env[name] = option
        if args.large_mb:
            env["EDIGATE_MAX_BODY_BYTES"] = str(max(2 * args.large_mb * 1024 * 1024, 100 * 1024 * 1024))
        _setup({k: v for k, v in env.items() if k.startswith("EDIGATE_")}, partner, ours)
        port = _free_port()
        paths = [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "benchmarks.as2:app_factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(args.workers),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            env=env,
            cwd=Path(__file__).resolve().parents[1],
        )
        try:
            url = f"http://127.0.0.1:{port}/as2"
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/api/v1/healthz", timeout=1)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit("the server did not start") from None
                    time.sleep(0.1)
            if args.large_mb:
                _large(url, server.pid, args.large_mb, partner, ours, env)
                return 0
            backend = "postgresql" if args.database_url else "embedded sqlite"
            print(
                f"AS2 receive, {backend}, {count} signed+encrypted 850s per level, sync signed MDNs verified"
            )
            for concurrency in (1, 4, 16):
                messages = _messages(count, partner, ours)
                server_cpu, client_cpu = _cpu_seconds(server.pid), time.process_time()
                rate, latencies = _run(url, messages, concurrency, ours)
                server_cpu = (_cpu_seconds(server.pid) - server_cpu) * 1000 / count
                client_cpu = (time.process_time() - client_cpu) * 1000 / count
                p50, p99 = statistics.median(latencies) * 1000, _percentile(latencies, 0.99) * 1000
                line = f"concurrency {concurrency:2d}: {rate:7.1f} messages/s"
                cpu = f"CPU/message: server {server_cpu:5.1f} ms, client {client_cpu:4.1f} ms"
                print(f"{line}  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  {cpu}")
        finally:
            server.terminate()
            server.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
