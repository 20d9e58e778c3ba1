"""Every job the domain can ask for, with its function and queue: one line each."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from app.outbox import JobName
from jobs import fulfilment, orders, reconcile, shipping
from jobs import returns as returns_jobs
from jobs import slack as slack_jobs
from jobs import sms as sms_jobs
from jobs import tracking as tracking_jobs
from jobs.context import JobContext
from jobs.queues import QueueName


@dataclass(frozen=True)
class JobSpec:
    func: Callable[[JobContext], None]
    queue: QueueName
    # Touches nothing but the database: the runner may run it inside the transaction of the step that asked
    # for it (jobs/runner.py), as nobody else can see its row before that transaction commits. Not for a step
    # after allocation: allocating locks the stock rows until the commit, and a popular SKU's row is every
    # order's (picking and packing in the same transaction made the others wait 8 ms per order instead of 1).
    local: bool = False
    # How many rows of this job one RQ job may carry (jobs/runner.py runs them in one transaction, each in a
    # savepoint). For the automatic chain, where a busy hour brings hundreds of the same step at once.
    batch: int = 1
    # Called with the payloads of the rows a batch's transaction is about to run, before the first: lock and
    # read in a few statements what each row would otherwise lock and read alone (the orders, in id order).
    prepare: Callable[[Session, Sequence[dict[str, Any]]], None] | None = None


# Measured with bench/fulfilment.py (27 Nov): the workers' CPU per order 42 ms with a row per RQ job, 31-34
# ms with batches of 20; batches of 10 made 34.0 orders/s where 20 made 40.3 and 40 made 41.2.
CHAIN_BATCH = 20


JOBS: dict[str, JobSpec] = {
    JobName.TRIAGE_ORDER: JobSpec(orders.triage_order, QueueName.FULFILMENT, local=True, batch=CHAIN_BATCH,
                                  prepare=fulfilment.lock_orders),
    JobName.RECONCILE_SHOP: JobSpec(reconcile.reconcile_shop, QueueName.PROVIDERS),
    JobName.ALLOCATE_ORDER: JobSpec(fulfilment.allocate_order, QueueName.FULFILMENT, local=True,
                                    batch=CHAIN_BATCH, prepare=fulfilment.lock_orders),
    # shipping helper
    JobName.AUTO_PICK_PACK: JobSpec(shipping.auto_pick_pack, QueueName.FULFILMENT, batch=CHAIN_BATCH,
                                    prepare=fulfilment.lock_orders),
    JobName.BUY_LABEL: JobSpec(shipping.buy_label, QueueName.PROVIDERS, batch=CHAIN_BATCH,
                               prepare=shipping.lock_orders_of_shipments),
    JobName.VOID_LABEL: JobSpec(shipping.void_label, QueueName.PROVIDERS),
    JobName.PUSH_FULFILMENT: JobSpec(shipping.push_fulfilment, QueueName.PROVIDERS, batch=CHAIN_BATCH,
                                     prepare=shipping.lock_orders_of_shipments),
    # --- tracking and returns ---
    JobName.POLL_SHIPMENT: JobSpec(tracking_jobs.poll_shipment, QueueName.PROVIDERS),
    JobName.RETURN_LABEL: JobSpec(returns_jobs.buy_return_label, QueueName.PROVIDERS),
    JobName.RETURN_REFUND: JobSpec(returns_jobs.push_refund, QueueName.PROVIDERS),
    # --- Slack ---
    JobName.SLACK_SYNC_CARD: JobSpec(slack_jobs.sync_card, QueueName.STAFF),
    JobName.SLACK_POST_ALERT: JobSpec(slack_jobs.post_alert, QueueName.STAFF),
    JobName.SLACK_DIGEST: JobSpec(slack_jobs.send_digest, QueueName.BACKGROUND),
    # --- end Slack ---
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
