"""SFTP throughput: small files from 4 concurrent OpenSSH ``sftp`` clients through to the ERP
webhook, and one large upload's speed and memory.

Runs the embedded stack (SQLite, local archive, a real Celery worker and beat on the SQLAlchemy
broker), our SFTP server in this process and a recording ERP. Prints files/s (upload start to
the last webhook), the p50/p99 latency from the server answering the close (intake committed)
to the webhook, and for the large file MB/s and this process's peak RSS growth.

Full run: 1,000 files and 500 MB (targets: >= 100 files/s, >= 30 MB/s, RSS growth <= 100 MB).
``--quick`` (CI): 100 files and 20 MB, no thresholds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pydantic import SecretStr

from gateway.settings import Settings
from gateway.store.migrate import open_database

REPO = Path(__file__).resolve().parents[1]
PO = (REPO / "tests" / "fixtures" / "po_004010.x12").read_bytes()
PASSWORD = "benchmark password 0123"


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class PeakRss:
    """Samples this process's RSS every 20 ms while active."""

    def __init__(self) -> None:
        self.base = _rss_kib()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss_kib())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        """Peak minus the RSS at start, in MB."""
        return (self.peak - self.base) / 1024


def po_file(n: int) -> bytes:
    """The fixture 850 with its own interchange control number (no duplicates)."""
    return PO.replace(b"000000101*1*T", f"{n:09d}*0*T".encode()).replace(
        b"IEA*1*000000101", f"IEA*1*{n:09d}".encode())


def main() -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small run without thresholds (CI)")
    parser.add_argument("--files", type=int)
    parser.add_argument("--large-mb", type=int)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    files = args.files or (100 if args.quick else 1000)
    large_mb = args.large_mb or (20 if args.quick else 500)

    from gateway.cli.server_commands import prepare_broker
    from gateway.transports.sftp.config import SftpTuning
    from gateway.transports.sftp.server import HostedSftpServer
    from tests.conftest_pipeline import (
        RecordingServer,
        child_env,
        setup_partner_and_webhook,
        start_beat,
    )
    from tests.conftest_sftp import SftpClient, hosted_profile, save_partner, start_sftp_worker

    tmp = Path(tempfile.mkdtemp(prefix="edigate-sftp-bench-"))
    settings = Settings(data_dir=tmp / "data", secret_key=SecretStr("sftp-benchmark-secret-key-0123456789"),
                        max_body_bytes=(large_mb + 10) * 1024 * 1024)
    db = open_database(settings)
    prepare_broker(settings.effective_broker_url())
    erp = RecordingServer().start()
    setup_partner_and_webhook(db, settings, partner_url=erp.url, erp_url=erp.url)
    profile = hosted_profile([], password=PASSWORD)
    profile["x12"]["acknowledgment"] = {"type": "997", "ta1": "on_request"}
    save_partner(db, settings, profile)
    env = child_env({"EDIGATE_DATA_DIR": str(settings.data_dir),
                     "EDIGATE_SECRET_KEY": "sftp-benchmark-secret-key-0123456789",
                     "EDIGATE_MAX_BODY_BYTES": str(settings.max_body_bytes)})
    worker = start_sftp_worker(env, tmp / "worker.log")
    beat = start_beat(env, tmp / "beat.log")
    server = HostedSftpServer(settings, db=db, port=0, tuning=SftpTuning(
        max_sessions_per_account=args.clients + 1, max_file_bytes=settings.max_body_bytes))
    server.start()
    try:
        return _run(server, db, erp, tmp, files, large_mb, args.clients, args.quick, SftpClient)
    finally:
        server.stop()
        worker.stop()
        beat.stop()
        erp.stop()
        db.dispose()


def _run(server: Any, db: Any, erp: Any, tmp: Path, files: int, large_mb: int, clients: int, quick: bool,
         client_cls: Any) -> int:
    from sqlalchemy import select

    from gateway.store.models import Event

    work = tmp / "client"
    work.mkdir()
    for n in range(files):
        (work / f"po{n:05d}.x12").write_bytes(po_file(1000 + n))
    batches = [[f"po{n:05d}.x12" for n in range(files) if n % clients == c] for c in range(clients)]
    client = client_cls(server.port, work)
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(lambda names: client.run(
            "cd inbound\n" + "".join(f"put {name}\n" for name in names), password=PASSWORD, timeout=1800),
            batches))
    uploaded = time.perf_counter() - started
    failed = [r.output[-500:] for r in results if r.returncode != 0]
    if failed:
        print("upload failed:", failed[0])
        return 1
    deadline = time.monotonic() + max(120, files * 0.5)
    while len(erp.requests) < files and time.monotonic() < deadline:
        time.sleep(0.05)
    delivered = time.perf_counter() - started
    with db.unit_of_work(read_only=True) as session:
        closes = {str(e.message_id): e.occurred_at.timestamp() for e in session.scalars(
            select(Event).where(Event.event_type == "sftp.file_received"))}
    latencies = sorted(r.at - closes[r.json()["message_id"]] for r in erp.requests
                       if r.json().get("message_id") in closes)
    p50 = statistics.median(latencies) if latencies else float("nan")
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else float("nan")
    print(f"small files: {len(erp.requests)}/{files} delivered by {clients} sftp clients; "
          f"upload {files / uploaded:.0f} files/s, end to end {files / delivered:.0f} files/s; "
          f"close→webhook p50 {p50 * 1000:.0f} ms p99 {p99 * 1000:.0f} ms")

    big = work / "large.bin"
    block = (b"ISA*00*" + os.urandom(1017)) * 1024
    with big.open("wb") as handle:
        for _ in range(large_mb):
            handle.write(block)
    with PeakRss() as rss:
        started = time.perf_counter()
        result = client.run("put large.bin /inbound/large.bin\n", password=PASSWORD, timeout=3600)
        elapsed = time.perf_counter() - started
    big.unlink()
    if result.returncode != 0:
        print("large upload failed:", result.output[-500:])
        return 1
    mb_s = large_mb * 1024 * 1024 / elapsed / 1e6
    print(f"large file: {large_mb} MiB in {elapsed:.1f} s = {mb_s:.1f} MB/s (close includes archiving); "
          f"peak RSS growth {rss.growth_mb:.0f} MB")
    ok = len(erp.requests) >= files
    if not quick:
        ok = ok and files / delivered >= 100 and mb_s >= 30 and rss.growth_mb <= 100
    print("sftp benchmark:", "OK" if ok else "BELOW TARGET")
    return 0 if ok or quick else 1


if __name__ == "__main__":
    sys.exit(main())
