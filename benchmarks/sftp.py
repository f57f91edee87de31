"""SFTP throughput: small files from 4 concurrent OpenSSH ``sftp`` clients through to the ERP
webhook, and one large upload's speed and memory.

Runs our SFTP server in this process, a real Celery worker and beat as children, and a recording
ERP. ``--backend embedded`` (default) is what ``edigate serve`` runs: SQLite, kombu's SQLAlchemy
broker; ``--backend postgres`` uses PostgreSQL (``--database-url``, a schema of its own, dropped
afterwards) and Redis (``--broker-url``, flushed). Prints files/s uploaded and end to end (upload
start to the last webhook), the p50/p99 latency from the server answering the close (intake
committed) to the webhook, this process's CPU per file during the upload (the SFTP server, plus
the recording ERP), the worker's mean wall time per task, and for the large file MB/s, CPU per
MiB and this process's peak RSS growth. The temporary data directory is removed at the end.

Full run: 1,000 files and 500 MB (targets: >= 100 files/s, >= 30 MB/s, RSS growth <= 100 MB).
``--quick`` (CI): 100 files and 20 MB, no thresholds. ``--large-mb 0`` skips the large file.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pydantic import SecretStr

from gateway.settings import Settings

REPO = Path(__file__).resolve().parents[1]
PO = (REPO / "tests" / "fixtures" / "po_004010.x12").read_bytes()
PASSWORD = "benchmark password 0123"
SECRET_KEY = "sftp-benchmark-secret-key-0123456789"
DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/13"  # not 14 (pipeline.py) nor 15 (tests): all are flushed
_TASK_DONE = re.compile(r"Task edigate\.(\w+)\[[^\]]+\] succeeded in ([0-9.]+)s")


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


def task_times(logs: list[Path]) -> dict[str, tuple[int, float]]:
    """(count, mean seconds) of each task the worker logs say succeeded."""
    runs: dict[str, list[float]] = defaultdict(list)
    for log in logs:
        for match in _TASK_DONE.finditer(log.read_text(errors="replace")):
            runs[match.group(1)].append(float(match.group(2)))
    return {name: (len(times), statistics.fmean(times)) for name, times in sorted(runs.items())}


def _settings(args: argparse.Namespace, data_dir: Path, large_mb: int) -> tuple[Settings, dict[str, str],
                                                                                Callable[[], None]]:
    """Settings, the children's EDIGATE_* environment, and a cleanup for the backend."""
    limit = (large_mb + 10) * 1024 * 1024
    env = {"EDIGATE_DATA_DIR": str(data_dir), "EDIGATE_SECRET_KEY": SECRET_KEY,
           "EDIGATE_MAX_BODY_BYTES": str(limit),
           # what pipeline.py uses: sweeps every 2 s, leases long enough for a backlog
           "EDIGATE_SWEEP_INTERVAL_SECONDS": str(args.sweep_seconds), "EDIGATE_TASK_LEASE_SECONDS": "60"}
    if args.backend == "embedded":
        return Settings(data_dir=data_dir, secret_key=SecretStr(SECRET_KEY), max_body_bytes=limit), env, \
            lambda: None
    import psycopg
    import redis
    from sqlalchemy.engine import make_url

    redis.Redis.from_url(args.broker_url).flushdb()
    schema = f"edigate_sftp_bench_{uuid.uuid4().hex[:8]}"
    dsn = make_url(args.database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')

    def drop() -> None:
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    env.update({"EDIGATE_DATABASE_URL": args.database_url, "EDIGATE_DATABASE_SCHEMA": schema,
                "EDIGATE_BROKER_URL": args.broker_url})
    settings = Settings(data_dir=data_dir, secret_key=SecretStr(SECRET_KEY), max_body_bytes=limit,
                        database_url=args.database_url, database_schema=schema, broker_url=args.broker_url)
    return settings, env, drop


def main() -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small run without thresholds (CI)")
    parser.add_argument("--files", type=int)
    parser.add_argument("--large-mb", type=int, help="size of the large upload (0: skip it)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--backend", choices=["embedded", "postgres"], default="embedded")
    parser.add_argument("--database-url",
                        default=os.environ.get("EDIGATE_TEST_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--broker-url", default=os.environ.get("EDIGATE_BENCH_REDIS_URL", DEFAULT_BROKER_URL))
    parser.add_argument("--worker-processes", type=int, default=os.cpu_count() or 1,
                        help="worker processes (edigate serve: one per core)")
    parser.add_argument("--concurrency", type=int, default=8, help="tasks at once per worker process")
    parser.add_argument("--pool", default="threads", choices=["prefork", "threads", "solo"])
    parser.add_argument("--sweep-seconds", type=float, default=2.0, help="beat's outbox/delivery sweeps")
    args = parser.parse_args()
    files = args.files or (100 if args.quick else 1000)
    large_mb = (20 if args.quick else 500) if args.large_mb is None else args.large_mb

    from gateway.cli.server_commands import prepare_broker
    from gateway.store.db import Database
    from gateway.store.migrate import open_database, upgrade_to_head
    from gateway.transports.sftp.config import SftpTuning
    from gateway.transports.sftp.server import HostedSftpServer
    from tests.conftest_pipeline import RecordingServer, child_env, setup_partner_and_webhook, start_beat
    from tests.conftest_sftp import SftpClient, hosted_profile, save_partner, start_sftp_worker

    tmp = Path(tempfile.mkdtemp(prefix="edigate-sftp-bench-"))
    with ExitStack() as teardown:  # undone in reverse, also when a step fails
        teardown.callback(shutil.rmtree, tmp, ignore_errors=True)
        settings, settings_env, drop_backend = _settings(args, tmp / "data", large_mb)
        teardown.callback(drop_backend)
        if args.backend == "embedded":
            db = open_database(settings)
        else:
            db = Database.from_settings(settings)
            upgrade_to_head(db)
        teardown.callback(db.dispose)
        prepare_broker(settings.effective_broker_url())
        erp = RecordingServer().start()
        teardown.callback(erp.stop)
        setup_partner_and_webhook(db, settings, partner_url=erp.url, erp_url=erp.url)
        profile = hosted_profile([], password=PASSWORD)
        profile["x12"]["acknowledgment"] = {"type": "997", "ta1": "on_request"}
        save_partner(db, settings, profile)
        env = child_env(settings_env)
        beat = start_beat(env, tmp / "beat.log")
        teardown.callback(beat.stop)
        workers = [
            start_sftp_worker(env, tmp / f"worker{n}.log", concurrency=args.concurrency, pool=args.pool)
            for n in range(args.worker_processes)
        ]
        for worker in workers:
            teardown.callback(worker.stop)
        server = HostedSftpServer(settings, db=db, port=0, tuning=SftpTuning(
            max_sessions_per_account=args.clients + 1, max_file_bytes=settings.max_body_bytes))
        server.start()
        teardown.callback(server.stop)
        rate = _small_files(server, db, erp, tmp, files, args.clients, SftpClient,
                            workers=[worker.pid for worker in workers])
        large = _large_file(server, tmp, large_mb, SftpClient) if rate is not None and large_mb else None
        server.stop()
        for worker in workers:
            worker.stop()  # its log is complete once it has stopped
        times = task_times([tmp / f"worker{n}.log" for n in range(args.worker_processes)])
    print("worker task time (mean, wall): " + ", ".join(
        f"{name} {count} x {mean * 1000:.0f} ms" for name, (count, mean) in times.items()))
    ok = rate is not None and len(erp.requests) >= files and (large is not None or not large_mb)
    met = ok and rate is not None and rate >= 100 and (large is None or (large[0] >= 30 and large[1] <= 100))
    verdict = "FAILED" if not ok else "OK" if met or args.quick else "BELOW TARGET"
    print(f"sftp benchmark ({args.backend}{', quick: no targets' if args.quick else ''}):", verdict)
    return 0 if met or (ok and args.quick) else 1


def _small_files(server: Any, db: Any, erp: Any, tmp: Path, files: int, clients: int, client_cls: Any,
                 *, workers: list[int]) -> float | None:
    """Upload ``files`` small files, wait for their webhooks; files/s end to end (None: failed)."""
    from sqlalchemy import select

    from gateway.store.models import Event

    work = tmp / "client"
    work.mkdir()
    for n in range(files):
        (work / f"po{n:05d}.x12").write_bytes(po_file(1000 + n))
    batches = [[f"po{n:05d}.x12" for n in range(files) if n % clients == c] for c in range(clients)]
    from process_cpu import group_cpu_seconds

    client = client_cls(server.port, work)
    workers_cpu = sum(group_cpu_seconds(pid) for pid in workers)
    cpu = time.process_time()
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(lambda names: client.run(
            "cd inbound\n" + "".join(f"put {name}\n" for name in names), password=PASSWORD, timeout=1800),
            batches))
    uploaded = time.perf_counter() - started
    cpu = time.process_time() - cpu
    failed = [r.output[-500:] for r in results if r.returncode != 0]
    if failed:
        print("upload failed:", failed[0])
        return None
    deadline = time.monotonic() + max(120, files * 0.5)
    while len(erp.requests) < files and time.monotonic() < deadline:
        time.sleep(0.05)
    delivered = time.perf_counter() - started
    workers_cpu = sum(group_cpu_seconds(pid) for pid in workers) - workers_cpu
    with db.unit_of_work(read_only=True) as session:
        closes = {str(e.message_id): e.occurred_at.timestamp() for e in session.scalars(
            select(Event).where(Event.event_type == "sftp.file_received"))}
    latencies = sorted(r.at - closes[r.json()["message_id"]] for r in erp.requests
                       if r.json().get("message_id") in closes)
    p50 = statistics.median(latencies) if latencies else float("nan")
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else float("nan")
    print(f"small files: {len(erp.requests)}/{files} delivered by {clients} sftp clients; "
          f"upload {files / uploaded:.0f} files/s (server CPU {cpu / files * 1000:.1f} ms/file), "
          f"end to end {files / delivered:.0f} files/s "
          f"(workers' CPU {workers_cpu / files * 1000:.1f} ms/file); "
          f"close→webhook p50 {p50 * 1000:.0f} ms p99 {p99 * 1000:.0f} ms")
    return files / delivered


def _large_file(server: Any, tmp: Path, large_mb: int, client_cls: Any) -> tuple[float, float] | None:
    """Upload one ``large_mb`` MiB file; (MB/s, peak RSS growth in MB), None when it failed."""
    work = tmp / "client"
    big = work / "large.bin"
    block = (b"ISA*00*" + os.urandom(1017)) * 1024
    with big.open("wb") as handle:
        for _ in range(large_mb):
            handle.write(block)
    client = client_cls(server.port, work)
    with PeakRss() as rss:
        cpu = time.process_time()
        started = time.perf_counter()
        result = client.run("put large.bin /inbound/large.bin\n", password=PASSWORD, timeout=3600)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
    big.unlink()
    if result.returncode != 0:
        print("large upload failed:", result.output[-500:])
        return None
    mb_s = large_mb * 1024 * 1024 / elapsed / 1e6
    print(f"large file: {large_mb} MiB in {elapsed:.1f} s = {mb_s:.1f} MB/s (login and archiving included; "
          f"server CPU {cpu / large_mb * 1000:.1f} ms/MiB); peak RSS growth {rss.growth_mb:.0f} MB")
    return mb_s, rss.growth_mb


if __name__ == "__main__":
    sys.exit(main())
