"""The newcomer's path: `orderline serve` on a machine with nothing but Python, as the README says."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from app import ConfigurationError, create_app
from app.config import Settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _call(url: str, token: str | None = None, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if body is not None else "GET")
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback only
        return response.status, json.loads(response.read())


def test_serve_on_embedded_defaults_accepts_an_order_and_runs_its_job(tmp_path: Path) -> None:
    port, dead_redis_port = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "ORDERLINE_"))}
    # A Redis URL nobody answers: serve must fall back to its embedded Redis, and say so.
    env["REDIS_URL"] = f"redis://127.0.0.1:{dead_redis_port}/0"
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "app", "serve", "--port", str(port)], cwd=tmp_path, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                assert _call(f"{base}/healthz") == (200, {"status": "ok"})
                break
            except OSError:
                assert process.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, "serve did not answer /healthz within 60 s"
                time.sleep(0.2)
        token = (tmp_path / "instance" / "dev-api-token").read_text().strip()
        status, shops = _call(f"{base}/api/v1/shops", token)
        manual = next(s for s in shops if s["channel"] == "manual")
        status, order = _call(f"{base}/api/v1/orders", token, {
            "shop_id": manual["id"], "currency": "USD",
            "line_items": [{"title": "Gift card", "quantity": 1, "unit_price": "25.00"}]})
        assert status == 201 and order["status"] == "received"
        deadline = time.monotonic() + 30
        while _call(f"{base}/api/v1/orders/{order['id']}", token)[1]["status"] != "needs_review":
            assert time.monotonic() < deadline, "the worker beside the web server did not run the triage job"
            time.sleep(0.2)
        assert (tmp_path / "instance" / "orderline.sqlite3").exists()
        output = (tmp_path / "serve.log").read_text()
        assert "dev_default.embedded_redis" in output
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
        log.close()


def test_production_refuses_the_development_defaults(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="DATABASE_URL"):
        create_app(Settings(env="production", instance_dir=tmp_path, secret_key="k"))
    with pytest.raises(ConfigurationError, match="ORDERLINE_SECRET_KEY"):
        create_app(Settings(env="production", database_url=f"sqlite:///{tmp_path}/x.db", instance_dir=tmp_path))
