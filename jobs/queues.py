"""Queues by latency class: a slow carrier call never waits behind, or delays, an ingest."""

from __future__ import annotations

from enum import StrEnum


class QueueName(StrEnum):
    # Seconds matter: webhooks waiting to become orders, staff waiting for a button's effect.
    INGEST = "ingest"
    # Slack cards and alerts: people act on them, and an order waiting for review waits for its card. Few jobs
    # (one waiting per card), and none holds a worker while Slack paces it, so they go before the bulk work.
    STAFF = "staff"
    # The fulfilment chain: triage, allocation, pick and pack.
    FULFILMENT = "fulfilment"
    # Calls to carriers and channels, which can be slow and rate-limited; reconciliation too, so orders whose
    # webhooks were lost never wait behind a backlog of notifications.
    PROVIDERS = "providers"
    # Customer texts.
    NOTIFY = "notify"
    # Digests and sweeps: nobody waits for these.
    BACKGROUND = "background"


# The order a worker listens in when it serves every queue.
ALL_QUEUES: tuple[QueueName, ...] = tuple(QueueName)
