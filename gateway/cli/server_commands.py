"""``edigate serve | api | worker | beat``: the embedded all-in-one and the production processes.

``serve`` migrates the embedded database, then runs the API (uvicorn), a Celery worker and
Celery beat as child processes on the broker the settings name (by default kombu's SQLAlchemy
transport on SQLite under the data dir: no Redis needed). SIGINT/SIGTERM are forwarded to the
children; if one of them dies the others are stopped and ``serve`` exits non-zero.

The API runs ``--workers`` uvicorn processes (``EDIGATE_API_WORKERS``; by default one per CPU
core, at most ``MAX_DEFAULT_API_WORKERS``) on sockets bound here (``api_processes``).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from gateway.cli import UsageError

STOP_TIMEOUT_SECONDS = 20.0
API_WORKERS_VARIABLE = "EDIGATE_API_WORKERS"
# More API processes than this rarely pays on one machine: the Celery workers need cores too.
MAX_DEFAULT_API_WORKERS = 4
# Mounted by ``app_factory`` unless gateway.api.app.ROUTER_MODULES already lists them.
PIPELINE_ROUTERS = ("gateway.inbound.views", "gateway.deliveries.views")


def register(subparsers: Any) -> None:
    """Add serve, api, worker and beat."""
    serve = subparsers.add_parser("serve", help="API, worker and beat on the embedded default")
    _common(serve)
    serve.add_argument("--sftp-port", type=int, help="SFTP server port (EDIGATE_SFTP_PORT, default 2222)")
    serve.add_argument(
        "--worker-processes", type=int,
        help="Celery worker processes (EDIGATE_WORKER_PROCESSES; one per core, at most 4)",
    )
    serve.add_argument("--concurrency", type=int, help="tasks at once per worker process (4 threads)")
    serve.add_argument("--api-workers", type=int, help=_API_WORKERS_HELP)
    serve.set_defaults(handler=run_serve)

    api = subparsers.add_parser("api", help="the HTTP API (uvicorn)")
    _common(api)
    api.add_argument("--workers", type=int, help=_API_WORKERS_HELP)
    api.set_defaults(handler=run_api)

    worker = subparsers.add_parser(
        "worker", help="a Celery worker on the inbound/delivery/outbound/acks queues"
    )
    worker.add_argument("--data-dir", type=Path, help="data directory (EDIGATE_DATA_DIR)")
    worker.add_argument("--concurrency", type=int, help="threads or processes (default: 4 threads)")
    worker.add_argument(
        "--pool", choices=["prefork", "threads", "solo"], help="Celery pool (EDIGATE_WORKER_POOL; threads)"
    )
    worker.add_argument("--queues", help="comma-separated queues (default: all four)")
    worker.add_argument("--loglevel", default="INFO")
    worker.set_defaults(handler=run_worker)

    beat = subparsers.add_parser("beat", help="Celery beat: the outbox and delivery sweeps")
    beat.add_argument("--data-dir", type=Path, help="data directory (EDIGATE_DATA_DIR)")
    beat.add_argument("--loglevel", default="INFO")
    beat.set_defaults(handler=run_beat)


_API_WORKERS_HELP = (
    f"API processes ({API_WORKERS_VARIABLE}; default one per CPU core, at most {MAX_DEFAULT_API_WORKERS})"
)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", type=Path, help="data directory (EDIGATE_DATA_DIR, default ./edigate-data)"
    )
    parser.add_argument("--host", help="listen address (EDIGATE_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="API port (EDIGATE_PORT, default 8080)")


def _apply_options(args: argparse.Namespace) -> None:
    """Command-line options override EDIGATE_* variables (children inherit them)."""
    for option, variable in (
        ("data_dir", "EDIGATE_DATA_DIR"),
        ("host", "EDIGATE_HOST"),
        ("port", "EDIGATE_PORT"),
        ("sftp_port", "EDIGATE_SFTP_PORT"),
    ):
        value = getattr(args, option, None)
        if value is not None:
            os.environ[variable] = str(Path(value).resolve()) if option == "data_dir" else str(value)


def api_worker_count(option: int | None = None) -> int:
    """API processes: the option, else ``EDIGATE_API_WORKERS``, else one per usable core (capped)."""
    if option is not None:
        value, source = str(option), "--workers"
    elif os.environ.get(API_WORKERS_VARIABLE, "").strip():
        value, source = os.environ[API_WORKERS_VARIABLE].strip(), API_WORKERS_VARIABLE
    else:
        return _usable_cores()
    if not value.isdigit() or int(value) < 1:
        raise UsageError(f"{source} must be a whole number of processes, at least 1 (not {value!r})")
    return int(value)


def _usable_cores() -> int:
    return max(1, min(len(os.sched_getaffinity(0)), MAX_DEFAULT_API_WORKERS))


def worker_process_count(option: int | None = None) -> int:
    """``serve``'s worker processes: the option, else ``EDIGATE_WORKER_PROCESSES``, else one per core."""
    from gateway.processing.tuning import current_tuning

    # Threads wait on the database and the ERP in parallel; a process per core gives the CPU.
    # One per usable core, capped like the API's: the embedded database takes one writer at a time.
    return option or current_tuning().worker_processes or _usable_cores()


def process_settings() -> dict[str, Any]:
    """How many processes and threads ``serve`` runs, as ``edigate config`` shows them."""
    from gateway.processing.tuning import current_tuning, worker_concurrency

    tuning = current_tuning()
    return {
        "api_workers": api_worker_count(),
        "worker_processes": worker_process_count(),
        "worker_pool": tuning.worker_pool,
        "worker_concurrency": worker_concurrency(tuning, tuning.worker_pool),
    }


def run_api(args: argparse.Namespace) -> int:
    """Serve the API with uvicorn (one process or several, see api_processes) until interrupted."""
    from gateway.cli.api_processes import serve

    _apply_options(args)
    from gateway.settings import Settings
    from gateway.store.migrate import open_database

    settings = Settings()
    workers = api_worker_count(args.workers)
    if settings.is_embedded:  # migrate once here rather than in every worker process at once
        open_database(settings).dispose()
    if settings.effective_broker_url().startswith("sqla+"):
        # The SQLAlchemy broker makes its tables on first use: API processes publishing their
        # first message at the same moment raced to create them ("table kombu_queue already
        # exists", a lost publish). A Redis broker is left alone: it may come up later.
        prepare_broker(settings.effective_broker_url())
    app = "gateway.cli.server_commands:app_factory"
    return serve(app, host=settings.host, port=settings.port, processes=workers)


def app_factory() -> Any:
    """The API app for the environment's settings (uvicorn's factory)."""
    import importlib

    from gateway.api.app import ROUTER_MODULES, create_app

    extra = [importlib.import_module(name).router for name in PIPELINE_ROUTERS if name not in ROUTER_MODULES]
    return create_app(extra_routers=extra)


def run_worker(args: argparse.Namespace) -> int:
    """Run a Celery worker in this process."""
    _apply_options(args)
    from gateway.processing.tuning import worker_concurrency
    from workers.app import create_celery_app, worker_argv

    app = create_celery_app()
    tuning = app.edigate_resources.tuning
    pool = args.pool or tuning.worker_pool
    concurrency = args.concurrency or worker_concurrency(tuning, pool)
    app.worker_main(
        worker_argv(queues=args.queues, concurrency=concurrency, pool=pool, loglevel=args.loglevel)
    )
    return 0


def run_beat(args: argparse.Namespace) -> int:
    """Run Celery beat (the sweeps) in this process."""
    _apply_options(args)
    from gateway.settings import Settings
    from workers.app import create_celery_app

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_celery_app(settings)
    schedule = settings.data_dir.resolve() / "celerybeat-schedule"
    app.start(["beat", "--loglevel", args.loglevel, "-s", str(schedule)])
    return 0


def prepare_broker(broker_url: str) -> None:
    """Create the broker's queues up front (the SQLAlchemy transport makes its tables on first use)."""
    from kombu.connection import Connection

    from gateway.processing.publisher import task_queues
    from gateway.processing.sqla_broker import broker_url as resolve

    with Connection(resolve(broker_url), connect_timeout=5) as connection:  # type: ignore[no-untyped-call]
        channel = connection.default_channel
        for queue in task_queues():
            queue.bind(channel).declare()


def run_serve(args: argparse.Namespace) -> int:
    """Migrate, then run API, worker, beat and the SFTP server as children until interrupted."""
    _apply_options(args)
    api_workers = api_worker_count(args.api_workers)
    from gateway.settings import Settings
    from gateway.store.migrate import open_database

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    open_database(settings).dispose()
    prepare_broker(settings.effective_broker_url())
    worker = ["worker", "--loglevel", "WARNING"]
    if args.concurrency:
        worker += ["--concurrency", str(args.concurrency)]
    processes = worker_process_count(args.worker_processes)
    commands = {"api": ["api", "--workers", str(api_workers)], "beat": ["beat", "--loglevel", "WARNING"]}
    commands |= {f"worker{n}" if processes > 1 else "worker": worker for n in range(1, processes + 1)}
    children = {
        name: subprocess.Popen([sys.executable, "-m", "gateway.cli.server_commands", *argv])
        for name, argv in commands.items()
    }
    children["sftp"] = subprocess.Popen([sys.executable, "-m", "gateway.cli.sftp_commands"])
    print(
        f"edigate serving http://{settings.host}:{settings.port}/api/v1 (docs at /api/v1/docs; "
        f"{api_workers} API process{'es' if api_workers > 1 else ''})",
        flush=True,
    )
    print(f"  data dir {settings.data_dir.resolve()}; broker {settings.masked()['broker_url']}", flush=True)
    print("  " + ", ".join(f"{name} pid {child.pid}" for name, child in children.items()), flush=True)
    return supervise(children)


def supervise(children: dict[str, subprocess.Popen[bytes]]) -> int:
    """Wait for a signal or a dead child; then stop every child and return the exit status."""
    stopping: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    status = 0
    try:
        while not stopping:
            dead = [name for name, child in children.items() if child.poll() is not None]
            if dead:
                print(f"edigate serve: {', '.join(dead)} exited; stopping", file=sys.stderr, flush=True)
                status = 1
                break
            time.sleep(0.2)
        stop_children(children.values())
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status


def stop_children(children: Sequence[subprocess.Popen[bytes]] | Any) -> None:
    """SIGTERM every child, wait, then SIGKILL whatever is left."""
    alive = [child for child in children if child.poll() is None]
    for child in alive:
        child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for child in alive:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one of these commands directly (``python -m gateway.cli.server_commands worker``)."""
    parser = argparse.ArgumentParser(prog="edigate")
    subparsers = parser.add_subparsers(dest="command", required=True)
    register(subparsers)
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except UsageError as exc:
        print(f"edigate {args.command}: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
