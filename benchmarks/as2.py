"""AS2 receive throughput: signed (SHA-256) + encrypted (AES-256-CBC) 850s, sync signed MDNs.

Starts the API the way ``edigate serve`` does (``edigate api``: ``--workers`` uvicorn processes
sharing the port, by default ``serve``'s one per core) on a fresh data dir — the embedded
SQLite default, or PostgreSQL (+ Redis broker) with ``--database-url``/``--broker-url`` — stores
our key pair and an AS2 partner, pre-builds the messages, then POSTs them at concurrency 1, 4 and
16 and verifies every MDN (signature, disposition, MIC). Prints messages/s, p50/p99 MDN latency
and the CPU time per message of the server and of this client per concurrency (CPU time, unlike
wall time, holds up on a shared machine). ``--quick`` sends a few messages (what CI runs). No
worker runs: the benchmark measures what the partner waits for (archive, commit, MDN).

The client is one asyncio loop writing pre-rendered HTTP/1.1 requests on keep-alive
connections, so that its own CPU stays small beside the server's on a two-core machine.

``--large-mb 50`` instead sends one signed + encrypted payload of that size and prints the
server's peak RSS growth while it receives it (the target: at most 100 MB for 50 MB), after
checking its MDN and that the archived payload is the one sent.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from gateway.cli.server_commands import api_worker_count
from gateway.transports.as2.algorithms import same_mic
from gateway.transports.as2.building import BuildOptions, BuiltMessage, build_message
from gateway.transports.as2.certificates import self_signed
from gateway.transports.as2.cms import KeyPair
from gateway.transports.as2.mdn import parse_mdn

OUR_ID, PARTNER_ID = "DISTCO", "ACMEAS2"
SECRET = "benchmark-secret-key-0123456789abcdef"
# Payloads differ from run to run too: the database may keep earlier runs' blobs, and a payload
# already catalogued costs a look-up a partner's fresh documents would not.
RUN = uuid.uuid4().hex[:8].upper()


def _po(n: int) -> bytes:
    segments = [
        "ISA*00*          *00*          *ZZ*ACMERETAIL     *ZZ*DISTCO         *261122*0930*U*00401*"
        f"{n:09d}*0*P*>",
        f"GS*PO*ACMERETAIL*DISTCO*20261122*0930*{n}*X*004010",
        "ST*850*0001",
        f"BEG*00*SA*PO{n:08d}{RUN}**20261122",
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


def _messages(count: int, partner: KeyPair, ours: KeyPair, *, first: int = 1) -> list[BuiltMessage]:
    """``count`` messages with distinct payloads (PO numbers from ``first``)."""
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
        for n in range(first, first + count)
    ]


def _request(message: BuiltMessage, host: str, port: int) -> bytes:
    """The whole HTTP/1.1 POST of a message, rendered before the clock starts."""
    head = ["POST /as2 HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(message.body)}"]
    head += [f"{name}: {value}" for name, value in message.headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + message.body


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[str, bytes]:
    """Send one request on a keep-alive connection; the response's Content-Type and body."""
    writer.write(request)
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    if head[0].split(" ", 2)[1] != "200":
        raise SystemExit(f"the server answered {head[0]!r}")
    fields = dict(line.split(":", 1) for line in head[1:] if ":" in line)
    fields = {name.strip().lower(): value.strip() for name, value in fields.items()}
    if "content-length" not in fields:  # a sync MDN must carry one (AS2_NOTES trap 9)
        raise SystemExit("the MDN came without Content-Length")
    return fields.get("content-type", ""), await reader.readexactly(int(fields["content-length"]))


def _run(
    host: str, port: int, messages: list[BuiltMessage], concurrency: int, ours: KeyPair
) -> tuple[float, list[float]]:
    """POST every message over ``concurrency`` keep-alive connections; rate and MDN latencies."""
    pending = iter([(message, _request(message, host, port)) for message in messages])
    latencies: list[float] = []
    failures: list[str] = []

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for message, request in pending:  # one iterator shared by every connection
                started = time.perf_counter()
                content_type, body = await _exchange(reader, writer, request)
                latencies.append(time.perf_counter() - started)
                mdn = parse_mdn(content_type, body, partner_certs=[ours.cert])
                if not (mdn.signed and mdn.disposition.ok and mdn.mic and same_mic(mdn.mic, message.mic)):
                    failures.append(f"{message.message_id}: {mdn.disposition} {mdn.mic}")
        finally:
            writer.close()

    async def run_all() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(connection() for _ in range(concurrency)))
        return time.perf_counter() - started

    total = asyncio.run(run_all())
    if failures:
        raise SystemExit(f"{len(failures)} MDNs did not verify, e.g. {failures[0]}")
    return len(messages) / total, latencies


def _wait_until_idle(server: subprocess.Popen[bytes], port: int, log: Path) -> None:
    """Wait for the API to answer and for every API process to finish starting (CPU at rest)."""
    deadline = time.monotonic() + 60
    answered = False
    previous = -1.0
    while True:
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the server did not start:\n" + log.read_text(errors="replace")[-2000:])
        if not answered:
            try:
                httpx.get(f"http://127.0.0.1:{port}/api/v1/healthz", timeout=1)
                answered = True
            except httpx.HTTPError:
                pass
        used = _cpu_seconds(server.pid)
        if answered and used - previous < 0.02:
            return
        previous = used
        time.sleep(0.3)


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
    parser.add_argument(
        "--workers", type=int, help="API processes (default: what `edigate serve` runs on this machine)"
    )
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
        command = [sys.executable, "-m", "gateway.cli.server_commands", "api", "--host", "127.0.0.1"]
        command += ["--port", str(port)] + (["--workers", str(args.workers)] if args.workers else [])
        log_path = Path(tmp) / "server.log"
        log = log_path.open("wb")
        server = subprocess.Popen(
            command,
            env=env,
            cwd=Path(__file__).resolve().parents[1],
            stderr=log,
        )
        try:
            url = f"http://127.0.0.1:{port}/as2"
            _wait_until_idle(server, port, log_path)
            if args.large_mb:
                _large(url, server.pid, args.large_mb, partner, ours, env)
                return 0
            backend = "postgresql" if args.database_url else "embedded sqlite"
            processes = args.workers or api_worker_count()
            print(
                f"AS2 receive, {backend}, {processes} API process{'es' if processes > 1 else ''}, "
                f"{count} signed+encrypted 850s per level, sync signed MDNs verified"
            )
            _run("127.0.0.1", port, _messages(20, partner, ours, first=1), 4, ours)  # warm every process
            for level, concurrency in enumerate((1, 4, 16)):
                messages = _messages(count, partner, ours, first=100 + level * count)
                server_cpu, client_cpu = _cpu_seconds(server.pid), time.process_time()
                rate, latencies = _run("127.0.0.1", port, messages, concurrency, ours)
                server_cpu = (_cpu_seconds(server.pid) - server_cpu) * 1000 / count
                client_cpu = (time.process_time() - client_cpu) * 1000 / count
                p50, p99 = statistics.median(latencies) * 1000, _percentile(latencies, 0.99) * 1000
                line = f"concurrency {concurrency:2d}: {rate:7.1f} messages/s"
                cpu = f"CPU/message: server {server_cpu:5.1f} ms, client {client_cpu:4.1f} ms"
                print(f"{line}  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  {cpu}")
        finally:
            server.terminate()
            server.wait(timeout=10)
            log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
