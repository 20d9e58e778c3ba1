"""The CPU each part of a benchmarked stack uses, read from /proc."""

from __future__ import annotations

import contextlib
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path


def stat_fields(process_dir: Path) -> tuple[str, list[str]]:
    """A process's name and the fields of its /proc stat line after the name."""
    stat = (process_dir / "stat").read_text()
    return stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()


@dataclass
class Parts:
    """Which processes are which part of the stack: by session (each part started in a session of its own,
    with its children) or by pid; PostgreSQL's server processes are found by name."""

    sessions: dict[int, str]
    pids: dict[int, str]

    def cpu_seconds(self) -> dict[str, float]:
        """User + system CPU each part has used so far. Exited children count through the parent that reaped
        them (a forked RQ job, a PostgreSQL backend), so differences of two readings are whole."""
        tick = os.sysconf("SC_CLK_TCK")
        totals: dict[str, float] = defaultdict(float)
        for entry in Path("/proc").iterdir():
            with contextlib.suppress(OSError, ValueError):
                comm, fields = stat_fields(entry)
                name = (self.pids.get(int(entry.name)) or self.sessions.get(int(fields[3]))
                        or ("PostgreSQL" if comm == "postgres" else None))
                if name:
                    totals[name] += sum(int(value) for value in fields[11:15]) / tick
        return totals


def machine_busy_seconds() -> float:
    """CPU seconds every core has spent not idle (nor waiting on I/O) since boot, from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def session_serving(port: int) -> int:
    """The session of the gunicorn master bound to `port` (its workers share it)."""
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError):
            if "gunicorn" in (command := (entry / "cmdline").read_text()) and f"127.0.0.1:{port}" in command:
                return int(stat_fields(entry)[1][3])
    raise RuntimeError(f"no gunicorn serving port {port}")
