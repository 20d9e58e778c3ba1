"""The web thread's own Redis connection (app.runtime.thread_command), which every webhook's ingest wake uses."""

from __future__ import annotations

import os
from typing import Any

import pytest
from redis.exceptions import ResponseError

from app.runtime import thread_command


def _client_id(runtime: Any) -> int:
    return int(thread_command(runtime.redis, "CLIENT", "ID"))


def test_a_thread_keeps_its_connection_across_commands_and_refusals(runtime: Any) -> None:
    first = _client_id(runtime)
    with pytest.raises(ResponseError):
        thread_command(runtime.redis, "NO-SUCH-COMMAND")
    assert _client_id(runtime) == first, "a refusal from Redis says nothing against the connection"


def test_a_forked_process_opens_its_own_connection_and_leaves_the_parents_alone(runtime: Any) -> None:
    parent = _client_id(runtime)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its answer through the pipe, nothing else
        try:
            os.write(write_end, str(_client_id(runtime)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    child = int(os.read(read_end, 64) or b"0")
    os.waitpid(pid, 0)
    os.close(read_end)
    assert child not in (0, parent), "the child used its own connection"
    assert _client_id(runtime) == parent, "the parent's connection still answers"
