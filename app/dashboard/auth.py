"""Dashboard sign-in: an API token exchanged for a cookie session, role checks, and CSRF protection.

The cookie (Flask's signed session) holds the token's row id and a CSRF secret, never the token itself. Each
request reloads the token row, so a revoked token or a changed role takes effect at once.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import abort, current_app, g, redirect, request, session, url_for
from sqlalchemy import select

from app.api.auth import hash_token
from app.models import ApiToken
from app.orders.types import Actor, ActorKind, Role

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


def _db() -> Any:
    return current_app.extensions["orderline"].db


def sign_in(token: str) -> tuple[Actor | None, str]:
    """Start a session for `token`; returns the actor, or None with why not (said the same way as the API)."""
    token = (token or "").strip()
    if not token:
        return None, "paste an API token (`orderline tokens create --name you --role operator`)"
    digest = hash_token(token)
    with _db().session() as db_session:
        row = db_session.execute(select(ApiToken).where(ApiToken.token_hash == digest)).scalar_one_or_none()
        if row is None or not hmac.compare_digest(row.token_hash, digest):
            return None, "the API token is not valid"
        if row.revoked_at is not None:
            return None, "the API token has been revoked"
        actor = _actor(row)
    session.clear()  # a new session id on sign-in: nothing from before carries over (session fixation)
    session.permanent = True
    session["token_id"] = row.id
    session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return actor, ""


def sign_out() -> None:
    session.clear()


def _actor(row: ApiToken) -> Actor:
    return Actor(ActorKind.STAFF, f"token:{row.id}", row.name, Role(row.role))


def current_actor() -> Actor | None:
    token_id = session.get("token_id")
    if not isinstance(token_id, int):
        return None
    with _db().session() as db_session:
        row = db_session.get(ApiToken, token_id)
        if row is None or row.revoked_at is not None:
            session.clear()
            return None
        return _actor(row)


def csrf_token() -> str:
    return str(session.get(CSRF_FIELD, ""))


def ensure_csrf_token() -> str:
    """This browser's CSRF token, made now if it has none yet (before sign-in)."""
    if not session.get(CSRF_FIELD):
        session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return csrf_token()


def check_csrf() -> None:
    """Refuse a POST whose CSRF token (form field or header) is not this session's."""
    sent = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    expected = csrf_token()
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(403, description="the form has expired or did not come from this dashboard (CSRF check); "
                               "reload the page and try again")


def staff(role: Role = Role.VIEWER) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Pages for signed-in staff with at least `role`; POSTs must carry the CSRF token. The actor is `g.actor`."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            actor = current_actor()
            if actor is None:
                if request.method == "GET" and not request.path.endswith(".json"):
                    return redirect(url_for("dashboard.sign_in_page", next=request.full_path.rstrip("?")))
                abort(401, description="sign in again: the session has ended")
            if request.method == "POST":
                check_csrf()
            if not actor.may(role):
                abort(403, description=f"this needs the {role} role; the token '{actor.name}' is {actor.role}")
            g.actor = actor
            return view(*args, **kwargs)

        return wrapped

    return decorator
