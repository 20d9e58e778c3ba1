"""What a job function is handed: its payload, the open transaction, and the process's connections."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from app.runtime import Runtime


@dataclass(frozen=True)
class JobContext:
    outbox_id: int
    payload: dict[str, Any]
    # The transaction that also closes the outbox row: what the job writes here lands exactly once.
    session: Session
    runtime: Runtime
    # An earlier attempt may have reached a provider: this is a retry (or a rerun after its worker died), or the
    # job failed before and was requeued. A job's first run needs no look-up before its side effect.
    may_have_run_before: bool = False

    def int_arg(self, name: str) -> int:
        value = self.payload.get(name)
        if not isinstance(value, int):
            raise ValueError(f"job payload needs an integer '{name}', got {value!r}")
        return value
