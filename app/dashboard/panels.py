"""Extra panels on an order's page, contributed by other parts of Orderline.

HOOK for the Slack and SMS integrations: register a function that renders the order's Slack card as staff
saw it (or its SMS thread as the customer saw it) as HTML, and it appears on the order's page in the place
marked for it:

    from app.dashboard import panels

    panels.register("slack", "Slack card", lambda order: Markup(render_card_html(order)))

The function gets the loaded `Order` (with its events) and returns Markup, or None when it has nothing to
show for this order. Until something registers "slack", the page says that no Slack card was posted; the SMS
thread is rendered from the timeline (`order.customer_message` / `order.customer_reply`) unless an "sms"
panel replaces it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import structlog
from markupsafe import Markup

from app.models import Order

log = structlog.get_logger("orderline.dashboard")

Render = Callable[[Order], Markup | None]


@dataclass(frozen=True)
class Panel:
    name: str
    title: str
    render: Render


_panels: dict[str, Panel] = {}


def register(name: str, title: str, render: Render) -> None:
    """Add (or replace, by name) a panel on every order's page."""
    _panels[name] = Panel(name, title, render)


def render_all(order: Order) -> dict[str, tuple[str, Markup]]:
    """name → (title, HTML) of every panel with something to show; a failing panel is logged, not fatal."""
    shown: dict[str, tuple[str, Markup]] = {}
    for panel in list(_panels.values()):
        try:
            html = panel.render(order)
        except Exception:  # noqa: BLE001 - one broken panel must not take the order's page down
            log.exception("dashboard.panel_failed", panel=panel.name, order_id=order.id)
            html = Markup('<p class="muted">This panel could not be shown; see the logs.</p>')
        if html is not None:
            shown[panel.name] = (panel.title, html)
    return shown
