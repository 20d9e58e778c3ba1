"""Every job the domain can ask for, with its function and queue: one line each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from app.outbox import JobName
from jobs import fulfilment, orders, reconcile
from jobs import sms as sms_jobs  # SMS
from jobs.context import JobContext
from jobs.queues import QueueName


@dataclass(frozen=True)
class JobSpec:
    func: Callable[[JobContext], None]
    queue: QueueName


JOBS: dict[str, JobSpec] = {
    JobName.TRIAGE_ORDER: JobSpec(orders.triage_order, QueueName.FULFILMENT),
    JobName.RECONCILE_SHOP: JobSpec(reconcile.reconcile_shop, QueueName.BACKGROUND),
    JobName.ALLOCATE_ORDER: JobSpec(fulfilment.allocate_order, QueueName.FULFILMENT),
    # --- SMS ---
    JobName.SEND_SMS: JobSpec(sms_jobs.send_sms, QueueName.NOTIFY),
    JobName.DELIVER_SMS: JobSpec(sms_jobs.deliver_sms, QueueName.NOTIFY),
    # --- end SMS ---
}


def spec_for(job: str) -> JobSpec:
    try:
        return JOBS[job]
    except KeyError:
        raise LookupError(f"no job named '{job}' is registered in jobs.registry") from None
