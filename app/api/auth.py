"""Bearer tokens for the REST API: stored as SHA-256 hashes, each with a role."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import current_app, g, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api.errors import error_response
from app.models import ApiToken
from app.orders.types import Actor, ActorKind, Role
from app.store import utcnow

TOKEN_PREFIX = "ol_"  # noqa: S105 - a marker that makes leaked tokens greppable, not a secret


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, name: str, role: Role) -> str:
    """Store a new token and return its only plaintext copy."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, token_hash=hash_token(token), role=str(role)))
    return token


def _authenticate(header: str | None) -> tuple[Actor | None, str, str]:
    """The actor behind the header, or None with why not and the RFC 6750 error code (if any)."""
    if not header:
        return None, "send an API token: Authorization: Bearer <token>", ""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None, "the Authorization header must be 'Bearer <token>'", "invalid_request"
    digest = hash_token(token.strip())
    with current_app.extensions["orderline"].db.session() as session:
        row = session.execute(select(ApiToken).where(ApiToken.token_hash == digest)).scalar_one_or_none()
        # compare_digest keeps the final check constant-time even though the lookup is by index.
        if row is None or not hmac.compare_digest(row.token_hash, digest):
            return None, "the API token is not valid", "invalid_token"
        if row.revoked_at is not None:
            return None, "the API token has been revoked", "invalid_token"
        now = utcnow()
        # Written at most once a minute: a write on every request would serialize SQLite for nothing.
        if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
            row.last_used_at = now
        return Actor(ActorKind.STAFF, f"token:{row.id}", row.name, Role(row.role)), "", ""


def require(role: Role) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Allow the view only to a valid token whose role is at least `role`; the actor lands in `g.actor`."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            actor, problem, code = _authenticate(request.headers.get("Authorization"))
            if actor is None:
                challenge = 'Bearer realm="orderline"' + (f', error="{code}"' if code else "")
                return error_response(401, problem, headers={"WWW-Authenticate": challenge})
            if not actor.may(role):
                return error_response(403, f"this needs the {role} role; "
                                           f"the token '{actor.name}' is {actor.role}")
            g.actor = actor
            return view(*args, **kwargs)

        # The OpenAPI description (the docstring after its first line) tells callers which role they need.
        wrapped.__doc__ = f"{(view.__doc__ or '').rstrip()}\n\nNeeds a token with the {role} role or higher."
        return wrapped

    return decorator
