"""Private infrastructure for the drill: a PostgreSQL cluster of its own (so it can be restarted without
touching the shared server at 5432), a private Redis (tests/helpers_redis.PrivateRedis), and Orderline's
processes as the Procfile runs them: gunicorn with app/gunicorn_conf.py and `orderline worker` processes,
restarted by a small supervisor when they die (as Heroku, systemd or Kubernetes would)."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from bench.webhooks import free_port, wait_port

ROOT = Path(__file__).resolve().parents[2]


def _postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (apt-get install postgresql)")
    return Path(found[-1]).parent


def postgres_available() -> str | None:
    """None when a private cluster can be made here, else why not."""
    try:
        _postgres_bin()
    except RuntimeError as error:
        return str(error)
    if os.geteuid() == 0 and not shutil.which("runuser"):
        return "running as root without runuser: cannot initdb as the postgres user"
    return None


class PrivatePostgres:
    """initdb into a temp dir (as the `postgres` OS user when we are root: PostgreSQL refuses to run as root),
    then pg_ctl start / stop / restart on a free loopback port. `remove()` deletes the whole cluster."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.datadir = workdir / "pgdata"
        self.port = free_port()
        self.bin = _postgres_bin()
        self._as_postgres = os.geteuid() == 0

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/orderline"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=120)

    def init(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self._as_postgres:
            shutil.chown(self.workdir, "postgres")
        self._run(str(self.bin / "initdb"), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync",
                  "-D", str(self.datadir))
        # Production-ish durability (fsync on) but sized for a shared 2-core box.
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                       f"unix_socket_directories = '{self.workdir}'\n"
                       "max_connections = 200\nshared_buffers = 128MB\nsynchronous_commit = on\n"
                       "logging_collector = off\n")
        self.start()
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "orderline")

    def start(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.workdir / "postgres.log"),
                  "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "-t", "60", "stop",
                  check=False)

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop (every connection is cut), stay down `down_seconds`, start again."""
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def remove(self) -> None:
        if (self.datadir / "postmaster.pid").exists():
            self.stop("immediate")
        shutil.rmtree(self.workdir, ignore_errors=True)


class Supervised:
    """One Procfile process (its own process group), restarted when it exits unless we are stopping."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.args, self.env, self.log = name, args, env, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.stopping = False

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.args, env=self.env, stdout=out, stderr=subprocess.STDOUT,  # noqa: S603
                                         cwd=ROOT, start_new_session=True)

    def check(self) -> None:
        if not self.stopping and self.proc is not None and self.proc.poll() is not None:
            self.restarts += 1
            self.start()

    def stop(self) -> None:
        self.stopping = True
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        # Work horses forked by an RQ worker share its process group: none may outlive the run.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def tree(self) -> list[psutil.Process]:
        """The process and its live children (gunicorn's workers, an RQ worker's work horse)."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        try:
            parent = psutil.Process(self.proc.pid)
            return [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []


def procfile_worker_args() -> list[str]:
    """The Procfile's `worker:` command after `orderline` (the drill runs the workers as the Procfile does)."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == "worker":
            words = command.split()
            return words[1:] if words and words[0] == "orderline" else words
    raise RuntimeError("the Procfile has no worker process")


class Stack:
    """gunicorn + N `orderline worker` processes, supervised; RSS sampled on demand."""

    def __init__(self, env: dict[str, str], logdir: Path, workers: int) -> None:
        self.env = env
        self.web_port = free_port()
        python = sys.executable
        self.web = Supervised("web", [python, "-m", "gunicorn", "--config", "python:app.gunicorn_conf", "--bind",
                                      f"127.0.0.1:{self.web_port}", "app:create_app()"], env, logdir / "web.log")
        self.workers = [Supervised(f"worker{n}", [python, "-m", "app", *procfile_worker_args()], env,
                                   logdir / f"worker{n}.log") for n in range(workers)]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start(self) -> None:
        self.web.start()
        for worker in self.workers:
            worker.start()
        wait_port(self.web_port, 60)
        self.wait_ready()
        self._thread = threading.Thread(target=self._supervise, name="peak-supervisor", daemon=True)
        self._thread.start()

    def wait_ready(self, timeout: float = 180.0) -> None:
        """Until /readyz answers 200 (gunicorn's workers import the app after the port opens)."""
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/readyz", timeout=30).status_code == 200:
                    return
            time.sleep(0.5)
        raise RuntimeError(f"Orderline at {self.url} not ready after {timeout:.0f} s")

    def _supervise(self) -> None:
        while not self._stop.wait(1.0):
            for process in (self.web, *self.workers):
                process.check()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for process in (*self.workers, self.web):
            process.stop()

    @property
    def restarts(self) -> dict[str, int]:
        return {p.name: p.restarts for p in (self.web, *self.workers) if p.restarts}

    def rss_mb(self) -> dict[str, float]:
        """Resident memory in MiB of the long-lived processes: gunicorn (master + workers) and the RQ worker
        parents; work horses (a fork per job, gone when it ends) are counted apart, so they do not make the
        soak's growth figure jump by a horse's size from one sample to the next."""

        def total(processes: list[psutil.Process]) -> float:
            size = 0
            for process in processes:
                with contextlib.suppress(psutil.Error):
                    size += process.memory_info().rss
            return size / 2**20

        web = self.web.tree()
        trees = [w.tree() for w in self.workers]
        parents = [tree[0] for tree in trees if tree]
        horses = [p for tree in trees for p in tree[1:]]
        return {"web": round(total(web), 1), "web_processes": len(web),
                "workers": round(total(parents), 1), "worker_processes": len(parents),
                "work_horses": round(total(horses), 1)}

    def _busy_worker_pids(self) -> set[int]:
        """The pids of the RQ workers running a job now, as they report it in Redis."""
        from redis import Redis

        client = Redis.from_url(self.env["REDIS_URL"], socket_timeout=2)
        busy = set()
        with contextlib.suppress(Exception):
            for key in client.smembers("rq:workers"):
                state, pid = client.hmget(key, "state", "pid")
                if state == b"busy" and pid:
                    busy.add(int(pid))
        return busy

    def kill_worker_mid_job(self, timeout: float = 20.0) -> str:
        """SIGKILL an RQ worker, and every process it started, while it runs a job."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            busy = self._busy_worker_pids()
            for worker in self.workers:
                tree = worker.tree()
                if tree and tree[0].pid in busy:
                    for process in reversed(tree):
                        with contextlib.suppress(psutil.Error):
                            process.send_signal(signal.SIGKILL)
                    return f"{worker.name} (pid {tree[0].pid}) killed mid-job, with its {len(tree) - 1} child(ren)"
            time.sleep(0.01)
        worker = self.workers[0]
        for process in reversed(worker.tree()):
            with contextlib.suppress(psutil.Error):
                process.send_signal(signal.SIGKILL)
        return f"{worker.name} killed (no job running within {timeout:.0f} s)"
