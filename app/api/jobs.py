"""/api/v1/jobs: the work the outbox holds, so staff can see what failed and run it again."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from app.api import db, runtime
from app.api.auth import require
from app.api.errors import Error, JsonParser
from app.api.schemas import JobListArgs, JobOut
from app.models import OutboxEvent
from app.orders.errors import Conflict, NotFound
from app.orders.types import Role
from jobs.relay import requeue_failed

blp = Blueprint("jobs", __name__, url_prefix="/api/v1/jobs", description="Background jobs")
blp.ARGUMENTS_PARSER = JsonParser()


@blp.route("")
class Jobs(MethodView):
    @require(Role.VIEWER)
    @blp.arguments(JobListArgs, location="query", as_kwargs=True)
    @blp.response(200, JobOut(many=True))
    def get(self, status: str, limit: int) -> list[OutboxEvent]:
        """Jobs by status (failed by default), newest first, with their last error."""
        with db().session() as session:
            query = select(OutboxEvent).where(OutboxEvent.status == status)
            return list(session.execute(query.order_by(OutboxEvent.id.desc()).limit(limit)).scalars())


@blp.route("/<id:job_id>/requeue")
class JobRequeue(MethodView):
    @require(Role.MANAGER)
    @blp.response(202, JobOut)
    @blp.alt_response(409, schema=Error, description="only failed jobs can be requeued")
    def post(self, job_id: int) -> Any:
        """Run a failed job again (after the cause is fixed)."""
        with db().session() as session:
            row = session.get(OutboxEvent, job_id)
            if row is None:
                raise NotFound(f"job {job_id} does not exist")
            if row.status != "failed":
                raise Conflict(f"job {job_id} is {row.status}; only failed jobs can be requeued")
        requeue_failed(runtime(), [job_id])
        with db().session() as session:
            return session.get(OutboxEvent, job_id), 202
