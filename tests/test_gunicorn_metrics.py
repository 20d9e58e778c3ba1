"""Under gunicorn with several workers, /metrics counts the requests of all of them, not of one."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from app.config import Settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_request_counts_are_summed_over_every_web_worker(settings: Settings, tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url,
           "ORDERLINE_SECRET_KEY": "k", "WEB_CONCURRENCY": "3", "WEB_THREADS": "1", "LOG_LEVEL": "WARNING",
           "ORDERLINE_INSTANCE_DIR": str(tmp_path), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "--config", "python:app.gunicorn_conf", "--bind",
                                f"127.0.0.1:{port}", "app:create_app()"], env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=30).read()  # noqa: S310 - loopback
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        for _ in range(59):  # with the first one: 60 answers spread over three processes
            urllib.request.urlopen(f"{base}/healthz", timeout=2).read()  # noqa: S310
        text = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()  # noqa: S310
        counted = re.search(r'orderline_http_requests_total\{endpoint="/healthz",method="GET",status="200"\} '
                            r'([0-9.]+)', text)
        assert counted is not None, text[:2000]
        assert float(counted.group(1)) == 60.0
        assert "orderline_queue_depth" in text
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
