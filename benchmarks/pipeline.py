"""End-to-end pipeline speed: 850s posted over HTTP → signed webhooks received by a real ERP server.

Starts the API (uvicorn), Celery workers and beat as child processes, a recording ERP server in
this process, then posts ``--documents`` purchase orders (``--sets`` 850s per interchange) from
``--clients`` concurrent HTTP clients, optionally paced at ``--rate`` documents/s. Prints the
sustained documents/s (first post → last webhook) and p50/p99 latency from receipt (the 202) to
webhook arrival. ``--backend embedded`` runs what ``edigate serve`` runs (SQLite + kombu's
SQLAlchemy broker); ``--backend postgres`` uses PostgreSQL (``EDIGATE_TEST_DATABASE_URL``, its
own schema) and Redis (``EDIGATE_BENCH_REDIS_URL``, default db 14, flushed). ``--quick`` is the small CI run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from process_cpu import group_cpu_seconds  # noqa: E402

SECRET_KEY = "benchmark-secret-key-0123456789abcdef"
ISA = (
    "ISA*00*          *00*          *ZZ*ACMERETAIL     *ZZ*DISTCO         *261122*0930*U*00401*"
    "{cn:09d}*0*T*>~\n"
)


def po_850(number: int, control: int) -> str:
    """One 850 with four lines."""
    body = [f"BEG*00*SA*BENCH-{number}**20261122", "CUR*BY*USD", "N1*ST*ACME DC 7*92*0007"]
    for line in range(1, 5):
        body += [f"PO1*{line}*{line * 3}*EA*2.50**UP*01234567890{line}*VP*W-{line}", "PID*F****WIDGET"]
    body.append("CTT*4")
    segments = [f"ST*850*{control:04d}", *body]
    segments.append(f"SE*{len(segments) + 1}*{control:04d}")
    return "".join(s + "~\n" for s in segments)


def interchange(isa13: int, numbers: list[int]) -> bytes:
    """An interchange of one group holding one 850 per number."""
    sets = "".join(po_850(n, i + 1) for i, n in enumerate(numbers))
    text = (
        ISA.format(cn=isa13)
        + f"GS*PO*ACMERETAIL*DISTCO*20261122*0930*{isa13}*X*004010~\n"
        + sets
        + f"GE*{len(numbers)}*{isa13}~\nIEA*1*{isa13:09d}~\n"
    )
    return text.encode()


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Erp:
    """A recording webhook receiver: arrival time per PO number."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.webhook_ids: set[str] = set()
        self.lock = threading.Lock()
        erp = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                now = time.monotonic()
                if self.path == "/hook":
                    po = json.loads(body)["data"].get("po_number", "")
                    with erp.lock:
                        erp.arrivals.setdefault(po, now)
                        erp.webhook_ids.add(self.headers.get("webhook-id", ""))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _prepare(args: argparse.Namespace, data_dir: Path, erp: Erp) -> tuple[dict[str, str], str, str | None]:
    """Settings env, a partner key, and the PostgreSQL schema to drop afterwards."""
    from pydantic import SecretStr

    from gateway.cli.server_commands import prepare_broker
    from gateway.secrets import SecretBox
    from gateway.settings import Settings
    from gateway.store.api_keys import create_api_key
    from gateway.store.db import Database
    from gateway.store.enums import ApiKeyRole
    from gateway.store.migrate import open_database, upgrade_to_head
    from gateway.webhooks.endpoints import create_endpoint
    from partner_profiles.service import save_profile, validate_profile_data

    env = {
        "EDIGATE_DATA_DIR": str(data_dir),
        "EDIGATE_SECRET_KEY": SECRET_KEY,
        "EDIGATE_SWEEP_INTERVAL_SECONDS": "2",
        "EDIGATE_TASK_LEASE_SECONDS": "60",
    }
    schema = None
    if args.backend == "postgres":
        import psycopg
        import redis
        from sqlalchemy.engine import make_url

        url = os.environ.get("EDIGATE_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
        broker = os.environ.get("EDIGATE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
        redis.Redis.from_url(broker).flushdb()
        schema = f"edigate_bench_{uuid.uuid4().hex[:8]}"
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(f'CREATE SCHEMA "{schema}"')
        env.update(
            {"EDIGATE_DATABASE_URL": url, "EDIGATE_DATABASE_SCHEMA": schema, "EDIGATE_BROKER_URL": broker}
        )
        settings = Settings(
            data_dir=data_dir,
            secret_key=SecretStr(SECRET_KEY),
            database_url=url,
            database_schema=schema,
            broker_url=broker,
        )
        db = Database.from_settings(settings)
        upgrade_to_head(db)
    else:
        settings = Settings(data_dir=data_dir, secret_key=SecretStr(SECRET_KEY))
        db = open_database(settings)
    prepare_broker(settings.effective_broker_url())
    box = SecretBox.from_settings(settings)
    profile = {
        "id": "acme-retail",
        "name": "ACME",
        "status": "test",
        "x12": {
            "interchange_id": {"qualifier": "ZZ", "id": "ACMERETAIL"},
            "our_id": {"qualifier": "ZZ", "id": "DISTCO"},
            "acknowledgment": {"type": "997", "ta1": "never"},
        },
        "transports": {"http": {"outbound_url": erp.url.replace("/hook", "/acks")}},
    }
    with db.unit_of_work() as session:
        save_profile(session, validate_profile_data(profile), box=box, actor="benchmark")
        create_endpoint(
            session, url=erp.url, events=["document.received"], box=box, actor="benchmark", name="erp-main"
        )
    with db.unit_of_work() as session:
        _, key = create_api_key(session, name="bench", role=ApiKeyRole.PARTNER, partner_id="acme-retail")
    db.dispose()
    return env, key, schema


def _children(
    args: argparse.Namespace, env: dict[str, str], port: int, log: Path
) -> list[subprocess.Popen[bytes]]:
    full = {
        **{k: v for k, v in os.environ.items() if not k.startswith("EDIGATE_")},
        **env,
        "EDIGATE_PORT": str(port),
        "PYTHONPATH": str(REPO),
    }
    base = [sys.executable, "-m", "gateway.cli.server_commands"]
    worker = [*base, "worker", "--loglevel", "WARNING", "--concurrency", str(args.concurrency),
              "--pool", args.pool]
    commands = [
        [*base, "api", "--workers", str(args.api_workers)],
        [*base, "beat", "--loglevel", "WARNING"],
        *[worker for _ in range(args.worker_processes)],
    ]
    handle = log.open("ab")
    return [
        subprocess.Popen(c, env=full, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        for c in commands
    ]


def _wait_ready(url: str, timeout: float = 30) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"the API did not start at {url}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run one benchmark and return its figures."""
    import httpx

    erp = Erp()
    with tempfile.TemporaryDirectory(prefix="edigate-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        env, key, schema = _prepare(args, data_dir, erp)
        port = free_port()
        children = _children(args, env, port, Path(tmp) / "children.log")
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_ready(f"{base}/api/v1/openapi.json")
            time.sleep(2.0)  # let the worker connect
            batches = [
                list(range(i, min(i + args.sets, args.documents)))
                for i in range(0, args.documents, args.sets)
            ]
            posted: dict[str, float] = {}
            lock = threading.Lock()
            interval = args.sets / args.rate if args.rate else 0.0
            api, workers = children[0].pid, [child.pid for child in children[2:]]

            def workers_cpu() -> float:
                return sum(group_cpu_seconds(pid) for pid in workers)

            cpu_start = {"api": group_cpu_seconds(api), "worker": workers_cpu()}
            start = time.monotonic()
            headers = {"authorization": f"Bearer {key}", "content-type": "application/edi-x12"}

            def post(index: int, numbers: list[int], client: httpx.Client) -> None:
                if interval:
                    delay = start + index * interval - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                response = client.post(
                    f"{base}/api/v1/inbound/acme-retail",
                    headers=headers,
                    content=interchange(1000 + index, numbers),
                )
                done = time.monotonic()
                if response.status_code != 202:
                    raise SystemExit(f"POST answered {response.status_code}: {response.text}")
                with lock:
                    for n in numbers:
                        posted[f"BENCH-{n}"] = done

            clients = [httpx.Client(timeout=60) for _ in range(args.clients)]
            with ThreadPoolExecutor(args.clients) as pool:
                futures = [
                    pool.submit(post, i, batch, clients[i % args.clients]) for i, batch in enumerate(batches)
                ]
                for future in futures:
                    future.result()
            posting_seconds = time.monotonic() - start
            deadline = time.monotonic() + args.timeout
            while len(erp.arrivals) < args.documents and time.monotonic() < deadline:
                time.sleep(0.05)
            end = max(erp.arrivals.values()) if erp.arrivals else time.monotonic()
            cpu = {"api": group_cpu_seconds(api) - cpu_start["api"],
                   "worker": workers_cpu() - cpu_start["worker"]}
            latencies = sorted(erp.arrivals[po] - posted[po] for po in erp.arrivals if po in posted)
        finally:
            for child in children:
                if child.poll() is None:
                    os.killpg(child.pid, signal.SIGTERM)
            for child in children:
                try:
                    child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(child.pid, signal.SIGKILL)
            if schema:
                _drop_schema(schema)
    received = len(erp.arrivals)
    return {
        "backend": args.backend,
        "documents": args.documents,
        "received": received,
        "distinct_webhook_ids": len(erp.webhook_ids),
        "sets_per_interchange": args.sets,
        "rate_target": args.rate or None,
        "posting_seconds": round(posting_seconds, 2),
        # CPU, unlike wall time, holds up on a shared machine (the worker's includes its pool)
        "cpu_ms_per_document": {name: round(cpu[name] * 1000 / max(received, 1), 2) for name in cpu},
        "documents_per_second": round(received / (end - start), 1) if received else 0.0,
        "p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 1)
        if latencies
        else None,
    }


def _drop_schema(schema: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    url = os.environ.get("EDIGATE_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main(argv: list[str] | None = None) -> int:
    """Parse options, run, print one JSON line of figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["embedded", "postgres"], default="embedded")
    parser.add_argument("--documents", type=int, default=2000)
    parser.add_argument("--sets", type=int, default=10, help="850s per interchange (one POST each)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="documents/s to pace at (0: as fast as possible)"
    )
    parser.add_argument("--worker-processes", type=int, default=os.cpu_count() or 1,
                        help="worker processes (edigate serve: one per core)")
    parser.add_argument("--concurrency", type=int, default=8, help="tasks at once per worker process")
    parser.add_argument("--pool", default="threads", choices=["prefork", "threads", "solo"])
    parser.add_argument("--api-workers", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the last webhook")
    parser.add_argument("--quick", action="store_true", help="a small run without targets (CI)")
    args = parser.parse_args(argv)
    if args.quick:
        args.documents, args.timeout = min(args.documents, 100), min(args.timeout, 120.0)
    figures = run(args)
    print(json.dumps(figures))
    if figures["received"] != args.documents or figures["distinct_webhook_ids"] != args.documents:
        print(f"lost or duplicated webhooks: {figures}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
