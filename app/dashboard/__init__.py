"""The staff dashboard: the order board, an order's page, operations and analytics, served under /dashboard.

Staff sign in with an API token (the same bearer tokens as the REST API, with the same roles); the session
is a signed, HttpOnly, SameSite=Strict cookie holding only the token's id, checked against the database on
every request, so revoking a token signs its sessions out. Every POST carries a CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

from flask import Flask

from app.runtime import Runtime


def init_dashboard(app: Flask, runtime: Runtime) -> None:
    from app import resolve_secret_key
    from app.dashboard import integration_panels, views  # noqa: F401 - SANDBOX PAGES: Slack and SMS panels

    # The cookie-signing key is derived from ORDERLINE_SECRET_KEY (which also encrypts shop secrets), so
    # the one never appears where the other is used.
    master = resolve_secret_key(runtime.settings)
    app.secret_key = hmac.new(master.encode(), b"orderline dashboard session", hashlib.sha256).hexdigest()
    app.config.update(
        SESSION_COOKIE_NAME="orderline_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=runtime.settings.is_production,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
    )
    app.register_blueprint(views.bp)
