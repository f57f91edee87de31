"""Outbound speed: canonical documents → validated, X12 generated with control numbers allocated in
the database, archived, queued (outbox + a task published to Redis) and handed to the HTTP transport.

Runs on PostgreSQL (``EDIGATE_TEST_DATABASE_URL``, a schema of its own, dropped afterwards) and Redis
(``EDIGATE_BENCH_REDIS_URL``, default db 10, flushed). ``--processes`` worker processes (the
outbound fleet) run ``--workers`` threads each; a thread submits ``--chunk`` documents in one
transaction (``submit_documents``, as ``POST /outbound/{partner}/{type}/batch``
does; each document its own interchange), commit, publish one send task for them, then do what
the outbound worker does with that task: send each message through
:class:`gateway.transports.http.HttpTransport` to a local HTTP server and record every receipt
with the documents' ``document.sent`` (``send_messages`` with the settle hook). Like a worker,
each process freezes its heap when ready and after its first chunks. Documents are
spread over ``--partners`` partners. The partner's HTTP server runs in a
process of its own. Prints one JSON line with documents/s; ``--quick`` is the CI run.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TARGET_PER_SECOND = 500.0


class _Sink(asyncio.Protocol):
    """The partner's HTTP/1.1 endpoint: reads every request whole and answers each POST with a
    receipt naming its message; ``GET /count`` tells how many came. One event loop serves every
    kept-alive connection: http.server's thread per connection and e-mail parser cost the
    measured machine about 0.1 ms of CPU per request."""

    received = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            lines = self.buffer[:end].decode("latin-1").split("\r\n")
            fields = (line.partition(":") for line in lines[1:])
            headers = {name.strip().lower(): value.strip() for name, _, value in fields}
            if "transfer-encoding" in headers:  # our client always sends a length
                self._answer(b"501 Not Implemented", b"send a content-length", close=True)
                return
            size = end + 4 + int(headers.get("content-length", "0"))
            if len(self.buffer) < size:
                return  # the rest of the body is still on its way
            del self.buffer[:size]
            if lines[0].startswith("POST "):
                _Sink.received += 1
                receipt = f"ok {headers.get('x-edigate-message-id')}".encode()
            else:
                receipt = str(_Sink.received).encode()
            self._answer(b"200 OK", receipt, close=headers.get("connection", "").lower() == "close")

    def _answer(self, status: bytes, body: bytes, *, close: bool) -> None:
        self.transport.write(b"HTTP/1.1 %s\r\ncontent-length: %d\r\n\r\n%s" % (status, len(body), body))
        if close:
            self.transport.close()


def _serve_sink(port_out: Any) -> None:
    """The partner's server, in a process of its own (a peer does not share our interpreter)."""

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(_Sink, "127.0.0.1", 0)
        port_out.send(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(serve())


_worker: dict[str, Any] = {}


def _start_worker(settings_data: dict[str, Any], threads: int) -> None:
    """Per process, like one outbound Celery worker: its engine, archive and HTTP transport."""
    from gateway.deliveries.service import RetryPolicy
    from gateway.processing.context import PipelineContext
    from gateway.processing.publisher import SEND_MESSAGE, CeleryPublisher
    from gateway.runtime import HeapSettler, settle_heap
    from gateway.settings import Settings
    from gateway.store.db import Database
    from gateway.transports.http import HttpTransport

    for module in ("gateway.outbound.scheduled", "gateway.outbound.service", "gateway.processing.sending",
                   "tests.conftest_outbound"):
        importlib.import_module(module)  # imported before the clock starts
    settings = Settings(**settings_data)
    db = Database.from_url(settings.effective_database_url(), schema=settings.database_schema,
                           pool_size=threads + 2)
    publisher = CeleryPublisher(settings)
    # A worker's publisher is connected long before: its first publish (the Celery client app,
    # kombu's producer pool, ~0.2 s of CPU) is not the documents' cost. No worker consumes it.
    publisher.publish(SEND_MESSAGE, {"message_ids": []})
    _worker["ctx"] = PipelineContext.from_settings(settings, db=db, publisher=publisher)
    _worker["transports"] = {"http": HttpTransport(timeout=10)}
    _worker["policy"] = RetryPolicy(window=timedelta(hours=1))
    _worker["threads"] = threads
    _worker["settler"] = HeapSettler()
    settle_heap()  # as a worker does when it is ready


def _work_chunks(jobs: list[tuple[str, list[int]]]) -> tuple[int, float, float]:
    """Submit and send each (partner, document numbers) chunk, ``threads`` chunks at a time;
    (documents, user and system CPU seconds this process spent on them)."""
    from gateway.outbound.scheduled import settle_hook
    from gateway.outbound.service import Submission, submit_documents
    from gateway.processing.publisher import SEND_MESSAGE
    from gateway.processing.sending import send_messages
    from tests.conftest_outbound import sample_document

    ctx, transports, policy = _worker["ctx"], _worker["transports"], _worker["policy"]
    template = sample_document("order_acknowledgment")

    def work(job: tuple[str, list[int]]) -> int:
        partner, chunk = job
        with ctx.db.unit_of_work() as session:
            submitted = submit_documents(
                session,
                blobs=ctx.blobs,
                box=ctx.box,
                partner_id=partner,
                document_type="order_acknowledgment",
                submissions=[
                    Submission(template | {"po_number": f"PO-{n}"}, f"k{n}", f"c{n}") for n in chunk
                ],
                actor="bench",
                lease=timedelta(minutes=5),
                policy=policy,
            )
        generated = [item.generated for item in submitted if item.generated is not None]
        assert len(generated) == len(chunk)
        ctx.publisher.publish(SEND_MESSAGE, {"message_ids": [str(item.message_id) for item in generated]})
        outcomes = send_messages(
            ctx, [item.message_id for item in generated], transports=transports, after=settle_hook(ctx)
        )
        assert {outcome.status for outcome in outcomes} == {"sent"}
        _worker["settler"].tick()  # as a worker does after each task
        return len(generated)

    before = os.times()
    with ThreadPoolExecutor(_worker["threads"]) as pool:
        done = sum(pool.map(work, jobs))
    after = os.times()
    return done, after.user - before.user, after.system - before.system


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark and return its figures."""
    import httpx
    import psycopg
    import redis
    from sqlalchemy import func, select
    from sqlalchemy.engine import make_url

    from gateway.processing.context import PipelineContext
    from gateway.settings import Settings
    from gateway.store.db import Database
    from gateway.store.migrate import upgrade_to_head
    from gateway.store.models import Delivery, Interchange, Message
    from gateway.webhooks.endpoints import create_endpoint
    from partner_profiles.service import save_profile, validate_profile_data
    from tests.conftest_outbound import outbound_profile

    pg_url = os.environ.get("EDIGATE_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    redis_url = os.environ.get("EDIGATE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")
    redis.Redis.from_url(redis_url).flushdb()
    dsn = make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
    schema = f"edigate_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    spawn = multiprocessing.get_context("spawn")
    port_in, port_out = spawn.Pipe(duplex=False)
    sink = spawn.Process(target=_serve_sink, args=(port_out,), daemon=True)
    sink.start()
    sink_url = f"http://127.0.0.1:{port_in.recv()}"
    data_dir = Path(tempfile.mkdtemp(prefix="edigate-bench-outbound-"))
    settings_data = {
        "data_dir": str(data_dir),
        "secret_key": "bench-secret-key-0123456789abcdef",
        "database_url": pg_url,
        "database_schema": schema,
        "broker_url": redis_url,
    }
    db = Database.from_url(pg_url, schema=schema)
    try:
        upgrade_to_head(db)
        ctx = PipelineContext.from_settings(Settings(**settings_data), db=db)
        partners = [f"bench-{n}" for n in range(args.partners)]
        with db.unit_of_work() as session:
            for n, partner in enumerate(partners):
                url = f"{sink_url}/edi"
                profile = outbound_profile(partner, interchange_id=f"BENCH{n}", outbound_url=url)
                save_profile(session, validate_profile_data(profile), box=ctx.box, actor="bench")
            if args.webhook:  # the profiles name "erp-main"; its deliveries are created, not sent
                create_endpoint(session, url=f"{sink_url}/erp", events=["document.sent"], box=ctx.box,
                                actor="bench", name="erp-main")
        jobs = [
            (partners[i // args.chunk % len(partners)], list(range(i, min(i + args.chunk, args.documents))))
            for i in range(0, args.documents, args.chunk)
        ]
        shares = [jobs[p :: args.processes] for p in range(args.processes)]
        start = (settings_data, args.workers)
        with ProcessPoolExecutor(
            args.processes, mp_context=spawn, initializer=_start_worker, initargs=start
        ) as pool:
            list(pool.map(_start_noop, range(args.processes)))  # every process up before the clock starts
            started = time.perf_counter()
            worked = list(pool.map(_work_chunks, shares))
            elapsed = time.perf_counter() - started
        done = sum(count for count, _, _ in worked)
        user = sum(cpu for _, cpu, _ in worked)
        system = sum(cpu for _, _, cpu in worked)
        with db.unit_of_work(read_only=True) as session:
            sent = session.scalar(select(func.count()).select_from(Message).where(Message.status == "sent"))
            deliveries = session.scalar(select(func.count()).select_from(Delivery))
            distinct = session.scalar(
                select(func.count(func.distinct(Interchange.partner_id + Interchange.control_number)))
            )
        received = int(httpx.get(f"{sink_url}/count").text)
        return {
            "benchmark": "outbound",
            "backend": "postgres+redis",
            "documents": done,
            "processes": args.processes,
            "threads_per_process": args.workers,
            "chunk": args.chunk,
            "partners": args.partners,
            "seconds": round(elapsed, 2),
            "documents_per_second": round(done / elapsed, 1),
            "worker_cpu_ms_per_document": round(1000 * (user + system) / max(done, 1), 3),
            "worker_user_ms_per_document": round(1000 * user / max(done, 1), 3),
            "webhook_deliveries": deliveries,
            "sent": sent,
            "received_by_partner": received,
            "distinct_control_numbers": distinct,
            "target_per_second": TARGET_PER_SECOND,
        }
    finally:
        sink.terminate()
        db.dispose()
        shutil.rmtree(data_dir, ignore_errors=True)  # 150 MB of archived X12 and receipts a run
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _start_noop(_: int) -> None:
    time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print the figures; exit 1 when documents were lost or (full run) slow."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=2, help="worker processes (the outbound fleet)")
    parser.add_argument("--workers", type=int, default=4, help="generating/sending threads per process")
    parser.add_argument("--chunk", type=int, default=25, help="documents per database transaction")
    parser.add_argument("--partners", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="500 documents, no speed target (CI)")
    parser.add_argument("--webhook", action="store_true",
                        help="an ERP endpoint subscribed to document.sent (a delivery per document)")
    args = parser.parse_args(argv)
    if args.quick:
        args.documents = min(args.documents, 500)
    figures = run(args)
    print(json.dumps(figures))
    ok = (
        figures["sent"] == figures["documents"] == figures["distinct_control_numbers"]
        == figures["received_by_partner"] == args.documents
    )
    if not ok:
        print(f"lost or duplicated documents: {figures}", file=sys.stderr)
        return 1
    if not args.quick and figures["documents_per_second"] < TARGET_PER_SECOND:
        print(f"below the target of {TARGET_PER_SECOND}/s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
