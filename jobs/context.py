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

    def may_have_run_before(self) -> bool:
        """Whether an earlier attempt of this job may have reached a provider: this is a retry (or a rerun after
        its worker died), or the job failed before and was requeued. A job's first run needs no look-up."""
        from sqlalchemy import select

        from app.models import OutboxEvent

        attempts, last_error = self.session.execute(select(OutboxEvent.attempts, OutboxEvent.last_error).where(
            OutboxEvent.id == self.outbox_id)).one_or_none() or (0, None)
        return attempts > 1 or last_error is not None

    def int_arg(self, name: str) -> int:
        value = self.payload.get(name)
        if not isinstance(value, int):
            raise ValueError(f"job payload needs an integer '{name}', got {value!r}")
        return value
