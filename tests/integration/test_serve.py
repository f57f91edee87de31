"""``edigate serve`` as the README runs it: its children, the first exchange end to end, shutdown."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest_pipeline import REPO, RecordingServer, free_port, wait_until

pytestmark = pytest.mark.integration
FIXTURES = REPO / "tests" / "fixtures"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    """``edigate serve`` on a fresh data dir with two worker processes; its output is kept."""
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDIGATE_")}
    env |= {"PYTHONPATH": str(REPO), "EDIGATE_SWEEP_INTERVAL_SECONDS": "1"}
    port, sftp_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli.server_commands", "serve", "--data-dir", str(data_dir),
         "--port", str(port), "--sftp-port", str(sftp_port), "--worker-processes", "2"],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    try:
        yield process, f"http://127.0.0.1:{port}/api/v1", data_dir
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _children(process: subprocess.Popen[str]) -> dict[str, int]:
    """The children ``serve`` announces on its third line (``name pid N, …``)."""
    assert process.stdout is not None
    lines = [process.stdout.readline() for _ in range(3)]
    return {name: int(pid) for name, pid in re.findall(r"(\w+) pid (\d+)", lines[2])}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_serve_runs_the_first_exchange_and_stops_every_child(
    served: tuple[subprocess.Popen[str], str, Path],
) -> None:
    process, api, data_dir = served
    children = _children(process)
    assert set(children) == {"api", "beat", "worker1", "worker2", "sftp"}
    wait_until(lambda: _ready(api), timeout=60, message="readyz")
    partner = RecordingServer().start()
    try:
        admin = subprocess.run(
            [str(Path(sys.executable).with_name("edigate")), "keys", "create", "--role", "admin",
             "--name", "t", "--data-dir", str(data_dir)],
            cwd=REPO, capture_output=True, text=True, check=True,
        ).stdout.split()[-1]
        auth = {"Authorization": f"Bearer {admin}"}
        profile = (FIXTURES / "acme-retail.yaml").read_text().replace("http://127.0.0.1:9/edi", partner.url)
        with httpx.Client(base_url=api, timeout=10) as client:
            client.post("/partners", headers=auth | {"Content-Type": "application/yaml"},
                        content=profile).raise_for_status()
            client.post("/webhooks", headers=auth, json={"name": "erp-main", "url": partner.url,
                                                         "events": ["document.received"]}).raise_for_status()
            key = client.post("/partners/acme-retail/keys", headers=auth, json={"name": "in"}).json()["key"]
            inbound = {"Authorization": f"Bearer {key}", "Content-Type": "application/edi-x12"}
            posted = client.post("/inbound/acme-retail", headers=inbound,
                                 content=(FIXTURES / "po_004010.x12").read_bytes())
            assert posted.status_code == 202
        wait_until(lambda: len(partner.requests) >= 2, timeout=60, message="the webhook and the 997")
        bodies = [r.body for r in partner.requests]
        assert any(b'"purchase_order"' in b for b in bodies) and any(b"AK1*PO*" in b for b in bodies)
    finally:
        partner.stop()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=40) == 0
    assert not [name for name, pid in children.items() if _alive(pid)]


def _ready(api: str) -> bool:
    try:
        return httpx.get(f"{api}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
