"""/api/v1/inbound: the webhook inbox, so staff can see failed and ignored deliveries and replay them."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate
from sqlalchemy import select

from app import inbox
from app.api import db, runtime
from app.api.auth import require
from app.api.errors import JsonParser
from app.api.schemas import Strict, Text
from app.models import InboundEvent
from app.orders.errors import NotFound
from app.orders.types import Role
from jobs.ingest import wake

blp = Blueprint("inbound", __name__, url_prefix="/api/v1/inbound", description="The webhook inbox")
blp.ARGUMENTS_PARSER = JsonParser()

STATUSES = ["received", "processed", "ignored", "stale", "failed"]


class InboundListArgs(Strict):
    status = fields.String(validate=validate.OneOf(STATUSES))
    provider = Text(validate=validate.Length(max=32))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))


class InboundOut(Strict):
    id = fields.Integer()
    provider = fields.String()
    shop_id = fields.Integer(allow_none=True)
    topic = fields.String()
    delivery_id = fields.String()
    status = fields.String()
    attempts = fields.Integer()
    error = fields.String(allow_none=True)
    order_external_id = fields.String(allow_none=True)
    received_at = fields.DateTime()
    processed_at = fields.DateTime(allow_none=True)


@blp.route("")
class InboundList(MethodView):
    @require(Role.VIEWER)
    @blp.arguments(InboundListArgs, location="query", as_kwargs=True)
    @blp.response(200, InboundOut(many=True))
    def get(self, limit: int, status: str | None = None, provider: str | None = None) -> list[InboundEvent]:
        """Deliveries, newest first; failed ones carry the reason."""
        query = select(InboundEvent).order_by(InboundEvent.id.desc()).limit(limit)
        if status:
            query = query.where(InboundEvent.status == status)
        if provider:
            query = query.where(InboundEvent.provider == provider)
        with db().session() as session:
            return list(session.execute(query).scalars())


@blp.route("/<id:inbound_id>/replay")
class InboundReplay(MethodView):
    @require(Role.MANAGER)
    @blp.response(202, InboundOut)
    def post(self, inbound_id: int) -> InboundEvent:
        """Process a stored delivery again, after the cause of its failure is fixed."""
        with db().session() as session:
            try:
                event = inbox.replay(session, inbound_id)
            except LookupError:
                raise NotFound(f"inbound delivery {inbound_id} does not exist") from None
        wake(runtime())
        return event
