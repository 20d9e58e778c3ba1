"""What happened, told to whoever listens: Slack cards, customer texts, the dashboard.

The domain records timeline entries (`OrderEvent`) and alerts (`Alert`) without knowing who cares. Each
listener registered here is called once per committed transaction, just before the commit, with every
timeline entry and alert that transaction wrote; a listener answers by adding outbox jobs
(`app.outbox.add_job`) in that same transaction, so the notification is as durable as the change, and a
rolled-back change notifies nobody.

Listeners must be quick and must not call out of the process: they decide what to send, jobs send it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session, sessionmaker

from app.models import Alert, OrderEvent

PENDING_KEY = "orderline.events_pending"


@dataclass(frozen=True)
class Happened:
    """Everything one transaction recorded, in the order it was recorded."""

    order_events: Sequence[OrderEvent]
    alerts: Sequence[Alert]


Listener = Callable[[Session, Happened], None]

_listeners: dict[str, Listener] = {}


def listen(name: str, listener: Listener) -> None:
    """Register `listener` under `name` (registering the same name again replaces it: imports may repeat)."""
    _listeners[name] = listener


def listeners() -> dict[str, Listener]:
    return dict(_listeners)


def note(session: Session, item: OrderEvent | Alert) -> None:
    """Called by the domain for each timeline entry or alert it adds to `session`."""
    session.info.setdefault(PENDING_KEY, []).append(item)


def _before_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return
    dispatch(session)


def dispatch(session: Session) -> None:
    """Tell the listeners now what `session` recorded so far (the commit tells them of anything after).
    The job runner calls this to see, before its commit, every job the step led to."""
    pending: list[OrderEvent | Alert] = session.info.pop(PENDING_KEY, [])
    if not pending or not _listeners:
        return
    session.flush()
    # An entry added inside a SAVEPOINT that was rolled back is not in the database: nobody hears of it.
    kept = [item for item in pending if inspect(item).persistent]
    happened = Happened(
        order_events=[item for item in kept if isinstance(item, OrderEvent)],
        alerts=list(dict.fromkeys(item for item in kept if isinstance(item, Alert))),
    )
    if not happened.order_events and not happened.alerts:
        return
    for listener in list(_listeners.values()):
        listener(session, happened)


def _forget(session: Session, previous: object = None) -> None:
    if getattr(previous, "nested", False):
        return
    session.info.pop(PENDING_KEY, None)


def install(factory: sessionmaker[Session]) -> None:
    """Call the listeners before every commit of sessions made by `factory`."""
    event.listen(factory, "before_commit", _before_commit)
    event.listen(factory, "after_soft_rollback", _forget)
