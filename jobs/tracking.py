"""Tracking jobs: poll a shipment the carrier has been quiet about (the sweeper asks for them)."""

from __future__ import annotations

from app import tracking
from app.runtime import Runtime
from jobs.context import JobContext


def poll_shipment(ctx: JobContext) -> None:
    """Ask the carrier for the shipment's (or return parcel's) scans and apply the new ones. Repeating it
    changes nothing: scans are stored once, and a parcel that has arrived is not polled."""
    if "return_id" in ctx.payload:  # a return parcel on its way back
        tracking.poll_return(ctx.runtime, ctx.session, ctx.int_arg("return_id"))
        return
    tracking.poll_shipment(ctx.runtime, ctx.session, ctx.int_arg("shipment_id"))


def schedule_due_polls(runtime: Runtime) -> int:
    """The sweeper's call (jobs/relay.py Sweeper): a poll job for each shipment due one."""
    return tracking.schedule_due_polls(runtime)
